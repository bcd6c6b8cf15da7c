//! The ISAKMP SA: where phase 1 is (with the data of that step, `phase`), its IPsec SAs and
//! Quick Modes, retransmission and duplicate replies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Fragmentation;
use crate::config::{ConnectionConfig, Phase1Mode, Settings};
use crate::context::{Ctx, Datagram};
use crate::event::{
    ConnId, Cookies, Direction, Event, Failure, MessageLog, NatStatus, PeerFeatures, Role,
};
use crate::exchange::quick_mode::state::{QmState, QuickMode};
use crate::fragment;
use crate::keyed::Keyed;
use crate::proposal::IkeProposal;
use crate::retransmit::{ReplyCache, Retransmit, Sent};
use crate::time::later;
use crate::wire::{
    self, payload_list, ExchangeType, Flags, Header, Notification, NotifyType, Payload,
    PayloadType, ProtocolId, IPSEC_DOI,
};

mod phase;

pub(crate) use phase::{Computing, OurKe, Phase1, Phase1State};

/// An IPsec SA pair installed through this ISAKMP SA.
#[derive(Debug, Clone)]
pub(crate) struct InstalledChild {
    pub message_id: u32,
    pub child_index: usize,
    pub spi_in: u32,
    pub spi_out: u32,
    pub established: Instant,
    pub lifetime: Duration,
    /// Its byte lifetime in KB, if one was negotiated.
    pub lifetime_kb: Option<u64>,
    pub initiated_by_us: bool,
    pub rekey_started: bool,
    /// Replaced by a rekey: deleted at this time, once packets under its SPI have drained.
    pub retire_at: Option<Instant>,
    /// The peer deleted it: only its inbound half is left, until `retire_at`.
    pub peer_deleted: bool,
    /// The peer's pair reached its lifetime: only its inbound half is left, for a drain time.
    pub expired: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct DpdState {
    pub seq: u32,
    pub outstanding: Option<(u32, Instant)>,
}

pub(crate) struct IkeSa {
    pub conn: ConnId,
    pub role: Role,
    pub mode: Phase1Mode,
    /// Where phase 1 is, with the data of that step (proposal, DH half, keys).
    pub phase: Phase1,
    pub cookies: Cookies,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub created: Instant,
    /// Responder: when phase 1 last moved on (created, then MM3 accepted; MM5 or AM3 ends it);
    /// the half-open timeout counts from here, so a peer still making progress on a lossy path
    /// is not forgotten while it retransmits. Repeats of MM1, which anyone can send, do not
    /// count.
    pub progressed: Instant,
    /// Creation order among responder SAs (0 for ours as initiator).
    pub serial: u64,
    pub established_at: Option<Instant>,
    pub lifetime: Duration,
    /// Started to replace an older ISAKMP SA: its IPsec SAs move over, no new Quick Modes.
    pub is_rekey: bool,
    pub features: PeerFeatures,
    /// NAT-D payload type agreed by vendor ID: 20 (RFC 3947) or 130 (drafts).
    pub nat_d_type: Option<PayloadType>,
    pub nat: NatStatus,
    pub retransmit: Option<Retransmit>,
    pub replies: ReplyCache,
    /// Exchange the peer sent its first message in, for the error report.
    pub peer_offer: String,
    pub quick_modes: Vec<QuickMode>,
    pub children: Vec<InstalledChild>,
    pub dpd: DpdState,
    pub last_heard: Instant,
    /// When the last NAT-keepalive went out (RFC 3948 §4).
    pub keepalive_sent: Option<Instant>,
    pub rekey_started: bool,
    pub initial_contact_received: bool,
    /// When to start the Quick Modes of an Aggressive Mode initiator.
    pub quick_modes_at: Option<Instant>,
    /// Quick Modes of ours waiting for the one in flight to finish: (pair, SPI it replaces).
    pub queued_quick_modes: Vec<(usize, Option<u32>)>,
    /// Informational requests of ours (DELETE, INVALID-SPI) held while a Quick Mode of ours
    /// awaits its answer: see `send_unsolicited`.
    pub held_informationals: Vec<Vec<Payload>>,
    /// Its IPsec SAs went to a renewal of it still under way: it ends without a DELETE.
    pub children_handed_over: bool,
    /// Last INVALID-HASH-INFORMATION sent (rate limit).
    pub hash_notify_at: Option<Instant>,
    /// A malformed phase 1 message was answered with its notify (once per SA).
    pub malformed_notified: bool,
    /// SPIs of authenticated INVALID-SPI notifies not yet acted on (RFC 2408 §3.14.1).
    pub invalid_spi_received: Vec<u32>,
    /// The endpoint has looked, once established, for older ISAKMP SAs it supersedes.
    pub adoption_done: bool,
    /// It replaced another ISAKMP SA of its connection (our rekey, or the peer's reauth).
    pub replaced_other: bool,
    /// Started while an ISAKMP SA with the peer was up: no INITIAL-CONTACT then (the peer's
    /// SAs with us are not stale; strongSwan's `has_contact` rule).
    pub has_contact: bool,
    /// The peer deleted it (a protected DELETE): when that came right after phase 1 and
    /// before any IPsec SA, the peer most likely refused it (`Endpoint::reap`).
    pub deleted_by_peer: bool,
    /// The fresh MM1 sent to the peer's UDP 4500 while MM5 goes unanswered there.
    pub probe: Option<Udp4500ProbeState>,
    /// Last time an unprocessable message was reported and answered (rate limit).
    pub refused_at: Option<Instant>,
    /// The last plain error notify before phase 1 completed: recorded, never acted on.
    pub plain_notify: Option<NotifyType>,
    /// The CA names of the peer's CR payloads in phase 1 (RFC 2408 §3.10): they choose which
    /// of our certificates we send.
    pub peer_cert_requests: Vec<Vec<u8>>,
    /// XAuth / Mode Config in progress or done (remote access, draft-dukes-ike-mode-cfg).
    pub transaction: Option<crate::exchange::transaction::state::Transaction>,
    /// Our addresses assigned by Mode Config (at most one per family, IPv4 first): the local
    /// selector of our Quick Modes of that family.
    pub assigned_local: Vec<crate::config::TrafficSelector>,
    /// Client: the gateway asked for PFS by Mode Config (Cisco UNITY_PFS): our Quick Modes
    /// offer PFS with this group (phase 1's, as Cisco clients do) where ours name none.
    pub unity_pfs: Option<crate::algorithm::DhGroup>,
    /// Gateway: the addresses leased to this client (IPv4 and/or IPv6); its Quick Modes must
    /// use the one of their family as selector (issue 14). Empty until Mode Config is done:
    /// no Quick Mode before.
    pub assigned_remote: Vec<std::net::IpAddr>,
    /// Gateway: the user XAuth authenticated on this ISAKMP SA.
    pub xauth_user: Option<String>,
}

/// A probe MM1 (own initiator cookie) whose answer proves UDP 4500 passes (RFC 3947 §4).
#[derive(Debug, Clone)]
pub(crate) struct Udp4500ProbeState {
    pub cookie: [u8; 8],
    pub datagram: Datagram,
    pub answered: bool,
}

impl IkeSa {
    pub fn new(
        conn: ConnId,
        role: Role,
        mode: Phase1Mode,
        cookies: Cookies,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
    ) -> Self {
        IkeSa {
            conn,
            role,
            mode,
            phase: Phase1::Start,
            cookies,
            local,
            remote,
            created: now,
            progressed: now,
            serial: 0,
            established_at: None,
            lifetime: Duration::ZERO,
            is_rekey: false,
            features: PeerFeatures::default(),
            nat_d_type: None,
            nat: NatStatus::default(),
            retransmit: None,
            replies: ReplyCache::default(),
            peer_offer: String::new(),
            quick_modes: Vec::new(),
            children: Vec::new(),
            dpd: DpdState::default(),
            last_heard: now,
            keepalive_sent: None,
            rekey_started: false,
            initial_contact_received: false,
            quick_modes_at: None,
            queued_quick_modes: Vec::new(),
            held_informationals: Vec::new(),
            children_handed_over: false,
            deleted_by_peer: false,
            hash_notify_at: None,
            malformed_notified: false,
            invalid_spi_received: Vec::new(),
            adoption_done: false,
            replaced_other: false,
            has_contact: false,
            probe: None,
            refused_at: None,
            plain_notify: None,
            peer_cert_requests: Vec::new(),
            transaction: None,
            assigned_local: Vec::new(),
            unity_pfs: None,
            assigned_remote: Vec::new(),
            xauth_user: None,
        }
    }

