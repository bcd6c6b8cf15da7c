//! A runtime control request (`initiate`/`terminate`/`rekey`) waiting for the network: a leaf
//! that the daemon's state holds and `runtime` fills and answers.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::control::{ConnOp, Outcome};

/// A request whose answer waits for the network.
pub(super) struct Pending {
    pub(super) conn: usize,
    pub(super) op: ConnOp,
    pub(super) deadline: Instant,
    pub(super) timeout: Duration,
    /// The connection's failure count when the request came.
    pub(super) failures: u64,
    /// Rekey: inbound SPIs of the pairs it replaces, and how many new pairs to wait for.
    pub(super) old_spis: Vec<u32>,
    pub(super) want: usize,
    pub(super) reply: Sender<Outcome>,
}
