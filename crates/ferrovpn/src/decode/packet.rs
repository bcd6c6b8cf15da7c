//! From a captured frame to the IPsec traffic in it: link layer (Ethernet with VLAN tags, raw
//! IP, Linux cooked SLL/SLL2, BSD loopback), IPv4/IPv6, then UDP 500/4500 (RFC 3948 §2.2
//! non-ESP marker) or IP protocol 50 (RFC 4303).

use std::net::{IpAddr, SocketAddr};

use ferrovpn_esp::ip::{version, IpPacket, Ipv4Packet, Ipv6Packet, IPV6_HEADER};
use ferrovpn_esp::nat_t::{self, UdpPayload};

/// LINKTYPE_NULL: BSD loopback, 4-byte address family in host byte order.
pub const LINKTYPE_NULL: u16 = 0;
pub const LINKTYPE_ETHERNET: u16 = 1;
/// LINKTYPE_RAW (DLT_RAW on most systems; 12 and 14 on some BSDs).
pub const LINKTYPE_RAW: u16 = 101;
pub const LINKTYPE_LINUX_SLL: u16 = 113;
pub const LINKTYPE_IPV4: u16 = 228;
pub const LINKTYPE_IPV6: u16 = 229;
pub const LINKTYPE_LINUX_SLL2: u16 = 276;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ESP: u8 = 50;
/// IKE's port (RFC 2408 §2.5.2).
pub const IKE_PORT: u16 = 500;

/// The IPsec content of one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content<'a> {
    /// An ISAKMP message (non-ESP marker removed); `nat_t` when it came on port 4500.
    Isakmp {
        src: SocketAddr,
        dst: SocketAddr,
        nat_t: bool,
        message: &'a [u8],
    },
    /// An ESP packet from its SPI on; `udp` holds the ports when UDP-encapsulated.
    Esp {
        src: IpAddr,
        dst: IpAddr,
        udp: Option<(u16, u16)>,
        packet: &'a [u8],
    },
    /// A NAT-keepalive (RFC 3948 §2.3).
    Keepalive { src: SocketAddr, dst: SocketAddr },
    /// An IP fragment; IKE messages split by IP fragmentation are not reassembled.
    Fragment,
    /// Cut short by the capture's snap length or malformed.
    Truncated,
    /// Anything else (other protocols, other ports, unknown link types).
    Other,
}

/// Finds the IPsec content of a frame of the given link type.
pub fn parse(link_type: u16, frame: &[u8]) -> Content<'_> {
    let ip = match link_type {
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_RAW | 12 | 14 | LINKTYPE_IPV4 | LINKTYPE_IPV6 => Some(frame),
        LINKTYPE_LINUX_SLL => frame
            .get(14..16)
            .filter(|p| is_ip_ethertype(be16(p)))
            .and_then(|_| frame.get(16..)),
        LINKTYPE_LINUX_SLL2 => frame
            .get(0..2)
            .filter(|p| is_ip_ethertype(be16(p)))
            .and_then(|_| frame.get(20..)),
        LINKTYPE_NULL => frame.get(4..),
        _ => None,
    };
    match ip {
        Some(ip) => parse_ip(ip),
        None => Content::Other,
    }
}

fn be16(b: &[u8]) -> u16 {
    match b {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn is_ip_ethertype(t: u16) -> bool {
    t == ETHERTYPE_IPV4 || t == ETHERTYPE_IPV6
}

/// Ethernet II with up to two 802.1Q/802.1ad tags.
fn ethernet(frame: &[u8]) -> Option<&[u8]> {
    let mut at: usize = 12;
    for _ in 0..3 {
        let after = at.checked_add(2)?;
        let t = be16(frame.get(at..after)?);
        match t {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ => at = at.checked_add(4)?,
            t if is_ip_ethertype(t) => return frame.get(after..),
            _ => return None,
        }
    }
    None
}

/// IPv4 (RFC 791) or IPv6 (RFC 8200) by the version nibble.
fn parse_ip(ip: &[u8]) -> Content<'_> {
    if !matches!(version(ip), Some(4 | 6)) {
        return Content::Other;
    }
    match IpPacket::new_checked(ip) {
        Ok(IpPacket::V4(h)) => ipv4(ip, h),
        Ok(IpPacket::V6(h)) => ipv6(ip, h),
        Err(_) => Content::Truncated,
    }
}

fn ipv4<'a>(ip: &'a [u8], h: Ipv4Packet<&[u8]>) -> Content<'a> {
    let (ihl, total) = (h.header_len(), h.total_len());
    if total < ihl {
        return Content::Truncated;
    }
    let Some(packet) = ip.get(..total) else {
        return Content::Truncated;
    };
    if h.is_fragment() {
        return Content::Fragment;
    }
    let (src, dst) = (IpAddr::V4(h.src_addr()), IpAddr::V4(h.dst_addr()));
    match packet.get(ihl..) {
        Some(payload) => transport(src, dst, h.protocol(), payload),
        None => Content::Truncated,
    }
}

