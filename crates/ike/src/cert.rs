//! X.509 certificates for phase 1 signature authentication (RFC 2409 §5.1, RFC 4754 §6–§7):
//! our credentials, the trust store, path validation (RFC 5280 §6, the subset IKE peers use:
//! signatures, validity, basic constraints, key usage) and the SIG payload's signatures.
//! Parsing is x509-cert/der; signatures are rsa and p256/p384/p521 ecdsa. Sans-IO: the daemon
//! hands in PEM bytes and the wall-clock time anchor, this module reads no file and no clock.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p521::elliptic_curve::sec1::ToEncodedPoint;
use rand::{CryptoRng, RngCore};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::crl::Crl;
use crate::wire::{attr, IdType, IdValue};

/// CERT/CR encoding "X.509 Certificate - Signature" (RFC 2408 §3.9).
pub const X509_SIGNATURE: u8 = 4;

/// Longest chain we follow above the peer's certificate (intermediates plus the anchor).
const MAX_DEPTH: usize = 6;

const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const OID_SUBJECT_KEY_ID: &str = "2.5.29.14";
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";

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

/// The signature kinds of phase 1 (auth methods: RFC 2409 App. A, RFC 4754 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    Rsa,
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
}

impl SignatureKind {
    /// The Authentication Method attribute value.
    pub fn auth_method(self) -> u16 {
        match self {
            SignatureKind::Rsa => attr::auth_method::RSA_SIG,
            SignatureKind::EcdsaP256 => 9,
            SignatureKind::EcdsaP384 => 10,
            SignatureKind::EcdsaP521 => 11,
        }
    }

    pub fn from_auth_method(m: u16) -> Option<Self> {
        match m {
            attr::auth_method::RSA_SIG => Some(SignatureKind::Rsa),
            9 => Some(SignatureKind::EcdsaP256),
            10 => Some(SignatureKind::EcdsaP384),
            11 => Some(SignatureKind::EcdsaP521),
            _ => None,
        }
    }
}

/// A private key for the SIG payload. The RustCrypto key types wipe themselves on drop.
pub enum PrivateKey {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({:?}, <redacted>)", self.kind())
    }
}

impl PrivateKey {
    /// A PEM private key: PKCS#8 (RSA or EC), PKCS#1 RSA, or SEC1 EC.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CredentialError> {
        let s = std::str::from_utf8(pem).map_err(|_| CredentialError::BadKey)?;
        if let Ok(k) =
            RsaPrivateKey::from_pkcs8_pem(s).or_else(|_| RsaPrivateKey::from_pkcs1_pem(s))
        {
            return Ok(PrivateKey::Rsa(Box::new(k)));
        }
        if let Ok(k) =
            p256::SecretKey::from_pkcs8_pem(s).or_else(|_| p256::SecretKey::from_sec1_pem(s))
        {
            return Ok(PrivateKey::P256(k.into()));
        }
        if let Ok(k) =
            p384::SecretKey::from_pkcs8_pem(s).or_else(|_| p384::SecretKey::from_sec1_pem(s))
        {
            return Ok(PrivateKey::P384(k.into()));
        }
        if let Ok(k) =
            p521::SecretKey::from_pkcs8_pem(s).or_else(|_| p521::SecretKey::from_sec1_pem(s))
        {
            let sk = p521::ecdsa::SigningKey::from_bytes(&k.to_bytes())
                .map_err(|_| CredentialError::BadKey)?;
            return Ok(PrivateKey::P521(sk));
        }
        Err(CredentialError::BadKey)
    }

    /// The auth method this key signs with.
    pub fn kind(&self) -> SignatureKind {
        match self {
            PrivateKey::Rsa(_) => SignatureKind::Rsa,
            PrivateKey::P256(_) => SignatureKind::EcdsaP256,
            PrivateKey::P384(_) => SignatureKind::EcdsaP384,
            PrivateKey::P521(_) => SignatureKind::EcdsaP521,
        }
    }

    fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            PrivateKey::P384(k) => PublicKey::P384(*k.verifying_key()),
            PrivateKey::P521(k) => PublicKey::P521(p521::ecdsa::VerifyingKey::from(k)),
        }
    }

    /// The SIG payload over HASH_I/HASH_R (RFC 2409 §5.1): RSA as PKCS#1 v1.5 without a
    /// DigestInfo, blinded with `rng`; ECDSA with HASH_I/HASH_R itself as the digest and r‖s
    /// as in RFC 4754 §7 (both as strongSwan's IKEv1 does: EMSA_PKCS1_NULL, ECDSA_WITH_NULL).
    pub fn sign_hash(&self, hash: &[u8], rng: &mut (impl RngCore + CryptoRng)) -> Option<Vec<u8>> {
        match self {
            PrivateKey::Rsa(k) => k
                .sign_with_rng(rng, Pkcs1v15Sign::new_unprefixed(), hash)
                .ok(),
            PrivateKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(hash).ok()?;
                Some(s.to_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(hash).ok()?;
                Some(s.to_bytes().to_vec())
            }
            PrivateKey::P521(k) => {
                let s: p521::ecdsa::Signature = k.sign_prehash(hash).ok()?;
                Some(s.to_bytes().to_vec())
            }
        }
    }
}

