//! Configuration parsing and validation, key by key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals};

use super::connection::*;
use super::daemon::*;
use super::defaults::*;
use super::error::*;
use super::identity::*;
use super::negotiation::*;
use super::remark::*;
use super::secret::*;
use super::tunnel::*;
use super::units::*;
use super::*;
use crate::secret_file::tests::TempDir;

const HEAD: &str = r#"
[[connection]]
name = "site-b"
local_addr = "192.0.2.1"
remote_addr = "192.0.2.2"
start = "initiate"
"#;

fn with(extra: &str, tunnel: &str) -> String {
    format!("{HEAD}{extra}\n{tunnel}")
}

const RB: &str = "[connection.route_based]\ninterface = \"fv0\"\n";
const PB: &str = "[connection.policy_based]\npairs = [{ local = \"198.51.100.0/24\", remote = \"203.0.113.0/24\" }]\n";

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::parse(s, Path::new("/nonexistent"))
}

fn err(s: &str) -> String {
    parse(s).unwrap_err().to_string()
}

fn example(name: &str) -> &'static str {
    match name {
        "route-based.toml" => include_str!("../../../../config/route-based.toml"),
        _ => include_str!("../../../../config/policy-based.toml"),
    }
}

/// The example configs use psk_file; make a private copy of the key beside a copy of the file.
fn load_example(name: &str) -> Config {
    let dir = std::env::temp_dir().join(format!("ferrovpn-cfg-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = example(name).replace("/etc/ferrovpn/", "");
    for line in text.lines() {
        if let Some(rest) = line.trim().strip_prefix("psk_file = \"") {
            let f = dir.join(rest.split('"').next().unwrap());
            std::fs::write(&f, "example-secret\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let cfg = Config::parse(&text, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    cfg.unwrap()
}

#[test]
fn tcp_mss_is_auto_unless_set_off_or_to_a_number() {
    let mss = |t: &str| parse(&with("psk = \"x\"", t)).unwrap().connections[0].tcp_mss;
    assert_eq!(mss(RB), TcpMss::Auto);
    assert_eq!(mss(PB), TcpMss::Auto);
    assert_eq!(mss(&format!("{RB}tcp_mss = \"auto\"")), TcpMss::Auto);
    assert_eq!(mss(&format!("{RB}tcp_mss = \"off\"")), TcpMss::Off);
    assert_eq!(mss(&format!("{RB}tcp_mss = 1200")), TcpMss::Fixed(1200));
    assert_eq!(mss(&format!("{PB}tcp_mss = 536")), TcpMss::Fixed(536));
}

#[test]
fn example_route_based_parses() {
    let c = load_example("route-based.toml");
    assert_eq!(c.connections.len(), 1);
    let conn = &c.connections[0];
    assert_eq!(conn.psk.as_bytes(), b"example-secret");
    assert!(matches!(conn.tunnel, Tunnel::RouteBased(_)));
}

#[test]
fn example_policy_based_parses() {
    let c = load_example("policy-based.toml");
    assert!(c
        .connections
        .iter()
        .any(|c| matches!(c.tunnel, Tunnel::PolicyBased(_))));
}

#[test]
fn key_export_and_metrics_are_opt_in_and_metrics_stay_local_unless_allowed() {
    let dir = TempDir::new("keys-opt-in");
    std::fs::create_dir(dir.0.join("keys")).unwrap();
    let daemon = "[daemon]\nsave_keys_dir = \"keys\"\nmetrics_listen = \"[::1]:9273\"\n";
    let c = Config::parse(&format!("{daemon}{}", with("psk = \"s3cret\"", RB)), &dir.0).unwrap();
    assert_eq!(c.daemon.save_keys_dir, Some(dir.0.join("keys")));
    assert_eq!(c.daemon.metrics_listen, Some("[::1]:9273".parse().unwrap()));
    let remote = "[daemon]\nmetrics_listen = \"192.0.2.1:9273\"\nmetrics_allow_remote = true\n";
    let c = parse(&format!("{remote}{}", with("psk = \"s3cret\"", RB))).unwrap();
    assert_eq!(
        c.daemon.metrics_listen,
        Some("192.0.2.1:9273".parse().unwrap())
    );
}

#[test]
fn minimal_connection_gets_documented_defaults() {
    let c = parse(&with("psk = \"s3cret\"", RB)).unwrap();
    assert_eq!(
        c.daemon.control_socket,
        Path::new("/run/ferrovpn/ferrovpn.sock")
    );
    assert_eq!(c.daemon.log_level, LogLevel::Info);
    assert_eq!(c.daemon.save_keys_dir, None);
    assert_eq!(c.daemon.metrics_listen, None);
    let conn = &c.connections[0];
    assert_eq!(conn.mode, Mode::Main);
    assert_eq!(conn.local_id, Identity::Ipv4("192.0.2.1".parse().unwrap()));
    assert_eq!(conn.remote_id, Identity::Ipv4("192.0.2.2".parse().unwrap()));
    assert_eq!(conn.ike, parse_ike_proposals(DEFAULT_IKE).unwrap());
    assert_eq!(conn.esp, parse_esp_proposals(DEFAULT_ESP).unwrap());
    assert_eq!(conn.ike_lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(conn.esp_lifetime, Duration::from_secs(3600));
    assert_eq!(conn.nat_traversal, NatTraversal::Auto);
    assert_eq!(
        conn.dpd,
        Some(Dpd {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(150)
        })
    );
    let Tunnel::RouteBased(r) = &conn.tunnel else {
        panic!()
    };
    assert_eq!(r.selectors.len(), 1);
    assert_eq!(r.selectors[0].local.to_string(), "0.0.0.0/0");
    assert_eq!(r.routes, vec![r.selectors[0].remote]);
}

/// Dual stack: both default routes alone give one selector pair per family (IPv4 first), each
/// a Quick Mode of its own, on the one TUN; explicit lists pair up by family.
#[test]
fn route_based_dual_stack_has_one_selector_pair_per_family() {
    let text = with(
        "psk = \"x\"",
        "[connection.route_based]\ninterface = \"fv0\"\nroutes = [\"::/0\", \"0.0.0.0/0\"]\naddress = [\"198.51.100.1/32\", \"2001:db8:1::1/128\"]",
    );
    let c = parse(&text).unwrap();
    let conn = &c.connections[0];
    let Tunnel::RouteBased(r) = &conn.tunnel else {
        panic!()
    };
    let sel: Vec<String> = r
        .selectors
        .iter()
        .map(|p| format!("{} <=> {}", p.local, p.remote))
        .collect();
    assert_eq!(sel, ["0.0.0.0/0 <=> 0.0.0.0/0", "::/0 <=> ::/0"]);
    assert!(r.carries_ipv6());
    assert_eq!(r.addresses.len(), 2);
    assert_eq!(crate::convert::connection(conn).children.len(), 2);

    let text = with(
        "psk = \"x\"",
        "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = [\"2001:db8:1::/48\", \"198.51.100.0/24\"]\nremote_ts = [\"203.0.113.0/24\", \"2001:db8:2::/48\"]",
    );
    let c = parse(&text).unwrap();
    let Tunnel::RouteBased(r) = &c.connections[0].tunnel else {
        panic!()
    };
    let sel: Vec<String> = r
        .selectors
        .iter()
        .map(|p| format!("{} <=> {}", p.local, p.remote))
        .collect();
    assert_eq!(
        sel,
        [
            "198.51.100.0/24 <=> 203.0.113.0/24",
            "2001:db8:1::/48 <=> 2001:db8:2::/48"
        ]
    );
    assert_eq!(r.routes, vec![r.selectors[0].remote, r.selectors[1].remote]);
}

#[test]
fn identities_with_prefixes() {
    let c = parse(&with(
        "psk = \"x\"\nlocal_id = \"fqdn:a.example\"\nremote_id = \"keyid:#0a0b\"",
        RB,
    ))
    .unwrap();
    assert_eq!(
        c.connections[0].local_id,
        Identity::Fqdn("a.example".into())
    );
    assert_eq!(c.connections[0].remote_id, Identity::KeyId(vec![10, 11]));
    assert_eq!(
        parse_identity("x", "userfqdn:vpn@example.org").unwrap(),
        Identity::UserFqdn("vpn@example.org".into())
    );
    assert_eq!(
        parse_identity("x", "2001:db8::1").unwrap().to_string(),
        "2001:db8::1"
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172800));
    assert!(parse_duration("8").unwrap_err().contains("needs a unit"));
    assert!(parse_duration("8x").is_err());
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("99999999999999999999s").is_err());
    assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
    assert_eq!(format_duration(Duration::from_secs(28800)), "8h");
}

#[test]
fn psk_is_redacted_in_debug() {
    let c = parse(&with("psk = \"topsecret\"", RB)).unwrap();
    assert!(!format!("{:?}", c.connections[0]).contains("topsecret"));
}

#[test]
fn psk_file_permissions_are_checked() {
    let dir = std::env::temp_dir().join(format!("ferrovpn-psk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("k.psk");
    std::fs::write(&f, "  from-file \n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = with("psk_file = \"k.psk\"", RB);
    let e = Config::parse(&text, &dir).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "connection \"site-b\": psk_file {} is readable by group/others (mode 0644); run: chmod 600 {}",
            f.display(),
            f.display()
        )
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o620)).unwrap();
    let e = Config::parse(&text, &dir).unwrap_err().to_string();
    assert!(e.contains("writable by group/others (mode 0620)"), "{e}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::parse(&text, &dir).unwrap();
    assert_eq!(c.connections[0].psk.as_bytes(), b"from-file");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each bad config and the one message it must produce.
#[test]
fn bad_configs_give_one_clear_message() {
    let rb = RB;
    let cases: Vec<(String, &str)> = vec![
        (with("psk = \"x\"\nike = \"aes257-sha256-modp2048\"", rb),
         "connection \"site-b\": ike: unknown algorithm 'aes257' in 'aes257-sha256-modp2048'"),
        (with("", rb), "connection \"site-b\": set exactly one of psk or psk_file"),
        (with("psk = \"x\"\npsk_file = \"/x\"", rb), "connection \"site-b\": set exactly one of psk or psk_file"),
        (with("psk = \"x\"", ""), "connection \"site-b\": set exactly one of [connection.route_based] or [connection.policy_based]"),
        (format!("{HEAD}psk = \"x\"\n{RB}{PB}"), "connection \"site-b\": set exactly one of [connection.route_based] or [connection.policy_based]"),
        (with("psk = \"x\"\nremote_addr = \"2001:db8::2\"", rb).replace("remote_addr = \"192.0.2.2\"\n", ""),
         "connection \"site-b\": local_addr 192.0.2.1 and remote_addr 2001:db8::2 are of different address families"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"198.51.100.1/24\""),
         "connection \"site-b\": route_based.local_ts: 198.51.100.1/24 has host bits set (did you mean 198.51.100.0/24?)"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"0.0.0.0/0\"\nremote_ts = \"2001:db8::/32\""),
         "connection \"site-b\": route_based: local_ts 0.0.0.0/0 and remote_ts 2001:db8::/32 are of different address families"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = [\"0.0.0.0/0\", \"::/0\"]\nremote_ts = \"::/0\""),
         "connection \"site-b\": route_based: local_ts 0.0.0.0/0, ::/0 and remote_ts ::/0 are of different address families"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nremote_ts = [\"203.0.113.0/24\", \"198.51.100.0/24\"]"),
         "connection \"site-b\": route_based.remote_ts: 203.0.113.0/24 and 198.51.100.0/24 are both IPv4; a route-based connection has one selector per address family (use routes for more prefixes, or policy_based for several pairs)"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nroutes = [\"203.0.113.0/24\", \"::/0\"]\nremote_ts = \"203.0.113.0/24\""),
         "connection \"site-b\": route_based.routes: ::/0 is IPv6 but the traffic selectors are IPv4; add a IPv6 local_ts/remote_ts"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nroutes = [\"0.0.0.0/0\", \"::/0\"]\nmtu = 1279"),
         "connection \"site-b\": route_based.mtu: 1279 is outside 1280..=65535 for IPv6 traffic (RFC 8200 §5: every IPv6 link carries 1280 bytes)"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nremote_ts = \"203.0.113.0/24\"\nroutes = [\"10.0.0.0/8\"]"),
         "connection \"site-b\": route_based.routes: 10.0.0.0/8 is outside remote_ts 203.0.113.0/24; the SA would drop that traffic"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nroutes = [\"192.0.2.0/24\"]"),
         "connection \"site-b\": route_based.routes: 192.0.2.0/24 contains remote_addr 192.0.2.2; packets to the peer would loop into the tunnel"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"a-very-long-name0\""),
         "connection \"site-b\": route_based.interface: 'a-very-long-name0' must be 1 to 15 characters (Linux IFNAMSIZ)"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"198.51.100.0/24\"\naddress = \"203.0.113.1/32\""),
         "connection \"site-b\": route_based.address: 203.0.113.1 is outside local_ts 198.51.100.0/24"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nmtu = 100"),
         "connection \"site-b\": route_based.mtu: 100 is outside 576..=65535 for IPv4 traffic"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\ntcp_mss = 500"),
         "connection \"site-b\": route_based.tcp_mss: 500 is outside 536..=65495 for IPv4 traffic"),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nremote_ts = \"2001:db8::/32\"\nlocal_ts = \"2001:db8:1::/48\"\ntcp_mss = 1200"),
         "connection \"site-b\": route_based.tcp_mss: 1200 is outside 1220..=65495 for IPv6 traffic"),
        (with("psk = \"x\"", &format!("{PB}tcp_mss = 70000")),
         "connection \"site-b\": policy_based.tcp_mss: 70000 is outside 536..=65495 for IPv4 traffic"),
        (with("psk = \"x\"", &format!("{PB}tcp_mss = \"clamp\"")),
         "connection \"site-b\": policy_based.tcp_mss: 'clamp' is not \"auto\", \"off\" or an MSS in bytes"),
        (with("psk = \"x\"", "[connection.policy_based]\npairs = [{ local = \"198.51.100.0/24\", remote = \"2001:db8::/32\" }]"),
         "connection \"site-b\": policy_based.pairs[0]: local 198.51.100.0/24 and remote 2001:db8::/32 are of different address families"),
        (with("psk = \"x\"", "[connection.policy_based]\npairs = [{ local = \"192.0.2.1/32\", remote = \"192.0.2.2/32\" }]"),
         "connection \"site-b\": policy_based.pairs[0]: remote 192.0.2.2/32 contains remote_addr 192.0.2.2; packets to the peer would loop into the tunnel"),
        (with("psk = \"x\"", "[connection.policy_based]\npairs = []"),
         "connection \"site-b\": policy_based.pairs: list at least one { local, remote } pair"),
        (with("psk = \"x\"\nike = \"aes128-sha1-modp1024\"", rb),
         "connection \"site-b\": ike: modp1024 in 'aes128-sha1-modp1024' is a weak DH group (under 2048 bits); use modp2048 or stronger, or set allow_weak_dh = true"),
        (with("psk = \"x\"\nesp = \"aes128gcm16-modp1536\"", rb),
         "connection \"site-b\": esp: modp1536 in 'aes128gcm16-modp1536' is a weak DH group (under 2048 bits); use modp2048 or stronger, or set allow_weak_dh = true"),
        (with("psk = \"x\"\nesp = \"aes128gcm16-modp2048,aes128gcm16\"", rb),
         "connection \"site-b\": esp: 'aes128gcm16-modp2048,aes128gcm16' mixes proposals with and without a DH group; IKEv1 Quick Mode either sends KE or not, so give every proposal a group or none"),
        (with("psk = \"x\"\nike = \"aes128gcm16-modp2048\"", rb),
         "connection \"site-b\": ike: 'aes128gcm16' in 'aes128gcm16-modp2048': IKEv1 has no AEAD phase 1 ciphers; use a CBC cipher with a hash, e.g. aes256-sha256-modp2048"),
        (with("psk = \"x\"\nmode = \"aggressive\"", rb).replace("initiate", "respond"),
         "connection \"site-b\": mode = \"aggressive\" as responder sends a PSK-keyed hash an eavesdropper can crack offline; set allow_aggressive_psk = true to accept that"),
        (with("psk = \"x\"\nike_lifetime = \"8\"", rb),
         "connection \"site-b\": ike_lifetime: '8' needs a unit: s, m, h or d (e.g. 8s)"),
        (with("psk = \"x\"\nesp_lifetime = \"5s\"", rb),
         "connection \"site-b\": esp_lifetime: 5s is too short (at least 10s)"),
        (with("psk = \"x\"\ndpd_interval = \"60s\"\ndpd_timeout = \"30s\"", rb),
         "connection \"site-b\": dpd_timeout (30s) must be longer than dpd_interval (1m)"),
        (with("psk = \"x\"\nremote_id = \"peer.example\"", rb),
         "connection \"site-b\": remote_id: 'peer.example' is not an IP address; write fqdn:peer.example, userfqdn:peer.example or keyid:peer.example"),
        (with("psk = \"x\"\nlocal_addr = \"192.0.2.300\"", rb).replace("local_addr = \"192.0.2.1\"\n", ""),
         "connection \"site-b\": local_addr: '192.0.2.300' is not an IP address"),
        (with("psk = \"x\"\nesp_lifetime_bytes = 0", rb),
         "connection \"site-b\": esp_lifetime_bytes: must be greater than 0 (leave it out for no limit)"),
        (format!("{}{}", with("psk = \"x\"", rb), with("psk = \"y\"", PB)),
         "connection \"site-b\": duplicate connection name"),
        (format!("{}{}", with("psk = \"x\"", rb), with("psk = \"y\"", PB).replace("site-b", "site-c")),
         "connection \"site-c\": uses the same local_addr/remote_addr pair as connection \"site-b\"; IKEv1 with PSK identifies the peer by address, so the two cannot be told apart"),
        ("[daemon]\nlog_level = \"loud\"\n".to_string(),
         "daemon: log_level: 'loud' is not one of error, warn, info, debug, trace"),
        ("[daemon]\nsave_keys_dir = \"keys\"\n".to_string(),
         "daemon: save_keys_dir: /nonexistent/keys does not exist"),
        ("[daemon]\nmetrics_listen = \"9273\"\n".to_string(),
         "daemon: metrics_listen: '9273' is not an address:port such as 127.0.0.1:9273 or [::1]:9273"),
        ("[daemon]\nmetrics_listen = \"192.0.2.1:9273\"\n".to_string(),
         "daemon: metrics_listen: 192.0.2.1:9273 is not a loopback address; the endpoint has no authentication, set metrics_allow_remote = true to serve it there anyway"),
        ("[daemon]\nworkers = 2\n".to_string(), "no [[connection]] defined"),
        ("[daemon]\nretransmit_timeout = \"0s\"\n".to_string(),
         "daemon: retransmit_timeout: 0s is outside 1s to 1m"),
        ("[daemon]\nretransmit_timeout = \"2m\"\n".to_string(),
         "daemon: retransmit_timeout: 2m is outside 1s to 1m"),
        ("[daemon]\nretransmit_base = 0.5\n".to_string(),
         "daemon: retransmit_base: 0.5 is outside 1.0 to 4.0"),
        ("[daemon]\nretransmit_tries = 0\n".to_string(),
         "daemon: retransmit_tries: 0 is outside 1 to 20"),
        ("[daemon]\nmax_half_open = 0\n".to_string(),
         "daemon: max_half_open: 0 is outside 1 to 1048576"),
        ("[daemon]\nmax_half_open = 1048577\n".to_string(),
         "daemon: max_half_open: 1048577 is outside 1 to 1048576"),
        ("[daemon]\ndh_pool = 65537\n".to_string(),
         "daemon: dh_pool: 65537 is above the maximum of 65536"),
        ("[daemon]\ndh_workers = 65\n".to_string(),
         "daemon: dh_workers: 65 is above the maximum of 64"),
    ];
    for (text, want) in cases {
        assert_eq!(err(&text), want, "config:\n{text}");
    }
}

