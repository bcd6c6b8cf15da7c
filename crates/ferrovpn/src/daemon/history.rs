//! What happened to each connection lately, for `ferrovpn history` and `ferrovpn diagnose`: a
//! bounded ring of IKE events (messages by their operator names MM1…QM3, failures, notifies)
//! and a ring of per-second ESP packet counter samples. Memory stays bounded however long the
//! daemon runs or however hard a peer retries.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrovpn_esp::Sad;
use ferrovpn_ike::{Cookies, Direction, Endpoint, EspEncapsulation, Event, Role};

use super::conn::{stats_of, ConnState};
use crate::config::{Mode, NatTraversal, Start, Tunnel};
use crate::snapshot::{ConnSnapshot, IkeSaSnapshot, IpsecSaSnapshot, Snapshot};
pub use crate::snapshot::{FailureRecord, Record, Sample, What};

/// IKE events kept per connection.
pub const EVENTS_PER_CONNECTION: usize = 256;
/// Counter samples kept per connection, one a second.
pub const SAMPLES_PER_CONNECTION: usize = 120;

/// Per-connection rings, plus one for events no connection claims (e.g. MM1 from an unknown
/// peer).
pub struct History {
    started: Instant,
    rings: Vec<VecDeque<Entry>>,
    unclaimed: VecDeque<Entry>,
    samples: Vec<VecDeque<Sample>>,
    /// Per connection: packets counted on SAs already removed, plus the last reading of the
    /// live ones, so that samples only grow across rekeys.
    counted: Vec<Counted>,
    last_sample: Option<Instant>,
    /// (local, remote) outer address of each connection, to assign messages.
    peers: Vec<(IpAddr, IpAddr)>,
    /// Connections by remote address, in id order: the lookup of every logged message.
    by_remote: HashMap<IpAddr, Vec<usize>>,
    /// Initiator cookie → connection, learnt from events that name both.
    learnt: Learnt,
    /// Per connection: first MM1/AM1 received (each a new negotiation the peer's address
    /// asked for) and responder ISAKMP SAs that authenticated; the difference is noise.
    p1_requests: Vec<u64>,
    p1_authenticated: Vec<u64>,
}

/// One ring slot: a [`Record`] as it is read, with the parts every message has kept
/// unformatted (most records are messages; a gateway setting up thousands of tunnels would
/// otherwise format cookies and addresses for each, to be read rarely if ever).
#[derive(Clone)]
struct Entry {
    t_ms: u64,
    unix_ms: u64,
    cookies: Cookies,
    message_id: u32,
    what: Stored,
}

#[derive(Clone)]
enum Stored {
    Message {
        name: &'static str,
        sent: bool,
        payloads: String,
        retransmission: bool,
        udp4500: bool,
        peer: SocketAddr,
    },
    Other(What),
}

impl Entry {
    fn record(&self) -> Record {
        let what = match &self.what {
            Stored::Message {
                name,
                sent,
                payloads,
                retransmission,
                udp4500,
                peer,
            } => What::Message {
                name: (*name).to_string(),
                sent: *sent,
                payloads: payloads.clone(),
                retransmission: *retransmission,
                udp4500: *udp4500,
                peer: peer.to_string(),
            },
            Stored::Other(w) => w.clone(),
        };
        Record {
            t_ms: self.t_ms,
            unix_ms: self.unix_ms,
            cookies: if self.cookies == Cookies::default() {
                String::new()
            } else {
                self.cookies.to_string()
            },
            message_id: self.message_id,
            what,
        }
    }
}

/// The connection of the latest ISAKMP SA each initiator cookie named, for messages no
/// address assigns; bounded, the oldest learnt forgotten first.
#[derive(Default)]
struct Learnt {
    by_cookie: HashMap<[u8; 8], (usize, u64)>,
    /// Learning order: (cookie, sequence number); an entry is forgotten only if it was not
    /// learnt again since.
    order: VecDeque<([u8; 8], u64)>,
    next: u64,
}

