//! The sans-IO endpoint: every ISAKMP SA of every connection, driven by datagrams and time.
//!
//! ```text
//! handle_datagram(now, d) / handle_timeout(now) / initiate(now, conn)
//!     then drain poll_transmit(), poll_event(), and sleep until poll_timeout()
//! ```

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::algorithm::DhGroup;
use crate::config::{ConnectionConfig, Phase1Mode, Settings};
use crate::context::{Ctx, Datagram, Output};
use crate::crypto::DhPrivate;
use crate::dh_job::DhJobs;
use crate::error::InputError;
use crate::event::{ConnId, Cookies, Direction, Event, Failure, MessageLog, Role};
use crate::exchange::quick_mode::state::QmState;
use crate::fragment::{FragmentError, Reassembler};
use crate::key_pool::KeyPool;
use crate::lease::Leases;
use crate::sa::{IkeSa, Phase1State};
use crate::spi::SpiAllocator;
use crate::time::later;
use crate::wire::{ExchangeType, Header, PayloadType};

pub mod control;
mod dh_jobs;
mod fragments;
mod recovery;
mod status;
mod table;

use table::SaTable;

pub use status::{ChildStatus, IkeSaStatus};

/// Drops and oddities, for `status` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    /// Not parseable as ISAKMP, or a payload chain that is not.
    pub malformed: u64,
    /// Cookies of no SA we know.
    pub unknown_sa: u64,
    /// Known initiator cookie with the wrong responder cookie, or from another address.
    pub invalid_cookie: u64,
    /// MM1/AM1 from an address no connection names.
    pub no_connection: u64,
    /// MM1/AM1 dropped because too many responder SAs were half-open.
    pub half_open_dropped: u64,
    /// MM1/AM1 to a gateway from a source locked out after too many wrong XAuth passwords.
    pub xauth_locked_out: u64,
    /// Half-open responder SAs forgotten to make room for a newer MM1/AM1 from the same peer.
    pub half_open_replaced: u64,
    /// Retransmissions answered from the reply cache.
    pub duplicates: u64,
    /// Protected messages whose HASH did not verify.
    pub bad_hash: u64,
    /// Messages that do not fit the exchange's state.
    pub unexpected: u64,
    /// ESP with an unknown SPI or IKE with unknown cookies from a configured peer (each report).
    pub recovery_triggers: u64,
    /// Invalid-SPI recovery actions taken: INVALID-SPI sent or phase 1 started.
    pub recovery_actions: u64,
    /// IKEv1 fragments received (each datagram with a FRAG payload).
    pub fragments_received: u64,
    /// Messages reassembled from fragments and handed to the normal input path.
    pub fragments_reassembled: u64,
    /// Fragments not taken, for any reason (those counted below included; a timeout counts
    /// once per freed reassembly).
    pub fragments_dropped: u64,
    /// Fragments dropped at a limit (fragment number, message size, reassemblies in
    /// progress), and MM1/AM1 reassemblies evicted to make room for newer ones.
    pub fragments_over_limit: u64,
    /// Incomplete reassemblies freed at their timeout.
    pub fragment_timeouts: u64,
    /// Fragments we sent (each datagram with a FRAG payload).
    pub fragments_sent: u64,
}

/// What every call into an ISAKMP SA borrows from the endpoint.
struct Env {
    settings: Settings,
    conns: Vec<ConnectionConfig>,
    /// Connections by remote address, in configuration order: the lookup of every MM1/AM1
    /// and unknown-SPI report. Rebuilt whenever `conns` changes.
    by_remote: HashMap<IpAddr, Vec<ConnId>>,
    rng: StdRng,
    keys: KeyPool,
    jobs: DhJobs,
    out: Output,
    /// Address leases and XAuth failure counts of gateway connections.
    leases: Leases,
    spis: SpiAllocator,
}

impl Env {
    /// The first connection (in configuration order) from `local` to `remote`; any local
    /// address when `local` is None.
    /// A gateway connection with an unspecified remote address answers any peer that no
    /// connection names (issue 14: clients come from anywhere).
    fn conn_for(&self, local: Option<IpAddr>, remote: IpAddr) -> Option<ConnId> {
        let named = |r: IpAddr| {
            self.by_remote.get(&r)?.iter().copied().find(|&i| {
                self.conns
                    .get(i)
                    .is_some_and(|c| c.remote_addr == r && local.is_none_or(|l| l == c.local_addr))
            })
        };
        named(remote).or_else(|| {
            let any = match remote {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            };
            named(any).filter(|&i| self.conns.get(i).is_some_and(|c| c.gateway.is_some()))
        })
    }

