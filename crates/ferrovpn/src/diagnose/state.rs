//! Verdicts read from a connection's live state and counters rather than from one failure
//! record: ESP flowing one way, a stalled responder, simultaneous negotiations, and the verdict
//! when nothing is wrong.

use super::evidence::{ago, initiator_cookie, is_msg, last_heard};
use super::verdict::{verdict, Options, Severity, Verdict};
use crate::snapshot::{ConnSnapshot, HalfOpenSnapshot, IkeSaSnapshot, Record, Sample, What};

/// Tunnel up, ESP going one way only (the ISP that drops IP protocol 50, or UDP 4500, inbound).
pub(super) fn esp_one_way(c: &ConnSnapshot, now_ms: u64, opts: &Options) -> Option<Verdict> {
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
pub(super) fn stalled_responder(c: &ConnSnapshot) -> Option<Verdict> {
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
pub(super) fn simultaneous(c: &ConnSnapshot, now_ms: u64, opts: &Options) -> Option<Verdict> {
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
    // The earlier of two negotiations already established when the later began: a
    // re-authentication or rekey (strongSwan's reauth is a new Main Mode), not a race.
    let established_by = |r: &Record, t_ms: u64| {
        let ic = initiator_cookie(&r.cookies);
        c.history.iter().any(|x| {
            initiator_cookie(&x.cookies) == ic
                && x.t_ms <= t_ms
                && matches!(x.what, What::IkeEstablished { .. })
        })
    };
    let pair = ours.iter().rev().find_map(|a| {
        theirs
            .iter()
            .rev()
            .find(|b| {
                let (a, b): (&Record, &Record) = (a, b);
                let (first, later) = if a.t_ms <= b.t_ms { (a, b) } else { (b, a) };
                a.t_ms.abs_diff(b.t_ms) <= window
                    && initiator_cookie(&a.cookies) != initiator_cookie(&b.cookies)
                    && !established_by(first, later.t_ms)
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

pub(super) fn quiet(c: &ConnSnapshot, now_ms: u64, up: bool) -> Verdict {
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
    if c.held {
        let mut v = verdict(
            c,
            Severity::Ok,
            "held",
            "down on purpose: held by `ferrovpn terminate`, so this side makes no attempt (the peer may still initiate)".into(),
        );
        v.next = vec![format!("ferrovpn initiate {}", c.name)];
        v.evidence.push(last_heard(&c.history, now_ms));
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

/// MM1/AM1 dropped at the endpoint-wide half-open limit (`[daemon] max_half_open`). Whose they
/// were is not known (nothing before MM5 is authenticated), so for a connection that is up it
/// is a note; for a responder waiting for its peer, recent drops are a likely reason it is down.
pub(super) fn half_open_limit(
    c: &ConnSnapshot,
    h: &HalfOpenSnapshot,
    now_ms: u64,
    opts: &Options,
    out: &mut Vec<Verdict>,
) {
    let Some(last) = h.last_drop_ms.filter(|_| h.dropped > 0) else {
        return;
    };
    let fact = format!(
        "{} MM1/AM1 dropped since start (the last {}) because max_half_open = {} responder negotiations were waiting to authenticate",
        h.dropped,
        ago(now_ms, last),
        h.limit
    );
    let recent = last >= now_ms.saturating_sub(opts.lookback_s * 1000);
    if c.ipsec_sas.is_empty() && !c.initiator && recent {
        let mut v = verdict(
            c,
            Severity::Problem,
            "half-open-limit",
            format!(
                "phase 1 requests were dropped at the half-open limit: the MM1/AM1 of {} may have been among them",
                c.remote_addr
            ),
        );
        v.evidence.push(fact);
        v.evidence.push("the limit is counted across all peers; which peers' MM1/AM1 were dropped is not recorded (they are unauthenticated), and a dropped peer gets in on a later retransmission once negotiations complete".into());
        v.next.push("if many real peers start at once (a gateway restart), raise [daemon] max_half_open (about 4 KiB of memory per waiting negotiation)".into());
        v.next.push("if there are not that many peers, look for a flood of MM1 (`ferrovpn status --json` counters ike.half_open_dropped, a capture read with `ferrovpn decode`)".into());
        out.insert(0, v);
    } else if let Some(v) = out.first_mut() {
        v.notes.push(fact);
    }
}
