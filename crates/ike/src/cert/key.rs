//! Keys of the SIG payload: the signature kinds (auth methods), our private key and a
//! certificate's public key (RFC 2409 §5.1, RFC 4754 §7).

use std::fmt;

use ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p521::elliptic_curve::sec1::ToEncodedPoint;
use rand::{CryptoRng, RngCore};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::der::Encode;
use x509_cert::Certificate;

use super::{invalid, CertFailure, CredentialError};
use crate::wire::attr;

const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";

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

    pub(super) fn public(&self) -> PublicKey {
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
pub(super) enum PublicKey {
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
    pub(super) fn of(cert: &Certificate) -> Result<Self, CertFailure> {
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
    pub(super) fn verify_x509(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
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
    pub(super) fn verify_hash(
        &self,
        kind: SignatureKind,
        hash: &[u8],
        sig: &[u8],
    ) -> Result<(), String> {
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
