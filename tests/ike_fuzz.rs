//! The responder state machine fed arbitrary and mutated datagrams: it never panics, and a
//! mutated conversation never yields an SA the genuine one would not.

use std::time::Duration;

use ferrovpn_ike::{Datagram, Endpoint, Event, Settings};
use ferrovpn_tests::*;
use proptest::prelude::*;

/// A genuine A→B conversation (Main Mode + Quick Mode), A's datagrams only.
fn recorded() -> Vec<Datagram> {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    assert_eq!(p.children(Side::B).len(), 1);
    p.wire
        .iter()
        .filter(|w| w.from == Side::A)
        .map(|w| w.datagram.clone())
        .collect()
}

/// A fresh B with the same seed as in `recorded`, so the replayed exchange is valid.
fn fresh_b() -> Endpoint {
    let mut b = Endpoint::new(Settings::default(), [2; 32]);
    b.add_connection(conn_b());
    b
}

fn deliver(b: &mut Endpoint, now: std::time::Instant, d: &Datagram) {
    b.handle_datagram(
        now,
        Datagram {
            local: d.remote,
            remote: d.local,
            data: d.data.clone(),
        },
    );
    while b.poll_transmit().is_some() {}
}

#[test]
fn replaying_the_genuine_conversation_establishes_the_sa() {
    let msgs = recorded();
    let mut b = fresh_b();
    let now = std::time::Instant::now();
    for d in &msgs {
        deliver(&mut b, now, d);
    }
    let mut children = 0;
    while let Some(e) = b.poll_event() {
        if matches!(e, Event::ChildSaEstablished(_)) {
            children += 1;
        }
    }
    assert_eq!(children, 1, "the replay harness reproduces the exchange");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), port in prop_oneof![Just(500u16), Just(4500u16), any::<u16>()]) {
        let mut b = fresh_b();
        let now = std::time::Instant::now();
        b.handle_datagram(now, Datagram { local: sa(ADDR_B, 500), remote: sa(ADDR_A, port), data });
        b.handle_timeout(now + Duration::from_secs(3600));
        while b.poll_transmit().is_some() {}
        while b.poll_event().is_some() {}
    }

    #[test]
    fn mutated_conversations_never_panic(which in 0usize..8, pos in any::<prop::sample::Index>(), byte in any::<u8>(), truncate in any::<bool>()) {
        let msgs = recorded_cached();
        let mut b = fresh_b();
        let now = std::time::Instant::now();
        let which = which % msgs.len();
        for (i, d) in msgs.iter().enumerate() {
            let mut d = d.clone();
            if i == which && !d.data.is_empty() {
                let at = pos.index(d.data.len());
                if truncate { d.data.truncate(at) } else { d.data[at] ^= byte.max(1) }
            }
            deliver(&mut b, now, &d);
        }
        b.handle_timeout(now + Duration::from_secs(3600));
        while b.poll_event().is_some() {}
    }
}

fn recorded_cached() -> Vec<Datagram> {
    use std::sync::OnceLock;
    static MSGS: OnceLock<Vec<Datagram>> = OnceLock::new();
    MSGS.get_or_init(recorded).clone()
}
