//! Why an incoming datagram was dropped without changing state.

use crate::wire::{PayloadType, WireError};

/// Why an incoming datagram was dropped without changing state; each is a counter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
    #[error("missing {0:?} payload")]
    Missing(PayloadType),
    #[error("{0} HASH does not verify")]
    BadHash(&'static str),
    #[error("retransmission of a message already answered")]
    Duplicate,
}
