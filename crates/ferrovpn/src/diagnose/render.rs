//! Text for people: verdicts as `diagnose` prints them, events as `history` prints them.

use std::fmt::Write as _;

use super::verdict::{Severity, Verdict};
use crate::snapshot::{Record, Snapshot, What};

/// `diagnose` output: one block per verdict.
pub fn verdicts(vs: &[Verdict]) -> String {
    let mut s = String::new();
    for v in vs {
        let _ = writeln!(
            s,
            "{} [{}] {}: {}",
            match v.severity {
                Severity::Ok => "OK     ",
                Severity::Problem => "PROBLEM",
            },
            v.code,
            v.connection,
            v.verdict
        );
        for e in &v.evidence {
            let _ = writeln!(s, "    evidence: {e}");
        }
        for n in &v.next {
            let _ = writeln!(s, "    next:     {n}");
        }
        for n in &v.notes {
            let _ = writeln!(s, "    note:     {n}");
        }
        s.push('\n');
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS.mmm` in UTC.
pub fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86400).unwrap_or(0);
    let tod = secs % 86400;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        unix_ms % 1000
    )
}

/// One event line: wall time, daemon time, what, cookies, message ID.
pub fn record(r: &Record) -> String {
    let what = match &r.what {
        What::Message {
            name,
            sent,
            payloads,
            retransmission,
            udp4500,
            peer,
        } => format!(
            "{} {name:<4}{} {payloads} {} {peer}{}",
            if *sent { "sent    " } else { "received" },
            if *retransmission { " (retransmit)" } else { "" },
            if *sent { "to" } else { "from" },
            if *udp4500 { " [udp/4500]" } else { "" }
        ),
        What::IkeEstablished {
            initiator,
            nat_floated,
            proposal,
        } => format!(
            "IKE SA established as {}: {proposal}{}",
            if *initiator { "initiator" } else { "responder" },
            if *nat_floated {
                ", NAT-T (UDP 4500)"
            } else {
                ""
            }
        ),
        What::IkeFailed { failure } => format!("IKE SA FAILED: {failure}"),
        What::IkeDeleted { reason } => format!("IKE SA deleted: {reason}"),
        What::ChildEstablished {
            spi_in,
            spi_out,
            selectors,
            udp_encapsulated,
        } => format!(
            "IPsec SA up: {selectors}, spi in {spi_in:08x} out {spi_out:08x}{}",
            if *udp_encapsulated {
                ", UDP-encapsulated"
            } else {
                ""
            }
        ),
        What::ChildFailed { failure } => format!("Quick Mode FAILED: {failure}"),
        What::ChildDeleted {
            spi_in,
            spi_out,
            reason,
        } => format!("IPsec SA removed: spi in {spi_in:08x} out {spi_out:08x}: {reason}"),
        What::PeerDead => "peer DEAD (DPD)".to_string(),
        What::CertRequestUnmatched { requested } => format!(
            "no certificate matches the peer's CR ({}): sent the default",
            requested.join("; ")
        ),
        What::Notify {
            notify,
            authenticated,
        } => format!(
            "notify {notify} received{}",
            if *authenticated {
                " (protected)"
            } else {
                " (unauthenticated: recorded only)"
            }
        ),
        What::Unprocessable {
            message,
            reason,
            notify,
            ..
        } => format!(
            "{message} NOT PROCESSED: {reason}{}",
            notify
                .as_ref()
                .map(|n| format!("; answered with {n}"))
                .unwrap_or_default()
        ),
        What::InitialContact => "INITIAL-CONTACT: the peer (re)started".to_string(),
    };
    let ids = if r.cookies.is_empty() {
        String::new()
    } else {
        format!("  {} mid {:08x}", r.cookies, r.message_id)
    };
    format!(
        "{}  +{:>9.3}s  {what}{ids}",
        utc(r.unix_ms),
        r.t_ms as f64 / 1000.0
    )
}

/// `history`: the events of every connection (or `only`) no older than `since_ms`.
pub fn history(s: &Snapshot, only: Option<&str>, since_ms: Option<u64>) -> String {
    let from = since_ms.map_or(0, |d| s.now_ms.saturating_sub(d));
    let mut out = String::new();
    for c in s
        .connections
        .iter()
        .filter(|c| only.is_none_or(|n| n == c.name))
    {
        let events: Vec<&Record> = c.history.iter().filter(|r| r.t_ms >= from).collect();
        let _ = writeln!(
            out,
            "connection {} ({} -> {}): {} event{}",
            c.name,
            c.local_addr,
            c.remote_addr,
            events.len(),
            if events.len() == 1 { "" } else { "s" }
        );
        for r in events {
            let _ = writeln!(out, "  {}", record(r));
        }
        if let (Some(first), Some(last)) = (c.samples.first(), c.samples.last()) {
            let secs = last.t_ms.saturating_sub(first.t_ms) / 1000;
            let _ = writeln!(
                out,
                "  ESP packets over the last {secs}s of counter samples: encapsulated +{} (total {}), decapsulated +{} (total {})",
                last.encaps.saturating_sub(first.encaps),
                last.encaps,
                last.decaps.saturating_sub(first.decaps),
                last.decaps
            );
        }
        out.push('\n');
    }
    if only.is_none() && !s.unclaimed.is_empty() {
        let _ = writeln!(out, "peers matching no connection:");
        for r in s.unclaimed.iter().filter(|r| r.t_ms >= from) {
            let _ = writeln!(out, "  {}", record(r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc(951_782_400_123), "2000-02-29 00:00:00.123");
        assert_eq!(
            utc(1_795_392_000_000 + 3_723_004),
            "2026-11-23 01:02:03.004"
        );
    }
}
