//! The outbound policy table: which SA protects a packet read from a TUN (RFC 4301 §4.4.1,
//! newest matching selector pair first). A TUN of its own names its connection; on a shared
//! TUN the connection is the one whose routes hold the destination (longest-prefix match),
//! and a packet written to it must come from a source routed to the SA's connection.

use std::collections::HashMap;
use std::net::IpAddr;

use ferrovpn_esp::ip::IpPacket;
use ferrovpn_esp::SaHandle;

use crate::ipnet::IpNet;
use crate::prefix_table::{Overlap, PrefixTable};

/// An outbound policy: packets from `local` to `remote` read from TUN `tun` use `handle`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub tun: usize,
    /// The connection the SA belongs to.
    pub conn: usize,
    pub local: IpNet,
    pub remote: IpNet,
    pub handle: SaHandle,
}

/// How the connection of a packet read from a TUN is found.
#[derive(Debug)]
enum TunRoute {
    /// The TUN of one connection.
    Own(usize),
    /// A shared TUN: the connection whose routes hold the destination.
    Shared(PrefixTable<usize>),
}

/// The outbound policies of every connection and how each TUN maps packets to connections.
#[derive(Debug, Default)]
pub struct Policies {
    /// Per connection, newest last: the most recent SA for a selector pair wins
    /// (make-before-break rekey).
    by_conn: HashMap<usize, Vec<Policy>>,
    tuns: HashMap<usize, TunRoute>,
}

impl Policies {
    /// Adds the outbound policy of a newly installed SA.
    pub fn push(&mut self, p: Policy) {
        self.tuns.entry(p.tun).or_insert(TunRoute::Own(p.conn));
        self.by_conn.entry(p.conn).or_default().push(p);
    }

    /// Whether `p`'s connection has an outbound policy for exactly `p`'s selectors on `p`'s
    /// TUN, other than that of SA `except`.
    pub fn covers(&self, p: &Policy, except: Option<SaHandle>) -> bool {
        self.by_conn.get(&p.conn).is_some_and(|v| {
            v.iter().any(|x| {
                x.tun == p.tun
                    && x.local == p.local
                    && x.remote == p.remote
                    && Some(x.handle) != except
            })
        })
    }