    fn reindex_conns(&mut self) {
        self.by_remote.clear();
        for (i, c) in self.conns.iter().enumerate() {
            self.by_remote.entry(c.remote_addr).or_default().push(i);
        }
    }

    /// The context of one call into an SA of connection `conn`.
    fn ctx(&mut self, now: Instant, conn: ConnId) -> Option<Ctx<'_>> {
        Some(Ctx {
            now,
            cfg: self.conns.get(conn)?,
            settings: &self.settings,
            rng: &mut self.rng,
            keys: &mut self.keys,
            jobs: &mut self.jobs,
            out: &mut self.out,
            leases: &mut self.leases,
            spis: &mut self.spis,
        })
    }
}

/// How soon after phase 1 a peer's DELETE of an ISAKMP SA that never carried an IPsec SA
/// counts as a refusal (`note_refused_at_once`); strongSwan's comes within milliseconds.
const REFUSED_AT_ONCE: Duration = Duration::from_secs(5);

pub struct Endpoint {
    env: Env,
    /// Keyed by initiator cookie: it is what tells simultaneous negotiations apart.
    sas: SaTable,
    /// New ISAKMP SA → the one it replaces once established.
    replaces: HashMap<[u8; 8], [u8; 8]>,
    /// Replaced ISAKMP SAs (their IPsec SAs already moved over), deleted at the given time.
    retiring: Vec<(Instant, IkeSa)>,
    counters: Counters,
    /// Order in which responder SAs were created (several can share one `now`).
    responder_serial: u64,
    /// Last invalid-SPI recovery action per connection (rate limit).
    recovery_at: HashMap<ConnId, Instant>,
    /// Inbound SPIs of pairs removed lately: ESP still arriving under them is no sign of a
    /// lost SA (see `recovery`).
    removed_spis: std::collections::VecDeque<u32>,
    /// Initiator cookies of ISAKMP SAs removed lately (failed, deleted, expired): the peer's
    /// retransmissions under them are no sign of a lost SA either (see `recovery`).
    removed_cookies: std::collections::VecDeque<[u8; 8]>,
    /// IKEv1 fragments waiting for the rest of their message.
    fragments: Reassembler,
    /// The latest fragment dropped: its sender and why (for the driver's log).
    last_fragment_drop: Option<(std::net::IpAddr, FragmentError)>,
}

impl Endpoint {
    /// `seed` feeds the CSPRNG for cookies, nonces, SPIs and DH keys: the daemon passes OS
    /// randomness, tests a constant for reproducible runs.
    pub fn new(settings: Settings, seed: [u8; 32]) -> Self {
        let keys = KeyPool::new(settings.dh_pool);
        let jobs = DhJobs::new(settings.dh_offload);
        Endpoint {
            env: Env {
                settings,
                conns: Vec::new(),
                by_remote: HashMap::new(),
                rng: StdRng::from_seed(seed),
                keys,
                jobs,
                out: Output::default(),
                leases: Leases::default(),
                spis: SpiAllocator::new(&seed),
            },
            sas: SaTable::default(),
            replaces: HashMap::new(),
            retiring: Vec::new(),
            counters: Counters::default(),
            responder_serial: 0,
            recovery_at: HashMap::new(),
            removed_spis: std::collections::VecDeque::new(),
            removed_cookies: std::collections::VecDeque::new(),
            fragments: Reassembler::default(),
            last_fragment_drop: None,
        }
    }

    pub fn add_connection(&mut self, cfg: ConnectionConfig) -> ConnId {
        let id = self.env.conns.len();
        self.env
            .by_remote
            .entry(cfg.remote_addr)
            .or_default()
            .push(id);
        for group in cfg
            .ike_proposals
            .iter()
            .map(|p| p.group)
            .chain(cfg.esp_proposals.iter().filter_map(|p| p.pfs_group))
        {
            self.env.keys.want(group);
        }
        self.env.conns.push(cfg);
        id
    }

