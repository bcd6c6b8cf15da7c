//! `ferrovpn up`: the IKE endpoint on a mio loop (UDP 500 here, UDP 4500 via the ESP receive
//! pipeline, timers, signals, control requests), the ESP pipelines on worker threads, and the
//! TUN devices, routes and rules of each connection, removed again on exit.

mod conn;
pub mod control;
pub mod dataplane;
pub mod history;
pub mod metrics;
mod observe;
mod recovery;
pub mod save_keys;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ferrovpn_esp::{Clock, Mode as PipeMode, MonotonicClock, Pipeline, SaHandle, Sad};
use ferrovpn_ike::{ChildSa, Datagram, Endpoint, Event, Failure, Settings};
use mio::net::UdpSocket as MioUdp;
use mio::unix::SourceFd;
use mio::{Interest, Poll, Token, Waker};
use tracing::{debug, error, info, warn};

use crate::config::{Config, Start, Tunnel};
use crate::convert;
use crate::ipnet::IpNet;
use crate::netlink::{self, Netlink};
use crate::netlink::{Change, Rule};
use crate::routing::{self, PolicyRouting};
use crate::runstate::{self, Claim, LinkRecord, OwnershipError, Record};
use crate::socket::{self, RawEsp, SocketOptions};
use crate::tun::{Tun, TunOptions, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};
pub use conn::{stats_of, ConnState, InstalledPair};
use control::{Request, StatusView};
use dataplane::{EspSink, EspSource, Policy, Shared, TunSink, TunSource};

const WAKER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// UDP 500 sockets use tokens from here on.
const IKE_BASE: usize = 16;

/// Socket buffers of the ESP/IKE sockets (see `SocketOptions::buffer_bytes`).
pub const SOCKET_BUFFER: u32 = 8 << 20;

/// Underlay MTU assumed when the interface of `local_addr` cannot be found.
pub const DEFAULT_UNDERLAY_MTU: u32 = 1500;

/// Transmit queue of a tunnel interface, in packets. The TUN default (500) drops packets when
/// the reader falls briefly behind a fast TCP sender, which then backs off on the losses.
pub const TUN_TXQUEUELEN: u32 = 1000;

/// Opens a tunnel interface with `queues` queues (`IFF_MULTI_QUEUE` when more than one); with
/// `offloads`, with the virtio-net header and TSO/checksum offloads, falling back to plain
/// packets when the kernel refuses them.
fn open_tun(name: &str, queues: usize, offloads: bool) -> Result<Vec<Tun>, crate::tun::TunError> {
    let plain = TunOptions {
        multi_queue: queues > 1,
        vnet_hdr: false,
        nonblocking: true,
        // Create, never attach to a device that is already there (someone else's).
        exclusive: true,
    };
    let open = |opts| {
        if queues > 1 {
            Tun::open_queues(name, queues, opts)
        } else {
            Tun::open(name, opts).map(|t| vec![t])
        }
    };
    if !offloads {
        return open(plain);
    }
    let tuns = open(TunOptions {
        vnet_hdr: true,
        ..plain
    })?;
    // The offloads are the device's: set once, through any queue.
    let refused = tuns
        .first()
        .and_then(|t| t.set_offload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6).err());
    match refused {
        None => Ok(tuns),
        Some(e) => {
            warn!("{name}: the kernel refused TUN offloads ({e}); one packet per read");
            // Closing every queue removes the device; it comes back without the header.
            drop(tuns);
            open(plain)
        }
    }
}

