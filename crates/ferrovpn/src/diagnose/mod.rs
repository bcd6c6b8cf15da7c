//! `ferrovpn diagnose`: the reasoning of an engineer reading an IKEv1 trace, done by a pure
//! function. From a [`Snapshot`] of one connection (its configuration, live SAs, counters, the
//! recent IKE events and the per-second ESP counter samples) it returns [`Verdict`]s, each with
//! the evidence that proves it and the next step to take. No I/O here: the daemon builds the
//! snapshot, the CLI fetches it over the control socket and prints the verdicts.

use serde::{Deserialize, Serialize};

pub use crate::snapshot::{ConnSnapshot, IkeSaSnapshot, IpsecSaSnapshot, Snapshot};
use crate::snapshot::{FailureRecord, Record, Sample, What};

pub mod command;
pub mod render;
#[cfg(test)]
mod tests;

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
    /// `unprocessable`, `remote-access`, `failed`, `negotiating`, `healthy`, `waiting`.
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

/// Verdicts for every connection of the snapshot (or only `only`), problems first.
pub fn diagnose_all(s: &Snapshot, only: Option<&str>, opts: &Options) -> Vec<Verdict> {
    s.connections
        .iter()
        .filter(|c| only.is_none_or(|n| n == c.name))
        .flat_map(|c| diagnose(c, s.now_ms, opts))
        .collect()
}

fn ago(now_ms: u64, t_ms: u64) -> String {
    let d = now_ms.saturating_sub(t_ms);
    if d < 10_000 {
        format!("{:.1}s ago", d as f64 / 1000.0)
    } else {
        format!("{}s ago", d / 1000)
    }
}