    pub fn connections(&self) -> &[ConnectionConfig] {
        &self.env.conns
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Diffie-Hellman key pairs the pool lacks, per group in use (`Settings::dh_pool`): the
    /// driver makes them off this thread and hands them to `supply_dh`.
    pub fn dh_wanted(&self) -> Vec<(DhGroup, usize)> {
        self.env.keys.wanted()
    }

    /// A key pair made by the driver for the pool (used once, wiped on drop).
    pub fn supply_dh(&mut self, key: DhPrivate) {
        self.env.keys.add(key);
    }

    /// Key pairs taken from the pool, and made inline because it was empty.
    pub fn dh_pool_use(&self) -> (u64, u64) {
        (self.env.keys.hits, self.env.keys.misses)
    }

    /// True when the connection has an established ISAKMP SA.
    pub fn is_up(&self, conn: ConnId) -> bool {
        self.sas.of_conn(conn).any(|(_, s)| s.is_established())
    }

    /// Starts phase 1 as initiator (MM1 or AM1); Quick Modes follow when it completes.
    pub fn initiate(&mut self, now: Instant, conn: ConnId) -> Option<Cookies> {
        self.start(now, conn, None)
    }

    /// A new phase 1 as initiator; `renewing` is the ISAKMP SA it is to replace, if any.
    fn start(&mut self, now: Instant, conn: ConnId, renewing: Option<[u8; 8]>) -> Option<Cookies> {
        let cookies = Cookies {
            initiator_spi: self.fresh_cookie(),
            responder_spi: [0; 8],
        };
        let cfg = self.env.conns.get(conn)?;
        // A peer behind a NAT is reached only through the mapping its own UDP 4500 traffic
        // keeps open, not at its configured address: the renewal starts there, on UDP 4500
        // (RFC 3947 §4).
        let (local, remote) = match renewing.and_then(|k| self.sas.get(&k)) {
            Some(old) if old.nat.floated && old.nat.remote_behind_nat => (old.local, old.remote),
            _ => (
                SocketAddr::new(cfg.local_addr, 500),
                SocketAddr::new(cfg.remote_addr, 500),
            ),
        };
        let mut sa = IkeSa::new(conn, Role::Initiator, cfg.mode, cookies, local, remote, now);
        sa.is_rekey = renewing.is_some();
        sa.has_contact = self.sas.of_conn(conn).any(|(_, s)| s.is_established());
        let mode = cfg.mode;
        let mut ctx = self.env.ctx(now, conn)?;
        match mode {
            Phase1Mode::Main => sa.main_mode_initiate(&mut ctx),
            Phase1Mode::Aggressive => sa.aggressive_mode_initiate(&mut ctx),
        }
        self.sas.insert(cookies.initiator_spi, sa);
        Some(cookies)
    }

    fn fresh_cookie(&mut self) -> [u8; 8] {
        loop {
            let mut c = [0u8; 8];
            self.env.rng.fill_bytes(&mut c);
            if c != [0; 8] && !self.sas.contains_key(&c) {
                return c;
            }
        }
    }

    /// One datagram from the network (non-ESP marker already removed on port 4500).
    pub fn handle_datagram(&mut self, now: Instant, d: Datagram) {
        self.counters.received += 1;
        self.settle();
        let header = match Header::parse(&d.data) {
            Ok(h) => h,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        if header.next_payload == PayloadType::FRAGMENT {
            self.handle_fragment(now, d);
            return;
        }
        let key = header.initiator_spi;
        if !self.sas.contains_key(&key) {
            if self.probe_answered(&header, &d) {
                return;
            }
            self.new_responder(now, &header, &d);
            return;
        }
        let Some(sa) = self.sas.get_mut(&key) else {
            return;
        };
        let fresh_answer = sa.role == Role::Initiator
            && sa.cookies.responder_spi == [0; 8]
            && header.responder_spi != [0; 8]
            && matches!(sa.state(), Phase1State::MmI1Sent | Phase1State::AmI1Sent);
        let retransmitted_first =
            header.responder_spi == [0; 8] && sa.role == Role::Responder && header.message_id == 0;
        if !(sa.cookies.responder_spi == header.responder_spi
            || fresh_answer
            || retransmitted_first)
            || d.remote.ip() != sa.remote.ip()
        {
            self.counters.invalid_cookie += 1;
            return;
        }
        if let Some(reply) = sa.replies.lookup(&d.data, now, &self.env.settings) {
            let resent = reply.is_some();
            if let Some(r) = reply {
                self.env.out.transmits.extend(r.iter().cloned());
            }
            self.counters.duplicates += 1;
            if sa.is_established() {
                // A repeat of a message we answered proves the peer alive (RFC 3706 §5.5).
                sa.last_heard = now;
                sa.dpd.outstanding = None;
            }
            if header.message_id == 0
                && sa.is_established()
                && sa.role == Role::Responder
                && sa.mode == Phase1Mode::Aggressive
            {
                // AM3 needs no answer: a peer that repeats it waits for something from us.
                let xauth = sa.features.xauth;
                let reason = if xauth {
                    "the peer repeats AM3, which needs no answer: it waits for something ferrovpn never sends; it announced XAuth, so it expects XAuth/Mode Config from a remote-access server: configure this connection with remote_access = \"gateway\"".to_string()
                } else {
                    "the peer repeats AM3, which needs no answer: it waits for something ferrovpn never sends (XAuth/Mode Config of a remote-access server?)".to_string()
                };
                if let Some(mut ctx) = self.env.ctx(now, sa.conn) {
                    sa.refuse(&mut ctx, "AM3", 0, reason, None, xauth);
                }
                return;
            }
            // A peer repeating a phase 1 message has not seen our answer: worth a log line
            // (the seed guide's one-way blocking shows up exactly so).
            if let Some(name) = duplicate_name(sa.role, sa.state(), header.message_id) {
                self.env.out.events.push_back(Event::Message(MessageLog {
                    direction: Direction::Received,
                    name,
                    cookies: Cookies::from(&header),
                    message_id: header.message_id,
                    payloads: if resent {
                        "[ ] (duplicate, answer resent)".into()
                    } else {
                        "[ ] (duplicate, answered moments ago: not resent)".into()
                    },
                    peer: d.remote,
                    local: d.local,
                    retransmission: true,
                }));
            }
            return;
        }
        if fresh_answer && header.exchange != ExchangeType::INFORMATIONAL {
            sa.cookies.responder_spi = header.responder_spi;
        }
        if header.message_id == 0 {
            // Phase 1 follows the peer, including its float to 4500 (RFC 3947 §4).
            sa.local = d.local;
            sa.remote = d.remote;
        }
        let Some(mut ctx) = self.env.ctx(now, sa.conn) else {
            return;
        };
        let before = sa.state();
        let result = dispatch(sa, &mut ctx, &header, &d.data);
        if result.is_ok() && sa.is_half_open() && sa.state() != before {
            sa.progressed = now;
        }
        // An answer may have ended our Quick Mode in flight: what waited for it goes.
        sa.start_held_exchanges(&mut ctx);
        if result.is_ok() && header.message_id != 0 && sa.is_established() {
            // A NAT may rebind the peer's port; follow authenticated traffic.
            sa.remote = d.remote;
            // Any authenticated message is a sign of life: no R-U-THERE while the peer talks.
            sa.last_heard = now;
            sa.dpd.outstanding = None;
        }
        if let Err(InputError::Wire(e)) = &result {
            // A malformed phase 1 message gets its notify (RFC 2408 §5), once per SA; it is
            // unauthenticated, so it changes nothing here.
            if header.message_id == 0 && !sa.is_established() && !sa.malformed_notified {
                sa.malformed_notified = true;
                sa.send_plain_notify(&mut ctx, e.notify());
            }
        }
        count(&mut self.counters, result);
        self.after_input(now, key);
    }

    /// An answer (any message with its cookie, from the peer's address, on UDP 4500) to the
    /// UDP 4500 probe of an SA waiting for MM6; the probe's own state ends here.
    fn probe_answered(&mut self, header: &Header, d: &Datagram) -> bool {
        let Some(key) = self.sas.prober(&header.initiator_spi) else {
            return false;
        };
        let Some(sa) = self.sas.get_mut(&key) else {
            return false;
        };
        if d.remote.ip() != sa.remote.ip() || d.local.port() != 4500 {
            self.counters.invalid_cookie += 1;
            return true;
        }
        if let Some(p) = sa.probe.as_mut() {
            if !p.answered {
                p.answered = true;
                self.env.out.events.push_back(Event::Message(MessageLog {
                    direction: Direction::Received,
                    name: "PROBE",
                    cookies: Cookies::from(header),
                    message_id: header.message_id,
                    payloads: format!(
                        "[ ] ({} answering our UDP 4500 probe: UDP 4500 passes)",
                        header.exchange
                    ),
                    peer: d.remote,
                    local: d.local,
                    retransmission: false,
                }));
            }
        }
        true
    }

    /// Bounds half-open responder SAs: per peer address, then across all peers. A peer at its
    /// own bound gets room by forgetting its oldest SA that never heard back after MM2/AM2: an
    /// MM1 flood with the peer's spoofed address (from many ports) cannot see our replies, so
    /// it only ever replaces its own states and the real peer's exchange, which answers within
    /// a round trip, still gets through. False when no room can be made.
    fn make_room_for_half_open(&mut self, peer: IpAddr) -> bool {
        self.settle();
        let from_peer = self.sas.half_open_from(peer);
        if from_peer.len() >= self.env.settings.max_half_open_per_peer {
            let oldest = from_peer
                .iter()
                .filter_map(|k| self.sas.get_key_value(k))
                .filter(|(_, s)| s.awaits_first_answer())
                .min_by_key(|(_, s)| s.serial)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    self.sas.remove(&k);
                    self.counters.half_open_replaced += 1;
                }
                None => return false,
            }
        }
        self.sas.half_open_count() < self.env.settings.max_half_open
    }

