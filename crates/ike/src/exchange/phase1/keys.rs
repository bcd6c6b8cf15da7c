//! Phase 1 keys (RFC 2409 §5, App. B): our DH pair and nonce, and SKEYID with its children.

use std::sync::Arc;

use crate::config::Phase1Auth;
use crate::context::Ctx;
use crate::crypto::{self, Phase1Keys};
use crate::event::{Failure, Role};
use crate::keyed::Keyed;
use crate::proposal::IkeProposal;
use crate::sa::{IkeSa, OurKe};

/// Computes g^xy, SKEYID and the derived keys once both KE and both nonces are known
/// (RFC 2409 §5, App. B). Our DH private value is not needed after this.
pub(crate) fn derive_keys(
    ctx: &Ctx<'_>,
    sa: &IkeSa,
    proposal: IkeProposal,
    ours: &OurKe,
    peer_ke: &[u8],
    peer_nonce: &[u8],
    peer_id_b: Vec<u8>,
) -> Result<Arc<Keyed>, Failure> {
    let g_xy = ours
        .dh
        .shared_secret(peer_ke)
        .map_err(|_| Failure::InvalidKeyExchange)?;
    let (g_xi, g_xr, ni, nr) = match sa.role {
        Role::Initiator => (
            ours.ke.as_slice(),
            peer_ke,
            ours.nonce.as_slice(),
            peer_nonce,
        ),
        Role::Responder => (
            peer_ke,
            ours.ke.as_slice(),
            peer_nonce,
            ours.nonce.as_slice(),
        ),
    };
    let skeyid = match ctx.cfg.auth {
        Phase1Auth::Psk => crypto::skeyid_psk(proposal.hash, &ctx.cfg.psk, ni, nr),
        Phase1Auth::Certificate(_) => crypto::skeyid_sig(proposal.hash, ni, nr, &g_xy),
    };
    let keys = Phase1Keys::derive(
        proposal.hash,
        proposal.cipher,
        skeyid,
        &g_xy,
        &sa.cookies.initiator_spi,
        &sa.cookies.responder_spi,
        g_xi,
        g_xr,
    );
    Ok(Arc::new(Keyed {
        proposal,
        p1_iv: keys.iv.clone(),
        keys,
        g_xi: g_xi.to_vec(),
        g_xr: g_xr.to_vec(),
        sai_b: ours.sai_b.clone(),
        peer_id_b,
    }))
}

/// A 32-byte nonce (RFC 2409 §5: 8 to 256 bytes).
pub(crate) fn new_nonce(ctx: &mut Ctx<'_>) -> Vec<u8> {
    ctx.random::<32>().to_vec()
}