/// A thread-start hook that pins each data plane thread to the next allowed CPU in turn.
fn pin_round_robin() -> ferrovpn_esp::ThreadStart {
    // SAFETY: an all-zero cpu_set_t is the empty set; sched_getaffinity fills it.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size matches the set.
    let ok = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed) } == 0;
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i < CPU_SETSIZE.
        .filter(|&i| ok && unsafe { libc::CPU_ISSET(i, &allowed) })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    Arc::new(move || {
        if cpus.is_empty() {
            return;
        }
        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % cpus.len();
        let Some(&cpu) = cpus.get(k) else { return };
        // SAFETY: as above; one CPU in the set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: pid 0 is the calling thread.
        if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) } != 0 {
            warn!(
                "pinning a data plane thread to CPU {cpu}: {}",
                io::Error::last_os_error()
            );
        } else {
            tracing::debug!("data plane thread pinned to CPU {cpu}");
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}: {1}")]
    Io(&'static str, io::Error),
    #[error("connection \"{conn}\": {what}")]
    Setup { conn: String, what: String },
    /// A name the daemon needs is held by something it did not create.
    #[error("{0}")]
    Ownership(#[from] OwnershipError),
}

/// This daemon's run-state record (see `runstate`), removed from the run directory on every
/// exit path but SIGKILL, where the next start reads it.
struct RunState {
    dir: std::path::PathBuf,
    record: Record,
}

impl RunState {
    fn save(&self) -> Result<(), DaemonError> {
        self.record
            .save(&self.dir)
            .map_err(|e| DaemonError::Io("writing the run-state record", e))
    }
}

impl Drop for RunState {
    fn drop(&mut self) {
        self.record.remove(&self.dir);
    }
}

/// The TUN device names of the connections, in order (policy-based ones get `fvpol<i>`).
fn tun_names(cfg: &Config) -> Vec<String> {
    cfg.connections
        .iter()
        .enumerate()
        .map(|(i, c)| match &c.tunnel {
            Tunnel::RouteBased(r) => r.interface.clone(),
            Tunnel::PolicyBased(_) => format!("fvpol{i}"),
        })
        .collect()
}

/// The policy rules the connections' routes will need (default routes only).
fn planned_rules(cfg: &Config, p: &PolicyRouting) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for c in &cfg.connections {
        let routes: Vec<IpNet> = match &c.tunnel {
            Tunnel::RouteBased(r) => r.routes.clone(),
            Tunnel::PolicyBased(p) => p.iter().map(|x| x.remote).collect(),
        };
        for ch in routing::plan(0, &routes, p) {
            if let Change::Rule(r) = ch {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
        }
    }
    out
}

struct Daemon {
    endpoint: Endpoint,
    conns: Vec<ConnState>,
    sad: Arc<Sad>,
    shared: Arc<Shared>,
    clock: Arc<MonotonicClock>,
    ike500: Vec<(SocketAddr, MioUdp)>,
    nat_t: HashMap<IpAddr, Arc<UdpSocket>>,
    started: Instant,
    stop: bool,
    /// Inbound SAs installed after QM2, waiting for QM3: (connection, message ID, handle).
    early_inbound: Vec<(usize, u32, SaHandle)>,
    events: metrics::EventCounters,
    key_export: Option<save_keys::KeyExport>,
    /// Connection of each initiator cookie seen, for log lines after the SA is gone.
    cookie_conns: HashMap<[u8; 8], usize>,
    /// Recent IKE events and ESP counter samples per connection, for `history`/`diagnose`.
    history: history::History,
    /// How long an unanswered IKE message is retransmitted (for `diagnose`).
    give_up: Duration,
    /// ESP with unknown SPIs reported by the data plane (invalid-SPI recovery).
    unknown_spi_rx: Receiver<recovery::UnknownSpi>,
}

/// Blocks SIGINT/SIGTERM in every thread and returns a signalfd that reports them.
fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset manipulation on a local, then pthread_sigmask/signalfd with valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Brings every connection up and runs until SIGINT/SIGTERM or `ferrovpn down`.
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    run_with(cfg, || {})
}