    /// A message from the authenticated peer that we cannot act on: counts as a sign of life,
    /// is reported and answered with `notify` (protected, RFC 2408 §5), at most once a second.
    #[allow(clippy::too_many_arguments)]
    pub fn refuse(
        &mut self,
        ctx: &mut Ctx<'_>,
        message: &'static str,
        message_id: u32,
        reason: String,
        notify: Option<(ProtocolId, NotifyType)>,
        remote_access: bool,
    ) {
        self.last_heard = ctx.now;
        self.dpd.outstanding = None;
        if self
            .refused_at
            .is_some_and(|t| ctx.now < crate::time::later(t, Duration::from_secs(1)))
        {
            return;
        }
        self.refused_at = Some(ctx.now);
        if let Some((protocol, n)) = notify {
            let spi = if protocol == ProtocolId::ISAKMP {
                [self.cookies.initiator_spi, self.cookies.responder_spi].concat()
            } else {
                Vec::new()
            };
            let payload = Payload::Notification(Notification {
                doi: IPSEC_DOI,
                protocol,
                notify_type: n,
                spi,
                data: Vec::new(),
            });
            if let Some(keys) = self.keyed() {
                let _ = self.send_informational(ctx, &keys, vec![payload]);
            }
        }
        ctx.event(Event::Unprocessable {
            conn: self.conn,
            cookies: self.cookies,
            message_id,
            message,
            reason,
            notify: notify.map(|n| n.1),
            remote_access,
        });
    }

    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase1::Established(_))
    }

    /// A responder that sent MM2/AM2 and has heard nothing since.
    pub fn awaits_first_answer(&self) -> bool {
        self.role == Role::Responder
            && matches!(self.state(), Phase1State::MmR2Sent | Phase1State::AmR2Sent)
            && self.phase.computing().is_none()
    }

    /// When to start a new phase 1 in place of this one, if we do. As initiator:
    /// `phase1_rekey_at`. As responder (RFC 2409 leaves renewal to either side, and strongSwan
    /// re-authenticates in either role): only while this SA still holds IPsec SAs and the peer
    /// can be reached (not a gateway's client, a configured peer address), and late, `lead`
    /// before the end, so a peer renewing on its own schedule usually moves the pairs first.
    /// Without it, a peer that proposed a longer lifetime than ours lost its tunnel when ours
    /// ended: deleting the ISAKMP SA deletes its IPsec SAs.
    pub fn phase1_renew_at(&self, cfg: &ConnectionConfig, settings: &Settings) -> Option<Instant> {
        match self.role {
            Role::Initiator => self.phase1_rekey_at(settings),
            Role::Responder => {
                if cfg.gateway.is_some()
                    || cfg.remote_access.is_some()
                    || cfg.remote_addr.is_unspecified()
                    || self.children.is_empty()
                {
                    return None;
                }
                let lead = (settings.rekey_lead(self.lifetime) / 2).min(self.lifetime / 16);
                later(self.established_at?, self.lifetime).checked_sub(lead)
            }
        }
    }

    /// As initiator, when we may start replacing this ISAKMP SA: `rekey_after` into its
    /// lifetime, but not while a Quick Mode is in flight nor within `QM_QUIET` of the last
    /// IPsec SA set up. A
    /// peer that moves the IPsec SAs over to the new ISAKMP SA when it is established
    /// (strongSwan's reauth adoption) skips one it is still installing, and then deletes that
    /// one with the old ISAKMP SA (seen in the soak test: 34 s without traffic). The deferral
    /// is bounded by half the rekey margin. None while a Quick Mode is in flight. (The old
    /// ISAKMP SA's delete also waits, see `Endpoint::retiring`: the adoption runs after the
    /// new SA is up.)
    pub fn phase1_rekey_at(&self, settings: &Settings) -> Option<Instant> {
        const QM_QUIET: Duration = Duration::from_secs(2);
        let due = later(self.established_at?, settings.rekey_after(self.lifetime));
        let latest = later(due, settings.rekey_lead(self.lifetime) / 2);
        let busy = self.quick_modes.iter().any(|q| {
            matches!(
                q.state,
                QmState::I1Sent { .. } | QmState::R2Sent { .. } | QmState::AwaitConnected { .. }
            )
        });
        let quiet = self
            .children
            .iter()
            .map(|c| later(c.established, QM_QUIET))
            .max();
        match (busy, quiet) {
            (true, _) => None,
            (false, Some(q)) => Some(due.max(q).min(latest)),
            (false, None) => Some(due),
        }
    }

    /// A Quick Mode of ours is waiting for its answer (and retransmitting until it comes).
    pub(crate) fn quick_mode_awaits_answer(&self) -> bool {
        self.quick_modes
            .iter()
            .any(|q| q.retransmit.is_some() || q.echo.is_some())
    }

    /// A Quick Mode for configured pair `index` is under way or waiting its turn.
    pub(crate) fn quick_mode_pending(&self, index: usize) -> bool {
        self.quick_modes
            .iter()
            .any(|q| q.child_index == index && !q.state.is_done())
            || self.queued_quick_modes.iter().any(|(i, _)| *i == index)
    }

    pub fn is_half_open(&self) -> bool {
        self.role == Role::Responder && !matches!(self.phase, Phase1::Established(_) | Phase1::Dead)
    }

    /// Phase 1 progress by name.
    pub fn state(&self) -> Phase1State {
        self.phase.state(self.role, self.mode)
    }

    /// The ISAKMP SA proposal, once chosen.
    pub fn proposal(&self) -> Option<IkeProposal> {
        self.phase.proposal()
    }

    /// The keys, once derived (after MM3/MM4, AM1/AM2).
    pub fn keyed(&self) -> Option<Arc<Keyed>> {
        self.phase.keyed().cloned()
    }

    /// The keys of an established ISAKMP SA: what Quick Mode, Informational and Transaction
    /// exchanges are built with.
    pub fn established_keys(&self) -> Option<Arc<Keyed>> {
        match &self.phase {
            Phase1::Established(k) => Some(Arc::clone(k)),
            _ => None,
        }
    }

    /// Advances the phase 1 IV chain (RFC 2409 App. B) after an encrypted phase 1 message;
    /// `keys` is the caller's handle, kept the same as the SA's.
    pub fn set_p1_iv(&mut self, keys: &mut Arc<Keyed>, iv: Vec<u8>) {
        Arc::make_mut(keys).p1_iv = iv;
        if let Some(own) = self.phase.keyed_mut() {
            *own = Arc::clone(keys);
        }
    }

    pub fn header(&self, exchange: ExchangeType, flags: Flags, message_id: u32) -> Header {
        Header {
            initiator_spi: self.cookies.initiator_spi,
            responder_spi: self.cookies.responder_spi,
            next_payload: PayloadType::NONE,
            version: 0x10,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    /// Logs and queues a message; `retransmit` keeps it for resending until answered. A
    /// phase 1 message larger than the connection's `fragment_size` goes as fragments when
    /// the peer announced them (or `fragmentation = "force"`).
    pub fn send(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &'static str,
        payloads: &[Payload],
        data: Vec<u8>,
        message_id: u32,
        retransmit: bool,
    ) -> Sent {
        let mut sent = self.datagrams(ctx, data, message_id);
        sent.at = Some(ctx.now);
        let fragments = if sent.datagrams.len() > 1 {
            format!(" (in {} fragments)", sent.datagrams.len())
        } else {
            String::new()
        };
        ctx.event(Event::Message(MessageLog {
            direction: Direction::Sent,
            name,
            cookies: self.cookies,
            message_id,
            payloads: format!("{}{fragments}", payload_list(payloads)),
            peer: self.remote,
            local: self.local,
            retransmission: false,
        }));
        ctx.out.transmits.extend(sent.datagrams.iter().cloned());
        if retransmit {
            self.retransmit = Some(Retransmit::new(
                ctx,
                sent.clone(),
                name,
                payloads,
                message_id,
            ));
        }
        sent
    }

    /// The datagrams of one message: whole, or its fragments (phase 1 only: message ID 0).
    fn datagrams(&self, ctx: &Ctx<'_>, data: Vec<u8>, message_id: u32) -> Sent {
        let datagram = |data| Datagram {
            local: self.local,
            remote: self.remote,
            data,
        };
        let may = match ctx.cfg.fragmentation {
            Fragmentation::No => false,
            Fragmentation::Yes => self.features.fragmentation,
            Fragmentation::Force => true,
        };
        let phase1 = message_id == 0
            && matches!(
                data.get(18).copied(),
                Some(x) if x == ExchangeType::IDENTITY_PROTECTION.0 || x == ExchangeType::AGGRESSIVE.0
            );
        if !(may && phase1) {
            return Sent {
                datagrams: vec![datagram(data)],
                fallback: None,
                at: None,
            };
        }
        let budget = fragment::isakmp_budget(ctx.cfg.fragment_size, &self.local, &self.remote);
        if let Some(frags) = fragment::split(&data, budget) {
            return Sent {
                datagrams: frags.into_iter().map(datagram).collect(),
                fallback: None,
                at: None,
            };
        }
        // Fits `fragment_size`, but perhaps not the path: resends go in fragments every path
        // carries whole.
        let minimum = fragment::isakmp_budget(
            fragment::minimum_datagram(&self.remote),
            &self.local,
            &self.remote,
        );
        let fallback =
            fragment::split(&data, minimum).map(|frags| frags.into_iter().map(datagram).collect());
        Sent {
            datagrams: vec![datagram(data)],
            fallback,
            at: None,
        }
    }

    pub fn log_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &'static str,
        header: &Header,
        payloads: &[Payload],
    ) {
        self.log_received_noted(ctx, name, header, payloads, "");
    }

    /// `log_received`, with `note` after the payload list (what became of the message).
    pub fn log_received_noted(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &'static str,
        header: &Header,
        payloads: &[Payload],
        note: &str,
    ) {
        for p in payloads {
            if let Payload::CertificateRequest {
                encoding: crate::cert::X509_SIGNATURE,
                authority,
            } = p
            {
                if !authority.is_empty() && self.peer_cert_requests.len() < 16 {
                    self.peer_cert_requests.push(authority.clone());
                }
            }
        }
        ctx.event(Event::Message(MessageLog {
            direction: Direction::Received,
            name,
            cookies: Cookies::from(header),
            message_id: header.message_id,
            payloads: if note.is_empty() {
                payload_list(payloads)
            } else {
                format!("{} {note}", payload_list(payloads))
            },
            peer: self.remote,
            local: self.local,
            retransmission: false,
        }));
    }

    /// Plaintext message (phase 1 before keys, unprotected notifies).
    pub fn plain_message(
        &self,
        exchange: ExchangeType,
        message_id: u32,
        payloads: &[Payload],
    ) -> Vec<u8> {
        wire::Message {
            header: self.header(exchange, Flags(0), message_id),
            payloads: payloads.to_vec(),
        }
        .emit()
    }

    /// Sends an unprotected error notify (RFC 2408 §5: before the ISAKMP SA is authenticated).
    pub fn send_plain_notify(&mut self, ctx: &mut Ctx<'_>, notify: NotifyType) {
        let payloads = [Payload::Notification(Notification {
            doi: IPSEC_DOI,
            protocol: ProtocolId::ISAKMP,
            notify_type: notify,
            spi: [self.cookies.initiator_spi, self.cookies.responder_spi].concat(),
            data: Vec::new(),
        })];
        let id = ctx.message_id();
        let data = self.plain_message(ExchangeType::INFORMATIONAL, id, &payloads);
        self.send(ctx, "INFO", &payloads, data, id, false);
    }

    /// Ends the negotiation with `reason`, optionally telling the peer.
    pub fn fail(&mut self, ctx: &mut Ctx<'_>, reason: Failure, notify: Option<NotifyType>) {
        if let Some(n) = notify {
            self.send_plain_notify(ctx, n);
        }
        ctx.event(Event::IkeSaFailed {
            conn: Some(self.conn),
            cookies: self.cookies,
            peer: self.remote,
            reason,
            renewal: self.is_rekey,
        });
        self.phase = Phase1::Dead;
        self.retransmit = None;
    }

    /// Earliest time this SA wants `on_timer`.
    pub fn next_timer(&self, ctx_cfg: &ConnectionConfig, settings: &Settings) -> Option<Instant> {
        let mut t: Option<Instant> = None;
        let mut at = |x: Instant| t = Some(t.map_or(x, |y| y.min(x)));
        if let Some(r) = &self.retransmit {
            at(r.next_at);
        }
        if let Some(x) = self.quick_modes_at {
            at(x);
        }
        if let Some(x) = self.transaction_deadline() {
            at(x);
        }
        for qm in &self.quick_modes {
            if let Some(e) = &qm.echo {
                at(e.next_at);
            }
            if let Some(r) = &qm.retransmit {
                at(r.next_at);
            }
            if let Some(x) = qm.expires {
                at(x);
            }
        }
        if self.is_half_open() {
            at(later(self.progressed, settings.half_open_timeout));
        }
        if let Some(est) = self.established_at {
            at(later(est, self.lifetime));
            if !self.rekey_started {
                if let Some(t) = self.phase1_renew_at(ctx_cfg, settings) {
                    at(t);
                }
            }
            if let Some(t) = self.keepalive_due(ctx_cfg) {
                at(t);
            }
            if let Some(dpd) = ctx_cfg.dpd {
                if self.features.dpd {
                    let probing = self.quick_mode_awaits_answer();
                    match self.dpd.outstanding {
                        Some((_, sent)) => {
                            if !probing {
                                at(later(sent, settings.retransmit_timeout));
                            }
                            at(later(self.last_heard, dpd.timeout));
                        }
                        None if !probing => at(later(self.last_heard, dpd.interval)),
                        None => {}
                    }
                }
            }
            for c in &self.children {
                at(later(c.established, c.lifetime));
                if let Some(t) = c.retire_at {
                    at(t);
                }
                if c.initiated_by_us && !c.rekey_started {
                    at(later(c.established, settings.rekey_after(c.lifetime)));
                }
            }
        }
        t
    }
}