#[test]
fn typos_and_bad_enums_are_caught_by_the_parser() {
    let e = err(&with("psk = \"x\"\nlocal_adr = \"192.0.2.1\"", RB));
    assert!(e.contains("unknown field `local_adr`"), "{e}");
    let e = err(&with(
        "psk = \"x\"",
        "[connection.route_based]\ninterface = \"fv0\"\nroute = []",
    ));
    assert!(e.contains("unknown field `route`"), "{e}");
    let e = err(&with("psk = \"x\"\nmode = \"mian\"", RB));
    assert!(e.contains("unknown variant `mian`"), "{e}");
    let e = err(&with("psk = \"x\"\nnat_traversal = \"yes\"", RB));
    assert!(e.contains("unknown variant `yes`"), "{e}");
}

#[test]
fn ipv6_route_based_and_aggressive_opt_in() {
    let text = r#"
[[connection]]
name = "v6"
local_addr = "2001:db8::1"
remote_addr = "2001:db8::2"
psk = "x"
mode = "aggressive"
allow_aggressive_psk = true
start = "respond"
dpd_interval = "0s"
[connection.route_based]
interface = "fv6"
local_ts = "2001:db8:1::/48"
remote_ts = "::/0"
routes = ["::/0"]
address = "2001:db8:1::1/64"
"#;
    let c = parse(text).unwrap();
    let conn = &c.connections[0];
    assert_eq!(conn.dpd, None);
    assert_eq!(
        conn.nat_keepalive,
        Some(Duration::from_secs(20)),
        "the default"
    );
    let off = parse(&text.replace("dpd_interval", "nat_keepalive")).unwrap();
    assert_eq!(off.connections[0].nat_keepalive, None, "\"0s\": off");
    let Tunnel::RouteBased(r) = &conn.tunnel else {
        panic!()
    };
    assert!(r.routes[0].is_default() && r.routes[0].is_ipv6());
    assert_eq!(r.addresses[0].to_string(), "2001:db8:1::1/64");
}

