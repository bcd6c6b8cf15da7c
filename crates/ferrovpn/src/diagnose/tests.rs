//! One test per diagnosis, each from the event trail the daemon records in that situation.

use super::*;
use crate::snapshot::{FailureRecord, Record, Sample, What};

const CK: &str = "1111111111111111_i 0000000000000000_r";
const CK2: &str = "1111111111111111_i 2222222222222222_r";
const CK_PEER: &str = "3333333333333333_i 4444444444444444_r";

fn conn() -> ConnSnapshot {
    ConnSnapshot {
        name: "site-b".into(),
        local_addr: "192.0.2.1".into(),
        remote_addr: "192.0.2.2".into(),
        initiator: true,
        local_id: "192.0.2.1".into(),
        remote_id: "192.0.2.2".into(),
        ike_proposals: "aes256-sha256-modp2048".into(),
        esp_proposals: "aes128gcm16".into(),
        selectors: vec!["198.51.100.0/24 <=> 203.0.113.0/24".into()],
        esp_lifetime_s: 3600,
        give_up_ms: 3000,
        ..ConnSnapshot::default()
    }
}

fn rec(t_ms: u64, cookies: &str, what: What) -> Record {
    Record {
        t_ms,
        unix_ms: 1_795_392_000_000 + t_ms,
        cookies: cookies.into(),
        message_id: 0,
        what,
    }
}

fn msg(t_ms: u64, cookies: &str, name: &str, sent: bool, udp4500: bool) -> Record {
    rec(
        t_ms,
        cookies,
        What::Message {
            name: name.into(),
            sent,
            payloads: "[ ]".into(),
            retransmission: false,
            udp4500,
            peer: "192.0.2.2:500".into(),
        },
    )
}

fn failed(t_ms: u64, cookies: &str, failure: FailureRecord) -> Record {
    rec(t_ms, cookies, What::IkeFailed { failure })
}

fn no_response(message: &str) -> FailureRecord {
    FailureRecord::NoResponse {
        message: message.into(),
        tries: 2,
    }
}

fn established(t_ms: u64, cookies: &str, spi: u32) -> Vec<Record> {
    vec![
        rec(
            t_ms,
            cookies,
            What::IkeEstablished {
                initiator: true,
                nat_floated: false,
                proposal: "aes256-sha256-modp2048".into(),
            },
        ),
        rec(
            t_ms + 10,
            cookies,
            What::ChildEstablished {
                spi_in: spi,
                spi_out: spi + 1,
                selectors: "198.51.100.0/24 <=> 203.0.113.0/24".into(),
                udp_encapsulated: false,
            },
        ),
    ]
}

fn up(mut c: ConnSnapshot, spi: u32) -> ConnSnapshot {
    c.ike_sas.push(IkeSaSnapshot {
        cookies: CK2.into(),
        initiator: true,
        state: "established".into(),
        age_s: 60,
        nat_floated: false,
    });
    c.ipsec_sas.push(IpsecSaSnapshot {
        spi_in: spi,
        spi_out: spi + 1,
        ..IpsecSaSnapshot::default()
    });
    c
}

fn run(c: &ConnSnapshot, now_ms: u64) -> Vec<Verdict> {
    diagnose(c, now_ms, &Options::default())
}

fn codes(vs: &[Verdict]) -> Vec<&str> {
    vs.iter().map(|v| v.code.as_str()).collect()
}

fn text(vs: &[Verdict]) -> String {
    render::verdicts(vs)
}

#[test]
fn no_reply_to_mm1_means_unreachable_or_udp_500_blocked() {
    let mut c = conn();
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        msg(1000, CK, "MM1", true, false),
        msg(2000, CK, "MM1", true, false),
        failed(3000, CK, no_response("MM1")),
    ];
    let v = run(&c, 4000);
    assert_eq!(codes(&v), ["unreachable"]);
    assert_eq!(v[0].severity, Severity::Problem);
    let t = text(&v);
    assert!(t.contains("no reply to MM1 from 192.0.2.2"), "{t}");
    assert!(t.contains("UDP 500 is blocked"), "{t}");
    assert!(
        t.contains(&format!("MM1 with cookies {CK} sent 3 times")),
        "{t}"
    );
    assert!(t.contains("nothing at all has been received"), "{t}");
    assert!(t.contains("tcpdump"), "{t}");
}

#[test]
fn no_reply_to_am1_in_aggressive_mode() {
    let mut c = conn();
    c.aggressive = true;
    c.history = vec![
        msg(0, CK, "AM1", true, false),
        failed(3000, CK, no_response("AM1")),
    ];
    let v = run(&c, 4000);
    assert_eq!(codes(&v), ["unreachable"]);
    assert!(v[0].verdict.contains("no reply to AM1"));
}

