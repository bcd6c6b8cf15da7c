//! The text exposition format 0.0.4 of a [`Snapshot`]: `# HELP`, `# TYPE` and the samples
//! of each family, every name prefixed `ferrovpn_`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ferrovpn_esp::SaStats;

use super::collect::{ConnSnapshot, IkeEvents, Snapshot};

/// Escapes a label value (exposition format: backslash, double quote, line feed).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `# HELP`/`# TYPE` and the samples of one metric family.
pub(super) fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(String, u64)],
) {
    let _ = writeln!(out, "# HELP ferrovpn_{name} {help}");
    let _ = writeln!(out, "# TYPE ferrovpn_{name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "ferrovpn_{name} {v}");
        } else {
            let _ = writeln!(out, "ferrovpn_{name}{{{labels}}} {v}");
        }
    }
}

/// The text exposition of a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let conn = |c: &ConnSnapshot| format!("connection=\"{}\"", label(&c.name));
    let per_conn = |f: &dyn Fn(&ConnSnapshot) -> u64| -> Vec<(String, u64)> {
        s.conns.iter().map(|c| (conn(c), f(c))).collect()
    };
    family(
        &mut out,
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        &[(String::new(), s.uptime_s)],
    );
    family(
        &mut out,
        "connection_up",
        "gauge",
        "1 when the connection has an installed IPsec SA pair, 0 when it is configured but down.",
        &per_conn(&|c| u64::from(c.up)),
    );
    family(
        &mut out,
        "ike_sas",
        "gauge",
        "ISAKMP SAs of the connection (any state).",
        &per_conn(&|c| c.ike_sas as u64),
    );
    let v4 = |c: &ConnSnapshot| c.pool;
    let v6 = |c: &ConnSnapshot| c.pool6;
    for (prefix, what, get) in [
        (
            "pool",
            "pool",
            &v4 as &dyn Fn(&ConnSnapshot) -> Option<(u64, u64)>,
        ),
        ("pool6", "IPv6 pool", &v6),
    ] {
        let pools: Vec<(&ConnSnapshot, (u64, u64))> = s
            .conns
            .iter()
            .filter_map(|c| get(c).map(|p| (c, p)))
            .collect();
        if pools.is_empty() {
            continue;
        }
        for (pick, help) in [
            (
                0,
                format!("Addresses of the gateway's {what} leased to clients."),
            ),
            (1, format!("Addresses of the gateway's {what} still free.")),
        ] {
            let v: Vec<(String, u64)> = pools
                .iter()
                .map(|(c, (used, free))| (conn(c), if pick == 0 { *used } else { *free }))
                .collect();
            let name = format!(
                "{prefix}_leases_{}",
                if pick == 0 { "used" } else { "free" }
            );
            family(&mut out, &name, "gauge", &help, &v);
        }
    }
    family(
        &mut out,
        "ipsec_sas",
        "gauge",
        "Installed IPsec SA pairs of the connection.",
        &per_conn(&|c| c.pairs.len() as u64),
    );

    // ESP counters per SA pair, by direction.
    let per_sa = |f: &dyn Fn(&SaStats) -> u64| -> Vec<(String, u64)> {
        let mut v = Vec::new();
        for c in &s.conns {
            for p in &c.pairs {
                for (dir, spi, st) in [
                    ("in", p.spi_in, &p.inbound),
                    ("out", p.spi_out, &p.outbound),
                ] {
                    v.push((
                        format!("{},direction=\"{dir}\",spi=\"{spi:08x}\"", conn(c)),
                        f(st),
                    ));
                }
            }
        }
        v
    };
    family(
        &mut out,
        "esp_packets_total",
        "counter",
        "ESP packets accepted (in) or protected (out) per SA.",
        &per_sa(&|x| x.packets),
    );
    family(
        &mut out,
        "esp_bytes_total",
        "counter",
        "Inner packet bytes accepted (in) or protected (out) per SA.",
        &per_sa(&|x| x.bytes),
    );
    let mut drops = Vec::new();
    for c in &s.conns {
        for p in &c.pairs {
            for (dir, spi, st) in [
                ("in", p.spi_in, &p.inbound),
                ("out", p.spi_out, &p.outbound),
            ] {
                for (reason, v) in [
                    ("auth_failed", st.auth_failures),
                    ("replay", st.replay_drops),
                    ("bad_padding", st.bad_padding),
                    ("bad_next_header", st.bad_next_header),
                    ("malformed", st.malformed),
                    ("expired", st.expired_drops),
                ] {
                    if dir == "out" && reason != "expired" && v == 0 {
                        continue;
                    }
                    drops.push((
                        format!(
                            "{},direction=\"{dir}\",spi=\"{spi:08x}\",reason=\"{reason}\"",
                            conn(c)
                        ),
                        v,
                    ));
                }
            }
        }
    }
    family(
        &mut out,
        "esp_drops_total",
        "counter",
        "ESP packets dropped per SA, by reason.",
        &drops,
    );

    // IKE events, per connection; "" is the connection of none (unmatched negotiations).
    let all: Vec<(String, &IkeEvents)> = s
        .conns
        .iter()
        .map(|c| (conn(c), &c.events))
        .chain(std::iter::once((
            String::from("connection=\"\""),
            &s.unassigned,
        )))
        .collect();
    let ev = |f: &dyn Fn(&IkeEvents) -> u64| -> Vec<(String, u64)> {
        all.iter().map(|(l, e)| (l.clone(), f(e))).collect()
    };
    let msgs: Vec<(String, u64)> = all
        .iter()
        .flat_map(|(l, e)| {
            [
                (format!("{l},direction=\"in\""), e.messages_in),
                (format!("{l},direction=\"out\""), e.messages_out),
            ]
        })
        .collect();
    family(
        &mut out,
        "ike_messages_total",
        "counter",
        "ISAKMP messages received (in) and sent (out), retransmissions included.",
        &msgs,
    );
    family(
        &mut out,
        "ike_retransmissions_total",
        "counter",
        "ISAKMP messages sent again for lack of an answer.",
        &ev(&|e| e.retransmissions),
    );
    family(
        &mut out,
        "ike_established_total",
        "counter",
        "ISAKMP SAs established (phase 1 completed).",
        &ev(&|e| e.ike_established),
    );
    family(
        &mut out,
        "ike_rekeys_total",
        "counter",
        "ISAKMP SAs established while an older one of the connection was up.",
        &ev(&|e| e.ike_rekeys),
    );
    let failed = |f: &dyn Fn(&IkeEvents) -> &BTreeMap<&'static str, u64>| -> Vec<(String, u64)> {
        all.iter()
            .flat_map(|(l, e)| {
                f(e).iter()
                    .map(move |(r, v)| (format!("{l},reason=\"{r}\""), *v))
            })
            .collect()
    };
    family(
        &mut out,
        "ike_failed_total",
        "counter",
        "Phase 1 negotiations that failed, by reason.",
        &failed(&|e| &e.ike_failed),
    );
    family(
        &mut out,
        "ipsec_established_total",
        "counter",
        "IPsec SA pairs negotiated (Quick Mode completed).",
        &ev(&|e| e.child_established),
    );
    family(
        &mut out,
        "ipsec_rekeys_total",
        "counter",
        "IPsec SA pairs negotiated while one with the same selectors was installed.",
        &ev(&|e| e.child_rekeys),
    );
    family(
        &mut out,
        "ipsec_failed_total",
        "counter",
        "Quick Modes that failed, by reason.",
        &failed(&|e| &e.child_failed),
    );
    family(
        &mut out,
        "dpd_dead_total",
        "counter",
        "Peers declared dead by Dead Peer Detection (RFC 3706).",
        &ev(&|e| e.dpd_dead),
    );

    for (name, help, v) in &s.process {
        family(&mut out, name, "counter", help, &[(String::new(), *v)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::metrics::collect::{EventCounters, SaPair};
    use ferrovpn_esp::SaStats;
    use ferrovpn_ike::{Cookies, Direction, Event, Failure, MessageLog};

    fn snapshot() -> Snapshot {
        let mut events = EventCounters::new(2);
        let msg = |direction, retransmission, cookie| {
            Event::Message(MessageLog {
                direction,
                name: "MM1",
                cookies: Cookies {
                    initiator_spi: [cookie; 8],
                    responder_spi: [0; 8],
                },
                message_id: 0,
                payloads: "[ SA ]".into(),
                peer: "192.0.2.2:500".parse().unwrap(),
                local: "192.0.2.1:500".parse().unwrap(),
                retransmission,
            })
        };
        let conn_of = |c: &[u8; 8]| match c[0] {
            1 => Some(0),
            2 => Some(1),
            _ => None,
        };
        for e in [
            msg(Direction::Sent, false, 1),
            msg(Direction::Received, false, 1),
            msg(Direction::Sent, false, 2),
            msg(Direction::Sent, true, 2),
            msg(Direction::Received, false, 9),
            Event::IkeSaFailed {
                conn: Some(1),
                cookies: Cookies::default(),
                peer: "192.0.2.3:500".parse().unwrap(),
                reason: Failure::NoResponse {
                    message: "MM1",
                    tries: 5,
                },
                renewal: false,
            },
            Event::PeerDead {
                conn: 0,
                cookies: Cookies::default(),
            },
        ] {
            events.count(&e, conn_of, |_| false);
        }
        let mut inbound = SaStats {
            packets: 10,
            bytes: 840,
            replay_drops: 2,
            ..Default::default()
        };
        inbound.auth_failures = 1;
        let outbound = SaStats {
            packets: 12,
            bytes: 1008,
            ..Default::default()
        };
        Snapshot {
            uptime_s: 42,
            conns: vec![
                ConnSnapshot {
                    name: "site-b".into(),
                    up: true,
                    ike_sas: 1,
                    pool: Some((2, 124)),
                    pool6: Some((1, 65534)),
                    pairs: vec![SaPair {
                        spi_in: 0xc65cbcd3,
                        spi_out: 0x1,
                        inbound,
                        outbound,
                    }],
                    events: events.conns[0].clone(),
                },
                ConnSnapshot {
                    name: "we\"ird".into(),
                    up: false,
                    ike_sas: 0,
                    pool: None,
                    pool6: None,
                    pairs: vec![],
                    events: events.conns[1].clone(),
                },
            ],
            unassigned: events.unassigned.clone(),
            process: vec![("esp_unknown_spi_total", "Inbound ESP packets for no SA.", 7)],
        }
    }

    /// Every line is a comment (`# HELP`/`# TYPE` before the family's samples) or
    /// `name{labels} value` with a known family name and a numeric value.
    fn check_exposition(text: &str) {
        let mut typed: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge"].contains(&kind), "{line}");
                assert!(!typed.contains(&name.to_string()), "family twice: {name}");
                typed.push(name.to_string());
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<f64>().unwrap();
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert_eq!(
                typed.last().map(String::as_str),
                Some(name),
                "sample before its TYPE: {line}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                }
            }
        }
    }

    #[test]
    fn renders_the_text_exposition_format_with_down_connections() {
        let text = render(&snapshot());
        check_exposition(&text);
        for want in [
            "ferrovpn_uptime_seconds 42",
            "ferrovpn_connection_up{connection=\"site-b\"} 1",
            "ferrovpn_connection_up{connection=\"we\\\"ird\"} 0",
            "ferrovpn_ike_sas{connection=\"site-b\"} 1",
            "ferrovpn_pool_leases_used{connection=\"site-b\"} 2",
            "ferrovpn_pool_leases_free{connection=\"site-b\"} 124",
            "ferrovpn_pool6_leases_used{connection=\"site-b\"} 1",
            "ferrovpn_pool6_leases_free{connection=\"site-b\"} 65534",
            "ferrovpn_ipsec_sas{connection=\"we\\\"ird\"} 0",
            "ferrovpn_esp_packets_total{connection=\"site-b\",direction=\"in\",spi=\"c65cbcd3\"} 10",
            "ferrovpn_esp_bytes_total{connection=\"site-b\",direction=\"out\",spi=\"00000001\"} 1008",
            "ferrovpn_esp_drops_total{connection=\"site-b\",direction=\"in\",spi=\"c65cbcd3\",reason=\"replay\"} 2",
            "ferrovpn_esp_drops_total{connection=\"site-b\",direction=\"in\",spi=\"c65cbcd3\",reason=\"auth_failed\"} 1",
            "ferrovpn_ike_messages_total{connection=\"site-b\",direction=\"in\"} 1",
            "ferrovpn_ike_messages_total{connection=\"we\\\"ird\",direction=\"out\"} 2",
            "ferrovpn_ike_messages_total{connection=\"\",direction=\"in\"} 1",
            "ferrovpn_ike_retransmissions_total{connection=\"we\\\"ird\"} 1",
            "ferrovpn_ike_failed_total{connection=\"we\\\"ird\",reason=\"no_response\"} 1",
            "ferrovpn_dpd_dead_total{connection=\"site-b\"} 1",
            "ferrovpn_esp_unknown_spi_total 7",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want} in\n{text}");
        }
    }
}
