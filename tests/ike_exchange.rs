//! Two in-memory IKEv1 peers with a fake clock: every exchange completes, both sides derive the
//! same keys, and each failure ends with the right notify and reason.

use std::net::SocketAddr;
use std::time::Duration;

use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use ferrovpn_ike::wire::{ExchangeType, Header, NotifyType};
use ferrovpn_ike::{
    ChildConfig, ConnectionConfig, EspEncapsulation, Event, Failure, IdValue, NatTraversal,
    Phase1Mode, Settings, TrafficSelector,
};
use ferrovpn_tests::*;

fn with_proposals(
    ike: &str,
    esp: &str,
) -> (
    ferrovpn_ike::ConnectionConfig,
    ferrovpn_ike::ConnectionConfig,
) {
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.ike_proposals = parse_ike_proposals(ike).unwrap();
        c.esp_proposals = parse_esp_proposals(esp).unwrap();
        c.allow_weak_dh = true;
        c.allow_aggressive_psk = true;
    }
    (a, b)
}

fn assert_up(p: &Pair) {
    assert!(
        p.ike_failures(Side::A).is_empty(),
        "A failed: {:?}",
        p.ike_failures(Side::A)
    );
    assert!(
        p.ike_failures(Side::B).is_empty(),
        "B failed: {:?}",
        p.ike_failures(Side::B)
    );
    assert_eq!(p.established(Side::A), 1);
    assert_eq!(p.established(Side::B), 1);
    let (ca, cb) = (p.children(Side::A), p.children(Side::B));
    assert_eq!(ca.len(), 1, "A child SAs: {:?}", p.child_failures(Side::A));
    assert_eq!(cb.len(), 1, "B child SAs: {:?}", p.child_failures(Side::B));
    assert_mirrored(ca[0], cb[0]);
}

#[test]
fn main_mode_and_quick_mode_complete_for_a_matrix_of_groups_ciphers_and_esp_proposals() {
    let ike = [
        "aes256-sha256-modp2048",
        "aes128-sha1-modp1024",
        "aes192-sha384-ecp256",
        "3des-md5-ecp384",
        "aes256-sha512-curve25519",
        "aes128-sha256-ecp521",
    ];
    let esp = [
        "aes128gcm16",
        "aes256gcm16-modp2048",
        "aes128gcm8",
        "aes256gcm12-ecp256",
        "chacha20poly1305-curve25519",
        "aes128-sha1",
        "aes256-sha256-modp2048",
        "aes128-sha384",
        "aes256-sha512-esn",
    ];
    for (i, ike) in ike.iter().enumerate() {
        for (j, esp) in esp.iter().enumerate() {
            // Every ESP proposal against every group is slow with MODP in debug builds: take a
            // diagonal band that still pairs each IKE proposal with several ESP proposals.
            if (i + j) % 3 != 0 {
                continue;
            }
            let (a, b) = with_proposals(ike, esp);
            let mut p = Pair::new(a, b);
            p.connect();
            assert_up(&p);
            assert_eq!(
                p.sent_names(Side::A)[..3],
                ["MM1", "MM3", "MM5"],
                "{ike} {esp}"
            );
            assert_eq!(
                p.sent_names(Side::B)[..3],
                ["MM2", "MM4", "MM6"],
                "{ike} {esp}"
            );
            let c = p.children(Side::A)[0];
            assert_eq!(
                c.pfs.is_some(),
                esp.contains("modp") || esp.contains("ecp") || esp.contains("curve"),
                "{esp}"
            );
        }
    }
}

#[test]
fn the_required_groups_each_complete_main_mode() {
    for g in ["modp1024", "modp2048", "ecp256", "ecp384", "curve25519"] {
        let (a, b) = with_proposals(&format!("aes128-sha256-{g}"), &format!("aes128gcm16-{g}"));
        let mut p = Pair::new(a, b);
        p.connect();
        assert_up(&p);
    }
}

#[test]
fn aggressive_mode_and_quick_mode_complete_when_the_responder_opts_in() {
    for (ike, esp) in [
        ("aes256-sha256-modp2048", "aes128gcm16"),
        ("aes128-sha1-ecp256", "aes256-sha256-ecp256"),
        ("aes256-sha384-curve25519", "chacha20poly1305"),
    ] {
        let (mut a, mut b) = with_proposals(ike, esp);
        a.mode = Phase1Mode::Aggressive;
        b.mode = Phase1Mode::Aggressive;
        let mut p = Pair::new(a, b);
        p.connect();
        assert_up(&p);
        assert_eq!(p.sent_names(Side::A)[..3], ["AM1", "AM3", "QM1"]);
        assert_eq!(p.sent_names(Side::B)[..2], ["AM2", "QM2"]);
    }
}

#[test]
fn aggressive_mode_psk_is_refused_by_default_as_responder() {
    let (mut a, mut b) = with_proposals("aes256-sha256-modp2048", "aes128gcm16");
    a.mode = Phase1Mode::Aggressive;
    b.allow_aggressive_psk = false;
    let mut p = Pair::new(a, b);
    p.connect();
    p.run_for(Duration::from_secs(150));
    let b = p.ike_failures(Side::B);
    assert!(!b.is_empty() && b.iter().all(|f| **f == Failure::AggressiveModeRefused));
    // The refusal is a plain notify: recorded, the negotiation ends by its own timeout.
    assert_eq!(
        unauthenticated_notifies(&p, Side::A),
        [NotifyType::AUTHENTICATION_FAILED]
    );
    assert!(matches!(
        p.ike_failures(Side::A).as_slice(),
        [Failure::NoResponseButPlainNotify { message: "AM1", .. }]
    ));
    assert!(p.children(Side::A).is_empty());
}

/// A and B with two policy-based pairs, 198.51.100.0/25 ⇄ 203.0.113.0/25 and the upper halves.
fn two_policy_pairs() -> (ConnectionConfig, ConnectionConfig) {
    let (mut a, mut b) = (conn_a(), conn_b());
    let net = |s: &str, len| TrafficSelector::subnet(s.parse().unwrap(), len);
    a.children = vec![
        ChildConfig {
            local_ts: net("198.51.100.0", 25),
            remote_ts: net("203.0.113.0", 25),
        },
        ChildConfig {
            local_ts: net("198.51.100.128", 25),
            remote_ts: net("203.0.113.128", 25),
        },
    ];
    b.children = a
        .children
        .iter()
        .map(|c| ChildConfig {
            local_ts: c.remote_ts,
            remote_ts: c.local_ts,
        })
        .collect();
    (a, b)
}

#[test]
fn several_quick_modes_share_one_phase_1_for_policy_based_subnet_pairs() {
    let (a, b) = two_policy_pairs();
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(p.established(Side::A), 1);
    let (ca, cb) = (p.children(Side::A), p.children(Side::B));
    assert_eq!(ca.len(), 2);
    assert_eq!(cb.len(), 2);
    for c in &ca {
        let peer = cb
            .iter()
            .find(|x| x.inbound.spi == c.outbound.spi)
            .expect("matching pair");
        assert_mirrored(c, peer);
    }
    assert_ne!(ca[0].local_ts, ca[1].local_ts);
}

#[test]
fn our_quick_modes_go_one_at_a_time_so_a_retransmitted_qm1_is_the_last_request() {
    // strongSwan recognises a retransmitted request only if it is the last one it saw: with
    // two QM1s out at once, a lost QM2 makes the first QM1's copy look new to it (decrypted
    // with the wrong IV). Two pairs, B's first two Quick Mode datagrams lost.
    let (a, b) = two_policy_pairs();
    let mut p = Pair::new(a, b);
    p.filter = lose_first(Side::B, 2, is_quick_mode);
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.children(Side::A).len(), 2);
    assert_eq!(p.children(Side::B).len(), 2);
    // A's Quick Mode messages in order: a QM1 (first or resent) only for the one in flight.
    let mut in_flight: Option<u32> = None;
    for e in p.events(Side::A) {
        let Event::Message(m) = e else { continue };
        match (m.direction, m.name) {
            (ferrovpn_ike::Direction::Sent, "QM1") => {
                assert!(
                    in_flight.is_none_or(|id| id == m.message_id),
                    "QM1 {:08x} while {:08x} awaits its QM2",
                    m.message_id,
                    in_flight.unwrap_or_default()
                );
                in_flight = Some(m.message_id);
            }
            (ferrovpn_ike::Direction::Received, "QM2") => in_flight = None,
            _ => {}
        }
    }
    assert!(p.times_sent(Side::A, "QM1") >= 3, "a QM1 was resent");
}