#[test]
fn silence_after_the_float_to_4500_means_udp_4500_blocked() {
    let mut c = conn();
    c.nat_force = true;
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        msg(10, CK2, "MM2", false, false),
        msg(20, CK2, "MM3", true, false),
        msg(30, CK2, "MM4", false, false),
        msg(40, CK2, "MM5", true, true),
        msg(1040, CK2, "MM5", true, true),
        failed(3040, CK2, no_response("MM5")),
    ];
    let v = run(&c, 4000);
    assert_eq!(codes(&v), ["udp4500-blocked"]);
    let t = text(&v);
    assert!(t.contains("UDP 4500 is blocked"), "{t}");
    assert!(t.contains("received MM4 on UDP 500"), "{t}");
    assert!(t.contains("sent MM5 on UDP 4500"), "{t}");
}

#[test]
fn silence_after_mm5_on_500_points_at_the_psk() {
    let mut c = conn();
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        msg(10, CK2, "MM2", false, false),
        msg(20, CK2, "MM3", true, false),
        msg(30, CK2, "MM4", false, false),
        msg(40, CK2, "MM5", true, false),
        failed(3040, CK2, no_response("MM5")),
    ];
    let v = run(&c, 4000);
    assert_eq!(codes(&v), ["psk-mismatch"]);
    assert!(v[0].verdict.contains("stopped answering after MM5"));
}

#[test]
fn no_proposal_chosen_as_responder_shows_both_offers() {
    let mut c = conn();
    c.initiator = false;
    c.history = vec![
        msg(0, CK, "MM1", false, false),
        failed(
            5,
            CK,
            FailureRecord::NoProposalChosen {
                ours: "aes256-sha256-modp2048".into(),
                theirs: "aes128-sha1-modp2048".into(),
            },
        ),
    ];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["no-proposal-chosen"]);
    let t = text(&v);
    assert!(t.contains("no phase 1 (IKE) proposal in common"), "{t}");
    assert!(t.contains("ours:   aes256-sha256-modp2048"), "{t}");
    assert!(t.contains("peer's: aes128-sha1-modp2048"), "{t}");
}

#[test]
fn no_proposal_chosen_from_the_peer_shows_our_offer() {
    let mut c = conn();
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        failed(
            5,
            CK,
            FailureRecord::PeerNotify {
                notify: "NO-PROPOSAL-CHOSEN".into(),
            },
        ),
    ];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["no-proposal-chosen"]);
    let t = text(&v);
    assert!(t.contains("ours:   aes256-sha256-modp2048"), "{t}");
    assert!(t.contains("peer's: not known here"), "{t}");
}

#[test]
fn no_proposal_chosen_in_quick_mode_shows_esp_offers() {
    let mut c = conn();
    c.history = established(0, CK2, 7)[..1].to_vec();
    c.history.push(rec(
        100,
        CK2,
        What::ChildFailed {
            failure: FailureRecord::NoProposalChosen {
                ours: "aes128gcm16".into(),
                theirs: "aes256-sha256".into(),
            },
        },
    ));
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["no-proposal-chosen"]);
    assert!(v[0].verdict.contains("Quick Mode (ESP)"));
    assert!(text(&v).contains("peer's: aes256-sha256"));
}

#[test]
fn psk_mismatch_seen_by_the_responder() {
    let mut c = conn();
    c.initiator = false;
    c.history = vec![
        msg(0, CK2, "MM5", false, false),
        failed(
            1,
            CK2,
            FailureRecord::AuthenticationFailed {
                detail: "MM5 does not decrypt to valid payloads (bad padding)".into(),
            },
        ),
    ];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["psk-mismatch"]);
    let t = text(&v);
    assert!(t.contains("pre-shared key mismatch"), "{t}");
    assert!(t.contains("MM5 does not decrypt"), "{t}");
}

#[test]
fn psk_mismatch_seen_by_the_initiator_as_a_notify() {
    for r in [
        failed(
            50,
            CK2,
            FailureRecord::PeerNotify {
                notify: "AUTHENTICATION-FAILED".into(),
            },
        ),
        rec(
            50,
            CK2,
            What::Notify {
                notify: "INVALID-HASH-INFORMATION".into(),
                authenticated: false,
            },
        ),
    ] {
        let mut c = conn();
        c.history = vec![msg(0, CK2, "MM5", true, false), r];
        let v = run(&c, 1000);
        assert_eq!(codes(&v), ["psk-mismatch"]);
        assert!(text(&v).contains("could not verify our MM5"));
    }
}

