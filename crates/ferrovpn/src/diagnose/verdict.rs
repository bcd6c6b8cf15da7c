//! What `diagnose` concludes: a [`Verdict`] per problem, with its evidence and next steps, and
//! the tuning of the rules.

use serde::{Deserialize, Serialize};

use crate::snapshot::ConnSnapshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing wrong (healthy, or idle by configuration).
    Ok,
    /// Something is wrong; `diagnose` exits 1.
    Problem,
}

/// One conclusion about one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub connection: String,
    pub severity: Severity,
    /// A short stable tag for scripts: `unreachable`, `udp4500-blocked`, `no-proposal-chosen`,
    /// `psk-mismatch`, `identity-mismatch`, `selectors-refused`, `esp-not-arriving`,
    /// `esp-not-sent`, `simultaneous`, `peer-dead`, `expired-without-rekey`, `stalled`,
    /// `unprocessable`, `remote-access`, `failed`, `negotiating`, `healthy`, `waiting`, `held`,
    /// `half-open-limit`.
    pub code: String,
    /// The verdict line.
    pub verdict: String,
    /// The messages, cookies and counters that prove it.
    pub evidence: Vec<String>,
    /// What an engineer should do next.
    pub next: Vec<String>,
    /// Observations that decide nothing: unauthenticated noise, counted and shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Tuning of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// ESP is called one-way when packets went out and none came back for this long.
    pub esp_window_s: u64,
    /// Two phase 1 negotiations started this close together count as simultaneous.
    pub simultaneous_window_s: u64,
    /// Events older than this are not reasons for a verdict about a working tunnel.
    pub lookback_s: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            esp_window_s: 10,
            simultaneous_window_s: 30,
            lookback_s: 600,
        }
    }
}

pub(super) fn verdict(c: &ConnSnapshot, sev: Severity, code: &str, line: String) -> Verdict {
    Verdict {
        connection: c.name.clone(),
        severity: sev,
        code: code.to_string(),
        verdict: line,
        evidence: Vec::new(),
        next: Vec::new(),
        notes: Vec::new(),
    }
}