impl Learnt {
    const CAPACITY: usize = 4 * EVENTS_PER_CONNECTION;

    fn learn(&mut self, cookies: Cookies, conn: usize) {
        let k = cookies.initiator_spi;
        if self.by_cookie.get(&k).is_some_and(|&(c, _)| c == conn) {
            return;
        }
        self.next += 1;
        self.by_cookie.insert(k, (conn, self.next));
        self.order.push_back((k, self.next));
        while self.order.len() > Self::CAPACITY {
            if let Some((old, seq)) = self.order.pop_front() {
                if self.by_cookie.get(&old).is_some_and(|&(_, s)| s == seq) {
                    self.by_cookie.remove(&old);
                }
            }
        }
    }

    fn conn(&self, cookies: &Cookies) -> Option<usize> {
        self.by_cookie.get(&cookies.initiator_spi).map(|&(c, _)| c)
    }
}

#[derive(Default, Clone)]
struct Counted {
    gone_encaps: u64,
    gone_decaps: u64,
    live: Vec<(u32, u64, u64)>,
}

fn push<T>(ring: &mut VecDeque<T>, cap: usize, x: T) {
    if ring.len() >= cap {
        ring.pop_front();
    }
    ring.push_back(x);
}

impl History {
    pub fn new(started: Instant, peers: Vec<(IpAddr, IpAddr)>) -> Self {
        let n = peers.len();
        let by_remote = index_by_remote(&peers);
        History {
            started,
            rings: vec![VecDeque::new(); n],
            unclaimed: VecDeque::new(),
            samples: vec![VecDeque::new(); n],
            counted: vec![Counted::default(); n],
            last_sample: None,
            peers,
            by_remote,
            learnt: Learnt::default(),
            p1_requests: vec![0; n],
            p1_authenticated: vec![0; n],
        }
    }

    /// A connection a reload added (the next id).
    pub fn add_connection(&mut self, peer: (IpAddr, IpAddr)) {
        self.rings.push(VecDeque::new());
        self.samples.push(VecDeque::new());
        self.counted.push(Counted::default());
        self.by_remote
            .entry(peer.1)
            .or_default()
            .push(self.peers.len());
        self.peers.push(peer);
        self.p1_requests.push(0);
        self.p1_authenticated.push(0);
    }

    /// New outer addresses of a connection a reload changed; None for a removed one, whose
    /// messages are no longer assigned to it.
    pub fn set_peer(&mut self, conn: usize, peer: Option<(IpAddr, IpAddr)>) {
        let unspecified = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        if let Some(p) = self.peers.get_mut(conn) {
            *p = peer.unwrap_or((unspecified, unspecified));
        }
        self.by_remote = index_by_remote(&self.peers);
    }

    /// Phase 1 requests (MM1/AM1) received for `conn` that never authenticated.
    pub fn unauthenticated_requests(&self, conn: usize) -> u64 {
        let get = |v: &Vec<u64>| v.get(conn).copied().unwrap_or(0);
        get(&self.p1_requests).saturating_sub(get(&self.p1_authenticated))
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    pub fn events(&self, conn: usize) -> impl Iterator<Item = Record> + '_ {
        self.rings
            .get(conn)
            .into_iter()
            .flatten()
            .map(Entry::record)
    }

