//! Main and Aggressive Mode with signature authentication between two in-memory peers
//! (RFC 2409 §5.1, RFC 4754): RSA 2048/3072, ECDSA P-256 (with an intermediate CA) and P-384
//! succeed with address, FQDN, USER_FQDN and DN identities, and each certificate failure ends with its own named reason and notify.
//! Fixtures: tests/data/certs (made by its make.sh).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrovpn_ike::cert::{Cert, CertAuth, CertFailure, PrivateKey, WallClock};
use ferrovpn_ike::config::Phase1Auth;
use ferrovpn_ike::wire::{IdType, NotifyType};
use ferrovpn_ike::{ConnectionConfig, Event, Failure, IdValue};
use ferrovpn_tests::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/certs/");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}{name}")).unwrap()
}

fn certs(names: &[&str]) -> Vec<Cert> {
    names
        .iter()
        .flat_map(|n| Cert::from_pem_chain(&read(n)).unwrap())
        .collect()
}

/// 2027-06-01, inside every fixture's validity (2026-12 .. 2036-12).
const JUNE_2027: u64 = 1_811_808_000;
/// 2040-01-01, after every fixture expired.
const YEAR_2040: u64 = 2_208_988_800;

fn clock(unix: u64) -> WallClock {
    WallClock {
        at: Instant::now(),
        unix: Duration::from_secs(unix),
    }
}

/// Credentials from fixture files: `chain` (ours first), `key`, trusted `cas`.
fn auth(chain: &[&str], key: &str, cas: &[&str], unix: u64) -> Phase1Auth {
    let key = PrivateKey::from_pem(&read(key)).unwrap();
    Phase1Auth::Certificate(CertAuth::new(certs(chain), key, certs(cas), clock(unix)).unwrap())
}

fn pair(a: Phase1Auth, b: Phase1Auth) -> (ConnectionConfig, ConnectionConfig) {
    let (mut ca, mut cb) = (conn_a(), conn_b());
    // A different PSK on each side proves it plays no part.
    ca.psk = ferrovpn_ike::crypto::Secret::new(b"one".to_vec());
    cb.psk = ferrovpn_ike::crypto::Secret::new(b"two".to_vec());
    ca.auth = a;
    cb.auth = b;
    (ca, cb)
}

fn rsa(unix: u64) -> (ConnectionConfig, ConnectionConfig) {
    pair(
        auth(&["rsa-a.crt"], "rsa-a.key", &["ca.crt"], unix),
        auth(&["rsa-b.crt"], "rsa-b.key", &["ca.crt"], unix),
    )
}

fn ecdsa() -> (ConnectionConfig, ConnectionConfig) {
    pair(
        auth(
            &["ec-a.crt", "inter.crt"],
            "ec-a.key",
            &["ca.crt"],
            JUNE_2027,
        ),
        auth(
            &["ec-b.crt", "inter.crt"],
            "ec-b.key",
            &["ca.crt"],
            JUNE_2027,
        ),
    )
}

fn assert_up(p: &Pair) {
    assert!(
        p.ike_failures(Side::A).is_empty(),
        "A: {:?}",
        p.ike_failures(Side::A)
    );
    assert!(
        p.ike_failures(Side::B).is_empty(),
        "B: {:?}",
        p.ike_failures(Side::B)
    );
    assert_eq!(p.established(Side::A), 1);
    assert_eq!(p.established(Side::B), 1);
    assert_eq!(p.children(Side::A).len(), 1);
    assert_eq!(p.children(Side::B).len(), 1);
}

/// The certificate failure on `side`, which must be the only failure there.
fn cert_failure(p: &Pair, side: Side) -> CertFailure {
    match p.ike_failures(side).as_slice() {
        [Failure::Certificate(c)] => c.clone(),
        other => panic!("{side:?}: expected one certificate failure, got {other:?}"),
    }
}

/// Notifies that `side` received (the peer's report of the failure).
fn notifies_at(p: &Pair, side: Side) -> Vec<NotifyType> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::NotifyReceived { notify, .. } => Some(*notify),
            _ => None,
        })
        .collect()
}

