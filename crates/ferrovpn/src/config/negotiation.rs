//! How a connection negotiates: phase 1 mode, NAT traversal policy, which side starts.

use serde::Deserialize;

/// Phase 1 exchange (RFC 2409 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Main,
    Aggressive,
}

/// NAT traversal policy (RFC 3947): float to 4500 when a NAT is seen, or always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatTraversal {
    #[default]
    Auto,
    Force,
}

/// Whether this side starts phase 1 or waits for the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    Initiate,
    Respond,
}