#[test]
fn retransmission_schedule_is_configurable_for_fast_failing_tests() {
    let c = parse(&with("psk = \"x\"", RB)).unwrap();
    assert_eq!(c.daemon.retransmit, Retransmit::default());
    let text = format!(
        "[daemon]\nretransmit_timeout = \"1s\"\nretransmit_base = 1.0\nretransmit_tries = 2\n{}",
        with("psk = \"x\"", RB)
    );
    let r = parse(&text).unwrap().daemon.retransmit;
    assert_eq!(
        (r.timeout, r.base, r.tries),
        (Duration::from_secs(1), 1.0, 2)
    );
    // First send plus two retransmissions, one second apart each: given up after 3 s.
    assert_eq!(r.give_up_after(), Duration::from_secs(3));
}

#[test]
fn the_half_open_limit_is_configurable_and_by_default_scaled_to_the_hosts_memory() {
    use super::defaults::default_max_half_open;
    let c = parse(&with("psk = \"x\"", RB)).unwrap();
    assert_eq!(
        c.daemon.max_half_open,
        default_max_half_open(super::defaults::mem_total())
    );
    let text = format!("[daemon]\nmax_half_open = 50\n{}", with("psk = \"x\"", RB));
    assert_eq!(parse(&text).unwrap().daemon.max_half_open, 50);
    // 1/256 of the memory at 4 KiB per negotiation, between 1024 and 65536.
    const GIB: u64 = 1 << 30;
    assert_eq!(default_max_half_open(None), 1024);
    assert_eq!(default_max_half_open(Some(GIB / 2)), 1024);
    assert_eq!(default_max_half_open(Some(4 * GIB)), 4096);
    assert_eq!(default_max_half_open(Some(24 * GIB)), 24_576);
    assert_eq!(default_max_half_open(Some(1024 * GIB)), 65_536);
}

fn warnings(c: &Config) -> Vec<String> {
    c.remarks
        .iter()
        .filter(|r| r.severity == Severity::Warning)
        .map(|r| r.to_string())
        .filter(|t| !t.contains("is not an address of this host"))
        .collect()
}

