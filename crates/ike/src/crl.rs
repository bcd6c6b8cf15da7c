//! Certificate revocation lists (RFC 5280 §5) as the daemon hands them in: parsed with
//! x509-cert's `CertificateList`, kept with the DER that their issuer signed. A leaf: the
//! signature is checked by `cert`, against the CA that the path names as the issuer.

use std::fmt;
use std::time::Duration;

use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;

/// One parsed CRL.
#[derive(Clone)]
pub struct Crl {
    list: CertificateList,
    /// The DER of `tbsCertList`, what the issuer signed.
    tbs: Vec<u8>,
}

impl fmt::Debug for Crl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Crl({}, {} revoked)",
            self.issuer(),
            self.revoked_count()
        )
    }
}

/// A revoked serial number as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Seconds since 1970.
    pub date: u64,
}

impl Crl {
    /// One CRL in DER.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let list = CertificateList::from_der(der).map_err(|e| format!("X.509 CRL DER: {e}"))?;
        let tbs = list
            .tbs_cert_list
            .to_der()
            .map_err(|e| format!("X.509 CRL: {e}"))?;
        Ok(Crl { list, tbs })
    }

    /// The CRLs of a file: PEM blocks labelled `X509 CRL` (any number), or one DER CRL.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Vec<Self>, String> {
        const BEGIN: &str = "-----BEGIN X509 CRL-----";
        const END: &str = "-----END X509 CRL-----";
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Ok(vec![Crl::from_der(bytes)?]);
        };
        if !text.contains(BEGIN) {
            if text.trim_start().starts_with("-----BEGIN") {
                return Err("a PEM file without an X509 CRL block".into());
            }
            return Ok(vec![Crl::from_der(bytes)?]);
        }
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(BEGIN) {
            let after = rest.get(start..).unwrap_or_default();
            let Some(end) = after.find(END) else {
                return Err("an X509 CRL block without its END line".into());
            };
            let block = after.get(..end + END.len()).unwrap_or_default();
            let (label, der) = x509_cert::der::pem::decode_vec(block.as_bytes())
                .map_err(|e| format!("X509 CRL PEM: {e}"))?;
            if label != "X509 CRL" {
                return Err(format!("PEM label {label}, not X509 CRL"));
            }
            out.push(Crl::from_der(&der)?);
            rest = after.get(end + END.len()..).unwrap_or_default();
        }
        Ok(out)
    }

    pub fn issuer(&self) -> &Name {
        &self.list.tbs_cert_list.issuer
    }

    /// What the issuer signed, the signatureAlgorithm OID and the signature bits.
    pub(crate) fn signed(&self) -> (&[u8], String, &[u8]) {
        (
            &self.tbs,
            self.list.signature_algorithm.oid.to_string(),
            self.list.signature.raw_bytes(),
        )
    }

    /// nextUpdate in seconds since 1970 (none: the issuer promised no next CRL).
    pub fn next_update(&self) -> Option<Duration> {
        self.list
            .tbs_cert_list
            .next_update
            .map(|t| t.to_unix_duration())
    }

    pub fn revoked_count(&self) -> usize {
        self.list
            .tbs_cert_list
            .revoked_certificates
            .as_ref()
            .map_or(0, Vec::len)
    }

    /// Is `serial` (the DER INTEGER's content bytes) on this list.
    pub fn revocation_of(&self, serial: &[u8]) -> Option<Revocation> {
        self.list
            .tbs_cert_list
            .revoked_certificates
            .as_ref()?
            .iter()
            .find(|r| r.serial_number.as_bytes() == serial)
            .map(|r| Revocation {
                date: r.revocation_date.to_unix_duration().as_secs(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_bytes_are_an_error_or_crls_never_a_panic(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            pem in "(-----BEGIN X509 CRL-----\n)?[A-Za-z0-9+/=\n]{0,80}(-----END X509 CRL-----\n)?",
        ) {
            let _ = Crl::from_file_bytes(&data);
            let _ = Crl::from_file_bytes(pem.as_bytes());
            let _ = Crl::from_file_bytes(format!("{pem}{pem}").as_bytes());
        }
    }
}