#[test]
fn with_certificates_a_peers_authentication_notify_means_it_refused_our_certificate() {
    for notify in [
        "AUTHENTICATION-FAILED",
        "INVALID-CERT-AUTHORITY",
        "INVALID-SIGNATURE",
    ] {
        for r in [
            failed(
                50,
                CK2,
                FailureRecord::PeerNotify {
                    notify: notify.into(),
                },
            ),
            rec(
                50,
                CK2,
                What::Notify {
                    notify: notify.into(),
                    authenticated: true,
                },
            ),
        ] {
            let protected = matches!(
                r.what,
                What::Notify {
                    authenticated: true,
                    ..
                } | What::IkeFailed { .. }
            );
            let mut c = conn();
            c.certificate = true;
            c.history = vec![msg(0, CK2, "MM5", true, false), r];
            let v = run(&c, 1000);
            assert_eq!(codes(&v), ["peer-refused-certificate"], "{}", text(&v));
            let t = text(&v);
            assert!(t.contains("did not accept our certificate"), "{t}");
            assert!(t.contains(notify), "{t}");
            assert!(!t.contains("pre-shared key"), "{t}");
            assert_eq!(
                t.contains("protected with the phase 1 keys"),
                protected,
                "{t}"
            );
        }
    }
}

#[test]
fn a_peer_refusing_our_default_certificate_after_an_unmatched_cr_is_named_for_the_cr() {
    let mut c = conn();
    c.certificate = true;
    c.history = vec![
        rec(
            0,
            CK2,
            What::CertRequestUnmatched {
                requested: vec!["CN=Other Root CA,O=elsewhere,C=XX".into()],
            },
        ),
        msg(0, CK2, "MM5", true, false),
        failed(
            50,
            CK2,
            FailureRecord::PeerNotify {
                notify: "INVALID-CERT-AUTHORITY".into(),
            },
        ),
    ];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["no-certificate-matches-cr"], "{}", text(&v));
    let t = text(&v);
    assert!(t.contains("no certificate matches the peer's CR"), "{t}");
    assert!(t.contains("Other Root CA"), "{t}");
}

#[test]
fn with_certificates_silence_after_mm5_is_not_called_a_psk_mismatch() {
    let mut c = conn();
    c.certificate = true;
    c.history = vec![
        msg(0, CK2, "MM5", true, false),
        failed(
            9000,
            CK2,
            FailureRecord::NoResponse {
                message: "MM5".into(),
                tries: 3,
            },
        ),
    ];
    let v = run(&c, 10_000);
    assert_eq!(codes(&v), ["silent-after-certificate"], "{}", text(&v));
    let t = text(&v);
    assert!(t.contains("our certificate and signature"), "{t}");
    assert!(!t.contains("pre-shared"), "{t}");
}

#[test]
fn identity_mismatch_names_both_identities() {
    let mut c = conn();
    c.history = vec![failed(
        10,
        CK2,
        FailureRecord::IdentityMismatch {
            expected: "fqdn:b.example".into(),
            received: "192.0.2.2".into(),
        },
    )];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["identity-mismatch"]);
    assert!(v[0].verdict.contains("authenticated as 192.0.2.2"));
    assert!(v[0].verdict.contains("expects fqdn:b.example"));
    assert!(v[0].next[0].contains("remote_id = \"192.0.2.2\""));
    assert!(!text(&v).contains("unauthenticated"), "{}", text(&v));
}

#[test]
fn identity_mismatch_in_an_am1_we_answered_is_unauthenticated_and_asks_to_verify_first() {
    let mut c = conn();
    c.initiator = false;
    c.history = vec![
        msg(0, CK_PEER, "AM1", false, false),
        failed(
            1,
            CK_PEER,
            FailureRecord::IdentityMismatch {
                expected: "fqdn:b.example".into(),
                received: "192.0.2.2".into(),
            },
        ),
    ];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["identity-mismatch"]);
    assert!(text(&v).contains("rests on unauthenticated messages"));
    assert!(v[0].next[0].starts_with("first confirm on the peer itself"));
}

