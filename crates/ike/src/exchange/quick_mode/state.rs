//! A Quick Mode in flight (RFC 2409 §5.5): what it has sent, chosen and derived so far.

use std::time::{Duration, Instant};

use crate::config::{ChildConfig, TrafficSelector};
use crate::crypto::{DhPrivate, Secret};
use crate::event::{ChildSa, Role};
use crate::proposal::EspProposal;
use crate::retransmit::{ReplyCache, Retransmit};
use crate::wire::NotifyType;

/// How long a finished exchange is kept to answer retransmissions.
pub(super) const LINGER: Duration = Duration::from_secs(60);
/// QM3 goes out twice at once, and once more this long later unless a Quick Mode of ours is
/// waiting its turn. It is the last message: a responder that lost it never installs the pair
/// we already send on, and strongSwan as responder does not repeat QM2 to ask for it again (a
/// response is only resent for a retransmitted request). Seen in a soak against strongSwan
/// with 20 % of IKE lost: ESP into an SA the peer did not have, until the next rekey. A copy of
/// a QM3 the peer already took is a retransmitted request with no answer to resend, dropped.
pub(super) const QM3_ECHO_AFTER: Duration = Duration::from_secs(1);
/// CONNECTED notify (RFC 2408 §3.14.1), the answer to the commit bit.
pub(super) const CONNECTED: NotifyType = NotifyType(16384);

/// Progress of one Quick Mode, with what exists at that step.
pub(crate) enum QmState {
    /// Initiator: QM1 sent, with our DH pair when we offered PFS.
    I1Sent {
        dh: Option<DhPrivate>,
    },
    /// Responder: QM2 sent; `commit` when the initiator set the commit bit (RFC 2408 §4.6).
    R2Sent {
        agreed: Box<Agreed>,
        commit: bool,
    },
    /// Initiator after QM3 when the responder set the commit bit: the pair waits for CONNECTED.
    AwaitConnected {
        pending: Box<ChildSa>,
    },
    Done,
}

impl QmState {
    pub fn is_done(&self) -> bool {
        matches!(self, QmState::Done)
    }
}

/// What QM1 and QM2 settled (RFC 2409 §5.5): the transform, the responder's nonce, the
/// peer's SPI and, with PFS, g^xy of the Quick Mode.
pub(crate) struct Agreed {
    pub choice: EspChoice,
    pub spi_out: u32,
    pub nr: Vec<u8>,
    pub g_qm_xy: Option<Secret>,
}

/// The transform both sides agreed on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EspChoice {
    pub proposal: EspProposal,
    pub encap_mode: u16,
    pub lifetime: Duration,
    pub lifetime_kb: Option<u64>,
}

/// One Quick Mode exchange (RFC 2409 §5.5), identified by its message ID.
pub(crate) struct QuickMode {
    pub message_id: u32,
    pub role: Role,
    pub state: QmState,
    pub iv: Vec<u8>,
    pub child_index: usize,
    pub local_ts: TrafficSelector,
    pub remote_ts: TrafficSelector,
    pub spi_in: u32,
    /// The initiator's nonce (ours as initiator, the peer's as responder).
    pub ni: Vec<u8>,
    /// The SPI (ours) of the SA this exchange rekeys, deleted once the new one is up.
    pub replaces: Option<u32>,
    pub retransmit: Option<Retransmit>,
    /// QM3, sent again unasked (`QM3_ECHO_AFTER`): nobody answers it, so nobody asks again.
    pub echo: Option<Retransmit>,
    pub replies: ReplyCache,
    pub expires: Option<Instant>,
}

impl QuickMode {
    /// A Quick Mode for the configured pair `child_index`, with our SPI and the initiator's
    /// nonce.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        message_id: u32,
        role: Role,
        state: QmState,
        iv: Vec<u8>,
        child_index: usize,
        child: &ChildConfig,
        spi_in: u32,
        ni: Vec<u8>,
    ) -> Self {
        QuickMode {
            message_id,
            role,
            state,
            iv,
            child_index,
            local_ts: child.local_ts,
            remote_ts: child.remote_ts,
            spi_in,
            ni,
            replaces: None,
            retransmit: None,
            echo: None,
            replies: ReplyCache::default(),
            expires: None,
        }
    }

    /// Ours (we sent QM1) and still waiting for its QM2.
    pub fn awaits_qm2(&self) -> bool {
        self.role == Role::Initiator && self.retransmit.is_some()
    }

    /// Ours and not finished on the wire: waiting for its QM2, or still repeating its QM3.
    pub fn ours_in_flight(&self) -> bool {
        self.awaits_qm2() || (self.role == Role::Initiator && self.echo.is_some())
    }
}