    fn new_responder(&mut self, now: Instant, header: &Header, d: &Datagram) {
        let mode = match header.exchange {
            ExchangeType::IDENTITY_PROTECTION => Phase1Mode::Main,
            ExchangeType::AGGRESSIVE => Phase1Mode::Aggressive,
            _ => {
                self.counters.unknown_sa += 1;
                self.unknown_cookies(now, d);
                return;
            }
        };
        if header.responder_spi != [0; 8] || header.message_id != 0 {
            self.counters.unknown_sa += 1;
            self.unknown_cookies(now, d);
            return;
        }
        let Some(conn) = self.env.conn_for(Some(d.local.ip()), d.remote.ip()) else {
            self.counters.no_connection += 1;
            return;
        };
        if let Some(gw) = self.env.conns.get(conn).and_then(|c| c.gateway.as_ref()) {
            let (max, window) = (gw.max_failures, gw.failure_window);
            if self.env.leases.locked_out(d.remote.ip(), now, max, window) {
                self.counters.xauth_locked_out += 1;
                return;
            }
        }
        if !self.make_room_for_half_open(d.remote.ip()) {
            self.counters.half_open_dropped += 1;
            return;
        }
        let cookies = Cookies {
            initiator_spi: header.initiator_spi,
            responder_spi: self.fresh_cookie(),
        };
        let mut sa = IkeSa::new(conn, Role::Responder, mode, cookies, d.local, d.remote, now);
        self.responder_serial += 1;
        sa.serial = self.responder_serial;
        let Some(mut ctx) = self.env.ctx(now, conn) else {
            return;
        };
        let result = dispatch(&mut sa, &mut ctx, header, &d.data);
        count(&mut self.counters, result);
        if sa.state() != Phase1State::Dead {
            self.sas.insert(cookies.initiator_spi, sa);
        }
    }

