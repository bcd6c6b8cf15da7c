//! IKEv1 cryptography: PRFs, Diffie-Hellman groups, phase 1 ciphers and the key schedule
//! (RFC 2409 §5, Appendix B).
//!
//! Every buffer holding key material is a [`Secret`], wiped when dropped; no type here prints key
//! material in its `Debug` output.

pub mod cipher;
pub mod dh;
mod error;
pub mod keys;
mod modp_primes;
pub mod prf;
mod secret;

pub use dh::DhPrivate;
pub use error::CryptoError;
pub use keys::{
    hash_i, hash_r, keymat, nat_d, phase2_iv, qm_hash1, qm_hash2, qm_hash3, skeyid_psk, skeyid_sig,
    Phase1Keys,
};
pub use prf::{ct_eq, hash, prf};
pub use secret::Secret;
