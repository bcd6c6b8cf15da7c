//! Shared helpers for the integration tests in this package: two in-memory IKE peers joined by
//! a lossy, scriptable "network" and driven by a fake clock.

pub mod hostile;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrovpn_ike::dh_job::DhJob;
use ferrovpn_ike::wire::{ExchangeType, Header};
use ferrovpn_ike::{ChildSa, ConnectionConfig, Datagram, Endpoint, Event, Failure, Settings};

pub const ADDR_A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub const ADDR_B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
pub const PSK: &[u8] = b"ferrovpn-test-psk";

/// Which side of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// What the network does to a datagram in flight.
pub enum Fate {
    Deliver,
    Drop,
    Duplicate,
}

/// A datagram on the wire, for filters and assertions.
#[derive(Debug, Clone)]
pub struct Wire {
    pub from: Side,
    pub datagram: Datagram,
    /// Index among all datagrams sent so far.
    pub seq: usize,
}

impl Wire {
    /// The ISAKMP exchange type (RFC 2408 §3.1), if the datagram starts with a header.
    pub fn exchange(&self) -> Option<ExchangeType> {
        Header::parse(&self.datagram.data).ok().map(|h| h.exchange)
    }
}

pub type Filter = Box<dyn FnMut(&Wire) -> Fate>;

/// A network that loses the first `n` datagrams from `side` that `pick` selects and delivers
/// everything else.
pub fn lose_first(side: Side, n: usize, pick: impl Fn(&Wire) -> bool + 'static) -> Filter {
    let mut lost = 0;
    Box::new(move |w| {
        if w.from == side && lost < n && pick(w) {
            lost += 1;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    })
}

/// A Quick Mode datagram (for `lose_first`).
pub fn is_quick_mode(w: &Wire) -> bool {
    w.exchange() == Some(ExchangeType::QUICK_MODE)
}

/// Either filter's loss (for separately counted losses of disjoint kinds of datagram).
pub fn either(mut first: Filter, mut second: Filter) -> Filter {
    Box::new(move |w| match first(w) {
        Fate::Deliver => second(w),
        fate => fate,
    })
}
type Rewrite = Box<dyn FnMut(&mut Datagram, Side)>;

pub struct Pair {
    pub a: Endpoint,
    pub b: Endpoint,
    pub now: Instant,
    pub events_a: Vec<Event>,
    pub events_b: Vec<Event>,
    pub wire: Vec<Wire>,
    pub filter: Filter,
    /// Applied to each datagram as it crosses (a NAT, say); sees the sender.
    pub rewrite: Rewrite,
    /// Shared-secret jobs (`Settings::dh_offload`) handed out and not yet computed.
    pub dh_jobs: Vec<(Side, DhJob)>,
    /// Leave `dh_jobs` for the test to compute (`finish_dh_job`); else `pump` computes
    /// them whenever the network is idle, newest first (not in the order they were asked).
    pub hold_dh_jobs: bool,
}

/// Connection `name` on side A (A = 192.0.2.1 → B = 192.0.2.2) with test defaults.
pub fn conn_a() -> ConnectionConfig {
    ConnectionConfig::new("to-b", ADDR_A, ADDR_B, PSK)
}

/// The mirror of `conn_a` for side B.
pub fn conn_b() -> ConnectionConfig {
    ConnectionConfig::new("to-a", ADDR_B, ADDR_A, PSK)
}

impl Pair {
    pub fn new(a: ConnectionConfig, b: ConnectionConfig) -> Self {
        Pair::with_settings(a, b, Settings::default())
    }

    pub fn with_settings(a: ConnectionConfig, b: ConnectionConfig, settings: Settings) -> Self {
        let mut ea = Endpoint::new(settings.clone(), [1; 32]);
        let mut eb = Endpoint::new(settings, [2; 32]);
        ea.add_connection(a);
        eb.add_connection(b);
        Pair {
            a: ea,
            b: eb,
            now: Instant::now(),
            events_a: Vec::new(),
            events_b: Vec::new(),
            wire: Vec::new(),
            filter: Box::new(|_| Fate::Deliver),
            rewrite: Box::new(|_, _| {}),
            dh_jobs: Vec::new(),
            hold_dh_jobs: false,
        }
    }

    /// Moves datagrams both ways until nothing is left in flight (bounded).
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(d) = self.a.poll_transmit() {
                moved = true;
                self.carry(Side::A, d);
            }
            while let Some(d) = self.b.poll_transmit() {
                moved = true;
                self.carry(Side::B, d);
            }
            self.drain_events();
            if !moved && !self.compute_dh_jobs() {
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Collects the jobs both sides handed out and, unless held, computes them newest first
    /// and feeds the results back; true when any result went back.
    fn compute_dh_jobs(&mut self) -> bool {
        while let Some(j) = self.a.poll_dh_job() {
            self.dh_jobs.push((Side::A, j));
        }
        while let Some(j) = self.b.poll_dh_job() {
            self.dh_jobs.push((Side::B, j));
        }
        if self.hold_dh_jobs || self.dh_jobs.is_empty() {
            return false;
        }
        while let Some((side, job)) = self.dh_jobs.pop() {
            self.finish(side, job);
        }
        true
    }

    /// Computes the held job at `index` and feeds its result back to its side.
    pub fn finish_dh_job(&mut self, index: usize) {
        let (side, job) = self.dh_jobs.remove(index);
        self.finish(side, job);
        self.pump();
    }

    fn finish(&mut self, side: Side, job: DhJob) {
        let done = job.run();
        match side {
            Side::A => self.a.dh_done(self.now, done),
            Side::B => self.b.dh_done(self.now, done),
        }
    }

    /// Takes the jobs both sides handed out into `dh_jobs` without computing them.
    pub fn collect_dh_jobs(&mut self) {
        let held = std::mem::replace(&mut self.hold_dh_jobs, true);
        self.compute_dh_jobs();
        self.hold_dh_jobs = held;
    }

    fn carry(&mut self, from: Side, mut d: Datagram) {
        let w = Wire {
            from,
            datagram: d.clone(),
            seq: self.wire.len(),
        };
        let fate = (self.filter)(&w);
        self.wire.push(w);
        if d.is_nat_keepalive() {
            // The daemon's UDP 4500 socket drops these before IKE sees them (RFC 3948 §2.3).
            return;
        }
        (self.rewrite)(&mut d, from);
        // The receiver sees the sender's address as remote and its own as local.
        let incoming = Datagram {
            local: d.remote,
            remote: d.local,
            data: d.data,
        };
        let to = match from {
            Side::A => &mut self.b,
            Side::B => &mut self.a,
        };
        match fate {
            Fate::Deliver => to.handle_datagram(self.now, incoming),
            Fate::Duplicate => {
                to.handle_datagram(self.now, incoming.clone());
                to.handle_datagram(self.now, incoming);
            }
            Fate::Drop => {}
        }
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    /// Advances the fake clock to the next timer of either side and runs it; false if none
    /// is due before `limit`.
    pub fn step_time(&mut self, limit: Instant) -> bool {
        let next = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= limit => {
                self.now = self.now.max(t);
                self.a.handle_timeout(self.now);
                self.b.handle_timeout(self.now);
                self.pump();
                true
            }
            _ => false,
        }
    }

    /// Runs timers and traffic for `d` of fake time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        self.pump();
        let mut steps = 0;
        while self.step_time(limit) {
            steps += 1;
            assert!(steps < 100_000, "timer loop did not settle");
        }
        self.now = limit;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.pump();
    }

    /// A initiates and both run for a minute of fake time.
    pub fn connect(&mut self) {
        self.a.initiate(self.now, 0);
        self.run_for(Duration::from_secs(60));
    }

    pub fn events(&self, side: Side) -> &[Event] {
        match side {
            Side::A => &self.events_a,
            Side::B => &self.events_b,
        }
    }

    pub fn children(&self, side: Side) -> Vec<&ChildSa> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaEstablished(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    pub fn ike_failures(&self, side: Side) -> Vec<&Failure> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaFailed { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }

    pub fn child_failures(&self, side: Side) -> Vec<&Failure> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaFailed { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }

    pub fn established(&self, side: Side) -> usize {
        self.events(side)
            .iter()
            .filter(|e| matches!(e, Event::IkeSaEstablished { .. }))
            .count()
    }

    /// Names of the messages one side logged as sent, in order (MM1, MM3, …).
    pub fn sent_names(&self, side: Side) -> Vec<&'static str> {
        self.sent(side, false)
    }

    /// How many times one side sent `name`, retransmissions included.
    pub fn times_sent(&self, side: Side, name: &str) -> usize {
        self.sent(side, true).iter().filter(|n| **n == name).count()
    }

    fn sent(&self, side: Side, retransmissions: bool) -> Vec<&'static str> {
        self.events(side)
            .iter()
            .filter_map(|e| match e {
                Event::Message(m)
                    if m.direction == ferrovpn_ike::Direction::Sent
                        && (retransmissions || !m.retransmission) =>
                {
                    Some(m.name)
                }
                _ => None,
            })
            .collect()
    }
}