    /// Completes rekeys, honours INITIAL-CONTACT and removes finished SAs.
    fn after_input(&mut self, now: Instant, key: [u8; 8]) {
        let Some(sa) = self.sas.get_mut(&key) else {
            return;
        };
        let (conn, established, dead, created) = (
            sa.conn,
            sa.is_established(),
            sa.state() == Phase1State::Dead,
            sa.created,
        );
        if established && sa.initial_contact_received {
            sa.initial_contact_received = false;
            // The peer restarted: SAs with it that were up before this one began are stale.
            // (Simultaneous negotiations started together and are left alone.)
            // A gateway's connection has many clients: only this client's own (same outer
            // address and port) are stale.
            let gateway = self
                .env
                .conns
                .get(conn)
                .is_some_and(|c| c.gateway.is_some());
            let remote = sa.remote;
            let stale: Vec<[u8; 8]> = self
                .sas
                .of_conn(conn)
                .filter(|(_, s)| !gateway || s.remote == remote)
                .filter(|(k, s)| **k != key && s.established_at.is_some_and(|t| t < created))
                .map(|(k, _)| *k)
                .collect();
            for k in stale {
                if let Some(mut old) = self.sas.remove(&k) {
                    self.release_leases(&old);
                    if let Some(mut ctx) = self.env.ctx(now, conn) {
                        old.drop_children(&mut ctx, "peer sent INITIAL-CONTACT");
                        ctx.event(Event::IkeSaDeleted {
                            conn,
                            cookies: old.cookies,
                            reason: "peer sent INITIAL-CONTACT".into(),
                        });
                    }
                }
            }
        }
        if established {
            if let Some(old_key) = self.replaces.remove(&key) {
                self.supersede(now, key, old_key);
            }
            self.adopt_older(now, key);
            self.act_on_invalid_spi(now, key);
        }
        if dead {
            self.reap(now, key);
        }
    }

