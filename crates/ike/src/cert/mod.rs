//! X.509 certificates for phase 1 signature authentication (RFC 2409 §5.1, RFC 4754 §6–§7):
//! our credentials, the trust store, path validation (RFC 5280 §6, the subset IKE peers use:
//! signatures, validity, basic constraints, key usage) and the SIG payload's signatures.
//! Parsing is x509-cert/der; signatures are rsa and p256/p384/p521 ecdsa. Sans-IO: the daemon
//! hands in PEM bytes and the wall-clock time anchor, this module reads no file and no clock.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use x509_cert::der::Encode;

use crate::crl::Crl;

/// CERT/CR encoding "X.509 Certificate - Signature" (RFC 2408 §3.9).
pub const X509_SIGNATURE: u8 = 4;

/// Longest chain we follow above the peer's certificate (intermediates plus the anchor).
const MAX_DEPTH: usize = 6;

mod dn;
mod key;
mod x509;

pub use dn::{dn_has_wildcard, dn_matches, dn_string, parse_dn, same_dn};
use key::PublicKey;
pub use key::{PrivateKey, SignatureKind};
pub use x509::Cert;

/// Why a peer's certificate or signature was not accepted; each has a stable name that
/// counters and `diagnose` use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertFailure {
    /// Signature authentication, but no CERT payload (X.509 signature) in MM5/MM6.
    NoCertificate,
    /// No configured CA issued the chain; `issuer` is the DN where the path ended.
    UntrustedCa {
        issuer: String,
    },
    /// Outside its validity period at the time of the exchange.
    Expired {
        subject: String,
        not_after: u64,
    },
    NotYetValid {
        subject: String,
        not_before: u64,
    },
    /// The peer's ID payload is not the certificate's subject nor one of its subjectAltNames.
    IdentityNotInCertificate {
        id: String,
        subject: String,
    },
    /// The SIG payload does not verify with the certificate's key (RFC 2409 §5.1).
    SignatureInvalid {
        detail: String,
    },
    /// A certificate of the chain is on a CRL its issuer signed (RFC 5280 §6.3); `serial`
    /// in hex, `revoked_at` in seconds since 1970.
    Revoked {
        subject: String,
        serial: String,
        issuer: String,
        revoked_at: u64,
    },
    /// Unparseable, a link whose signature fails, not a CA, wrong key usage, unsupported
    /// algorithm or critical extension.
    Invalid {
        detail: String,
    },
}

impl CertFailure {
    /// Stable machine name (counter label, `diagnose`).
    pub fn name(&self) -> &'static str {
        match self {
            CertFailure::NoCertificate => "no_certificate",
            CertFailure::UntrustedCa { .. } => "untrusted_ca",
            CertFailure::Expired { .. } => "certificate_expired",
            CertFailure::NotYetValid { .. } => "certificate_not_yet_valid",
            CertFailure::IdentityNotInCertificate { .. } => "identity_not_in_certificate",
            CertFailure::SignatureInvalid { .. } => "signature_invalid",
            CertFailure::Revoked { .. } => "revoked",
            CertFailure::Invalid { .. } => "certificate_invalid",
        }
    }
}

impl fmt::Display for CertFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertFailure::NoCertificate => write!(f, "peer sent no certificate"),
            CertFailure::UntrustedCa { issuer } => {
                write!(
                    f,
                    "untrusted CA: no trusted certificate for issuer \"{issuer}\""
                )
            }
            CertFailure::Expired { subject, not_after } => write!(
                f,
                "certificate \"{subject}\" expired (notAfter {not_after} s since 1970)"
            ),
            CertFailure::NotYetValid {
                subject,
                not_before,
            } => write!(
                f,
                "certificate \"{subject}\" not yet valid (notBefore {not_before} s since 1970)"
            ),
            CertFailure::IdentityNotInCertificate { id, subject } => write!(
                f,
                "identity {id} is not in certificate \"{subject}\" (subject or subjectAltName)"
            ),
            CertFailure::SignatureInvalid { detail } => write!(f, "signature invalid: {detail}"),
            CertFailure::Revoked {
                subject,
                serial,
                issuer,
                revoked_at,
            } => write!(
                f,
                "certificate \"{subject}\" (serial {serial}) revoked by \"{issuer}\" at {revoked_at} s since 1970 (CRL)"
            ),
            CertFailure::Invalid { detail } => write!(f, "certificate invalid: {detail}"),
        }
    }
}