/// A public key from a certificate.
#[derive(Clone)]
enum PublicKey {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PublicKey::Rsa(a), PublicKey::Rsa(b)) => a == b,
            (PublicKey::P256(a), PublicKey::P256(b)) => a == b,
            (PublicKey::P384(a), PublicKey::P384(b)) => a == b,
            (PublicKey::P521(a), PublicKey::P521(b)) => {
                a.to_encoded_point(false) == b.to_encoded_point(false)
            }
            _ => false,
        }
    }
}

impl PublicKey {
    fn of(cert: &Certificate) -> Result<Self, CertFailure> {
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| invalid(format!("public key: {e}")))?;
        if let Ok(k) = RsaPublicKey::from_public_key_der(&spki) {
            return Ok(PublicKey::Rsa(k));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(&spki) {
            return Ok(PublicKey::P256(k.into()));
        }
        if let Ok(k) = p384::PublicKey::from_public_key_der(&spki) {
            return Ok(PublicKey::P384(k.into()));
        }
        if let Ok(k) = p521::PublicKey::from_public_key_der(&spki) {
            let point = k.to_encoded_point(false);
            let vk = p521::ecdsa::VerifyingKey::from_encoded_point(&point)
                .map_err(|_| invalid("P-521 public key"))?;
            return Ok(PublicKey::P521(vk));
        }
        Err(invalid(
            "public key is not RSA or EC P-256/P-384/P-521".to_string(),
        ))
    }