#[test]
fn configured_durations_have_a_maximum_named_in_the_error() {
    let cases = [
        (
            "ike_lifetime = \"2d\"",
            "ike_lifetime: 2d is above the maximum of 1d",
        ),
        (
            "esp_lifetime = \"25h\"",
            "esp_lifetime: 25h is above the maximum of 1d",
        ),
        (
            "ike_lifetime = \"18446744073709551615s\"",
            "ike_lifetime: 18446744073709551615s is above the maximum of 1d",
        ),
        (
            "dpd_interval = \"2h\"",
            "dpd_interval: 2h is above the maximum of 1h",
        ),
        (
            "dpd_timeout = \"3h\"",
            "dpd_timeout: 3h is above the maximum of 2h",
        ),
        (
            "nat_keepalive = \"2h\"",
            "nat_keepalive: 2h is above the maximum of 1h",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(
            err(&with(&format!("psk = \"x\"\n{line}"), RB)),
            format!("connection \"site-b\": {want}")
        );
    }
    // The maxima themselves are accepted.
    let c = parse(&with(
        "psk = \"x\"\nike_lifetime = \"24h\"\nesp_lifetime = \"1d\"\ndpd_interval = \"1h\"\ndpd_timeout = \"2h\"",
        RB,
    ))
    .unwrap();
    assert_eq!(c.connections[0].ike_lifetime, MAX_LIFETIME);
    let text = format!(
        "[daemon]\nretransmit_timeout = \"1m\"\nretransmit_base = 2.0\nretransmit_tries = 10\n{}",
        with("psk = \"x\"", RB)
    );
    assert_eq!(
        err(&text),
        "daemon: retransmit_timeout 1m, retransmit_base 2 and retransmit_tries 10 would retransmit an unanswered exchange for 34h, 6m, 0s; the maximum is 1h"
            .replace("34h, 6m, 0s", &format_duration(Duration::from_secs(60 * 2047)))
    );
}

/// The control socket lives in the run directory unless set: the CLI's default is the default
/// run_dir's socket, another run_dir moves it along (the directory need not exist yet: the
/// daemon creates it), and an explicit control_socket wins.
#[test]
fn the_default_control_socket_follows_run_dir() {
    assert_eq!(
        Path::new(crate::runstate::DEFAULT_RUN_DIR).join(super::defaults::CONTROL_SOCKET_NAME),
        Path::new(DEFAULT_CONTROL_SOCKET)
    );
    let c = parse(&format!(
        "[daemon]\nrun_dir = \"/nonexistent-fv/run\"\n{}",
        with("psk = \"x\"", RB)
    ))
    .unwrap();
    assert_eq!(
        c.daemon.control_socket,
        Path::new("/nonexistent-fv/run/ferrovpn.sock")
    );
    let c = parse(&format!(
        "[daemon]\nrun_dir = \"/nonexistent-fv/run\"\ncontrol_socket = \"/tmp/x.sock\"\n{}",
        with("psk = \"x\"", RB)
    ))
    .unwrap();
    assert_eq!(c.daemon.control_socket, Path::new("/tmp/x.sock"));
}

#[test]
fn check_refuses_what_up_would_refuse_or_cannot_work() {
    let dir = TempDir::new("check-refuses");
    let d = dir.0.display().to_string();
    std::fs::write(dir.0.join("file"), "").unwrap();
    let long = format!("/tmp/{}.sock", "s".repeat(110));
    let cases: Vec<(String, String)> = vec![
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"lo\""),
         "connection \"site-b\": route_based.interface: lo is an existing loopback device, not a TUN; ferrovpn creates its own TUN device, so pick a name no interface has".into()),
        (format!("[daemon]\ncontrol_socket = \"\"\n{}", with("psk = \"x\"", RB)),
         "daemon: control_socket: must not be empty (the default is /run/ferrovpn/ferrovpn.sock)".into()),
        (format!("[daemon]\ncontrol_socket = \"{d}\"\n{}", with("psk = \"x\"", RB)),
         format!("daemon: control_socket: {d} is a directory; name the socket file, e.g. {d}/ferrovpn.sock")),
        (format!("[daemon]\ncontrol_socket = \"file\"\n{}", with("psk = \"x\"", RB)),
         format!("daemon: control_socket: {d}/file exists and is not a socket; ferrovpn will not replace it")),
        (format!("[daemon]\ncontrol_socket = \"none/s.sock\"\n{}", with("psk = \"x\"", RB)),
         format!("daemon: control_socket: {d}/none/s.sock: directory {d}/none does not exist")),
        (format!("[daemon]\ncontrol_socket = \"{long}\"\n{}", with("psk = \"x\"", RB)),
         format!("daemon: control_socket: {long} is 120 bytes long; a Unix socket path holds at most 107")),
        (format!("[daemon]\nworkers = 10000\n{}", with("psk = \"x\"", RB)),
         "daemon: workers: 10000 is above the maximum of 64 (each worker is a thread per direction and a queue of every TUN device)".into()),
        (format!("[daemon]\nsave_keys_dir = \"missing\"\n{}", with("psk = \"x\"", RB)),
         format!("daemon: save_keys_dir: {d}/missing does not exist")),
        (format!("[daemon]\nsave_keys_dir = \"file\"\n{}", with("psk = \"x\"", RB)),
         format!("daemon: save_keys_dir: {d}/file is a regular file, not a directory")),
        (with("psk = \"x\"\nremote_addr = \"224.0.0.5\"", RB).replace("remote_addr = \"192.0.2.2\"\n", ""),
         "connection \"site-b\": remote_addr: 224.0.0.5 is a multicast address; IKE needs a unicast address".into()),
        (with("psk = \"x\"\nremote_addr = \"255.255.255.255\"", RB).replace("remote_addr = \"192.0.2.2\"\n", ""),
         "connection \"site-b\": remote_addr: 255.255.255.255 is the broadcast address; IKE needs a unicast address".into()),
        (with("psk = \"x\"\nremote_addr = \"0.0.0.0\"", RB).replace("remote_addr = \"192.0.2.2\"\n", ""),
         "connection \"site-b\": remote_addr: 0.0.0.0 is the unspecified address; IKE needs a unicast address".into()),
        (with("psk = \"x\"\nlocal_addr = \"ff02::1\"\nremote_addr = \"2001:db8::2\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"::/0\"\nremote_ts = \"::/0\"")
            .replace("local_addr = \"192.0.2.1\"\n", "").replace("remote_addr = \"192.0.2.2\"\n", ""),
         "connection \"site-b\": local_addr: ff02::1 is a multicast address; IKE needs a unicast address".into()),
        (with("psk = \"x\"", &format!("{RB}mtu = 1400\ntcp_mss = 1361")),
         "connection \"site-b\": route_based.tcp_mss: 1361 is above mtu 1400 - 40 = 1360; segments that size do not fit the tunnel".into()),
        (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"2001:db8:1::/48\"\nremote_ts = \"2001:db8:2::/48\"\nmtu = 1400\ntcp_mss = 1341"),
         "connection \"site-b\": route_based.tcp_mss: 1341 is above mtu 1400 - 60 = 1340; segments that size do not fit the tunnel".into()),
        (with("psk = \"x\"", &format!("{RB}routes = []")),
         "connection \"site-b\": route_based.routes: empty, so nothing would be routed into fv0; leave routes out to route remote_ts, or list the prefixes".into()),
    ];
    for (text, want) in cases {
        let got = Config::parse_for(&text, &dir.0, Purpose::Check)
            .unwrap_err()
            .to_string();
        assert_eq!(got, want, "config:\n{text}");
        // `up` shares the validation.
        assert_eq!(Config::parse(&text, &dir.0).unwrap_err().to_string(), want);
    }
    // At the limits: accepted.
    let ok = format!(
        "[daemon]\nworkers = 64\ncontrol_socket = \"ctl.sock\"\n{}",
        with("psk = \"x\"", &format!("{RB}mtu = 1400\ntcp_mss = 1360"))
    );
    let c = Config::parse(&ok, &dir.0).unwrap();
    assert_eq!(c.daemon.control_socket, dir.0.join("ctl.sock"));
}

#[test]
fn unsafe_key_dirs_are_refused_by_check_and_up() {
    let dir = TempDir::new("keydir-check");
    let real = dir.0.join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, dir.0.join("link")).unwrap();
    let cfg = |k: &str| {
        format!(
            "[daemon]\nsave_keys_dir = \"{k}\"\n{}",
            with("psk = \"x\"", RB)
        )
    };
    let e = Config::parse(&cfg("link"), &dir.0).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "daemon: save_keys_dir: {}/link is a symbolic link (to {}); refusing to follow it: name the real directory itself",
            dir.0.display(),
            real.display()
        )
    );
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Config::parse_for(&cfg("real"), &dir.0, Purpose::Check)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "daemon: save_keys_dir: {} is writable by group/others (mode 0777)",
            real.display()
        )),
        "{e}"
    );
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = dir.0.join("victim");
    std::fs::write(&victim, "x").unwrap();
    std::os::unix::fs::symlink(&victim, real.join("ikev1_decryption_table")).unwrap();
    let e = Config::parse(&cfg("real"), &dir.0).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "daemon: save_keys_dir: {}/ikev1_decryption_table is a symbolic link",
            real.display()
        )),
        "{e}"
    );
    std::fs::remove_file(real.join("ikev1_decryption_table")).unwrap();
    let c = Config::parse(&cfg("real"), &dir.0).unwrap();
    assert_eq!(c.daemon.save_keys_dir, Some(real));
}

#[test]
fn a_symlinked_psk_file_is_refused_as_a_symlink() {
    let dir = TempDir::new("psk-link");
    let real = dir.0.join("real.psk");
    std::fs::write(&real, "secret").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&real, dir.0.join("k.psk")).unwrap();
    let text = with("psk_file = \"k.psk\"", RB);
    for purpose in [Purpose::Run, Purpose::Check] {
        let e = Config::parse_for(&text, &dir.0, purpose)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "connection \"site-b\": psk_file {}/k.psk is a symbolic link (to {}); refusing to follow it: name the real file itself",
                dir.0.display(),
                real.display()
            )
        );
    }
}

#[test]
fn a_missing_psk_file_fails_up_and_is_a_warning_for_check() {
    let dir = TempDir::new("psk-missing");
    let text = with("psk_file = \"site.psk\"", RB);
    let f = dir.0.join("site.psk");
    assert_eq!(
        Config::parse(&text, &dir.0).unwrap_err().to_string(),
        format!(
            "connection \"site-b\": psk_file {} does not exist",
            f.display()
        )
    );
    let c = Config::parse_for(&text, &dir.0, Purpose::Check).unwrap();
    assert_eq!(c.connections[0].psk_file.as_deref(), Some(f.as_path()));
    assert_eq!(
        warnings(&c),
        vec![format!("connection \"site-b\": psk_file {} does not exist (yet): `ferrovpn up` refuses to start until it does; create it with mode 600", f.display())]
    );
    // Anything else wrong with it stays an error for check too.
    std::fs::write(&f, "k").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Config::parse_for(&text, &dir.0, Purpose::Check).is_err());
}

