//! Where phase 1 of an ISAKMP SA is, with what that step has (RFC 2409 §5): each state holds
//! only the values that exist in it, as rustls types each handshake step. The chosen proposal
//! exists from MM2/AM2 on, our DH pair only until the keys are derived, the keys from MM4/AM2
//! on; a state without them cannot reach them.

use std::sync::Arc;

use crate::config::Phase1Mode;
use crate::crypto::DhPrivate;
use crate::dh_job::DhJobId;
use crate::keyed::Keyed;
use crate::proposal::IkeProposal;
use crate::role::Role;
use crate::wire::SaPayload;

/// Phase 1 progress, named after the last message sent or expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase1State {
    MmI1Sent,
    MmI3Sent,
    MmI5Sent,
    MmR2Sent,
    MmR4Sent,
    AmI1Sent,
    AmR2Sent,
    Established,
    /// Finished (failed or deleted): the endpoint removes it.
    Dead,
}

impl Phase1State {
    pub fn name(self) -> &'static str {
        match self {
            Phase1State::MmI1Sent => "MM1 sent",
            Phase1State::MmI3Sent => "MM3 sent",
            Phase1State::MmI5Sent => "MM5 sent",
            Phase1State::MmR2Sent => "MM2 sent",
            Phase1State::MmR4Sent => "MM4 sent",
            Phase1State::AmI1Sent => "AM1 sent",
            Phase1State::AmR2Sent => "AM2 sent",
            Phase1State::Established => "established",
            Phase1State::Dead => "dead",
        }
    }
}

/// Our half of the DH exchange (MM3, MM4, AM1, AM2) and the initiator's SA payload body,
/// which HASH_I and HASH_R cover (RFC 2409 §5).
pub(crate) struct OurKe {
    pub sai_b: Vec<u8>,
    /// Shared with a [`DhJob`](crate::dh_job::DhJob) while g^xy is computed.
    pub dh: Arc<DhPrivate>,
    pub ke: Vec<u8>,
    pub nonce: Vec<u8>,
}

/// The peer's KE arrived and the driver computes g^xy and the keys (`dh_job`): what the
/// exchange continues with when the job is done.
pub(crate) struct Computing {
    pub job: DhJobId,
    pub proposal: IkeProposal,
    pub ours: Box<OurKe>,
    /// The peer's message that brought the KE, parsed again to continue and kept as the
    /// request our answer is cached for; the same bytes again are a retransmission.
    pub request: Vec<u8>,
}

/// Phase 1 with the data of each step.
pub(crate) enum Phase1 {
    /// Nothing done yet: a responder before it took in MM1/AM1 (an initiator is here only
    /// without a proposal to offer).
    Start,
    /// MM1 sent: the body of our SA payload.
    MmI1Sent {
        sai_b: Vec<u8>,
    },
    /// MM2 sent: the chosen proposal and the initiator's SA payload body.
    MmR2Sent {
        proposal: IkeProposal,
        sai_b: Vec<u8>,
    },
    /// MM3 sent: the chosen proposal and our DH half.
    MmI3Sent {
        proposal: IkeProposal,
        ours: Box<OurKe>,
    },
    /// AM1 sent: our DH half; the proposal comes with AM2.
    AmI1Sent(Box<OurKe>),
    /// MM3 received, keys being computed (MM4 not sent yet).
    MmR3Computing(Box<Computing>),
    /// MM4 received, keys being computed (MM5 not sent yet).
    MmI4Computing(Box<Computing>),
    /// AM1 received and a proposal chosen (`reply`), keys being computed (AM2 not sent yet).
    AmR1Computing(Box<Computing>, Box<SaPayload>),
    /// AM2 received, keys being computed (AM3 not sent yet).
    AmI2Computing(Box<Computing>),
    /// MM4 sent: keys derived; the initiator has still to prove it knows the PSK (MM5).
    MmR4Sent(Arc<Keyed>),
    /// MM5 sent: keys derived; the responder has still to prove it (MM6).
    MmI5Sent(Arc<Keyed>),
    /// AM2 sent: keys derived; the initiator has still to prove it (AM3).
    AmR2Sent(Arc<Keyed>),
    Established(Arc<Keyed>),
    Dead,
}

impl Phase1 {
    /// The progress name; `Start` reads as the state the SA was created for.
    pub fn state(&self, role: Role, mode: Phase1Mode) -> Phase1State {
        match self {
            Phase1::Start => match (role, mode) {
                (Role::Initiator, Phase1Mode::Main) => Phase1State::MmI1Sent,
                (Role::Initiator, Phase1Mode::Aggressive) => Phase1State::AmI1Sent,
                (Role::Responder, Phase1Mode::Main) => Phase1State::MmR2Sent,
                (Role::Responder, Phase1Mode::Aggressive) => Phase1State::AmR2Sent,
            },
            Phase1::MmI1Sent { .. } => Phase1State::MmI1Sent,
            Phase1::MmR2Sent { .. } => Phase1State::MmR2Sent,
            Phase1::MmI3Sent { .. } => Phase1State::MmI3Sent,
            Phase1::AmI1Sent(_) => Phase1State::AmI1Sent,
            // While computing, the last message sent is still the one before.
            Phase1::MmR3Computing(_) => Phase1State::MmR2Sent,
            Phase1::MmI4Computing(_) => Phase1State::MmI3Sent,
            Phase1::AmR1Computing(..) => Phase1State::AmR2Sent,
            Phase1::AmI2Computing(_) => Phase1State::AmI1Sent,
            Phase1::MmR4Sent(_) => Phase1State::MmR4Sent,
            Phase1::MmI5Sent(_) => Phase1State::MmI5Sent,
            Phase1::AmR2Sent(_) => Phase1State::AmR2Sent,
            Phase1::Established(_) => Phase1State::Established,
            Phase1::Dead => Phase1State::Dead,
        }
    }

    /// The keys, in the states that have them.
    pub fn keyed(&self) -> Option<&Arc<Keyed>> {
        match self {
            Phase1::MmR4Sent(k)
            | Phase1::MmI5Sent(k)
            | Phase1::AmR2Sent(k)
            | Phase1::Established(k) => Some(k),
            _ => None,
        }
    }

    pub fn keyed_mut(&mut self) -> Option<&mut Arc<Keyed>> {
        match self {
            Phase1::MmR4Sent(k)
            | Phase1::MmI5Sent(k)
            | Phase1::AmR2Sent(k)
            | Phase1::Established(k) => Some(k),
            _ => None,
        }
    }

    /// The chosen ISAKMP SA proposal, in the states that have one.
    pub fn proposal(&self) -> Option<IkeProposal> {
        match self {
            Phase1::MmR2Sent { proposal, .. } | Phase1::MmI3Sent { proposal, .. } => {
                Some(*proposal)
            }
            Phase1::MmR3Computing(c)
            | Phase1::MmI4Computing(c)
            | Phase1::AmR1Computing(c, _)
            | Phase1::AmI2Computing(c) => Some(c.proposal),
            _ => self.keyed().map(|k| k.proposal),
        }
    }

    /// The job being waited for, in the computing states.
    pub fn computing(&self) -> Option<&Computing> {
        match self {
            Phase1::MmR3Computing(c)
            | Phase1::MmI4Computing(c)
            | Phase1::AmR1Computing(c, _)
            | Phase1::AmI2Computing(c) => Some(c),
            _ => None,
        }
    }
}