fn invalid(detail: impl Into<String>) -> CertFailure {
    CertFailure::Invalid {
        detail: detail.into(),
    }
}

/// Errors loading credentials (the daemon names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("not a PEM certificate: {0}")]
    BadCertificate(String),
    #[error("not an RSA or EC (P-256/P-384/P-521) private key in PEM (PKCS#8, PKCS#1 or SEC1)")]
    BadKey,
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
    #[error("every certificate of a connection needs a key of the same kind (auth method): {0:?} and {1:?}")]
    KindMismatch(SignatureKind, SignatureKind),
}

/// The wall clock as the daemon saw it at one instant: the time of `ctx.now` is derived from
/// it, so certificate validity is checked against the exchange's time (fake in tests).
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    pub at: Instant,
    pub unix: Duration,
}

impl WallClock {
    /// The anchor for "now" (the daemon calls this once at start).
    pub fn now() -> Self {
        WallClock {
            at: Instant::now(),
            unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// Seconds since 1970 at `now`.
    pub fn unix_at(&self, now: Instant) -> Duration {
        match now.checked_duration_since(self.at) {
            Some(d) => self.unix.saturating_add(d),
            None => self.unix.saturating_sub(self.at.duration_since(now)),
        }
    }
}

/// The CRLs a connection checks, replaced as a whole when the daemon reads changed files
/// (`set`); validation reads one snapshot. Its Debug shows no content, so a CRL that changes
/// does not make `reload` see a changed connection.
#[derive(Default)]
pub struct CrlSet(RwLock<Arc<Vec<Crl>>>);

impl fmt::Debug for CrlSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrlSet")
    }
}

impl CrlSet {
    pub fn new(crls: Vec<Crl>) -> Self {
        CrlSet(RwLock::new(Arc::new(crls)))
    }