    pub fn unclaimed(&self) -> impl Iterator<Item = Record> + '_ {
        self.unclaimed.iter().map(Entry::record)
    }

    pub fn samples(&self, conn: usize) -> impl Iterator<Item = &Sample> {
        self.samples.get(conn).into_iter().flatten()
    }

    pub fn now_ms(&self, now: Instant) -> u64 {
        self.ms(now)
    }

    fn conn_of(
        &self,
        cookies: &Cookies,
        local: Option<SocketAddr>,
        peer: SocketAddr,
    ) -> Option<usize> {
        let by_addr = self.by_remote.get(&peer.ip()).and_then(|ids| {
            ids.iter().copied().find(|&i| {
                self.peers
                    .get(i)
                    .is_some_and(|&(l, r)| r == peer.ip() && local.is_none_or(|a| a.ip() == l))
            })
        });
        by_addr.or_else(|| self.learnt.conn(cookies))
    }

    /// Records one event of the IKE endpoint.
    pub fn record(&mut self, now: Instant, e: &Event) {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let t_ms = self.ms(now);
        let (conn, cookies, message_id, what) = match e {
            Event::Message(m) => {
                let conn = self.conn_of(&m.cookies, Some(m.local), m.peer);
                let sent = m.direction == Direction::Sent;
                // A new negotiation the peer's address asked for (see `p1_requests`).
                if !sent
                    && !m.retransmission
                    && m.message_id == 0
                    && matches!(m.name, "MM1" | "AM1")
                {
                    if let Some(n) = conn.and_then(|c| self.p1_requests.get_mut(c)) {
                        *n += 1;
                    }
                }
                let what = Stored::Message {
                    name: m.name,
                    sent,
                    payloads: m.payloads.clone(),
                    retransmission: m.retransmission,
                    udp4500: m.local.port() == 4500,
                    peer: m.peer,
                };
                self.push(conn, t_ms, unix_ms, m.cookies, m.message_id, what);
                return;
            }
            Event::IkeSaEstablished {
                conn,
                cookies,
                role,
                proposal,
                nat,
                ..
            } => {
                self.learnt.learn(*cookies, *conn);
                if *role == Role::Responder {
                    if let Some(n) = self.p1_authenticated.get_mut(*conn) {
                        *n += 1;
                    }
                }
                (
                    Some(*conn),
                    *cookies,
                    0,
                    What::IkeEstablished {
                        initiator: *role == Role::Initiator,
                        nat_floated: nat.floated,
                        proposal: proposal.to_string(),
                    },
                )
            }
            Event::IkeSaFailed {
                conn,
                cookies,
                peer,
                reason,
                ..
            } => (
                conn.or_else(|| self.conn_of(cookies, None, *peer)),
                *cookies,
                0,
                What::IkeFailed {
                    failure: reason.into(),
                },
            ),
            Event::IkeSaDeleted {
                conn,
                cookies,
                reason,
            } => (
                Some(*conn),
                *cookies,
                0,
                What::IkeDeleted {
                    reason: reason.clone(),
                },
            ),
            Event::ChildSaInboundReady(_)
            | Event::Recovery { .. }
            | Event::ChildSaDraining { .. }
            | Event::LifetimeCapped { .. } => return,
            Event::ChildSaEstablished(c) => {
                self.learnt.learn(c.ike, c.conn);
                (
                    Some(c.conn),
                    c.ike,
                    c.message_id,
                    What::ChildEstablished {
                        spi_in: c.inbound.spi,
                        spi_out: c.outbound.spi,
                        selectors: format!("{} <=> {}", c.local_ts, c.remote_ts),
                        udp_encapsulated: matches!(c.encapsulation, EspEncapsulation::Udp { .. }),
                    },
                )
            }
            Event::ChildSaFailed {
                conn,
                cookies,
                message_id,
                reason,
            } => (
                Some(*conn),
                *cookies,
                *message_id,
                What::ChildFailed {
                    failure: reason.into(),
                },
            ),
            Event::ChildSaDeleted {
                conn,
                inbound_spi,
                outbound_spi,
                reason,
            } => (
                Some(*conn),
                Cookies::default(),
                0,
                What::ChildDeleted {
                    spi_in: *inbound_spi,
                    spi_out: *outbound_spi,
                    reason: reason.clone(),
                },
            ),
            Event::InitialContact { conn, cookies } => {
                (Some(*conn), *cookies, 0, What::InitialContact)
            }
            // Logged by the event loop; no history record of its own yet.
            Event::RemoteAccessConfigured { .. }
            | Event::RemoteAccessClientUp { .. }
            | Event::LeaseReleased { .. } => return,
            Event::PeerDead { conn, cookies } => (Some(*conn), *cookies, 0, What::PeerDead),
            Event::Unprocessable {
                conn,
                cookies,
                message_id,
                message,
                reason,
                notify,
                remote_access,
            } => (
                Some(*conn),
                *cookies,
                *message_id,
                What::Unprocessable {
                    message: (*message).to_string(),
                    reason: reason.clone(),
                    notify: notify.map(|n| n.name().to_string()),
                    remote_access: *remote_access,
                },
            ),
            Event::CertificateRequestUnmatched {
                conn,
                cookies,
                requested,
            } => (
                Some(*conn),
                *cookies,
                0,
                What::CertRequestUnmatched {
                    requested: requested.clone(),
                },
            ),
            Event::NotifyReceived {
                conn,
                cookies,
                notify,
                authenticated,
            } => (
                conn.or_else(|| self.learnt.conn(cookies)),
                *cookies,
                0,
                What::Notify {
                    notify: notify.name().to_string(),
                    authenticated: *authenticated,
                },
            ),
        };
        let what = Stored::Other(what);
        self.push(conn, t_ms, unix_ms, cookies, message_id, what);
    }

    fn push(
        &mut self,
        conn: Option<usize>,
        t_ms: u64,
        unix_ms: u64,
        cookies: Cookies,
        message_id: u32,
        what: Stored,
    ) {
        let e = Entry {
            t_ms,
            unix_ms,
            cookies,
            message_id,
            what,
        };
        match conn.and_then(|c| self.rings.get_mut(c)) {
            Some(ring) => push(ring, EVENTS_PER_CONNECTION, e),
            None => push(&mut self.unclaimed, EVENTS_PER_CONNECTION, e),
        }
    }

    /// Takes one counter sample per connection when a second has passed since the last one.
    /// `live(conn)` lists each installed SA pair as (inbound SPI, packets in, packets out).
    pub fn sample(&mut self, now: Instant, live: impl Fn(usize) -> Vec<(u32, u64, u64)>) {
        if self
            .last_sample
            .is_some_and(|t| now.saturating_duration_since(t).as_millis() < 1000)
        {
            return;
        }
        self.last_sample = Some(now);
        let t_ms = self.ms(now);
        for (i, c) in self.counted.iter_mut().enumerate() {
            let mut cur = live(i);
            // A half taken out of the data plane early (the peer deleted the pair: its
            // outbound SA goes, its inbound one drains) reads 0 from then on; its last count
            // stands, or the totals would go backwards and `diagnose` see no ESP sent.
            for x in &mut cur {
                if let Some(&(_, inp, out)) = c.live.iter().find(|p| p.0 == x.0) {
                    x.1 = x.1.max(inp);
                    x.2 = x.2.max(out);
                }
            }
            for &(spi, inp, out) in &c.live {
                if !cur.iter().any(|x| x.0 == spi) {
                    c.gone_decaps += inp;
                    c.gone_encaps += out;
                }
            }
            c.live = cur;
            let s = Sample {
                t_ms,
                encaps: c.gone_encaps + c.live.iter().map(|x| x.2).sum::<u64>(),
                decaps: c.gone_decaps + c.live.iter().map(|x| x.1).sum::<u64>(),
            };
            if let Some(ring) = self.samples.get_mut(i) {
                push(ring, SAMPLES_PER_CONNECTION, s);
            }
        }
    }
}