fn wire_has_payload(p: &Pair, from: Side, payload_type: u8) -> bool {
    p.wire.iter().filter(|w| w.from == from).any(|w| {
        ferrovpn_ike::wire::Message::parse(&w.datagram.data).is_ok_and(|m| {
            m.payloads
                .iter()
                .any(|pl| pl.payload_type().0 == payload_type)
        })
    })
}

#[test]
fn rsa_2048_main_mode_authenticates_both_sides_with_signatures() {
    let (a, b) = rsa(JUNE_2027);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
    // Both sent CR payloads naming the CA they trust in MM3/MM4.
    assert!(wire_has_payload(&p, Side::A, 7));
    assert!(wire_has_payload(&p, Side::B, 7));
}

#[test]
fn ecdsa_p256_main_mode_with_an_intermediate_ca_authenticates() {
    let (a, b) = ecdsa();
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
}

#[test]
fn ecdsa_p384_and_rsa_3072_main_mode_authenticate() {
    for (k, method) in [("p384", 10), ("rsa3072", 3)] {
        let (a, b) = pair(
            auth(
                &[&format!("{k}-a.crt")],
                &format!("{k}-a.key"),
                &["ca.crt"],
                JUNE_2027,
            ),
            auth(
                &[&format!("{k}-b.crt")],
                &format!("{k}-b.key"),
                &["ca.crt"],
                JUNE_2027,
            ),
        );
        assert_eq!(a.auth.method(), method);
        let mut p = Pair::new(a, b);
        p.connect();
        assert_up(&p);
    }
}

#[test]
fn fqdn_and_distinguished_name_identities_match_the_certificate() {
    let (mut a, mut b) = rsa(JUNE_2027);
    a.local_id = IdValue::Fqdn("a.example.net".into());
    b.remote_id = IdValue::Fqdn("a.example.net".into());
    let dn_b = certs(&["rsa-b.crt"])[0].subject_der();
    b.local_id = IdValue::Other(IdType::DER_ASN1_DN, dn_b.clone());
    a.remote_id = IdValue::Other(IdType::DER_ASN1_DN, dn_b);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
}

#[test]
fn user_fqdn_identity_matches_the_email_subject_alt_name() {
    let (mut a, mut b) = ecdsa();
    a.local_id = IdValue::UserFqdn("a@example.net".into());
    b.remote_id = IdValue::UserFqdn("a@example.net".into());
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
}

#[test]
fn a_certificate_from_an_untrusted_ca_fails_as_untrusted_ca() {
    let (a, _) = rsa(JUNE_2027);
    let (_, b) = pair(
        auth(&["rsa-a.crt"], "rsa-a.key", &["ca.crt"], JUNE_2027),
        auth(&["rogue-b.crt"], "rogue-b.key", &["ca.crt"], JUNE_2027),
    );
    let mut p = Pair::new(a, b);
    p.connect();
    let f = cert_failure(&p, Side::A);
    assert_eq!(f.name(), "untrusted_ca");
    assert!(f.to_string().contains("Other Root CA"), "{f}");
    assert_eq!(p.established(Side::A), 0);
}

#[test]
fn the_responder_rejects_an_initiator_from_an_untrusted_ca_with_invalid_cert_authority() {
    let (_, b) = rsa(JUNE_2027);
    let (a, _) = pair(
        auth(&["rogue-b.crt"], "rogue-b.key", &["ca.crt"], JUNE_2027),
        auth(&["rsa-b.crt"], "rsa-b.key", &["ca.crt"], JUNE_2027),
    );
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(cert_failure(&p, Side::B).name(), "untrusted_ca");
    assert_eq!(p.established(Side::B), 0);
    assert!(notifies_at(&p, Side::A).contains(&NotifyType::INVALID_CERT_AUTHORITY));
}