#[test]
fn a_delete_waits_while_a_quick_mode_of_ours_awaits_its_answer() {
    // strongSwan takes every request, a DELETE too, as its new "last request": a DELETE sent
    // between QM1 and its retransmission makes the resent QM1 look new to it. Pair 0 comes up,
    // B's QM2 for pair 1 is lost, and pair 0 is deleted while A waits for that QM2.
    let (a, b) = two_policy_pairs();
    let mut p = Pair::new(a, b);
    let mut qms = 0;
    p.filter = Box::new(move |w| {
        if w.from == Side::B && is_quick_mode(w) {
            qms += 1;
            if qms == 2 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    p.a.initiate(p.now, 0);
    // Pair 0 up; pair 1's QM1 right after (pair 0's QM3 repeats give way), its QM2 lost.
    p.pump();
    assert_eq!(p.children(Side::A).len(), 1, "pair 0 up, pair 1 waiting");
    assert_eq!(p.times_sent(Side::A, "QM1"), 2);
    let pair0 = p.children(Side::A)[0].inbound.spi;
    let sent_before = p.events(Side::A).len();
    assert!(p.a.delete_child_sa(p.now, 0, pair0, "test"));
    p.pump();
    assert!(
        !p.events(Side::A)[sent_before..].iter().any(
            |e| matches!(e, Event::Message(m) if m.direction == ferrovpn_ike::Direction::Sent)
        ),
        "nothing sent while QM1 awaits its QM2"
    );
    p.run_for(Duration::from_secs(30));
    // The resent QM1 got its QM2, then the DELETE went, and B removed pair 0.
    let order: Vec<&str> = p.events(Side::A)[sent_before..]
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.name),
            _ => None,
        })
        .collect();
    // QM3 goes twice, and once more a second later; the DELETE waits for that one too.
    assert_eq!(
        order,
        ["QM1", "QM2", "QM3", "QM3", "QM3", "INFO"],
        "{order:?}"
    );
    assert_eq!(p.children(Side::A).len(), 2);
    assert!(p.events(Side::B).iter().any(|e| matches!(
        e,
        Event::ChildSaDeleted { outbound_spi, .. } if *outbound_spi == pair0
    )));
}

#[test]
fn a_responder_that_never_gets_qm3_deletes_the_pair_the_initiator_installed() {
    // strongSwan installs a pair as it sends QM3. If every QM3 is lost, the responder gives up
    // with nothing installed, and the initiator would send into an SPI nobody reads.
    let mut p = Pair::new(conn_a(), conn_b());
    let mut qms = 0;
    p.filter = Box::new(move |w| {
        if w.from == Side::A && is_quick_mode(w) {
            qms += 1;
            if qms > 1 {
                return Fate::Drop; // QM3 and every copy of it
            }
        }
        Fate::Deliver
    });
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(300));
    assert_eq!(
        p.children(Side::A).len(),
        1,
        "A installed the pair with QM3"
    );
    assert!(p.children(Side::B).is_empty());
    assert!(
        matches!(
            p.child_failures(Side::B).as_slice(),
            [Failure::NoResponse { message: "QM2", .. }]
        ),
        "{:?}",
        p.child_failures(Side::B)
    );
    let a_out = p.children(Side::A)[0].outbound.spi;
    assert!(
        p.events(Side::A).iter().any(|e| matches!(
            e,
            Event::ChildSaDeleted { outbound_spi, .. } if *outbound_spi == a_out
        )),
        "A removed the pair B told it to delete"
    );
    assert!(p.a.ike_sas(p.now).iter().all(|s| s.children.is_empty()));
    assert!(p.a.is_up(0), "phase 1 stays up");
}

#[test]
fn qm3_goes_again_unasked_so_a_lost_one_does_not_leave_the_responder_without_the_pair() {
    // QM3 is the last message: a responder that lost it never installs the pair, and
    // strongSwan's responder does not repeat QM2 to ask for it. QM3 goes twice at once and
    // once more a second later; both first copies are lost here.
    let mut p = Pair::new(conn_a(), conn_b());
    let mut qms = 0;
    p.filter = Box::new(move |w| {
        if w.from == Side::A && is_quick_mode(w) {
            qms += 1;
            if qms == 2 || qms == 3 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    p.a.initiate(p.now, 0);
    p.pump();
    assert_eq!(p.children(Side::A).len(), 1);
    assert!(p.children(Side::B).is_empty(), "B lost QM3");
    p.run_for(Duration::from_millis(1_500));
    assert_eq!(p.children(Side::B).len(), 1, "the copy 1 s later");
    assert_mirrored(p.children(Side::A)[0], p.children(Side::B)[0]);
    p.run_for(Duration::from_secs(10));
    assert_eq!(p.times_sent(Side::A, "QM3"), 3);
    // The copy B did not need is dropped quietly: no answer, no error, one pair.
    assert!(!p.sent_names(Side::B).contains(&"INFO"));
    assert!(
        !p.events(Side::B)
            .iter()
            .any(|e| matches!(e, Event::Unprocessable { .. })),
        "{:?}",
        p.events(Side::B)
    );
    assert_eq!(p.children(Side::B).len(), 1);
    assert_eq!(p.child_failures(Side::B), Vec::<&Failure>::new());
}

#[test]
fn qm3_repeats_do_not_hold_up_the_next_pair() {
    // The next queued Quick Mode starts at once; only the immediate QM3 copy goes per pair.
    let (a, b) = two_policy_pairs();
    let mut p = Pair::new(a, b);
    p.a.initiate(p.now, 0);
    p.pump();
    assert_eq!(p.children(Side::A).len(), 2);
    assert_eq!(p.children(Side::B).len(), 2);
    p.run_for(Duration::from_secs(5));
    // Pair 0's QM3 twice (its later copy gave way), pair 1's three times.
    assert_eq!(p.times_sent(Side::A, "QM3"), 5);
}

#[test]
fn wrong_psk_fails_with_authentication_failed_on_both_sides() {
    let (a, mut b) = (conn_a(), conn_b());
    b.psk = ferrovpn_ike::crypto::Secret::new(b"another-psk".to_vec());
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(
        matches!(
            p.ike_failures(Side::B).as_slice(),
            [Failure::AuthenticationFailed { .. }]
        ),
        "{:?}",
        p.ike_failures(Side::B)
    );
    p.run_for(Duration::from_secs(150));
    assert_eq!(
        unauthenticated_notifies(&p, Side::A),
        [NotifyType::AUTHENTICATION_FAILED]
    );
    assert!(
        matches!(
            p.ike_failures(Side::A).as_slice(),
            [Failure::SilentAfterMm5 { .. }]
        ),
        "{:?}",
        p.ike_failures(Side::A)
    );
    assert_eq!(p.established(Side::A), 0);
    assert_eq!(p.established(Side::B), 0);
}

#[test]
fn identity_mismatch_fails_with_invalid_id_information() {
    let (a, mut b) = (conn_a(), conn_b());
    b.remote_id = IdValue::Fqdn("gw.example.net".into());
    let mut p = Pair::new(a, b);
    p.connect();
    assert!(
        matches!(
            p.ike_failures(Side::B).as_slice(),
            [Failure::IdentityMismatch { .. }]
        ),
        "{:?}",
        p.ike_failures(Side::B)
    );
    p.run_for(Duration::from_secs(150));
    assert_eq!(
        unauthenticated_notifies(&p, Side::A),
        [NotifyType::INVALID_ID_INFORMATION]
    );
    assert!(
        matches!(
            p.ike_failures(Side::A).as_slice(),
            [Failure::SilentAfterMm5 { .. }]
        ),
        "{:?}",
        p.ike_failures(Side::A)
    );
}

#[test]
fn an_initiator_refusing_the_identity_in_mm6_tells_the_peer_protected() {
    // A (initiator) expects another identity than B's. B's phase 1 is complete once it sent
    // MM6, so A's refusal goes protected, a notify and a DELETE, and B deletes its ISAKMP SA
    // instead of keeping one A has dropped.
    let (mut a, b) = (conn_a(), conn_b());
    a.remote_id = IdValue::Fqdn("gw.example.net".into());
    let mut p = Pair::new(a, b);
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(3));
    assert!(
        matches!(
            p.ike_failures(Side::A).as_slice(),
            [Failure::IdentityMismatch { .. }]
        ),
        "{:?}",
        p.ike_failures(Side::A)
    );
    assert!(p
        .events(Side::B)
        .iter()
        .any(|e| matches!(e, Event::IkeSaDeleted { .. })));
    assert!(p.b.ike_sas(p.now).is_empty(), "{:?}", p.b.ike_sas(p.now));
    // B, deleted right after its phase 1 with nothing else under way, reports a refusal
    // rather than a connection that is merely idle.
    assert!(
        matches!(
            p.ike_failures(Side::B).as_slice(),
            [Failure::DeletedByPeerAtOnce { .. }]
        ),
        "{:?}",
        p.ike_failures(Side::B)
    );
}

/// Plain (unauthenticated) error notifies a side recorded without acting on them.
fn unauthenticated_notifies(p: &Pair, side: Side) -> Vec<NotifyType> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::NotifyReceived {
                notify,
                authenticated: false,
                ..
            } => Some(*notify),
            _ => None,
        })
        .fold(Vec::new(), |mut v, n| {
            // One per retransmission the peer answered: the same notify each time.
            if v.last() != Some(&n) {
                v.push(n);
            }
            v
        })
}