fn is_msg(r: &Record, want_sent: bool) -> Option<(&str, bool)> {
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

fn initiator_cookie(cookies: &str) -> &str {
    cookies.split('_').next().unwrap_or("")
}

/// How a record touches a known diagnosis; `None` for records that are not a failure.
enum Kind {
    Unreachable,
    Udp4500Blocked,
    /// Silent after MM5; `probe` as in `FailureRecord::SilentAfterMm5`.
    PskSilent {
        probe: Option<String>,
    },
    /// The peer sent something we cannot process (answered with `notify`).
    Unprocessable {
        message: String,
        reason: String,
        notify: Option<String>,
    },
    /// The peer is a remote-access client or server (XAuth / Mode Config).
    RemoteAccess {
        detail: String,
    },
    Stalled(String),
    NoProposal {
        phase1: bool,
        ours: String,
        theirs: Option<String>,
    },
    Psk {
        ours_detail: Option<String>,
        notify: Option<String>,
    },
    Identity {
        expected: String,
        received: String,
    },
    Selectors {
        ours: String,
        theirs: Option<String>,
    },
    IdInfoPhase1,
    PeerDead,
    Expired {
        what: String,
    },
    Other(String),
}

impl Kind {
    fn code(&self) -> &'static str {
        match self {
            Kind::Unreachable => "unreachable",
            Kind::Udp4500Blocked => "udp4500-blocked",
            Kind::PskSilent { .. } | Kind::Psk { .. } => "psk-mismatch",
            Kind::Unprocessable { .. } => "unprocessable",
            Kind::RemoteAccess { .. } => "remote-access",
            Kind::Stalled(_) => "stalled",
            Kind::NoProposal { .. } => "no-proposal-chosen",
            Kind::Identity { .. } | Kind::IdInfoPhase1 => "identity-mismatch",
            Kind::Selectors { .. } => "selectors-refused",
            Kind::PeerDead => "peer-dead",
            Kind::Expired { .. } => "expired-without-rekey",
            Kind::Other(_) => "failed",
        }
    }
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

/// Whether the evidence of `h[i]` was authenticated: anything after phase 1 authenticated the
/// peer, our own negotiations' timeouts, protected notifies.
fn authenticated(h: &[Record], i: usize, established: &[&str]) -> bool {
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
fn noise_notes(c: &ConnSnapshot, ignored: usize) -> Vec<String> {
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

/// What kind of failure record `h[i]` is, if any.
fn classify(c: &ConnSnapshot, h: &[Record], i: usize, established: &[&str]) -> Option<Kind> {
    let r = h.get(i)?;
    let phase1_done = established.contains(&r.cookies.as_str());
    let from_notify = |n: &str, in_quick_mode: bool| -> Option<Kind> {
        match n {
            "NO-PROPOSAL-CHOSEN" => Some(Kind::NoProposal {
                phase1: !in_quick_mode,
                ours: if in_quick_mode {
                    c.esp_proposals.clone()
                } else {
                    c.ike_proposals.clone()
                },
                theirs: None,
            }),
            "AUTHENTICATION-FAILED" | "INVALID-HASH-INFORMATION" if !in_quick_mode => {
                Some(Kind::Psk {
                    ours_detail: None,
                    notify: Some(n.to_string()),
                })
            }
            "PAYLOAD-MALFORMED" | "INVALID-PAYLOAD-TYPE" if !in_quick_mode => Some(Kind::Psk {
                ours_detail: None,
                notify: Some(n.to_string()),
            }),
            "INVALID-ID-INFORMATION" if in_quick_mode => Some(Kind::Selectors {
                ours: c.selectors.join(", "),
                theirs: None,
            }),
            "INVALID-ID-INFORMATION" => Some(Kind::IdInfoPhase1),
            _ => None,
        }
    };
    // A plain error notify the peer sent on this negotiation before it gave up: recorded
    // only (it may be forged), but the best explanation of the silence that followed.
    let notified = || -> Option<Kind> {
        h.iter().rev().find_map(|x| match &x.what {
            What::Notify { notify, .. }
                if initiator_cookie(&x.cookies) == initiator_cookie(&r.cookies) =>
            {
                from_notify(notify, false)
            }
            _ => None,
        })
    };
    let from_failure = |f: &FailureRecord, in_quick_mode: bool| -> Kind {
        match f {
            FailureRecord::NoResponse { .. } | FailureRecord::SilentAfterMm5 { .. }
                if !in_quick_mode && notified().is_some() =>
            {
                notified().unwrap_or(Kind::Other(f.to_string()))
            }
            FailureRecord::NoResponse { message, .. } => {
                let floated = h
                    .iter()
                    .any(|x| x.cookies == r.cookies && is_msg(x, true).is_some_and(|(_, u)| u));
                match message.as_str() {
                    "MM1" | "AM1" => Kind::Unreachable,
                    _ if floated && !in_quick_mode && !phase1_done => Kind::Udp4500Blocked,
                    "MM5" => Kind::PskSilent { probe: None },
                    m => Kind::Stalled(m.to_string()),
                }
            }
            FailureRecord::SilentAfterMm5 { probe, .. } => match probe.as_str() {
                "unanswered" => Kind::Udp4500Blocked,
                p => Kind::PskSilent {
                    probe: Some(p.to_string()),
                },
            },
            FailureRecord::NoProposalChosen { theirs, .. } if theirs.contains("XAuth") => {
                Kind::RemoteAccess {
                    detail: format!("the peer offered {theirs}"),
                }
            }
            FailureRecord::Abandoned { .. } => Kind::Other(f.to_string()),
            FailureRecord::PeerNotify { notify } => {
                from_notify(notify, in_quick_mode).unwrap_or_else(|| Kind::Other(f.to_string()))
            }
            FailureRecord::NoProposalChosen { ours, theirs } => Kind::NoProposal {
                phase1: !in_quick_mode,
                ours: ours.clone(),
                theirs: Some(theirs.clone()),
            },
            FailureRecord::AuthenticationFailed { detail } => Kind::Psk {
                ours_detail: Some(detail.clone()),
                notify: None,
            },
            FailureRecord::IdentityMismatch { expected, received } => Kind::Identity {
                expected: expected.clone(),
                received: received.clone(),
            },
            FailureRecord::InvalidSelectors { ours, theirs } => Kind::Selectors {
                ours: ours.clone(),
                theirs: Some(theirs.clone()),
            },
            FailureRecord::Other { detail } => Kind::Other(detail.clone()),
        }
    };
    match &r.what {
        // A half-open SA that never heard back is noise, counted in the notes.
        What::IkeFailed {
            failure: FailureRecord::Abandoned { .. },
        } => None,
        What::Unprocessable {
            remote_access: true,
            reason,
            ..
        } => Some(Kind::RemoteAccess {
            detail: reason.clone(),
        }),
        What::Unprocessable {
            message,
            reason,
            notify,
            ..
        } => Some(Kind::Unprocessable {
            message: message.clone(),
            reason: reason.clone(),
            notify: notify.clone(),
        }),
        What::IkeFailed { failure } => Some(from_failure(failure, false)),
        What::ChildFailed { failure } => Some(from_failure(failure, true)),
        What::Notify { notify, .. } => from_notify(notify, phase1_done),
        What::PeerDead => Some(Kind::PeerDead),
        What::ChildDeleted { spi_in, reason, .. } if reason.contains("lifetime expired") => {
            // Expired without a successor: no IPsec SA was established after this one.
            let born = h.iter().position(
                |x| matches!(x.what, What::ChildEstablished { spi_in: s, .. } if s == *spi_in),
            );
            let successor = h.iter().enumerate().any(|(j, x)| {
                j < i
                    && born.is_some_and(|b| j > b)
                    && matches!(x.what, What::ChildEstablished { .. })
            });
            (!successor && reason.contains("lifetime")).then(|| Kind::Expired {
                what: format!("IPsec SA spi in {spi_in:08x}"),
            })
        }
        What::IkeDeleted { reason } if reason.contains("lifetime expired") => {
            let born = h.iter().position(|x| {
                x.cookies == r.cookies && matches!(x.what, What::IkeEstablished { .. })
            });
            let successor = h.iter().enumerate().any(|(j, x)| {
                j < i
                    && born.is_some_and(|b| j > b)
                    && matches!(x.what, What::IkeEstablished { .. })
            });
            (!successor).then(|| Kind::Expired {
                what: format!("ISAKMP SA {}", r.cookies),
            })
        }
        _ => None,
    }
}

fn verdict(c: &ConnSnapshot, sev: Severity, code: &str, line: String) -> Verdict {
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

/// Every message of one negotiation (cookie pair), in one line each.
fn messages_of(h: &[Record], cookies: &str, now_ms: u64, max: usize) -> Vec<String> {
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

fn last_heard(h: &[Record], now_ms: u64) -> String {
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

fn explain(c: &ConnSnapshot, now_ms: u64, i: usize, kind: Kind, repeats: usize) -> Verdict {
    let h = &c.history;
    let fallback = Record {
        t_ms: now_ms,
        unix_ms: 0,
        cookies: String::new(),
        message_id: 0,
        what: What::InitialContact,
    };
    let r = h.get(i).unwrap_or(&fallback);
    let peer = &c.remote_addr;
    let code = kind.code();
    let mut v = match kind {
        Kind::Unreachable => {
            let first = if c.aggressive { "AM1" } else { "MM1" };
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!(
                    "no reply to {first} from {peer} after all retransmissions: the peer is unreachable, not running, or UDP 500 is blocked on the path"
                ),
            );
            let sends = h
                .iter()
                .filter(|x| x.cookies == r.cookies && is_msg(x, true).is_some())
                .count();
            v.evidence.push(format!(
                "{first} with cookies {} sent {sends} times (first send and retransmissions over {:.1}s), no answer",
                r.cookies,
                c.give_up_ms as f64 / 1000.0
            ));
            v.evidence.push(last_heard(h, now_ms));
            v.next = vec![
                format!("check that ferrovpn (or the gateway) runs on {peer} and has a connection for {}", c.local_addr),
                format!("capture on both ends: tcpdump -ni any 'udp port 500 and host {peer}'. If {first} arrives at the peer and its reply is sent but never arrives here, the return path drops UDP 500 (one-way blocking); if {first} never arrives, the path towards the peer does"),
                "ask the ISP or firewall owner to allow UDP 500 and 4500 (and IP protocol 50) between the two gateways".into(),
            ];
            v
        }
        Kind::Udp4500Blocked => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!(
                    "phase 1 reached UDP 500 answers, then no reply once it floated to UDP 4500 (NAT-T): UDP 4500 is blocked between here and {peer}"
                ),
            );
            v.evidence.push(format!("cookies {}", r.cookies));
            v.evidence.extend(messages_of(h, &r.cookies, now_ms, 8));
            v.evidence.push(format!("then: {}", failure_line(r)));
            if matches!(
                &r.what,
                What::IkeFailed {
                    failure: FailureRecord::SilentAfterMm5 { .. }
                }
            ) {
                v.evidence.push("probe: a fresh MM1 (own cookie) sent to the peer's UDP 4500 got no answer either, so it is the path, not the keys".into());
            }
            v.next = vec![
                "UDP 500 passes and UDP 4500 does not: a firewall or ISP drops UDP 4500 (often in one direction only). Allow UDP 4500 both ways between the gateways".into(),
                format!("capture on both ends: tcpdump -ni any 'udp port 4500 and host {peer}' to see which direction loses it"),
                if c.nat_force {
                    "nat_traversal = \"force\" is set here; if no NAT is on the path, \"auto\" on both sides keeps IKE on UDP 500 and ESP as IP protocol 50".into()
                } else {
                    "a NAT was detected, so UDP 4500 is required (RFC 3947): it cannot be avoided by configuration".into()
                },
            ];
            v
        }
        Kind::PskSilent { probe } => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                match probe.as_deref() {
                    Some("answered") => format!(
                        "pre-shared key (or identity) mismatch: {peer} answered MM1 and MM3 but not MM5 (our first encrypted message), while a fresh MM1 to its UDP 4500 was answered: UDP 4500 passes, so {peer} could not decrypt or verify MM5"
                    ),
                    _ => format!(
                        "the peer answered MM1 and MM3 but stopped answering after MM5 (our first encrypted message): most likely the pre-shared keys differ and {peer} cannot decrypt MM5"
                    ),
                },
            );
            v.evidence.push(format!("cookies {}", r.cookies));
            v.evidence.extend(messages_of(h, &r.cookies, now_ms, 8));
            if probe.as_deref() == Some("answered") {
                v.evidence.push(
                    "probe: a fresh MM1 (own cookie) sent to the peer's UDP 4500 while MM5 went unanswered got an answer: UDP 4500 is not blocked".into(),
                );
            }
            v.next = vec![
                "compare the pre-shared key on both sides (psk / psk_file here); the peer's log should show a decryption or HASH failure for these cookies".into(),
                "if the keys are equal, check that the peer expects our identity (local_id here, ID payload in MM5)".into(),
            ];
            v
        }
        Kind::Unprocessable {
            message,
            reason,
            notify,
        } => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("{peer} sent a {message} that ferrovpn cannot process: {reason}"),
            );
            v.evidence.push(format!(
                "{message} on {} mid {:08x} ({}), {}",
                r.cookies,
                r.message_id,
                ago(now_ms, r.t_ms),
                match &notify {
                    Some(n) => format!("answered with a protected {n}"),
                    None => "no notify applies".into(),
                }
            ));
            v.next = vec![
                format!("read the peer's log for cookies {}: its {message} carries something ferrovpn does not implement or the peer built it wrongly", r.cookies),
                "an ESP proposal with no transform usually means the peer is configured with a cipher IKEv1 cannot name (e.g. chacha20poly1305 in strongSwan's IKEv1): use a cipher both sides support in IKEv1, e.g. aes128gcm16 or aes256-sha256".into(),
            ];
            v
        }
        Kind::RemoteAccess { detail } => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("{peer} expects XAuth/Mode Config — remote access, which ferrovpn does not support (site-to-site PSK only)"),
            );
            v.evidence.push(format!("{detail} (cookies {})", r.cookies));
            v.next = vec![
                "configure the peer for a site-to-site connection with a pre-shared key only (no xauth round, no mode config / virtual IP)".into(),
            ];
            v
        }
        Kind::Stalled(m) => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("the peer stopped answering at {m}"),
            );
            v.evidence.push(format!("cookies {}", r.cookies));
            v.evidence.extend(messages_of(h, &r.cookies, now_ms, 8));
            v.evidence.push(failure_line(r));
            v.next = vec![
                format!("read the peer's log for cookies {}: it saw our earlier messages, so it refused or dropped {m}", r.cookies),
                if m.starts_with("QM") {
                    "a Quick Mode (new SA or rekey) got no answer: the peer may have lost its phase 1 state (restart without INITIAL-CONTACT), or the path now drops IKE".into()
                } else {
                    format!("capture on both ends: tcpdump -ni any 'udp and host {peer}'")
                },
            ];
            v
        }
        Kind::NoProposal {
            phase1,
            ours,
            theirs,
        } => {
            let which = if phase1 {
                "phase 1 (IKE)"
            } else {
                "Quick Mode (ESP)"
            };
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("NO-PROPOSAL-CHOSEN: no {which} proposal in common with {peer}"),
            );
            v.evidence.push(format!("ours:   {ours}"));
            v.evidence.push(match &theirs {
                Some(t) => format!("peer's: {t}"),
                None => "peer's: not known here (the peer only answered NO-PROPOSAL-CHOSEN); run ferrovpn diagnose on the peer or read its log".into(),
            });
            v.evidence
                .push(format!("{} (cookies {})", failure_line(r), r.cookies));
            v.next = vec![format!(
                "make one proposal identical on both sides: the `{}` key here and the peer's {} proposals (cipher, hash/integrity, DH group{})",
                if phase1 { "ike" } else { "esp" },
                if phase1 { "IKE" } else { "ESP" },
                if phase1 { "" } else { ", PFS group" }
            )];
            v
        }
        Kind::Psk {
            ours_detail,
            notify,
        } => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                "pre-shared key mismatch: phase 1 authentication failed (MM5/MM6 do not decrypt or HASH_I/HASH_R do not verify)".into(),
            );
            if let Some(d) = ours_detail {
                v.evidence
                    .push(format!("here: {d} (cookies {})", r.cookies));
            }
            if let Some(n) = notify {
                v.evidence.push(format!(
                    "the peer sent {n} on cookies {}: it could not verify our MM5",
                    r.cookies
                ));
            }
            v.evidence.extend(messages_of(h, &r.cookies, now_ms, 6));
            v.next = vec![
                "set the same pre-shared key on both sides (psk / psk_file here), then watch `ferrovpn history`".into(),
                "if the keys are equal, the peer may pick another key by our identity: check local_id here against the peer's remote id".into(),
            ];
            v
        }
        Kind::Identity { expected, received } => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("identity mismatch: the peer authenticated as {received}, the configuration expects {expected}"),
            );
            v.evidence
                .push(format!("{} (cookies {})", failure_line(r), r.cookies));
            let as_config =
                if received.parse::<std::net::IpAddr>().is_ok() || received.contains(':') {
                    received.clone()
                } else if received.contains('@') {
                    format!("userfqdn:{received}")
                } else {
                    format!("fqdn:{received}")
                };
            v.next = vec![format!(
                "set remote_id = \"{as_config}\" here if that identity is right, or change the peer's local identity to {expected}"
            )];
            v
        }
        Kind::IdInfoPhase1 => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                "identity mismatch: the peer refused our phase 1 identity (INVALID-ID-INFORMATION)"
                    .into(),
            );
            v.evidence.push(format!(
                "INVALID-ID-INFORMATION on cookies {} before phase 1 completed; our identity: {}",
                r.cookies, c.local_id
            ));
            v.next = vec![format!(
                "make the peer's remote identity for us equal {} (local_id here)",
                c.local_id
            )];
            v
        }
        Kind::Selectors { ours, theirs } => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                "Quick Mode refused for traffic selectors (INVALID-ID-INFORMATION): the subnets do not match".into(),
            );
            v.evidence.push(format!("ours:   {ours}"));
            v.evidence.push(match &theirs {
                Some(t) => format!("peer's: {t}"),
                None => "peer's: not known here (the peer only answered INVALID-ID-INFORMATION); run ferrovpn diagnose on the peer".into(),
            });
            v.evidence.push(format!(
                "{} (cookies {}, message ID {:08x})",
                failure_line(r),
                r.cookies,
                r.message_id
            ));
            v.next = vec![
                "the selectors must mirror each other exactly (ferrovpn does not narrow): our local is the peer's remote and our remote is the peer's local, with the same prefix lengths".into(),
            ];
            v
        }
        Kind::PeerDead => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("dead peer detection declared {peer} dead: R-U-THERE went unanswered"),
            );
            let unanswered = h
                .iter()
                .filter(|x| {
                    x.cookies == r.cookies
                        && x.t_ms <= r.t_ms
                        && is_msg(x, true).is_some_and(|(n, _)| n == "INFO")
                })
                .count();
            v.evidence.push(format!(
                "IKE SA {} declared dead {}, after {unanswered} INFO (R-U-THERE) messages",
                r.cookies,
                ago(now_ms, r.t_ms)
            ));
            v.evidence
                .push(last_heard(h.get(..i).unwrap_or_default(), now_ms));
            v.next = vec![
                format!("check whether {peer} crashed or rebooted (its daemon log, uptime) or the path to it went down"),
                if c.initiator {
                    "this side initiates again at once; if that fails, see the verdicts above or below".into()
                } else {
                    "this side responds only: the tunnel comes back when the peer initiates".into()
                },
            ];
            v
        }
        Kind::Expired { what } => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("{what} expired without being rekeyed"),
            );
            v.evidence
                .push(format!("{what} expired {}", ago(now_ms, r.t_ms)));
            for x in h.iter().filter(|x| x.t_ms <= r.t_ms) {
                if let What::ChildFailed { failure } | What::IkeFailed { failure } = &x.what {
                    v.evidence.push(format!(
                        "rekey attempt failed {}: {failure} (cookies {})",
                        ago(now_ms, x.t_ms),
                        x.cookies
                    ));
                }
            }
            v.evidence.push(last_heard(h, now_ms));
            v.next = vec![
                "the rekey exchange got no answer: the path started dropping IKE (UDP 500/4500) after the tunnel came up, or the peer lost its state; see the other verdicts".into(),
                format!("capture: tcpdump -ni any 'udp and host {peer}' during the next rekey (at about half of esp_lifetime, {}s)", c.esp_lifetime_s / 2),
            ];
            v
        }
        Kind::Other(text) => {
            let mut v = verdict(
                c,
                Severity::Problem,
                code,
                format!("negotiation with {peer} failed: {text}"),
            );
            v.evidence.push(format!("cookies {}", r.cookies));
            v.evidence.extend(messages_of(h, &r.cookies, now_ms, 6));
            v.next = vec!["read the daemon log of both sides for these cookies".into()];
            v
        }
    };
    if repeats > 1 {
        v.evidence.push(format!(
            "seen {repeats} times since the tunnel last worked (last {})",
            ago(now_ms, r.t_ms)
        ));
    }
    v
}