impl IkeSa {
    /// Runs the settings' hook on `payloads` of message `name`. In phase 1 a HASH_I/HASH_R
    /// that travels with a rewritten ID payload is computed again over the new ID (RFC 2409
    /// §5), as a peer that chose that ID would; QM and INFO hashes are computed after this.
    // The hook may add and remove payloads, hence the Vec (unused without the feature).
    #[cfg_attr(
        not(feature = "test-support"),
        allow(unused_variables, clippy::ptr_arg)
    )]
    pub(crate) fn tamper(
        &self,
        ctx: &Ctx<'_>,
        name: &'static str,
        message_id: u32,
        payloads: &mut Vec<Payload>,
    ) {
        #[cfg(feature = "test-support")]
        if let Some(t) = &ctx.settings.tamper {
            let before = payloads.clone();
            let sealing = crate::tamper::Sealing {
                name,
                role: self.role,
                local: self.local,
                remote: self.remote,
                message_id,
            };
            (t.0)(&sealing, payloads);
            if message_id != 0 || *payloads == before {
                return;
            }
            let id = payloads.iter().find_map(|p| match p {
                Payload::Identification(id) => Some(crate::exchange::payloads::id_body(id)),
                _ => None,
            });
            let hash = id
                .zip(self.keyed())
                .map(|(id, k)| k.auth_hash(&self.cookies, self.role, &id));
            let old_hash = before.iter().find_map(|p| match p {
                Payload::Hash(h) => Some(h),
                _ => None,
            });
            if let Some(hash) = hash {
                for p in payloads.iter_mut() {
                    if let Payload::Hash(h) = p {
                        if Some(&*h) == old_hash {
                            *h = hash.to_vec();
                        }
                    }
                }
            }
        }
    }
}