    /// Verifies an X.509 signature (`alg` the signatureAlgorithm OID) over `msg`.
    fn verify_x509(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
        let digest: Vec<u8> = match alg {
            OID_RSA_SHA256 | OID_ECDSA_SHA256 => Sha256::digest(msg).to_vec(),
            OID_RSA_SHA384 | OID_ECDSA_SHA384 => Sha384::digest(msg).to_vec(),
            OID_RSA_SHA512 | OID_ECDSA_SHA512 => Sha512::digest(msg).to_vec(),
            _ => return false,
        };
        let rsa_alg = matches!(alg, OID_RSA_SHA256 | OID_RSA_SHA384 | OID_RSA_SHA512);
        match self {
            PublicKey::Rsa(k) if rsa_alg => {
                let scheme = match alg {
                    OID_RSA_SHA256 => Pkcs1v15Sign::new::<Sha256>(),
                    OID_RSA_SHA384 => Pkcs1v15Sign::new::<Sha384>(),
                    _ => Pkcs1v15Sign::new::<Sha512>(),
                };
                k.verify(scheme, &digest, sig).is_ok()
            }
            PublicKey::P256(k) if !rsa_alg => p256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            PublicKey::P384(k) if !rsa_alg => p384::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            PublicKey::P521(k) if !rsa_alg => p521::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok()),
            _ => false,
        }
    }

    /// Verifies a SIG payload over HASH_I/HASH_R for auth method `kind` (see `sign_hash`).
    fn verify_hash(&self, kind: SignatureKind, hash: &[u8], sig: &[u8]) -> Result<(), String> {
        let ok = match (self, kind) {
            (PublicKey::Rsa(k), SignatureKind::Rsa) => {
                k.verify(Pkcs1v15Sign::new_unprefixed(), hash, sig).is_ok()
            }
            (PublicKey::P256(k), SignatureKind::EcdsaP256) => {
                p256::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(hash, &s).is_ok())
            }
            (PublicKey::P384(k), SignatureKind::EcdsaP384) => {
                p384::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(hash, &s).is_ok())
            }
            (PublicKey::P521(k), SignatureKind::EcdsaP521) => {
                p521::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(hash, &s).is_ok())
            }
            _ => {
                return Err(format!(
                    "the certificate's key cannot make a {kind:?} signature"
                ))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{kind:?} signature over the HASH does not verify"))
        }
    }
}

/// One parsed certificate with its DER and the extensions path validation reads.
#[derive(Clone)]
pub struct Cert {
    der: Vec<u8>,
    cert: Certificate,
    key: PublicKey,
    basic_ca: Option<bool>,
    key_usage: Option<KeyUsage>,
    san: Vec<GeneralName>,
}

impl fmt::Debug for Cert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cert({})", self.subject())
    }
}

