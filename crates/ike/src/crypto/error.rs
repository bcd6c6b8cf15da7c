//! Failures of the cryptographic primitives.

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