/// The two directions of a negotiated pair must mirror each other exactly.
pub fn assert_mirrored(a: &ChildSa, b: &ChildSa) {
    assert_eq!(
        a.inbound.spi, b.outbound.spi,
        "A's inbound SPI is B's outbound"
    );
    assert_eq!(
        a.outbound.spi, b.inbound.spi,
        "A's outbound SPI is B's inbound"
    );
    assert_eq!(*a.inbound.enc_key, *b.outbound.enc_key);
    assert_eq!(*a.inbound.auth_key, *b.outbound.auth_key);
    assert_eq!(*a.outbound.enc_key, *b.inbound.enc_key);
    assert_eq!(*a.outbound.auth_key, *b.inbound.auth_key);
    assert_ne!(
        *a.inbound.enc_key, *a.outbound.enc_key,
        "each direction has its own key"
    );
    assert_eq!(a.cipher, b.cipher);
    assert_eq!(a.integrity, b.integrity);
    assert_eq!(a.local_ts, b.remote_ts);
    assert_eq!(a.remote_ts, b.local_ts);
    assert_eq!(
        a.encapsulation == ferrovpn_ike::EspEncapsulation::Raw,
        b.encapsulation == ferrovpn_ike::EspEncapsulation::Raw
    );
    let want = a.cipher.keymat_len();
    assert_eq!(a.inbound.enc_key.len(), want);
    assert_eq!(
        a.inbound.auth_key.len(),
        a.integrity.map_or(0, |i| i.key_len())
    );
}

/// Socket address helper.
pub fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}