#[test]
fn no_common_ike_proposal_fails_with_no_proposal_chosen_and_shows_both_offers() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_proposals = parse_ike_proposals("aes128-sha1-modp2048").unwrap();
    b.ike_proposals = parse_ike_proposals("aes256-sha512-ecp384").unwrap();
    let mut p = Pair::new(a, b);
    p.connect();
    // One per MM1 A sends (each a new responder SA): A's plain notify does not stop A.
    for f in p.ike_failures(Side::B) {
        match f {
            Failure::NoProposalChosen { ours, theirs } => {
                assert_eq!(ours, "aes256-sha512-ecp384");
                assert_eq!(theirs, "aes128-sha1-modp2048");
            }
            other => panic!("{other:?}"),
        }
    }
    p.run_for(Duration::from_secs(150));
    assert_eq!(
        unauthenticated_notifies(&p, Side::A),
        [NotifyType::NO_PROPOSAL_CHOSEN]
    );
    assert!(matches!(
        p.ike_failures(Side::A).as_slice(),
        [Failure::NoResponseButPlainNotify {
            message: "MM1",
            notify: NotifyType::NO_PROPOSAL_CHOSEN,
            ..
        }]
    ));
}

#[test]
fn no_common_esp_proposal_fails_the_quick_mode_only() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_proposals = parse_esp_proposals("aes128-sha256").unwrap();
    b.esp_proposals = parse_esp_proposals("aes256gcm16").unwrap();
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(p.established(Side::A), 1);
    assert!(matches!(
        p.child_failures(Side::B).as_slice(),
        [Failure::NoProposalChosen { .. }]
    ));
    // The protected NO-PROPOSAL-CHOSEN ends A's Quick Mode at once, naming our offer.
    match p.child_failures(Side::A).as_slice() {
        [Failure::NoProposalChosen { ours, .. }] => assert_eq!(ours, "aes128-sha256"),
        other => panic!("{other:?}"),
    }
    assert!(p.children(Side::A).is_empty() && p.children(Side::B).is_empty());
}

#[test]
fn mismatched_traffic_selectors_are_refused_with_invalid_id_information() {
    let (mut a, b) = (conn_a(), conn_b());
    a.children = vec![ChildConfig {
        local_ts: TrafficSelector::subnet("198.51.100.0".parse().unwrap(), 24),
        remote_ts: TrafficSelector::subnet("203.0.113.0".parse().unwrap(), 24),
    }];
    let mut p = Pair::new(a, b);
    p.connect();
    match p.child_failures(Side::B).as_slice() {
        [Failure::InvalidSelectors { ours, theirs }] => {
            assert_eq!(ours, "0.0.0.0/0 === 0.0.0.0/0");
            assert_eq!(theirs, "203.0.113.0/24 === 198.51.100.0/24");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.child_failures(Side::A),
        [&Failure::PeerNotify(NotifyType::INVALID_ID_INFORMATION)]
    );
}

#[test]
fn lost_and_duplicated_packets_recover_through_retransmission() {
    for victim in 0..9 {
        let (a, b) = (conn_a(), conn_b());
        let mut p = Pair::new(a, b);
        // Lose the victim-th datagram once, and duplicate the one after it.
        p.filter = Box::new(move |w| match w.seq {
            s if s == victim => Fate::Drop,
            s if s == victim + 1 => Fate::Duplicate,
            _ => Fate::Deliver,
        });
        p.connect();
        assert_up(&p);
    }
}

/// A fifth of the datagrams lost at random each way, alone and with every other datagram
/// delivered twice: Main and Aggressive Mode still come up (a lost AM3 is asked for again by
/// the responder's AM2; before, 6 of 20 Aggressive Mode runs without copies never did).
#[test]
fn a_fifth_lost_at_random_with_or_without_copies_still_brings_the_tunnel_up() {
    for copies in [false, true] {
        for mode in [Phase1Mode::Main, Phase1Mode::Aggressive] {
            for seed in 0..20u64 {
                let (mut a, mut b) = (conn_a(), conn_b());
                for c in [&mut a, &mut b] {
                    c.mode = mode;
                    c.allow_aggressive_psk = true;
                }
                let mut p = Pair::new(a, b);
                p.filter = Box::new(move |w| {
                    let x = (w.seq as u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    match (x >> 32) % 10 {
                        0 | 1 => Fate::Drop,
                        2..=6 if copies => Fate::Duplicate,
                        _ => Fate::Deliver,
                    }
                });
                p.a.initiate(p.now, 0);
                p.run_for(Duration::from_secs(120));
                assert_up(&p);
            }
        }
    }
}

/// An AM1 whose initiator never answers AM2 (a spoofed one, say) ends as abandoned after AM2,
/// not as a failure to reach the peer, even when AM2's retransmissions run out before the
/// half-open timeout.
#[test]
fn an_unanswered_am2_is_abandoned_not_a_failure_of_the_connection() {
    let (mut a, mut b) = (conn_a(), conn_b());
    for c in [&mut a, &mut b] {
        c.mode = Phase1Mode::Aggressive;
        c.allow_aggressive_psk = true;
    }
    let settings = Settings {
        retransmit_timeout: Duration::from_secs(1),
        retransmit_base: 1.0,
        retransmit_tries: 2,
        ..Settings::default()
    };
    let mut p = Pair::with_settings(a, b, settings);
    p.filter = Box::new(|w| match w.from {
        Side::A if w.seq > 0 => Fate::Drop,
        _ => Fate::Deliver,
    });
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(10));
    assert_eq!(
        p.ike_failures(Side::B),
        [&Failure::Abandoned { after: "AM2" }]
    );
    let resent = p
        .events(Side::B)
        .iter()
        .filter(|e| matches!(e, Event::Message(m) if m.name == "AM2" && m.retransmission))
        .count();
    assert_eq!(resent, 2, "AM2 went again twice, as configured");
}

#[test]
fn a_responder_whose_mm2_is_lost_logs_the_repeated_mm1() {
    // One-way blocking (B's answers never reach A): B sees MM1 again and again.
    let mut p = Pair::new(conn_a(), conn_b());
    p.filter = Box::new(|w| match w.from {
        Side::B => Fate::Drop,
        Side::A => Fate::Deliver,
    });
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(30));
    let repeated: Vec<_> = p
        .events(Side::B)
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.direction == ferrovpn_ike::Direction::Received => Some(m),
            _ => None,
        })
        .collect();
    assert!(repeated.len() >= 3, "{repeated:?}");
    assert!(repeated.iter().all(|m| m.name == "MM1"));
    assert!(!repeated[0].retransmission);
    assert!(repeated[1..].iter().all(|m| m.retransmission));
    assert!(repeated[1]
        .to_string()
        .contains("received MM1 (retransmit)"));
}

