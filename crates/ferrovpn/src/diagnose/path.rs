//! Failures of the network path or of the peer's liveness: no answer at all, UDP 4500 blocked,
//! a stalled exchange, a dead peer, an SA that expired without a rekey.

use super::evidence::{ago, failure_line, is_msg, last_heard, Facts};
use super::verdict::Verdict;
use crate::snapshot::{FailureRecord, What};

/// `unreachable`: no reply to MM1/AM1 after every retransmission.
pub(super) fn unreachable(f: &Facts) -> Verdict {
    let Facts {
        c,
        h,
        r,
        now_ms,
        peer,
        ..
    } = *f;
    let first = if c.aggressive { "AM1" } else { "MM1" };
    let mut v = f.problem(format!(
            "no reply to {first} from {peer} after all retransmissions: the peer is unreachable, not running, or UDP 500 is blocked on the path"
        ));
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

/// `udp4500-blocked`: answers on UDP 500, silence once floated to UDP 4500 (RFC 3947).
pub(super) fn udp4500_blocked(f: &Facts) -> Verdict {
    let Facts { c, r, peer, .. } = *f;
    let mut v = f.problem(format!(
            "phase 1 reached UDP 500 answers, then no reply once it floated to UDP 4500 (NAT-T): UDP 4500 is blocked between here and {peer}"
        ));
    v.evidence.push(format!("cookies {}", r.cookies));
    v.evidence.extend(f.messages(8));
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

/// `stalled`: the peer stopped answering at message `m`.
pub(super) fn stalled(f: &Facts, m: String) -> Verdict {
    let Facts { r, peer, .. } = *f;
    let mut v = f.problem(format!("the peer stopped answering at {m}"));
    v.evidence.push(format!("cookies {}", r.cookies));
    v.evidence.extend(f.messages(8));
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

/// `peer-dead`: dead peer detection (RFC 3706) declared the peer dead.
pub(super) fn peer_dead(f: &Facts) -> Verdict {
    let Facts {
        c,
        h,
        r,
        i,
        now_ms,
        peer,
        ..
    } = *f;
    let mut v = f.problem(format!(
        "dead peer detection declared {peer} dead: R-U-THERE went unanswered"
    ));
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

/// `expired-without-rekey`: an SA reached its lifetime with no successor.
pub(super) fn expired(f: &Facts, what: String) -> Verdict {
    let Facts {
        c,
        h,
        r,
        now_ms,
        peer,
        ..
    } = *f;
    let mut v = f.problem(format!("{what} expired without being rekeyed"));
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
