//! Phase 1 keys (RFC 2409 §5, App. B): our DH pair and nonce, and SKEYID with its children,
//! computed by a [`DhJob`] inline or by the driver (`dh_job`).

use std::sync::Arc;

use crate::config::Phase1Auth;
use crate::context::Ctx;
use crate::crypto::{CryptoError, Phase1Keys};
use crate::dh_job::{DhJob, Schedule, SkeyidFrom};
use crate::event::{Failure, Role};
use crate::keyed::Keyed;
use crate::proposal::IkeProposal;
use crate::sa::{Computing, IkeSa, OurKe, Phase1};

/// (g^xi, g^xr, Ni, Nr) from our half and the peer's, by role.
fn halves<'a>(
    role: Role,
    ours: &'a OurKe,
    peer_ke: &'a [u8],
    peer_nonce: &'a [u8],
) -> (&'a [u8], &'a [u8], &'a [u8], &'a [u8]) {
    match role {
        Role::Initiator => (&ours.ke, peer_ke, &ours.nonce, peer_nonce),
        Role::Responder => (peer_ke, &ours.ke, peer_nonce, &ours.nonce),
    }
}

/// The job computing g^xy, SKEYID and the derived keys once both KE and both nonces are
/// known (RFC 2409 §5, App. B).
pub(crate) fn key_job(
    ctx: &Ctx<'_>,
    sa: &IkeSa,
    proposal: IkeProposal,
    ours: &OurKe,
    peer_ke: &[u8],
    peer_nonce: &[u8],
) -> DhJob {
    let (g_xi, g_xr, ni, nr) = halves(sa.role, ours, peer_ke, peer_nonce);
    let schedule = Schedule {
        hash: proposal.hash,
        cipher: proposal.cipher,
        auth: match ctx.cfg.auth {
            Phase1Auth::Psk => SkeyidFrom::Psk(ctx.cfg.psk.clone()),
            Phase1Auth::Certificate(_) => SkeyidFrom::Signature,
        },
        ni: ni.to_vec(),
        nr: nr.to_vec(),
        cky_i: sa.cookies.initiator_spi,
        cky_r: sa.cookies.responder_spi,
        g_xi: g_xi.to_vec(),
        g_xr: g_xr.to_vec(),
    };
    DhJob::new(Arc::clone(&ours.dh), peer_ke, schedule)
}

/// The keys of the ISAKMP SA from a finished job; `InvalidKeyExchange` when the peer's public
/// value was not a valid one of the group.
pub(crate) fn keyed(
    sa: &IkeSa,
    proposal: IkeProposal,
    ours: &OurKe,
    peer_ke: &[u8],
    done: Result<Phase1Keys, CryptoError>,
    peer_id_b: Vec<u8>,
) -> Result<Arc<Keyed>, Failure> {
    let keys = done.map_err(|_| Failure::InvalidKeyExchange)?;
    let (g_xi, g_xr) = match sa.role {
        Role::Initiator => (ours.ke.as_slice(), peer_ke),
        Role::Responder => (peer_ke, ours.ke.as_slice()),
    };
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

/// What an exchange that needs the keys does next.
pub(crate) enum KeysNow {
    /// Computed inline: continue with them.
    Ready(Result<Phase1Keys, CryptoError>, Box<OurKe>),
    /// Handed to the driver: the SA now waits in a computing state.
    Deferred,
}

impl IkeSa {
    /// Runs the key job inline, or (`Settings::dh_offload`) queues it for the driver and
    /// moves the SA to the computing state `wait` makes, keeping `request` to continue with.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn keys_now(
        &mut self,
        ctx: &mut Ctx<'_>,
        proposal: IkeProposal,
        ours: Box<OurKe>,
        peer_ke: &[u8],
        peer_nonce: &[u8],
        request: &[u8],
        wait: impl FnOnce(Box<Computing>) -> Phase1,
    ) -> KeysNow {
        let job = key_job(ctx, self, proposal, &ours, peer_ke, peer_nonce);
        if !ctx.jobs.offload {
            return KeysNow::Ready(job.run().result, ours);
        }
        let job = ctx.jobs.submit(self.cookies.initiator_spi, job);
        self.phase = wait(Box::new(Computing {
            job,
            proposal,
            ours,
            request: request.to_vec(),
        }));
        KeysNow::Deferred
    }
}

/// A 32-byte nonce (RFC 2409 §5: 8 to 256 bytes).
pub(crate) fn new_nonce(ctx: &mut Ctx<'_>) -> Vec<u8> {
    ctx.random::<32>().to_vec()
}
