//! Remote access, gateway role (issue 14): ferrovpn clients from this crate against the
//! ferrovpn gateway (`ConnectionConfig::gateway`), several at once, driven by a fake clock.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovpn_ike::config::{
    ModeCfgMode, RemoteAccessClient, RemoteAccessGateway, XauthCredentials, XauthVerdict,
    XauthVerifier,
};
use ferrovpn_ike::crypto::Secret;
use ferrovpn_ike::event::RemoteAccessFailure;
use ferrovpn_ike::wire::ModeCfgSettings;
use ferrovpn_ike::{
    ChildConfig, ConnectionConfig, Datagram, Endpoint, Event, Failure, Phase1Mode, Settings,
    TrafficSelector,
};

const GW: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// Every client thinks it is this host; the "NAT" maps it to a public address:port.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const PSK: &[u8] = b"group-secret";
const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 128);

struct Users;
impl XauthVerifier for Users {
    fn verify(&self, _: Instant, _: IpAddr, user: &str, password: &[u8]) -> XauthVerdict {
        if matches!(
            (user, password),
            ("alice", b"correct-horse") | ("bob", b"battery-staple")
        ) {
            XauthVerdict::Accept
        } else {
            XauthVerdict::Reject
        }
    }
}

fn gateway_conn(prefix: u8, push: bool, mode: Phase1Mode) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("clients", GW, Ipv4Addr::UNSPECIFIED.into(), PSK);
    c.mode = mode;
    c.allow_aggressive_psk = true;
    c.remote_id = ferrovpn_ike::IdValue::Ipv4(Ipv4Addr::UNSPECIFIED);
    c.children = vec![ChildConfig {
        local_ts: TrafficSelector::any_v4(),
        remote_ts: TrafficSelector::subnet(POOL.into(), prefix),
    }];
    c.gateway = Some(RemoteAccessGateway {
        users: Some(Arc::new(Users)),
        pool: (POOL, prefix),
        pool6: None,
        settings: ModeCfgSettings {
            ip4_dns: vec![Ipv4Addr::new(203, 0, 113, 53)],
            default_domain: Some("corp.example".into()),
            split_include: vec![(
                Ipv4Addr::new(203, 0, 113, 0),
                Ipv4Addr::new(255, 255, 255, 0),
            )],
            banner: Some("Authorized users only".into()),
            ..Default::default()
        },
        push,
        max_failures: 3,
        failure_window: Duration::from_secs(600),
    });
    c
}

fn client_conn(user: &str, password: &[u8], mode: Phase1Mode, pull: bool) -> ConnectionConfig {
    let mut c = ConnectionConfig::new("gw", CLIENT, GW, PSK);
    c.mode = mode;
    c.remote_access = Some(RemoteAccessClient {
        xauth: Some(XauthCredentials {
            user: user.into(),
            password: Secret::new(password.to_vec()),
        }),
        mode_cfg: if pull {
            ModeCfgMode::Pull
        } else {
            ModeCfgMode::Push
        },
    });
    c
}

/// One gateway and clients behind NATs: client `i` appears as `public[i]` (its port is
/// shifted so that clients sharing one public address stay apart).
struct Net {
    now: Instant,
    gw: Endpoint,
    gw_events: Vec<Event>,
    clients: Vec<(Endpoint, IpAddr, Vec<Event>)>,
    /// public address:port → (client, its own address:port)
    nat: HashMap<SocketAddr, (usize, SocketAddr)>,
    /// Drop the clients' Transaction messages (a client that never answers XAuth).
    mute_transactions: bool,
}

impl Net {
    fn new(gw: ConnectionConfig) -> Self {
        let mut e = Endpoint::new(Settings::default(), [9; 32]);
        e.add_connection(gw);
        Net {
            now: Instant::now(),
            gw: e,
            gw_events: Vec::new(),
            clients: Vec::new(),
            nat: HashMap::new(),
            mute_transactions: false,
        }
    }

    /// Adds a client seen from `public`; returns its index.
    fn client(&mut self, cfg: ConnectionConfig, public: IpAddr) -> usize {
        let i = self.clients.len();
        let mut e = Endpoint::new(Settings::default(), [10 + i as u8; 32]);
        e.add_connection(cfg);
        self.clients.push((e, public, Vec::new()));
        i
    }

