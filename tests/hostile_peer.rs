//! A peer built from the ike crate that knows the PSK and offers or answers absurd lifetimes
//! (2^64-1 s): we never adopt a lifetime above our own (RFC 2409 §4.5) and no timer overflows.
//! Plus the proptest twin of the `ike_plaintext` fuzz target.

use std::time::Duration;

use ferrovpn_ike::{DpdConfig, Event, Settings};
use ferrovpn_tests::hostile::{lifetime_tamper, plaintext_conversation};
use ferrovpn_tests::*;
use proptest::prelude::*;

fn hostile(names: &'static [&'static str]) -> Settings {
    Settings {
        tamper: Some(lifetime_tamper(names, u64::MAX, Some(u64::MAX))),
        ..Settings::default()
    }
}

fn ike_lifetimes(p: &Pair, side: Side) -> Vec<Duration> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaEstablished { lifetime, .. } => Some(*lifetime),
            _ => None,
        })
        .collect()
}

#[test]
fn an_initiator_keeps_its_own_esp_lifetime_when_qm2_answers_2_pow_64_minus_1_seconds() {
    let mut a = conn_a();
    a.esp_lifetime_kb = Some(100_000);
    let ours = (a.esp_lifetime, a.esp_lifetime_kb);
    let mut p = Pair::with_settings(a, conn_b(), hostile(&["QM2"]));
    p.connect();
    let children = p.children(Side::A);
    assert_eq!(children.len(), 1, "the Quick Mode completes");
    assert_eq!((children[0].lifetime, children[0].lifetime_kb), ours);
    let capped: Vec<_> = p
        .events(Side::A)
        .iter()
        .filter_map(|e| match e {
            Event::LifetimeCapped {
                sa,
                unit,
                theirs,
                ours,
                ..
            } => Some((*sa, *unit, *theirs, *ours)),
            _ => None,
        })
        .collect();
    assert_eq!(
        capped,
        [
            ("IPsec SA", "s", u64::MAX, 3600),
            ("IPsec SA", "KB", u64::MAX, 100_000)
        ],
        "the daemon is told why it keeps its own lifetimes"
    );
    // Its timers run to the end: rekeyed before, and expired at, our lifetime.
    p.run_for(Duration::from_secs(3 * 3600));
    assert!(p.children(Side::A).len() > 1, "rekeyed on our own schedule");
    for c in p.children(Side::A) {
        assert_eq!(c.lifetime, ours.0);
    }
}

#[test]
fn an_initiator_keeps_its_own_ike_lifetime_when_mm2_answers_2_pow_64_minus_1_seconds() {
    let a = conn_a();
    let ours = a.ike_lifetime;
    let mut p = Pair::with_settings(a, conn_b(), hostile(&["MM2"]));
    p.connect();
    assert_eq!(ike_lifetimes(&p, Side::A), vec![ours]);
    assert_eq!(p.children(Side::A).len(), 1);
    p.run_for(Duration::from_secs(3 * 3600));
}

#[test]
fn an_aggressive_mode_initiator_keeps_its_own_ike_lifetime_when_am2_answers_2_pow_64_minus_1() {
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.mode = ferrovpn_ike::Phase1Mode::Aggressive;
        c.allow_aggressive_psk = true;
    }
    let ours = a.ike_lifetime;
    let mut p = Pair::with_settings(a, b, hostile(&["AM2"]));
    p.connect();
    assert_eq!(ike_lifetimes(&p, Side::A), vec![ours]);
    p.run_for(Duration::from_secs(3 * 3600));
}

#[test]
fn a_responder_keeps_its_own_lifetimes_when_mm1_and_qm1_offer_2_pow_64_minus_1_seconds() {
    let b = conn_b();
    let ours = (b.ike_lifetime, b.esp_lifetime);
    // The initiator's own offers are rewritten: it is the hostile side here.
    let mut p = Pair::with_settings(conn_a(), b, hostile(&["MM1", "QM1"]));
    p.connect();
    assert_eq!(ike_lifetimes(&p, Side::B), vec![ours.0]);
    let children = p.children(Side::B);
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].lifetime, ours.1);
    p.run_for(Duration::from_secs(3 * 3600));
}

#[test]
fn configured_durations_of_u64_max_seconds_do_not_overflow_any_timer() {
    let huge = Duration::from_secs(u64::MAX);
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.ike_lifetime = huge;
        c.esp_lifetime = huge;
        c.esp_lifetime_kb = Some(u64::MAX);
        c.dpd = Some(DpdConfig {
            interval: huge,
            timeout: huge,
        });
    }
    let settings = Settings {
        half_open_timeout: huge,
        rekey_margin: huge,
        rekeyed_drain: huge,
        ..Settings::default()
    };
    let mut p = Pair::with_settings(a, b, settings);
    p.connect();
    assert_eq!(p.children(Side::A).len(), 1);
    assert_eq!(p.children(Side::A)[0].lifetime, huge);
    p.run_for(Duration::from_secs(24 * 3600));
    assert!(p.a.poll_timeout().is_some_and(|t| t > p.now));
}

#[test]
fn a_retransmit_timeout_of_u64_max_seconds_does_not_overflow() {
    let settings = Settings {
        retransmit_timeout: Duration::from_secs(u64::MAX),
        ..Settings::default()
    };
    let mut p = Pair::with_settings(conn_a(), conn_b(), settings);
    p.filter = Box::new(|w| {
        if w.from == Side::B {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    assert_eq!(p.established(Side::A), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Twin of the `ike_plaintext` fuzz target: protected messages with mutated plaintext that
    /// still authenticate never panic either peer nor raise a lifetime above its own.
    #[test]
    fn mutated_plaintext_behind_valid_hashes_never_panics(
        data in proptest::collection::vec(any::<u8>(), 1..200)
    ) {
        plaintext_conversation(&data);
    }

    /// The same, every program aimed at QM2 with lifetimes first (the case that crashed).
    #[test]
    fn mutated_qm2_lifetimes_never_panic(
        flags in any::<u8>(),
        secs in any::<u64>(),
        kb in any::<u64>(),
    ) {
        // Program for QM2 (name 6), 19 bytes: set lifetimes (op 0x16), seconds and KB as
        // 8-byte values (selector 7).
        let mut data = vec![flags, 6, 19, 0x16, 7];
        data.extend_from_slice(&secs.to_be_bytes());
        data.extend_from_slice(&[7]);
        data.extend_from_slice(&kb.to_be_bytes());
        plaintext_conversation(&data);
    }
}
