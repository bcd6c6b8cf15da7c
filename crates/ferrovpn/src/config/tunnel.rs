//! How traffic enters a connection: a route-based TUN interface or policy-based selector pairs,
//! and TCP MSS clamping.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::raw::{OneOrMany, RawPolicyBased, RawRouteBased, RawTcpMss};
use crate::ipnet::{IfAddr, IpNet};

/// A TUN interface whose routes lead into the tunnel; one SA pair per selector pair, at most
/// one pair per address family (dual stack: an IPv4 and an IPv6 Quick Mode on the same TUN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteBased {
    pub interface: String,
    /// `interface` is one of `[daemon] shared_interfaces`: other connections may use it too.
    pub shared: bool,
    /// None: computed from the outer MTU and the ESP overhead.
    pub mtu: Option<u16>,
    /// local_ts ⇄ remote_ts, IPv4 first; 1 or 2 pairs of different families.
    pub selectors: Vec<SelectorPair>,
    pub routes: Vec<IpNet>,
    pub addresses: Vec<IfAddr>,
}

impl RouteBased {
    /// True when IPv6 traffic goes through this tunnel (its MTU may not be below 1280).
    pub fn carries_ipv6(&self) -> bool {
        self.selectors.iter().any(|p| p.remote.is_ipv6())
    }

    /// The selector pair of one address family.
    pub fn selector(&self, v6: bool) -> Option<&SelectorPair> {
        self.selectors.iter().find(|p| p.remote.is_ipv6() == v6)
    }
}

/// TCP MSS clamping on the connection's TUN (RFC 6691): SYNs in both directions announce at
/// most this MSS, so TCP never needs path-MTU discovery through the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpMss {
    /// The TUN MTU − 40 (IPv4) or − 60 (IPv6).
    #[default]
    Auto,
    Off,
    /// This MSS for IPv4 and IPv6 SYNs alike.
    Fixed(u16),
}

/// One Quick Mode SA pair of a policy-based connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectorPair {
    pub local: IpNet,
    pub remote: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tunnel {
    RouteBased(RouteBased),
    PolicyBased(Vec<SelectorPair>),
}

impl Tunnel {
    /// The prefixes routed into the TUN: a route-based tunnel's routes, or each distinct
    /// remote of the pairs (two local subnets to one remote subnet need its route once).
    pub fn routes(&self) -> Vec<IpNet> {
        match self {
            Tunnel::RouteBased(r) => r.routes.clone(),
            Tunnel::PolicyBased(p) => {
                let mut v: Vec<IpNet> = Vec::new();
                for x in p {
                    if !v.contains(&x.remote) {
                        v.push(x.remote);
                    }
                }
                v
            }
        }
    }
}

pub(super) fn parse_net(key: &str, s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>().map_err(|e| format!("{key}: {e}"))
}

pub(super) fn family(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// Linux interface names: 1..=15 bytes, no '/', ':' or whitespace.
pub fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "'{name}' must be 1 to 15 characters (Linux IFNAMSIZ)"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not a valid interface name"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || !c.is_ascii() || c.is_control())
    {
        return Err(format!(
            "'{name}' may not contain '/', ':', whitespace or non-ASCII characters"
        ));
    }
    Ok(())
}

/// The default selector of a family: everything.
fn any(v6: bool) -> IpNet {
    let a: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    IpNet::truncating(a, 0)
}

/// `key` as a list of prefixes, at most one per address family.
fn per_family(key: &str, raw: Option<OneOrMany>) -> Result<Option<Vec<IpNet>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let list = raw.into_vec();
    if list.is_empty() {
        return Err(format!(
            "{key}: empty; give one prefix, or one IPv4 and one IPv6 prefix"
        ));
    }
    let mut out: Vec<IpNet> = Vec::new();
    for s in &list {
        let n = parse_net(key, s)?;
        if let Some(o) = out.iter().find(|o| o.is_ipv6() == n.is_ipv6()) {
            return Err(format!(
                "{key}: {o} and {n} are both {}; a route-based connection has one selector per address family (use routes for more prefixes, or policy_based for several pairs)",
                family(n.is_ipv6())
            ));
        }
        out.push(n);
    }
    out.sort_by_key(IpNet::is_ipv6);
    Ok(Some(out))
}