#[test]
fn an_mm3_unanswered_past_the_peers_half_open_time_ends_the_attempt_instead_of_retrying() {
    // B answers MM1, then every later answer of B is lost: MM4 never arrives. strongSwan
    // forgets such an exchange 30 s after MM1 (its half_open_timeout), so MM3 retransmissions
    // after that would go into nothing for minutes (seen at 20 % loss).
    let mut p = Pair::new(conn_a(), conn_b());
    let mut from_b = 0;
    p.filter = Box::new(move |w| {
        if w.from == Side::B {
            from_b += 1;
            if from_b > 1 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(600));
    let f = p.ike_failures(Side::A);
    assert!(
        matches!(f.as_slice(), [Failure::Overdue { message: "MM3", after }]
            if (30..60).contains(&after.as_secs())),
        "{f:?}"
    );
    assert!(
        f[0].to_string().contains("MM3 still unanswered"),
        "{}",
        f[0]
    );
    // MM3 went out with the retransmissions due within 30 s (at 4, 11.2 and 24.2 s), no more.
    assert_eq!(p.times_sent(Side::A, "MM3"), 4);
    // The next attempt, on a path that works again, comes up.
    p.filter = Box::new(|_| Fate::Deliver);
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(60));
    assert!(p.a.is_up(0) && p.b.is_up(0));
}

#[test]
fn a_responder_making_progress_is_not_forgotten_at_the_half_open_timeout() {
    // A lossy path: B's first two MM2 and first two MM4 are lost, so Main Mode is still
    // unfinished 20 s after MM1, the half-open timeout here. B accepted MM3 at 11.2 s: the
    // timeout counts from there, and the MM4 B resends at 22.4 s completes phase 1.
    let settings = Settings {
        half_open_timeout: Duration::from_secs(20),
        ..Settings::default()
    };
    let mut p = Pair::with_settings(conn_a(), conn_b(), settings);
    // MM2 (SA, vendor IDs) is short, MM4 (a 256-byte MODP-2048 KE) is long.
    p.filter = either(
        lose_first(Side::B, 2, |w| w.datagram.data.len() < 300),
        lose_first(Side::B, 2, |w| w.datagram.data.len() >= 300),
    );
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(120));
    assert!(
        p.ike_failures(Side::B).is_empty(),
        "{:?}",
        p.ike_failures(Side::B)
    );
    assert!(
        p.ike_failures(Side::A).is_empty(),
        "{:?}",
        p.ike_failures(Side::A)
    );
    assert!(p.a.is_up(0) && p.b.is_up(0));
    assert_eq!(p.times_sent(Side::A, "MM1"), 3);
    assert_eq!(p.times_sent(Side::A, "MM3"), 3);
}

#[test]
fn no_dpd_exchange_runs_beside_a_quick_mode_awaiting_its_answer() {
    // B's first three Quick Mode datagrams are lost, so QM1 is retransmitted for longer than
    // the DPD interval. An R-U-THERE meanwhile would be a second request beside QM1, which strongSwan
    // cannot tell from a new one (it then decrypts the resent QM1 with the wrong IV).
    let dpd = Some(ferrovpn_ike::DpdConfig {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(120),
    });
    let (mut a, mut b) = (conn_a(), conn_b());
    a.dpd = dpd;
    b.dpd = dpd;
    let mut p = Pair::new(a, b);
    p.filter = lose_first(Side::B, 3, is_quick_mode);
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.children(Side::A).len(), 1);
    // Its second retransmission goes 11.2 s after QM1: beyond the 10 s DPD interval.
    assert!(
        p.times_sent(Side::A, "QM1") >= 3,
        "QM1 and its retransmissions"
    );
    let mut in_flight = false;
    for e in p.events(Side::A) {
        match e {
            Event::Message(m) if m.direction == ferrovpn_ike::Direction::Sent => {
                assert!(!(in_flight && m.name == "INFO"), "R-U-THERE beside QM1");
                in_flight |= m.name == "QM1";
            }
            Event::ChildSaEstablished(_) => in_flight = false,
            _ => {}
        }
    }
    // Once the Quick Mode is done, DPD runs as before.
    p.run_for(Duration::from_secs(30));
    assert!(
        p.times_sent(Side::A, "INFO") > 0,
        "R-U-THERE after the Quick Mode"
    );
}

#[test]
fn unreachable_peer_gives_up_after_the_retransmissions_and_says_so() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.filter = Box::new(|_| Fate::Drop);
    p.a.initiate(p.now, 0);
    p.run_for(Duration::from_secs(600));
    let tries = Settings::default().retransmit_tries;
    assert_eq!(
        p.ike_failures(Side::A),
        [&Failure::NoResponse {
            message: "MM1",
            tries
        }]
    );
    let mm1s = p.wire.iter().filter(|w| w.from == Side::A).count();
    assert_eq!(mm1s, 1 + tries as usize);
    let first = Header::parse(&p.wire[0].datagram.data).unwrap();
    for w in &p.wire {
        let h = Header::parse(&w.datagram.data).unwrap();
        assert_eq!(
            h.initiator_spi, first.initiator_spi,
            "retransmissions keep the cookie"
        );
        assert_eq!(h.responder_spi, [0; 8]);
    }
}

#[test]
fn forced_encapsulation_floats_to_4500_and_uses_udp_encapsulated_esp() {
    let (mut a, b) = (conn_a(), conn_b());
    a.nat_traversal = NatTraversal::Force;
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    for side in [Side::A, Side::B] {
        let c = p.children(side)[0];
        assert_eq!(
            c.encapsulation,
            EspEncapsulation::Udp {
                local_port: 4500,
                remote_port: 4500
            }
        );
    }
    let ports: Vec<u16> = p.wire.iter().map(|w| w.datagram.remote.port()).collect();
    assert_eq!(&ports[..4], &[500, 500, 500, 500], "MM1-MM4 on 500");
    assert!(
        ports[4..].iter().all(|&x| x == 4500),
        "from MM5 on, 4500: {ports:?}"
    );
}

#[test]
fn without_nat_esp_is_raw_and_ike_stays_on_500() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    assert_up(&p);
    assert_eq!(p.children(Side::A)[0].encapsulation, EspEncapsulation::Raw);
    assert!(p.wire.iter().all(|w| w.datagram.remote.port() == 500));
}

/// A NAT in front of A that keeps its address but maps its ports, 500 → 31500 and 4500 →
/// 34500, and passes to A only what B sends to a mapped port.
fn nat_in_front_of_a(p: &mut Pair) {
    p.rewrite = Box::new(|d, from| {
        let map = |port| match port {
            500 => 31500,
            4500 => 34500,
            p => p,
        };
        let unmap = |port| match port {
            31500 => 500,
            34500 => 4500,
            p => p,
        };
        match from {
            Side::A => d.local = SocketAddr::new(d.local.ip(), map(d.local.port())),
            Side::B => d.remote = SocketAddr::new(d.remote.ip(), unmap(d.remote.port())),
        }
    });
    p.filter = Box::new(|w| {
        if w.from == Side::B && ![31500, 34500].contains(&w.datagram.remote.port()) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
}

#[test]
fn a_nat_in_front_of_the_initiator_is_detected_and_both_sides_float() {
    let mut p = Pair::new(conn_a(), conn_b());
    nat_in_front_of_a(&mut p);
    p.connect();
    assert_up(&p);
    assert_eq!(
        p.children(Side::B)[0].encapsulation,
        EspEncapsulation::Udp {
            local_port: 4500,
            remote_port: 34500
        }
    );
    assert_eq!(
        p.children(Side::A)[0].encapsulation,
        EspEncapsulation::Udp {
            local_port: 4500,
            remote_port: 4500
        }
    );
    let nat_b = p.events(Side::B).iter().find_map(|e| match e {
        Event::IkeSaEstablished { nat, .. } => Some(*nat),
        _ => None,
    });
    let nat_b = nat_b.unwrap();
    assert!(nat_b.remote_behind_nat && !nat_b.local_behind_nat && nat_b.floated);
}

/// NAT-keepalives `side` sent from wire index `since` on: (from, to) ports of each.
fn keepalives(p: &Pair, side: Side, since: usize) -> Vec<(u16, u16)> {
    p.wire[since..]
        .iter()
        .filter(|w| w.from == side && w.datagram.is_nat_keepalive())
        .map(|w| (w.datagram.local.port(), w.datagram.remote.port()))
        .collect()
}

#[test]
fn the_side_behind_a_nat_sends_keepalives_to_keep_its_mapping() {
    // RFC 3948 §4: A, behind the NAT, sends one every 20 s (the default) from UDP 4500 to
    // B's UDP 4500; B, not behind one, sends none. Both sides stay up.
    let mut p = Pair::new(conn_a(), conn_b());
    nat_in_front_of_a(&mut p);
    p.connect();
    let since = p.wire.len();
    p.run_for(Duration::from_secs(70));
    assert_eq!(keepalives(&p, Side::A, since), [(4500, 4500); 3]);
    assert!(keepalives(&p, Side::B, 0).is_empty());
    assert_up(&p);

    let mut a = conn_a();
    a.nat_keepalive = None;
    let mut p = Pair::new(a, conn_b());
    nat_in_front_of_a(&mut p);
    p.connect();
    p.run_for(Duration::from_secs(70));
    assert!(
        keepalives(&p, Side::A, 0).is_empty(),
        "nat_keepalive = \"0s\""
    );
}

#[test]
fn dpd_declares_a_silent_peer_dead_and_removes_its_sas() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    assert_up(&p);
    p.filter = silence_from_b_after(p.wire.len());
    p.run_for(Duration::from_secs(400));
    assert!(p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::PeerDead { .. })));
    assert!(p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { .. })));
    assert!(!p.a.is_up(0));
}

