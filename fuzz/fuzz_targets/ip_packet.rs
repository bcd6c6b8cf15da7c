//! Fuzz target: arbitrary bytes through the IPv4/IPv6 header views (`ferrovpn_esp::ip`). No
//! panic; a checked view's header lies within its buffer and has the version it claims.
#![no_main]

use ferrovpn_esp::ip::{self, IpPacket, Ipv4Packet, Ipv6Packet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match IpPacket::new_checked(data) {
        Ok(p) => {
            assert!(p.header_len() <= data.len());
            assert!(p.header_len() >= ip::IPV4_MIN_HEADER);
            assert_eq!(ip::version(data), Some(if p.is_ipv6() { 6 } else { 4 }));
            let _ = (p.src_addr(), p.dst_addr(), p.protocol(), p.total_len());
        }
        Err(_) => assert!(Ipv4Packet::new_checked(data).is_err() && Ipv6Packet::new_checked(data).is_err()),
    }
    let v4 = Ipv4Packet::new_unchecked(data);
    let _ = (v4.header_len(), v4.total_len(), v4.ident(), v4.is_fragment());
    let _ = (v4.ttl(), v4.protocol(), v4.src_addr(), v4.dst_addr());
    let v6 = Ipv6Packet::new_unchecked(data);
    let _ = (v6.payload_len(), v6.total_len(), v6.next_header(), v6.hop_limit());
    let _ = (v6.src_addr(), v6.dst_addr());
});