#[test]
fn an_expired_certificate_fails_as_expired() {
    let (mut a, _) = rsa(YEAR_2040);
    let (_, b) = rsa(JUNE_2027);
    // B trusts its own clock; A's says 2040, when B's certificate has expired.
    a.auth = auth(&["rsa-a.crt"], "rsa-a.key", &["ca.crt"], YEAR_2040);
    let mut p = Pair::new(a, b);
    p.connect();
    let f = cert_failure(&p, Side::A);
    assert_eq!(f.name(), "certificate_expired", "{f}");
    assert!(
        matches!(f, CertFailure::Expired { ref subject, .. } if subject.contains("b.example.net"))
    );
}

#[test]
fn a_certificate_not_yet_valid_fails_as_not_yet_valid() {
    // A's clock says 2020, before every fixture's notBefore.
    let (_, b) = rsa(JUNE_2027);
    let (mut a, _) = rsa(JUNE_2027);
    a.auth = auth(&["rsa-a.crt"], "rsa-a.key", &["ca.crt"], 1_577_836_800);
    let mut p = Pair::new(a, b);
    p.connect();
    let f = cert_failure(&p, Side::A);
    assert_eq!(f.name(), "certificate_not_yet_valid", "{f}");
    assert_eq!(p.established(Side::A), 0);
}

#[test]
fn an_identity_not_in_the_certificate_fails_as_identity_not_in_certificate() {
    let (mut a, mut b) = rsa(JUNE_2027);
    b.local_id = IdValue::Fqdn("c.example.net".into());
    a.remote_id = IdValue::Fqdn("c.example.net".into());
    let mut p = Pair::new(a, b);
    p.connect();
    let f = cert_failure(&p, Side::A);
    assert_eq!(f.name(), "identity_not_in_certificate");
    assert!(f.to_string().contains("c.example.net"), "{f}");
}

#[test]
fn a_signature_by_another_key_fails_as_signature_invalid() {
    let (a, _) = rsa(JUNE_2027);
    // B presents its certificate but signs with A's key.
    let wrong = Arc::new(CertAuth {
        chain: certs(&["rsa-b.crt"]),
        key: PrivateKey::from_pem(&read("rsa-a.key")).unwrap(),
        cas: certs(&["ca.crt"]),
        clock: clock(JUNE_2027),
        crls: Default::default(),
        alternates: Vec::new(),
    });
    let (_, mut b) = rsa(JUNE_2027);
    b.auth = Phase1Auth::Certificate(wrong);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(cert_failure(&p, Side::A).name(), "signature_invalid");
    assert_eq!(p.established(Side::A), 0);
}

#[test]
fn a_peer_that_sends_no_certificate_fails_as_no_certificate() {
    let (a, b) = rsa(JUNE_2027);
    let none = Arc::new(CertAuth {
        chain: Vec::new(),
        key: PrivateKey::from_pem(&read("rsa-a.key")).unwrap(),
        cas: certs(&["ca.crt"]),
        clock: clock(JUNE_2027),
        crls: Default::default(),
        alternates: Vec::new(),
    });
    let mut a = a;
    a.auth = Phase1Auth::Certificate(none);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(cert_failure(&p, Side::B).name(), "no_certificate");
    assert!(notifies_at(&p, Side::A).contains(&NotifyType::CERTIFICATE_UNAVAILABLE));
}

#[test]
fn psk_on_one_side_and_certificates_on_the_other_choose_no_proposal() {
    let (a, _) = rsa(JUNE_2027);
    let mut p = Pair::new(a, conn_b());
    p.connect();
    let f = p.ike_failures(Side::B);
    assert!(
        !f.is_empty()
            && f.iter()
                .all(|f| matches!(f, Failure::NoProposalChosen { .. })),
        "{f:?}"
    );
    assert!(f[0].to_string().contains("auth method 3"), "{}", f[0]);
}

