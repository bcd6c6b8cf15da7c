//! Routes into a route-based tunnel, without a routing loop.
//!
//! A route into the TUN for a prefix that contains the peer's outer address would send the IKE
//! and ESP packets to the peer back into the tunnel. Specific prefixes that contain the peer are
//! refused by config validation; for the default route (`0.0.0.0/0`, `::/0`) ferrovpn does what
//! wg-quick does:
//!
//! 1. every socket that talks to the peer (UDP 500/4500, raw ESP) gets `SO_MARK` = `fwmark`;
//! 2. the default route into the TUN goes into its own table `table`, not into `main`;
//! 3. rule `priority P: lookup main suppress_prefixlength 0` — use `main` for everything except
//!    its default route (so LAN and more specific routes keep working);
//! 4. rule `priority P+1: not fwmark M lookup T` — unmarked traffic takes the tunnel's default.
//!
//! Marked packets match neither rule and reach `main`'s default route, i.e. the physical path.
//! Routes that are not default routes go straight into `main` with `dev <tun>`.
//!
//! Known limit (as with wg-quick without its nftables rules): with strict reverse-path filtering
//! (`rp_filter = 1`) replies from a peer that is reachable only through the default route fail
//! the reverse lookup (which is unmarked); use loose mode (`rp_filter = 2`) on the uplink.
//! Everything installed is removed by [`teardown`] (and by dropping the [`Netlink`] handle).

use crate::ipnet::IpNet;
use crate::netlink::{Change, Errno, Netlink, NetlinkError, Route, Rule, TABLE_MAIN};

/// Mark and table number used when the config does not choose others ("FV" = 0x4656).
pub const DEFAULT_FWMARK: u32 = 0x4656;
pub const DEFAULT_TABLE: u32 = 0x4656;
/// Priority of the suppress rule; the fwmark rule takes the next one. Below `main` (32766).
pub const DEFAULT_PRIORITY: u32 = 18006;

/// Parameters of the policy routing for default routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRouting {
    pub fwmark: u32,
    pub table: u32,
    pub priority: u32,
}

impl Default for PolicyRouting {
    fn default() -> Self {
        PolicyRouting {
            fwmark: DEFAULT_FWMARK,
            table: DEFAULT_TABLE,
            priority: DEFAULT_PRIORITY,
        }
    }
}

/// What [`setup`] installed, in order; hand it back to [`teardown`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Installed {
    pub changes: Vec<Change>,
}

/// True when `routes` holds a default route, i.e. the peer's sockets must carry the fwmark.
pub fn needs_fwmark(routes: &[IpNet]) -> bool {
    routes.iter().any(IpNet::is_default)
}

/// The routes and rules for `routes` through interface `ifindex`, in installation order.
pub fn plan(ifindex: u32, routes: &[IpNet], p: &PolicyRouting) -> Vec<Change> {
    let mut out = Vec::new();
    let mut families = Vec::new();
    for &dst in routes {
        let table = if dst.is_default() {
            if !families.contains(&dst.is_ipv6()) {
                families.push(dst.is_ipv6());
            }
            p.table
        } else {
            TABLE_MAIN
        };
        out.push(Change::Route(Route {
            dst,
            ifindex,
            table,
        }));
    }
    for v6 in families {
        out.push(Change::Rule(Rule {
            v6,
            priority: p.priority,
            fwmark: None,
            invert: false,
            table: TABLE_MAIN,
            suppress_prefixlength: Some(0),
        }));
        out.push(Change::Rule(Rule {
            v6,
            priority: p.priority.saturating_add(1),
            fwmark: Some(p.fwmark),
            invert: true,
            table: p.table,
            suppress_prefixlength: None,
        }));
    }
    out
}

/// Installs the routes (and, for default routes, the rules); on failure removes what it added.
pub fn setup(
    nl: &mut Netlink,
    ifindex: u32,
    routes: &[IpNet],
    p: &PolicyRouting,
) -> Result<Installed, NetlinkError> {
    let mut done = Installed::default();
    for c in plan(ifindex, routes, p) {
        let r = match c {
            Change::Route(r) => nl.add_route(r),
            Change::Rule(r) => nl.add_rule(r),
            Change::Address { ifindex, addr } => nl.add_address(ifindex, addr),
        };
        if let Err(e) = r {
            for e2 in teardown(nl, done) {
                tracing::warn!("routing rollback: {e2}");
            }
            return Err(e);
        }
        done.changes.push(c);
    }
    Ok(done)
}

/// Removes what [`setup`] installed, newest first; returns the failures.
pub fn teardown(nl: &mut Netlink, installed: Installed) -> Vec<NetlinkError> {
    installed
        .changes
        .iter()
        .rev()
        .filter_map(|c| nl.undo(c).err())
        .collect()
}