fn failure_line(r: &Record) -> String {
    match &r.what {
        What::IkeFailed { failure } => format!("phase 1 failed: {failure}"),
        What::ChildFailed { failure } => format!("Quick Mode failed: {failure}"),
        What::Notify { notify, .. } => format!("peer sent notify {notify}"),
        other => format!("{other:?}"),
    }
}

/// Tunnel up, ESP going one way only (the ISP that drops IP protocol 50, or UDP 4500, inbound).
fn esp_one_way(c: &ConnSnapshot, now_ms: u64, opts: &Options) -> Option<Verdict> {
    let window = opts.esp_window_s * 1000;
    let cutoff = now_ms.checked_sub(window)?;
    let base = c.samples.iter().rev().find(|s| s.t_ms <= cutoff)?;
    let last = c.samples.last()?;
    let d_enc = last.encaps.saturating_sub(base.encaps);
    let d_dec = last.decaps.saturating_sub(base.decaps);
    let flat_since = |f: fn(&Sample) -> u64| {
        let v = f(last);
        c.samples
            .iter()
            .rev()
            .take_while(|s| f(s) == v)
            .last()
            .map_or(0, |s| last.t_ms.saturating_sub(s.t_ms) / 1000)
    };
    let udp = c.ipsec_sas.iter().any(|s| s.udp_encapsulated);
    let spis: Vec<String> = c
        .ipsec_sas
        .iter()
        .map(|s| format!("spi in {:08x} out {:08x}", s.spi_in, s.spi_out))
        .collect();
    let carrier = if udp {
        "ESP-in-UDP (UDP 4500)"
    } else {
        "ESP (IP protocol 50)"
    };
    if d_enc >= 3 && d_dec == 0 {
        let mut v = verdict(
            c,
            Severity::Problem,
            "esp-not-arriving",
            format!(
                "tunnel up but {carrier} from {} is not arriving: {d_enc} packets encapsulated and sent, 0 decapsulated for {}s",
                c.remote_addr,
                flat_since(|s| s.decaps).max(opts.esp_window_s)
            ),
        );
        v.evidence.push(format!(
            "encaps {} -> {} (+{d_enc}), decaps {} -> {} (+0) over the last {}s; SAs: {}",
            base.encaps,
            last.encaps,
            base.decaps,
            last.decaps,
            opts.esp_window_s,
            spis.join(", ")
        ));
        v.next = vec![
            "run ferrovpn diagnose on the peer: if its decaps rise, our ESP reaches it and its ESP to us is dropped on the way in here; if its decaps stay flat too, ours is dropped on the way out".into(),
            if udp {
                format!("UDP 4500 is dropped on the path: capture with tcpdump -ni any 'udp port 4500 and host {}' on both ends and open UDP 4500", c.remote_addr)
            } else {
                format!("IP protocol 50 is often dropped by ISPs and NAT devices: set nat_traversal = \"force\" on both sides so ESP travels in UDP 4500 (RFC 3948), or allow protocol 50; capture with tcpdump -ni any 'ip proto 50 and host {}'", c.remote_addr)
            },
        ];
        return Some(v);
    }
    if d_dec >= 3 && d_enc == 0 {
        let mut v = verdict(
            c,
            Severity::Problem,
            "esp-not-sent",
            format!(
                "tunnel up, {carrier} arrives from {} ({d_dec} packets) but nothing is sent back for {}s",
                c.remote_addr,
                flat_since(|s| s.encaps).max(opts.esp_window_s)
            ),
        );
        v.evidence.push(format!(
            "decaps {} -> {} (+{d_dec}), encaps {} -> {} (+0) over the last {}s; SAs: {}",
            base.decaps,
            last.decaps,
            base.encaps,
            last.encaps,
            opts.esp_window_s,
            spis.join(", ")
        ));
        v.next = vec![
            format!("the replies to the peer's traffic do not enter the tunnel: check the routes to the peer's subnet ({}) on this side, the host firewall, and that the inner hosts answer", c.selectors.join(", ")),
        ];
        return Some(v);
    }
    None
}

