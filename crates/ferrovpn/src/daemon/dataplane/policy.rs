//! The outbound policy table: which SA protects a packet read from a TUN (RFC 4301 §4.4.1,
//! newest matching selector pair first).

use std::net::IpAddr;

use ferrovpn_esp::ip::IpPacket;
use ferrovpn_esp::SaHandle;

use crate::ipnet::IpNet;

/// An outbound policy: packets from `local` to `remote` read from TUN `tun` use `handle`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub tun: usize,
    pub local: IpNet,
    pub remote: IpNet,
    pub handle: SaHandle,
}
/// (source, destination) of an IPv4/IPv6 packet; None when it is neither.
pub(super) fn addresses(p: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let ip = IpPacket::new_checked(p).ok()?;
    Some((ip.src_addr(), ip.dst_addr()))
}

/// The newest outbound policy of TUN `i` that covers `packet`.
pub(super) fn policy_for(policies: &[Policy], i: usize, packet: &[u8]) -> Option<SaHandle> {
    let (src, dst) = addresses(packet)?;
    policies
        .iter()
        .rev()
        .find(|x| x.tun == i && x.remote.contains_addr(dst) && x.local.contains_addr(src))
        .map(|x| x.handle)
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
}