#[test]
fn selectors_refused_shows_both_sets() {
    let mut c = conn();
    c.history = established(0, CK2, 7)[..1].to_vec();
    c.history.push(rec(
        100,
        CK2,
        What::ChildFailed {
            failure: FailureRecord::InvalidSelectors {
                ours: "198.51.100.0/24 <=> 203.0.113.0/24".into(),
                theirs: "203.0.113.0/25 <=> 198.51.100.0/24".into(),
            },
        },
    ));
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["selectors-refused"]);
    let t = text(&v);
    assert!(t.contains("INVALID-ID-INFORMATION"), "{t}");
    assert!(
        t.contains("ours:   198.51.100.0/24 <=> 203.0.113.0/24"),
        "{t}"
    );
    assert!(
        t.contains("peer's: 203.0.113.0/25 <=> 198.51.100.0/24"),
        "{t}"
    );

    // The initiator only hears the notify on its established ISAKMP SA.
    let mut c = conn();
    c.history = established(0, CK2, 7)[..1].to_vec();
    c.history.push(rec(
        100,
        CK2,
        What::Notify {
            notify: "INVALID-ID-INFORMATION".into(),
            authenticated: true,
        },
    ));
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["selectors-refused"]);
    assert!(text(&v).contains("ours:   198.51.100.0/24 <=> 203.0.113.0/24"));
}

fn with_samples(c: &mut ConnSnapshot, f: impl Fn(u64) -> (u64, u64)) {
    c.samples = (0..=20)
        .map(|s| {
            let (encaps, decaps) = f(s);
            Sample {
                t_ms: 1000 * s,
                encaps,
                decaps,
            }
        })
        .collect();
}

#[test]
fn encaps_rising_decaps_flat_means_esp_not_arriving() {
    let mut c = up(conn(), 7);
    c.history = established(0, CK2, 7);
    with_samples(&mut c, |s| (10 * s, 40));
    let v = run(&c, 20_000);
    assert_eq!(codes(&v), ["esp-not-arriving"]);
    let t = text(&v);
    assert!(
        t.contains("ESP (IP protocol 50) from 192.0.2.2 is not arriving"),
        "{t}"
    );
    assert!(t.contains("0 decapsulated for 20s"), "{t}");
    assert!(t.contains("nat_traversal = \"force\""), "{t}");
    assert!(t.contains("run ferrovpn diagnose on the peer"), "{t}");

    // Already UDP-encapsulated: then it is UDP 4500 that is lost.
    c.ipsec_sas[0].udp_encapsulated = true;
    let t = text(&run(&c, 20_000));
    assert!(
        t.contains("ESP-in-UDP (UDP 4500)") && t.contains("open UDP 4500"),
        "{t}"
    );
}

#[test]
fn decaps_rising_encaps_flat_is_the_mirror_case() {
    let mut c = up(conn(), 7);
    c.history = established(0, CK2, 7);
    with_samples(&mut c, |s| (5, 10 * s));
    let v = run(&c, 20_000);
    assert_eq!(codes(&v), ["esp-not-sent"]);
    assert!(v[0].verdict.contains("nothing is sent back"));
}

#[test]
fn esp_both_ways_or_idle_is_healthy() {
    for f in [|s: u64| (10 * s, 10 * s), |_| (3, 3)] {
        let mut c = up(conn(), 7);
        c.history = established(0, CK2, 7);
        with_samples(&mut c, f);
        let v = run(&c, 20_000);
        assert_eq!(codes(&v), ["healthy"]);
        assert_eq!(v[0].severity, Severity::Ok);
        assert!(v[0].verdict.starts_with("healthy"));
    }
}

#[test]
fn too_few_samples_is_no_esp_verdict() {
    let mut c = up(conn(), 7);
    c.history = established(0, CK2, 7);
    with_samples(&mut c, |s| (10 * s, 0));
    c.samples.truncate(5);
    assert_eq!(codes(&run(&c, 5_000)), ["healthy"]);
}

#[test]
fn both_sides_initiating_is_simultaneous() {
    let mut c = up(conn(), 7);
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        msg(3, CK_PEER, "MM1", false, false),
        msg(5, CK_PEER, "MM2", true, false),
        msg(6, CK, "MM2", false, false),
        msg(9, CK_PEER, "MM3", false, false),
    ];
    c.history.extend(established(200, CK2, 7));
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["simultaneous"]);
    let t = text(&v);
    assert!(
        t.contains(&format!("we sent MM1/AM1 with cookies {CK}")),
        "{t}"
    );
    assert!(
        t.contains(&format!("the peer sent MM1/AM1 with cookies {CK_PEER}")),
        "{t}"
    );
    assert!(t.contains("start = \"respond\""), "{t}");

    // The peer's re-authentication (a new Main Mode) 3 s after ours was established is not.
    let mut c = up(conn(), 7);
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        msg(6, CK, "MM2", false, false),
    ];
    c.history.extend(established(20, CK, 7));
    c.history.extend([
        msg(3_000, CK_PEER, "MM1", false, false),
        msg(3_005, CK_PEER, "MM2", true, false),
        msg(3_009, CK_PEER, "MM3", false, false),
    ]);
    assert_eq!(codes(&run(&c, 4_000)), ["healthy"]);

    // Our own rekey after the peer's old negotiation is not simultaneous.
    let mut c = up(conn(), 7);
    c.history = vec![
        msg(0, CK_PEER, "MM1", false, false),
        msg(100_000, CK, "MM1", true, false),
    ];
    assert_eq!(codes(&run(&c, 101_000)), ["healthy"]);
}

