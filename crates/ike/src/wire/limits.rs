//! Bounds the parser enforces on untrusted input.

/// A chain longer than this is refused; real messages carry fewer than 20 payloads.
pub const MAX_PAYLOADS: usize = 64;
/// Longest variable-length attribute value we accept; real ones (lifetimes, key lengths) are ≤ 8.
pub const MAX_ATTRIBUTE_LEN: usize = 64;
/// More attributes than this in one Attribute payload are refused (real replies carry a few
/// dozen).
pub const MAX_CFG_ATTRIBUTES: usize = 128;
