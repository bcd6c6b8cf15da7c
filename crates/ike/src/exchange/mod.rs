//! The IKEv1 exchanges, one module each (RFC 2409 §5).

pub mod aggressive_mode;
mod collision;
pub mod informational;
pub mod main_mode;
pub(crate) mod payloads;
pub mod phase1;

pub mod quick_mode;
mod timers;
pub mod transaction;