#[test]
fn two_negotiations_in_flight_now_is_simultaneous() {
    let mut c = conn();
    for (ck, i, st) in [(CK, true, "MM3 sent"), (CK_PEER, false, "MM4 sent")] {
        c.ike_sas.push(IkeSaSnapshot {
            cookies: ck.into(),
            initiator: i,
            state: st.into(),
            age_s: 1,
            nat_floated: false,
        });
    }
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["simultaneous"]);
    // A responder that only sent MM2 has no evidence the peer asked for it.
    c.ike_sas[1].state = "MM2 sent".into();
    assert_eq!(codes(&run(&c, 1000)), ["negotiating"]);
}

/// A working tunnel (ESP both ways) with spoofed MM1s around it, as a flood leaves it.
fn working_tunnel_with_spoofed_noise() -> ConnSnapshot {
    let mut c = up(conn(), 7);
    with_samples(&mut c, |t| (t * 5, t * 5));
    let mut h = vec![
        msg(100, CK, "MM1", true, false),
        msg(110, CK, "MM2", false, false),
    ];
    h.extend(established(200, CK, 7));
    // Spoofed MM1s claiming the peer's address: answered with MM2, never heard of again.
    for (i, t) in (1..=5u64).map(|i| (i, 1000 * i)) {
        let ck = format!("{i:016x}_i 9999999999999999_r");
        h.push(msg(t, &ck, "MM1", false, false));
        h.push(msg(t + 1, &ck, "MM2", true, false));
        h.push(failed(
            t + 60_000,
            &ck,
            FailureRecord::Abandoned {
                after: "MM2".into(),
            },
        ));
    }
    // One whose offer matched nothing, and a plain (unauthenticated) notify.
    h.push(msg(
        7000,
        "aaaaaaaaaaaaaaaa_i 0000000000000000_r",
        "MM1",
        false,
        false,
    ));
    h.push(failed(
        7001,
        "aaaaaaaaaaaaaaaa_i 0000000000000000_r",
        FailureRecord::NoProposalChosen {
            ours: "aes256-sha256-modp2048".into(),
            theirs: "3des-md5-modp768".into(),
        },
    ));
    h.push(rec(
        7002,
        "bbbbbbbbbbbbbbbb_i 0000000000000000_r",
        What::Notify {
            notify: "AUTHENTICATION-FAILED".into(),
            authenticated: false,
        },
    ));
    c.history = h;
    c.unauthenticated_requests = 6;
    c
}

#[test]
fn spoofed_phase_1_requests_on_a_working_tunnel_are_a_note_never_a_verdict() {
    let c = working_tunnel_with_spoofed_noise();
    let v = run(&c, 70_000);
    assert_eq!(codes(&v), ["healthy"], "{}", text(&v));
    assert_eq!(v[0].severity, Severity::Ok);
    let t = text(&v);
    assert!(
        t.contains("note:     6 unauthenticated Phase 1 requests claiming to come from the peer's address 192.0.2.2 never authenticated — possibly spoofed"),
        "{t}"
    );
    assert!(!t.contains("start = \"respond\""), "{t}");
}

#[test]
fn a_spoofed_mm1_next_to_our_own_is_not_simultaneous() {
    let mut c = up(conn(), 7);
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        msg(3, CK_PEER, "MM1", false, false),
        msg(5, CK_PEER, "MM2", true, false),
        msg(6, CK, "MM2", false, false),
    ];
    c.history.extend(established(200, CK, 7));
    c.ike_sas.push(IkeSaSnapshot {
        cookies: CK_PEER.into(),
        initiator: false,
        state: "MM2 sent".into(),
        age_s: 1,
        nat_floated: false,
    });
    c.unauthenticated_requests = 1;
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["healthy"], "{}", text(&v));
    assert!(text(&v).contains("1 unauthenticated Phase 1 request claiming"));
}

#[test]
fn unauthenticated_evidence_alone_says_so_when_the_tunnel_is_down() {
    let mut c = conn();
    c.initiator = false;
    c.history = vec![
        msg(0, CK_PEER, "MM1", false, false),
        failed(
            1,
            CK_PEER,
            FailureRecord::NoProposalChosen {
                ours: "aes256-sha256-modp2048".into(),
                theirs: "aes128-sha1-modp2048".into(),
            },
        ),
    ];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["no-proposal-chosen"]);
    assert!(text(&v).contains("rests on unauthenticated messages"));
    // No configuration change on unauthenticated evidence alone: the first step is to verify.
    assert!(
        v[0].next[0].starts_with("first confirm on the peer itself"),
        "{}",
        text(&v)
    );
}

