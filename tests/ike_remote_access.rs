//! Remote access as a client (issue 14): XAuth and Mode Config with two in-memory endpoints.
//! The gateway side is `test_gateway` (feature `test-support`), a minimal test-only driver;
//! the gateway role itself is tested in ike_gateway.rs.

use std::net::Ipv4Addr;
use std::time::Duration;

use ferrovpn_ike::config::{ModeCfgMode, RemoteAccessClient, XauthCredentials};
use ferrovpn_ike::crypto::Secret;
use ferrovpn_ike::event::RemoteAccessFailure;
use ferrovpn_ike::exchange::transaction::state::TestGateway;
use ferrovpn_ike::wire::{self, ModeCfgSettings};
use ferrovpn_ike::{ChildConfig, ConnectionConfig, Event, Failure, Phase1Mode, TrafficSelector};
use ferrovpn_tests::{conn_a, conn_b, Pair, Side};

const POOL_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);

fn settings() -> ModeCfgSettings {
    ModeCfgSettings {
        ip4_address: Some(POOL_ADDR),
        ip4_netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        ip4_dns: vec![
            Ipv4Addr::new(203, 0, 113, 53),
            Ipv4Addr::new(203, 0, 113, 54),
        ],
        ip4_nbns: vec![Ipv4Addr::new(203, 0, 113, 55)],
        ip6_address: Some(("2001:db8:1::10".parse().unwrap(), Some(64))),
        ip6_dns: vec!["2001:db8:1::53".parse().unwrap()],
        split_include: vec![(
            Ipv4Addr::new(203, 0, 113, 0),
            Ipv4Addr::new(255, 255, 255, 0),
        )],
        split_dns: vec!["corp.example".into()],
        default_domain: Some("example.org".into()),
        banner: Some("Authorized users only".into()),
        pfs: Some(0),
        save_password: Some(false),
        ..Default::default()
    }
}

/// A client (side A) with credentials `password` and a test gateway (side B) that accepts
/// alice/correct-horse.
fn pair(mode: Phase1Mode, pull: bool, password: &[u8], xauth: bool) -> Pair {
    let (a, b) = pair_configs(mode, pull, password, xauth);
    Pair::new(a, b)
}

/// The two configurations of [`pair`].
fn pair_configs(
    mode: Phase1Mode,
    pull: bool,
    password: &[u8],
    xauth: bool,
) -> (ConnectionConfig, ConnectionConfig) {
    let mut a: ConnectionConfig = conn_a();
    a.mode = mode;
    a.remote_access = Some(RemoteAccessClient {
        xauth: xauth.then(|| XauthCredentials {
            user: "alice".into(),
            password: Secret::new(password.to_vec()),
        }),
        mode_cfg: if pull {
            ModeCfgMode::Pull
        } else {
            ModeCfgMode::Push
        },
    });
    let mut b = conn_b();
    b.mode = mode;
    b.allow_aggressive_psk = true;
    b.test_gateway = Some(TestGateway {
        xauth: xauth.then(|| ("alice".into(), b"correct-horse".to_vec())),
        settings: settings(),
        push: !pull,
        silent: false,
        extra: Vec::new(),
    });
    // The gateway's selectors: everything on its side, the client's assigned address.
    b.children = vec![ChildConfig {
        local_ts: TrafficSelector::any_v4(),
        remote_ts: TrafficSelector::host(POOL_ADDR.into()),
    }];
    (a, b)
}

fn configured(p: &Pair) -> Vec<&ModeCfgSettings> {
    p.events(Side::A)
        .iter()
        .filter_map(|e| match e {
            Event::RemoteAccessConfigured { settings, .. } => Some(settings),
            _ => None,
        })
        .collect()
}

fn transactions(p: &Pair, side: Side) -> usize {
    p.sent_names(side)
        .iter()
        .filter(|n| **n == "TRANSACTION")
        .count()
}

fn assert_connected(p: &Pair) {
    assert_eq!(p.ike_failures(Side::A), Vec::<&Failure>::new());
    assert_eq!(
        configured(p),
        vec![&settings()],
        "every attribute arrives intact"
    );
    let children = p.children(Side::A);
    assert_eq!(children.len(), 1, "one Quick Mode after Mode Config");
    assert_eq!(
        children[0].local_ts,
        TrafficSelector::host(POOL_ADDR.into()),
        "the assigned address is our local selector"
    );
    assert_eq!(p.children(Side::B).len(), 1);
    ferrovpn_tests::assert_mirrored(children[0], p.children(Side::B)[0]);
}

#[test]
fn main_mode_xauth_then_mode_config_pull_then_quick_mode() {
    let mut p = pair(Phase1Mode::Main, true, b"correct-horse", true);
    p.connect();
    assert_connected(&p);
    // XAuth REPLY, STATUS ACK, Mode Config REQUEST; the gateway: REQUEST, SET, REPLY.
    assert_eq!(transactions(&p, Side::A), 3);
    assert_eq!(transactions(&p, Side::B), 3);
}