/// A pair with DPD every 5 s, dead after 15 s, connected.
fn dpd_5s_15s_pair() -> Pair {
    let dpd = ferrovpn_ike::DpdConfig {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(15),
    };
    let (mut a, mut b) = (conn_a(), conn_b());
    a.dpd = Some(dpd);
    b.dpd = Some(dpd);
    let mut p = Pair::new(a, b);
    p.connect();
    p
}

/// A network that loses everything B sends from datagram `cut` on.
fn silence_from_b_after(cut: usize) -> Filter {
    Box::new(move |w| match w.from {
        Side::B if w.seq >= cut => Fate::Drop,
        _ => Fate::Deliver,
    })
}

#[test]
fn dpd_timeout_counts_from_the_peers_last_message() {
    let mut p = dpd_5s_15s_pair();
    // The peer's last words came at most one DPD interval before the cut.
    p.filter = silence_from_b_after(p.wire.len());
    let dead = |p: &Pair| {
        p.events(Side::A)
            .iter()
            .any(|e| matches!(e, Event::PeerDead { .. }))
    };
    p.run_for(Duration::from_millis(9_900));
    assert!(!dead(&p), "not before the timeout since the last message");
    p.run_for(Duration::from_millis(5_200));
    assert!(dead(&p), "dead once 15 s passed since the peer last spoke");
}

#[test]
fn esp_from_the_peer_keeps_dpd_quiet_even_when_its_ike_answers_are_lost() {
    // A lossy path: all of B's IKE is lost, its ESP arrives (the daemon reports it once a
    // second). The peer is alive: no R-U-THERE while ESP flows, and none declares it dead.
    let mut p = dpd_5s_15s_pair();
    let spi_in = p.children(Side::A)[0].inbound.spi;
    p.filter = silence_from_b_after(p.wire.len());
    let sent_before = p.times_sent(Side::A, "INFO");
    for _ in 0..60 {
        assert!(p.a.esp_received(p.now, 0, spi_in));
        p.run_for(Duration::from_secs(1));
    }
    assert!(p.a.is_up(0), "a peer whose ESP arrives is not dead");
    assert_eq!(
        p.times_sent(Side::A, "INFO"),
        sent_before,
        "no R-U-THERE while ESP arrives"
    );
    assert!(!p.a.esp_received(p.now, 0, spi_in ^ 1), "not our SPI");
    // When the ESP stops too, DPD finds the peer dead as before.
    p.run_for(Duration::from_secs(30));
    assert!(p.times_sent(Side::A, "INFO") > sent_before);
    assert!(p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::PeerDead { .. })));
}

/// A (initiator) proposes 1 h, B keeps its own 120 s (RFC 2409 §4.5): connected; and the
/// inbound SPI of A's pair.
fn responder_with_the_shorter_lifetime() -> (Pair, u32) {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_lifetime = Duration::from_secs(3600);
    b.ike_lifetime = Duration::from_secs(120);
    let mut p = Pair::new(a, b);
    p.connect();
    let pair = p.children(Side::A)[0].inbound.spi;
    (p, pair)
}

/// No IPsec SA was deleted on either side, and each side holds one pair, A's with `pair`.
fn assert_pair_kept(p: &Pair, pair: u32) {
    for side in [Side::A, Side::B] {
        let deleted: Vec<&Event> = p
            .events(side)
            .iter()
            .filter(|e| matches!(e, Event::ChildSaDeleted { .. }))
            .collect();
        assert!(deleted.is_empty(), "{side:?}: {deleted:?}");
    }
    for e in [&p.a, &p.b] {
        let sas = e.ike_sas(p.now);
        let pairs: usize = sas.iter().map(|s| s.children.len()).sum();
        assert_eq!(pairs, 1, "{sas:?}");
    }
    assert!(p
        .a
        .ike_sas(p.now)
        .iter()
        .any(|s| s.children.iter().any(|c| c.spi_in == pair)));
}

#[test]
fn a_responder_renews_phase_1_before_its_shorter_lifetime_ends_and_keeps_the_pairs() {
    // A would not renew for an hour; B's ISAKMP SA ending used to take the IPsec SAs with it.
    // B now starts a new phase 1 itself shortly before the end, and the pairs move over on
    // both sides.
    let (mut p, pair) = responder_with_the_shorter_lifetime();
    p.run_for(Duration::from_secs(300));
    assert!(
        p.established(Side::B) >= 3,
        "B renewed phase 1 (twice in 300 s)"
    );
    assert_pair_kept(&p, pair);
}

#[test]
fn a_renewal_slower_than_the_lifetime_takes_the_pairs_over_when_it_is_up() {
    // As above, on a lossy path: B's first two MM1 of its renewal are lost, so the new phase 1
    // is up only after the old one's end. The pairs wait for it instead of being deleted.
    let (mut p, pair) = responder_with_the_shorter_lifetime();
    p.filter = lose_first(Side::B, 2, |w| {
        w.exchange() == Some(ExchangeType::IDENTITY_PROTECTION)
            && w.datagram.data.get(8..16) == Some(&[0u8; 8][..])
    });
    p.run_for(Duration::from_secs(160));
    assert!(p.established(Side::B) >= 2, "B's renewal came up");
    assert!(p.times_sent(Side::B, "MM1") >= 3, "after two lost MM1");
    assert_pair_kept(&p, pair);
}

#[test]
fn a_responder_renews_phase_1_through_the_nat_in_front_of_the_initiator() {
    // A is behind a NAT that lets in only what answers its mappings. B's renewal goes to
    // the mapping A's UDP 4500 traffic keeps open, not to A's port 500, which the NAT
    // does not forward.
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_lifetime = Duration::from_secs(3600);
    b.ike_lifetime = Duration::from_secs(120);
    let mut p = Pair::new(a, b);
    nat_in_front_of_a(&mut p);
    p.connect();
    let pair = p.children(Side::A)[0].inbound.spi;
    p.run_for(Duration::from_secs(150));
    assert!(p.established(Side::B) >= 2, "B renewed phase 1");
    let renewal_mm1 = p
        .wire
        .iter()
        .filter(|w| w.from == Side::B && w.exchange() == Some(ExchangeType::IDENTITY_PROTECTION))
        .find(|w| w.datagram.data.get(8..16) == Some(&[0u8; 8][..]))
        .map(|w| (w.datagram.local.port(), w.datagram.remote.port()));
    assert_eq!(
        renewal_mm1,
        Some((4500, 34500)),
        "MM1 from B's 4500 to A's mapping"
    );
    assert_pair_kept(&p, pair);
}

#[test]
fn a_renewal_that_gets_no_answer_is_reported_as_a_renewal() {
    // Every MM1 of B's renewal is lost (a peer behind NAT, unreachable at its address): the
    // failure says it was a renewal, so the daemon's log and status can say so.
    let (mut p, _) = responder_with_the_shorter_lifetime();
    p.filter = lose_first(Side::B, usize::MAX, |w| {
        w.exchange() == Some(ExchangeType::IDENTITY_PROTECTION)
            && w.datagram.data.get(8..16) == Some(&[0u8; 8][..])
    });
    p.run_for(Duration::from_secs(240));
    let failed: Vec<bool> = p
        .events(Side::B)
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaFailed { renewal, .. } => Some(*renewal),
            _ => None,
        })
        .collect();
    assert_eq!(failed, [true], "one failed renewal, reported as one");
}

#[test]
fn dpd_keeps_a_live_peer_up() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    p.run_for(Duration::from_secs(600));
    assert!(!p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::PeerDead { .. })));
    assert!(p.a.is_up(0) && p.b.is_up(0));
    let info = p
        .sent_names(Side::A)
        .iter()
        .filter(|n| **n == "INFO")
        .count();
    assert!(info >= 5, "R-U-THERE every 30 s of silence: {info}");
}