/// What `diagnose` and `history` read: configuration, live SAs and counters, and the rings.
pub(super) fn snapshot(
    history: &History,
    endpoint: &Endpoint,
    conns: &[ConnState],
    sad: &Sad,
    half_open: &super::drop_log::HalfOpenDrops,
    give_up: Duration,
    now: Instant,
) -> Snapshot {
    let ike_sas = endpoint.ike_sas(now);
    let join = |v: Vec<String>| v.join(", ");
    let connections = conns
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.removed)
        .map(|(i, c)| ConnSnapshot {
            name: c.cfg.name.clone(),
            local_addr: c.cfg.local_addr.to_string(),
            remote_addr: c.cfg.remote_addr.to_string(),
            initiator: c.cfg.start == Start::Initiate,
            held: c.held,
            aggressive: c.cfg.mode == Mode::Aggressive,
            nat_force: c.cfg.nat_traversal == NatTraversal::Force,
            local_id: c.cfg.local_id.to_string(),
            remote_id: c.cfg.remote_id.to_string(),
            ike_proposals: join(c.cfg.ike.iter().map(|p| p.to_string()).collect()),
            esp_proposals: join(c.cfg.esp.iter().map(|p| p.to_string()).collect()),
            selectors: match &c.cfg.tunnel {
                Tunnel::RouteBased(r) => r
                    .selectors
                    .iter()
                    .map(|x| format!("{} <=> {}", x.local, x.remote))
                    .collect(),
                Tunnel::PolicyBased(p) => p
                    .iter()
                    .map(|x| format!("{} <=> {}", x.local, x.remote))
                    .collect(),
            },
            esp_lifetime_s: c.cfg.esp_lifetime.as_secs(),
            give_up_ms: u64::try_from(give_up.as_millis()).unwrap_or(u64::MAX),
            ike_sas: ike_sas
                .iter()
                .filter(|s| s.conn == i)
                .map(|s| IkeSaSnapshot {
                    cookies: s.cookies.to_string(),
                    initiator: s.role == Role::Initiator,
                    state: s.state.to_string(),
                    age_s: s.age.as_secs(),
                    nat_floated: s.nat.floated,
                })
                .collect(),
            ipsec_sas: c
                .pairs
                .iter()
                .map(|p| IpsecSaSnapshot {
                    spi_in: p.child.inbound.spi,
                    spi_out: p.child.outbound.spi,
                    udp_encapsulated: matches!(p.child.encapsulation, EspEncapsulation::Udp { .. }),
                    age_s: now.saturating_duration_since(p.established).as_secs(),
                    in_packets: stats_of(sad, p.inbound).packets,
                    out_packets: stats_of(sad, p.outbound).packets,
                })
                .collect(),
            unauthenticated_requests: history.unauthenticated_requests(i),
            certificate: matches!(c.cfg.auth, crate::config::Auth::Certificate { .. }),
            history: history.events(i).collect(),
            samples: history.samples(i).copied().collect(),
        })
        .collect();
    Snapshot {
        now_ms: history.now_ms(now),
        unix_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
        connections,
        unclaimed: history.unclaimed().collect(),
        half_open: half_open.snapshot(|t| history.now_ms(t)),
    }
}