#[test]
fn silence_after_mm5_with_the_udp_4500_probe_answered_is_a_psk_mismatch() {
    let mut c = conn();
    c.history = vec![
        msg(0, CK2, "MM1", true, false),
        msg(5, CK2, "MM2", false, false),
        msg(10, CK2, "MM3", true, false),
        msg(15, CK2, "MM4", false, false),
        msg(20, CK2, "MM5", true, true),
        failed(
            3020,
            CK2,
            FailureRecord::SilentAfterMm5 {
                tries: 2,
                probe: "answered".into(),
            },
        ),
    ];
    let v = run(&c, 4000);
    assert_eq!(codes(&v), ["psk-mismatch"], "{}", text(&v));
    let t = text(&v);
    assert!(t.contains("UDP 4500 passes"), "{t}");
    assert!(!t.contains("UDP 4500 is blocked"), "{t}");

    let FailureRecord::SilentAfterMm5 { probe, .. } = (match &mut c.history[5].what {
        What::IkeFailed { failure } => failure,
        _ => unreachable!(),
    }) else {
        unreachable!()
    };
    *probe = "unanswered".into();
    let v = run(&c, 4000);
    assert_eq!(codes(&v), ["udp4500-blocked"], "{}", text(&v));
    assert!(text(&v).contains("got no answer either"));
}

#[test]
fn a_message_the_peer_sent_that_we_cannot_process_is_named() {
    let mut c = conn();
    c.initiator = false;
    c.history = established(0, CK2, 7)[..1].to_vec();
    c.history.push(rec(
        100,
        CK2,
        What::Unprocessable {
            message: "QM1".into(),
            reason: "QM1 cannot be processed: bad proposal syntax: proposal without transforms"
                .into(),
            notify: Some("BAD-PROPOSAL-SYNTAX".into()),
            remote_access: false,
        },
    ));
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["unprocessable"], "{}", text(&v));
    let t = text(&v);
    assert!(t.contains("proposal without transforms"), "{t}");
    assert!(
        t.contains("answered with a protected BAD-PROPOSAL-SYNTAX"),
        "{t}"
    );
}

#[test]
fn a_remote_access_peer_is_named() {
    let mut c = conn();
    c.initiator = false;
    c.history = vec![failed(
        1,
        CK_PEER,
        FailureRecord::NoProposalChosen {
            ours: "aes256-sha256-modp2048".into(),
            theirs: "aes256-sha256-modp2048 (auth method 65001: XAuth, remote access)".into(),
        },
    )];
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["remote-access"], "{}", text(&v));
    assert!(text(&v).contains("expects XAuth/Mode Config — remote access"));

    c.history = established(0, CK2, 7)[..1].to_vec();
    c.history.push(rec(
        100,
        CK2,
        What::Unprocessable {
            message: "AM3".into(),
            reason: "the peer repeats AM3, which needs no answer: it waits for something ferrovpn never sends".into(),
            notify: None,
            remote_access: true,
        },
    ));
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["remote-access"], "{}", text(&v));
    assert!(text(&v).contains("waits for something ferrovpn never sends"));
}

#[test]
fn dpd_declared_the_peer_dead() {
    let mut c = conn();
    c.history = established(0, CK2, 7);
    c.history.extend([
        msg(5000, CK2, "INFO", false, false),
        msg(8000, CK2, "INFO", true, false),
        msg(9000, CK2, "INFO", true, false),
        rec(11_000, CK2, What::PeerDead),
        rec(
            11_000,
            "",
            What::ChildDeleted {
                spi_in: 7,
                spi_out: 8,
                reason: "peer dead (DPD)".into(),
            },
        ),
    ]);
    let v = run(&c, 12_000);
    assert_eq!(codes(&v), ["peer-dead"]);
    let t = text(&v);
    assert!(
        t.contains("dead peer detection declared 192.0.2.2 dead"),
        "{t}"
    );
    assert!(t.contains("after 2 INFO (R-U-THERE)"), "{t}");
    assert!(
        t.contains("last message received from the peer: INFO"),
        "{t}"
    );

    // Re-initiation failing as well: both verdicts, newest first.
    c.history.extend([
        msg(11_100, CK, "MM1", true, false),
        failed(14_100, CK, no_response("MM1")),
    ]);
    assert_eq!(codes(&run(&c, 15_000)), ["unreachable", "peer-dead"]);
}