    /// Removes the policy of outbound SA `handle` of connection `conn`.
    pub fn remove(&mut self, conn: usize, handle: SaHandle) {
        if let Some(v) = self.by_conn.get_mut(&conn) {
            v.retain(|x| x.handle != handle);
            if v.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    /// Makes TUN `tun` a shared one (no routes yet).
    pub fn share(&mut self, tun: usize) {
        self.tuns.insert(tun, TunRoute::Shared(PrefixTable::new()));
    }

    /// Routes `net` on shared TUN `tun` to connection `conn` (at start, and at run time, e.g.
    /// a client's assigned address). Refused when it shares addresses with another
    /// connection's prefix there, or when `tun` is not shared.
    pub fn add_route(&mut self, tun: usize, net: IpNet, conn: usize) -> Result<(), String> {
        let Some(TunRoute::Shared(t)) = self.tuns.get_mut(&tun) else {
            return Err(format!("TUN {tun} is not shared"));
        };
        if let Some(Overlap { existing, .. }) = t.overlap(&net, conn) {
            return Err(format!("{net} overlaps {existing} of another connection"));
        }
        t.insert(net, conn)
            .map_err(|o| format!("{net} is routed to another connection ({})", o.existing))
    }

    /// Takes `net` of connection `conn` off shared TUN `tun`.
    pub fn remove_route(&mut self, tun: usize, net: &IpNet, conn: usize) -> bool {
        match self.tuns.get_mut(&tun) {
            Some(TunRoute::Shared(t)) => t.remove(net, conn),
            _ => false,
        }
    }

    /// Forgets TUN `tun` (its device is gone).
    pub fn forget_tun(&mut self, tun: usize) {
        self.tuns.remove(&tun);
    }

    /// The number of prefixes routed into shared TUN `tun`.
    pub fn routes_on(&self, tun: usize) -> usize {
        match self.tuns.get(&tun) {
            Some(TunRoute::Shared(t)) => t.len(),
            _ => 0,
        }
    }

    /// The connection a packet from `src` to `dst` read from TUN `tun` belongs to.
    fn conn_of(&self, tun: usize, dst: IpAddr) -> Option<usize> {
        match self.tuns.get(&tun)? {
            TunRoute::Own(c) => Some(*c),
            TunRoute::Shared(t) => t.lookup(dst),
        }
    }

    /// The newest outbound policy of TUN `tun` that covers `packet`.
    pub(super) fn outbound(&self, tun: usize, packet: &[u8]) -> Option<SaHandle> {
        let (src, dst) = addresses(packet)?;
        let conn = self.conn_of(tun, dst)?;
        self.by_conn
            .get(&conn)?
            .iter()
            .rev()
            .find(|x| x.tun == tun && x.remote.contains_addr(dst) && x.local.contains_addr(src))
            .map(|x| x.handle)
    }

    /// False when a decapsulated packet of connection `conn` may not enter TUN `tun`: on a
    /// shared TUN, its source must be routed back to that connection (the kernel's reverse
    /// path check cannot tell the peers of one device apart).
    pub(super) fn source_allowed(&self, tun: usize, conn: usize, packet: &[u8]) -> bool {
        match self.tuns.get(&tun) {
            Some(TunRoute::Shared(t)) => {
                addresses(packet).and_then(|(src, _)| t.lookup(src)) == Some(conn)
            }
            _ => true,
        }
    }
}

/// (source, destination) of an IPv4/IPv6 packet; None when it is neither.
pub(super) fn addresses(p: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let ip = IpPacket::new_checked(p).ok()?;
    Some((ip.src_addr(), ip.dst_addr()))
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn addresses_of_ipv4_and_ipv6_packets() {
        let mut v4 = vec![0x45u8; 20];
        v4[12..16].copy_from_slice(&[198, 51, 100, 1]);
        v4[16..20].copy_from_slice(&[203, 0, 113, 1]);
        assert_eq!(
            addresses(&v4),
            Some((
                "198.51.100.1".parse().unwrap(),
                "203.0.113.1".parse().unwrap()
            ))
        );
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            addresses(&v6).unwrap().1,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(addresses(&[0x45, 0]), None);
        assert_eq!(addresses(&[]), None);
        assert_eq!(addresses(&[0x10; 60]), None);
    }

    /// `n` outbound SA handles from a throwaway SAD.
    fn handles(n: u32) -> Vec<SaHandle> {
        use ferrovpn_esp::{Cipher, Direction, SaConfig, Sad, SecretKey, Timestamp};
        let sad = Sad::new();
        let c = Cipher::ChaCha20Poly1305;
        (0..n)
            .map(|i| {
                let cfg = SaConfig::new(
                    0x100 + i,
                    Direction::Outbound,
                    c,
                    SecretKey::new(&[7u8; 36]),
                    SecretKey::new(&[]),
                    ferrovpn_esp::TunnelEndpoints {
                        local: "192.0.2.1".parse().unwrap(),
                        remote: "192.0.2.2".parse().unwrap(),
                    },
                );
                sad.add(&cfg, Timestamp::ZERO).unwrap()
            })
            .collect()
    }

    fn v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend(src);
        p.extend(dst);
        p
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_shared_tun_picks_the_connection_by_destination_and_refuses_foreign_sources() {
        let h = handles(3);
        let mut p = Policies::default();
        // TUN 0: connection 7's own; TUN 1: shared by connections 1 and 2.
        p.push(Policy {
            tun: 0,
            conn: 7,
            local: net("0.0.0.0/0"),
            remote: net("0.0.0.0/0"),
            handle: h[2],
        });
        p.share(1);
        p.add_route(1, net("203.0.113.0/25"), 1).unwrap();
        p.add_route(1, net("203.0.113.128/25"), 2).unwrap();
        let any = net("0.0.0.0/0");
        p.push(Policy {
            tun: 1,
            conn: 1,
            local: any,
            remote: any,
            handle: h[0],
        });
        p.push(Policy {
            tun: 1,
            conn: 2,
            local: any,
            remote: any,
            handle: h[1],
        });
        let gw = [198, 51, 100, 1];
        assert_eq!(p.outbound(1, &v4(gw, [203, 0, 113, 5])), Some(h[0]));
        assert_eq!(p.outbound(1, &v4(gw, [203, 0, 113, 200])), Some(h[1]));
        // A destination no connection routes: no SA (the caller drops and counts it).
        assert_eq!(p.outbound(1, &v4(gw, [198, 51, 100, 77])), None);
        assert_eq!(p.outbound(0, &v4(gw, [198, 51, 100, 77])), Some(h[2]));
        // Inbound: connection 1 may only send from its own prefixes.
        assert!(p.source_allowed(1, 1, &v4([203, 0, 113, 5], gw)));
        assert!(!p.source_allowed(1, 1, &v4([203, 0, 113, 200], gw)));
        assert!(!p.source_allowed(1, 1, &v4([192, 0, 2, 9], gw)));
        assert!(!p.source_allowed(1, 1, &[0x45, 0]));
        assert!(
            p.source_allowed(0, 7, &v4([192, 0, 2, 9], gw)),
            "own TUN: unchanged"
        );
        // Overlaps are refused; a route added at run time (a client's address) works at once
        // and leaves again.
        assert!(p.add_route(1, net("203.0.113.0/24"), 3).is_err());
        assert!(p.add_route(1, net("203.0.113.7/32"), 2).is_err());
        p.add_route(1, net("192.0.2.128/32"), 2).unwrap();
        assert_eq!(p.outbound(1, &v4(gw, [192, 0, 2, 128])), Some(h[1]));
        assert!(p.source_allowed(1, 2, &v4([192, 0, 2, 128], gw)));
        assert!(p.remove_route(1, &net("192.0.2.128/32"), 2));
        assert_eq!(p.outbound(1, &v4(gw, [192, 0, 2, 128])), None);
        // The SA goes: its connection's packets find no policy.
        p.remove(1, h[0]);
        assert_eq!(p.outbound(1, &v4(gw, [203, 0, 113, 5])), None);
        assert!(
            p.add_route(0, net("10.0.0.0/8"), 7).is_err(),
            "TUN 0 is not shared"
        );
    }
}