#[test]
fn aggressive_mode_xauth_then_mode_config_push() {
    let mut p = pair(Phase1Mode::Aggressive, false, b"correct-horse", true);
    p.connect();
    assert_connected(&p);
    // XAuth REPLY, STATUS ACK, SET ACK; the gateway: REQUEST, STATUS SET, settings SET.
    assert_eq!(transactions(&p, Side::A), 3);
    assert_eq!(transactions(&p, Side::B), 3);
}

#[test]
fn xauth_client_offers_auth_method_65001_and_the_xauth_and_unity_vendor_ids() {
    let mut p = pair(Phase1Mode::Main, true, b"correct-horse", true);
    p.a.initiate(p.now, 0);
    let mm1 = p.a.poll_transmit().expect("MM1");
    let msg = wire::Message::parse(&mm1.data).unwrap();
    let Some(wire::Payload::Sa(sa)) = msg.payloads.first() else {
        panic!("MM1 starts with SA")
    };
    let methods: Vec<_> = sa.proposals[0].transforms[0]
        .attributes
        .iter()
        .filter(|a| a.attr_type == wire::attr::ike::AUTHENTICATION_METHOD)
        .map(|a| a.as_u64())
        .collect();
    assert_eq!(methods, vec![Some(65001)]);
    let vendors: Vec<_> = msg
        .payloads
        .iter()
        .filter_map(|p| match p {
            wire::Payload::VendorId(v) => wire::vendor_id::recognise(v),
            _ => None,
        })
        .collect();
    assert!(vendors.contains(&wire::KnownVendor::XAuth), "{vendors:?}");
    assert!(
        vendors.contains(&wire::KnownVendor::CiscoUnity),
        "{vendors:?}"
    );
}

#[test]
fn mode_config_without_xauth_pull() {
    let mut p = pair(Phase1Mode::Main, true, b"", false);
    p.connect();
    assert_connected(&p);
    assert_eq!(transactions(&p, Side::A), 1);
}

#[test]
fn wrong_password_is_a_typed_failure_without_retries() {
    let mut p = pair(Phase1Mode::Main, true, b"wrong", true);
    p.connect();
    let f = p.ike_failures(Side::A);
    assert_eq!(
        f,
        vec![&Failure::RemoteAccess(RemoteAccessFailure::XauthRejected {
            message: Some("Authentication failed".into())
        })]
    );
    assert!(f[0]
        .to_string()
        .contains("rejected the user name or password"));
    assert!(configured(&p).is_empty());
    assert!(p.children(Side::A).is_empty());
    // One REPLY and one ACK, then nothing: no phase 1 or XAuth retried within the hour.
    p.run_for(Duration::from_secs(3600));
    assert_eq!(transactions(&p, Side::A), 2);
    assert_eq!(
        p.sent_names(Side::A)
            .iter()
            .filter(|n| **n == "MM1")
            .count(),
        1
    );
}

#[test]
fn password_never_appears_in_events() {
    let mut p = pair(Phase1Mode::Main, true, b"correct-horse", true);
    p.connect();
    let all = format!("{:?}", p.events(Side::A));
    assert!(!all.contains("correct-horse"));
    assert!(
        all.contains("CPRP"),
        "the XAuth REPLY is logged by payload type only"
    );
}

#[test]
fn site_to_site_connection_still_refuses_a_transaction() {
    // A plain PSK initiator against the test gateway: no 65001 offered, so phase 1 never
    // agrees on XAuth; the gateway without XAuth still sends Mode Config, which is refused.
    let mut a = conn_a();
    a.remote_access = None;
    let mut b = conn_b();
    b.test_gateway = Some(TestGateway {
        xauth: None,
        settings: settings(),
        push: true,
        silent: false,
        extra: Vec::new(),
    });
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::Unprocessable { message, .. } if *message == "TRANSACTION")));
}

#[test]
fn a_gateway_silent_after_phase_1_is_a_typed_failure_within_the_bound() {
    // The gateway completes phase 1 (it accepts 65001) but never starts XAuth.
    let mut b = conn_b();
    b.test_gateway = Some(TestGateway {
        xauth: Some(("alice".into(), b"correct-horse".to_vec())),
        settings: settings(),
        push: false,
        silent: true,
        extra: Vec::new(),
    });
    let mut a = conn_a();
    a.remote_access = Some(RemoteAccessClient {
        xauth: Some(XauthCredentials {
            user: "alice".into(),
            password: Secret::new(b"correct-horse".to_vec()),
        }),
        mode_cfg: ModeCfgMode::Pull,
    });
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(p.established(Side::A), 1);
    assert_eq!(
        p.ike_failures(Side::A),
        vec![&Failure::RemoteAccess(RemoteAccessFailure::GatewaySilent {
            waiting_for: "XAuth REQUEST",
            after: Duration::from_secs(30),
        })]
    );
    assert!(p.children(Side::A).is_empty());
}

