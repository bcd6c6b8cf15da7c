//! Failures of phase 1 authentication: pre-shared key, identity or certificate.

use super::evidence::{initiator_cookie, Facts};
use super::verdict::Verdict;
use crate::snapshot::What;

/// `psk-mismatch`: silence after MM5, our first encrypted message; `probe` as in the record.
pub(super) fn psk_silent(f: &Facts, probe: Option<String>) -> Verdict {
    let Facts { r, peer, .. } = *f;
    let mut v = f.problem(match probe.as_deref() {
            Some("answered") => format!(
                "pre-shared key (or identity) mismatch: {peer} answered MM1 and MM3 but not MM5 (our first encrypted message), while a fresh MM1 to its UDP 4500 was answered: UDP 4500 passes, so {peer} could not decrypt or verify MM5"
            ),
            _ => format!(
                "the peer answered MM1 and MM3 but stopped answering after MM5 (our first encrypted message): most likely the pre-shared keys differ and {peer} cannot decrypt MM5"
            ),
        });
    v.evidence.push(format!("cookies {}", r.cookies));
    v.evidence.extend(f.messages(8));
    if probe.as_deref() == Some("answered") {
        v.evidence.push(
            "probe: a fresh MM1 (own cookie) sent to the peer's UDP 4500 while MM5 went unanswered got an answer: UDP 4500 is not blocked".into(),
        );
    }
    v.next = vec![
        "compare the pre-shared key on both sides (psk / psk_file here); the peer's log should show a decryption or HASH failure for these cookies".into(),
        "if the keys are equal, check that the peer expects our identity (local_id here, ID payload in MM5)".into(),
    ];
    v
}

/// `psk-mismatch`: phase 1 authentication failed here or at the peer.
pub(super) fn psk(f: &Facts, ours_detail: Option<String>, notify: Option<String>) -> Verdict {
    let Facts { r, .. } = *f;
    let mut v = f.problem("pre-shared key mismatch: phase 1 authentication failed (MM5/MM6 do not decrypt or HASH_I/HASH_R do not verify)".into());
    if let Some(d) = ours_detail {
        v.evidence
            .push(format!("here: {d} (cookies {})", r.cookies));
    }
    if let Some(n) = notify {
        v.evidence.push(format!(
            "the peer sent {n} on cookies {}: it could not verify our MM5",
            r.cookies
        ));
    }
    v.evidence.extend(f.messages(6));
    v.next = vec![
        "set the same pre-shared key on both sides (psk / psk_file here), then watch `ferrovpn history`".into(),
        "if the keys are equal, the peer may pick another key by our identity: check local_id here against the peer's remote id".into(),
    ];
    v
}

/// `identity-mismatch`: the peer authenticated with another identity than configured.
pub(super) fn identity(f: &Facts, expected: String, received: String) -> Verdict {
    let mut v = f.problem(format!("identity mismatch: the peer authenticated as {received}, the configuration expects {expected}"));
    v.evidence.push(f.failure_with_cookies());
    let as_config = if received.parse::<std::net::IpAddr>().is_ok() || received.contains(':') {
        received.clone()
    } else if received.contains('@') {
        format!("userfqdn:{received}")
    } else {
        format!("fqdn:{received}")
    };
    v.next = vec![format!(
        "set remote_id = \"{as_config}\" here if that identity is right, or change the peer's local identity to {expected}"
    )];
    v
}

/// `identity-mismatch`: the peer refused our phase 1 identity (INVALID-ID-INFORMATION).
pub(super) fn id_info_phase1(f: &Facts) -> Verdict {
    let Facts { c, r, .. } = *f;
    let mut v = f.problem(
        "identity mismatch: the peer refused our phase 1 identity (INVALID-ID-INFORMATION)".into(),
    );
    v.evidence.push(format!(
        "INVALID-ID-INFORMATION on cookies {} before phase 1 completed; our identity: {}",
        r.cookies, c.local_id
    ));
    v.next = vec![format!(
        "make the peer's remote identity for us equal {} (local_id here)",
        c.local_id
    )];
    v
}

/// `untrusted-ca`, `certificate-expired`, `identity-not-in-certificate`, `no-certificate`,
/// `signature-invalid`, ...: we refused the peer's certificate or SIG (RFC 2409 §5.1), after
/// MM5/MM6 decrypted, so the evidence is authenticated by the DH exchange's keys.
pub(super) fn certificate(f: &Facts, reason: &str, detail: String) -> Verdict {
    let mut v = f.problem(format!("certificate authentication failed: {detail}"));
    v.evidence.push(f.failure_with_cookies());
    v.evidence.extend(f.messages(6));
    let next = match reason {
        "untrusted_ca" => "add the CA that issued the peer's certificate to ca_file here, or have the peer use a certificate from a CA in it",
        "certificate_expired" | "certificate_not_yet_valid" => "renew the peer's certificate (or the CA's), and check both clocks",
        "identity_not_in_certificate" => "the peer's ID must be its certificate's subject (dn:) or one of its subjectAltNames: fix the peer's local id or the certificate, and remote_id here",
        "no_certificate" => "the peer sent no certificate: configure one on the peer (strongSwan: local certs = ...; send_cert = always)",
        "revoked" => "the peer's certificate (or a CA above it) is on a CRL in crl_file here: issue the peer a new certificate; if the revocation is a mistake, publish a CRL without it (it is read again when the file changes)",
        "signature_invalid" => "the peer signed with a key that is not its certificate's: check the peer's private key matches the certificate it sends",
        _ => "check the peer's certificate chain: CAs need basicConstraints cA and keyCertSign, the peer's certificate digitalSignature",
    };
    v.next = vec![next.to_string()];
    v
}

