//! How a connection negotiates: phase 1 mode, NAT traversal policy, which side starts.

use serde::Deserialize;

/// How phase 1 authenticates (`auth`): a pre-shared key, or certificates and signatures
/// (RFC 2409 §5.1; RSA or ECDSA by the key in `key_file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    #[default]
    Psk,
    Certificate,
}

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

/// IKEv1 fragmentation of phase 1 messages, as strongSwan's `fragmentation` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fragmentation {
    #[default]
    Yes,
    No,
    Force,
}

/// Whether this side starts phase 1 or waits for the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    Initiate,
    Respond,
}