#[test]
fn credentials_reject_a_key_that_is_not_the_certificates() {
    let key = PrivateKey::from_pem(&read("rsa-b.key")).unwrap();
    let err = CertAuth::new(certs(&["rsa-a.crt"]), key, certs(&["ca.crt"]), clock(0)).unwrap_err();
    assert_eq!(err, ferrovpn_ike::cert::CredentialError::KeyMismatch);
    assert!(PrivateKey::from_pem(b"not a key").is_err());
    assert!(Cert::from_pem_chain(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    .is_err());
}

fn aggressive(
    (mut a, mut b): (ConnectionConfig, ConnectionConfig),
) -> (ConnectionConfig, ConnectionConfig) {
    // No allow_aggressive_psk: with signatures nothing crackable is sent in the clear.
    a.mode = ferrovpn_ike::Phase1Mode::Aggressive;
    b.mode = ferrovpn_ike::Phase1Mode::Aggressive;
    (a, b)
}

#[test]
fn rsa_aggressive_mode_authenticates_both_sides_without_the_psk_opt_in() {
    let (a, b) = aggressive(rsa(JUNE_2027));
    assert!(!b.allow_aggressive_psk);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
}

#[test]
fn ecdsa_aggressive_mode_with_an_intermediate_ca_authenticates() {
    let (a, b) = aggressive(ecdsa());
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
}

#[test]
fn aggressive_mode_names_an_untrusted_responder_and_a_forged_initiator() {
    // The initiator checks SIG_R in AM2.
    let (a, b) = aggressive(pair(
        auth(&["rsa-a.crt"], "rsa-a.key", &["ca.crt"], JUNE_2027),
        auth(&["rogue-b.crt"], "rogue-b.key", &["ca.crt"], JUNE_2027),
    ));
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(cert_failure(&p, Side::A).name(), "untrusted_ca");
    // The responder checks SIG_I in AM3: the initiator signs with a key not its certificate's.
    let forged = Arc::new(CertAuth {
        chain: certs(&["rsa-a.crt"]),
        key: PrivateKey::from_pem(&read("rsa-b.key")).unwrap(),
        cas: certs(&["ca.crt"]),
        clock: clock(JUNE_2027),
        crls: Default::default(),
        alternates: Vec::new(),
    });
    let (mut a, b) = aggressive(rsa(JUNE_2027));
    a.auth = Phase1Auth::Certificate(forged);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(cert_failure(&p, Side::B).name(), "signature_invalid");
    assert_eq!(p.established(Side::B), 0);
}

fn crls(names: &[&str]) -> Vec<ferrovpn_ike::crl::Crl> {
    names
        .iter()
        .flat_map(|n| ferrovpn_ike::crl::Crl::from_file_bytes(&read(n)).unwrap())
        .collect()
}

#[test]
fn a_peer_certificate_on_our_crl_fails_as_revoked_and_a_new_crl_applies_without_a_restart() {
    let (a, b) = rsa(JUNE_2027);
    let Phase1Auth::Certificate(creds) = &a.auth else {
        unreachable!()
    };
    let creds = Arc::clone(creds);
    creds.crls.set(crls(&["ca-revokes-rsa-b.crl"]));
    let mut p = Pair::new(a.clone(), b.clone());
    p.connect();
    let f = cert_failure(&p, Side::A);
    assert_eq!(f.name(), "revoked", "{f}");
    assert!(
        matches!(&f, CertFailure::Revoked { subject, issuer, .. }
            if subject.contains("b.example.net") && issuer.contains("Test Root CA")),
        "{f}"
    );
    assert_eq!(p.established(Side::A), 0);
    // The CA publishes a CRL without B: the same credentials accept B again.
    creds.crls.set(crls(&["ca-empty.crl"]));
    let mut p = Pair::new(a, b);
    p.connect();
    assert_up(&p);
}

#[test]
fn the_responder_refuses_an_initiator_whose_intermediate_ca_is_revoked() {
    let (a, b) = ecdsa();
    let Phase1Auth::Certificate(creds) = &b.auth else {
        unreachable!()
    };
    creds.crls.set(crls(&["ca-revokes-inter.crl"]));
    let mut p = Pair::new(a, b);
    p.connect();
    let f = cert_failure(&p, Side::B);
    assert_eq!(f.name(), "revoked");
    assert!(f.to_string().contains("Test Intermediate CA"), "{f}");
    assert_eq!(p.established(Side::B), 0);
}

#[test]
fn a_remote_dn_pattern_accepts_any_peer_it_matches_and_refuses_others() {
    let dn = |s: &str| {
        IdValue::Other(
            IdType::DER_ASN1_DN,
            ferrovpn_ike::cert::parse_dn(s).unwrap(),
        )
    };
    for (pattern, ok) in [
        ("C=XX, O=ferrovpn test, CN=*", true),
        ("C=XX, O=*, CN=b.example.net", true),
        ("C=XX, O=elsewhere, CN=*", false),
        ("C=XX, CN=*", false),
    ] {
        let (mut a, mut b) = rsa(JUNE_2027);
        b.local_id = dn("C=XX, O=ferrovpn test, CN=b.example.net");
        a.remote_id = dn(pattern);
        let mut p = Pair::new(a, b);
        p.connect();
        if ok {
            assert_up(&p);
        } else {
            assert!(
                matches!(
                    p.ike_failures(Side::A).as_slice(),
                    [Failure::IdentityMismatch { .. }]
                ),
                "{pattern}: {:?}",
                p.ike_failures(Side::A)
            );
        }
    }
}

/// A with its default certificate from the test root and, when `alternate`, a second one from
/// the other root; B trusts only the other root (its CR names it).
fn cr_pair(alternate: bool) -> (ConnectionConfig, ConnectionConfig) {
    let alternates = if alternate {
        vec![ferrovpn_ike::cert::LocalCert {
            chain: certs(&["other-a.crt"]),
            key: PrivateKey::from_pem(&read("other-a.key")).unwrap(),
        }]
    } else {
        Vec::new()
    };
    let a = CertAuth::with_alternates(
        certs(&["rsa-a.crt"]),
        PrivateKey::from_pem(&read("rsa-a.key")).unwrap(),
        alternates,
        certs(&["ca.crt"]),
        clock(JUNE_2027),
    )
    .unwrap();
    pair(
        Phase1Auth::Certificate(a),
        auth(&["rsa-b.crt"], "rsa-b.key", &["other-ca.crt"], JUNE_2027),
    )
}

fn unmatched_crs(p: &Pair, side: Side) -> Vec<Vec<String>> {
    p.events(side)
        .iter()
        .filter_map(|e| match e {
            Event::CertificateRequestUnmatched { requested, .. } => Some(requested.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_peers_cr_chooses_which_of_our_certificates_we_send() {
    for aggressive_mode in [false, true] {
        let (a, b) = cr_pair(true);
        let (a, b) = if aggressive_mode {
            aggressive((a, b))
        } else {
            (a, b)
        };
        let mut p = Pair::new(a, b);
        p.connect();
        assert_up(&p);
        assert!(unmatched_crs(&p, Side::A).is_empty());
    }
}

#[test]
fn when_no_certificate_matches_the_peers_cr_the_default_is_sent_and_that_is_recorded() {
    let (a, b) = cr_pair(false);
    let mut p = Pair::new(a, b);
    p.connect();
    assert_eq!(cert_failure(&p, Side::B).name(), "untrusted_ca");
    let unmatched = unmatched_crs(&p, Side::A);
    assert!(
        unmatched
            .first()
            .is_some_and(|r| r.len() == 1 && r[0].contains("Other Root CA")),
        "{unmatched:?}"
    );
}

#[test]
fn every_certificate_of_a_connection_needs_its_own_key_of_the_same_kind() {
    let alt = |cert: &str, key: &str| ferrovpn_ike::cert::LocalCert {
        chain: certs(&[cert]),
        key: PrivateKey::from_pem(&read(key)).unwrap(),
    };
    let new = |alternate| {
        CertAuth::with_alternates(
            certs(&["rsa-a.crt"]),
            PrivateKey::from_pem(&read("rsa-a.key")).unwrap(),
            vec![alternate],
            certs(&["ca.crt"]),
            clock(JUNE_2027),
        )
    };
    assert_eq!(
        new(alt("other-a.crt", "rsa-a.key")).unwrap_err(),
        ferrovpn_ike::cert::CredentialError::KeyMismatch
    );
    assert!(matches!(
        new(alt("ec-a.crt", "ec-a.key")).unwrap_err(),
        ferrovpn_ike::cert::CredentialError::KindMismatch(..)
    ));
}
