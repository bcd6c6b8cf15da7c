//! Test support: a hook that rewrites the payloads of a message this endpoint sends, before
//! its HASH is computed and it is encrypted (feature `test-support`; a no-op without it). It
//! turns an endpoint into a peer that knows the PSK and says anything in protected messages,
//! which still authenticate: tests and fuzzers reach the code behind the HASH checks without
//! any key leaving the crate.

use std::net::SocketAddr;

use crate::event::Role;
use crate::sa::{Ctx, IkeSa};
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

impl IkeSa {
    /// Runs the settings' hook on `payloads` of message `name`. In phase 1 a HASH_I/HASH_R
    /// that travels with a rewritten ID payload is computed again over the new ID (RFC 2409
    /// §5), as a peer that chose that ID would; QM and INFO hashes are computed after this.
    // The hook may add and remove payloads, hence the Vec (unused without the feature).
    #[cfg_attr(
        not(feature = "test-support"),
        allow(unused_variables, clippy::ptr_arg)
    )]
    pub(crate) fn tamper(
        &self,
        ctx: &Ctx<'_>,
        name: &'static str,
        message_id: u32,
        payloads: &mut Vec<Payload>,
    ) {
        #[cfg(feature = "test-support")]
        if let Some(t) = &ctx.settings.tamper {
            let before = payloads.clone();
            let sealing = Sealing {
                name,
                role: self.role,
                local: self.local,
                remote: self.remote,
                message_id,
            };
            (t.0)(&sealing, payloads);
            if message_id != 0 || *payloads == before {
                return;
            }
            let id = payloads.iter().find_map(|p| match p {
                Payload::Identification(id) => Some(crate::exchange::phase1::id_body(id)),
                _ => None,
            });
            let hash = id.and_then(|id| self.auth_hash(self.role, &id));
            let old_hash = before.iter().find_map(|p| match p {
                Payload::Hash(h) => Some(h),
                _ => None,
            });
            if let Some(hash) = hash {
                for p in payloads.iter_mut() {
                    if let Payload::Hash(h) = p {
                        if Some(&*h) == old_hash {
                            *h = hash.to_vec();
                        }
                    }
                }
            }
        }
    }
}
