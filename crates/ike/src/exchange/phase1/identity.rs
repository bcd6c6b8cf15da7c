//! Identities in phase 1 (RFC 2409 §5, RFC 2407 §4.6.2): our ID payload, the check of the
//! peer's, and the HASH_I/HASH_R that proves it.

use crate::config::ConnectionConfig;
use crate::context::Ctx;
use crate::crypto;
use crate::event::Failure;
use crate::keyed::Keyed;
use crate::sa::IkeSa;
use crate::wire::Identification;

/// Our phase 1 ID payload. RFC 2407 §4.6.2: protocol/port may be 0 or UDP/500; we send 0.
pub(crate) fn our_id(cfg: &ConnectionConfig) -> Identification {
    Identification::new(&cfg.local_id, 0, 0)
}

/// The peer's ID must be the configured one (RFC 2409 §5: checked with the HASH).
pub(crate) fn check_peer_id(cfg: &ConnectionConfig, id: &Identification) -> Result<(), Failure> {
    let got = id.value().map_err(|e| Failure::Malformed(e.to_string()))?;
    if got == cfg.remote_id {
        Ok(())
    } else {
        Err(Failure::IdentityMismatch {
            expected: cfg.remote_id.to_string(),
            received: got.to_string(),
        })
    }
}

impl IkeSa {
    /// Checks the peer's HASH in constant time; a mismatch fails the SA with
    /// AUTHENTICATION-FAILED, naming `what` (e.g. "HASH_I in MM5").
    pub(crate) fn verify_peer_hash(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        hash: &[u8],
        id_b: &[u8],
        what: &str,
    ) -> bool {
        let expected = keys.auth_hash(&self.cookies, self.role.peer(), id_b);
        let ok = crypto::ct_eq(&expected, hash);
        if !ok {
            let reason = Failure::AuthenticationFailed {
                detail: format!("{what} does not verify"),
            };
            self.fail(
                ctx,
                reason,
                Some(crate::wire::NotifyType::AUTHENTICATION_FAILED),
            );
        }
        ok
    }
}