impl Cert {
    /// Parses one DER certificate (a CERT payload's data).
    pub fn from_der(der: &[u8]) -> Result<Self, CertFailure> {
        let cert = Certificate::from_der(der).map_err(|e| invalid(format!("X.509 DER: {e}")))?;
        let key = PublicKey::of(&cert)?;
        let mut c = Cert {
            der: der.to_vec(),
            cert,
            key,
            basic_ca: None,
            key_usage: None,
            san: Vec::new(),
        };
        let exts = c
            .cert
            .tbs_certificate
            .extensions
            .clone()
            .unwrap_or_default();
        for e in &exts {
            let value = e.extn_value.as_bytes();
            match e.extn_id.to_string().as_str() {
                OID_BASIC_CONSTRAINTS => {
                    let bc = BasicConstraints::from_der(value)
                        .map_err(|e| invalid(format!("basicConstraints: {e}")))?;
                    c.basic_ca = Some(bc.ca);
                }
                OID_KEY_USAGE => {
                    c.key_usage = Some(
                        KeyUsage::from_der(value).map_err(|e| invalid(format!("keyUsage: {e}")))?,
                    );
                }
                OID_SUBJECT_ALT_NAME => {
                    c.san = SubjectAltName::from_der(value)
                        .map_err(|e| invalid(format!("subjectAltName: {e}")))?
                        .0;
                }
                OID_EXT_KEY_USAGE | OID_SUBJECT_KEY_ID | OID_AUTHORITY_KEY_ID => {}
                other if e.critical => {
                    return Err(invalid(format!(
                        "unsupported critical extension {other} in \"{}\"",
                        c.subject()
                    )))
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// All certificates of a PEM file, in order.
    pub fn from_pem_chain(pem: &[u8]) -> Result<Vec<Self>, CredentialError> {
        // x509-cert 0.2.5's `load_pem_chain` underflows on input of nothing but line breaks
        // (found by fuzz/fuzz_targets/cert_chain.rs): answer that here.
        if pem.iter().all(u8::is_ascii_whitespace) {
            return Err(CredentialError::NoCertificate);
        }
        let certs = Certificate::load_pem_chain(pem)
            .map_err(|e| CredentialError::BadCertificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(CredentialError::NoCertificate);
        }
        certs
            .iter()
            .map(|c| {
                let der = c
                    .to_der()
                    .map_err(|e| CredentialError::BadCertificate(e.to_string()))?;
                Cert::from_der(&der).map_err(|e| CredentialError::BadCertificate(e.to_string()))
            })
            .collect()
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Does `key` belong to this certificate.
    pub fn matches_key(&self, key: &PrivateKey) -> bool {
        self.key == key.public()
    }

    /// The subject DN as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// The DER of the subject DN (an ID_DER_ASN1_DN value, a CR payload's CA name).
    pub fn subject_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate
            .subject
            .to_der()
            .unwrap_or_default()
    }

    fn issuer(&self) -> &Name {
        &self.cert.tbs_certificate.issuer
    }

    /// Is `self` the issuer of `child`: names equal and `child`'s signature verifies.
    fn issued(&self, child: &Cert) -> Option<bool> {
        if &self.cert.tbs_certificate.subject != child.issuer() {
            return None;
        }
        let Ok(tbs) = child.cert.tbs_certificate.to_der() else {
            return Some(false);
        };
        let alg = child.cert.signature_algorithm.oid.to_string();
        let sig = child.cert.signature.raw_bytes();
        Some(self.key.verify_x509(&alg, &tbs, sig))
    }

    fn check_time(&self, now: Duration) -> Result<(), CertFailure> {
        let v = &self.cert.tbs_certificate.validity;
        let (nb, na) = (
            v.not_before.to_unix_duration(),
            v.not_after.to_unix_duration(),
        );
        if now < nb {
            return Err(CertFailure::NotYetValid {
                subject: self.subject(),
                not_before: nb.as_secs(),
            });
        }
        if now > na {
            return Err(CertFailure::Expired {
                subject: self.subject(),
                not_after: na.as_secs(),
            });
        }
        Ok(())
    }

    /// A CA may sign certificates: basicConstraints cA, and keyCertSign if keyUsage is there.
    fn check_ca(&self) -> Result<(), CertFailure> {
        if self.basic_ca != Some(true) {
            return Err(invalid(format!(
                "\"{}\" is not a CA (basicConstraints cA is not set)",
                self.subject()
            )));
        }
        if self.key_usage.is_some_and(|k| !k.key_cert_sign()) {
            return Err(invalid(format!(
                "\"{}\" may not sign certificates (keyUsage without keyCertSign)",
                self.subject()
            )));
        }
        Ok(())
    }

    /// Does the ID payload name this certificate: its subject DN, or a subjectAltName of
    /// the ID's type (RFC 2407 §4.6.2.1; RFC 4945 §3.1 in spirit).
    pub fn names(&self, id: &IdValue) -> bool {
        match id {
            IdValue::Other(IdType::DER_ASN1_DN, der) => same_dn(der, &self.subject_der()),
            IdValue::Fqdn(f) => self.san.iter().any(
                |g| matches!(g, GeneralName::DnsName(d) if d.as_str().eq_ignore_ascii_case(f)),
            ),
            IdValue::UserFqdn(u) => self.san.iter().any(
                |g| matches!(g, GeneralName::Rfc822Name(d) if d.as_str().eq_ignore_ascii_case(u)),
            ),
            IdValue::Ipv4(a) => self.has_ip(&a.octets()),
            IdValue::Ipv6(a) => self.has_ip(&a.octets()),
            _ => false,
        }
    }

    fn has_ip(&self, octets: &[u8]) -> bool {
        self.san
            .iter()
            .any(|g| matches!(g, GeneralName::IpAddress(o) if o.as_bytes() == octets))
    }
}

/// Parses a DN as strongSwan and `openssl x509 -noout -subject` write it, most general RDN
/// first (`C=XX, O=Example, CN=gw.example.net`), into the DER of an ID_DER_ASN1_DN.
pub fn parse_dn(s: &str) -> Result<Vec<u8>, String> {
    // Spaces after an unescaped comma separate RDNs; RFC 4514 has none.
    let (mut compact, mut escaped, mut after_comma) = (String::new(), false, false);
    for ch in s.trim().chars() {
        if after_comma && ch == ' ' {
            continue;
        }
        after_comma = !escaped && ch == ',';
        escaped = !escaped && ch == '\\';
        compact.push(ch);
    }
    let mut rdns: x509_cert::name::RdnSequence = compact
        .parse()
        .map_err(|e| format!("'{s}' is not a distinguished name: {e}"))?;
    // `parse` reads RFC 4514 order (most specific first); ours is the reverse.
    rdns.0.reverse();
    if rdns.0.is_empty() {
        return Err(format!("'{s}' is an empty distinguished name"));
    }
    rdns.to_der().map_err(|e| e.to_string())
}

/// A DER DN as text (RFC 4514), for logs; what is not a DN is shown by its length.
pub fn dn_string(der: &[u8]) -> String {
    Name::from_der(der).map_or_else(
        |_| format!("(not a DN, {} bytes)", der.len()),
        |n| n.to_string(),
    )
}

/// Two DER DNs name the same entity: equal attribute types and values, compared as text
/// without regard to the string type (PrintableString vs UTF8String) or ASCII case.
pub fn same_dn(a: &[u8], b: &[u8]) -> bool {
    match (Name::from_der(a), Name::from_der(b)) {
        (Ok(a), Ok(b)) => a.to_string().eq_ignore_ascii_case(&b.to_string()),
        _ => false,
    }
}

/// A remote identity with strongSwan's DN wildcards (`C=CH, O=Example, CN=*`): `pattern`
/// matches `dn` when both have the same RDNs in the same order with the same attribute types,
/// and each value is equal as in `same_dn` or is `*` in the pattern.
pub fn dn_matches(pattern: &[u8], dn: &[u8]) -> bool {
    let (Ok(p), Ok(d)) = (Name::from_der(pattern), Name::from_der(dn)) else {
        return false;
    };
    p.0.len() == d.0.len()
        && p.0.iter().zip(d.0.iter()).all(|(pr, dr)| {
            pr.0.len() == dr.0.len()
                && pr.0.iter().zip(dr.0.iter()).all(|(pa, da)| {
                    let (ps, ds) = (pa.to_string(), da.to_string());
                    pa.oid == da.oid && (pa.value.value() == b"*" || ps.eq_ignore_ascii_case(&ds))
                })
        })
}

/// Does a DN (DER) hold a wildcard value (`CN=*`): a pattern, never an identity we send.
pub fn dn_has_wildcard(dn: &[u8]) -> bool {
    Name::from_der(dn).is_ok_and(|n| {
        n.0.iter()
            .any(|r| r.0.iter().any(|a| a.value.value() == b"*"))
    })
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

    const RSA_A: &[u8] = include_bytes!("../../../tests/data/certs/rsa-a.crt");

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

    const EC_B: &[u8] = include_bytes!("../../../tests/data/certs/ec-b.crt");
    const INTER: &[u8] = include_bytes!("../../../tests/data/certs/inter.crt");
    const CA: &[u8] = include_bytes!("../../../tests/data/certs/ca.crt");
    const EC_A_KEY: &[u8] = include_bytes!("../../../tests/data/certs/ec-a.key");
    const EC_A: &[u8] = include_bytes!("../../../tests/data/certs/ec-a.crt");
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
        let b = der(include_bytes!("../../../tests/data/certs/rsa-b.crt"));
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
        let b = der(include_bytes!("../../../tests/data/certs/rsa-b.crt"));
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
        let b = der(include_bytes!("../../../tests/data/certs/rsa-b.crt"));
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