/// A responder whose half-open SA waits longer than the peer's retransmissions would last.
fn stalled_responder(c: &ConnSnapshot) -> Option<Verdict> {
    let s = c.ike_sas.iter().find(|s| {
        !s.initiator
            && matches!(s.state.as_str(), "MM2 sent" | "MM4 sent" | "AM2 sent")
            && s.age_s * 1000 > c.give_up_ms
    })?;
    let next = match s.state.as_str() {
        "MM2 sent" => "MM3",
        "MM4 sent" => "MM5",
        _ => "AM3",
    };
    let ours = s.state.get(..3).unwrap_or(&s.state);
    let ic = initiator_cookie(&s.cookies);
    // The peer retransmitting its previous message means our answer does not reach it.
    let request = match ours {
        "MM2" => "MM1",
        "MM4" => "MM3",
        _ => "AM1",
    };
    let of_this = |sent: bool, name: &str| {
        c.history
            .iter()
            .filter(|r| initiator_cookie(&r.cookies) == ic)
            .filter(|r| is_msg(r, sent).is_some_and(|(n, _)| n == name))
            .count()
    };
    let answers = of_this(true, ours) + of_this(false, request).saturating_sub(1);
    let one_way = answers > 1;
    let mut v = verdict(
        c,
        Severity::Problem,
        "stalled",
        if one_way {
            format!(
                "the peer's {next} never arrived: it kept retransmitting and we answered with {ours} {answers} times, so our {ours} does not reach it: UDP 500 is blocked from here to {} (one-way)",
                c.remote_addr
            )
        } else {
            format!(
                "the peer's {next} never arrived: we answered with {ours} and heard nothing since"
            )
        },
    );
    v.evidence.push(format!(
        "responder IKE SA {} in state '{}' for {}s",
        s.cookies, s.state, s.age_s
    ));
    v.evidence.push(format!(
        "{request} received {} time(s) (the first and the peer's retransmissions), answered with {ours} {answers} time(s)",
        of_this(false, request)
    ));
    v.next = vec![if one_way {
        format!("the path from here to {} drops UDP 500 (or 4500) while the other direction passes: capture on both ends with tcpdump -ni any 'udp port 500 and host {}' and have the firewall or ISP on the way out fixed", c.remote_addr, c.remote_addr)
    } else if next == "MM5" {
        "MM5 is the first encrypted message, sent on UDP 4500 when NAT-T floated: UDP 4500 from the peer may be blocked, or the peer could not compute the keys (PSK mismatch on its side, see its log)".into()
    } else {
        "our answer may not reach the peer (one-way blocking of UDP 500): capture on both ends"
            .into()
    }];
    Some(v)
}

