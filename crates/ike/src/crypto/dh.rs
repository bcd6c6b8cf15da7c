//! Diffie-Hellman groups of IKEv1: MODP (RFC 2409 §6.2, RFC 3526), NIST ECP (RFC 5903) and
//! Curve25519 (RFC 7748, encoded as in RFC 8031).
//!
//! KE payload encodings: a MODP public value is big-endian, left-padded to the prime length; an
//! ECP public value is `x | y`, each padded to the field length, without the SEC1 0x04 prefix
//! (RFC 5903 §7); a Curve25519 public value is the 32-byte u-coordinate (RFC 8031 §2). The shared
//! secret `g^xy` is left-padded to the prime length (MODP), the x-coordinate only (ECP,
//! RFC 5903 §7) or the 32-byte X25519 output.

use core::fmt;

use num_bigint::BigUint;
use num_traits::One;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use super::error::CryptoError;
use super::modp_primes::{MODP1024, MODP1536, MODP2048, MODP3072, MODP4096, MODP6144, MODP8192};
use super::secret::Secret;
use crate::algorithm::DhGroup;

/// A Diffie-Hellman private value of one group, with its public value; wiped on drop.
pub struct DhPrivate {
    group: DhGroup,
    key: Key,
    public: Vec<u8>,
}

enum Key {
    /// MODP exponent, little-endian (so it converts to a `BigUint` without a stray copy).
    Modp(Secret),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
    X25519(x25519_dalek::StaticSecret),
}

impl fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhPrivate")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The prime of a MODP group, big-endian; `None` for elliptic-curve groups.
pub fn modp_prime(group: DhGroup) -> Option<&'static [u8]> {
    Some(match group {
        DhGroup::Modp1024 => &MODP1024,
        DhGroup::Modp1536 => &MODP1536,
        DhGroup::Modp2048 => &MODP2048,
        DhGroup::Modp3072 => &MODP3072,
        DhGroup::Modp4096 => &MODP4096,
        DhGroup::Modp6144 => &MODP6144,
        DhGroup::Modp8192 => &MODP8192,
        _ => return None,
    })
}

/// Length in bytes of a freshly generated MODP exponent: twice the group's security strength
/// (RFC 3526 §8, NIST SP 800-57: 80/96/112/128/152/176/200 bits), rounded up to 64 bits, and never
/// below 256 bits. A short exponent keeps modpow cheap without weakening the group.
pub fn modp_exponent_len(group: DhGroup) -> usize {
    match group {
        DhGroup::Modp4096 => 40,
        DhGroup::Modp6144 => 48,
        DhGroup::Modp8192 => 56,
        _ => 32,
    }
}

/// Overwrites the digits of a `BigUint` holding secret data before it is freed (best effort:
/// num-bigint has no zeroize support, and its intermediate values are not reached).
fn wipe(n: &mut BigUint) {
    let digits = usize::try_from(n.bits().div_ceil(32)).unwrap_or(0);
    n.assign_from_slice(&vec![0u32; digits]);
}

/// Big-endian encoding of `n` left-padded to `len` bytes (`n` is known to fit).
fn to_padded(n: &BigUint, len: usize) -> Secret {
    let mut le = Zeroizing::new(n.to_bytes_le());
    le.resize(len, 0);
    le.reverse();
    Zeroizing::new(le.to_vec())
}

fn modp_public(prime: &[u8], exponent_le: &[u8]) -> Vec<u8> {
    let p = BigUint::from_bytes_be(prime);
    let mut x = BigUint::from_bytes_le(exponent_le);
    let y = BigUint::from(2u32).modpow(&x, &p);
    wipe(&mut x);
    to_padded(&y, prime.len()).to_vec()
}

impl DhPrivate {
    /// A fresh private value for `group` (MODP exponent length: [`modp_exponent_len`]).
    pub fn generate<R: RngCore + CryptoRng>(group: DhGroup, rng: &mut R) -> DhPrivate {
        let key = match group {
            DhGroup::Ecp256 => Key::P256(p256::SecretKey::random(rng)),
            DhGroup::Ecp384 => Key::P384(p384::SecretKey::random(rng)),
            DhGroup::Ecp521 => Key::P521(p521::SecretKey::random(rng)),
            DhGroup::Curve25519 => Key::X25519(x25519_dalek::StaticSecret::random_from_rng(rng)),
            _ => {
                let mut x = Zeroizing::new(vec![0u8; modp_exponent_len(group)]);
                rng.fill_bytes(&mut x);
                // Little-endian: set the top bit so the exponent has its full length (and is > 1).
                if let Some(top) = x.last_mut() {
                    *top |= 0x80;
                }
                Key::Modp(x)
            }
        };
        Self::with_key(group, key)
    }

    /// The private value `secret` (big-endian integer or scalar; for Curve25519 the 32-byte
    /// scalar of RFC 7748 §5), for known-answer tests and fixed keys.
    pub fn from_secret_bytes(group: DhGroup, secret: &[u8]) -> Result<DhPrivate, CryptoError> {
        let bad = |_| CryptoError::InvalidPrivateValue;
        let key = match group {
            DhGroup::Ecp256 => Key::P256(p256::SecretKey::from_slice(secret).map_err(bad)?),
            DhGroup::Ecp384 => Key::P384(p384::SecretKey::from_slice(secret).map_err(bad)?),
            DhGroup::Ecp521 => Key::P521(p521::SecretKey::from_slice(secret).map_err(bad)?),
            DhGroup::Curve25519 => {
                let mut bytes: [u8; 32] = secret
                    .try_into()
                    .map_err(|_| CryptoError::InvalidPrivateValue)?;
                let key = x25519_dalek::StaticSecret::from(bytes);
                bytes.zeroize();
                Key::X25519(key)
            }
            _ => {
                let prime = modp_prime(group).ok_or(CryptoError::InvalidPrivateValue)?;
                let mut le = Zeroizing::new(secret.to_vec());
                le.reverse();
                let mut x = BigUint::from_bytes_le(&le);
                let p = BigUint::from_bytes_be(prime);
                let in_range = x > BigUint::one() && x < p - 1u32;
                wipe(&mut x);
                if !in_range {
                    return Err(CryptoError::InvalidPrivateValue);
                }
                Key::Modp(le)
            }
        };
        Ok(Self::with_key(group, key))
    }

