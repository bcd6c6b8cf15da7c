//! Fuzz target: arbitrary packets through TCP MSS clamping. It may not panic or change the
//! length; clamping twice changes nothing more; a SYN's TCP checksum (made valid first) still
//! verifies.
#![no_main]

use ferrovpn_esp::mss;
use ferrovpn_esp::offload::checksum;
use libfuzzer_sys::fuzz_target;

/// The Internet checksum over the pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) and the TCP
/// segment of an IPv4/IPv6 packet, and where the segment starts: 0 when the checksum verifies.
fn tcp_checksum(p: &[u8]) -> Option<(u16, usize)> {
    let (start, end, addrs) = match p.first()? >> 4 {
        4 => {
            let ihl = usize::from(p.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
            (ihl, total, p.get(12..20)?)
        }
        6 => {
            let len = usize::from(u16::from_be_bytes([*p.get(4)?, *p.get(5)?]));
            (40, 40 + len, p.get(8..40)?)
        }
        _ => return None,
    };
    let segment = p.get(start..end)?;
    let mut buf = addrs.to_vec();
    buf.extend_from_slice(&[0, 6]);
    buf.extend_from_slice(&u16::try_from(segment.len()).ok()?.to_be_bytes());
    buf.extend_from_slice(segment);
    Some((checksum(&buf), start))
}

fuzz_target!(|data: &[u8]| {
    let Some((m, packet)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = u16::from_be_bytes(*m);
    let mut p = packet.to_vec();
    // Give SYNs a correct checksum first, so every one tests the incremental update.
    let syn = mss::is_syn(&p);
    if syn {
        let start = tcp_checksum(&p).expect("a SYN has a TCP segment").1;
        p[start + 16..start + 18].fill(0);
        let c = tcp_checksum(&p).expect("still one").0;
        p[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    }
    let before = p.clone();
    let changed = mss::clamp(&mut p, max);
    assert_eq!(p.len(), before.len());
    assert_eq!(changed, p != before);
    let once = p.clone();
    assert!(!mss::clamp(&mut p, max), "a second clamp changed the packet");
    assert_eq!(p, once);
    if syn {
        assert_eq!(tcp_checksum(&p).map(|c| c.0), Some(0), "clamping broke the checksum");
    }
    let _ = mss::MssClamp::for_mtu(max).apply(&mut p);
});
