//! Reading the evidence in a connection's history: which records are messages, which were
//! authenticated, and the evidence lines verdicts quote.

use super::verdict::{verdict, Severity, Verdict};
use crate::snapshot::{ConnSnapshot, FailureRecord, Record, What};

/// What every explanation reads: the connection, its history, the record that decided the
/// verdict (`h[i]`), the clock, the peer's address and the verdict's code.
#[derive(Clone, Copy)]
pub(super) struct Facts<'a> {
    pub c: &'a ConnSnapshot,
    pub h: &'a [Record],
    pub r: &'a Record,
    pub i: usize,
    pub now_ms: u64,
    pub peer: &'a str,
    pub code: &'static str,
}

impl Facts<'_> {
    /// A `Problem` verdict on this connection, under this code, saying `summary`.
    pub(super) fn problem(&self, summary: String) -> Verdict {
        verdict(self.c, Severity::Problem, self.code, summary)
    }

    /// The last `max` messages of the exchange that failed, as evidence lines.
    pub(super) fn messages(&self, max: usize) -> Vec<String> {
        messages_of(self.h, &self.r.cookies, self.now_ms, max)
    }

    /// The failure as an evidence line, with its cookies.
    pub(super) fn failure_with_cookies(&self) -> String {
        format!("{} (cookies {})", failure_line(self.r), self.r.cookies)
    }
}

pub(super) fn ago(now_ms: u64, t_ms: u64) -> String {
    let d = now_ms.saturating_sub(t_ms);
    if d < 10_000 {
        format!("{:.1}s ago", d as f64 / 1000.0)
    } else {
        format!("{}s ago", d / 1000)
    }
}

pub(super) fn is_msg(r: &Record, want_sent: bool) -> Option<(&str, bool)> {
    match &r.what {
        What::Message {
            name,
            sent,
            udp4500,
            ..
        } if *sent == want_sent => Some((name.as_str(), *udp4500)),
        _ => None,
    }
}

pub(super) fn initiator_cookie(cookies: &str) -> &str {
    cookies.split('_').next().unwrap_or("")
}

/// Whether the evidence of `h[i]` was authenticated: anything after phase 1 authenticated the
/// peer, our own negotiations' timeouts, protected notifies.
pub(super) fn authenticated(h: &[Record], i: usize, established: &[&str]) -> bool {
    let Some(r) = h.get(i) else { return false };
    if established.contains(&r.cookies.as_str()) {
        return true;
    }
    let plain_notify = h.iter().any(|x| {
        matches!(
            x.what,
            What::Notify {
                authenticated: false,
                ..
            }
        ) && initiator_cookie(&x.cookies) == initiator_cookie(&r.cookies)
    });
    match &r.what {
        // Explained by a plain notify (see `classify`): that part is unauthenticated.
        What::IkeFailed { .. } if plain_notify => false,
        What::IkeFailed { failure } => match failure {
            // Only our own messages are retransmitted: these are our negotiations.
            FailureRecord::NoResponse { .. } | FailureRecord::SilentAfterMm5 { .. } => true,
            // The ID is checked after the HASH that covers it (MM5, MM6, AM2), except in an AM1
            // we answer as responder, which nothing authenticates yet (RFC 2409 §5).
            FailureRecord::IdentityMismatch { .. } => !h.iter().any(|x| {
                initiator_cookie(&x.cookies) == initiator_cookie(&r.cookies)
                    && is_msg(x, false).is_some_and(|(n, _)| n == "AM1")
            }),
            _ => h.iter().any(|x| {
                initiator_cookie(&x.cookies) == initiator_cookie(&r.cookies)
                    && is_msg(x, true).is_some_and(|(n, _)| n == "MM1" || n == "AM1")
            }),
        },
        What::Notify { authenticated, .. } => *authenticated,
        // Our own state (deletions, DPD, expiries) and anything after phase 1.
        _ => true,
    }
}

/// Unauthenticated noise, counted: it is shown, it decides nothing.
pub(super) fn noise_notes(c: &ConnSnapshot, ignored: usize) -> Vec<String> {
    let mut v = Vec::new();
    if c.unauthenticated_requests > 0 {
        v.push(format!(
            "{} unauthenticated Phase 1 request{} claiming to come from the peer's address {} never authenticated — possibly spoofed",
            c.unauthenticated_requests,
            if c.unauthenticated_requests == 1 { "" } else { "s" },
            c.remote_addr
        ));
    }
    if ignored > 0 {
        v.push(format!(
            "{ignored} event{} resting only on unauthenticated messages (failed half-open negotiations, plain notifies) did not count against the working tunnel",
            if ignored == 1 { "" } else { "s" }
        ));
    }
    v
}

/// Every message of one negotiation (cookie pair), in one line each.
pub(super) fn messages_of(h: &[Record], cookies: &str, now_ms: u64, max: usize) -> Vec<String> {
    let all: Vec<String> = h
        .iter()
        .filter(|r| r.cookies == cookies)
        .filter_map(|r| match &r.what {
            What::Message {
                name,
                sent,
                retransmission,
                udp4500,
                ..
            } => Some(format!(
                "{} {name}{}{} ({})",
                if *sent { "sent" } else { "received" },
                if *retransmission { " (retransmit)" } else { "" },
                if *udp4500 {
                    " on UDP 4500"
                } else {
                    " on UDP 500"
                },
                ago(now_ms, r.t_ms)
            )),
            _ => None,
        })
        .collect();
    let skip = all.len().saturating_sub(max);
    all.into_iter().skip(skip).collect()
}

pub(super) fn last_heard(h: &[Record], now_ms: u64) -> String {
    match h.iter().rev().find(|r| is_msg(r, false).is_some()) {
        Some(r) => format!(
            "last message received from the peer: {} {} ({})",
            is_msg(r, false).map_or("", |m| m.0),
            r.cookies,
            ago(now_ms, r.t_ms)
        ),
        None => "nothing at all has been received from the peer since the daemon started \
                 (or in the last events kept)"
            .to_string(),
    }
}

pub(super) fn failure_line(r: &Record) -> String {
    match &r.what {
        What::IkeFailed { failure } => format!("phase 1 failed: {failure}"),
        What::ChildFailed { failure } => format!("Quick Mode failed: {failure}"),
        What::Notify { notify, .. } => format!("peer sent notify {notify}"),
        other => format!("{other:?}"),
    }
}