    fn with_key(group: DhGroup, key: Key) -> DhPrivate {
        let public = match &key {
            Key::Modp(x) => modp_prime(group).map_or_else(Vec::new, |p| modp_public(p, x)),
            Key::P256(k) => uncompressed_xy(k.public_key().to_encoded_point(false).as_bytes()),
            Key::P384(k) => uncompressed_xy(k.public_key().to_encoded_point(false).as_bytes()),
            Key::P521(k) => uncompressed_xy(k.public_key().to_encoded_point(false).as_bytes()),
            Key::X25519(k) => x25519_dalek::PublicKey::from(k).as_bytes().to_vec(),
        };
        DhPrivate { group, key, public }
    }

    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The KE payload data: exactly `group().public_len()` bytes.
    pub fn public_value(&self) -> Vec<u8> {
        self.public.clone()
    }

    /// `g^xy` from the peer's KE payload data, after validating it (RFC 2409 §5, RFC 5903 §7,
    /// RFC 7748 §6.1).
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<Secret, CryptoError> {
        if peer_public.len() != self.group.public_len() {
            return Err(CryptoError::BadLength);
        }
        match &self.key {
            Key::Modp(x) => {
                let prime = modp_prime(self.group).ok_or(CryptoError::InvalidPublicValue)?;
                modp_shared(prime, x, peer_public)
            }
            Key::P256(k) => {
                let peer = p256::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let s = p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            Key::P384(k) => {
                let peer = p384::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let s = p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            Key::P521(k) => {
                let peer = p521::PublicKey::from_sec1_bytes(&sec1(peer_public))
                    .map_err(|_| CryptoError::InvalidPublicValue)?;
                let s = p521::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine());
                Ok(Zeroizing::new(s.raw_secret_bytes().to_vec()))
            }
            Key::X25519(k) => {
                let u: [u8; 32] = peer_public.try_into().map_err(|_| CryptoError::BadLength)?;
                let s = k.diffie_hellman(&x25519_dalek::PublicKey::from(u));
                // An all-zero output means a low-order peer point (RFC 7748 §6.1, RFC 8031 §2.1).
                if !s.was_contributory() {
                    return Err(CryptoError::InvalidPublicValue);
                }
                Ok(Zeroizing::new(s.as_bytes().to_vec()))
            }
        }
    }
}

/// `x | y` of a SEC1 uncompressed point (the RFC 5903 §7 encoding drops the 0x04 prefix).
fn uncompressed_xy(sec1: &[u8]) -> Vec<u8> {
    sec1.get(1..).unwrap_or_default().to_vec()
}

/// SEC1 uncompressed encoding (`0x04 | x | y`) of an RFC 5903 public value.
fn sec1(xy: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(xy.len() + 1);
    v.push(0x04);
    v.extend_from_slice(xy);
    v
}

/// `y^x mod p` for a peer value `y` with 1 < y < p-1 (RFC 2409 §5 leaves checking to the
/// implementation; values 0, 1 and p-1 would force a known shared secret).
fn modp_shared(prime: &[u8], exponent_le: &[u8], peer: &[u8]) -> Result<Secret, CryptoError> {
    let p = BigUint::from_bytes_be(prime);
    let y = BigUint::from_bytes_be(peer);
    if y <= BigUint::one() || y >= &p - 1u32 {
        return Err(CryptoError::InvalidPublicValue);
    }
    let mut x = BigUint::from_bytes_le(exponent_le);
    let mut s = y.modpow(&x, &p);
    wipe(&mut x);
    let out = to_padded(&s, prime.len());
    wipe(&mut s);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = DhPrivate::from_secret_bytes(DhGroup::Curve25519, &[0x77; 32]).unwrap();
        let s = format!("{k:?}");
        assert!(s.contains("Curve25519"));
        assert!(!s.contains("77") && !s.contains("119"), "{s}");
    }

    #[test]
    fn generated_modp_exponent_has_full_length() {
        let mut rng = rand::thread_rng();
        let k = DhPrivate::generate(DhGroup::Modp2048, &mut rng);
        match &k.key {
            Key::Modp(x) => {
                assert_eq!(x.len(), 32);
                assert!(x[31] & 0x80 != 0);
            }
            _ => panic!("not MODP"),
        }
        assert_eq!(k.public_value().len(), 256);
    }

    #[test]
    fn modp_private_value_range() {
        let g = DhGroup::Modp1024;
        assert!(DhPrivate::from_secret_bytes(g, &[]).is_err());
        assert!(DhPrivate::from_secret_bytes(g, &[1]).is_err());
        assert!(DhPrivate::from_secret_bytes(g, &MODP1024).is_err());
        assert!(DhPrivate::from_secret_bytes(g, &[2]).is_ok());
    }
}