    fn connect(&mut self, i: usize) {
        self.clients[i].0.initiate(self.now, 0);
        self.run_for(Duration::from_secs(60));
    }

    fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Some(d) = self.clients[i].0.poll_transmit() {
                    moved = true;
                    let public =
                        SocketAddr::new(self.clients[i].1, d.local.port() + 1000 * (i as u16 + 1));
                    self.nat.insert(public, (i, d.local));
                    // Exchange type is byte 18 of the ISAKMP header; 6 is TRANSACTION.
                    if self.mute_transactions && d.data.get(18) == Some(&6) {
                        continue;
                    }
                    self.gw.handle_datagram(
                        self.now,
                        Datagram {
                            local: d.remote,
                            remote: public,
                            data: d.data,
                        },
                    );
                }
                while let Some(e) = self.clients[i].0.poll_event() {
                    self.clients[i].2.push(e);
                }
            }
            while let Some(d) = self.gw.poll_transmit() {
                moved = true;
                if let Some(&(i, local)) = self.nat.get(&d.remote) {
                    self.clients[i].0.handle_datagram(
                        self.now,
                        Datagram {
                            local,
                            remote: d.local,
                            data: d.data,
                        },
                    );
                }
            }
            while let Some(e) = self.gw.poll_event() {
                self.gw_events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("pump did not settle");
    }

    fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        self.pump();
        for _ in 0..100_000 {
            let mut next = self.gw.poll_timeout();
            for c in &mut self.clients {
                next = match (next, c.0.poll_timeout()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            match next {
                Some(t) if t <= limit => {
                    self.now = self.now.max(t);
                    self.gw.handle_timeout(self.now);
                    for c in &mut self.clients {
                        c.0.handle_timeout(self.now);
                    }
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = limit;
        self.gw.handle_timeout(self.now);
        for c in &mut self.clients {
            c.0.handle_timeout(self.now);
        }
        self.pump();
    }

    /// The address client `i` was assigned (from its own Mode Config event).
    fn assigned(&self, i: usize) -> Option<Ipv4Addr> {
        self.clients[i].2.iter().rev().find_map(|e| match e {
            Event::RemoteAccessConfigured { settings, .. } => settings.ip4_address,
            _ => None,
        })
    }

    fn children(events: &[Event]) -> Vec<&ferrovpn_ike::ChildSa> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaEstablished(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn failures(events: &[Event]) -> Vec<&Failure> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaFailed { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }

    fn clients_up(&self) -> Vec<(Option<String>, Vec<IpAddr>, SocketAddr)> {
        self.gw_events
            .iter()
            .filter_map(|e| match e {
                Event::RemoteAccessClientUp {
                    user,
                    addresses,
                    peer,
                    ..
                } => Some((user.clone(), addresses.clone(), *peer)),
                _ => None,
            })
            .collect()
    }

    fn released(&self) -> Vec<IpAddr> {
        self.gw_events
            .iter()
            .filter_map(|e| match e {
                Event::LeaseReleased { address, .. } => Some(*address),
                _ => None,
            })
            .collect()
    }
}

const FIRST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 129);
const SECOND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 130);

fn assert_up(net: &Net, i: usize, address: Ipv4Addr) {
    let (_, _, events) = &net.clients[i];
    assert_eq!(Net::failures(events), Vec::<&Failure>::new());
    assert_eq!(net.assigned(i), Some(address));
    let settings = events
        .iter()
        .find_map(|e| match e {
            Event::RemoteAccessConfigured { settings, .. } => Some(settings),
            _ => None,
        })
        .unwrap();
    assert_eq!(settings.ip4_dns, vec![Ipv4Addr::new(203, 0, 113, 53)]);
    assert_eq!(settings.default_domain.as_deref(), Some("corp.example"));
    assert_eq!(settings.banner.as_deref(), Some("Authorized users only"));
    assert_eq!(settings.split_include.len(), 1);
    let mine = Net::children(events);
    assert_eq!(mine.len(), 1, "one Quick Mode after Mode Config");
    assert_eq!(mine[0].local_ts, TrafficSelector::host(address.into()));
    // The gateway's pair for this client is the client's address, not the whole pool.
    let gw_side: Vec<_> = Net::children(&net.gw_events)
        .into_iter()
        .filter(|c| c.remote_ts == TrafficSelector::host(address.into()))
        .collect();
    assert_eq!(gw_side.len(), 1);
    ferrovpn_tests::assert_mirrored(mine[0], gw_side[0]);
}

#[test]
fn main_mode_xauth_then_pull_assigns_the_first_pool_address() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_up(&net, c, FIRST);
    let up = net.clients_up();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].0.as_deref(), Some("alice"));
    assert_eq!(up[0].1, vec![IpAddr::from(FIRST)]);
    let (leases, size) = net.gw.leases(0, false).unwrap();
    assert_eq!((leases.len(), size), (1, 126));
    assert_eq!(leases[0].1.user.as_deref(), Some("alice"));
}

