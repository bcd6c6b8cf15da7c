//! Key material, wiped when dropped.

/// Key material: a byte buffer zeroed on drop.
pub type Secret = zeroize::Zeroizing<Vec<u8>>;
