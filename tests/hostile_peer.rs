//! A peer built from the ike crate that knows the PSK and offers or answers absurd lifetimes
//! (2^64-1 s): we never adopt a lifetime above our own (RFC 2409 §4.5) and no timer overflows.
//! Plus the proptest twin of the `ike_plaintext` fuzz target.

use std::time::Duration;

use ferrovpn_ike::tamper::{Sealing, Tamper};
use ferrovpn_ike::wire::{NotifyType, Payload, ProtocolId};
use ferrovpn_ike::{DpdConfig, Event, Settings};
use ferrovpn_tests::hostile::{lifetime_tamper, plaintext_conversation, set_esp_spi};
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

/// A hook that gives every ESP proposal of the messages named in `names` the SPI `spi`.
fn esp_spi_tamper(names: &'static [&'static str], spi: u32) -> Settings {
    let tamper = Tamper::new(move |s: &Sealing, payloads: &mut Vec<Payload>| {
        if names.contains(&s.name) {
            set_esp_spi(payloads, spi);
        }
    });
    Settings {
        tamper: Some(tamper),
        ..Settings::default()
    }
}

fn malformed(failures: Vec<&ferrovpn_ike::Failure>) -> Vec<String> {
    failures
        .into_iter()
        .filter_map(|f| match f {
            ferrovpn_ike::Failure::Malformed(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_responder_refuses_a_quick_mode_that_names_a_reserved_spi_instead_of_a_dead_pair() {
    // SPIs 0-255 are reserved (RFC 4303 §2.1): the data plane would refuse the pair, and the
    // tunnel would count as up while carrying nothing.
    for spi in [0u32, 1, 255] {
        let mut p = Pair::with_settings(conn_a(), conn_b(), esp_spi_tamper(&["QM1"], spi));
        p.connect();
        assert!(p.children(Side::B).is_empty(), "SPI {spi}: no pair on B");
        assert!(p.children(Side::A).is_empty(), "SPI {spi}: no pair on A");
        let why = malformed(p.child_failures(Side::B));
        assert!(
            why.iter()
                .any(|m| m.contains(&format!("reserved ESP SPI {spi:#010x}"))),
            "SPI {spi}: B says why: {why:?}"
        );
        let told = p.events(Side::A).iter().any(|e| {
            matches!(e, Event::NotifyReceived { notify, authenticated: true, .. }
                if *notify == NotifyType::INVALID_SPI)
        });
        assert!(told, "SPI {spi}: A is told INVALID-SPI, protected");
    }
}

#[test]
fn an_invalid_spi_that_names_our_quick_mode_in_flight_ends_it_at_once() {
    // What a peer sends when our own offer carried a reserved SPI: INVALID-SPI naming it.
    // Here QM1 keeps its SPI and the peer is made to name it: the Quick Mode fails with the
    // peer's reason instead of retransmitting QM1 until its tries run out.
    let offered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = offered.clone();
    let tamper = Tamper::new(
        move |s: &Sealing, payloads: &mut Vec<Payload>| match s.name {
            "QM1" => {
                if let Some(Payload::Sa(sa)) = payloads.iter().find(|p| matches!(p, Payload::Sa(_)))
                {
                    *seen.lock().unwrap() = sa.proposals[0].spi.clone();
                }
                // B refuses it as if the SPI were reserved: the selectors no longer match.
                for p in payloads.iter_mut() {
                    if let Payload::Identification(id) = p {
                        id.data = vec![192, 0, 2, 99];
                    }
                }
            }
            "INFO" => {
                for p in payloads.iter_mut() {
                    if let Payload::Notification(n) = p {
                        if n.protocol == ProtocolId::ESP {
                            n.notify_type = NotifyType::INVALID_SPI;
                            n.spi = seen.lock().unwrap().clone();
                        }
                    }
                }
            }
            _ => {}
        },
    );
    let settings = Settings {
        tamper: Some(tamper),
        ..Settings::default()
    };
    let mut p = Pair::with_settings(conn_a(), conn_b(), settings);
    p.connect();
    assert!(!offered.lock().unwrap().is_empty());
    assert!(p.children(Side::A).is_empty());
    let failures = p.child_failures(Side::A);
    assert!(
        failures.iter().any(|f| matches!(f,
            ferrovpn_ike::Failure::PeerNotify(t) if *t == NotifyType::INVALID_SPI)),
        "{failures:?}"
    );
    assert_eq!(
        p.times_sent(Side::A, "QM1"),
        1,
        "QM1 is not retransmitted after the refusal"
    );
}

#[test]
fn an_initiator_refuses_a_quick_mode_answer_that_names_a_reserved_spi() {
    let mut p = Pair::with_settings(conn_a(), conn_b(), esp_spi_tamper(&["QM2"], 7));
    p.connect();
    assert!(p.children(Side::A).is_empty(), "no pair on A");
    let why = malformed(p.child_failures(Side::A));
    assert!(
        why.iter()
            .any(|m| m.contains("reserved ESP SPI 0x00000007")),
        "A says why: {why:?}"
    );
    // An SPI of 256 is a valid one: the same hook with it brings the pair up.
    let mut p = Pair::with_settings(conn_a(), conn_b(), esp_spi_tamper(&["QM2"], 256));
    p.connect();
    assert_eq!(p.children(Side::A).len(), 1);
    assert_eq!(p.children(Side::A)[0].outbound.spi, 256);
}

#[test]
fn a_transport_mode_offer_is_refused_as_such_not_for_its_selectors() {
    // A peer that asks for transport mode (strongSwan `mode = transport`) sends host
    // selectors too; the refusal names the mode, which is what the user has to change.
    use ferrovpn_ike::wire::attr::{encap_mode, ipsec};
    use ferrovpn_ike::wire::Attribute;
    let transport = Tamper::new(|s: &Sealing, payloads: &mut Vec<Payload>| {
        if s.name != "QM1" {
            return;
        }
        for p in payloads {
            let Payload::Sa(sa) = p else { continue };
            for t in sa.proposals.iter_mut().flat_map(|p| &mut p.transforms) {
                t.attributes
                    .retain(|a| a.attr_type != ipsec::ENCAPSULATION_MODE);
                t.attributes.push(Attribute::basic(
                    ipsec::ENCAPSULATION_MODE,
                    encap_mode::TRANSPORT,
                ));
            }
        }
    });
    let settings = Settings {
        tamper: Some(transport),
        ..Settings::default()
    };
    let mut p = Pair::with_settings(conn_a(), conn_b(), settings);
    p.connect();
    assert!(p.children(Side::B).is_empty());
    let refused = p.events(Side::B).iter().find_map(|e| match e {
        Event::ChildSaFailed { reason, .. } => Some(reason.to_string()),
        _ => None,
    });
    let refused = refused.expect("B refused the Quick Mode");
    assert!(
        refused.contains("the peer asks for transport mode, ferrovpn negotiates tunnel mode only"),
        "{refused}"
    );
}