/// Removes what a ferrovpn that is gone recorded (see `runstate`) and that is still there: each
/// TUN device `(name, ifindex)` whose name still has that ifindex and is a TUN (a device of that
/// name with another ifindex was made by someone else since, and is left alone), and each policy
/// rule (every identical copy). Returns one line per removed item.
///
/// Routes and addresses are not listed: they belong to the TUN devices and went with them.
pub fn clean_stale(
    nl: &mut Netlink,
    links: &[(&str, u32)],
    rules: &[Rule],
) -> Result<Vec<String>, NetlinkError> {
    /// Upper bound on identical copies removed (each pass deletes one).
    const MAX_COPIES: usize = 64;
    let mut removed = Vec::new();
    for &(name, recorded) in links {
        let Ok(ifindex) = crate::netlink::link_index(name) else {
            continue;
        };
        if ifindex != recorded {
            continue;
        }
        if nl.link_kind(ifindex)?.as_deref() == Some("tun") {
            nl.del_link(ifindex)?;
            removed.push(format!("stale TUN device {name} (ifindex {ifindex})"));
        }
    }
    for &r in rules {
        let c = Change::Rule(r);
        for _ in 0..MAX_COPIES {
            match nl.del_rule(r) {
                Ok(()) => removed.push(format!("stale {c}")),
                Err(e) if matches!(e.errno(), Some(Errno::NotFound | Errno::NoDevice)) => break,
                // IPv6 disabled in this namespace: nothing of that family can be left.
                Err(e) if matches!(e.errno(), Some(Errno::Other(libc::EAFNOSUPPORT))) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::link_index;
    use crate::netns::{require_root, NetNs};
    use crate::socket::{bind_udp, SocketOptions};
    use crate::tun::{Tun, TunOptions};
    use std::net::SocketAddr;
    use std::os::fd::AsFd;

    #[test]
    fn plan_follows_wg_quick() {
        let p = PolicyRouting::default();
        let routes: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
        let c = plan(5, &routes, &p);
        assert_eq!(c.len(), 6);
        assert_eq!(
            c[0],
            Change::Route(Route {
                dst: routes[0],
                ifindex: 5,
                table: DEFAULT_TABLE
            })
        );
        assert_eq!(
            c[2],
            Change::Rule(Rule {
                v6: false,
                priority: DEFAULT_PRIORITY,
                fwmark: None,
                invert: false,
                table: TABLE_MAIN,
                suppress_prefixlength: Some(0)
            })
        );
        assert_eq!(
            c[3],
            Change::Rule(Rule {
                v6: false,
                priority: DEFAULT_PRIORITY + 1,
                fwmark: Some(DEFAULT_FWMARK),
                invert: true,
                table: DEFAULT_TABLE,
                suppress_prefixlength: None
            })
        );
        assert!(needs_fwmark(&routes));
        let specific: Vec<IpNet> = vec!["203.0.113.0/24".parse().unwrap()];
        assert!(!needs_fwmark(&specific));
        assert_eq!(
            plan(5, &specific, &p),
            vec![Change::Route(Route {
                dst: specific[0],
                ifindex: 5,
                table: TABLE_MAIN
            })]
        );
    }

    fn first_line(s: &str) -> String {
        s.lines().next().unwrap_or("").to_string()
    }

    /// A's only way to the peer B (192.0.2.2) is its default route over the veth, the case
    /// where a tunnel default route would loop.
    #[test]
    fn default_route_into_tun_while_marked_traffic_reaches_the_peer() {
        if !require_root("routing::default_route_into_tun_while_marked_traffic_reaches_the_peer") {
            return;
        }
        let a = NetNs::new("rta").unwrap();
        let b = NetNs::new("rtb").unwrap();
        NetNs::veth_pair(&a, "fva", "192.0.2.1/32", &b, "fvb", "192.0.2.2/24").unwrap();
        a.ip(&["route", "add", "default", "dev", "fva"]).unwrap();
        let p = PolicyRouting::default();
        let mark = format!("{:#x}", p.fwmark);

        let (tun, mut nl, installed) = a.run(|| {
            let tun = Tun::open(
                "fvt0",
                TunOptions {
                    nonblocking: true,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut nl = Netlink::open().unwrap();
            tun.up(&mut nl).unwrap();
            let idx = link_index("fvt0").unwrap();
            let routes = ["0.0.0.0/0".parse().unwrap()];
            let installed = setup(&mut nl, idx, &routes, &p).unwrap();
            (tun, nl, installed)
        });

        let get = |args: &[&str]| first_line(&a.ip(args).unwrap());
        let unmarked = get(&["route", "get", "203.0.113.5"]);
        assert!(unmarked.contains("dev fvt0"), "{unmarked}");
        let peer_unmarked = get(&["route", "get", "192.0.2.2"]);
        assert!(peer_unmarked.contains("dev fvt0"), "{peer_unmarked}");
        let peer_marked = get(&["route", "get", "192.0.2.2", "mark", &mark]);
        assert!(peer_marked.contains("dev fva"), "{peer_marked}");
        let other_marked = get(&["route", "get", "203.0.113.5", "mark", &mark]);
        assert!(other_marked.contains("dev fva"), "{other_marked}");

        // A marked IKE socket reaches the peer over the veth ...
        let rx = b
            .run(|| bind_udp("192.0.2.2:500".parse().unwrap(), &SocketOptions::default()))
            .unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let marked = SocketOptions {
            fwmark: Some(p.fwmark),
            nonblocking: false,
            buffer_bytes: None,
        };
        let tx = a
            .run(|| bind_udp("192.0.2.1:500".parse().unwrap(), &marked))
            .unwrap();
        tx.send_to(b"marked", "192.0.2.2:500").unwrap();
        let mut buf = [0u8; 32];
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"marked");
        assert_eq!(from, "192.0.2.1:500".parse::<SocketAddr>().unwrap());

        // ... while the same datagram from an unmarked socket would loop into the TUN.
        let plain = a
            .run(|| bind_udp("192.0.2.1:4500".parse().unwrap(), &SocketOptions::default()))
            .unwrap();
        plain.send_to(b"unmarked", "192.0.2.2:500").unwrap();
        let mut seen = false;
        for _ in 0..50 {
            if !crate::sys::fs::wait_readable(tun.as_fd(), 5000) {
                break;
            }
            let mut pkt = [0u8; 2048];
            let Ok(n) = tun.read(&mut pkt) else { continue };
            if n >= 28 && pkt[0] >> 4 == 4 && pkt[9] == 17 && pkt[16..20] == [192, 0, 2, 2] {
                assert_eq!(&pkt[28..n], b"unmarked");
                seen = true;
                break;
            }
        }
        assert!(seen, "unmarked datagram to the peer did not enter the TUN");

        a.run(|| assert!(teardown(&mut nl, installed).is_empty()));
        assert!(nl.installed().is_empty());
        let rules = a.ip(&["rule", "show"]).unwrap();
        assert!(
            !rules.contains(&format!("{}:", DEFAULT_PRIORITY)),
            "{rules}"
        );
        assert!(!rules.contains("fwmark"), "{rules}");
        let after = get(&["route", "get", "192.0.2.2"]);
        assert!(after.contains("dev fva"), "{after}");
        drop(tun);
    }

    /// What a dead run recorded is removed (its TUN, if that name still has the recorded
    /// ifindex; its rules); a TUN of the same name with another ifindex (made by
    /// someone else since), a veth, and someone else's rule at the same priority are kept.
    #[test]
    fn clean_stale_removes_only_recorded_leftovers() {
        if !require_root("routing::clean_stale_removes_only_recorded_leftovers") {
            return;
        }
        let ns = NetNs::new("rtstale").unwrap();
        let table = DEFAULT_TABLE.to_string();
        let prio = DEFAULT_PRIORITY.to_string();
        let prio1 = (DEFAULT_PRIORITY + 1).to_string();
        let mark = format!("{DEFAULT_FWMARK:#x}");
        for dev in ["fvs0", "fvs1"] {
            ns.ip(&["tuntap", "add", "dev", dev, "mode", "tun"])
                .unwrap();
        }
        ns.ip(&[
            "link", "add", "fvv0", "type", "veth", "peer", "name", "fvv1",
        ])
        .unwrap();
        ns.ip(&[
            "rule",
            "add",
            "priority",
            &prio,
            "lookup",
            "main",
            "suppress_prefixlength",
            "0",
        ])
        .unwrap();
        ns.ip(&[
            "rule", "add", "priority", &prio1, "not", "fwmark", &mark, "lookup", &table,
        ])
        .unwrap();
        ns.ip(&["rule", "add", "priority", &prio1, "lookup", "100"])
            .unwrap();
        let rules: Vec<Rule> = plan(
            0,
            &["0.0.0.0/0".parse().unwrap()],
            &PolicyRouting::default(),
        )
        .into_iter()
        .filter_map(|c| match c {
            Change::Rule(r) => Some(r),
            _ => None,
        })
        .collect();
        let removed = ns.run(|| {
            let s0 = link_index("fvs0").unwrap();
            let s1 = link_index("fvs1").unwrap();
            let v0 = link_index("fvv0").unwrap();
            let mut nl = Netlink::open().unwrap();
            clean_stale(
                &mut nl,
                &[("fvs0", s0), ("fvs1", s1 + 100), ("fvv0", v0), ("nope0", 3)],
                &rules,
            )
            .unwrap()
        });
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(ns.ip(&["link", "show", "fvs0"]).is_err());
        assert!(ns.ip(&["link", "show", "fvs1"]).is_ok());
        assert!(ns.ip(&["link", "show", "fvv0"]).is_ok());
        let r = ns.ip(&["rule", "show"]).unwrap();
        assert!(!r.contains("fwmark"), "{r}");
        assert!(!r.contains("suppress_prefixlength"), "{r}");
        assert!(r.contains("lookup 100"), "{r}");
        // A second pass finds nothing.
        let again = ns.run(|| {
            let mut nl = Netlink::open().unwrap();
            clean_stale(&mut nl, &[], &rules).unwrap()
        });
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn ipv6_default_route_uses_the_same_rules() {
        if !require_root("routing::ipv6_default_route_uses_the_same_rules") {
            return;
        }
        let a = NetNs::new("rt6a").unwrap();
        let b = NetNs::new("rt6b").unwrap();
        NetNs::veth_pair(&a, "fva", "2001:db8::1/128", &b, "fvb", "2001:db8::2/64").unwrap();
        a.ip(&["-6", "route", "add", "default", "dev", "fva"])
            .unwrap();
        let p = PolicyRouting::default();
        let mark = format!("{:#x}", p.fwmark);
        let (tun, mut nl, installed) = a.run(|| {
            let tun = Tun::open("fvt6", TunOptions::default()).unwrap();
            let mut nl = Netlink::open().unwrap();
            tun.up(&mut nl).unwrap();
            let idx = link_index("fvt6").unwrap();
            let installed = setup(&mut nl, idx, &["::/0".parse().unwrap()], &p).unwrap();
            (tun, nl, installed)
        });
        let get = |args: &[&str]| first_line(&a.ip(args).unwrap());
        let unmarked = get(&["-6", "route", "get", "2001:db8::2"]);
        assert!(unmarked.contains("dev fvt6"), "{unmarked}");
        let marked = get(&["-6", "route", "get", "2001:db8::2", "mark", &mark]);
        assert!(marked.contains("dev fva"), "{marked}");
        let rules = a.ip(&["-6", "rule", "show"]).unwrap();
        assert!(rules.contains("suppress_prefixlength 0"), "{rules}");
        a.run(|| assert!(teardown(&mut nl, installed).is_empty()));
        let rules = a.ip(&["-6", "rule", "show"]).unwrap();
        assert!(!rules.contains("fwmark"), "{rules}");
        drop(tun);
    }

    #[test]
    fn specific_routes_go_into_main_and_failed_setup_rolls_back() {
        if !require_root("routing::specific_routes_go_into_main_and_failed_setup_rolls_back") {
            return;
        }
        let ns = NetNs::new("rtspec").unwrap();
        let state = ns.run(|| {
            let tun = Tun::open("fvt1", TunOptions::default()).unwrap();
            let mut nl = Netlink::open().unwrap();
            tun.up(&mut nl).unwrap();
            let idx = link_index("fvt1").unwrap();
            let p = PolicyRouting::default();
            let routes = [
                "203.0.113.0/25".parse().unwrap(),
                "203.0.113.128/25".parse().unwrap(),
            ];
            let inst = setup(&mut nl, idx, &routes, &p).unwrap();
            assert_eq!(inst.changes.len(), 2);
            // A new route, then one that exists: the second fails and the first is rolled back.
            let again = ["198.51.100.0/24".parse().unwrap(), routes[1]];
            let e = setup(&mut nl, idx, &again, &p).unwrap_err();
            assert_eq!(e.errno(), Some(crate::netlink::Errno::Exists), "{e}");
            assert_eq!(nl.installed(), &inst.changes[..]);
            (nl, inst, tun)
        });
        let routes = ns.ip(&["route", "show"]).unwrap();
        assert!(routes.contains("203.0.113.0/25 dev fvt1"), "{routes}");
        assert!(routes.contains("203.0.113.128/25 dev fvt1"), "{routes}");
        assert!(!routes.contains("198.51.100.0/24"), "{routes}");
        assert!(!ns.ip(&["rule", "show"]).unwrap().contains("fwmark"));
        let (mut nl, inst, tun) = state;
        ns.run(|| assert!(teardown(&mut nl, inst).is_empty()));
        let routes = ns.ip(&["route", "show"]).unwrap();
        assert!(!routes.contains("203.0.113."), "{routes}");
        drop(tun);
    }
}
