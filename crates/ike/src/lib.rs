//! IKEv1 control plane (RFC 2408, RFC 2409), sans-IO: datagrams and time in, datagrams, timers,
//! events and IPsec SAs out.

pub mod algorithm;
pub mod crypto;
pub mod proposal;
pub mod wire;