fn ipv6<'a>(ip: &'a [u8], h: Ipv6Packet<&[u8]>) -> Content<'a> {
    let Some(mut payload) = ip.get(IPV6_HEADER..).and_then(|p| p.get(..h.payload_len())) else {
        return Content::Truncated;
    };
    let (src, dst) = (IpAddr::V6(h.src_addr()), IpAddr::V6(h.dst_addr()));
    let mut next = h.next_header();
    // Extension headers (RFC 8200 §4): hop-by-hop, routing, destination options, fragment.
    for _ in 0..8 {
        let len = match next {
            0 | 43 | 60 => match payload.get(1) {
                Some(l) => usize::from(*l).saturating_add(1).saturating_mul(8),
                None => return Content::Truncated,
            },
            44 => {
                let Some(f) = payload.get(..8).and_then(|f| <&[u8; 8]>::try_from(f).ok()) else {
                    return Content::Truncated;
                };
                if be16(&f[2..4]) & 0xfff9 != 0 {
                    return Content::Fragment;
                }
                8
            }
            _ => break,
        };
        let (Some(n), Some(rest)) = (payload.first(), payload.get(len..)) else {
            return Content::Truncated;
        };
        next = *n;
        payload = rest;
    }
    transport(src, dst, next, payload)
}

fn transport(src: IpAddr, dst: IpAddr, protocol: u8, payload: &[u8]) -> Content<'_> {
    match protocol {
        IPPROTO_ESP => Content::Esp {
            src,
            dst,
            udp: None,
            packet: payload,
        },
        IPPROTO_UDP => udp(src, dst, payload),
        _ => Content::Other,
    }
}

/// UDP (RFC 768): port 4500 on either side is NAT-T (RFC 3948), else port 500 is plain IKE.
fn udp(src: IpAddr, dst: IpAddr, datagram: &[u8]) -> Content<'_> {
    let Some(h) = datagram.get(..8).and_then(|h| <&[u8; 8]>::try_from(h).ok()) else {
        return Content::Truncated;
    };
    let (sport, dport) = (be16(&h[0..2]), be16(&h[2..4]));
    let len = usize::from(be16(&h[4..6]));
    let Some(payload) = datagram.get(8..len.max(8)) else {
        return Content::Truncated;
    };
    let (s, d) = (SocketAddr::new(src, sport), SocketAddr::new(dst, dport));
    if sport == nat_t::NAT_T_PORT || dport == nat_t::NAT_T_PORT {
        match nat_t::classify(payload) {
            UdpPayload::Ike(message) => Content::Isakmp {
                src: s,
                dst: d,
                nat_t: true,
                message,
            },
            UdpPayload::Esp(packet) => Content::Esp {
                src,
                dst,
                udp: Some((sport, dport)),
                packet,
            },
            UdpPayload::Keepalive => Content::Keepalive { src: s, dst: d },
            UdpPayload::Malformed => Content::Truncated,
        }
    } else if sport == IKE_PORT || dport == IKE_PORT {
        Content::Isakmp {
            src: s,
            dst: d,
            nat_t: false,
            message: payload,
        }
    } else {
        Content::Other
    }
}

#[cfg(test)]
// In tests an out-of-range index or an overflow is a failed test, which is what it should be.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = 28 + payload.len();
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn port_4500_strips_the_non_esp_marker_and_separates_esp() {
        let ike = udp4(4500, 4500, &[0, 0, 0, 0, 1, 2, 3]);
        assert!(matches!(
            parse(LINKTYPE_RAW, &ike),
            Content::Isakmp {
                nat_t: true,
                message: &[1, 2, 3],
                ..
            }
        ));
        let esp = udp4(4500, 4500, &[0, 0, 1, 0, 0, 0, 0, 7, 9]);
        assert!(matches!(
            parse(LINKTYPE_RAW, &esp),
            Content::Esp {
                udp: Some((4500, 4500)),
                ..
            }
        ));
        assert!(matches!(
            parse(LINKTYPE_RAW, &udp4(4500, 4500, &[0xff])),
            Content::Keepalive { .. }
        ));
        assert!(matches!(
            parse(LINKTYPE_RAW, &udp4(500, 500, &[5; 4])),
            Content::Isakmp { nat_t: false, .. }
        ));
        assert_eq!(parse(LINKTYPE_RAW, &udp4(53, 53, &[5; 4])), Content::Other);
    }

    #[test]
    fn link_layers_lead_to_the_same_ip_packet() {
        let ip = udp4(500, 500, &[7; 4]);
        let expected = parse(LINKTYPE_RAW, &ip);
        let mut eth = vec![0; 12];
        eth.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        eth.extend_from_slice(&ip);
        assert_eq!(parse(LINKTYPE_ETHERNET, &eth), expected);
        let mut sll = vec![0; 14];
        sll.extend_from_slice(&[0x08, 0x00]);
        sll.extend_from_slice(&ip);
        assert_eq!(parse(LINKTYPE_LINUX_SLL, &sll), expected);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(parse(LINKTYPE_LINUX_SLL2, &sll2), expected);
    }

    #[test]
    fn ipv6_esp_after_extension_header() {
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 60, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        p.extend_from_slice(&[0; 11]);
        p.push(2);
        p.extend_from_slice(&[50, 0, 0, 0, 0, 0, 0, 0]); // destination options → ESP
        p.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 1]);
        let Content::Esp { packet, udp, .. } = parse(LINKTYPE_RAW, &p) else {
            panic!("not ESP");
        };
        assert_eq!(udp, None);
        assert_eq!(packet, &[0, 0, 0, 9, 0, 0, 0, 1]);
    }

    #[test]
    fn fragments_and_short_packets_are_not_misread() {
        let mut frag = udp4(500, 500, &[1; 8]);
        frag[6] = 0x20; // more fragments
        assert_eq!(parse(LINKTYPE_RAW, &frag), Content::Fragment);
        let ip = udp4(500, 500, &[1; 8]);
        for cut in 0..ip.len() {
            let _ = parse(LINKTYPE_RAW, &ip[..cut]);
        }
        assert_eq!(parse(LINKTYPE_RAW, &ip[..30]), Content::Truncated);
    }
}
