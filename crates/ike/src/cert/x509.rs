//! One parsed X.509 certificate and what path validation reads of it (RFC 5280 §4.1, §4.2).

use std::fmt;
use std::time::Duration;

use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::{invalid, same_dn, CertFailure, CredentialError, PrivateKey, PublicKey};
use crate::wire::{IdType, IdValue};

const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const OID_SUBJECT_KEY_ID: &str = "2.5.29.14";
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";

/// One parsed certificate with its DER and the extensions path validation reads.
#[derive(Clone)]
pub struct Cert {
    pub(super) der: Vec<u8>,
    pub(super) cert: Certificate,
    pub(super) key: PublicKey,
    pub(super) basic_ca: Option<bool>,
    pub(super) key_usage: Option<KeyUsage>,
    pub(super) san: Vec<GeneralName>,
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

    pub(super) fn issuer(&self) -> &Name {
        &self.cert.tbs_certificate.issuer
    }

    /// Is `self` the issuer of `child`: names equal and `child`'s signature verifies.
    pub(super) fn issued(&self, child: &Cert) -> Option<bool> {
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

    pub(super) fn check_time(&self, now: Duration) -> Result<(), CertFailure> {
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
    pub(super) fn check_ca(&self) -> Result<(), CertFailure> {
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

    pub(super) fn has_ip(&self, octets: &[u8]) -> bool {
        self.san
            .iter()
            .any(|g| matches!(g, GeneralName::IpAddress(o) if o.as_bytes() == octets))
    }
}
