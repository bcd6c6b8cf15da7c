//! Optional Prometheus endpoint (`[daemon] metrics_listen`): `GET /metrics` in the text
//! exposition format 0.0.4, with every configured connection (up or down), its SAs and ESP
//! counters, IKE event counters and the process-wide drop counters. A small non-blocking
//! HTTP/1.0 server on its own thread (mio; at most `MAX_CLIENTS` connections, each with its
//! own deadlines, so a slow or silent client delays no other) asks the event loop for a
//! snapshot; the rendering is a pure function.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
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
    /// A connection a reload added (the next id).
    pub fn add_connection(&mut self) {
        self.conns.push(IkeEvents::default());
    }

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

/// Open connections the endpoint serves at once; more are answered 503 and closed at once,
/// and counted. Each costs a socket and at most `MAX_REQUEST` bytes, never a thread.
pub const MAX_CLIENTS: usize = 64;
/// How long the event loop gets to produce the text.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// How many clients the endpoint serves at once and how long each may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_clients: usize,
    /// To send the request head, and again to read the answer.
    pub client_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: MAX_CLIENTS,
            client_timeout: CLIENT_TIMEOUT,
        }
    }
}

/// What the endpoint counts about its own clients (rendered after the daemon's families).
#[derive(Debug, Default)]
pub struct EndpointCounters {
    /// Connections closed at accept because `max_clients` were open.
    pub refused: AtomicU64,
    /// Clients closed for not sending their request, or not reading the answer, in time.
    pub timed_out: AtomicU64,
}

impl EndpointCounters {
    fn render(&self, out: &mut String) {
        family(
            out,
            "metrics_refused_total",
            "counter",
            "Connections to this endpoint closed at once because too many were open.",
            &[(String::new(), self.refused.load(Ordering::Relaxed))],
        );
        family(
            out,
            "metrics_timeouts_total",
            "counter",
            "Clients of this endpoint closed for not sending their request or not reading the answer in time.",
            &[(String::new(), self.timed_out.load(Ordering::Relaxed))],
        );
    }
}

/// The endpoint's thread.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    local: SocketAddr,
    pub counters: Arc<EndpointCounters>,
}

impl MetricsServer {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The address it listens on (the port chosen when 0 was configured).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Binds `addr` and answers `GET /metrics` with a snapshot from the event loop.
pub fn serve(
    addr: SocketAddr,
    requests: Sender<Request>,
    waker: Arc<mio::Waker>,
) -> io::Result<MetricsServer> {
    serve_with(addr, requests, waker, Limits::default())
}

/// [`serve`] with other limits. One thread serves every client without blocking on any: a
/// slow or silent client holds only its own socket, until its deadline.
pub fn serve_with(
    addr: SocketAddr,
    requests: Sender<Request>,
    waker: Arc<mio::Waker>,
    limits: Limits,
) -> io::Result<MetricsServer> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let mut listener = mio::net::TcpListener::from_std(listener);
    let poll = mio::Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, mio::Interest::READABLE)?;
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(EndpointCounters::default());
    let mut server = Endpoint {
        poll,
        listener,
        clients: HashMap::new(),
        next_token: 1,
        limits,
        counters: counters.clone(),
        ask: Box::new(move || {
            let (tx, rx) = bounded(1);
            requests.send(Request::Metrics(tx)).ok()?;
            waker.wake().ok()?;
            Some(rx)
        }),
    };
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || server.run(&stop2))?;
    Ok(MetricsServer {
        stop,
        thread: Some(thread),
        local,
        counters,
    })
}

const LISTENER: mio::Token = mio::Token(0);
/// Longest sleep of the endpoint's thread, so `stop` is seen promptly.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Sleep while a client waits for the event loop's answer (a channel, not a socket).
const ANSWER_POLL: Duration = Duration::from_millis(5);

/// Where one client is.
enum State {
    /// Reading the request head, until `deadline`.
    Reading(Vec<u8>),
    /// Asked the event loop; the answer comes on `rx`.
    Waiting {
        rx: Receiver<String>,
        head_only: bool,
        until: Instant,
    },
    /// Sending `out` from `sent`, until `deadline`.
    Writing {
        out: Vec<u8>,
        sent: usize,
    },
    Done,
}

struct Client {
    stream: mio::net::TcpStream,
    deadline: Instant,
    state: State,
}

/// Asks the event loop for the metrics text; `None` when it is gone.
type Ask = Box<dyn FnMut() -> Option<Receiver<String>> + Send>;

struct Endpoint {
    poll: mio::Poll,
    listener: mio::net::TcpListener,
    clients: HashMap<mio::Token, Client>,
    next_token: usize,
    limits: Limits,
    counters: Arc<EndpointCounters>,
    ask: Ask,
}