#[test]
fn sa_expired_without_rekey() {
    let mut c = conn();
    c.esp_lifetime_s = 60;
    c.history = established(0, CK2, 7);
    c.history.extend([
        rec(
            30_000,
            CK2,
            What::ChildFailed {
                failure: no_response("QM1"),
            },
        ),
        rec(
            60_000,
            "",
            What::ChildDeleted {
                spi_in: 7,
                spi_out: 8,
                reason: "lifetime expired".into(),
            },
        ),
    ]);
    let v = run(&c, 61_000);
    let cs = codes(&v);
    assert!(cs.contains(&"expired-without-rekey"), "{cs:?}");
    let t = text(&v);
    assert!(
        t.contains("IPsec SA spi in 00000007 expired without being rekeyed"),
        "{t}"
    );
    assert!(t.contains("rekey attempt failed"), "{t}");
    assert!(t.contains("no response to QM1"), "{t}");
}

#[test]
fn expiry_after_a_successful_rekey_is_normal() {
    let mut c = up(conn(), 9);
    c.history = established(0, CK2, 7);
    c.history.push(rec(
        30_000,
        CK2,
        What::ChildEstablished {
            spi_in: 9,
            spi_out: 10,
            selectors: String::new(),
            udp_encapsulated: false,
        },
    ));
    c.history.push(rec(
        60_000,
        "",
        What::ChildDeleted {
            spi_in: 7,
            spi_out: 8,
            reason: "lifetime expired".into(),
        },
    ));
    assert_eq!(codes(&run(&c, 61_000)), ["healthy"]);
}

#[test]
fn failures_before_the_tunnel_came_up_are_overcome() {
    let mut c = up(conn(), 7);
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        failed(3000, CK, no_response("MM1")),
    ];
    c.history.extend(established(10_000, CK2, 7));
    assert_eq!(codes(&run(&c, 20_000)), ["healthy"]);
}

#[test]
fn a_terminated_connection_is_held_not_waiting() {
    // After `ferrovpn terminate` nothing is pending: diagnose says how to bring it back.
    let mut c = conn();
    c.held = true;
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["held"]);
    assert_eq!(v[0].severity, Severity::Ok);
    assert!(
        text(&v).contains(&format!("ferrovpn initiate {}", c.name)),
        "{}",
        text(&v)
    );
}

#[test]
fn quiet_connections() {
    let mut c = conn();
    c.initiator = false;
    let v = run(&c, 1000);
    assert_eq!(codes(&v), ["waiting"]);
    assert_eq!(v[0].severity, Severity::Ok);
    c.ike_sas.push(IkeSaSnapshot {
        cookies: CK.into(),
        initiator: false,
        state: "MM4 sent".into(),
        age_s: 10,
        nat_floated: false,
    });
    let v = run(&c, 10_000);
    assert_eq!(codes(&v), ["stalled"]);
    assert!(v[0].verdict.contains("the peer's MM5 never arrived"));
}

#[test]
fn responder_answering_retransmitted_mm1_means_our_replies_are_lost() {
    let mut c = conn();
    c.initiator = false;
    c.history = vec![
        msg(0, CK, "MM1", false, false),
        msg(1, CK2, "MM2", true, false),
        rec(
            1000,
            CK2,
            What::Message {
                name: "MM2".into(),
                sent: true,
                payloads: "[ SA V V ]".into(),
                retransmission: true,
                udp4500: false,
                peer: "192.0.2.2:500".into(),
            },
        ),
    ];
    c.ike_sas.push(IkeSaSnapshot {
        cookies: CK2.into(),
        initiator: false,
        state: "MM2 sent".into(),
        age_s: 5,
        nat_floated: false,
    });
    let v = run(&c, 5000);
    assert_eq!(codes(&v), ["stalled"]);
    let t = text(&v);
    assert!(t.contains("we answered with MM2 2 times"), "{t}");
    assert!(t.contains("MM1 received 1 time(s)"), "{t}");
    assert!(
        t.contains("UDP 500 is blocked from here to 192.0.2.2 (one-way)"),
        "{t}"
    );
}

#[test]
fn snapshot_round_trips_through_json_and_filters_by_name() {
    let mut c = conn();
    c.history = vec![failed(3000, CK, no_response("MM1"))];
    let s = Snapshot {
        now_ms: 4000,
        unix_ms: 0,
        connections: vec![
            c.clone(),
            ConnSnapshot {
                name: "other".into(),
                ..c
            },
        ],
        unclaimed: vec![],
        half_open: Default::default(),
    };
    let back: Snapshot = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    assert_eq!(diagnose_all(&back, None, &Options::default()).len(), 2);
    let only = diagnose_all(&back, Some("other"), &Options::default());
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].connection, "other");
    let h = render::history(&back, Some("site-b"), Some(2000));
    assert!(
        h.contains("connection site-b (192.0.2.1 -> 192.0.2.2): 1 event"),
        "{h}"
    );
    assert!(
        h.contains("IKE SA FAILED: no response to MM1 after 2 retransmissions"),
        "{h}"
    );
    assert!(render::history(&back, None, Some(500)).contains("0 events"));
}