#[test]
fn shutdown_sends_deletes_that_the_peer_honours() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    let now = p.now;
    p.a.shutdown(now);
    p.pump();
    assert!(p
        .events(Side::B)
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { .. })));
    assert!(p
        .events(Side::B)
        .iter()
        .any(|e| matches!(e, Event::IkeSaDeleted { .. })));
    assert!(!p.b.is_up(0));
}

#[test]
fn a_rekey_keeps_the_byte_lifetime_its_pair_was_given() {
    // A offers a byte lifetime, B (none of its own) adopts it. When B rekeys the pair, its
    // QM1 offers that lifetime again: A, like strongSwan, keeps its own limit for a pair
    // offered none without saying so, and B's new pair would have had no byte limit at all.
    let (mut a, b) = (conn_a(), conn_b());
    a.esp_lifetime_kb = Some(20_000);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(p.children(Side::B)[0].lifetime_kb, Some(20_000));
    let now = p.now;
    assert_eq!(p.b.rekey(now, 0).unwrap(), 1);
    p.run_for(Duration::from_secs(10));
    let b_pairs = p.children(Side::B);
    assert_eq!(b_pairs.len(), 2, "rekeyed");
    assert_eq!(b_pairs[1].lifetime_kb, Some(20_000));
}

#[test]
fn ipsec_sas_are_rekeyed_before_they_expire_and_the_old_pair_is_deleted_after() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_lifetime = Duration::from_secs(300);
    b.esp_lifetime = Duration::from_secs(300);
    let mut p = Pair::new(a, b);
    p.connect();
    p.run_for(Duration::from_secs(300));
    let ca = p.children(Side::A);
    assert!(ca.len() >= 2, "rekeyed: {}", ca.len());
    assert_mirrored(ca[1], p.children(Side::B)[1]);
    assert_ne!(ca[0].inbound.spi, ca[1].inbound.spi);
    let deleted: Vec<u32> = p
        .events(Side::A)
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaDeleted { inbound_spi, .. } => Some(*inbound_spi),
            _ => None,
        })
        .collect();
    assert!(
        deleted.contains(&ca[0].inbound.spi),
        "old pair deleted after the new one was installed"
    );
    let est_new = p.events(Side::A).iter().position(
        |e| matches!(e, Event::ChildSaEstablished(c) if c.inbound.spi == ca[1].inbound.spi),
    );
    let del_old = p.events(Side::A).iter().position(|e| matches!(e, Event::ChildSaDeleted { inbound_spi, .. } if *inbound_spi == ca[0].inbound.spi));
    assert!(est_new < del_old, "make before break");
}

#[test]
fn a_rekeyed_pair_stays_installed_while_it_drains_then_both_sides_delete_it() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_lifetime = Duration::from_secs(300);
    b.esp_lifetime = Duration::from_secs(300);
    let mut p = Pair::new(a, b);
    p.connect(); // established at t0; the clock is now t0 + 60 s; rekey is due at t0 + 240 s
    let deleted = |p: &Pair, side| {
        p.events(side)
            .iter()
            .filter(|e| matches!(e, Event::ChildSaDeleted { .. }))
            .count()
    };
    p.run_for(Duration::from_secs(181));
    assert_eq!(p.children(Side::A).len(), 2, "the successor is up");
    assert_eq!(p.children(Side::B).len(), 2);
    assert_eq!(deleted(&p, Side::A), 0, "the old pair drains");
    assert_eq!(deleted(&p, Side::B), 0);
    p.run_for(Duration::from_secs(3));
    assert_eq!(
        deleted(&p, Side::A) + deleted(&p, Side::B),
        0,
        "still draining"
    );
    p.run_for(Duration::from_secs(3));
    let old = p.children(Side::A)[0].inbound.spi;
    assert!(p.events(Side::A).iter().any(
        |e| matches!(e, Event::ChildSaDeleted { inbound_spi, reason, .. } if *inbound_spi == old && reason == "rekeyed")
    ));
    // The peer stops sending on it at once and lets its inbound half drain as long.
    assert!(p
        .events(Side::B)
        .iter()
        .any(|e| matches!(e, Event::ChildSaDraining { outbound_spi, .. } if *outbound_spi == old)));
    assert_eq!(deleted(&p, Side::B), 0, "the peer's inbound half drains");
    p.run_for(Duration::from_secs(6));
    assert_eq!(deleted(&p, Side::B), 1, "the peer honours our delete");
}

#[test]
fn responder_lifetime_shortens_the_initiators_sa() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_lifetime = Duration::from_secs(7200);
    b.esp_lifetime = Duration::from_secs(1800);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(p.children(Side::A)[0].lifetime, Duration::from_secs(1800));
    assert_eq!(p.children(Side::B)[0].lifetime, Duration::from_secs(1800));
}

#[test]
fn isakmp_sa_is_rekeyed_without_dropping_its_ipsec_sas() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_lifetime = Duration::from_secs(600);
    b.ike_lifetime = Duration::from_secs(600);
    let mut p = Pair::new(a, b);
    p.connect();
    p.run_for(Duration::from_secs(580));
    assert_eq!(
        p.established(Side::A),
        2,
        "a new phase 1 replaced the old one"
    );
    assert!(p.a.is_up(0) && p.b.is_up(0));
    assert!(
        !p.events(Side::A)
            .iter()
            .any(|e| matches!(e, Event::ChildSaDeleted { .. })),
        "IPsec SAs survive the phase 1 rekey"
    );
    assert!(!p
        .events(Side::B)
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { .. })));
    let sas = p.a.ike_sas(p.now);
    assert_eq!(sas.len(), 1);
    assert_eq!(sas[0].children.len(), 1);
}

#[test]
fn a_replaced_isakmp_sa_is_deleted_only_after_the_drain_time() {
    // strongSwan moves IPsec SAs to the new ISAKMP SA in a job after it is up; a delete of the
    // old one that arrives first takes them down. So the delete waits `rekeyed_drain` (5 s).
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_lifetime = Duration::from_secs(600);
    b.ike_lifetime = Duration::from_secs(600);
    let mut p = Pair::new(a, b);
    p.connect();
    let rekeyed = |p: &Pair| {
        p.events(Side::A)
            .iter()
            .filter(|e| matches!(e, Event::IkeSaDeleted { reason, .. } if reason == "rekeyed"))
            .count()
    };
    let mut waited = 0;
    while p.established(Side::A) < 2 {
        p.run_for(Duration::from_millis(100));
        waited += 1;
        assert!(waited < 10_000, "no phase 1 rekey");
    }
    assert_eq!(rekeyed(&p), 0, "the old ISAKMP SA is not deleted at once");
    // The peer, like strongSwan, lets the newest ISAKMP SA adopt the IPsec SAs at once and
    // deletes the old one after the same drain time.
    assert_eq!(p.b.ike_sas(p.now).len(), 1, "the peer moved to the new SA");
    assert_eq!(p.b.ike_sas(p.now)[0].children.len(), 1);
    p.run_for(Duration::from_secs(4));
    assert_eq!(rekeyed(&p), 0, "still draining");
    p.run_for(Duration::from_secs(2));
    assert_eq!(rekeyed(&p), 1, "deleted after the drain time");
    assert_eq!(
        p.b.ike_sas(p.now).len(),
        1,
        "one ISAKMP SA left at the peer"
    );
    assert_eq!(
        p.b.ike_sas(p.now)[0].children.len(),
        1,
        "the IPsec SA moved over"
    );
    assert!(p.a.is_up(0) && p.b.is_up(0));
}

/// Two peers whose IPsec SAs rekey every 20 s (lifetime 40 s) and whose phase 1 rekeys at
/// t0 + 140 s (lifetime 200 s): at 140 s both fall due together. Connected, clock at t0 + 60 s.
fn rekeys_due_together() -> Pair {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.ike_lifetime = Duration::from_secs(200);
    b.ike_lifetime = Duration::from_secs(200);
    a.esp_lifetime = Duration::from_secs(40);
    b.esp_lifetime = Duration::from_secs(40);
    let mut p = Pair::new(a, b);
    p.connect();
    p
}