pub(super) fn validate_route_based(
    r: RawRouteBased,
    remote_addr: IpAddr,
) -> Result<RouteBased, String> {
    check_interface_name(&r.interface).map_err(|e| format!("route_based.interface: {e}"))?;
    let routes = match r.routes {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(format!(
                "route_based.routes: empty, so nothing would be routed into {}; leave routes out to route remote_ts, or list the prefixes",
                r.interface
            ))
        }
        Some(list) => Some(
            list.iter()
                .map(|s| parse_net("route_based.routes", s))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let addresses = match r.address {
        None => Vec::new(),
        Some(raw) => {
            let mut out: Vec<IfAddr> = Vec::new();
            for s in raw.into_vec() {
                let a: IfAddr = s.parse().map_err(|e| format!("route_based.address: {e}"))?;
                if out.iter().any(|o| o.addr == a.addr) {
                    return Err(format!("route_based.address: {} is listed twice", a.addr));
                }
                out.push(a);
            }
            out
        }
    };
    let local = per_family("route_based.local_ts", r.local_ts)?;
    let remote = per_family("route_based.remote_ts", r.remote_ts)?;
    // The families: those written in the selectors, else those of routes and addresses.
    let families: Vec<bool> = match (&local, &remote) {
        (Some(l), _) => l.iter().map(IpNet::is_ipv6).collect(),
        (None, Some(rm)) => rm.iter().map(IpNet::is_ipv6).collect(),
        (None, None) => {
            let mut f: Vec<bool> = routes
                .iter()
                .flatten()
                .map(IpNet::is_ipv6)
                .chain(addresses.iter().map(|a| a.addr.is_ipv6()))
                .collect();
            f.sort();
            f.dedup();
            if f.is_empty() {
                f.push(false);
            }
            f
        }
    };
    let local = local.unwrap_or_else(|| families.iter().map(|&v6| any(v6)).collect());
    let remote = remote.unwrap_or_else(|| families.iter().map(|&v6| any(v6)).collect());
    let fam = |l: &[IpNet]| l.iter().map(IpNet::is_ipv6).collect::<Vec<_>>();
    if fam(&local) != fam(&remote) {
        let show = |l: &[IpNet]| {
            l.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(format!(
            "route_based: local_ts {} and remote_ts {} are of different address families",
            show(&local),
            show(&remote)
        ));
    }
    let selectors: Vec<SelectorPair> = local
        .into_iter()
        .zip(remote)
        .map(|(local, remote)| SelectorPair { local, remote })
        .collect();
    let v6 = selectors.iter().any(|p| p.remote.is_ipv6());
    let mtu = match r.mtu {
        None => None,
        Some(m) => {
            let min = if v6 { 1280 } else { 576 };
            match u16::try_from(m) {
                Ok(m) if u32::from(m) >= min => Some(m),
                _ => {
                    return Err(format!(
                        "route_based.mtu: {m} is outside {min}..=65535 for {} traffic{}",
                        family(v6),
                        if v6 {
                            " (RFC 8200 §5: every IPv6 link carries 1280 bytes)"
                        } else {
                            ""
                        }
                    ))
                }
            }
        }
    };
    let routes = routes.unwrap_or_else(|| selectors.iter().map(|p| p.remote).collect());
    for route in &routes {
        let Some(sel) = selectors
            .iter()
            .find(|p| p.remote.is_ipv6() == route.is_ipv6())
        else {
            return Err(format!(
                "route_based.routes: {route} is {} but the traffic selectors are {}; add a {} local_ts/remote_ts",
                family(route.is_ipv6()),
                family(v6),
                family(route.is_ipv6())
            ));
        };
        if !sel.remote.contains(route) {
            return Err(format!(
                "route_based.routes: {route} is outside remote_ts {}; the SA would drop that traffic",
                sel.remote
            ));
        }
        if !route.is_default() && route.contains_addr(remote_addr) {
            return Err(format!(
                "route_based.routes: {route} contains remote_addr {remote_addr}; packets to the peer would loop into the tunnel"
            ));
        }
    }
    for a in &addresses {
        let Some(sel) = selectors
            .iter()
            .find(|p| p.local.is_ipv6() == a.addr.is_ipv6())
        else {
            return Err(format!(
                "route_based.address: {a} is {} but the traffic selectors are {}",
                family(a.addr.is_ipv6()),
                family(v6)
            ));
        };
        if !sel.local.contains_addr(a.addr) {
            return Err(format!(
                "route_based.address: {} is outside local_ts {}",
                a.addr, sel.local
            ));
        }
    }
    Ok(RouteBased {
        interface: r.interface,
        shared: false,
        mtu,
        selectors,
        routes,
        addresses,
    })
}

/// `tcp_mss`: at least the smallest MSS every host accepts (RFC 9293 §3.7.1: 536 for IPv4,
/// RFC 8200 §8.3: 1220 for IPv6), at most a 65535-byte IPv4 packet's.
pub(super) fn validate_tcp_mss(
    key: &str,
    raw: Option<RawTcpMss>,
    v6: bool,
) -> Result<TcpMss, String> {
    let min = if v6 { 1220 } else { 536 };
    match raw {
        None => Ok(TcpMss::Auto),
        Some(RawTcpMss::Word(w)) => match w.as_str() {
            "auto" => Ok(TcpMss::Auto),
            "off" => Ok(TcpMss::Off),
            _ => Err(format!(
                "{key}: '{w}' is not \"auto\", \"off\" or an MSS in bytes"
            )),
        },
        Some(RawTcpMss::Number(n)) => match u16::try_from(n) {
            Ok(m) if (min..=65495).contains(&m) => Ok(TcpMss::Fixed(m)),
            _ => Err(format!(
                "{key}: {n} is outside {min}..=65495 for {} traffic",
                family(v6)
            )),
        },
    }
}

pub(super) fn validate_policy_based(
    p: RawPolicyBased,
    remote_addr: IpAddr,
) -> Result<Vec<SelectorPair>, String> {
    if p.pairs.is_empty() {
        return Err("policy_based.pairs: list at least one { local, remote } pair".into());
    }
    let mut out: Vec<SelectorPair> = Vec::new();
    for (i, pair) in p.pairs.iter().enumerate() {
        let local = parse_net(&format!("policy_based.pairs[{i}].local"), &pair.local)?;
        let remote = parse_net(&format!("policy_based.pairs[{i}].remote"), &pair.remote)?;
        if local.is_ipv6() != remote.is_ipv6() {
            return Err(format!(
                "policy_based.pairs[{i}]: local {local} and remote {remote} are of different address families"
            ));
        }
        // As for route_based.routes: a default route is installed so that it spares the peer.
        if !remote.is_default() && remote.contains_addr(remote_addr) {
            return Err(format!(
                "policy_based.pairs[{i}]: remote {remote} contains remote_addr {remote_addr}; packets to the peer would loop into the tunnel"
            ));
        }
        let sp = SelectorPair { local, remote };
        if out.contains(&sp) {
            return Err(format!(
                "policy_based.pairs[{i}]: {local} <=> {remote} is listed twice"
            ));
        }
        out.push(sp);
    }
    Ok(out)
}
