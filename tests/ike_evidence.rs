//! What the endpoint reports must match the wire (issue 13): silence after MM5 is told apart
//! by a UDP 4500 probe, messages it cannot process are answered and named, half-open SAs that
//! never heard back are not failures, and a peer that talks is not probed by DPD.

use std::time::Duration;

use ferrovpn_ike::wire::{ExchangeType, Header, NotifyType};
use ferrovpn_ike::{DpdConfig, Event, Failure, NatTraversal, Phase1Mode, Settings, Udp4500Probe};
use ferrovpn_tests::*;

/// A strongSwan-like responder with another PSK: it cannot decrypt MM5 and stays silent (its
/// plain AUTHENTICATION-FAILED, which strongSwan does not send, is dropped here).
fn wrong_psk_silent_peer(force_nat: bool, block_4500: bool) -> Pair {
    let mut a = conn_a();
    let mut b = ferrovpn_ike::ConnectionConfig::new("to-a", ADDR_B, ADDR_A, b"another-psk");
    if force_nat {
        a.nat_traversal = NatTraversal::Force;
        b.nat_traversal = NatTraversal::Force;
    }
    let mut p = Pair::new(a, b);
    p.filter = Box::new(move |w| {
        let to_4500 = w.from == Side::A && w.datagram.remote.port() == 4500;
        if (w.from == Side::B && w.exchange() == Some(ExchangeType::INFORMATIONAL))
            || (block_4500 && to_4500)
        {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    p.run_for(Duration::from_secs(120));
    p
}

#[test]
fn silence_after_mm5_on_4500_with_the_probe_answered_is_a_psk_mismatch() {
    let p = wrong_psk_silent_peer(true, false);
    let f = p.ike_failures(Side::A);
    assert!(
        matches!(
            f.as_slice(),
            [Failure::SilentAfterMm5 {
                probe: Udp4500Probe::Answered,
                ..
            }]
        ),
        "{f:?}"
    );
    let text = f[0].to_string();
    assert!(
        text.contains("pre-shared keys (or identities) differ"),
        "{text}"
    );
    assert!(!text.contains("blocked"), "{text}");
    // The probe went to the peer's UDP 4500 with a cookie of its own.
    let probes: Vec<&Wire> = p
        .wire
        .iter()
        .filter(|w| {
            w.from == Side::A
                && w.exchange() == Some(ExchangeType::IDENTITY_PROTECTION)
                && w.datagram.remote.port() == 4500
                && Header::parse(&w.datagram.data).is_ok_and(|h| h.responder_spi == [0; 8])
        })
        .collect();
    assert!(!probes.is_empty(), "no MM1 probe to UDP 4500");
}

#[test]
fn silence_after_mm5_with_udp_4500_dropped_is_udp_4500_blocked() {
    let p = wrong_psk_silent_peer(true, true);
    let f = p.ike_failures(Side::A);
    assert!(
        matches!(
            f.as_slice(),
            [Failure::SilentAfterMm5 {
                probe: Udp4500Probe::Unanswered,
                ..
            }]
        ),
        "{f:?}"
    );
    assert!(f[0].to_string().contains("UDP 4500 is blocked"));
}

#[test]
fn silence_after_mm5_on_udp_500_needs_no_probe_and_names_the_keys() {
    let p = wrong_psk_silent_peer(false, false);
    let f = p.ike_failures(Side::A);
    assert!(
        matches!(
            f.as_slice(),
            [Failure::SilentAfterMm5 {
                probe: Udp4500Probe::NotNeeded,
                ..
            }]
        ),
        "{f:?}"
    );
    assert!(p.wire.iter().all(|w| w.datagram.remote.port() == 500));
}

#[test]
fn a_half_open_responder_that_never_hears_back_is_abandoned_not_failed() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.filter = Box::new(|w| {
        if w.from == Side::B {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    p.run_for(Duration::from_secs(120));
    let f = p.ike_failures(Side::B);
    assert!(
        !f.is_empty()
            && f.iter()
                .all(|f| matches!(f, Failure::Abandoned { after: "MM2" })),
        "{f:?}"
    );
}

#[test]
fn a_quick_mode_offer_without_transforms_is_answered_with_bad_proposal_syntax_and_named() {
    let (mut a, b) = (conn_a(), conn_b());
    // An SA payload whose one proposal has no transform, as strongSwan sends for an ESP
    // cipher IKEv1 has no number for.
    a.esp_proposals.clear();
    let mut p = Pair::new(a, b);
    p.connect();
    let named = p.events(Side::B).iter().any(|e| {
        matches!(e, Event::Unprocessable { message: "QM1", notify: Some(n), reason, .. }
            if *n == NotifyType::BAD_PROPOSAL_SYNTAX && reason.contains("QM1 cannot be processed"))
    });
    assert!(named, "{:?}", p.events(Side::B));
    assert_eq!(
        p.child_failures(Side::A),
        [&Failure::PeerNotify(NotifyType::BAD_PROPOSAL_SYNTAX)],
        "the protected notify ends A's Quick Mode at once"
    );
    let qm1 = p
        .sent_names(Side::A)
        .iter()
        .filter(|n| **n == "QM1")
        .count();
    assert_eq!(qm1, 1, "no retransmission after the notify");
}

#[test]
fn a_repeated_am3_names_a_peer_waiting_for_something_we_never_send() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.mode = Phase1Mode::Aggressive;
    b.mode = Phase1Mode::Aggressive;
    b.allow_aggressive_psk = true;
    let mut p = Pair::new(a, b);
    p.filter = Box::new(|w| {
        let am3 = w.from == Side::A
            && w.exchange() == Some(ExchangeType::AGGRESSIVE)
            && Header::parse(&w.datagram.data).is_ok_and(|h| h.flags.contains(1));
        if am3 {
            Fate::Duplicate
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    assert!(
        p.events(Side::B).iter().any(|e| matches!(
            e,
            Event::Unprocessable { message: "AM3", reason, .. } if reason.contains("waits for something ferrovpn never sends")
        )),
        "{:?}",
        p.events(Side::B)
    );
}

#[test]
fn dpd_does_not_probe_a_peer_that_keeps_repeating_an_answered_message() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.dpd = None;
    b.dpd = Some(DpdConfig {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(30),
    });
    let settings = Settings {
        retransmit_timeout: Duration::from_secs(2),
        retransmit_base: 1.0,
        retransmit_tries: 10,
        ..Settings::default()
    };
    let mut p = Pair::with_settings(a, b, settings);
    // B's QM2 never reaches A: A repeats QM1 every 2 s and B answers from its reply cache.
    p.filter = Box::new(|w| {
        if w.from == Side::B && w.exchange() == Some(ExchangeType::QUICK_MODE) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(18));
    let qm1 = p
        .events(Side::A)
        .iter()
        .filter(|e| matches!(e, Event::Message(m) if m.name == "QM1" && m.direction == ferrovpn_ike::Direction::Sent))
        .count();
    assert!(qm1 >= 8, "A kept repeating QM1: {qm1}");
    let info = p
        .sent_names(Side::B)
        .iter()
        .filter(|n| **n == "INFO")
        .count();
    assert_eq!(info, 0, "B sent R-U-THERE to a peer that was talking");
}

#[test]
fn a_transaction_exchange_is_authenticated_named_as_remote_access_and_refused() {
    let (mut a, mut b) = (conn_a(), conn_b());
    let dpd = Some(DpdConfig {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
    });
    a.dpd = dpd;
    b.dpd = None;
    let mut p = Pair::new(a, b);
    p.connect();
    // A's R-U-THERE relabelled as a Transaction (XAuth / Mode Config): its HASH(1) and IV are
    // built exactly as a Transaction's, so B sees an authenticated exchange of type 6.
    p.rewrite = Box::new(|d, from| {
        if from == Side::A && d.data.get(18) == Some(&5) {
            d.data[18] = 6;
        }
    });
    p.run_for(Duration::from_secs(10));
    assert!(
        p.events(Side::B).iter().any(|e| matches!(
            e,
            Event::Unprocessable { message: "TRANSACTION", remote_access: true, notify: Some(n), reason, .. }
                if *n == NotifyType::UNSUPPORTED_EXCHANGE_TYPE && reason.contains("XAuth/Mode Config")
        )),
        "{:?}",
        p.events(Side::B)
    );
    assert!(p.b.is_up(0), "refusing it leaves the ISAKMP SA up");
}
