//! IKEv1 fragment reassembly fed arbitrary fragment messages from a few peers over time: no
//! panic, memory stays within the limits, and whatever completes is a whole ISAKMP message
//! with the fragments' cookies. A second part cuts a message built from the input, delivers
//! its fragments shuffled and repeated, and must get the message back.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrovpn_ike::config::FragmentLimits;
use ferrovpn_ike::fragment::{self, Added, Reassembler};
use ferrovpn_ike::wire::{ExchangeType, Flags, Header, PayloadType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = FragmentLimits {
        max_fragments: 8,
        max_bytes: 2048,
        max_per_peer: 2,
        max_total: 4,
        timeout: Duration::from_secs(10),
    };
    let start = Instant::now();
    let mut now = start;
    let mut r = Reassembler::default();
    // Records: [len, clock step in seconds, peer (low 2 bits)] then `len` bytes of datagram.
    let mut rest = data;
    while let [len, step, peer, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (datagram, more) = tail.split_at(n);
        rest = more;
        now += Duration::from_secs(u64::from(*step % 16));
        r.expire(now, &limits);
        let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, peer & 3));
        if let Ok((header, frag)) = fragment::parse(datagram) {
            if let Ok(Added::Complete(whole)) = r.add(now, &limits, peer, &header, frag) {
                let h = Header::parse(&whole).expect("a completed message has a valid header");
                assert_eq!(h.initiator_spi, header.initiator_spi);
                assert_ne!(h.next_payload, PayloadType::FRAGMENT);
                assert!(whole.len() <= limits.max_bytes);
            }
        }
        assert!(r.len() <= limits.max_total);
        assert!(r.bytes() <= limits.max_total * limits.max_bytes);
    }
    r.expire(now + limits.timeout, &limits);
    assert!(r.is_empty());

    // Round trip: a message of the input's bytes, cut at a budget from the first byte.
    let Some((&b, body)) = data.split_first() else {
        return;
    };
    let body = &body[..body.len().min(4000)];
    let header = Header {
        initiator_spi: [1; 8],
        responder_spi: [2; 8],
        next_payload: PayloadType::ID,
        version: Header::VERSION,
        exchange: ExchangeType::IDENTITY_PROTECTION,
        flags: Flags(Flags::ENCRYPTION),
        message_id: 0,
        length: u32::try_from(Header::LEN + body.len()).unwrap(),
    };
    let mut message = Vec::new();
    header.emit(&mut message);
    message.extend_from_slice(body);
    let budget = 100 + usize::from(b) * 8;
    let Some(mut frags) = fragment::split(&message, budget) else {
        assert!(message.len() <= budget);
        return;
    };
    assert!(frags.iter().all(|f| f.len() <= budget));
    // Shuffle deterministically by the input, and repeat the first fragment at the end.
    let n = frags.len();
    for i in 0..n {
        let j = usize::from(body.get(i).copied().unwrap_or(0)) % n;
        frags.swap(i, j);
    }
    let first = frags[0].clone();
    frags.insert(n.saturating_sub(1), first);
    let limits = FragmentLimits {
        max_fragments: u8::MAX,
        max_bytes: 8192,
        ..FragmentLimits::default()
    };
    let mut r = Reassembler::default();
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut got = None;
    for f in frags {
        let (h, frag) = fragment::parse(&f).expect("our fragments parse");
        if let Ok(Added::Complete(whole)) = r.add(start, &limits, peer, &h, frag) {
            got = Some(whole);
        }
    }
    assert_eq!(got.as_deref(), Some(message.as_slice()));
});