#[test]
fn aggressive_mode_xauth_then_push() {
    let mut net = Net::new(gateway_conn(25, true, Phase1Mode::Aggressive));
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Aggressive, false),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_up(&net, c, FIRST);
}

#[test]
fn wrong_password_fails_both_sides_and_leases_nothing() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let c = net.client(
        client_conn("alice", b"wrong", Phase1Mode::Main, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert!(matches!(
        Net::failures(&net.clients[c].2)[..],
        [Failure::RemoteAccess(
            RemoteAccessFailure::XauthRejected { .. }
        )]
    ));
    assert_eq!(
        Net::failures(&net.gw_events),
        vec![&Failure::RemoteAccess(RemoteAccessFailure::XauthFailed {
            user: "alice".into()
        })]
    );
    assert!(net.clients_up().is_empty());
    assert!(Net::children(&net.gw_events).is_empty());
    assert_eq!(net.gw.leases(0, false).map_or(0, |l| l.0.len()), 0);
    assert!(!format!("{:?}", net.gw_events).contains("wrong"));
}

#[test]
fn a_source_with_too_many_wrong_passwords_is_locked_out_even_with_the_right_one() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let public: IpAddr = [192, 0, 2, 10].into();
    for _ in 0..3 {
        let c = net.client(
            client_conn("alice", b"wrong", Phase1Mode::Main, true),
            public,
        );
        net.connect(c);
    }
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        public,
    );
    net.connect(c);
    assert_eq!(net.assigned(c), None);
    assert!(net.gw.counters().xauth_locked_out >= 1);
    // Another source is not affected.
    let d = net.client(
        client_conn("bob", b"battery-staple", Phase1Mode::Main, true),
        [192, 0, 2, 11].into(),
    );
    net.connect(d);
    assert_up(&net, d, FIRST);
}

/// Busy for its first `n` calls, then the real verdict; keeps the client addresses asked with.
struct BusyFirst(std::sync::atomic::AtomicU32, std::sync::Mutex<Vec<IpAddr>>);
impl XauthVerifier for BusyFirst {
    fn verify(&self, now: Instant, peer: IpAddr, user: &str, password: &[u8]) -> XauthVerdict {
        self.1.lock().unwrap().push(peer);
        let left = self.0.load(std::sync::atomic::Ordering::Relaxed);
        if left > 0 {
            self.0.store(left - 1, std::sync::atomic::Ordering::Relaxed);
            return XauthVerdict::Busy;
        }
        Users.verify(now, peer, user, password)
    }
}

/// A verifier over its rate answers Busy: the REPLY is dropped without counting a failure, our
/// REQUEST's retransmission brings it again, and then it is checked. Each time the verifier
/// is told the client's address as the gateway sees it (PAM's remote host).
#[test]
fn a_busy_verifier_is_asked_again_on_retransmission_without_a_failure() {
    let verifier = Arc::new(BusyFirst(2.into(), Default::default()));
    let mut gw = gateway_conn(25, false, Phase1Mode::Main);
    if let Some(g) = gw.gateway.as_mut() {
        g.users = Some(verifier.clone());
        g.max_failures = 1;
    }
    let mut net = Net::new(gw);
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_up(&net, c, FIRST);
    assert!(Net::failures(&net.gw_events).is_empty());
    assert_eq!(net.gw.counters().xauth_locked_out, 0);
    let asked = verifier.1.lock().unwrap().clone();
    assert_eq!(asked, vec![IpAddr::from([192, 0, 2, 10]); 3]);
}