/// `silent-after-certificate`: with certificates, the peer answered MM1 and MM3 but not MM5
/// (our ID, certificate chain and SIG); no notify says why.
pub(super) fn certificate_silent(f: &Facts, probe: Option<String>) -> Verdict {
    let Facts { c, r, peer, .. } = *f;
    let mut v = f.problem(format!("{peer} answered MM1 and MM3 but not MM5, which carries our certificate and signature: most likely it did not accept our certificate (untrusted CA, revoked, identity) and sent no notify"));
    v.evidence.push(format!("cookies {}", r.cookies));
    v.evidence.extend(f.messages(8));
    if probe.as_deref() == Some("answered") {
        v.evidence.push(
            "probe: a fresh MM1 to the peer's UDP 4500 was answered: UDP 4500 is not blocked"
                .into(),
        );
    }
    v.next = vec![
        "read the peer's log for these cookies (strongSwan: \"no issuer certificate found\", \"no trusted RSA public key found\", \"certificate was revoked\")".into(),
        format!("check that the peer trusts our CA and expects our identity {}", c.local_id),
    ];
    v
}

/// `peer-refused-certificate`: with certificates, the peer answered our proof (MM5/MM6, AM)
/// with an error notify: it did not accept our certificate, its chain or our SIG. The notify
/// may be forged (unencrypted), so it is evidence shown, with the messages around it.
pub(super) fn peer_refused_certificate(f: &Facts, notify: &str) -> Verdict {
    let Facts { peer, .. } = *f;
    let mut v = f.problem(format!("the peer did not accept our certificate: {peer} sent {notify} in answer to our certificate and signature"));
    v.evidence.push(refusal_evidence(f, notify));
    v.evidence.extend(f.messages(6));
    let next = match notify {
        "INVALID-CERT-AUTHORITY" => "the peer does not trust the CA that issued our certificate: add our CA (ca_file here) to the peer's CAs (strongSwan: /etc/swanctl/x509ca), or use a certificate from a CA it trusts",
        "CERTIFICATE-UNAVAILABLE" => "the peer got no certificate from us it could use: check cert_file here",
        _ => "the peer's log names the reason (strongSwan: \"no trusted RSA public key found\", \"constraint check failed\", \"certificate was revoked\"): check that it trusts our CA (ca_file here is ours; the peer needs our CA in its trust store), that our certificate is valid and not revoked, and that its remote identity for us is in our certificate (local_id here)",
    };
    v.next = vec![next.to_string()];
    v
}

/// The peer's refusal notify as evidence: whether it came protected with the phase 1 keys.
fn refusal_evidence(f: &Facts, notify: &str) -> String {
    let Facts { c, h, r, peer, .. } = *f;
    // A notify ends a negotiation only when it came protected (crates/ike informational.rs:
    // its HASH(1) verified with the phase 1 keys); a plain one is only recorded.
    let failed_by_it = matches!(
        &r.what,
        What::IkeFailed {
            failure: crate::snapshot::FailureRecord::PeerNotify { .. }
        }
    );
    let protected = h.iter().rev().find_map(|x| match &x.what {
        What::Notify {
            notify: n,
            authenticated,
        } if n == notify && initiator_cookie(&x.cookies) == initiator_cookie(&r.cookies) => {
            Some(*authenticated)
        }
        _ => None,
    });
    let how = match protected.or(failed_by_it.then_some(true)) {
        Some(true) => {
            "protected with the phase 1 keys (it came from the peer we exchanged keys with)"
        }
        Some(false) => "in plain text (anyone on the path could have sent it)",
        None => "recorded with this negotiation",
    };
    format!(
        "{notify} from {peer} on cookies {} before phase 1 completed, {how}; we had sent our certificate chain and SIG (identity {})",
        r.cookies, c.local_id
    )
}

/// The CA names of the peer's CR payloads that none of our certificates answered, recorded in
/// the negotiation of `r` (same initiator cookie).
pub(super) fn unmatched_cr(
    h: &[crate::snapshot::Record],
    r: &crate::snapshot::Record,
) -> Option<Vec<String>> {
    h.iter().rev().find_map(|x| match &x.what {
        What::CertRequestUnmatched { requested }
            if initiator_cookie(&x.cookies) == initiator_cookie(&r.cookies) =>
        {
            Some(requested.clone())
        }
        _ => None,
    })
}

/// `no-certificate-matches-cr`: the peer asked (CR payloads, RFC 2408 §3.10) for CAs that none
/// of our certificates chains to; we sent the default, and the peer refused it or went silent.
pub(super) fn no_certificate_matches_cr(
    f: &Facts,
    requested: Vec<String>,
    notify: Option<&str>,
) -> Verdict {
    let Facts { r, peer, .. } = *f;
    let mut v = f.problem(format!(
            "no certificate matches the peer's CR: {peer} asked for a certificate from {}, none of ours chains to it, and the peer did not accept our certificate (the default one we sent)",
            requested.join(" or ")
        ));
    if let Some(n) = notify {
        v.evidence.push(refusal_evidence(f, n));
    }
    v.evidence.push(format!(
        "the peer's CR payloads on cookies {} named: {}",
        r.cookies,
        requested.join("; ")
    ));
    v.evidence.push(f.failure_with_cookies());
    v.evidence.extend(f.messages(6));
    v.next = vec![
        "add a certificate from a CA the peer trusts to alt_certs here (it is sent when the peer's CR names its CA), or add our CA to the peer's trusted CAs".into(),
    ];
    v
}