/// Connection ids by remote address, each list in id order.
fn index_by_remote(peers: &[(IpAddr, IpAddr)]) -> HashMap<IpAddr, Vec<usize>> {
    let mut m: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for (i, &(_, remote)) in peers.iter().enumerate() {
        m.entry(remote).or_default().push(i);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovpn_ike::MessageLog;

    fn msg(peer: &str, name: &'static str) -> Event {
        Event::Message(MessageLog {
            direction: Direction::Sent,
            name,
            cookies: Cookies {
                initiator_spi: [1; 8],
                responder_spi: [0; 8],
            },
            message_id: 0,
            payloads: "[ SA V ]".into(),
            peer: peer.parse().unwrap(),
            local: "192.0.2.1:500".parse().unwrap(),
            retransmission: false,
        })
    }

    #[test]
    fn rings_are_bounded_and_messages_go_to_the_connection_of_their_peer() {
        let t0 = Instant::now();
        let mut h = History::new(
            t0,
            vec![
                ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()),
                ("192.0.2.1".parse().unwrap(), "192.0.2.3".parse().unwrap()),
            ],
        );
        for i in 0..1000u64 {
            h.record(t0 + Duration::from_millis(i), &msg("192.0.2.3:500", "MM1"));
        }
        h.record(t0, &msg("192.0.2.9:500", "MM1"));
        assert_eq!(h.events(0).count(), 0);
        assert_eq!(h.events(1).count(), EVENTS_PER_CONNECTION);
        assert_eq!(
            h.events(1).next().unwrap().t_ms,
            1000 - EVENTS_PER_CONNECTION as u64
        );
        assert_eq!(h.unclaimed().count(), 1);
        let r = h.events(1).last().unwrap();
        assert_eq!(r.cookies, "0101010101010101_i 0000000000000000_r");
        assert!(
            matches!(&r.what, What::Message { name, sent: true, udp4500: false, .. } if name == "MM1")
        );
    }

    #[test]
    fn learnt_cookies_are_bounded_and_the_latest_connection_wins() {
        let mut l = Learnt::default();
        let ck = |i: u32| Cookies {
            initiator_spi: u64::from(i).to_be_bytes(),
            responder_spi: [9; 8],
        };
        l.learn(ck(0), 1);
        l.learn(ck(0), 1);
        assert_eq!(
            l.order.len(),
            1,
            "learning the same pair again adds nothing"
        );
        l.learn(ck(0), 2);
        assert_eq!(l.conn(&ck(0)), Some(2));
        for i in 1..=Learnt::CAPACITY as u32 {
            l.learn(ck(i), 3);
        }
        assert_eq!(l.order.len(), Learnt::CAPACITY);
        assert_eq!(l.by_cookie.len(), Learnt::CAPACITY);
        assert_eq!(l.conn(&ck(0)), None, "the oldest is forgotten");
        assert_eq!(l.conn(&ck(1)), Some(3));
        // Learnt again, an old cookie outlives its first entry's eviction.
        l.learn(ck(1), 4);
        l.learn(ck(Learnt::CAPACITY as u32 + 1), 3);
        assert_eq!(l.conn(&ck(1)), Some(4));
    }

    #[test]
    fn samples_once_a_second_bounded_and_monotonic_across_rekeys() {
        let t0 = Instant::now();
        let mut h = History::new(
            t0,
            vec![("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())],
        );
        for s in 0..300u64 {
            let now = t0 + Duration::from_millis(500 * s);
            // One SA pair for the first 100 s, its successor (counting from 0) after.
            let live = move |_| {
                if s < 200 {
                    vec![(7, s, 2 * s)]
                } else {
                    vec![(8, s - 200, 0)]
                }
            };
            h.sample(now, live);
        }
        let v: Vec<Sample> = h.samples(0).copied().collect();
        assert_eq!(v.len(), SAMPLES_PER_CONNECTION);
        assert!(v
            .windows(2)
            .all(|w| w[1].decaps >= w[0].decaps && w[1].t_ms - w[0].t_ms == 1000));
        let last = v.last().unwrap();
        assert_eq!((last.decaps, last.encaps), (198 + 98, 396));
    }

    #[test]
    fn a_pair_whose_outbound_half_goes_first_keeps_its_count() {
        // The peer deleted pair 7 after its rekey to 8: 7's outbound SA is removed (reads 0)
        // while its inbound half drains, then it goes. The encapsulated total never falls.
        let t0 = Instant::now();
        let mut h = History::new(
            t0,
            vec![("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap())],
        );
        let steps: [Vec<(u32, u64, u64)>; 4] = [
            vec![(7, 10, 100)],
            vec![(7, 12, 0), (8, 1, 5)],
            vec![(7, 12, 0), (8, 3, 9)],
            vec![(8, 4, 12)],
        ];
        for (k, live) in steps.into_iter().enumerate() {
            h.sample(t0 + Duration::from_secs(k as u64), move |_| live.clone());
        }
        let encaps: Vec<u64> = h.samples(0).map(|s| s.encaps).collect();
        assert_eq!(encaps, [100, 105, 109, 112]);
    }
}