#[test]
fn relative_paths_are_resolved_against_the_config_files_directory() {
    let dir = TempDir::new("relative");
    std::fs::create_dir(dir.0.join("sub")).unwrap();
    std::fs::create_dir(dir.0.join("sub/keys")).unwrap();
    std::fs::set_permissions(
        dir.0.join("sub/keys"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let psk = dir.0.join("sub/site.psk");
    std::fs::write(&psk, "from-file\n").unwrap();
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let conf = dir.0.join("sub/ferrovpn.toml");
    std::fs::write(
        &conf,
        format!(
            "[daemon]\ncontrol_socket = \"run.sock\"\nsave_keys_dir = \"keys\"\n{}",
            with("psk_file = \"site.psk\"", RB)
        ),
    )
    .unwrap();
    // Loaded from elsewhere (the working directory is not the config's): same files.
    let c = Config::load(&conf).unwrap();
    assert_eq!(c.daemon.control_socket, dir.0.join("sub/run.sock"));
    assert_eq!(c.daemon.save_keys_dir, Some(dir.0.join("sub/keys")));
    assert_eq!(c.connections[0].psk_file, Some(psk));
    assert_eq!(c.connections[0].psk.as_bytes(), b"from-file");
    // `..` in a relative config path still gives absolute paths.
    let cwd = std::env::current_dir().unwrap();
    let mut rel = PathBuf::new();
    for _ in cwd.components().skip(1) {
        rel.push("..");
    }
    let c = Config::load(&rel.join(conf.strip_prefix("/").unwrap())).unwrap();
    assert!(c.daemon.control_socket.is_absolute());
    assert!(c.daemon.control_socket.ends_with("sub/run.sock"));
}

#[test]
fn legacy_algorithms_and_chacha20_are_accepted_with_a_warning() {
    let c = parse(&with(
        "psk = \"x\"\nike = \"3des-md5-modp2048, aes128-sha1-modp2048, aes256-sha256-modp2048\"\nesp = \"aes128-sha1, chacha20poly1305, aes128gcm16\"",
        RB,
    ))
    .unwrap();
    let ike = "3des-md5-modp2048, aes128-sha1-modp2048, aes256-sha256-modp2048";
    let esp = "aes128-sha1, chacha20poly1305, aes128gcm16";
    assert_eq!(
        warnings(&c),
        vec![
            format!("connection \"site-b\": ike: 3des in '{ike}' is a legacy cipher (64-bit blocks: Sweet32), accepted for old peers; prefer aes128 or aes256"),
            format!("connection \"site-b\": ike: md5 in '{ike}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256"),
            format!("connection \"site-b\": ike: sha1 in '{ike}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256"),
            format!("connection \"site-b\": esp: sha1 in '{esp}' (HMAC-SHA1-96) is legacy integrity, accepted for old peers; prefer sha256 or an AEAD such as aes128gcm16"),
            format!("connection \"site-b\": esp: chacha20poly1305 in '{esp}' works only between ferrovpn peers: strongSwan 5.9 and Libreswan have no IKEv1 ESP transform for it (strongSwan answers NO-PROPOSAL-CHOSEN as responder and sends a proposal without transforms as initiator)"),
        ]
    );
    // Modern proposals: no warning.
    assert_eq!(
        warnings(&parse(&with("psk = \"x\"", RB)).unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn an_inline_psk_in_a_world_readable_file_is_warned_about() {
    let dir = TempDir::new("inline");
    let conf = dir.0.join("c.toml");
    std::fs::write(&conf, with("psk = \"x\"", RB)).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = warnings(&Config::load(&conf).unwrap());
    assert_eq!(w, vec![format!("{} holds an inline psk and is readable by group/others (mode 0644): chmod 600 it, or use psk_file", conf.display())]);
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(warnings(&Config::load(&conf).unwrap()).is_empty());
}

/// An existing TUN of the configured name is left to the daemon (a note); another kind of
/// device of that name is an error. Needs root for the namespace.
#[test]
fn an_existing_tun_is_noted_and_an_existing_veth_refused() {
    if !crate::netns::require_root("an_existing_tun_is_noted_and_an_existing_veth_refused") {
        return;
    }
    let ns = crate::netns::NetNs::new("cfgtun").unwrap();
    ns.ip(&["tuntap", "add", "dev", "fvt0", "mode", "tun"])
        .unwrap();
    ns.ip(&[
        "link", "add", "fvv0", "type", "veth", "peer", "name", "fvv1",
    ])
    .unwrap();
    let (tun, veth) = ns.run(|| {
        let tun = parse(&with(
            "psk = \"x\"",
            "[connection.route_based]\ninterface = \"fvt0\"",
        ));
        let veth = parse(&with(
            "psk = \"x\"",
            "[connection.route_based]\ninterface = \"fvv0\"",
        ));
        (tun.map(|c| c.remarks), veth.map(|c| c.remarks))
    });
    let tun = tun.unwrap();
    assert!(
        tun.iter().any(|r| r.severity == Severity::Note
            && r.text
                .starts_with("route_based.interface: a TUN device fvt0 exists already")),
        "{tun:?}"
    );
    assert_eq!(
        veth.unwrap_err().to_string(),
        "connection \"site-b\": route_based.interface: fvv0 is an existing veth device, not a TUN; ferrovpn creates its own TUN device, so pick a name no interface has"
    );
}

proptest::proptest! {
    #[test]
    fn durations_round_trip(secs in 0u64..10_000_000) {
        let d = Duration::from_secs(secs);
        proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn arbitrary_values_never_panic(s in "[0-9a-z#:@. ]{0,30}") {
        let _ = parse_duration(&s);
        let _ = parse_identity("id", &s);
        let _ = check_interface_name(&s);
    }
}

/// A private copy of the certificate fixtures (tests/data/certs) in a fresh directory.
fn cert_dir() -> TempDir {
    let d = TempDir::new("certs");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/certs/");
    for f in [
        "ca.crt",
        "rsa-a.crt",
        "rsa-a.key",
        "rsa-b.key",
        "ec-a.crt",
        "ec-a.key",
        "inter.crt",
    ] {
        let to = d.0.join(f);
        std::fs::copy(format!("{src}{f}"), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    d
}

#[test]
fn crl_file_is_read_at_load_and_again_only_when_a_file_changes() {
    let d = cert_dir();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/certs/");
    std::fs::create_dir(d.0.join("crls")).unwrap();
    std::fs::copy(format!("{src}ca-empty.crl"), d.0.join("crls/root.crl")).unwrap();
    let conf = format!("{CERT_AUTH}\ncrl_file = \"crls\"");
    let c = Config::parse(&with(&conf, RB), &d.0).unwrap();
    let Auth::Certificate {
        creds,
        crl: Some(watch),
        ..
    } = &c.connections[0].auth
    else {
        panic!("no crl_file");
    };
    assert_eq!(creds.crls.get().len(), 1);
    assert_eq!(creds.crls.get()[0].revoked_count(), 0);
    let t0 = std::time::Instant::now();
    // Unchanged files are not read again, due or not.
    assert!(watch.refresh(creds, t0, true).is_none());
    // A new CRL (another size) replaces the old one once the check is due.
    std::fs::copy(
        format!("{src}ca-revokes-rsa-b.crl"),
        d.0.join("crls/root.crl"),
    )
    .unwrap();
    assert!(watch.refresh(creds, t0, false).is_none(), "not due yet");
    let later = t0 + super::credentials::CRL_CHECK_INTERVAL;
    assert_eq!(watch.refresh(creds, later, false), Some(Ok(1)));
    assert_eq!(creds.crls.get()[0].revoked_count(), 1);
    // A broken file keeps the CRLs read before and says why.
    std::fs::write(
        d.0.join("crls/root.crl"),
        "-----BEGIN X509 CRL-----\nAAAA\n",
    )
    .unwrap();
    let e = watch.refresh(creds, later, true).unwrap().unwrap_err();
    assert!(e.contains("crls/root.crl"), "{e}");
    assert_eq!(creds.crls.get()[0].revoked_count(), 1);
    // At load, a file that is not a CRL is an error naming the key.
    let e = Config::parse(
        &with(&format!("{CERT_AUTH}\ncrl_file = \"ca.crt\""), RB),
        &d.0,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("crl_file") && e.contains("ca.crt"), "{e}");
    let e = Config::parse(&with("psk = \"x\"\ncrl_file = \"crls\"", RB), &d.0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("crl_file needs auth = \"certificate\""), "{e}");
}

#[test]
fn alt_certs_load_each_certificate_with_its_key() {
    let d = cert_dir();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/certs/");
    for f in ["other-a.crt", "other-a.key"] {
        let to = d.0.join(f);
        std::fs::copy(format!("{src}{f}"), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let ok = format!(
        "{CERT_AUTH}\nalt_certs = [{{ cert_file = \"other-a.crt\", key_file = \"other-a.key\" }}]"
    );
    let c = Config::parse(&with(&ok, RB), &d.0).unwrap();
    let Auth::Certificate { creds, .. } = &c.connections[0].auth else {
        panic!("not certificate auth");
    };
    assert_eq!(creds.alternates.len(), 1);
    let wrong = ok.replace("other-a.key\"", "rsa-a.key\"");
    let e = Config::parse(&with(&wrong, RB), &d.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("alt_certs key_file") && e.contains("does not belong"),
        "{e}"
    );
    let ec = ok
        .replace("other-a.key\"", "ec-a.key\"")
        .replace("other-a.crt", "ec-a.crt");
    let e = Config::parse(&with(&ec, RB), &d.0).unwrap_err().to_string();
    assert!(e.contains("same kind"), "{e}");
}

#[test]
fn only_remote_id_may_be_a_dn_pattern() {
    assert!(parse_identity("remote_id", "dn:C=XX, O=Example, CN=*").is_ok());
    let e = parse_identity("local_id", "dn:C=XX, O=Example, CN=*").unwrap_err();
    assert!(e.contains("only remote_id may be a pattern"), "{e}");
}

const CERT_AUTH: &str =
    "auth = \"certificate\"\ncert_file = \"rsa-a.crt\"\nkey_file = \"rsa-a.key\"\nca_file = \"ca.crt\"";

#[test]
fn certificate_auth_loads_the_chain_key_and_cas() {
    let d = cert_dir();
    let c = Config::parse(&with(CERT_AUTH, RB), &d.0).unwrap();
    let Auth::Certificate { creds, .. } = &c.connections[0].auth else {
        panic!("not certificate auth");
    };
    assert_eq!(creds.kind(), ferrovpn_ike::cert::SignatureKind::Rsa);
    let ec = "auth = \"certificate\"\ncert_file = \"ec-a.crt\"\nkey_file = \"ec-a.key\"\nca_file = \"ca.crt\"\nlocal_id = \"dn:C=XX, O=ferrovpn test, CN=a.example.net\"";
    let c = Config::parse(&with(ec, RB), &d.0).unwrap();
    let Auth::Certificate { creds, .. } = &c.connections[0].auth else {
        panic!("not certificate auth");
    };
    assert_eq!(creds.kind(), ferrovpn_ike::cert::SignatureKind::EcdsaP256);
    // ca_file may name a directory of *.pem / *.crt files.
    std::fs::create_dir(d.0.join("cas")).unwrap();
    std::fs::copy(d.0.join("ca.crt"), d.0.join("cas/root.pem")).unwrap();
    std::fs::copy(d.0.join("inter.crt"), d.0.join("cas/inter.crt")).unwrap();
    std::fs::write(d.0.join("cas/README"), "not a certificate").unwrap();
    let dir = Config::parse(&with(&CERT_AUTH.replace("\"ca.crt\"", "\"cas\""), RB), &d.0).unwrap();
    let Auth::Certificate {
        creds: dir_creds, ..
    } = &dir.connections[0].auth
    else {
        panic!("not certificate auth");
    };
    assert_eq!(dir_creds.cas.len(), 2);
    std::fs::create_dir(d.0.join("empty")).unwrap();
    let e = Config::parse(
        &with(&CERT_AUTH.replace("\"ca.crt\"", "\"empty\""), RB),
        &d.0,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("a directory without *.pem or *.crt certificates"),
        "{e}"
    );
    assert_eq!(
        c.connections[0].local_id.to_string(),
        "dn:C=XX, O=ferrovpn test, CN=a.example.net"
    );
}

#[test]
fn certificate_auth_errors_name_the_file_and_the_problem() {
    let d = cert_dir();
    let p = d.0.display();
    let e = |extra: &str| {
        Config::parse(&with(extra, RB), &d.0)
            .unwrap_err()
            .to_string()
    };
    let mismatched = CERT_AUTH.replace("rsa-a.key", "rsa-b.key");
    assert_eq!(
        e(&mismatched),
        format!("connection \"site-b\": key_file {p}/rsa-b.key and cert_file {p}/rsa-a.crt: the private key does not belong to the certificate")
    );
    assert_eq!(
        e(&CERT_AUTH.replace("rsa-a.key", "missing.key")),
        format!("connection \"site-b\": key_file {p}/missing.key does not exist")
    );
    assert!(
        e(&CERT_AUTH.replace("ca.crt", "nope.crt")).starts_with(&format!(
            "connection \"site-b\": ca_file {p}/nope.crt: No such file"
        ))
    );
    // A certificate where the key should be.
    assert_eq!(
        e(&CERT_AUTH.replace("key_file = \"rsa-a.key\"", "key_file = \"ca.crt\"")),
        format!("connection \"site-b\": key_file {p}/ca.crt: not an RSA or EC (P-256/P-384/P-521) private key in PEM (PKCS#8, PKCS#1 or SEC1)")
    );
    std::fs::set_permissions(
        d.0.join("rsa-a.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(e(CERT_AUTH).contains("rsa-a.key is readable by group/others (mode 0644)"));
    assert_eq!(
        e("auth = \"certificate\"\ncert_file = \"rsa-a.crt\"\nca_file = \"ca.crt\""),
        "connection \"site-b\": auth = \"certificate\" needs key_file"
    );
    assert_eq!(
        e(&format!("{CERT_AUTH}\npsk = \"x\"")),
        "connection \"site-b\": auth = \"certificate\" takes no psk or psk_file"
    );
    assert_eq!(
        e("psk = \"x\"\ncert_file = \"rsa-a.crt\""),
        "connection \"site-b\": cert_file needs auth = \"certificate\""
    );
    std::fs::set_permissions(
        d.0.join("rsa-a.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    // Aggressive Mode with signatures sends nothing crackable: no opt-in needed as responder.
    let aggressive = with(&format!("{CERT_AUTH}\nmode = \"aggressive\""), RB)
        .replace("start = \"initiate\"", "start = \"respond\"");
    if let Err(e) = Config::parse(&aggressive, &d.0) {
        panic!("{e}");
    }
    assert!(e("psk = \"x\"\nremote_id = \"dn:garbage\"").contains("is not a distinguished name"));
}

#[test]
fn fragmentation_defaults_as_strongswan_and_checks_its_size() {
    let c = parse(&with("psk = \"x\"", RB)).unwrap();
    assert_eq!(c.connections[0].fragmentation, Fragmentation::Yes);
    assert_eq!(c.connections[0].fragment_size, 1280);
    let c = parse(&with(
        "psk = \"x\"\nfragmentation = \"force\"\nfragment_size = 576",
        RB,
    ))
    .unwrap();
    assert_eq!(c.connections[0].fragmentation, Fragmentation::Force);
    assert_eq!(c.connections[0].fragment_size, 576);
    let c = parse(&with("psk = \"x\"\nfragmentation = \"no\"", RB)).unwrap();
    assert_eq!(c.connections[0].fragmentation, Fragmentation::No);
    let e = err(&with("psk = \"x\"\nfragmentation = \"maybe\"", RB));
    assert!(e.contains("unknown variant `maybe`"), "{e}");
    for bad in ["100", "-1", "70000"] {
        let e = err(&with(&format!("psk = \"x\"\nfragment_size = {bad}"), RB));
        assert!(
            e.contains(&format!("fragment_size: {bad} is out of range"))
                && e.contains("576 to 65535"),
            "{e}"
        );
    }
    let e = err(&with(
        "psk = \"x\"\nfragmentation = \"no\"\nfragment_size = 1000",
        RB,
    ));
    assert!(
        e.contains("fragmentation = \"no\" sends no fragments"),
        "{e}"
    );
}

/// A dual-stack remote-access client: IPv6 selectors are taken, one pair per family.
#[test]
fn remote_access_client_may_tunnel_ipv6_too() {
    let text = with(
        "psk = \"group-secret\"\nremote_access = \"client\"",
        &format!("{RB}remote_ts = [\"0.0.0.0/0\", \"::/0\"]\n"),
    );
    let c = parse(&text).unwrap();
    let ike = crate::convert::connection(&c.connections[0]);
    let families: Vec<bool> = ike
        .children
        .iter()
        .map(|ch| ch.local_ts.addr.is_ipv6())
        .collect();
    assert_eq!(families, vec![false, true]);
}

/// `remote_access = "client"` and its keys: each bad combination and its one message.
#[test]
fn remote_access_client_keys_are_validated() {
    let ra = "psk = \"group-secret\"\nremote_access = \"client\"";
    let cases = [
        (with("psk = \"x\"\nxauth_user = \"alice\"", RB), "connection \"site-b\": xauth_user needs remote_access = \"client\""),
        (with("psk = \"x\"\nmodeconfig = \"push\"", RB), "connection \"site-b\": modeconfig needs remote_access = \"client\""),
        (with("psk = \"x\"\nremote_access = \"server\"", RB), "connection \"site-b\": remote_access: 'server' is neither \"client\" nor \"gateway\""),
        (with("psk = \"x\"\nremote_access = \"gateway\"", RB), "connection \"site-b\": remote_addr: a gateway takes clients from anywhere: set remote_addr = \"any\""),
        (with(ra, PB), "connection \"site-b\": remote_access = \"client\" needs [connection.route_based]: the assigned address goes on its TUN device"),
        (with(&format!("{ra}\nmodeconfig = \"both\""), RB), "connection \"site-b\": modeconfig: 'both' is neither \"pull\" (we ask, the default) nor \"push\" (the gateway sends)"),
        (with(&format!("{ra}\nxauth_password_file = \"pw\""), RB), "connection \"site-b\": xauth_password_file needs xauth_user"),
        (with(ra, &format!("{RB}address = \"198.51.100.7/32\"\n")), "connection \"site-b\": route_based.address: leave it out with remote_access = \"client\": the gateway assigns the address (Mode Config)"),
        (with(ra, RB).replace("start = \"initiate\"", "start = \"respond\""), "connection \"site-b\": remote_access = \"client\" needs start = \"initiate\": a client dials the gateway"),
    ];
    for (text, want) in cases {
        assert_eq!(err(&text), want);
    }
}

#[test]
fn xauth_password_file_is_private_and_read_into_the_ike_config() {
    let dir = TempDir::new("xauth");
    let f = dir.0.as_path().join("alice.pw");
    std::fs::write(&f, "correct horse\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = with(
        "psk = \"group-secret\"\nmode = \"aggressive\"\nlocal_id = \"keyid:vpngroup\"\nremote_access = \"client\"\nxauth_user = \"alice\"\nxauth_password_file = \"alice.pw\"\nmodeconfig = \"push\"",
        RB,
    );
    let e = Config::parse(&text, dir.0.as_path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("xauth_password_file") && e.contains("chmod 600"),
        "{e}"
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::parse(&text, dir.0.as_path()).unwrap();
    let shared = text.replacen(
        "[[connection]]",
        "[daemon]\nshared_interfaces = [\"fv0\"]\n\n[[connection]]",
        1,
    );
    let e = Config::parse(&shared, dir.0.as_path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "fv0 is a shared interface; remote_access = \"client\" needs a device of its own"
        ),
        "{e}"
    );
    let conn = &c.connections[0];
    assert!(
        !format!("{conn:?}").contains("correct horse"),
        "the password is never printed"
    );
    let ike = crate::convert::connection(conn);
    let ra = ike.remote_access.as_ref().unwrap();
    assert_eq!(ra.mode_cfg, ferrovpn_ike::config::ModeCfgMode::Push);
    let x = ra.xauth.as_ref().unwrap();
    assert_eq!(x.user, "alice");
    assert_eq!(&x.password[..], b"correct horse");
    assert_eq!(ike.auth_method(), 65001);
    assert!(c
        .remarks
        .iter()
        .any(|r| r.text.contains("impersonate the gateway")));
}

/// A gateway config: `[daemon]` then one route-based connection per (remote_addr, routes).
fn gateway(daemon: &str, peers: &[(&str, &str)]) -> String {
    let mut s = format!("[daemon]\n{daemon}\n");
    for (i, (remote, routes)) in peers.iter().enumerate() {
        s.push_str(&format!(
            "[[connection]]\nname = \"peer{i}\"\nlocal_addr = \"192.0.2.1\"\nremote_addr = \"{remote}\"\npsk = \"x\"\nstart = \"respond\"\n[connection.route_based]\ninterface = \"fvgw0\"\nlocal_ts = \"198.51.100.0/24\"\nremote_ts = \"203.0.113.0/24\"\nroutes = {routes}\n\n"
        ));
    }
    s
}

#[test]
fn connections_share_an_interface_only_when_it_is_declared_shared_and_their_routes_are_disjoint() {
    let peers = [
        ("192.0.2.2", "[\"203.0.113.0/26\"]"),
        ("192.0.2.3", "[\"203.0.113.64/26\", \"203.0.113.128/32\"]"),
    ];
    let c = parse(&gateway("shared_interfaces = [\"fvgw0\"]", &peers)).unwrap();
    assert_eq!(c.daemon.shared_interfaces, vec!["fvgw0".to_string()]);
    assert_eq!(c.connections.len(), 2);
    assert_eq!(
        err(&gateway("", &peers)),
        "connection \"peer1\": route_based.interface: fvgw0 is already used by connection \"peer0\" (list it in [daemon] shared_interfaces to let several connections share it)"
    );
    let overlapping = [
        ("192.0.2.2", "[\"203.0.113.0/25\"]"),
        ("192.0.2.3", "[\"203.0.113.128/25\"]"),
        ("192.0.2.4", "[\"203.0.113.64/26\"]"),
    ];
    assert_eq!(
        err(&gateway("shared_interfaces = [\"fvgw0\"]", &overlapping)),
        "connection \"peer2\": route_based.routes: 203.0.113.64/26 overlaps 203.0.113.0/25 of connection \"peer0\" on shared interface fvgw0; connections sharing an interface need disjoint routes (the destination picks the connection)"
    );
    assert_eq!(
        err(&gateway(
            "shared_interfaces = [\"fvgw0\", \"fvgw0\"]",
            &peers
        )),
        "daemon: shared_interfaces: fvgw0 is listed twice"
    );
    let mss = gateway("shared_interfaces = [\"fvgw0\"]", &peers).replacen(
        "[connection.route_based]",
        "[connection.route_based]\ntcp_mss = \"off\"",
        1,
    );
    assert_eq!(
        err(&mss),
        "connection \"peer1\": tcp_mss differs from connection \"peer0\"'s on shared interface fvgw0; connections sharing an interface share its MSS clamping, so give them the same tcp_mss"
    );
    assert!(err(&gateway("shared_interfaces = [\"a/b\"]", &peers))
        .starts_with("daemon: shared_interfaces: 'a/b' may not contain"));
}

const GW_RB: &str = "[connection.route_based]\ninterface = \"fvgw\"\nremote_ts = \"198.51.100.128/25\"\nroutes = [\"198.51.100.128/25\"]\n";

fn gateway_text(extra: &str) -> String {
    with(
        &format!("psk = \"group-secret\"\nremote_access = \"gateway\"\npool = \"198.51.100.128/25\"\nusers_file = \"users\"\n{extra}"),
        GW_RB,
    )
    .replace("remote_addr = \"192.0.2.2\"", "remote_addr = \"any\"")
    .replace("start = \"initiate\"", "start = \"respond\"")
}

/// `remote_access = "gateway"`: its keys, their checks and the ike gateway config they make.
#[test]
fn remote_access_gateway_is_validated_and_converted() {
    let dir = TempDir::new("gateway");
    let users = dir.0.as_path().join("users");
    crate::users::add(&users, "alice", "correct-horse").unwrap();
    let ok = gateway_text("dns = [\"203.0.113.53\"]\ndomains = [\"corp.example\"]\nsplit_include = [\"203.0.113.0/24\"]\nbanner = \"hi\"\nmodeconfig = \"push\"");
    let c = Config::parse(&ok, dir.0.as_path()).unwrap();
    let conn = &c.connections[0];
    assert!(conn.remote_addr.is_unspecified());
    let ike = crate::convert::connection(conn);
    let gw = ike.gateway.as_ref().unwrap();
    assert_eq!(gw.pool, ("198.51.100.128".parse().unwrap(), 25));
    assert!(gw.push);
    assert_eq!(
        gw.settings.ip4_dns,
        vec!["203.0.113.53".parse::<std::net::Ipv4Addr>().unwrap()]
    );
    assert_eq!(gw.settings.default_domain.as_deref(), Some("corp.example"));
    assert_eq!(gw.settings.split_dns, vec!["corp.example".to_string()]);
    assert_eq!(
        gw.settings.split_include,
        vec![(
            "203.0.113.0".parse().unwrap(),
            "255.255.255.0".parse().unwrap()
        )]
    );
    assert_eq!(
        gw.users.as_ref().unwrap().verify(
            std::time::Instant::now(),
            [192, 0, 2, 7].into(),
            "alice",
            b"correct-horse"
        ),
        ferrovpn_ike::config::XauthVerdict::Accept
    );
    assert_eq!(ike.auth_method(), 65001);
    assert_eq!(gw.pool6, None);
    // Dual stack: an IPv6 pool inside the IPv6 selector and routes, IPv6 DNS beside IPv4.
    let rb6 = "[connection.route_based]\ninterface = \"fvgw\"\nremote_ts = [\"198.51.100.128/25\", \"2001:db8:1::/112\"]\nroutes = [\"198.51.100.128/25\", \"2001:db8:1::/112\"]\n";
    let dual = with(
        "psk = \"group-secret\"\nremote_access = \"gateway\"\npool = \"198.51.100.128/25\"\npool6 = \"2001:db8:1::/112\"\nusers_file = \"users\"\ndns = [\"203.0.113.53\", \"2001:db8:2::53\"]",
        rb6,
    )
    .replace("remote_addr = \"192.0.2.2\"", "remote_addr = \"any\"")
    .replace("start = \"initiate\"", "start = \"respond\"");
    let c = Config::parse(&dual, dir.0.as_path()).unwrap();
    let ike = crate::convert::connection(&c.connections[0]);
    let gw = ike.gateway.as_ref().unwrap();
    assert_eq!(gw.pool6, Some(("2001:db8:1::".parse().unwrap(), 112)));
    assert_eq!(
        gw.settings.ip6_dns,
        vec!["2001:db8:2::53".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    let e = err(&dual.replace(
        "routes = [\"198.51.100.128/25\", \"2001:db8:1::/112\"]",
        "routes = [\"198.51.100.128/25\"]",
    ));
    assert!(e.contains("routes must hold pool 2001:db8:1::/112"), "{e}");
    let bad = |extra: &str, text: Option<String>| {
        Config::parse(
            &text.unwrap_or_else(|| gateway_text(extra)),
            dir.0.as_path(),
        )
        .unwrap_err()
        .to_string()
    };
    for (extra, want) in [
        ("dns = [\"x\"]", "dns: 'x' is not an IP address"),
        (
            "pool6 = \"198.51.100.0/24\"",
            "pool6: 198.51.100.0/24 must be an IPv6 network",
        ),
        (
            "pool6 = \"2001:db8:1::1/112\"",
            "pool6: 2001:db8:1::1/112 has host bits set",
        ),
        ("pool6 = \"2001:db8:1::/127\"", "of at least 4 addresses"),
        (
            "pool6 = \"2001:db8:1::/112\"",
            "needs IPv6 local_ts/remote_ts",
        ),
        ("modeconfig = \"both\"", "modeconfig: 'both' is neither"),
        ("xauth_user = \"a\"", "xauth_user is a client key"),
        ("split_include = [\"2001:db8::/32\"]", "is IPv6"),
    ] {
        let e = bad(extra, None);
        assert!(e.contains(want), "{e}");
    }
    let e = bad(
        "",
        Some(gateway_text("").replace("pool = \"198.51.100.128/25\"", "pool = \"203.0.113.0/24\"")),
    );
    assert!(e.contains("does not hold pool"), "{e}");
    let e = bad(
        "",
        Some(gateway_text("").replace("start = \"respond\"", "start = \"initiate\"")),
    );
    assert!(e.contains("needs start = \"respond\""), "{e}");
    let e = bad(
        "",
        Some(gateway_text("").replace("users_file = \"users\"", "users_file = \"nope\"")),
    );
    assert!(e.contains("users_file"), "{e}");
    let e =
        err(&with("psk = \"x\"", RB)
            .replace("remote_addr = \"192.0.2.2\"", "remote_addr = \"any\""));
    assert!(
        e.contains("remote_addr = \"any\" needs remote_access = \"gateway\""),
        "{e}"
    );
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = bad("", None);
    assert!(e.contains("users_file") && e.contains("chmod 600"), "{e}");
}

/// `xauth_max_failures` / `xauth_lockout`: defaults 5 / 5 min, the configured values reach the
/// ike gateway config, nonsense is refused with the key named.
#[test]
fn the_xauth_lockout_is_configurable_within_bounds() {
    let dir = TempDir::new("lockout");
    crate::users::add(&dir.0.as_path().join("users"), "alice", "pw").unwrap();
    let gw = |extra: &str| {
        Config::parse(&gateway_text(extra), dir.0.as_path())
            .map(|c| {
                crate::convert::connection(&c.connections[0])
                    .gateway
                    .unwrap()
            })
            .map_err(|e| e.to_string())
    };
    let d = gw("").unwrap();
    assert_eq!(
        (d.max_failures, d.failure_window),
        (5, std::time::Duration::from_secs(300))
    );
    let text = gateway_text("xauth_max_failures = 2\nxauth_lockout = \"90s\"");
    let shown = crate::cli::describe(
        std::path::Path::new("g.toml"),
        &Config::parse(&text, dir.0.as_path()).unwrap(),
    );
    assert!(
        shown.contains("XAuth users: 1 from")
            && shown.contains("a source locked out after 2 wrong passwords within 90s"),
        "{shown}"
    );
    let g = gw("xauth_max_failures = 2\nxauth_lockout = \"90s\"").unwrap();
    assert_eq!(
        (g.max_failures, g.failure_window),
        (2, std::time::Duration::from_secs(90))
    );
    for (extra, want) in [
        (
            "xauth_max_failures = 0",
            "xauth_max_failures: 0 is not between 1 and 1000",
        ),
        (
            "xauth_max_failures = 1001",
            "xauth_max_failures: 1001 is not between 1 and 1000",
        ),
        (
            "xauth_max_failures = -3",
            "xauth_max_failures: -3 is not between",
        ),
        (
            "xauth_lockout = \"0s\"",
            "xauth_lockout: must be at least 1s",
        ),
        (
            "xauth_lockout = \"2d\"",
            "xauth_lockout: 2d is above the maximum",
        ),
        ("xauth_lockout = \"soon\"", "xauth_lockout:"),
    ] {
        let e = gw(extra).unwrap_err();
        assert!(e.contains(want), "{extra}: {e}");
    }
    let e = err(&with("psk = \"x\"\nxauth_max_failures = 3", RB));
    assert!(
        e.contains("xauth_max_failures needs remote_access = \"gateway\""),
        "{e}"
    );
}

/// `xauth_pam_service` (and `xauth_pam_confdir`) in place of `users_file`: exactly one of the
/// two, a service name, a confdir that is a directory (relative to the config's directory),
/// a warning when the service has no file there; the ike gateway gets the PAM verifier.
#[test]
fn a_gateway_checks_users_through_pam_instead_of_a_users_file() {
    let dir = TempDir::new("gateway-pam");
    let pamd = dir.0.as_path().join("pam.d");
    std::fs::create_dir_all(&pamd).unwrap();
    std::fs::write(pamd.join("ferrovpn"), "auth required pam_deny.so\n").unwrap();
    crate::users::add(&dir.0.as_path().join("users"), "alice", "pw").unwrap();
    let pam = |keys: &str| gateway_text("").replace("users_file = \"users\"", keys);
    let parse = |text: &str| Config::parse(text, dir.0.as_path()).map_err(|e| e.to_string());
    if let Err(e) = crate::sys::pam::available(true) {
        // Without libpam (or an old one) the config is refused with the reason.
        let e2 = parse(&pam(
            "xauth_pam_service = \"ferrovpn\"\nxauth_pam_confdir = \"pam.d\"",
        ))
        .unwrap_err();
        assert!(e2.contains(&e), "{e2}");
        eprintln!("libpam unavailable ({e}): only the refusal was tested");
        return;
    }
    let c = parse(&pam(
        "xauth_pam_service = \"ferrovpn\"\nxauth_pam_confdir = \"pam.d\"",
    ))
    .unwrap();
    match &c.connections[0].gateway.as_ref().unwrap().users {
        XauthUsers::Pam(p) => {
            assert_eq!(p.service, "ferrovpn");
            assert_eq!(p.confdir.as_deref(), Some(pamd.as_path()));
        }
        other => panic!("not PAM: {other:?}"),
    }
    assert!(warnings(&c)
        .iter()
        .all(|w| !w.contains("xauth_pam_service")));
    assert!(crate::convert::connection(&c.connections[0])
        .gateway
        .unwrap()
        .users
        .is_some());
    let c = parse(&pam(
        "xauth_pam_service = \"other-svc\"\nxauth_pam_confdir = \"pam.d\"",
    ))
    .unwrap();
    assert!(
        warnings(&c)
            .iter()
            .any(|w| w.contains("xauth_pam_service \"other-svc\": no such file in")),
        "{:?}",
        warnings(&c)
    );
    for (keys, want) in [
        (
            "users_file = \"users\"\nxauth_pam_service = \"ferrovpn\"",
            "users_file and xauth_pam_service: set one of the two",
        ),
        (
            "",
            "needs users_file (make it with `ferrovpn user add FILE NAME`) or xauth_pam_service",
        ),
        (
            "users_file = \"users\"\nxauth_pam_confdir = \"pam.d\"",
            "xauth_pam_confdir needs xauth_pam_service",
        ),
        (
            "xauth_pam_service = \"../shadow\"",
            "xauth_pam_service: '../shadow' is not a PAM service name",
        ),
        ("xauth_pam_service = \"\"", "is not a PAM service name"),
        (
            "xauth_pam_service = \"ferrovpn\"\nxauth_pam_confdir = \"users\"",
            "users is not a directory",
        ),
    ] {
        let e = parse(&pam(keys)).unwrap_err();
        assert!(e.contains(want), "{keys}: {e}");
    }
    let e = err(&with("psk = \"x\"\nxauth_pam_service = \"ferrovpn\"", RB));
    assert!(
        e.contains("xauth_pam_service needs remote_access = \"gateway\""),
        "{e}"
    );
}

/// `xauth_after_psk`: pre-shared key (1) in phase 1 for an XAuth client or a gateway, refused
/// where there is no XAuth.
#[test]
fn xauth_after_psk_switches_the_phase_1_method_where_xauth_follows() {
    let dir = TempDir::new("after-psk");
    crate::users::add(&dir.0.as_path().join("users"), "alice", "pw").unwrap();
    let gw = Config::parse(&gateway_text("xauth_after_psk = true"), dir.0.as_path()).unwrap();
    let ike = crate::convert::connection(&gw.connections[0]);
    assert!(ike.xauth_after_psk);
    assert_eq!(ike.auth_method(), 1);
    let shown = crate::cli::describe(std::path::Path::new("g.toml"), &gw);
    assert!(
        shown.contains("XAuth after it (xauth_after_psk)"),
        "{shown}"
    );
    let plain = Config::parse(&gateway_text(""), dir.0.as_path()).unwrap();
    assert_eq!(
        crate::convert::connection(&plain.connections[0]).auth_method(),
        65001
    );
    let e = parse(&with("psk = \"x\"\nxauth_after_psk = true", RB))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("xauth_after_psk needs remote_access = \"client\" with xauth_user"),
        "{e}"
    );
}

#[test]
fn two_local_subnets_to_one_remote_route_it_once() {
    // "Two LANs to one remote LAN": both pairs are negotiated, the remote's route goes into
    // the TUN once (a second add failed `up` with "File exists").
    let pb = "[connection.policy_based]\npairs = [{ local = \"198.51.100.0/25\", remote = \"203.0.113.0/24\" }, { local = \"198.51.100.128/25\", remote = \"203.0.113.0/24\" }]\n";
    let c = parse(&with("psk = \"x\"", pb)).unwrap();
    let t = &c.connections[0].tunnel;
    let Tunnel::PolicyBased(pairs) = t else {
        panic!()
    };
    assert_eq!(pairs.len(), 2);
    let routes: Vec<String> = t.routes().iter().map(|r| r.to_string()).collect();
    assert_eq!(routes, ["203.0.113.0/24"]);
}
