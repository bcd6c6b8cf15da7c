//! `ferrovpn diagnose`: the reasoning of an engineer reading an IKEv1 trace, done by a pure
//! function. From a [`Snapshot`] of one connection (its configuration, live SAs, counters, the
//! recent IKE events and the per-second ESP counter samples) it returns [`Verdict`]s, each with
//! the evidence that proves it and the next step to take. No I/O here: the daemon builds the
//! snapshot, the CLI fetches it over the control socket and prints the verdicts.

use crate::snapshot::What;
pub use crate::snapshot::{ConnSnapshot, IkeSaSnapshot, IpsecSaSnapshot, Snapshot};

mod auth;
mod classify;
pub mod command;
mod evidence;
mod explain;
mod path;
mod refusal;
pub mod render;
mod state;
#[cfg(test)]
mod tests;
mod verdict;

pub use verdict::{Options, Severity, Verdict};

use classify::classify;
use evidence::{authenticated, noise_notes};
use explain::explain;
use state::{esp_one_way, half_open_limit, quiet, simultaneous, stalled_responder};

/// Verdicts for every connection of the snapshot (or only `only`), problems first.
pub fn diagnose_all(s: &Snapshot, only: Option<&str>, opts: &Options) -> Vec<Verdict> {
    s.connections
        .iter()
        .filter(|c| only.is_none_or(|n| n == c.name))
        .flat_map(|c| {
            let mut v = diagnose(c, s.now_ms, opts);
            half_open_limit(c, &s.half_open, s.now_ms, opts, &mut v);
            v
        })
        .collect()
}

/// The verdicts for one connection, problems first, newest first.
pub fn diagnose(c: &ConnSnapshot, now_ms: u64, opts: &Options) -> Vec<Verdict> {
    let h = &c.history;
    let up = !c.ipsec_sas.is_empty();
    let recent_from = now_ms.saturating_sub(opts.lookback_s * 1000);
    // What happened since the tunnel last worked: failures before the last established IPsec
    // SA have been overcome.
    let since = h
        .iter()
        .rposition(|r| matches!(r.what, What::ChildEstablished { .. }))
        .map_or(0, |i| i + 1);
    let established_cookies: Vec<&str> = h
        .iter()
        .filter(|r| matches!(r.what, What::IkeEstablished { .. }))
        .map(|r| r.cookies.as_str())
        .collect();

    let mut out: Vec<Verdict> = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    // Authenticated state decides: with the tunnel up, what only unauthenticated messages
    // say (a spoofed MM1 and its fate, a plain notify) is a note, never a verdict.
    let mut noise = 0usize;
    for (i, r) in h.iter().enumerate().skip(since).rev() {
        let Some(kind) = classify(c, h, i, &established_cookies) else {
            continue;
        };
        if up && r.t_ms < recent_from {
            continue;
        }
        if up && !authenticated(h, i, &established_cookies) {
            noise += 1;
            continue;
        }
        let code = kind.code();
        if seen.contains(&code) {
            continue;
        }
        seen.push(code);
        let repeats = (since..h.len())
            .filter(|&j| classify(c, h, j, &established_cookies).is_some_and(|k| k.code() == code))
            .count();
        let mut v = explain(c, now_ms, i, kind, repeats);
        if !authenticated(h, i, &established_cookies) {
            v.evidence.push("all of this rests on unauthenticated messages (before phase 1 authenticated the peer): if the peer's configuration is as expected, they may have been spoofed".into());
            // Forged evidence must not talk anyone into a configuration change: verify first.
            v.next.insert(0, "first confirm on the peer itself (its logs, or a capture read with `ferrovpn decode`) that it sent these messages; only then act on the advice below".into());
        }
        out.push(v);
    }
    if up {
        out.extend(esp_one_way(c, now_ms, opts));
    } else {
        out.extend(stalled_responder(c));
    }
    out.extend(simultaneous(c, now_ms, opts));

    if out.iter().all(|v| v.severity == Severity::Ok) {
        out.push(quiet(c, now_ms, up));
    }
    out.sort_by_key(|v| v.severity != Severity::Problem);
    let notes = noise_notes(c, noise);
    if let Some(v) = out.first_mut() {
        v.notes = notes;
    }
    out
}
