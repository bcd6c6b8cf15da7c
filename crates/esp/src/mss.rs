//! TCP MSS clamping: lowers the Maximum Segment Size option (RFC 9293 §3.7.1, RFC 879,
//! RFC 6691) of TCP SYNs crossing the tunnel, so that both ends send segments that fit the
//! tunnel MTU without relying on path-MTU discovery. What `iptables -j TCPMSS` and Cisco's
//! `ip tcp adjust-mss` do.
//!
//! In place and zero-copy; the TCP checksum is updated incrementally (RFC 1624). Packets it
//! cannot handle safely are left as they are, never rejected: IPv4 fragments, IPv6 packets with
//! extension headers before TCP (the MSS option of such SYNs stays untouched), jumbograms, and
//! anything truncated or malformed. A SYN without an MSS option gets none added: its peer
//! assumes 536 (IPv4) or 1220 (IPv6), no more than any useful clamp.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use crate::ip::IpPacket;

/// TCP's IP protocol number.
const TCP: u8 = 6;
#[cfg(test)]
const IPV4_MIN: usize = crate::ip::IPV4_MIN_HEADER;
const IPV6_LEN: usize = crate::ip::IPV6_HEADER;
const TCP_MIN: usize = 20;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
/// TCP option kinds (RFC 9293 §3.1).
const EOL: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const MSS_LEN: usize = 4;
/// IPv4 + TCP header bytes subtracted from an MTU to give an MSS (RFC 879, RFC 6691).
pub const IPV4_OVERHEAD: u16 = 40;
/// IPv6 + TCP header bytes (RFC 8200 §8.3).
pub const IPV6_OVERHEAD: u16 = 60;

/// The largest MSS a TUN lets TCP SYNs announce, per IP version; `None` leaves them alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MssClamp {
    pub ipv4: Option<u16>,
    pub ipv6: Option<u16>,
}

impl MssClamp {
    /// No clamping.
    pub const OFF: MssClamp = MssClamp {
        ipv4: None,
        ipv6: None,
    };

    /// The MSS that fills a packet of `mtu` bytes: `mtu` − 40 for IPv4, − 60 for IPv6.
    pub fn for_mtu(mtu: u16) -> MssClamp {
        MssClamp {
            ipv4: mtu.checked_sub(IPV4_OVERHEAD),
            ipv6: mtu.checked_sub(IPV6_OVERHEAD),
        }
    }

    /// The same limit for both IP versions.
    pub fn fixed(mss: u16) -> MssClamp {
        MssClamp {
            ipv4: Some(mss),
            ipv6: Some(mss),
        }
    }

    /// Clamps `packet` (an IPv4 or IPv6 packet) to this limit; true when its MSS was lowered.
    pub fn apply(&self, packet: &mut [u8]) -> bool {
        let max = match crate::ip::version(packet) {
            Some(4) => self.ipv4,
            Some(6) => self.ipv6,
            _ => None,
        };
        max.is_some_and(|m| clamp(packet, m))
    }
}

/// Where the TCP segment of a SYN starts and ends in `packet`; None for anything else
/// (including the cases the module comment lists). Cheap: a few header bytes.
fn syn_segment(packet: &[u8]) -> Option<(usize, usize)> {
    let (start, end) = match IpPacket::new_checked(packet).ok()? {
        IpPacket::V4(ip) => {
            let (ihl, total) = (ip.header_len(), ip.total_len());
            // Not a whole datagram when fragmented.
            if ip.protocol() != TCP || ip.is_fragment() || total > packet.len() {
                return None;
            }
            (ihl, total)
        }
        IpPacket::V6(ip) => {
            let payload = ip.payload_len();
            // Next header TCP only: extension headers are not walked. Payload length 0 is a
            // jumbogram (RFC 2675).
            if ip.next_header() != TCP || payload == 0 || ip.total_len() > packet.len() {
                return None;
            }
            (IPV6_LEN, ip.total_len())
        }
    };
    let tcp = packet.get(start..end)?;
    let flags = *tcp.get(13)?;
    if flags & (SYN | RST) != SYN || tcp.len() < TCP_MIN {
        return None;
    }
    Some((start, end))
}

/// True for a TCP SYN (or SYN-ACK) this module would look into: the cheap test before any
/// lookup of which limit applies.
pub fn is_syn(packet: &[u8]) -> bool {
    syn_segment(packet).is_some()
}

