//! The answer to a control request that changes something (`initiate`, `terminate`, `rekey`,
//! `reload`): one line on the control socket, and the exit status the CLI maps it to. A leaf:
//! the daemon writes it, the CLI reads it.

use crate::exit_code::{
    EXIT_FAILURE, EXIT_NOT_UP, EXIT_OK, EXIT_TIMED_OUT, EXIT_UNKNOWN_CONNECTION,
};

/// What became of a control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    UnknownConnection(String),
    NotUp(String),
    TimedOut(String),
    /// Negotiation failed, or a reload was refused.
    Failed(String),
}

/// Builds an outcome from its message.
type Make = fn(String) -> Outcome;

impl Outcome {
    const PREFIXES: [(&'static str, Make); 5] = [
        ("ok: ", Outcome::Done),
        ("error unknown-connection: ", Outcome::UnknownConnection),
        ("error not-up: ", Outcome::NotUp),
        ("error timeout: ", Outcome::TimedOut),
        ("error failed: ", Outcome::Failed),
    ];

    fn parts(&self) -> (&'static str, &str) {
        match self {
            Outcome::Done(m) => ("ok: ", m),
            Outcome::UnknownConnection(m) => ("error unknown-connection: ", m),
            Outcome::NotUp(m) => ("error not-up: ", m),
            Outcome::TimedOut(m) => ("error timeout: ", m),
            Outcome::Failed(m) => ("error failed: ", m),
        }
    }

    /// The answer as written on the control socket: the first line is the kind and a summary,
    /// further lines (a refused reload's error) follow.
    pub fn to_text(&self) -> String {
        let (p, m) = self.parts();
        format!("{p}{m}\n")
    }

    /// Reads an answer; anything else (an old daemon's "unknown request") is a failure.
    pub fn parse(text: &str) -> Outcome {
        let text = text.trim_end();
        for (p, f) in Self::PREFIXES {
            if let Some(m) = text.strip_prefix(p) {
                return f(m.to_string());
            }
        }
        if text.is_empty() {
            return Outcome::Failed("the daemon closed the connection without an answer".into());
        }
        Outcome::Failed(text.to_string())
    }

    /// The text after the kind.
    pub fn message(&self) -> &str {
        self.parts().1
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Done(_) => EXIT_OK,
            Outcome::UnknownConnection(_) => EXIT_UNKNOWN_CONNECTION,
            Outcome::NotUp(_) => EXIT_NOT_UP,
            Outcome::TimedOut(_) => EXIT_TIMED_OUT,
            Outcome::Failed(_) => EXIT_FAILURE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_reads_back_as_written_with_its_own_exit_status() {
        let all = [
            Outcome::Done("deleted".into()),
            Outcome::UnknownConnection("no connection \"x\"".into()),
            Outcome::NotUp("x is not up".into()),
            Outcome::TimedOut("after 30s".into()),
            Outcome::Failed("bad config\nline 2".into()),
        ];
        let mut codes = Vec::new();
        for o in all {
            assert_eq!(Outcome::parse(&o.to_text()), o);
            codes.push(o.exit_code());
        }
        assert_eq!(codes, vec![0, 3, 4, 5, 1]);
        assert_eq!(Outcome::parse("").exit_code(), 1);
        assert_eq!(
            Outcome::parse("error: unknown request \"rekey x\"\n"),
            Outcome::Failed("error: unknown request \"rekey x\"".into())
        );
    }
}
