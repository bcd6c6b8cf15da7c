//! Why a configuration was refused.

use std::path::PathBuf;

/// Why a configuration was refused; the Display text is the whole message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("daemon: {0}")]
    Daemon(String),
    #[error("no [[connection]] defined")]
    NoConnections,
    #[error("connection \"{name}\": {problem}")]
    Connection { name: String, problem: String },
}
