//! What `check` tells and `up` logs about a valid configuration: warnings and notes.

use std::fmt;

/// How loud a [`Remark`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Legal, but weaker or less interoperable than it looks, or `up` may still fail.
    Warning,
    /// Worth knowing.
    Note,
}

/// What a remark is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The configuration file itself.
    File,
    Daemon,
    Connection(String),
}

/// Something about a valid configuration the operator should know; `check` prints these and
/// `up` logs them at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark {
    pub severity: Severity,
    pub scope: Scope,
    pub text: String,
}

impl fmt::Display for Remark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::File => f.write_str(&self.text),
            Scope::Daemon => write!(f, "daemon: {}", self.text),
            Scope::Connection(c) => write!(f, "connection \"{c}\": {}", self.text),
        }
    }
}