    /// Moves the IPsec SAs of `old_key` to the established `new_key` and deletes the old
    /// ISAKMP SA `rekeyed_drain` later.
    fn supersede(&mut self, now: Instant, new_key: [u8; 8], old_key: [u8; 8]) {
        let Some(mut old) = self.sas.remove(&old_key) else {
            return;
        };
        let mut moved = std::mem::take(&mut old.children);
        // IPsec rekeys still in flight on the old ISAKMP SA die with it: the new
        // one starts them again, or those pairs would expire unreplaced.
        let lost: Vec<u32> = old
            .quick_modes
            .iter()
            .filter(|q| q.role == Role::Initiator && matches!(q.state, QmState::I1Sent { .. }))
            .filter_map(|q| q.replaces)
            .collect();
        for c in moved.iter_mut() {
            if c.retire_at.is_none() && lost.contains(&c.spi_in) {
                c.rekey_started = false;
            }
        }
        self.fail_half_installed(&old);
        if let Some(new) = self.sas.get_mut(&new_key) {
            new.children.append(&mut moved);
            new.replaced_other = true;
            // A remote-access client keeps its address: the moved pairs and their rekeys
            // use it as the local selector (issue 14).
            if new.assigned_local.is_empty() {
                new.assigned_local = old.assigned_local.clone();
            }
        }
        // The delete goes out `rekeyed_drain` later: strongSwan moves the IPsec
        // SAs to the new ISAKMP SA in a job after it is up ("detected reauth ...
        // adopting children"), and a delete of the old one processed before that
        // job takes them down with it (seen in the soak: 17 s without traffic
        // until the next IPsec rekey).
        self.retiring
            .push((later(now, self.env.settings.rekeyed_drain), old));
    }

    /// A peer that deletes the ISAKMP SA right after phase 1 (within `REFUSED_AT_ONCE`), before
    /// any IPsec SA and with no other negotiation of the connection, refused it: strongSwan does
    /// so when our identity in MM6 is not the one it expects. Reported as a failure, so that
    /// status and diagnose do not show a healthy connection waiting.
    fn note_refused_at_once(&mut self, now: Instant, sa: &IkeSa) {
        let Some(est) = sa.established_at else {
            return;
        };
        let after = now.saturating_duration_since(est);
        let alone = self.sas.of_conn(sa.conn).next().is_none();
        if sa.deleted_by_peer && sa.children.is_empty() && alone && after <= REFUSED_AT_ONCE {
            self.env.out.events.push_back(Event::IkeSaFailed {
                conn: Some(sa.conn),
                cookies: sa.cookies,
                peer: sa.remote,
                reason: Failure::DeletedByPeerAtOnce { after },
                renewal: sa.is_rekey,
            });
        }
    }