impl Endpoint {
    fn run(&mut self, stop: &AtomicBool) {
        let mut events = mio::Events::with_capacity(64);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let waiting = self
                .clients
                .values()
                .any(|c| matches!(c.state, State::Waiting { .. }));
            let next = self
                .clients
                .values()
                .map(|c| c.deadline.saturating_duration_since(now))
                .min()
                .unwrap_or(IDLE_POLL);
            let timeout = if waiting {
                ANSWER_POLL
            } else {
                next.min(IDLE_POLL)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!("metrics endpoint stopped: {e}");
                    return;
                }
            }
            let mut ready: Vec<mio::Token> = Vec::new();
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    self.accept();
                } else {
                    ready.push(ev.token());
                }
            }
            ready.extend(
                self.clients
                    .iter()
                    .filter(|(_, c)| matches!(c.state, State::Waiting { .. }))
                    .map(|(t, _)| *t),
            );
            let now = Instant::now();
            for t in ready {
                if let Some(mut c) = self.clients.remove(&t) {
                    self.step(t, &mut c, now);
                    self.keep(t, c);
                }
            }
            let expired: Vec<mio::Token> = self
                .clients
                .iter()
                .filter(|(_, c)| !matches!(c.state, State::Waiting { .. }) && c.deadline <= now)
                .map(|(t, _)| *t)
                .collect();
            for t in expired {
                if let Some(mut c) = self.clients.remove(&t) {
                    self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    let _ = self.poll.registry().deregister(&mut c.stream);
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    if self.clients.len() >= self.limits.max_clients {
                        self.counters.refused.fetch_add(1, Ordering::Relaxed);
                        let _ = stream.write(
                            b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        continue;
                    }
                    let t = mio::Token(self.next_token);
                    self.next_token = self.next_token.checked_add(1).unwrap_or(1).max(1);
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, t, mio::Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let mut c = Client {
                        stream,
                        deadline: Instant::now() + self.limits.client_timeout,
                        state: State::Reading(Vec::with_capacity(512)),
                    };
                    // Data may already be there (edge-triggered readiness).
                    self.step(t, &mut c, Instant::now());
                    self.keep(t, c);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Out of descriptors or a connection reset before accept: try later.
                Err(_) => return,
            }
        }
    }

    /// Keeps a client that is not done; a finished one is closed.
    fn keep(&mut self, t: mio::Token, mut c: Client) {
        if matches!(c.state, State::Done) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        } else {
            self.clients.insert(t, c);
        }
    }

    /// Advances one client as far as its socket and the event loop allow.
    fn step(&mut self, t: mio::Token, c: &mut Client, now: Instant) {
        let was_writing = matches!(c.state, State::Writing { .. });
        if let State::Reading(buf) = &mut c.state {
            match read_some(&mut c.stream, buf) {
                Ok(false) => return,
                Ok(true) => {}
                Err(_) => {
                    c.state = State::Done;
                    return;
                }
            }
            let head_only = buf.starts_with(b"HEAD ");
            c.state = match route(buf) {
                Route::Metrics => match (self.ask)() {
                    Some(rx) => State::Waiting {
                        rx,
                        head_only,
                        until: now + ANSWER_TIMEOUT,
                    },
                    None => writing(unavailable(), head_only),
                },
                Route::Answer(status, body) => writing((status, body), head_only),
            };
        }
        if let State::Waiting {
            rx,
            head_only,
            until,
        } = &c.state
        {
            let answer = match rx.try_recv() {
                Ok(mut body) => {
                    self.counters.render(&mut body);
                    ("200 OK", body)
                }
                Err(crossbeam_channel::TryRecvError::Empty) if now < *until => return,
                Err(_) => unavailable(),
            };
            c.state = writing(answer, *head_only);
        }
        if let State::Writing { out, sent } = &mut c.state {
            if !was_writing {
                // The client now has its own deadline to read the answer.
                c.deadline = now + self.limits.client_timeout;
                if self
                    .poll
                    .registry()
                    .reregister(&mut c.stream, t, mio::Interest::WRITABLE)
                    .is_err()
                {
                    c.state = State::Done;
                    return;
                }
            }
            loop {
                let Some(rest) = out.get(*sent..).filter(|r| !r.is_empty()) else {
                    c.state = State::Done;
                    return;
                };
                match c.stream.write(rest) {
                    Ok(0) => {
                        c.state = State::Done;
                        return;
                    }
                    Ok(n) => *sent = sent.saturating_add(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        c.state = State::Done;
                        return;
                    }
                }
            }
        }
    }
}
/// Reads what the socket has into `buf`; true once the request head is complete (or
/// `MAX_REQUEST` bytes, or the client closed its side).
fn read_some(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 1024];
    loop {
        if head_complete(buf) || buf.len() >= MAX_REQUEST {
            return Ok(true);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                let room = MAX_REQUEST.saturating_sub(buf.len());
                buf.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET` or `HEAD /metrics`: the event loop's text.
    Metrics,
    /// Anything else: this status and body.
    Answer(&'static str, String),
}

fn route(head: &[u8]) -> Route {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if head.len() >= MAX_REQUEST {
        return Route::Answer("400 Bad Request", "request too long\n".into());
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") | ("HEAD", "/metrics") => Route::Metrics,
        ("GET", _) | ("HEAD", _) => {
            Route::Answer("404 Not Found", "only /metrics is served here\n".into())
        }
        _ => Route::Answer("405 Method Not Allowed", "GET /metrics\n".into()),
    }
}

fn unavailable() -> (&'static str, String) {
    (
        "503 Service Unavailable",
        "the daemon did not answer\n".into(),
    )
}

/// The status and body of the answer to a request head.
pub fn respond(head: &[u8], metrics: &dyn Fn() -> Option<String>) -> (&'static str, String) {
    match route(head) {
        Route::Metrics => metrics().map_or_else(unavailable, |body| ("200 OK", body)),
        Route::Answer(status, body) => (status, body),
    }
}

/// The HTTP/1.0 answer, ready to send.
fn writing((status, body): (&'static str, String), head_only: bool) -> State {
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
    State::Writing {
        out: answer.into_bytes(),
        sent: 0,
    }
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

    /// An endpoint whose "event loop" answers every metrics request with one sample.
    fn endpoint(limits: Limits) -> (MetricsServer, std::thread::JoinHandle<()>, mio::Poll) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (tx, rx) = crossbeam_channel::unbounded::<Request>();
        let event_loop = std::thread::spawn(move || {
            while let Ok(req) = rx.recv() {
                if let Request::Metrics(reply) = req {
                    let _ = reply.send("ferrovpn_x 1\n".into());
                }
            }
        });
        let server = serve_with("127.0.0.1:0".parse().unwrap(), tx, waker, limits).unwrap();
        (server, event_loop, poll)
    }

    /// GET `path` on a fresh connection; the whole answer (the endpoint closes after it).
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        // Liveness only: far longer than an answer takes, far shorter than the idle
        // clients' deadline below, so a server that waits for them fails here.
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        c.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn thirty_idle_clients_do_not_delay_a_scrape() {
        let limits = Limits {
            max_clients: MAX_CLIENTS,
            client_timeout: Duration::from_secs(600),
        };
        let (server, event_loop, _poll) = endpoint(limits);
        let addr = server.local_addr();
        let mut idle: Vec<std::net::TcpStream> = (0..30)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        // Half of them send the start of a request and stop there.
        for s in idle.iter_mut().step_by(2) {
            s.write_all(b"GET /metr").unwrap();
        }
        let answer = get(addr, "/metrics");
        assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\r\n\r\nferrovpn_x 1\n"), "{answer}");
        assert!(
            answer.contains("\nferrovpn_metrics_refused_total 0\n"),
            "{answer}"
        );
        assert!(get(addr, "/").starts_with("HTTP/1.0 404 Not Found\r\n"));
        assert_eq!(server.counters.timed_out.load(Ordering::Relaxed), 0);
        drop(idle);
        server.stop();
        event_loop.join().unwrap();
    }

    #[test]
    fn connections_beyond_the_limit_are_refused_and_counted() {
        let limits = Limits {
            max_clients: 3,
            client_timeout: Duration::from_secs(600),
        };
        let (server, event_loop, _poll) = endpoint(limits);
        let addr = server.local_addr();
        let mut idle: Vec<std::net::TcpStream> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        // The fourth, behind the three in the accept queue, is told so and closed (it sends
        // nothing: data the server never reads would turn its close into a reset).
        let mut fourth = std::net::TcpStream::connect(addr).unwrap();
        fourth
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut refused = String::new();
        fourth.read_to_string(&mut refused).unwrap();
        assert!(
            refused.starts_with("HTTP/1.0 503 Service Unavailable\r\n"),
            "{refused}"
        );
        assert_eq!(server.counters.refused.load(Ordering::Relaxed), 1);
        // One of the three finishes (its answer read to the end: the server closed it), and
        // a scrape gets in.
        let mut first = idle.remove(0);
        first.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        first.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 404"), "{answer}");
        let answer = get(addr, "/metrics");
        assert!(
            answer.contains("\nferrovpn_metrics_refused_total 1\n"),
            "{answer}"
        );
        drop(idle);
        server.stop();
        event_loop.join().unwrap();
    }

    #[test]
    fn a_silent_client_is_closed_at_its_deadline_and_counted() {
        let limits = Limits {
            max_clients: 4,
            client_timeout: Duration::from_millis(50),
        };
        let (server, event_loop, _poll) = endpoint(limits);
        let mut silent = std::net::TcpStream::connect(server.local_addr()).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        // The server closes it without an answer.
        let mut rest = Vec::new();
        assert_eq!(silent.read_to_end(&mut rest).unwrap(), 0);
        assert_eq!(server.counters.timed_out.load(Ordering::Relaxed), 1);
        server.stop();
        event_loop.join().unwrap();
    }
}