#[test]
fn an_ipsec_rekey_due_with_the_isakmp_rekey_survives_a_lost_qm2() {
    // The peer's QM2 of the IPsec rekey due at 140 s is lost: phase 1 waits for that Quick
    // Mode (QM1 is resent 4 s later), or, had it gone first, its successor restarts the rekey
    // (`after_input`); either way no IPsec SA expires unreplaced.
    let mut p = rekeys_due_together();
    p.run_for(Duration::from_secs(75)); // t0 + 135 s
    let cut = p.wire.len();
    let mut dropped = false;
    p.filter = Box::new(move |w| {
        let qm =
            Header::parse(&w.datagram.data).is_ok_and(|h| h.exchange == ExchangeType::QUICK_MODE);
        if !dropped && w.seq >= cut && w.from == Side::B && qm {
            dropped = true;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.run_for(Duration::from_secs(200));
    assert_eq!(p.established(Side::A), 3, "phase 1 rekeyed twice");
    let expired: Vec<&Event> = p
        .events(Side::A)
        .iter()
        .filter(|e| matches!(e, Event::ChildSaDeleted { reason, .. } if reason != "rekeyed"))
        .collect();
    assert!(
        expired.is_empty(),
        "every IPsec SA was rekeyed: {expired:?}"
    );
    assert!(p.a.is_up(0) && p.b.is_up(0));
    let sas = p.a.ike_sas(p.now);
    assert_eq!(sas.len(), 1);
    assert!(!sas[0].children.is_empty());
}

#[test]
fn a_phase_1_rekey_waits_until_a_quick_mode_has_settled() {
    // The IPsec rekey goes first and phase 1 follows 2 s after its SA is up, so the peer is
    // not installing an SA while it moves its SAs to the new ISAKMP SA.
    let mut p = rekeys_due_together();
    p.run_for(Duration::from_secs(79)); // t0 + 139 s
    let children = |p: &Pair| {
        p.events(Side::A)
            .iter()
            .filter(|e| matches!(e, Event::ChildSaEstablished(_)))
            .count()
    };
    let before = children(&p);
    p.run_for(Duration::from_secs(2)); // t0 + 141 s
    assert_eq!(children(&p), before + 1, "the IPsec rekey went first");
    assert_eq!(p.established(Side::A), 1, "phase 1 waits for it to settle");
    p.run_for(Duration::from_millis(1_500));
    assert_eq!(
        p.established(Side::A),
        2,
        "phase 1 rekeyed once the Quick Mode settled"
    );
    let expired = p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { reason, .. } if reason != "rekeyed"));
    assert!(!expired);
}

#[test]
fn an_ipsec_sa_whose_rekey_failed_is_negotiated_again_when_it_expires() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_lifetime = Duration::from_secs(130);
    b.esp_lifetime = Duration::from_secs(130);
    let settings = Settings {
        retransmit_tries: 2,
        ..Settings::default()
    };
    let mut p = Pair::with_settings(a, b, settings);
    p.connect(); // rekey due at t0 + 70 s, expiry at t0 + 130 s
                 // The peer answers no Quick Mode until t0 + 100 s: the rekey gives up (~t0 + 94 s).
    let blackout = std::rc::Rc::new(std::cell::Cell::new(true));
    let on = blackout.clone();
    p.filter = Box::new(move |w| {
        let qm =
            Header::parse(&w.datagram.data).is_ok_and(|h| h.exchange == ExchangeType::QUICK_MODE);
        if on.get() && w.from == Side::B && qm {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.run_for(Duration::from_secs(40));
    assert!(
        !p.child_failures(Side::A).is_empty(),
        "the rekey failed: {:?}",
        p.sent_names(Side::A)
    );
    blackout.set(false);
    p.run_for(Duration::from_secs(40)); // past t0 + 130 s
    assert!(p.events(Side::A).iter().any(
        |e| matches!(e, Event::ChildSaDeleted { reason, .. } if reason == "lifetime expired")
    ));
    let sas = p.a.ike_sas(p.now);
    assert_eq!(
        sas[0].children.len(),
        1,
        "a fresh pair replaced the expired one"
    );
    assert!(p.a.is_up(0) && p.b.is_up(0));
}

#[test]
fn simultaneous_negotiations_are_kept_apart_by_their_cookies() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.a.initiate(p.now, 0);
    p.b.initiate(p.now, 0);
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.established(Side::A), 2);
    assert_eq!(p.established(Side::B), 2);
    let cookies: std::collections::HashSet<[u8; 8]> = p
        .wire
        .iter()
        .map(|w| Header::parse(&w.datagram.data).unwrap().initiator_spi)
        .collect();
    assert!(cookies.len() >= 2);
    assert!(p.ike_failures(Side::A).is_empty() && p.ike_failures(Side::B).is_empty());
}

#[test]
fn half_open_responder_states_are_bounded() {
    let settings = Settings {
        max_half_open: 8,
        ..Settings::default()
    };
    let mut p = Pair::with_settings(conn_a(), conn_b(), settings);
    // Capture one MM1 and replay it with fresh cookies from many source ports.
    p.a.initiate(p.now, 0);
    let mm1 = p.a.poll_transmit().unwrap();
    p.filter = Box::new(|_| Fate::Drop);
    for i in 0..100u16 {
        p.b.handle_datagram(p.now, spoofed_mm1(&mm1.data, i));
    }
    assert_eq!(p.b.counters().half_open_dropped, 92);
    assert_eq!(p.b.ike_sas(p.now).len(), 8);
    p.run_for(Duration::from_secs(120));
    assert!(p.b.ike_sas(p.now).is_empty(), "half-open states expire");
}

/// A copy of `mm1` with a fresh initiator cookie from `i`, as if from the peer's address at
/// port 10000+i.
fn spoofed_mm1(mm1: &[u8], i: u16) -> ferrovpn_ike::Datagram {
    let mut data = mm1.to_vec();
    data[..2].copy_from_slice(&i.to_be_bytes());
    data[2] = 0xee;
    ferrovpn_ike::Datagram {
        local: sa(ADDR_B, 500),
        remote: sa(ADDR_A, 10_000 + i),
        data,
    }
}

#[test]
fn an_mm1_flood_spoofing_the_peer_does_not_lock_the_peer_out() {
    let settings = Settings {
        max_half_open_per_peer: 4,
        ..Settings::default()
    };
    let mut p = Pair::with_settings(conn_a(), conn_b(), settings);
    // The flood: MM1s with the peer's address from many ports; our MM2s never reach a sender.
    let mut probe = Pair::new(conn_a(), conn_b());
    probe.a.initiate(probe.now, 0);
    let mm1 = probe.a.poll_transmit().unwrap().data;
    for i in 0..100 {
        p.b.handle_datagram(p.now, spoofed_mm1(&mm1, i));
    }
    assert_eq!(p.b.ike_sas(p.now).len(), 4, "bounded per peer");
    assert_eq!(p.b.counters().half_open_replaced, 96);
    assert_eq!(p.b.counters().half_open_dropped, 0);

    // The real peer's MM1 arrives in the middle of the flood, which goes on.
    p.a.initiate(p.now, 0);
    let real = p.a.poll_transmit().unwrap();
    p.b.handle_datagram(
        p.now,
        ferrovpn_ike::Datagram {
            local: real.remote,
            remote: real.local,
            data: real.data,
        },
    );
    for i in 100..103 {
        p.b.handle_datagram(p.now, spoofed_mm1(&mm1, i));
    }
    p.pump();
    for i in 103..200 {
        p.b.handle_datagram(p.now, spoofed_mm1(&mm1, i));
    }
    p.run_for(Duration::from_secs(5));
    assert_eq!(
        p.established(Side::A),
        1,
        "{:?} {:?} {:?}",
        p.ike_failures(Side::A),
        p.sent_names(Side::A),
        p.b.counters()
    );
    assert_eq!(p.established(Side::B), 1);
    assert_eq!(p.children(Side::A).len(), 1);
    let half_open = p.b.ike_sas(p.now).len() - 1;
    assert_eq!(
        half_open, 4,
        "the established SA is not counted nor replaced"
    );
}

#[test]
fn garbage_and_wrong_cookies_are_counted_not_fatal() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    let now = p.now;
    let junk = [vec![], vec![0u8; 3], vec![0xff; 28], vec![0x11; 200]];
    for data in junk {
        p.b.handle_datagram(
            now,
            ferrovpn_ike::Datagram {
                local: sa(ADDR_B, 500),
                remote: sa(ADDR_A, 500),
                data,
            },
        );
    }
    let c = p.b.counters().clone();
    assert!(c.malformed + c.unknown_sa >= 4, "{c:?}");
    // A valid-looking Quick Mode with the right cookies but garbage inside.
    let sas = p.b.ike_sas(now);
    let h = Header {
        initiator_spi: sas[0].cookies.initiator_spi,
        responder_spi: sas[0].cookies.responder_spi,
        next_payload: ferrovpn_ike::wire::PayloadType::HASH,
        version: 0x10,
        exchange: ExchangeType::QUICK_MODE,
        flags: ferrovpn_ike::wire::Flags(ferrovpn_ike::wire::Flags::ENCRYPTION),
        message_id: 0x1234_5678,
        length: 28 + 64,
    };
    let mut data = Vec::new();
    h.emit(&mut data);
    data.extend_from_slice(&[0x42; 64]);
    p.b.handle_datagram(
        now,
        ferrovpn_ike::Datagram {
            local: sa(ADDR_B, 500),
            remote: sa(ADDR_A, 500),
            data,
        },
    );
    assert!(p.b.is_up(0));
    p.run_for(Duration::from_secs(10));
    assert!(p.b.is_up(0) && p.a.is_up(0));
}