    /// Quick Modes still waiting for QM3 may have a half-installed inbound SA: reports them
    /// failed when their ISAKMP SA goes.
    fn fail_half_installed(&mut self, sa: &IkeSa) {
        for qm in sa
            .quick_modes
            .iter()
            .filter(|q| matches!(q.state, QmState::R2Sent { .. }))
        {
            self.env.out.events.push_back(Event::ChildSaFailed {
                conn: sa.conn,
                cookies: sa.cookies,
                message_id: qm.message_id,
                reason: Failure::Phase1Ended,
            });
        }
    }

    /// Removes a finished SA; its IPsec SAs move to another established SA of the same
    /// connection, or are deleted from the data plane.
    fn reap(&mut self, now: Instant, key: [u8; 8]) {
        let Some(mut sa) = self.sas.remove(&key) else {
            return;
        };
        self.fragments.forget(&key);
        self.note_removed_cookie(key);
        self.replaces.remove(&key);
        self.fail_half_installed(&sa);
        self.note_refused_at_once(now, &sa);
        if sa.children.is_empty() {
            self.release_leases(&sa);
            return;
        }
        // A gateway's pairs belong to one client: they move only to that client's new ISAKMP
        // SA (same outer address and port), and its lease with them.
        let gateway = self
            .env
            .conns
            .get(sa.conn)
            .is_some_and(|c| c.gateway.is_some());
        let other = self
            .sas
            .of_conn(sa.conn)
            .find(|(_, o)| o.is_established() && (!gateway || o.remote == sa.remote))
            .map(|(k, _)| *k);
        if let Some(other) = other.and_then(|k| self.sas.get_mut(&k)) {
            other.children.append(&mut sa.children);
            if gateway {
                if other.assigned_remote.is_empty() {
                    other.assigned_remote = sa.assigned_remote.clone();
                }
                other.xauth_user = other.xauth_user.clone().or(sa.xauth_user.clone());
                let to = other.cookies.initiator_spi;
                self.env
                    .leases
                    .transfer(sa.conn, &sa.cookies.initiator_spi, to);
            }
            return;
        }
        self.release_leases(&sa);
        let Some(mut ctx) = self.env.ctx(now, sa.conn) else {
            return;
        };
        sa.drop_children(&mut ctx, "ISAKMP SA gone");
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self.fragments.expire(now, &self.env.settings.fragments);
        self.counters.fragment_timeouts += expired as u64;
        self.counters.fragments_dropped += expired as u64;
        let (due, keep) = std::mem::take(&mut self.retiring)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.retiring = keep;
        for (_, old) in due {
            self.retire(now, old, "rekeyed");
        }
        self.settle();
        #[cfg(all(feature = "test-support", debug_assertions))]
        self.sas
            .assert_consistent(&self.env.conns, &self.env.settings);
        let keys = self.sas.due(now);
        let mut rekeys = Vec::new();
        for key in keys {
            self.rehome_before_expiry(now, key);
            let Some(sa) = self.sas.get_mut(&key) else {
                continue;
            };
            let Some(mut ctx) = self.env.ctx(now, sa.conn) else {
                continue;
            };
            if sa.on_timer(&mut ctx) {
                rekeys.push((sa.conn, key));
            }
            if sa.state() == Phase1State::Dead {
                self.reap(now, key);
            }
        }
        for (conn, old) in rekeys {
            if self.yields_to_simultaneous(old) {
                continue;
            }
            if let Some(new) = self.start(now, conn, Some(old)) {
                self.replaces.insert(new.initiator_spi, old);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        let d = self.env.out.transmits.pop_front()?;
        if d.data.get(16) == Some(&PayloadType::FRAGMENT.0) {
            self.counters.fragments_sent += 1;
        }
        Some(d)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.env.out.events.pop_front()?;
        self.note_removed_spi(&e);
        Some(e)
    }

    /// When `handle_timeout` wants to run next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.settle();
        self.sas
            .next_timer()
            .into_iter()
            .chain(self.retiring.iter().map(|(at, _)| *at))
            .chain(self.fragments.next_timeout(&self.env.settings.fragments))
            .min()
    }

    /// Brings the SA table's indexes (timers, half-open counts, probes) up to date.
    fn settle(&mut self) {
        self.sas.settle(&self.env.conns, &self.env.settings);
    }

    /// Deletes an ISAKMP SA already taken out of `sas` (replaced, or at shutdown), telling
    /// the peer.
    fn retire(&mut self, now: Instant, mut old: IkeSa, reason: &str) {
        self.release_leases(&old);
        if let Some(mut ctx) = self.env.ctx(now, old.conn) {
            old.delete(&mut ctx, reason);
        }
    }

    /// Frees the addresses a gateway leased to the client of `sa` (issue 14).
    fn release_leases(&mut self, sa: &IkeSa) {
        for address in self.env.leases.release(sa.conn, &sa.cookies.initiator_spi) {
            self.env.out.events.push_back(Event::LeaseReleased {
                conn: sa.conn,
                cookies: sa.cookies,
                address,
            });
        }
    }

    /// Leases of the gateway connection `conn` from its IPv4 or IPv6 pool: (address, holder),
    /// and the pool size.
    pub fn leases(
        &self,
        conn: ConnId,
        v6: bool,
    ) -> Option<(Vec<(std::net::IpAddr, crate::lease::Lease)>, u64)> {
        let pool = self.env.leases.pool(conn, v6)?;
        Some((
            pool.leases().map(|(a, l)| (*a, l.clone())).collect(),
            pool.size(),
        ))
    }

    /// Deletes everything, telling peers (for SIGTERM).
    pub fn shutdown(&mut self, now: Instant) {
        let sas: Vec<IkeSa> = self.sas.drain();
        let retiring = std::mem::take(&mut self.retiring)
            .into_iter()
            .map(|(_, sa)| sa);
        for sa in sas.into_iter().chain(retiring) {
            self.retire(now, sa, "shutdown");
        }
        self.replaces.clear();
    }

    /// The connection an ISAKMP SA belongs to, by initiator cookie (for per-connection
    /// counters of the messages it logs).
    pub fn conn_of(&self, initiator_spi: &[u8; 8]) -> Option<ConnId> {
        self.sas.get(initiator_spi).map(|sa| sa.conn)
    }

    /// The phase 1 encryption key (RFC 2409 Appendix B) of the ISAKMP SA with this initiator
    /// cookie, once derived. Only for the opt-in key export to Wireshark's decryption table.
    pub fn phase1_encryption_key(&self, initiator_spi: &[u8; 8]) -> Option<&[u8]> {
        self.sas
            .get(initiator_spi)
            .and_then(|sa| sa.phase.keyed())
            .map(|k| k.keys.enc_key.as_slice())
    }
}

fn dispatch(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    header: &Header,
    data: &[u8],
) -> Result<(), InputError> {
    match header.exchange {
        ExchangeType::IDENTITY_PROTECTION
            if sa.mode == Phase1Mode::Main && header.message_id == 0 =>
        {
            sa.main_mode_input(ctx, header, data)
        }
        ExchangeType::AGGRESSIVE if sa.mode == Phase1Mode::Aggressive && header.message_id == 0 => {
            sa.aggressive_mode_input(ctx, header, data)
        }
        ExchangeType::QUICK_MODE => sa.quick_mode_input(ctx, header, data),
        ExchangeType::INFORMATIONAL => sa.informational_input(ctx, header, data),
        ExchangeType::TRANSACTION if sa.is_established() => sa.transaction_input(ctx, header, data),
        _ => Err(InputError::Unexpected("exchange type not valid here")),
    }
}

/// The phase 1 message a peer repeats, from the state its first copy left us in.
fn duplicate_name(role: Role, state: Phase1State, message_id: u32) -> Option<&'static str> {
    if message_id != 0 {
        return None;
    }
    Some(match (role, state) {
        (Role::Responder, Phase1State::MmR2Sent) => "MM1",
        (Role::Responder, Phase1State::MmR4Sent) => "MM3",
        (Role::Responder, Phase1State::AmR2Sent) => "AM1",
        (Role::Initiator, Phase1State::MmI5Sent) => "MM4",
        _ => return None,
    })
}

fn count(c: &mut Counters, r: Result<(), InputError>) {
    match r {
        Ok(()) => {}
        Err(InputError::Wire(_)) | Err(InputError::Missing(_)) => c.malformed += 1,
        Err(InputError::BadHash(_)) => c.bad_hash += 1,
        Err(InputError::Duplicate) => c.duplicates += 1,
        Err(InputError::Unexpected(_)) => c.unexpected += 1,
    }
}
