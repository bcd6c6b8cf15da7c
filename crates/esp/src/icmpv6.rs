//! ICMPv6 Packet Too Big (RFC 4443 §3.2) for inner IPv6 packets larger than the tunnel can
//! carry whole: a tunnel entry point drops them and tells the sender (RFC 2473 §7.1).

use std::net::Ipv6Addr;

use crate::ip::{Ipv6Packet, IPV6_HEADER};
use crate::offload::{fold, sum};

/// The smallest MTU of an IPv6 link (RFC 8200 §5); a PTB never announces less.
pub const IPV6_MIN_MTU: u32 = 1280;
/// IPv6 next header value of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
const TYPE_PACKET_TOO_BIG: u8 = 2;
const ICMPV6_HEADER: usize = 8;
/// Hop limit of the generated message (RFC 8200 §3 default).
const HOP_LIMIT: u8 = 64;

/// Writes into `out` a Packet Too Big from the invoking packet's destination to its source,
/// announcing `mtu` (at least 1280) and quoting as much of `invoking` as fits into 1280 bytes
/// (RFC 4443 §2.4 (c)). Returns its length; None when no error may be sent: the packet is no
/// IPv6, its source is unspecified or multicast (§2.4 (e)), it is itself an ICMPv6 error, or
/// `out` is too small.
pub fn packet_too_big(invoking: &[u8], mtu: u32, out: &mut [u8]) -> Option<usize> {
    let ip = Ipv6Packet::new_checked(invoking).ok()?;
    let src = ip.src_addr();
    if src.is_unspecified() || src.is_multicast() || src.is_loopback() {
        return None;
    }
    if ip.next_header() == IPPROTO_ICMPV6 {
        // Type < 128 is an error message: never answered with another (§2.4 (e.1)).
        match invoking.get(IPV6_HEADER) {
            Some(&t) if t >= 128 => {}
            _ => return None,
        }
    }
    let quoted = invoking
        .len()
        .min(IPV6_MIN_MTU as usize - IPV6_HEADER - ICMPV6_HEADER);
    let icmp_len = ICMPV6_HEADER + quoted;
    let total = IPV6_HEADER + icmp_len;
    let out = out.get_mut(..total)?;
    // The message leaves from the address the invoking packet was sent to.
    let from: Ipv6Addr = ip.dst_addr();
    out[..IPV6_HEADER].fill(0);
    out[0] = 0x60;
    out[4..6].copy_from_slice(&(icmp_len as u16).to_be_bytes());
    out[6] = IPPROTO_ICMPV6;
    out[7] = HOP_LIMIT;
    out[8..24].copy_from_slice(&from.octets());
    out[24..40].copy_from_slice(&src.octets());
    let icmp = &mut out[IPV6_HEADER..];
    icmp[0] = TYPE_PACKET_TOO_BIG;
    icmp[1] = 0;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&mtu.max(IPV6_MIN_MTU).to_be_bytes());
    icmp[ICMPV6_HEADER..].copy_from_slice(invoking.get(..quoted)?);
    // RFC 4443 §2.3: pseudo-header (RFC 8200 §8.1) + message.
    let pseudo = sum(
        &out[8..40],
        u64::from(IPPROTO_ICMPV6).wrapping_add(icmp_len as u64),
    );
    let csum = !fold(sum(&out[IPV6_HEADER..], pseudo));
    out[IPV6_HEADER + 2..IPV6_HEADER + 4].copy_from_slice(&csum.to_be_bytes());
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::checksum;

    fn v6_packet(src: &str, dst: &str, next: u8, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        p[6] = next;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    #[test]
    fn ptb_goes_back_to_the_sender_with_a_valid_checksum_and_1280_bytes_at_most() {
        let inv = v6_packet("2001:db8:1::1", "2001:db8:2::1", 17, 1500);
        let mut out = [0u8; 2048];
        let n = packet_too_big(&inv, 1400, &mut out).unwrap();
        assert_eq!(n, 1280);
        let p = Ipv6Packet::new_checked(&out[..n]).unwrap();
        assert_eq!(p.src_addr(), "2001:db8:2::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.next_header(), IPPROTO_ICMPV6);
        assert_eq!(p.payload_len(), 1240);
        assert_eq!(&out[40..42], &[2, 0]);
        assert_eq!(
            u32::from_be_bytes([out[44], out[45], out[46], out[47]]),
            1400
        );
        assert_eq!(&out[48..n], &inv[..1232]);
        // Checksum over pseudo-header + message verifies to zero.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&out[8..40]);
        pseudo.extend_from_slice(&1240u32.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(&out[40..n]);
        assert_eq!(checksum(&pseudo), 0);
    }

    #[test]
    fn ptb_announces_at_least_1280_and_quotes_a_short_packet_whole() {
        let inv = v6_packet("2001:db8:1::1", "2001:db8:2::1", 6, 100);
        let mut out = [0u8; 2048];
        let n = packet_too_big(&inv, 600, &mut out).unwrap();
        assert_eq!(n, 148);
        assert_eq!(
            u32::from_be_bytes([out[44], out[45], out[46], out[47]]),
            1280
        );
    }

    #[test]
    fn no_ptb_for_errors_unspecified_sources_ipv4_or_short_buffers() {
        let mut out = [0u8; 2048];
        let mut err = v6_packet("2001:db8:1::1", "2001:db8:2::1", 58, 1500);
        err[40] = 1; // destination unreachable
        assert_eq!(packet_too_big(&err, 1400, &mut out), None);
        let mut echo = err.clone();
        echo[40] = 128; // echo request
        assert!(packet_too_big(&echo, 1400, &mut out).is_some());
        let unspec = v6_packet("::", "2001:db8:2::1", 17, 1500);
        assert_eq!(packet_too_big(&unspec, 1400, &mut out), None);
        let mcast = v6_packet("ff02::1", "2001:db8:2::1", 17, 1500);
        assert_eq!(packet_too_big(&mcast, 1400, &mut out), None);
        let mut v4 = vec![0x45u8; 60];
        v4[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(packet_too_big(&v4, 1400, &mut out), None);
        assert_eq!(packet_too_big(&[0x60, 0, 0], 1400, &mut out), None);
        let inv = v6_packet("2001:db8:1::1", "2001:db8:2::1", 17, 1500);
        assert_eq!(packet_too_big(&inv, 1400, &mut [0u8; 100]), None);
    }
}
