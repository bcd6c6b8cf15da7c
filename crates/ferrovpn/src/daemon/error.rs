//! Why the daemon could not start or stopped.

use std::io;

use crate::runstate::OwnershipError;

/// Why `run` failed; the Display text is the whole message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}: {1}")]
    Io(&'static str, io::Error),
    #[error("connection \"{conn}\": {what}")]
    Setup { conn: String, what: String },
    /// A name the daemon needs is held by something it did not create.
    #[error("{0}")]
    Ownership(#[from] OwnershipError),
}