#[test]
fn a_plain_notify_then_silence_is_explained_by_the_notify_not_as_unreachable() {
    let mut c = conn();
    c.history = vec![
        msg(0, CK, "MM1", true, false),
        rec(
            5,
            "1111111111111111_i 5555555555555555_r",
            What::Notify {
                notify: "NO-PROPOSAL-CHOSEN".into(),
                authenticated: false,
            },
        ),
        msg(1000, CK, "MM1", true, false),
        msg(2000, CK, "MM1", true, false),
        failed(3000, CK, no_response("MM1")),
    ];
    let v = run(&c, 4000);
    assert_eq!(codes(&v), ["no-proposal-chosen"], "{}", text(&v));
    assert!(text(&v).contains("rests on unauthenticated messages"));
}

fn with_half_open_drops(c: ConnSnapshot, last_drop_ms: u64) -> Snapshot {
    Snapshot {
        now_ms: 20_000,
        unix_ms: 0,
        connections: vec![c],
        unclaimed: vec![],
        half_open: crate::snapshot::HalfOpenSnapshot {
            limit: 16,
            dropped: 84,
            last_drop_ms: Some(last_drop_ms),
        },
    }
}

#[test]
fn a_responder_waiting_while_mm1_were_dropped_at_the_half_open_limit_is_told_so() {
    let c = ConnSnapshot {
        initiator: false,
        ..conn()
    };
    let v = diagnose_all(&with_half_open_drops(c, 19_000), None, &Options::default());
    assert_eq!(v[0].code, "half-open-limit", "{}", text(&v));
    assert_eq!(v[0].severity, Severity::Problem);
    assert!(
        text(&v).contains(
            "84 MM1/AM1 dropped since start (the last 1.0s ago) because max_half_open = 16"
        ),
        "{}",
        text(&v)
    );
    assert!(text(&v).contains("raise [daemon] max_half_open"));
}

#[test]
fn half_open_drops_next_to_a_working_tunnel_are_a_note_never_a_verdict() {
    let c = working_tunnel_with_spoofed_noise();
    let v = diagnose_all(&with_half_open_drops(c, 19_000), None, &Options::default());
    assert!(
        v.iter().all(|v| v.code != "half-open-limit"),
        "{}",
        text(&v)
    );
    assert!(v[0]
        .notes
        .iter()
        .any(|n| n.contains("84 MM1/AM1 dropped since start")));
}

#[test]
fn no_half_open_drops_no_word_about_them() {
    let c = ConnSnapshot {
        initiator: false,
        ..conn()
    };
    let mut s = with_half_open_drops(c, 0);
    s.half_open = Default::default();
    let v = diagnose_all(&s, None, &Options::default());
    assert!(!text(&v).contains("half-open"), "{}", text(&v));
}

#[test]
fn certificate_failures_are_named_with_their_evidence() {
    for (reason, code, detail) in [
        (
            "untrusted_ca",
            "untrusted-ca",
            "untrusted CA: no trusted certificate for issuer \"CN=Rogue CA\"",
        ),
        (
            "certificate_expired",
            "certificate-expired",
            "certificate \"CN=b\" expired",
        ),
        (
            "identity_not_in_certificate",
            "identity-not-in-certificate",
            "identity fqdn:c is not in certificate",
        ),
        (
            "no_certificate",
            "no-certificate",
            "peer sent no certificate",
        ),
        (
            "signature_invalid",
            "signature-invalid",
            "signature invalid: Rsa signature over the HASH does not verify",
        ),
        (
            "revoked",
            "revoked",
            "certificate \"CN=b\" (serial 00:de:b2) revoked by \"CN=Test Root CA\" at 1796620622 s since 1970 (CRL)",
        ),
    ] {
        let mut c = conn();
        c.history = vec![failed(
            10,
            CK2,
            FailureRecord::Certificate {
                reason: reason.into(),
                detail: detail.into(),
            },
        )];
        let v = run(&c, 1000);
        assert_eq!(codes(&v), [code]);
        assert!(v[0].verdict.contains(detail), "{}", v[0].verdict);
        assert!(!v[0].next.is_empty());
    }
}