/// Both sides start phase 1 for the same peer at once: two cookie pairs in flight.
fn simultaneous(c: &ConnSnapshot, now_ms: u64, opts: &Options) -> Option<Verdict> {
    let from = now_ms.saturating_sub(opts.lookback_s * 1000);
    let starts = |sent: bool| -> Vec<&Record> {
        c.history
            .iter()
            .filter(|r| r.t_ms >= from)
            .filter(|r| {
                matches!(&r.what, What::Message { name, sent: s, retransmission: false, .. }
                    if *s == sent && (name == "MM1" || name == "AM1"))
            })
            .collect()
    };
    // Only negotiations that got answers count: ours answered by MM2/AM2, the peer's going
    // on with MM3/AM3 after our MM2/AM2. A spoofed MM1 never does.
    let answered = |r: &&Record, names: &[&str], sent: bool| {
        let ic = initiator_cookie(&r.cookies);
        c.history.iter().any(|x| {
            initiator_cookie(&x.cookies) == ic
                && is_msg(x, sent).is_some_and(|(n, _)| names.contains(&n))
        })
    };
    let ours: Vec<&Record> = starts(true)
        .into_iter()
        .filter(|r| answered(r, &["MM2", "AM2"], false))
        .collect();
    let theirs: Vec<&Record> = starts(false)
        .into_iter()
        .filter(|r| answered(r, &["MM3", "AM3"], false))
        .collect();
    let window = opts.simultaneous_window_s * 1000;
    let pair = ours.iter().rev().find_map(|a| {
        theirs
            .iter()
            .rev()
            .find(|b| {
                a.t_ms.abs_diff(b.t_ms) <= window
                    && initiator_cookie(&a.cookies) != initiator_cookie(&b.cookies)
            })
            .map(|b| (*a, *b))
    });
    // In flight past the first exchange (a half-open MM2/AM2 responder may be spoofed).
    let in_flight: Vec<&IkeSaSnapshot> = c
        .ike_sas
        .iter()
        .filter(|s| {
            !matches!(
                s.state.as_str(),
                "established" | "dead" | "MM1 sent" | "AM1 sent" | "MM2 sent" | "AM2 sent"
            )
        })
        .collect();
    let ikes = c
        .ike_sas
        .iter()
        .filter(|s| s.state == "established")
        .count();
    if pair.is_none() && in_flight.len() < 2 {
        return None;
    }
    let mut v = verdict(
        c,
        Severity::Problem,
        "simultaneous",
        format!(
            "simultaneous negotiations: both this side and {} started phase 1 at the same time (more than one cookie pair in flight)",
            c.remote_addr
        ),
    );
    if let Some((a, b)) = pair {
        v.evidence.push(format!(
            "we sent MM1/AM1 with cookies {} ({})",
            a.cookies,
            ago(now_ms, a.t_ms)
        ));
        v.evidence.push(format!(
            "the peer sent MM1/AM1 with cookies {} ({})",
            b.cookies,
            ago(now_ms, b.t_ms)
        ));
    }
    for s in &in_flight {
        v.evidence.push(format!(
            "in flight now: {} as {} in state '{}'",
            s.cookies,
            if s.initiator {
                "initiator"
            } else {
                "responder"
            },
            s.state
        ));
    }
    if ikes > 1 {
        v.evidence
            .push(format!("{ikes} ISAKMP SAs established with the same peer"));
    }
    v.next = vec![
        "let one side initiate: set start = \"respond\" on one of the two (usually the hub or data-center side); duplicate SAs waste rekeys and can make the two sides pick different SAs".into(),
    ];
    Some(v)
}