#[test]
fn phase_1_rekey_answers_xauth_again_from_the_configured_credentials_and_keeps_the_address() {
    let mut p = pair(Phase1Mode::Main, true, b"correct-horse", true);
    p.connect();
    assert_connected(&p);
    // Past the 8 h ISAKMP SA lifetime: both it and the 1 h IPsec SAs are rekeyed.
    p.run_for(Duration::from_secs(9 * 3600));
    assert_eq!(p.ike_failures(Side::A), Vec::<&Failure>::new());
    assert!(p.established(Side::A) >= 2, "phase 1 was rekeyed");
    let children = p.children(Side::A);
    assert!(children.len() >= 2, "the IPsec SA was rekeyed");
    for c in &children {
        assert_eq!(c.local_ts, TrafficSelector::host(POOL_ADDR.into()));
    }
    // The new ISAKMP SA got its own XAuth round, answered without anyone asked.
    assert!(transactions(&p, Side::A) >= 5);
}

// ---- IPv6 (draft-dukes-ike-mode-cfg §3.3 INTERNAL_IP6_ADDRESS) ----

fn addr6() -> std::net::IpAddr {
    "2001:db8:1::10".parse().unwrap()
}

fn any_v6() -> TrafficSelector {
    TrafficSelector::subnet(std::net::Ipv6Addr::UNSPECIFIED.into(), 0)
}

/// A client tunnelling the families asked for (one pair each), and a gateway whose pairs are
/// the assigned addresses.
fn pair6(v4: bool, v6: bool, extra: Vec<wire::CfgAttribute>) -> Pair {
    let (mut a, mut b) = pair_configs(Phase1Mode::Main, true, b"correct-horse", true);
    a.children.clear();
    b.children.clear();
    if v4 {
        a.children.push(ChildConfig {
            local_ts: TrafficSelector::any_v4(),
            remote_ts: TrafficSelector::any_v4(),
        });
        b.children.push(ChildConfig {
            local_ts: TrafficSelector::any_v4(),
            remote_ts: TrafficSelector::host(POOL_ADDR.into()),
        });
    }
    if v6 {
        a.children.push(ChildConfig {
            local_ts: any_v6(),
            remote_ts: any_v6(),
        });
        b.children.push(ChildConfig {
            local_ts: any_v6(),
            remote_ts: TrafficSelector::host(addr6()),
        });
    }
    if let Some(g) = b.test_gateway.as_mut() {
        g.extra = extra;
    }
    Pair::new(a, b)
}

#[test]
fn a_dual_stack_client_uses_each_assigned_address_as_the_selector_of_its_family() {
    let mut p = pair6(true, true, Vec::new());
    p.connect();
    assert_eq!(p.ike_failures(Side::A), Vec::<&Failure>::new());
    let mut locals: Vec<TrafficSelector> = p.children(Side::A).iter().map(|c| c.local_ts).collect();
    locals.sort_by_key(|t| t.addr);
    assert_eq!(
        locals,
        vec![
            TrafficSelector::host(POOL_ADDR.into()),
            TrafficSelector::host(addr6()),
        ],
        "one Quick Mode per family, each with its assigned address (/128 for IPv6)"
    );
    assert_eq!(p.children(Side::B).len(), 2);
    assert_eq!(
        configured(&p)[0].ip6_address,
        Some(("2001:db8:1::10".parse().unwrap(), Some(64)))
    );
}

#[test]
fn an_ipv6_only_client_asks_for_ipv6_only_and_runs_its_ipv6_pair() {
    let mut p = pair6(false, true, Vec::new());
    p.connect();
    assert_eq!(p.ike_failures(Side::A), Vec::<&Failure>::new());
    let children = p.children(Side::A);
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].local_ts, TrafficSelector::host(addr6()));
    ferrovpn_tests::assert_mirrored(children[0], p.children(Side::B)[0]);
}

#[test]
fn a_reply_without_an_address_of_our_family_is_a_typed_failure() {
    let (mut a, mut b) = pair_configs(Phase1Mode::Main, true, b"correct-horse", true);
    a.children = vec![ChildConfig {
        local_ts: any_v6(),
        remote_ts: any_v6(),
    }];
    if let Some(g) = b.test_gateway.as_mut() {
        g.settings.ip6_address = None;
    }
    let mut p = Pair::new(a, b);
    p.connect();
    let f = p.ike_failures(Side::A);
    assert!(
        matches!(&f[..], [Failure::RemoteAccess(RemoteAccessFailure::ModeConfig(m))] if m.contains("no INTERNAL_IP6_ADDRESS")),
        "{f:?}"
    );
    assert!(p.children(Side::A).is_empty());
}

#[test]
fn a_duplicate_or_malformed_ipv6_address_is_a_typed_failure_without_quick_mode() {
    let dup = wire::CfgAttribute::variable(
        wire::CfgAttrType::INTERNAL_IP6_ADDRESS,
        "2001:db8:1::11"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec(),
    );
    let short = wire::CfgAttribute::variable(wire::CfgAttrType::INTERNAL_IP6_DNS, vec![0x20; 15]);
    for extra in [dup, short] {
        let mut p = pair6(true, true, vec![extra]);
        p.connect();
        let f = p.ike_failures(Side::A);
        assert!(
            matches!(
                &f[..],
                [Failure::RemoteAccess(RemoteAccessFailure::ModeConfig(_))]
            ),
            "{f:?}"
        );
        assert!(p.children(Side::A).is_empty());
    }
}