/// [`run`], calling `ready` once everything is set up (TUN devices, sockets, routes, control
/// socket), just before the event loop starts; `up --daemon` reports success to its parent there.
pub fn run_with(cfg: Config, ready: impl FnOnce()) -> Result<(), DaemonError> {
    let sigfd = signal_fd().map_err(|e| DaemonError::Io("signalfd", e))?;
    let mut nl =
        Netlink::open().map_err(|e| DaemonError::Io("netlink", io::Error::other(e.to_string())))?;
    let policy_routing = PolicyRouting::default();

    // Take the names this run needs, by evidence: what a dead ferrovpn recorded is removed
    // (the rules and the socket file a SIGKILL leaves), what a live one or anything else holds
    // is refused.
    let tun_names = tun_names(&cfg);
    let names: Vec<&str> = tun_names.iter().map(String::as_str).collect();
    let rules = planned_rules(&cfg, &policy_routing);
    let (record, removed) = runstate::prepare(
        &cfg.daemon.run_dir,
        &mut nl,
        &Claim {
            interfaces: &names,
            control_socket: &cfg.daemon.control_socket,
            rules: &rules,
        },
    )?;
    let mut run_state = RunState {
        dir: cfg.daemon.run_dir.clone(),
        record,
    };
    for r in removed {
        warn!("removed {r} left behind by a previous run");
    }
    let fwmark = cfg.connections.iter().any(|c| match &c.tunnel {
        Tunnel::RouteBased(r) => routing::needs_fwmark(&r.routes),
        Tunnel::PolicyBased(p) => p.iter().any(|x| x.remote.is_default()),
    });
    let opts = SocketOptions {
        fwmark: fwmark.then_some(policy_routing.fwmark),
        nonblocking: true,
        buffer_bytes: Some(SOCKET_BUFFER),
    };

    // Sockets, one set per local address.
    let mut locals: Vec<IpAddr> = cfg.connections.iter().map(|c| c.local_addr).collect();
    locals.sort();
    locals.dedup();
    let mut ike500 = Vec::new();
    let mut nat_t = HashMap::new();
    let mut raw = HashMap::new();
    for &ip in &locals {
        let s =
            socket::bind_ike(ip, &opts).map_err(|e| DaemonError::Io("binding UDP 500/4500", e))?;
        ike500.push((SocketAddr::new(ip, 500), MioUdp::from_std(s.ike)));
        nat_t.insert(ip, Arc::new(s.nat_t));
        raw.insert(
            ip,
            Arc::new(RawEsp::open(ip, &opts).map_err(|e| DaemonError::Io("raw ESP socket", e))?),
        );
    }

    // TUN devices, addresses and routes. With several workers each device has one queue per
    // worker and each outbound lane reads its own queue of every device.
    let workers = cfg.daemon.workers.get();
    let mut lane_queues: Vec<Vec<Arc<Tun>>> = vec![Vec::new(); workers];
    let mut tuns = Vec::new();
    let mut tcp_mss = Vec::new();
    let mut conns = Vec::new();
    for (i, c) in cfg.connections.iter().enumerate() {
        let (name, address, mtu, routes): (String, _, _, Vec<IpNet>) = match &c.tunnel {
            Tunnel::RouteBased(r) => (
                r.interface.clone(),
                r.address,
                r.mtu.map(u32::from),
                r.routes.clone(),
            ),
            Tunnel::PolicyBased(p) => (
                format!("fvpol{i}"),
                None,
                None,
                p.iter().map(|x| x.remote).collect(),
            ),
        };
        let setup = |what: String| DaemonError::Setup {
            conn: c.name.clone(),
            what,
        };
        let mtu = mtu.unwrap_or_else(|| {
            let underlay = netlink::mtu_of_address(c.local_addr).unwrap_or_else(|| {
                warn!(conn = %c.name, "no interface holds {}; assuming MTU {DEFAULT_UNDERLAY_MTU} under the tunnel", c.local_addr);
                DEFAULT_UNDERLAY_MTU
            });
            convert::tunnel_mtu(&c.esp, c.local_addr.is_ipv6(), underlay)
        });
        let queues: Vec<Arc<Tun>> = match open_tun(&name, workers, cfg.daemon.offloads) {
            Ok(q) => q.into_iter().map(Arc::new).collect(),
            Err(crate::tun::TunError::SetIff { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY) =>
            {
                // Taken since `prepare` looked: say by whom.
                let live = runstate::live_records(&cfg.daemon.run_dir);
                let live: Vec<&Record> = live.iter().collect();
                runstate::check_interface(&mut nl, &name, &live)?;
                return Err(setup(format!("TUN {name}: {source}")));
            }
            Err(e) => return Err(setup(format!("TUN {name}: {e}"))),
        };
        let Some(tun) = queues.first().cloned() else {
            return Err(setup(format!("TUN {name}: no queue opened")));
        };
        for (lane, q) in lane_queues.iter_mut().zip(&queues) {
            lane.push(q.clone());
        }
        let ifindex = netlink::link_index(&name).map_err(|e| setup(format!("TUN {name}: {e}")))?;
        run_state.record.interfaces.push(LinkRecord {
            name: name.clone(),
            ifindex,
        });
        run_state.save()?;
        tun.set_mtu(&mut nl, mtu)
            .map_err(|e| setup(format!("MTU of {name}: {e}")))?;
        tun.set_txqueuelen(&mut nl, TUN_TXQUEUELEN)
            .map_err(|e| setup(format!("txqueuelen of {name}: {e}")))?;
        if let Some(a) = address {
            nl.add_address(ifindex, a)
                .map_err(|e| setup(format!("address {a} on {name}: {e}")))?;
        }
        tun.up(&mut nl)
            .map_err(|e| setup(format!("bringing {name} up: {e}")))?;
        let installed =
            routing::setup(&mut nl, ifindex, &routes, &policy_routing).map_err(|e| {
                let hint = if runstate::is_exists(&e) {
                    " (it is already there and no ferrovpn recorded it; ferrovpn will not remove \
                     it)"
                } else {
                    ""
                };
                setup(format!("routes via {name}: {e}{hint}"))
            })?;
        // Recorded after they exist, never before: a kill in between leaks a rule (refused
        // with a clear error next time) rather than recording one someone else may have made.
        for c in &installed.changes {
            if let Change::Rule(r) = c {
                run_state.record.add_rule(*r);
            }
        }
        run_state.save()?;
        info!(conn = %c.name, "interface {name} up (mtu {mtu}), routes {:?}", routes.iter().map(|r| r.to_string()).collect::<Vec<_>>());
        tuns.push(queues);
        tcp_mss.push(convert::mss_clamp(c.tcp_mss, mtu));
        conns.push(ConnState {
            cfg: c.clone(),
            tun: Some(tuns.len() - 1),
            routing: Some(installed),
            pairs: Vec::new(),
            retry_at: None,
            backoff: Duration::from_secs(5),
            last_failure: None,
        });
    }

    let shared = Arc::new(Shared {
        tuns,
        tcp_mss,
        policies: RwLock::new(Vec::new()),
        inbound: RwLock::new(HashMap::new()),
        raw,
        nat_t: nat_t.clone(),
        counters: Default::default(),
    });

    let mut poll = Poll::new().map_err(|e| DaemonError::Io("poll", e))?;
    let waker =
        Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| DaemonError::Io("waker", e))?);
    let (ike_tx, ike_rx) = dataplane::ike_queue();
    // Unbounded but not floodable: only local clients of the 0600 control socket (one at a
    // time) and the metrics endpoint (at most metrics::MAX_CLIENTS) send here, each waiting
    // for its answer before it sends again.
    let (req_tx, req_rx) = crossbeam_channel::unbounded::<Request>();

    let sad = Arc::new(Sad::new());
    let clock = Arc::new(MonotonicClock::new());
    let pin = cfg.daemon.pin_workers.then(pin_round_robin);
    let builder = |mode| {
        let b = Pipeline::builder(sad.clone(), mode).clock(clock.clone());
        match &pin {
            Some(f) => b.thread_start(f.clone()),
            None => b,
        }
    };
    // Outbound: one inline lane per TUN queue (the kernel keeps a flow on one queue, so its
    // packets stay in order); lanes encrypt in parallel but send in the order they numbered
    // their batches, so each SA's sequence numbers leave in order.
    let order = ferrovpn_esp::SendOrder::new();
    let encap = lane_queues
        .into_iter()
        .map(|queues| {
            builder(PipeMode::Encap)
                .workers(1)
                .send_order(order.clone())
                .spawn(
                    TunSource::new(shared.clone(), queues),
                    EspSink {
                        shared: shared.clone(),
                    },
                )
                .map_err(|e| DaemonError::Io("encap pipeline", e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (unknown_spi, unknown_spi_rx) = recovery::UnknownSpiReports::channel(Some(waker.clone()));
    let decap = builder(PipeMode::Decap)
        .workers(workers)
        .spawn(
            EspSource::new(shared.clone(), ike_tx, waker.clone()),
            TunSink::new(shared.clone()).with_unknown_spi_reports(unknown_spi),
        )
        .map_err(|e| DaemonError::Io("decap pipeline", e))?;
    let (control, socket_inode) =
        control::serve(&cfg.daemon.control_socket, req_tx.clone(), waker.clone())
            .map_err(|e| DaemonError::Io("control socket", e))?;
    run_state.record.socket_inode = Some(socket_inode);
    run_state.save()?;
    let _socket_file = control::SocketFile {
        path: cfg.daemon.control_socket.clone(),
        inode: socket_inode,
    };
    info!("control socket {}", cfg.daemon.control_socket.display());
    let metrics_server = match cfg.daemon.metrics_listen {
        Some(a) => {
            let m = metrics::serve(a, req_tx.clone(), waker.clone())
                .map_err(|e| DaemonError::Io("metrics_listen", e))?;
            info!("metrics on http://{a}/metrics");
            Some(m)
        }
        None => None,
    };
    let key_export = match &cfg.daemon.save_keys_dir {
        Some(dir) => {
            Some(save_keys::KeyExport::new(dir).map_err(|e| DaemonError::Io("save_keys_dir", e))?)
        }
        None => None,
    };

    for (i, (_, s)) in ike500.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(IKE_BASE + i), Interest::READABLE)
            .map_err(|e| DaemonError::Io("poll register", e))?;
    }
    poll.registry()
        .register(
            &mut SourceFd(&sigfd.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )
        .map_err(|e| DaemonError::Io("poll register", e))?;

    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let settings = Settings {
        retransmit_timeout: cfg.daemon.retransmit.timeout,
        retransmit_base: cfg.daemon.retransmit.base,
        retransmit_tries: cfg.daemon.retransmit.tries,
        ..Settings::default()
    };
    let mut endpoint = Endpoint::new(settings, seed);
    for c in &conns {
        endpoint.add_connection(convert::connection(&c.cfg));
    }
    let started = Instant::now();
    let peers = conns
        .iter()
        .map(|c| (c.cfg.local_addr, c.cfg.remote_addr))
        .collect();
    let mut d = Daemon {
        history: history::History::new(started, peers),
        give_up: cfg.daemon.retransmit.give_up_after(),
        endpoint,
        conns,
        sad,
        shared,
        clock,
        ike500,
        nat_t,
        started,
        stop: false,
        early_inbound: Vec::new(),
        events: metrics::EventCounters::new(cfg.connections.len()),
        key_export,
        cookie_conns: HashMap::new(),
        unknown_spi_rx,
    };
    let now = Instant::now();
    for i in 0..d.conns.len() {
        if d.conns[i].cfg.start == Start::Initiate {
            info!(conn = %d.conns[i].cfg.name, "initiating");
            d.endpoint.initiate(now, i);
        } else {
            info!(conn = %d.conns[i].cfg.name, "waiting for the peer to initiate");
        }
    }
    d.flush();
    ready();

    let result = d.event_loop(&mut poll, &sigfd, &ike_rx, &req_rx);

    // Orderly exit: deletes to peers, then the data plane, then the OS state.
    info!("shutting down: sending deletes, removing routes, rules and interfaces");
    d.endpoint.shutdown(Instant::now());
    d.flush();
    control.stop();
    if let Some(m) = metrics_server {
        m.stop();
    }
    for lane in encap {
        lane.shutdown();
    }
    decap.shutdown();
    for c in &mut d.conns {
        if let Some(inst) = c.routing.take() {
            for e in routing::teardown(&mut nl, inst) {
                warn!("teardown: {e}");
            }
        }
    }
    for e in nl.undo_all() {
        warn!("teardown: {e}");
    }
    result
}

impl Daemon {
    fn event_loop(
        &mut self,
        poll: &mut Poll,
        sigfd: &OwnedFd,
        ike_rx: &Receiver<Datagram>,
        req_rx: &Receiver<Request>,
    ) -> Result<(), DaemonError> {
        let mut events = mio::Events::with_capacity(64);
        let mut buf = vec![0u8; 65536];
        while !self.stop {
            let now = Instant::now();
            let mut next = now + Duration::from_secs(1);
            if let Some(t) = self.endpoint.poll_timeout() {
                next = next.min(t);
            }
            for c in &self.conns {
                if let Some(t) = c.retry_at {
                    next = next.min(t);
                }
            }
            if let Err(e) = poll.poll(&mut events, Some(next.saturating_duration_since(now))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(DaemonError::Io("poll", e));
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => {
                        let mut info = [0u8; 128];
                        // SAFETY: reading a signalfd_siginfo-sized record into a local buffer.
                        let n = unsafe {
                            libc::read(sigfd.as_raw_fd(), info.as_mut_ptr().cast(), info.len())
                        };
                        if n > 0 {
                            info!("signal received");
                            self.stop = true;
                        }
                    }
                    Token(t) if t >= IKE_BASE => {
                        if let Some((local, sock)) = self.ike500.get(t - IKE_BASE) {
                            let local = *local;
                            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                                let data = buf.get(..n).unwrap_or_default().to_vec();
                                self.endpoint.handle_datagram(
                                    now,
                                    Datagram {
                                        local,
                                        remote: from,
                                        data,
                                    },
                                );
                            }
                        }
                    }
                    _ => {}
                }
            }
            while let Ok(d) = ike_rx.try_recv() {
                self.endpoint.handle_datagram(now, d);
            }
            while let Ok(u) = self.unknown_spi_rx.try_recv() {
                self.endpoint.handle_unknown_spi(now, None, u.source, u.spi);
            }
            while let Ok(req) = req_rx.try_recv() {
                self.answer(req);
            }
            self.endpoint.handle_timeout(now);
            for i in 0..self.conns.len() {
                if self.conns[i].retry_at.is_some_and(|t| t <= now) {
                    self.conns[i].retry_at = None;
                    if !self.endpoint.is_up(i) {
                        info!(conn = %self.conns[i].cfg.name, "initiating again");
                        self.endpoint.initiate(now, i);
                    }
                }
            }
            self.sad.poll_lifetimes(self.clock.now());
            self.flush();
            let (sad, conns) = (&self.sad, &self.conns);
            self.history.sample(now, |i| {
                conns.get(i).map_or_else(Vec::new, |c| {
                    c.pairs
                        .iter()
                        .map(|p| {
                            let (i, o) = (stats_of(sad, p.inbound), stats_of(sad, p.outbound));
                            (p.child.inbound.spi, i.packets, o.packets)
                        })
                        .collect()
                })
            });
        }
        Ok(())
    }

    /// Sends what the endpoint queued and acts on its events.
    fn flush(&mut self) {
        while let Some(d) = self.endpoint.poll_transmit() {
            let r = if d.local.port() == 4500 {
                let mut framed = Vec::with_capacity(d.data.len() + 4);
                framed.extend_from_slice(&ferrovpn_esp::nat_t::NON_ESP_MARKER);
                framed.extend_from_slice(&d.data);
                match self.nat_t.get(&d.local.ip()) {
                    Some(s) => s.send_to(&framed, d.remote),
                    None => Err(io::Error::other("no UDP 4500 socket for that address")),
                }
            } else {
                match self.ike500.iter().find(|(a, _)| a.ip() == d.local.ip()) {
                    Some((_, s)) => s.send_to(&d.data, d.remote),
                    None => Err(io::Error::other("no UDP 500 socket for that address")),
                }
            };
            if let Err(e) = r {
                warn!("sending to {}: {e}", d.remote);
            }
        }
        while let Some(e) = self.endpoint.poll_event() {
            self.observe(&e);
            self.on_event(e);
        }
    }

    fn conn_name(&self, i: usize) -> String {
        self.conns
            .get(i)
            .map(|c| c.cfg.name.clone())
            .unwrap_or_default()
    }

    fn on_event(&mut self, e: Event) {
        self.history.record(Instant::now(), &e);
        match e {
            Event::Message(m) => {
                let conn = self
                    .conn_of_cookie(&m.cookies.initiator_spi)
                    .map(|c| self.conn_name(c))
                    .unwrap_or_default();
                info!(conn = %conn, cookies = %m.cookies, msg = m.name, message_id = %format_args!("{:08x}", m.message_id), "{m}")
            }
            Event::IkeSaEstablished {
                conn,
                cookies,
                role,
                mode,
                proposal,
                lifetime,
                peer,
                features,
                nat,
            } => {
                info!(
                    conn = %self.conn_name(conn),
                    cookies = %cookies,
                    "IKE SA established ({} as {:?}) {cookies} with {peer}: {proposal}, lifetime {}s, NAT {} (local behind: {}, remote behind: {}), peer DPD {}",
                    mode.name(),
                    role,
                    lifetime.as_secs(),
                    if nat.floated { "floated to 4500" } else { "none" },
                    nat.local_behind_nat,
                    nat.remote_behind_nat,
                    features.dpd
                );
                if let Some(c) = self.conns.get_mut(conn) {
                    c.backoff = Duration::from_secs(5);
                    c.last_failure = None;
                }
            }
            Event::IkeSaFailed {
                conn,
                cookies,
                peer,
                reason,
            } => {
                let name = conn.map(|c| self.conn_name(c)).unwrap_or_default();
                if matches!(reason, Failure::Abandoned { .. }) {
                    // Unauthenticated (a spoofed MM1 ends so): not a failure of the connection.
                    debug!(conn = %name, cookies = %cookies, "half-open IKE SA {cookies} with {peer} forgotten: {reason}");
                    return;
                }
                error!(conn = %name, cookies = %cookies, "IKE SA {cookies} with {peer} failed: {reason}");
                if let Some(c) = conn.and_then(|c| self.conns.get_mut(c)) {
                    c.last_failure = Some(reason.to_string());
                }
                if let Some(c) = conn {
                    self.schedule_retry(c);
                }
            }
            Event::IkeSaDeleted {
                conn,
                cookies,
                reason,
            } => {
                info!(conn = %self.conn_name(conn), cookies = %cookies, "IKE SA {cookies} deleted: {reason}");
                self.schedule_retry(conn);
            }
            Event::PeerDead { conn, cookies } => {
                warn!(conn = %self.conn_name(conn), cookies = %cookies, "peer dead (DPD) on IKE SA {cookies}");
                if let Some(c) = self.conns.get_mut(conn) {
                    c.last_failure = Some("peer dead (DPD)".into());
                    // RFC 3706 §5.5 leaves the action open; like strongSwan's dpd_action=restart
                    // an initiator negotiates again at once (backoff applies if that fails).
                    if c.cfg.start == Start::Initiate && !self.stop {
                        c.retry_at = Some(Instant::now());
                        info!(conn = %c.cfg.name, "peer dead: initiating again now");
                    }
                }
            }
            Event::ChildSaInboundReady(child) => self.install_inbound(child),
            Event::ChildSaEstablished(child) => self.install(child),
            Event::ChildSaFailed {
                conn,
                cookies,
                message_id,
                reason,
            } => {
                error!(conn = %self.conn_name(conn), cookies = %cookies, message_id = %format_args!("{message_id:08x}"), "Quick Mode {message_id:08x} on {cookies} failed: {reason}");
                if let Some(i) = self
                    .early_inbound
                    .iter()
                    .position(|e| e.0 == conn && e.1 == message_id)
                {
                    let (_, _, h) = self.early_inbound.swap_remove(i);
                    if let Ok(mut m) = self.shared.inbound.write() {
                        m.remove(&h);
                    }
                    let _ = self.sad.remove(h);
                }
                if let Some(c) = self.conns.get_mut(conn) {
                    c.last_failure = Some(reason.to_string());
                }
            }
            Event::ChildSaDraining {
                conn,
                inbound_spi,
                outbound_spi,
            } => self.stop_sending(conn, inbound_spi, outbound_spi),
            Event::ChildSaDeleted {
                conn,
                inbound_spi,
                outbound_spi,
                reason,
            } => self.uninstall(conn, inbound_spi, outbound_spi, &reason),
            Event::Recovery { conn, peer, action } => {
                info!(conn = %self.conn_name(conn), peer = %peer, "invalid-SPI recovery: {action}")
            }
            Event::InitialContact { conn, cookies } => {
                info!(conn = %self.conn_name(conn), cookies = %cookies, "INITIAL-CONTACT on {cookies}: the peer (re)started")
            }
            Event::NotifyReceived {
                conn,
                cookies,
                notify,
                authenticated,
            } => {
                let name = conn.map(|c| self.conn_name(c)).unwrap_or_default();
                info!(conn = %name, cookies = %cookies, "notify {} on {cookies} ({})", notify.name(),
                    if authenticated { "authenticated" } else { "unauthenticated: recorded only" });
            }
            Event::Unprocessable {
                conn,
                cookies,
                message_id,
                message,
                reason,
                notify,
                ..
            } => {
                // The endpoint reports one per ISAKMP SA a second at most.
                let answer = notify.map_or("not answered (no notify applies)".to_string(), |n| {
                    format!("answered with {}", n.name())
                });
                warn!(conn = %self.conn_name(conn), cookies = %cookies, message_id = %format_args!("{message_id:08x}"),
                    "{message} on {cookies} mid {message_id:08x} not processed: {reason}; {answer}");
                if let Some(c) = self.conns.get_mut(conn) {
                    c.last_failure = Some(format!("{message} not processed: {reason}"));
                }
            }
            Event::LifetimeCapped {
                conn,
                cookies,
                sa,
                unit,
                theirs,
                ours,
            } => {
                warn!(conn = %self.conn_name(conn), cookies = %cookies, "{sa} {cookies}: the peer's lifetime of {theirs} {unit} is above ours; keeping {ours} {unit} (RFC 2409 4.5)");
            }
        }
    }

    /// Initiating connections come back by themselves, with backoff up to 5 minutes.
    fn schedule_retry(&mut self, conn: usize) {
        // A replaced (rekeyed) IKE SA leaves its successor up: nothing to retry.
        if self.endpoint.is_up(conn) {
            return;
        }
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        if c.cfg.start != Start::Initiate || c.retry_at.is_some() || self.stop {
            return;
        }
        c.retry_at = Some(Instant::now() + c.backoff);
        info!(conn = %c.cfg.name, "will initiate again in {}s", c.backoff.as_secs());
        c.backoff = (c.backoff * 2).min(Duration::from_secs(300));
    }

    /// Responder after QM2: accept ESP on the new inbound SPI at once (see
    /// `Event::ChildSaInboundReady`); the outbound half follows with QM3.
    fn install_inbound(&mut self, child: ChildSa) {
        let Some((inb, _)) = convert::esp_sas(&child) else {
            return;
        };
        let Ok(h) = self.sad.add(&inb, self.clock.now()) else {
            return;
        };
        if let Some(tun) = self.conns.get(child.conn).and_then(|c| c.tun) {
            if let Ok(mut m) = self.shared.inbound.write() {
                m.insert(h, tun);
            }
        }
        self.early_inbound.push((child.conn, child.message_id, h));
    }

    fn install(&mut self, child: ChildSa) {
        let name = self.conn_name(child.conn);
        let Some((inb, outb)) = convert::esp_sas(&child) else {
            error!(conn = %name, "negotiated ESP transform {} is not implemented by the data plane", child.cipher.name());
            return;
        };
        let now = self.clock.now();
        let early = self
            .early_inbound
            .iter()
            .position(|e| e.0 == child.conn && e.1 == child.message_id)
            .map(|i| self.early_inbound.swap_remove(i).2);
        let inbound = match early {
            Some(h) => Ok(h),
            None => self.sad.add(&inb, now),
        };
        let (h_in, h_out) = match (inbound, self.sad.add(&outb, now)) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                error!(conn = %name, "installing SA pair failed: {:?} {:?}", a.err(), b.err());
                return;
            }
        };
        let Some(c) = self.conns.get_mut(child.conn) else {
            return;
        };
        if let Some(tun) = c.tun {
            if let Ok(mut m) = self.shared.inbound.write() {
                m.insert(h_in, tun);
            }
            if let Ok(mut p) = self.shared.policies.write() {
                p.push(Policy {
                    tun,
                    local: IpNet::truncating(child.local_ts.addr, child.local_ts.prefix_len),
                    remote: IpNet::truncating(child.remote_ts.addr, child.remote_ts.prefix_len),
                    handle: h_out,
                });
            }
        }
        info!(
            conn = %name,
            "IPsec SA installed: {} === {} spi in {:08x} out {:08x}, {}{}, {:?}, lifetime {}s",
            child.local_ts,
            child.remote_ts,
            child.inbound.spi,
            child.outbound.spi,
            child.cipher.name(),
            child.integrity.map(|i| format!("-{}", i.name())).unwrap_or_default(),
            child.encapsulation,
            child.lifetime.as_secs()
        );
        c.pairs.push(InstalledPair {
            ike: child.ike,
            inbound: h_in,
            outbound: h_out,
            established: Instant::now(),
            child,
        });
    }

    /// The peer deleted the pair: its outbound half goes now, the inbound half drains.
    fn stop_sending(&mut self, conn: usize, spi_in: u32, spi_out: u32) {
        let name = self.conn_name(conn);
        let Some(p) = self.conns.get(conn).and_then(|c| {
            c.pairs
                .iter()
                .find(|p| p.child.inbound.spi == spi_in && p.child.outbound.spi == spi_out)
        }) else {
            return;
        };
        let out = p.outbound;
        if let Ok(mut pol) = self.shared.policies.write() {
            pol.retain(|x| x.handle != out);
        }
        let _ = self.sad.remove(out);
        info!(conn = %name, "IPsec SA deleted by peer: spi out {spi_out:08x} removed, spi in {spi_in:08x} drains");
    }

    fn uninstall(&mut self, conn: usize, spi_in: u32, spi_out: u32, reason: &str) {
        let name = self.conn_name(conn);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Some(i) = c
            .pairs
            .iter()
            .position(|p| p.child.inbound.spi == spi_in && p.child.outbound.spi == spi_out)
        else {
            return;
        };
        let p = c.pairs.swap_remove(i);
        if let Ok(mut pol) = self.shared.policies.write() {
            pol.retain(|x| x.handle != p.outbound);
        }
        if let Ok(mut m) = self.shared.inbound.write() {
            m.remove(&p.inbound);
        }
        let _ = self.sad.remove(p.inbound);
        let _ = self.sad.remove(p.outbound);
        info!(conn = %name, "IPsec SA removed: spi in {spi_in:08x} out {spi_out:08x} ({reason})");
        if c.pairs.is_empty() && !self.endpoint.is_up(conn) {
            self.schedule_retry(conn);
        }
    }

    fn answer(&mut self, req: Request) {
        match req {
            Request::Status(reply) => {
                let view = StatusView::collect(
                    &self.endpoint,
                    &self.conns,
                    &self.sad,
                    &self.shared,
                    self.started,
                );
                let _ = reply.send(view);
            }
            Request::Metrics(reply) => {
                let _ = reply.send(self.metrics_text());
            }
            Request::Snapshot(reply) => {
                let snap = history::snapshot(
                    &self.history,
                    &self.endpoint,
                    &self.conns,
                    &self.sad,
                    self.give_up,
                    Instant::now(),
                );
                let _ = reply.send(snap);
            }
            Request::Down(reply) => {
                info!("down requested over the control socket");
                self.stop = true;
                let _ = reply.send(());
            }
        }
    }
}