#[test]
fn a_restarted_peer_is_recognised_by_initial_contact_and_its_stale_sas_removed() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    assert_up(&p);
    let old_spi = p.children(Side::A)[0].inbound.spi;
    // B restarts: a new endpoint with no memory of the old SAs initiates.
    let mut b = ferrovpn_ike::Endpoint::new(Settings::default(), [9; 32]);
    b.add_connection(conn_b());
    p.b = b;
    p.b.initiate(p.now, 0);
    p.run_for(Duration::from_secs(60));
    assert!(p
        .events(Side::A)
        .iter()
        .any(|e| matches!(e, Event::InitialContact { .. })));
    assert!(p.events(Side::A).iter().any(
        |e| matches!(e, Event::ChildSaDeleted { inbound_spi, .. } if *inbound_spi == old_spi)
    ));
    let sas = p.a.ike_sas(p.now);
    assert_eq!(sas.len(), 1, "only the new ISAKMP SA is left");
    assert_eq!(sas[0].role, ferrovpn_ike::Role::Responder);
    assert_eq!(sas[0].children.len(), 1);
}

#[test]
fn the_commit_bit_makes_the_initiator_wait_for_connected() {
    let (mut a, b) = (conn_a(), conn_b());
    a.request_commit = true;
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    assert!(
        p.sent_names(Side::B).contains(&"QM4"),
        "responder confirms with CONNECTED: {:?}",
        p.sent_names(Side::B)
    );
    let commit_flags: Vec<bool> = p
        .wire
        .iter()
        .filter_map(|w| {
            let h = Header::parse(&w.datagram.data).ok()?;
            (h.exchange == ExchangeType::QUICK_MODE)
                .then_some(h.flags.contains(ferrovpn_ike::wire::Flags::COMMIT))
        })
        .collect();
    assert_eq!(
        commit_flags,
        [true, true, false, true],
        "QM1, QM2 and QM4 carry the commit bit"
    );
    // The initiator installs only after CONNECTED: its ChildSaEstablished follows QM4's arrival.
    let a_events = p.events(Side::A);
    let qm4 = a_events
        .iter()
        .position(|e| matches!(e, Event::Message(m) if m.name == "QM4"))
        .unwrap();
    let installed = a_events
        .iter()
        .position(|e| matches!(e, Event::ChildSaEstablished(_)))
        .unwrap();
    assert!(qm4 < installed);
}

#[test]
fn a_lost_connected_is_recovered_by_retransmitting_qm3() {
    let (mut a, b) = (conn_a(), conn_b());
    a.request_commit = true;
    let mut p = Pair::new(a, b);
    // Drop the first QM4 (B's third datagram after MM2, MM4, MM6, QM2).
    let mut seen_b = 0;
    p.filter = Box::new(move |w| {
        if w.from == Side::B {
            seen_b += 1;
            if seen_b == 5 {
                return Fate::Drop;
            }
        }
        Fate::Deliver
    });
    p.connect();
    assert_up(&p);
    assert_eq!(
        p.sent_names(Side::B)
            .iter()
            .filter(|n| **n == "QM4")
            .count(),
        1,
        "QM4 built once, then resent from the reply cache"
    );
}

#[test]
fn a_malformed_phase_1_message_is_answered_with_its_notify() {
    let mut p = Pair::new(conn_a(), conn_b());
    let mut n = 0;
    // Turn MM3's first payload into an unknown payload type (60).
    p.rewrite = Box::new(move |d, from| {
        if from == Side::A {
            n += 1;
            if n == 2 {
                d.data[16] = 60;
            }
        }
    });
    p.connect();
    // The notify is plain, so it cannot end A's negotiation: the retransmitted MM3 completes it.
    assert_eq!(
        unauthenticated_notifies(&p, Side::A),
        [NotifyType::INVALID_PAYLOAD_TYPE]
    );
    assert!(p.ike_failures(Side::A).is_empty());
    assert_eq!(p.established(Side::A), 1);
    assert!(p.b.counters().malformed >= 1);
}

#[test]
fn a_quick_mode_whose_hash_fails_gets_invalid_hash_information() {
    let mut p = Pair::new(conn_a(), conn_b());
    let mut n = 0;
    // QM1's body is HASH (36 bytes), SA (48), Nonce (4 + 32 at body offset 84), IDs. Flipping a
    // ciphertext bit at body offset 100 garbles plaintext 96..112 and flips one bit at 116: all
    // inside the nonce, so the message still parses but HASH(1) no longer verifies.
    p.rewrite = Box::new(move |d, from| {
        if from == Side::A {
            n += 1;
            if n == 4 {
                d.data[28 + 100] ^= 0x01;
            }
        }
    });
    p.connect();
    assert_eq!(p.established(Side::A), 1);
    assert_eq!(
        p.child_failures(Side::A),
        [&Failure::PeerNotify(NotifyType::INVALID_HASH_INFORMATION)]
    );
    assert!(p.b.counters().bad_hash >= 1);
}

/// `ferrovpn check` accepts lifetimes down to 1 m while `Settings::rekey_margin` is 60 s: the
/// margin is clamped to half the lifetime, or a child would be due for rekeying the moment it
/// is installed, and so would its successor.
#[test]
fn a_lifetime_no_longer_than_the_rekey_margin_does_not_rekey_in_a_loop() {
    let (mut a, mut b) = (conn_a(), conn_b());
    a.esp_lifetime = Duration::from_secs(60);
    b.esp_lifetime = Duration::from_secs(60);
    let mut p = Pair::new(a, b);
    let now = p.now;
    p.a.initiate(now, 0);
    p.run_for(Duration::from_secs(10));
    let n = p.children(Side::A).len();
    assert_eq!(
        n, 1,
        "{n} IPsec SAs negotiated in 10 s with a 60 s lifetime"
    );
}

#[test]
fn the_responder_may_install_its_inbound_sa_when_it_sends_qm2() {
    let mut p = Pair::new(conn_a(), conn_b());
    p.connect();
    assert_up(&p);
    let ev = p.events(Side::B);
    let ready = ev
        .iter()
        .position(|e| matches!(e, Event::ChildSaInboundReady(_)))
        .expect("inbound ready");
    let done = ev
        .iter()
        .position(|e| matches!(e, Event::ChildSaEstablished(_)))
        .unwrap();
    assert!(ready < done);
    let (Event::ChildSaInboundReady(early), Event::ChildSaEstablished(full)) =
        (&ev[ready], &ev[done])
    else {
        unreachable!()
    };
    assert_eq!(early.inbound.spi, full.inbound.spi);
    assert_eq!(*early.inbound.enc_key, *full.inbound.enc_key);
    assert_eq!(early.message_id, full.message_id);
    assert!(
        !p.events(Side::A)
            .iter()
            .any(|e| matches!(e, Event::ChildSaInboundReady(_))),
        "only the responder"
    );
}

#[test]
fn a_responder_whose_qm3_never_comes_reports_the_quick_mode_failed() {
    let mut p = Pair::new(conn_a(), conn_b());
    // Datagram 8 is QM3 (MM1…MM6, QM1, QM2 before it); lose it and everything A sends after.
    p.filter = Box::new(|w| {
        if w.from == Side::A && w.seq >= 8 {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    p.connect();
    p.run_for(Duration::from_secs(240));
    let ready = p.events(Side::B).iter().find_map(|e| match e {
        Event::ChildSaInboundReady(c) => Some(c.message_id),
        _ => None,
    });
    let failed = p.events(Side::B).iter().find_map(|e| match e {
        Event::ChildSaFailed { message_id, .. } => Some(*message_id),
        _ => None,
    });
    assert!(ready.is_some());
    assert_eq!(
        ready, failed,
        "the half-installed SA is reported failed so the driver removes it"
    );
}