/// `max_failures` / `failure_window` as configured (`xauth_max_failures`, `xauth_lockout`): one
/// wrong password locks the source out for the window, and only for the window.
#[test]
fn the_configured_lockout_limit_and_window_apply() {
    let mut gw = gateway_conn(25, false, Phase1Mode::Main);
    if let Some(g) = gw.gateway.as_mut() {
        g.max_failures = 1;
        g.failure_window = Duration::from_secs(300);
    }
    let mut net = Net::new(gw);
    let public: IpAddr = [192, 0, 2, 10].into();
    let wrong = net.client(
        client_conn("alice", b"wrong", Phase1Mode::Main, true),
        public,
    );
    net.connect(wrong);
    assert_eq!(net.gw.counters().xauth_locked_out, 0);
    let right = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        public,
    );
    net.connect(right);
    assert_eq!(net.assigned(right), None, "locked out after one failure");
    assert!(net.gw.counters().xauth_locked_out >= 1);
    net.run_for(Duration::from_secs(300));
    let again = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        public,
    );
    net.connect(again);
    assert_up(&net, again, FIRST);
}

#[test]
fn two_clients_behind_one_nat_get_their_own_address_and_pairs() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let public: IpAddr = [192, 0, 2, 10].into();
    let a = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        public,
    );
    let b = net.client(
        client_conn("bob", b"battery-staple", Phase1Mode::Main, true),
        public,
    );
    net.connect(a);
    net.connect(b);
    assert_up(&net, a, FIRST);
    assert_up(&net, b, SECOND);
    let up = net.clients_up();
    assert_eq!(up.len(), 2);
    assert_eq!(up[0].2.ip(), up[1].2.ip());
    assert_ne!(up[0].2, up[1].2, "told apart by port");
    // Neither client's ISAKMP SA took over the other's (they share the connection).
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.released(), Vec::<IpAddr>::new());
    assert_eq!(net.gw.leases(0, false).unwrap().0.len(), 2);
    assert_eq!(
        net.gw
            .ike_sas(net.now)
            .iter()
            .filter(|s| s.children.len() == 1)
            .count(),
        2
    );
}

#[test]
fn pool_exhaustion_refuses_the_next_client_and_a_delete_frees_its_address() {
    // A /30: two leasable addresses.
    let mut net = Net::new(gateway_conn(30, false, Phase1Mode::Main));
    let mut ids = Vec::new();
    for (i, (u, p)) in [
        ("alice", &b"correct-horse"[..]),
        ("bob", b"battery-staple"),
        ("alice", b"correct-horse"),
    ]
    .into_iter()
    .enumerate()
    {
        let c = net.client(
            client_conn(u, p, Phase1Mode::Main, true),
            [192, 0, 2, 10 + i as u8].into(),
        );
        net.connect(c);
        ids.push(c);
    }
    assert_eq!(net.assigned(ids[0]), Some(FIRST));
    assert_eq!(net.assigned(ids[1]), Some(SECOND));
    assert_eq!(net.assigned(ids[2]), None);
    // The third client is told at once (a DELETE), not left waiting for Mode Config.
    assert!(net.clients[ids[2]]
        .2
        .iter()
        .any(|e| matches!(e, Event::IkeSaDeleted { .. })));
    assert!(!Net::failures(&net.clients[ids[2]].2)
        .iter()
        .any(|f| matches!(
            f,
            Failure::RemoteAccess(RemoteAccessFailure::GatewaySilent { .. })
        )));
    assert!(
        Net::failures(&net.gw_events).contains(&&Failure::RemoteAccess(
            RemoteAccessFailure::PoolExhausted {
                pool: "198.51.100.128/30".into()
            }
        ))
    );
    // The first client goes: its address is released and the next client gets it.
    let now = net.now;
    net.clients[ids[0]].0.terminate(now, 0).unwrap();
    net.run_for(Duration::from_secs(5));
    assert_eq!(net.released(), vec![IpAddr::from(FIRST)]);
    let d = net.client(
        client_conn("bob", b"battery-staple", Phase1Mode::Main, true),
        [192, 0, 2, 20].into(),
    );
    net.connect(d);
    assert_eq!(net.assigned(d), Some(FIRST));
}

