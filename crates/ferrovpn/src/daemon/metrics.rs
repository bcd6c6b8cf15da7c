//! Optional Prometheus endpoint (`[daemon] metrics_listen`): `GET /metrics` in the text
//! exposition format 0.0.4, with every configured connection (up or down), its SAs and ESP
//! counters, IKE event counters and the process-wide drop counters. A small HTTP/1.0 server on
//! its own thread asks the event loop for a snapshot; the rendering is a pure function.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use ferrovpn_esp::SaStats;
use ferrovpn_ike::{Direction, Event, Failure};

use super::control::Request;

/// Largest request read; anything longer is answered 400.
const MAX_REQUEST: usize = 8192;
/// A client gets this long to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// IKE events of one connection since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IkeEvents {
    pub messages_in: u64,
    pub messages_out: u64,
    pub retransmissions: u64,
    pub ike_established: u64,
    pub ike_rekeys: u64,
    /// Phase 1 failures by reason label (see [`failure_label`]).
    pub ike_failed: BTreeMap<&'static str, u64>,
    pub child_established: u64,
    pub child_rekeys: u64,
    pub child_failed: BTreeMap<&'static str, u64>,
    pub dpd_dead: u64,
}

/// A Prometheus label value for why a negotiation failed.
pub fn failure_label(f: &Failure) -> &'static str {
    match f {
        Failure::NoResponse { .. } => "no_response",
        Failure::PeerNotify(_) => "peer_notify",
        Failure::NoProposalChosen { .. } => "no_proposal_chosen",
        Failure::AuthenticationFailed { .. } => "authentication_failed",
        Failure::IdentityMismatch { .. } => "identity_mismatch",
        Failure::InvalidSelectors { .. } => "invalid_selectors",
        Failure::AggressiveModeRefused => "aggressive_mode_refused",
        Failure::Malformed(_) => "malformed",
        Failure::InvalidKeyExchange => "invalid_key_exchange",
        Failure::Timeout => "timeout",
        Failure::Abandoned { .. } => "abandoned",
        Failure::SilentAfterMm5 { .. } => "silent_after_mm5",
        Failure::NoResponseButPlainNotify { .. } => "no_response_plain_notify",
    }
}

/// Event counters per connection, plus those no connection can be named for (e.g. messages of
/// a negotiation that never matched one).
#[derive(Debug, Clone, Default)]
pub struct EventCounters {
    pub conns: Vec<IkeEvents>,
    pub unassigned: IkeEvents,
}

impl EventCounters {
    pub fn new(conns: usize) -> Self {
        EventCounters {
            conns: vec![IkeEvents::default(); conns],
            unassigned: IkeEvents::default(),
        }
    }

    fn of(&mut self, conn: Option<usize>) -> &mut IkeEvents {
        match conn.and_then(|c| self.conns.get_mut(c)) {
            Some(e) => e,
            None => &mut self.unassigned,
        }
    }

    /// Counts one state machine event. `conn_of` names the connection of an initiator cookie,
    /// `rekey` says whether an SA established for the connection replaces one still up.
    pub fn count(
        &mut self,
        e: &Event,
        conn_of: impl Fn(&[u8; 8]) -> Option<usize>,
        rekey: impl Fn(&Event) -> bool,
    ) {
        match e {
            Event::Message(m) => {
                let c = self.of(conn_of(&m.cookies.initiator_spi));
                match m.direction {
                    Direction::Received => c.messages_in += 1,
                    Direction::Sent => c.messages_out += 1,
                }
                if m.retransmission && m.direction == Direction::Sent {
                    c.retransmissions += 1;
                }
            }
            Event::IkeSaEstablished { conn, .. } => {
                let is_rekey = rekey(e);
                let c = self.of(Some(*conn));
                c.ike_established += 1;
                c.ike_rekeys += u64::from(is_rekey);
            }
            Event::IkeSaFailed { conn, reason, .. } => {
                *self
                    .of(*conn)
                    .ike_failed
                    .entry(failure_label(reason))
                    .or_default() += 1;
            }
            Event::ChildSaEstablished(child) => {
                let is_rekey = rekey(e);
                let c = self.of(Some(child.conn));
                c.child_established += 1;
                c.child_rekeys += u64::from(is_rekey);
            }
            Event::ChildSaFailed { conn, reason, .. } => {
                *self
                    .of(Some(*conn))
                    .child_failed
                    .entry(failure_label(reason))
                    .or_default() += 1;
            }
            Event::PeerDead { conn, .. } => self.of(Some(*conn)).dpd_dead += 1,
            _ => {}
        }
    }
}

