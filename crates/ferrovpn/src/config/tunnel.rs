//! How traffic enters a connection: a route-based TUN interface or policy-based selector pairs,
//! and TCP MSS clamping.

use std::net::IpAddr;

use super::raw::{RawPolicyBased, RawRouteBased, RawTcpMss};
use crate::ipnet::{IfAddr, IpNet};

/// A TUN interface whose routes lead into the tunnel; one SA pair local_ts ⇄ remote_ts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteBased {
    pub interface: String,
    /// None: computed from the outer MTU and the ESP overhead.
    pub mtu: Option<u16>,
    pub local_ts: IpNet,
    pub remote_ts: IpNet,
    pub routes: Vec<IpNet>,
    pub address: Option<IfAddr>,
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

pub(super) fn validate_route_based(
    r: RawRouteBased,
    remote_addr: IpAddr,
) -> Result<RouteBased, String> {
    check_interface_name(&r.interface).map_err(|e| format!("route_based.interface: {e}"))?;
    let local_ts = parse_net(
        "route_based.local_ts",
        r.local_ts.as_deref().unwrap_or("0.0.0.0/0"),
    )?;
    let remote_ts = parse_net(
        "route_based.remote_ts",
        r.remote_ts.as_deref().unwrap_or("0.0.0.0/0"),
    )?;
    if local_ts.is_ipv6() != remote_ts.is_ipv6() {
        return Err(format!(
            "route_based: local_ts {local_ts} and remote_ts {remote_ts} are of different address families"
        ));
    }
    let v6 = remote_ts.is_ipv6();
    let mtu = match r.mtu {
        None => None,
        Some(m) => {
            let min = if v6 { 1280 } else { 576 };
            match u16::try_from(m) {
                Ok(m) if u32::from(m) >= min => Some(m),
                _ => {
                    return Err(format!(
                        "route_based.mtu: {m} is outside {min}..=65535 for {} traffic",
                        family(v6)
                    ))
                }
            }
        }
    };
    let routes = match r.routes {
        None => vec![remote_ts],
        Some(list) if list.is_empty() => {
            return Err(format!(
                "route_based.routes: empty, so nothing would be routed into {}; leave routes out to route remote_ts {remote_ts}, or list the prefixes",
                r.interface
            ))
        }
        Some(list) => list
            .iter()
            .map(|s| parse_net("route_based.routes", s))
            .collect::<Result<Vec<_>, _>>()?,
    };
    for route in &routes {
        if route.is_ipv6() != v6 {
            return Err(format!(
                "route_based.routes: {route} is {} but the traffic selectors are {}",
                family(route.is_ipv6()),
                family(v6)
            ));
        }
        if !remote_ts.contains(route) {
            return Err(format!(
                "route_based.routes: {route} is outside remote_ts {remote_ts}; the SA would drop that traffic"
            ));
        }
        if !route.is_default() && route.contains_addr(remote_addr) {
            return Err(format!(
                "route_based.routes: {route} contains remote_addr {remote_addr}; packets to the peer would loop into the tunnel"
            ));
        }
    }
    let address = match r.address {
        None => None,
        Some(s) => {
            let a: IfAddr = s.parse().map_err(|e| format!("route_based.address: {e}"))?;
            if a.addr.is_ipv6() != v6 {
                return Err(format!(
                    "route_based.address: {a} is {} but the traffic selectors are {}",
                    family(a.addr.is_ipv6()),
                    family(v6)
                ));
            }
            if !local_ts.contains_addr(a.addr) {
                return Err(format!(
                    "route_based.address: {} is outside local_ts {local_ts}",
                    a.addr
                ));
            }
            Some(a)
        }
    };
    Ok(RouteBased {
        interface: r.interface,
        mtu,
        local_ts,
        remote_ts,
        routes,
        address,
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

pub(super) fn validate_policy_based(p: RawPolicyBased) -> Result<Vec<SelectorPair>, String> {
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
