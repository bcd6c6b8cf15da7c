//! IKEv1 cryptography: PRFs, Diffie-Hellman groups, phase 1 ciphers and the key schedule
//! (RFC 2409 §5, Appendix B).
//!
//! Every buffer holding key material is a [`Secret`], wiped when dropped; no type here prints key
//! material in its `Debug` output.

pub mod cipher;
pub mod dh;
pub mod keys;
mod modp_primes;
pub mod prf;

pub use dh::DhPrivate;
pub use keys::{
    hash_i, hash_r, keymat, nat_d, phase2_iv, qm_hash1, qm_hash2, qm_hash3, skeyid_psk, skeyid_sig,
    Phase1Keys,
};
pub use prf::{ct_eq, hash, prf};

/// Key material: a byte buffer zeroed on drop.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;

/// Failures of the cryptographic primitives; all of them come from bad input, never from a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The peer's Diffie-Hellman public value is out of range, not on the curve, or the identity,
    /// or the agreed secret is degenerate (RFC 7748 §6.1 all-zero output).
    #[error("invalid Diffie-Hellman public value")]
    InvalidPublicValue,
    /// A Diffie-Hellman private value is out of range for its group.
    #[error("invalid Diffie-Hellman private value")]
    InvalidPrivateValue,
    /// Data length is wrong: a public value not of the group's length, or ciphertext that is not
    /// a whole number of cipher blocks.
    #[error("bad data length")]
    BadLength,
    /// The key length does not match the cipher.
    #[error("bad key length")]
    BadKeyLength,
    /// The IV length does not match the cipher's block length.
    #[error("bad IV length")]
    BadIvLength,
}