#[test]
fn a_dead_client_loses_its_lease() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_up(&net, c, FIRST);
    // The client vanishes without a word: DPD on the gateway declares it dead.
    net.nat.clear();
    let (_, public, _) = &mut net.clients[c];
    *public = [192, 0, 2, 99].into();
    net.run_for(Duration::from_secs(600));
    assert_eq!(net.released(), vec![IpAddr::from(FIRST)]);
    assert_eq!(net.gw.leases(0, false).map_or(0, |l| l.0.len()), 0);
}

#[test]
fn a_client_that_never_answers_xauth_is_dropped_within_the_retransmission_bound() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    net.mute_transactions = true;
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    net.run_for(Duration::from_secs(600));
    assert!(net.clients_up().is_empty());
    // Its unanswered XAuth REQUEST ends it as a dead peer.
    assert!(net
        .gw_events
        .iter()
        .any(|e| matches!(e, Event::PeerDead { .. })));
    assert!(
        net.gw.ike_sas(net.now).is_empty(),
        "the half-open client is gone"
    );
    assert_eq!(net.gw.leases(0, false).map_or(0, |l| l.0.len()), 0);
    let requests = net
        .gw_events
        .iter()
        .filter(|e| matches!(e, Event::Message(m) if m.name == "TRANSACTION"))
        .count();
    assert!((1..=10).contains(&requests), "{requests} XAuth REQUESTs");
}

// ---- IPv6 pools (draft-dukes-ike-mode-cfg §3.3 INTERNAL_IP6_ADDRESS) ----

const POOL6: &str = "2001:db8:1::";
const FIRST6: &str = "2001:db8:1::1";