/// One installed IPsec SA pair.
#[derive(Debug, Clone, Default)]
pub struct SaPair {
    pub spi_in: u32,
    pub spi_out: u32,
    pub inbound: SaStats,
    pub outbound: SaStats,
}

/// One configured connection.
#[derive(Debug, Clone, Default)]
pub struct ConnSnapshot {
    pub name: String,
    pub up: bool,
    pub ike_sas: usize,
    pub pairs: Vec<SaPair>,
    pub events: IkeEvents,
}

/// What `/metrics` shows, collected on the event loop.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub uptime_s: u64,
    pub conns: Vec<ConnSnapshot>,
    pub unassigned: IkeEvents,
    /// Process-wide counters: (metric name without prefix, help, value).
    pub process: Vec<(&'static str, &'static str, u64)>,
}

/// Escapes a label value (exposition format: backslash, double quote, line feed).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `# HELP`/`# TYPE` and the samples of one metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
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

/// The endpoint's listener thread.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `addr` and answers `GET /metrics` with a snapshot from the event loop.
pub fn serve(
    addr: SocketAddr,
    requests: Sender<Request>,
    waker: Arc<mio::Waker>,
) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = handle(stream, &|| {
                            let (tx, rx) = bounded(1);
                            requests.send(Request::Metrics(tx)).ok()?;
                            waker.wake().ok()?;
                            rx.recv_timeout(Duration::from_secs(5)).ok()
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok(MetricsServer {
        stop,
        thread: Some(thread),
    })
}

/// Reads until the end of the request head (or `MAX_REQUEST` bytes, or the timeout).
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while buf.len() < MAX_REQUEST {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(buf)
}

/// The status and body of the answer to a request head.
pub fn respond(head: &[u8], metrics: &dyn Fn() -> Option<String>) -> (&'static str, String) {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if head.len() >= MAX_REQUEST {
        return ("400 Bad Request", "request too long\n".into());
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") | ("HEAD", "/metrics") => match metrics() {
            Some(body) => ("200 OK", body),
            None => (
                "503 Service Unavailable",
                "the daemon did not answer\n".into(),
            ),
        },
        ("GET", _) | ("HEAD", _) => ("404 Not Found", "only /metrics is served here\n".into()),
        _ => ("405 Method Not Allowed", "GET /metrics\n".into()),
    }
}

fn handle(mut stream: TcpStream, metrics: &dyn Fn() -> Option<String>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let (status, body) = respond(&head, metrics);
    let head_only = head.starts_with(b"HEAD ");
    let ctype = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut answer = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        answer.push_str(&body);
    }
    stream.write_all(answer.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovpn_ike::{Cookies, MessageLog};

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

    #[test]
    fn answers_only_get_metrics_and_bounds_requests() {
        let m = || Some("x 1\n".to_string());
        assert_eq!(
            respond(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", &m),
            ("200 OK", "x 1\n".into())
        );
        assert_eq!(
            respond(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", &m).0,
            "200 OK"
        );
        assert_eq!(respond(b"GET / HTTP/1.0\r\n\r\n", &m).0, "404 Not Found");
        assert_eq!(
            respond(b"POST /metrics HTTP/1.0\r\n\r\n", &m).0,
            "405 Method Not Allowed"
        );
        assert_eq!(respond(b"\xff\xfe garbage", &m).0, "405 Method Not Allowed");
        assert_eq!(respond(b"", &m).0, "405 Method Not Allowed");
        assert_eq!(respond(&[b'A'; MAX_REQUEST], &m).0, "400 Bad Request");
        assert_eq!(
            respond(b"GET /metrics HTTP/1.0\r\n\r\n", &|| None).0,
            "503 Service Unavailable"
        );
    }
}
