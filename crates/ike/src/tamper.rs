//! Test support: a hook that rewrites the payloads of a message this endpoint sends, before
//! its HASH is computed and it is encrypted (feature `test-support`; a no-op without it). It
//! turns an endpoint into a peer that knows the PSK and says anything in protected messages,
//! which still authenticate: tests and fuzzers reach the code behind the HASH checks without
//! any key leaving the crate.

use std::net::SocketAddr;

use crate::role::Role;
use crate::wire::Payload;

/// The message being sealed, as a [`Tamper`] hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sealing {
    /// MM2, AM2, MM5, MM6, AM3, QM1, QM2, QM3 or INFO.
    pub name: &'static str,
    pub role: Role,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub message_id: u32,
}

/// The hook's type: it may change, add, remove or reorder payloads.
pub type TamperFn = dyn Fn(&Sealing, &mut Vec<Payload>) + Send + Sync;

/// A rewrite hook for [`Settings`](crate::Settings)`::tamper` (feature `test-support`).
#[derive(Clone)]
pub struct Tamper(pub std::sync::Arc<TamperFn>);

impl std::fmt::Debug for Tamper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tamper(..)")
    }
}

impl Tamper {
    pub fn new(f: impl Fn(&Sealing, &mut Vec<Payload>) + Send + Sync + 'static) -> Self {
        Tamper(std::sync::Arc::new(f))
    }
}