    /// Replaces every CRL (the daemon read the files again).
    pub fn set(&self, crls: Vec<Crl>) {
        let new = Arc::new(crls);
        match self.0.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    pub fn get(&self) -> Arc<Vec<Crl>> {
        match self.0.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// One more certificate of ours (chain and key), sent instead of the default one when the
/// peer's CR payloads ask for its CA.
#[derive(Debug)]
pub struct LocalCert {
    pub chain: Vec<Cert>,
    pub key: PrivateKey,
}

/// How the peer's CR payloads chose the certificate we send (RFC 2408 §3.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrMatch {
    /// The peer sent no CR: our default certificate.
    NoRequest,
    /// A certificate whose chain names a CA the peer asked for.
    Matched,
    /// The peer asked only for CAs none of ours chains to: the default all the same.
    Unmatched,
}

/// Our certificate (with any intermediates to send) and its private key, and the CAs we
/// trust for the peer's.
#[derive(Debug)]
pub struct CertAuth {
    /// Our certificate first, then intermediates, as sent in CERT payloads.
    pub chain: Vec<Cert>,
    pub key: PrivateKey,
    /// Trust anchors: the CAs that may issue the peer's chain.
    pub cas: Vec<Cert>,
    pub clock: WallClock,
    /// Revocation lists of the CAs (and intermediates) of the peer's chain.
    pub crls: CrlSet,
    /// Our other certificates, chosen by the peer's CR payloads (`choose`).
    pub alternates: Vec<LocalCert>,
}

impl CertAuth {
    /// Checks that `key` belongs to the first certificate of `chain`.
    pub fn new(
        chain: Vec<Cert>,
        key: PrivateKey,
        cas: Vec<Cert>,
        clock: WallClock,
    ) -> Result<Arc<Self>, CredentialError> {
        Self::with_alternates(chain, key, Vec::new(), cas, clock)
    }

    /// As `new`, with more certificates of ours (each key must belong to its certificate and
    /// be of the default key's kind: the auth method is negotiated before the choice).
    pub fn with_alternates(
        chain: Vec<Cert>,
        key: PrivateKey,
        alternates: Vec<LocalCert>,
        cas: Vec<Cert>,
        clock: WallClock,
    ) -> Result<Arc<Self>, CredentialError> {
        let first = chain.first().ok_or(CredentialError::NoCertificate)?;
        if first.key != key.public() {
            return Err(CredentialError::KeyMismatch);
        }
        for a in &alternates {
            let first = a.chain.first().ok_or(CredentialError::NoCertificate)?;
            if first.key != a.key.public() {
                return Err(CredentialError::KeyMismatch);
            }
            if a.key.kind() != key.kind() {
                return Err(CredentialError::KindMismatch(key.kind(), a.key.kind()));
            }
        }
        Ok(Arc::new(CertAuth {
            chain,
            key,
            cas,
            clock,
            crls: CrlSet::default(),
            alternates,
        }))
    }

    /// The certificate chain and key to send, given the CA names of the peer's CR payloads:
    /// the default when it names none of ours or sent none, else the first (default first)
    /// whose chain has a certificate issued by a CA it asked for.
    pub fn choose(&self, requested: &[Vec<u8>]) -> (&[Cert], &PrivateKey, CrMatch) {
        if requested.is_empty() {
            return (&self.chain, &self.key, CrMatch::NoRequest);
        }
        let answers = |chain: &[Cert]| {
            chain.iter().any(|c| {
                let issuer = c.issuer().to_der().unwrap_or_default();
                requested.iter().any(|r| same_dn(r, &issuer))
            })
        };
        if answers(&self.chain) {
            return (&self.chain, &self.key, CrMatch::Matched);
        }
        match self.alternates.iter().find(|a| answers(&a.chain)) {
            Some(a) => (&a.chain, &a.key, CrMatch::Matched),
            None => (&self.chain, &self.key, CrMatch::Unmatched),
        }
    }

    pub fn kind(&self) -> SignatureKind {
        self.key.kind()
    }

    /// The CR payloads' data we send: the DER subject of each CA we trust (RFC 2408 §3.10).
    pub fn requested_cas(&self) -> Vec<Vec<u8>> {
        self.cas.iter().map(Cert::subject_der).collect()
    }

    /// Validates the peer's certificates (CERT payloads, end entity first or anywhere) up to a
    /// trusted CA at unix time `now` (RFC 5280 §6.1 subset), and returns the end entity.
    pub fn verify_peer(&self, certs: &[&[u8]], now: Duration) -> Result<Cert, CertFailure> {
        let parsed: Vec<Cert> = certs
            .iter()
            .map(|d| Cert::from_der(d))
            .collect::<Result<_, _>>()?;
        // The end entity: the one that issued none of the others (the first when all agree).
        let leaf = parsed
            .iter()
            .find(|c| c.basic_ca != Some(true))
            .or_else(|| parsed.first())
            .ok_or(CertFailure::NoCertificate)?
            .clone();
        leaf.check_time(now)?;
        if leaf.key_usage.is_some_and(|k| !k.digital_signature()) {
            return Err(invalid(format!(
                "\"{}\" may not sign (keyUsage without digitalSignature)",
                leaf.subject()
            )));
        }
        let mut current = leaf.clone();
        for _ in 0..MAX_DEPTH {
            if let Some(ca) = self
                .cas
                .iter()
                .find(|ca| ca.cert.tbs_certificate.subject == *current.issuer())
            {
                if ca.issued(&current) != Some(true) {
                    return Err(invalid(format!(
                        "signature of \"{}\" does not verify with CA \"{}\"",
                        current.subject(),
                        ca.subject()
                    )));
                }
                ca.check_time(now)?;
                ca.check_ca()?;
                self.check_revoked(&current, ca)?;
                return Ok(leaf);
            }
            let next = parsed
                .iter()
                .find(|p| p.der != current.der && p.issued(&current).is_some());
            let Some(next) = next else {
                return Err(CertFailure::UntrustedCa {
                    issuer: current.issuer().to_string(),
                });
            };
            if next.issued(&current) != Some(true) {
                return Err(invalid(format!(
                    "signature of \"{}\" does not verify with intermediate \"{}\"",
                    current.subject(),
                    next.subject()
                )));
            }
            next.check_time(now)?;
            next.check_ca()?;
            self.check_revoked(&current, next)?;
            current = next.clone();
        }
        Err(invalid("certificate chain too long"))
    }

    /// Is `child` on a CRL that `issuer` signed (RFC 5280 §6.3.3)? A CRL whose signature does
    /// not verify with the issuer's key is not used. A CRL past its nextUpdate still revokes
    /// what it lists, and a certificate it does not list is accepted, as strongSwan does
    /// without `strictcrlpolicy` ("certificate status is unknown, crl is stale").
    fn check_revoked(&self, child: &Cert, issuer: &Cert) -> Result<(), CertFailure> {
        let serial = child.cert.tbs_certificate.serial_number.as_bytes();
        for crl in self.crls.get().iter() {
            if crl.issuer() != &issuer.cert.tbs_certificate.subject {
                continue;
            }
            let (tbs, alg, sig) = crl.signed();
            if !issuer.key.verify_x509(&alg, tbs, sig) {
                continue;
            }
            if let Some(r) = crl.revocation_of(serial) {
                return Err(CertFailure::Revoked {
                    subject: child.subject(),
                    serial: hex_serial(serial),
                    issuer: issuer.subject(),
                    revoked_at: r.date,
                });
            }
        }
        Ok(())
    }
}

/// A serial number as strongSwan and OpenSSL print it: hex bytes joined by colons.
fn hex_serial(serial: &[u8]) -> String {
    serial
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Verifies the peer's SIG over its HASH_I/HASH_R with its validated certificate.
pub fn verify_signature(
    peer: &Cert,
    kind: SignatureKind,
    hash: &[u8],
    sig: &[u8],
) -> Result<(), CertFailure> {
    peer.key
        .verify_hash(kind, hash, sig)
        .map_err(|detail| CertFailure::SignatureInvalid { detail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{IdType, IdValue};

    const RSA_A: &[u8] = include_bytes!("../../../../tests/data/certs/rsa-a.crt");

    #[test]
    fn a_dn_written_as_strongswan_does_names_the_certificate_subject() {
        let cert = Cert::from_pem_chain(RSA_A).unwrap().remove(0);
        let dn = parse_dn("C=XX, O=ferrovpn test, CN=a.example.net").unwrap();
        assert!(cert.names(&IdValue::Other(IdType::DER_ASN1_DN, dn)));
        let other = parse_dn("C=XX, O=ferrovpn test, CN=b.example.net").unwrap();
        assert!(!cert.names(&IdValue::Other(IdType::DER_ASN1_DN, other)));
        // The reverse order is another name.
        let reversed = parse_dn("CN=a.example.net, O=ferrovpn test, C=XX").unwrap();
        assert!(!cert.names(&IdValue::Other(IdType::DER_ASN1_DN, reversed)));
        assert!(parse_dn("not a dn").is_err());
        assert!(parse_dn("").is_err());
    }

    const EC_B: &[u8] = include_bytes!("../../../../tests/data/certs/ec-b.crt");
    const INTER: &[u8] = include_bytes!("../../../../tests/data/certs/inter.crt");
    const CA: &[u8] = include_bytes!("../../../../tests/data/certs/ca.crt");
    const EC_A_KEY: &[u8] = include_bytes!("../../../../tests/data/certs/ec-a.key");
    const EC_A: &[u8] = include_bytes!("../../../../tests/data/certs/ec-a.crt");
    /// 2027-06-01.
    const JUNE_2027: Duration = Duration::from_secs(1_811_808_000);

    fn trust() -> CertAuth {
        let key = PrivateKey::from_pem(EC_A_KEY).unwrap();
        let ours = Cert::from_pem_chain(EC_A).unwrap();
        let cas = Cert::from_pem_chain(CA).unwrap();
        Arc::try_unwrap(CertAuth::new(ours, key, cas, WallClock::now()).unwrap()).unwrap()
    }

    fn der(pem: &[u8]) -> Vec<u8> {
        Cert::from_pem_chain(pem).unwrap().remove(0).der().to_vec()
    }

    #[test]
    fn a_chain_validates_through_the_intermediate_in_any_order() {
        let t = trust();
        let (leaf, inter) = (der(EC_B), der(INTER));
        let got = t.verify_peer(&[&leaf, &inter], JUNE_2027).unwrap();
        assert!(got.subject().contains("b.example.net"));
        let got = t.verify_peer(&[&inter, &leaf], JUNE_2027).unwrap();
        assert!(got.subject().contains("b.example.net"));
    }

    #[test]
    fn a_missing_intermediate_is_an_untrusted_issuer() {
        let t = trust();
        let leaf = der(EC_B);
        let err = t.verify_peer(&[&leaf], JUNE_2027).unwrap_err();
        assert_eq!(err.name(), "untrusted_ca");
        assert!(err.to_string().contains("Test Intermediate CA"), "{err}");
    }

    #[test]
    fn validity_is_checked_at_the_given_time() {
        let t = trust();
        let (leaf, inter) = (der(EC_B), der(INTER));
        let early = Duration::from_secs(1_577_836_800); // 2020
        let err = t.verify_peer(&[&leaf, &inter], early).unwrap_err();
        assert_eq!(err.name(), "certificate_not_yet_valid");
        let late = Duration::from_secs(2_208_988_800); // 2040
        assert_eq!(
            t.verify_peer(&[&leaf, &inter], late).unwrap_err().name(),
            "certificate_expired"
        );
    }

    #[test]
    fn an_end_entity_cannot_act_as_a_ca() {
        // ec-a (cA false) as the only trust anchor of a chain it did not issue: untrusted; and a
        // CA certificate without cA cannot be an issuer even when named so.
        let mut t = trust();
        t.cas = Cert::from_pem_chain(EC_A).unwrap();
        let (leaf, inter) = (der(EC_B), der(INTER));
        assert_eq!(
            t.verify_peer(&[&leaf, &inter], JUNE_2027)
                .unwrap_err()
                .name(),
            "untrusted_ca"
        );
        let ee = Cert::from_pem_chain(EC_A).unwrap().remove(0);
        assert!(ee.check_ca().is_err());
        assert!(Cert::from_pem_chain(INTER).unwrap()[0].check_ca().is_ok());
    }

    #[test]
    fn an_empty_or_blank_pem_file_has_no_certificate_not_a_panic() {
        for blank in [&b""[..], b"\n", b"\r\n\n", b"  \n"] {
            assert_eq!(
                Cert::from_pem_chain(blank).unwrap_err(),
                CredentialError::NoCertificate
            );
        }
    }

    #[test]
    fn garbage_in_a_cert_payload_is_an_invalid_certificate_not_a_panic() {
        let t = trust();
        for bad in [
            &b""[..],
            &b"\x30\x82\xff\xff"[..],
            &[0x30, 0x03, 0x02, 0x01, 0x00][..],
        ] {
            assert_eq!(
                t.verify_peer(&[bad], JUNE_2027).unwrap_err().name(),
                "certificate_invalid"
            );
        }
    }

    #[test]
    fn subject_alt_names_name_the_certificate() {
        let cert = Cert::from_pem_chain(RSA_A).unwrap().remove(0);
        assert!(cert.names(&IdValue::Fqdn("A.example.net".into())));
        assert!(cert.names(&IdValue::UserFqdn("a@example.net".into())));
        assert!(cert.names(&IdValue::Ipv4([192, 0, 2, 1].into())));
        assert!(!cert.names(&IdValue::Ipv4([192, 0, 2, 2].into())));
        assert!(!cert.names(&IdValue::Fqdn("b.example.net".into())));
    }

    fn with_crls(files: &[&str]) -> CertAuth {
        let t = trust();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/certs/");
        let crls = files
            .iter()
            .flat_map(|f| {
                Crl::from_file_bytes(&std::fs::read(format!("{dir}{f}")).unwrap()).unwrap()
            })
            .collect();
        t.crls.set(crls);
        t
    }

    #[test]
    fn a_certificate_on_its_issuers_crl_is_revoked_with_serial_issuer_and_date() {
        let t = with_crls(&["ca-revokes-rsa-b.crl"]);
        let b = der(include_bytes!("../../../../tests/data/certs/rsa-b.crt"));
        let err = t.verify_peer(&[&b], JUNE_2027).unwrap_err();
        let CertFailure::Revoked {
            subject,
            serial,
            issuer,
            revoked_at,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(err.name(), "revoked");
        assert!(subject.contains("b.example.net"), "{subject}");
        assert!(issuer.contains("Test Root CA"), "{issuer}");
        assert!(serial.contains(':') && *revoked_at > 1_790_000_000, "{err}");
        // rsa-a is not on it.
        assert!(t.verify_peer(&[&der(RSA_A)], JUNE_2027).is_ok());
    }

    #[test]
    fn a_revoked_intermediate_revokes_the_chain_below_it() {
        let t = with_crls(&["ca-revokes-inter.crl"]);
        let (leaf, inter) = (der(EC_B), der(INTER));
        let err = t.verify_peer(&[&leaf, &inter], JUNE_2027).unwrap_err();
        assert_eq!(err.name(), "revoked");
        assert!(err.to_string().contains("Test Intermediate CA"), "{err}");
        let t = with_crls(&["ca-empty.crl"]);
        assert!(t.verify_peer(&[&leaf, &inter], JUNE_2027).is_ok());
    }

    #[test]
    fn a_stale_crl_still_revokes_what_it_lists_and_accepts_the_rest() {
        let t = with_crls(&["ca-stale.crl"]);
        let b = der(include_bytes!("../../../../tests/data/certs/rsa-b.crt"));
        assert!(t.crls.get()[0].next_update().unwrap() < JUNE_2027);
        assert_eq!(
            t.verify_peer(&[&b], JUNE_2027).unwrap_err().name(),
            "revoked"
        );
        assert!(t.verify_peer(&[&der(RSA_A)], JUNE_2027).is_ok());
    }

    #[test]
    fn a_crl_whose_signature_does_not_verify_is_not_used() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/certs/");
        let pem = std::fs::read(format!("{dir}ca-revokes-rsa-b.crl")).unwrap();
        let (_, mut bytes) = x509_cert::der::pem::decode_vec(&pem).unwrap();
        // The signature is the last bytes of the DER: flip one.
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let t = trust();
        t.crls.set(vec![Crl::from_der(&bytes).unwrap()]);
        let b = der(include_bytes!("../../../../tests/data/certs/rsa-b.crt"));
        assert!(t.verify_peer(&[&b], JUNE_2027).is_ok());
        // The DER form of a file is read too; garbage is an error, not a panic.
        assert_eq!(Crl::from_file_bytes(&bytes).unwrap().len(), 1);
        for bad in [
            &b""[..],
            b"\x30\x82\xff\xff",
            b"-----BEGIN X509 CRL-----\nAAAA\n",
            b"-----BEGIN CERTIFICATE-----\n",
        ] {
            assert!(Crl::from_file_bytes(bad).is_err());
        }
    }

    #[test]
    fn a_dn_pattern_matches_any_value_where_it_has_a_wildcard_and_nothing_else() {
        let dn = |s: &str| parse_dn(s).unwrap();
        let subject = dn("C=XX, O=ferrovpn test, CN=a.example.net");
        let pattern = dn("C=XX, O=ferrovpn test, CN=*");
        assert!(dn_has_wildcard(&pattern));
        assert!(!dn_has_wildcard(&subject));
        assert!(dn_matches(&pattern, &subject));
        assert!(dn_matches(&dn("C=*, O=*, CN=*"), &subject));
        assert!(dn_matches(
            &dn("c=xx, o=FERROVPN TEST, cn=A.example.net"),
            &subject
        ));
        // Another value, another type, another number or order of RDNs: no match.
        assert!(!dn_matches(&dn("C=XX, O=elsewhere, CN=*"), &subject));
        assert!(!dn_matches(&dn("C=XX, OU=ferrovpn test, CN=*"), &subject));
        assert!(!dn_matches(&dn("C=XX, CN=*"), &subject));
        assert!(!dn_matches(
            &dn("C=XX, O=ferrovpn test, CN=*, OU=*"),
            &subject
        ));
        assert!(!dn_matches(&dn("CN=*, O=ferrovpn test, C=XX"), &subject));
        // Only a whole value is a wildcard.
        assert!(!dn_matches(
            &dn("C=XX, O=ferrovpn test, CN=*.example.net"),
            &subject
        ));
        assert!(!dn_matches(b"garbage", &subject));
        assert!(!dn_matches(&pattern, b"garbage"));
    }
}