fn v6(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn any_v6() -> TrafficSelector {
    TrafficSelector::subnet(std::net::Ipv6Addr::UNSPECIFIED.into(), 0)
}

/// A dual-stack gateway: the IPv4 pool and pairs of `gateway_conn`, and an IPv6 pool /112.
fn gateway_conn6() -> ConnectionConfig {
    let mut c = gateway_conn(25, false, Phase1Mode::Main);
    c.children.push(ChildConfig {
        local_ts: any_v6(),
        remote_ts: TrafficSelector::subnet(v6(POOL6), 112),
    });
    if let Some(g) = c.gateway.as_mut() {
        g.pool6 = Some((POOL6.parse().unwrap(), 112));
    }
    c
}

/// A client tunnelling IPv4 (`v4`) and/or IPv6 (`v6`): one pair per family.
fn client_conn6(user: &str, password: &[u8], v4: bool, v6: bool) -> ConnectionConfig {
    let mut c = client_conn(user, password, Phase1Mode::Main, true);
    c.children.clear();
    if v4 {
        c.children.push(ChildConfig {
            local_ts: TrafficSelector::any_v4(),
            remote_ts: TrafficSelector::any_v4(),
        });
    }
    if v6 {
        c.children.push(ChildConfig {
            local_ts: any_v6(),
            remote_ts: any_v6(),
        });
    }
    c
}

fn assigned6(net: &Net, i: usize) -> Option<IpAddr> {
    net.clients[i].2.iter().rev().find_map(|e| match e {
        Event::RemoteAccessConfigured { settings, .. } => {
            settings.ip6_address.map(|(a, _)| a.into())
        }
        _ => None,
    })
}

/// Client `i`'s pairs name exactly its addresses, and the gateway's mirror them.
fn assert_pairs(net: &Net, i: usize, want: &[IpAddr]) {
    let mine = Net::children(&net.clients[i].2);
    let mut locals: Vec<IpAddr> = mine.iter().map(|c| c.local_ts.addr).collect();
    locals.sort();
    let mut want = want.to_vec();
    want.sort();
    assert_eq!(locals, want, "one Quick Mode per assigned address");
    for c in &mine {
        assert_eq!(c.local_ts, TrafficSelector::host(c.local_ts.addr));
        let gw: Vec<_> = Net::children(&net.gw_events)
            .into_iter()
            .filter(|g| g.remote_ts == c.local_ts)
            .collect();
        assert_eq!(gw.len(), 1, "the gateway's pair for {}", c.local_ts);
        ferrovpn_tests::assert_mirrored(c, gw[0]);
    }
}

#[test]
fn a_dual_stack_client_gets_one_address_of_each_pool_and_one_pair_per_family() {
    let mut net = Net::new(gateway_conn6());
    let c = net.client(
        client_conn6("alice", b"correct-horse", true, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_eq!(Net::failures(&net.clients[c].2), Vec::<&Failure>::new());
    assert_eq!(net.assigned(c), Some(FIRST));
    assert_eq!(assigned6(&net, c), Some(v6(FIRST6)));
    assert_pairs(&net, c, &[FIRST.into(), v6(FIRST6)]);
    assert_eq!(net.clients_up()[0].1, vec![IpAddr::from(FIRST), v6(FIRST6)]);
    let (l6, size6) = net.gw.leases(0, true).unwrap();
    assert_eq!((l6.len(), size6), (1, 65535));
    assert_eq!(l6[0].1.user.as_deref(), Some("alice"));
    // A second client: the next address of each pool.
    let d = net.client(
        client_conn6("bob", b"battery-staple", true, true),
        [192, 0, 2, 11].into(),
    );
    net.connect(d);
    assert_eq!(assigned6(&net, d), Some(v6("2001:db8:1::2")));
    assert_pairs(&net, d, &[SECOND.into(), v6("2001:db8:1::2")]);
    // Leaving releases both of alice's leases, nothing of bob's.
    let now = net.now;
    net.clients[c].0.terminate(now, 0).unwrap();
    net.run_for(Duration::from_secs(5));
    let mut gone = net.released();
    gone.sort();
    assert_eq!(gone, vec![IpAddr::from(FIRST), v6(FIRST6)]);
    assert_eq!(net.gw.leases(0, true).unwrap().0.len(), 1);
    assert_eq!(net.gw.leases(0, false).unwrap().0.len(), 1);
}

#[test]
fn an_ipv6_only_client_asks_for_and_gets_only_an_ipv6_address() {
    let mut net = Net::new(gateway_conn6());
    let c = net.client(
        client_conn6("alice", b"correct-horse", false, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_eq!(Net::failures(&net.clients[c].2), Vec::<&Failure>::new());
    assert_eq!(net.assigned(c), None, "no IPv4 address asked for");
    assert_eq!(assigned6(&net, c), Some(v6(FIRST6)));
    assert_pairs(&net, c, &[v6(FIRST6)]);
    assert_eq!(net.gw.leases(0, false).map_or(0, |l| l.0.len()), 0);
}

#[test]
fn an_ipv6_only_client_of_a_gateway_without_an_ipv6_pool_is_refused_by_name() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let c = net.client(
        client_conn6("alice", b"correct-horse", false, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert!(
        Net::failures(&net.gw_events).contains(&&Failure::RemoteAccess(
            RemoteAccessFailure::NoPool { family: "IPv6" }
        ))
    );
    assert!(Net::children(&net.gw_events).is_empty());
    assert_eq!(net.gw.leases(0, false).map_or(0, |l| l.0.len()), 0);
}

#[test]
fn a_dual_stack_client_of_an_ipv4_only_gateway_runs_its_ipv4_pair_only() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let c = net.client(
        client_conn6("alice", b"correct-horse", true, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_eq!(Net::failures(&net.clients[c].2), Vec::<&Failure>::new());
    assert_eq!(assigned6(&net, c), None);
    assert_pairs(&net, c, &[FIRST.into()]);
}

#[test]
fn an_exhausted_ipv6_pool_refuses_the_client_and_keeps_no_ipv4_lease_of_it() {
    let mut gw = gateway_conn6();
    if let Some(g) = gw.gateway.as_mut() {
        // A /127: its two addresses as they are.
        g.pool6 = Some((POOL6.parse().unwrap(), 127));
    }
    let mut net = Net::new(gw);
    for (i, (u, p)) in [("alice", &b"correct-horse"[..]), ("bob", b"battery-staple")]
        .into_iter()
        .enumerate()
    {
        let c = net.client(
            client_conn6(u, p, true, true),
            [192, 0, 2, 10 + i as u8].into(),
        );
        net.connect(c);
        assert!(assigned6(&net, c).is_some());
    }
    let c = net.client(
        client_conn6("alice", b"correct-horse", true, true),
        [192, 0, 2, 20].into(),
    );
    net.connect(c);
    assert_eq!(net.assigned(c), None);
    assert!(
        Net::failures(&net.gw_events).contains(&&Failure::RemoteAccess(
            RemoteAccessFailure::PoolExhausted {
                pool: "2001:db8:1::/127".into()
            }
        ))
    );
    assert_eq!(net.gw.leases(0, false).unwrap().0.len(), 2);
}

// ---- XAuth after a plain pre-shared key phase 1 (Cisco IOS `authentication pre-share`) ----

#[test]
fn xauth_after_a_plain_psk_phase_1_in_main_and_aggressive_mode() {
    for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
        let mut gw = gateway_conn(25, mode == Phase1Mode::Aggressive, mode);
        gw.xauth_after_psk = true;
        assert_eq!(gw.auth_method(), 1, "pre-shared key, not 65001");
        let mut net = Net::new(gw);
        let mut client = client_conn("alice", b"correct-horse", mode, mode == Phase1Mode::Main);
        client.xauth_after_psk = true;
        assert_eq!(client.auth_method(), 1);
        let c = net.client(client, [192, 0, 2, 10].into());
        net.connect(c);
        assert_up(&net, c, FIRST);
    }
}

#[test]
fn a_plain_psk_client_and_an_xauth_psk_gateway_agree_on_no_proposal() {
    let mut net = Net::new(gateway_conn(25, false, Phase1Mode::Main));
    let mut client = client_conn("alice", b"correct-horse", Phase1Mode::Main, true);
    client.xauth_after_psk = true;
    let c = net.client(client, [192, 0, 2, 10].into());
    net.connect(c);
    assert!(net.clients_up().is_empty());
    assert!(
        Net::failures(&net.gw_events)
            .iter()
            .any(|f| matches!(f, Failure::NoProposalChosen { .. })),
        "the gateway offered 65001 only: {:?}",
        Net::failures(&net.gw_events)
    );
}

// ---- Cisco UNITY_PFS: the gateway asks for PFS by Mode Config ----

#[test]
fn a_gateway_that_asks_for_pfs_gets_it_in_the_phase_1_group() {
    let gw_with_pfs = |tell: bool| {
        let mut gw = gateway_conn(25, false, Phase1Mode::Main);
        gw.esp_proposals =
            ferrovpn_ike::proposal::parse_esp_proposals("aes128gcm16-modp2048").unwrap();
        if tell {
            gw.gateway.as_mut().unwrap().settings.pfs = Some(1);
        }
        gw
    };
    // The client's own proposals have no PFS; the gateway's UNITY_PFS adds it.
    let mut net = Net::new(gw_with_pfs(true));
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert_up(&net, c, FIRST);
    let mine = Net::children(&net.clients[c].2);
    assert_eq!(
        mine[0].pfs,
        Some(ferrovpn_ike::algorithm::DhGroup::Modp2048),
        "PFS in phase 1's group"
    );
    // Without the attribute the same client offers no PFS and the gateway refuses it.
    let mut net = Net::new(gw_with_pfs(false));
    let c = net.client(
        client_conn("alice", b"correct-horse", Phase1Mode::Main, true),
        [192, 0, 2, 10].into(),
    );
    net.connect(c);
    assert!(Net::children(&net.clients[c].2).is_empty());
    assert!(net.gw_events.iter().any(|e| matches!(
        e,
        Event::ChildSaFailed {
            reason: Failure::NoProposalChosen { .. },
            ..
        }
    )));
}
