//! The HTTP side: a small non-blocking HTTP/1.0 server on its own thread (mio; at most
//! `MAX_CLIENTS` connections, each with its own deadlines, so a slow or silent client delays no
//! other) that answers `GET /metrics` with a snapshot rendered by the event loop.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::exposition::family;
use crate::daemon::control::Request;

/// Largest request read; anything longer is answered 400.
const MAX_REQUEST: usize = 8192;
/// A client gets this long to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

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