/// Lowers the MSS option of the TCP SYN in `packet` to `max` when it is larger, fixing the
/// TCP checksum (RFC 1624). True when the packet changed. Never panics; anything it does not
/// understand stays untouched.
pub fn clamp(packet: &mut [u8], max: u16) -> bool {
    let Some((start, end)) = syn_segment(packet) else {
        return false;
    };
    let Some(tcp) = packet.get_mut(start..end) else {
        return false;
    };
    let doff = usize::from(tcp.get(12).map_or(0, |b| b >> 4)).saturating_mul(4);
    if doff < TCP_MIN || doff > tcp.len() {
        return false;
    }
    let mut changed = false;
    let mut at = TCP_MIN;
    while at < doff {
        let kind = tcp.get(at).copied().unwrap_or(EOL);
        match kind {
            EOL => break,
            NOP => {
                at = at.saturating_add(1);
                continue;
            }
            _ => {}
        }
        let len = usize::from(tcp.get(at.saturating_add(1)).copied().unwrap_or(0));
        if len < 2 || at.saturating_add(len) > doff {
            // Malformed option list: stop, changing nothing further.
            break;
        }
        if kind == MSS && len == MSS_LEN {
            let value = at.saturating_add(2);
            let old = be16(tcp, value);
            if old > max {
                if let Some(v) = tcp.get_mut(value..value.saturating_add(2)) {
                    v.copy_from_slice(&max.to_be_bytes());
                }
                // The checksum sums 16-bit words from the TCP header on; a value at an odd
                // offset straddles two words and counts byte-swapped.
                let odd = value & 1 == 1;
                let word = |v: u16| if odd { v.swap_bytes() } else { v };
                let sum = be16(tcp, 16);
                let new = update_checksum(sum, word(old), word(max));
                if let Some(c) = tcp.get_mut(16..18) {
                    c.copy_from_slice(&new.to_be_bytes());
                }
                changed = true;
            }
        }
        at = at.saturating_add(len);
    }
    changed
}

/// The big-endian 16-bit value at `at`, 0 past the end.
fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at.saturating_add(2)) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

/// RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `old` to `new`,
/// HC' = ~(~HC + ~m + m').
#[allow(clippy::arithmetic_side_effects)] // three u16 in a u32, folded: cannot overflow
fn update_checksum(hc: u16, old: u16, new: u16) -> u16 {
    let mut acc = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // tests: fixed inputs
mod tests {
    use super::*;
    use crate::offload::checksum;
    use proptest::prelude::*;

    /// Sum of `data` as big-endian words, unfolded.
    fn words(data: &[u8]) -> u32 {
        data.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
            .sum()
    }

    /// The pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) plus segment folded: 0xffff verifies.
    fn tcp_sum(p: &[u8]) -> u16 {
        let (start, end, src, dst) = if p[0] >> 4 == 4 {
            let ihl = usize::from(p[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
            (ihl, total, &p[12..16], &p[16..20])
        } else {
            let end = IPV6_LEN + usize::from(u16::from_be_bytes([p[4], p[5]]));
            (IPV6_LEN, end, &p[8..24], &p[24..40])
        };
        let mut acc = words(src) + words(dst) + u32::from(TCP) + (end - start) as u32;
        acc += words(&p[start..end]);
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    fn fix_tcp_checksum(p: &mut [u8], start: usize) {
        p[start + 16..start + 18].fill(0);
        let c = !tcp_sum(p);
        p[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    }

    /// A TCP packet with the given IPv4 option bytes (or IPv6 when `v6`), TCP `options`,
    /// `flags` and payload, checksums filled in.
    fn packet(v6: bool, ip_opts: &[u8], flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let ip = if v6 {
            IPV6_LEN
        } else {
            IPV4_MIN + ip_opts.len()
        };
        let tcp_len = TCP_MIN + options.len();
        let total = ip + tcp_len + payload.len();
        let mut p = vec![0u8; total];
        if v6 {
            p[0] = 0x60;
            p[4..6].copy_from_slice(&((total - IPV6_LEN) as u16).to_be_bytes());
            p[6] = TCP;
            p[7] = 64;
            p[8..24].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            p[24..40]
                .copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        } else {
            p[0] = 0x40 | (ip / 4) as u8;
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[6] = 0x40; // DF
            p[8] = 64;
            p[9] = TCP;
            p[12..16].copy_from_slice(&[198, 51, 100, 1]);
            p[16..20].copy_from_slice(&[203, 0, 113, 1]);
            p[IPV4_MIN..ip].copy_from_slice(ip_opts);
            let c = checksum(&p[..ip]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let t = ip;
        p[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        p[t + 2..t + 4].copy_from_slice(&5201u16.to_be_bytes());
        p[t + 4..t + 8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        p[t + 12] = ((tcp_len / 4) as u8) << 4;
        p[t + 13] = flags;
        p[t + 14..t + 16].copy_from_slice(&64240u16.to_be_bytes());
        p[t + TCP_MIN..t + tcp_len].copy_from_slice(options);
        p[t + tcp_len..].copy_from_slice(payload);
        fix_tcp_checksum(&mut p, t);
        p
    }

    fn mss_opt(v: u16) -> [u8; 4] {
        let b = v.to_be_bytes();
        [MSS, 4, b[0], b[1]]
    }

    /// Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale.
    fn linux_syn_options(mss: u16) -> Vec<u8> {
        let mut o = mss_opt(mss).to_vec();
        o.extend_from_slice(&[4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
        o
    }

    fn mss_of(p: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([p[at], p[at + 1]])
    }

    #[test]
    fn syn_and_syn_ack_mss_is_lowered_and_the_checksum_still_verifies() {
        for (v6, flags) in [
            (false, SYN),
            (false, SYN | 0x10),
            (true, SYN),
            (true, SYN | 0x10),
        ] {
            let mut p = packet(v6, &[], flags, &linux_syn_options(1460), &[]);
            let at = if v6 { IPV6_LEN } else { IPV4_MIN } + TCP_MIN + 2;
            assert!(clamp(&mut p, 1360));
            assert_eq!(mss_of(&p, at), 1360);
            assert_eq!(tcp_sum(&p), 0xffff, "v6={v6} flags={flags:#x}");
        }
    }

    #[test]
    fn an_mss_at_or_below_the_limit_is_kept() {
        let orig = packet(false, &[], SYN, &linux_syn_options(1200), &[]);
        let mut p = orig.clone();
        assert!(!clamp(&mut p, 1200));
        assert!(!clamp(&mut p, 1400));
        assert_eq!(p, orig);
    }

    #[test]
    fn an_mss_at_an_odd_offset_after_nops_is_clamped_with_a_valid_checksum() {
        let mut opts = vec![NOP];
        opts.extend_from_slice(&mss_opt(8960));
        opts.extend_from_slice(&[NOP, NOP, NOP]);
        let mut p = packet(false, &[], SYN, &opts, &[]);
        assert!(clamp(&mut p, 1400));
        assert_eq!(mss_of(&p, IPV4_MIN + TCP_MIN + 3), 1400);
        assert_eq!(tcp_sum(&p), 0xffff);
    }

    #[test]
    fn ipv4_options_move_the_tcp_header() {
        // Router alert (RFC 2113).
        let mut p = packet(false, &[0x94, 4, 0, 0], SYN, &linux_syn_options(1460), &[]);
        assert!(clamp(&mut p, 1000));
        assert_eq!(mss_of(&p, 24 + TCP_MIN + 2), 1000);
        assert_eq!(tcp_sum(&p), 0xffff);
    }

    #[test]
    fn bytes_after_the_ip_total_length_are_ignored() {
        let mut p = packet(false, &[], SYN, &linux_syn_options(1460), &[]);
        p.extend_from_slice(&[0; 6]); // Ethernet padding
        assert!(clamp(&mut p, 1300));
        assert_eq!(tcp_sum(&p[..p.len() - 6]), 0xffff);
    }

    #[test]
    fn packets_that_are_not_whole_syns_are_left_alone() {
        let opts = linux_syn_options(1460);
        let mut cases = vec![
            packet(false, &[], 0x10, &opts, b"data"), // ACK
            packet(false, &[], SYN | RST, &opts, &[]),
            packet(true, &[], 0x18, &opts, b"x"),
        ];
        let mut frag = packet(false, &[], SYN, &opts, &[]);
        frag[6] = 0x20; // more fragments
        cases.push(frag);
        let mut later = packet(false, &[], SYN, &opts, &[]);
        later[7] = 1; // fragment offset 8
        cases.push(later);
        let mut udp = packet(false, &[], SYN, &opts, &[]);
        udp[9] = 17;
        cases.push(udp);
        let mut ext = packet(true, &[], SYN, &opts, &[]);
        ext[6] = 0; // hop-by-hop options header first
        cases.push(ext);
        let mut jumbo = packet(true, &[], SYN, &opts, &[]);
        jumbo[4..6].fill(0);
        cases.push(jumbo);
        let mut short = packet(false, &[], SYN, &opts, &[]);
        short.truncate(short.len() - 1); // total length beyond the buffer
        cases.push(short);
        let mut bad_ihl = packet(false, &[], SYN, &opts, &[]);
        bad_ihl[0] = 0x44;
        cases.push(bad_ihl);
        let mut bad_doff = packet(false, &[], SYN, &opts, &[]);
        bad_doff[IPV4_MIN + 12] = 0xf0; // 60-byte header in a 40-byte segment
        cases.push(bad_doff);
        let mut small_doff = packet(false, &[], SYN, &opts, &[]);
        small_doff[IPV4_MIN + 12] = 0x40;
        cases.push(small_doff);
        for (i, c) in cases.iter().enumerate() {
            let mut p = c.clone();
            assert!(!clamp(&mut p, 536), "case {i}");
            assert!(!MssClamp::fixed(536).apply(&mut p), "case {i}");
            assert_eq!(&p, c, "case {i}");
        }
        for n in 0..60 {
            let mut p = packet(false, &[], SYN, &opts, &[]);
            p.truncate(n);
            assert!(!clamp(&mut p, 536));
        }
    }

    #[test]
    fn malformed_option_lists_stop_the_walk() {
        // A zero-length option before the MSS; an option running past the header; EOL first.
        for opts in [
            [8, 0, 0, 0, MSS, 4, 0x05, 0xb4],
            [8, 12, 0, 0, MSS, 4, 0x05, 0xb4],
            [EOL, NOP, NOP, NOP, MSS, 4, 0x05, 0xb4],
            [NOP, NOP, NOP, NOP, MSS, 6, 0x05, 0xb4], // MSS of the wrong length
        ] {
            let orig = packet(false, &[], SYN, &opts, &[]);
            let mut p = orig.clone();
            assert!(!clamp(&mut p, 536));
            assert_eq!(p, orig);
        }
        // The MSS before the malformed option is still clamped.
        let mut opts = mss_opt(1460).to_vec();
        opts.extend_from_slice(&[8, 0, 0, 0]);
        let mut p = packet(false, &[], SYN, &opts, &[]);
        assert!(clamp(&mut p, 1000));
        assert_eq!(tcp_sum(&p), 0xffff);
    }

    #[test]
    fn limits_follow_the_mtu_and_the_ip_version() {
        let c = MssClamp::for_mtu(1400);
        assert_eq!((c.ipv4, c.ipv6), (Some(1360), Some(1340)));
        let mut v4 = packet(false, &[], SYN, &linux_syn_options(1460), &[]);
        let mut v6 = packet(true, &[], SYN, &linux_syn_options(1440), &[]);
        assert!(c.apply(&mut v4) && c.apply(&mut v6));
        assert_eq!(mss_of(&v4, IPV4_MIN + TCP_MIN + 2), 1360);
        assert_eq!(mss_of(&v6, IPV6_LEN + TCP_MIN + 2), 1340);
        assert!(!MssClamp::OFF.apply(&mut v4));
        assert!(is_syn(&v4) && !is_syn(&[0x45]) && !is_syn(&[]));
    }

    #[test]
    fn the_incremental_update_matches_a_full_recomputation() {
        let mut data = vec![0x12u8, 0x34, 0xab, 0xcd, 0xff, 0xff, 0x00, 0x01];
        let before = checksum(&data);
        data[2..4].copy_from_slice(&0x5678u16.to_be_bytes());
        assert_eq!(update_checksum(before, 0xabcd, 0x5678), checksum(&data));
    }

    proptest! {
        #[test]
        fn clamped_syns_verify_and_carry_the_smaller_mss(
            v6 in any::<bool>(),
            ack in any::<bool>(),
            old in any::<u16>(),
            max in any::<u16>(),
            nops in 0usize..4,
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            stamp in any::<bool>(),
            seed in any::<u32>(),
        ) {
            let mut opts = vec![NOP; nops];
            opts.extend_from_slice(&mss_opt(old));
            opts.resize(opts.len().div_ceil(4) * 4, NOP);
            if stamp {
                opts.extend_from_slice(&[NOP, NOP, 8, 10]);
                opts.extend_from_slice(&seed.to_be_bytes());
                opts.extend_from_slice(&[0, 0, 0, 0]);
            }
            let flags = if ack { SYN | 0x10 } else { SYN };
            let mut p = packet(v6, &[], flags, &opts, &payload);
            let at = if v6 { IPV6_LEN } else { IPV4_MIN } + TCP_MIN + nops + 2;
            let changed = clamp(&mut p, max);
            prop_assert_eq!(changed, old > max);
            prop_assert_eq!(mss_of(&p, at), old.min(max));
            prop_assert_eq!(tcp_sum(&p), 0xffff);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_keep_their_length(
            mut data in proptest::collection::vec(any::<u8>(), 0..120),
            max in any::<u16>(),
        ) {
            let len = data.len();
            clamp(&mut data, max);
            prop_assert_eq!(data.len(), len);
        }
    }
}