fn quiet(c: &ConnSnapshot, now_ms: u64, up: bool) -> Verdict {
    if up {
        let est = c
            .ike_sas
            .iter()
            .find(|s| s.state == "established")
            .map(|s| format!("IKE SA {} established {}s ago", s.cookies, s.age_s));
        let mut v = verdict(
            c,
            Severity::Ok,
            "healthy",
            format!(
                "healthy: tunnel to {} is up with {} IPsec SA pair(s)",
                c.remote_addr,
                c.ipsec_sas.len()
            ),
        );
        v.evidence.extend(est);
        for s in &c.ipsec_sas {
            v.evidence.push(format!(
                "spi in {:08x} out {:08x} ({}), age {}s: {} packets in, {} out",
                s.spi_in,
                s.spi_out,
                if s.udp_encapsulated {
                    "UDP 4500"
                } else {
                    "IP protocol 50"
                },
                s.age_s,
                s.in_packets,
                s.out_packets
            ));
        }
        return v;
    }
    if let Some(s) = c
        .ike_sas
        .iter()
        .find(|s| s.state != "established" && s.state != "dead")
    {
        let mut v = verdict(
            c,
            Severity::Ok,
            "negotiating",
            format!(
                "negotiating with {}: IKE SA {} in state '{}'",
                c.remote_addr, s.cookies, s.state
            ),
        );
        v.next = vec![
            "run diagnose again once the retransmissions are over (or watch `ferrovpn history`)"
                .into(),
        ];
        return v;
    }
    let mut v = verdict(
        c,
        Severity::Ok,
        "waiting",
        if c.initiator {
            format!(
                "down, no failure recorded: next attempt to {} pending",
                c.remote_addr
            )
        } else {
            format!(
                "no problem found: waiting for {} to initiate (start = \"respond\")",
                c.remote_addr
            )
        },
    );
    v.evidence.push(last_heard(&c.history, now_ms));
    v
}
