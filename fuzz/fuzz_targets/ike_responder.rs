//! The responder state machine fed a sequence of arbitrary datagrams from a configured peer.
//! Input: repeated [len_hi, len_lo, port_selector, bytes…].
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrovpn_ike::{ConnectionConfig, Datagram, Endpoint, Settings};
use libfuzzer_sys::fuzz_target;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fuzz_target!(|data: &[u8]| {
    let mut cfg = ConnectionConfig::new("fuzz", B, A, b"ferrovpn-test-psk");
    cfg.allow_aggressive_psk = true;
    let mut ep = Endpoint::new(Settings::default(), [7; 32]);
    ep.add_connection(cfg);
    let now = Instant::now();
    let mut rest = data;
    while let [hi, lo, sel, tail @ ..] = rest {
        let len = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let (msg, next) = tail.split_at(len);
        let port = if sel & 1 == 0 { 500 } else { 4500 };
        ep.handle_datagram(now, Datagram { local: SocketAddr::new(B, port), remote: SocketAddr::new(A, port), data: msg.to_vec() });
        while ep.poll_transmit().is_some() {}
        rest = next;
    }
    ep.handle_timeout(now + Duration::from_secs(3600));
    while ep.poll_event().is_some() {}
});
