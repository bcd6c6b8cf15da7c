//! The unix control socket: one request line (`status`, `status json`, `snapshot`, `down`,
//! `initiate|terminate|rekey SECONDS NAME`, `reload`) per connection, answered by the event
//! loop. Each client is served on its own short-lived thread, so an `initiate` waiting for its
//! tunnel does not hold `status` up. Also the client side used by the CLI.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use ferrovpn_esp::Sad;
use ferrovpn_ike::{Endpoint, Role};
use serde_json::{json, Value};

use super::conn::{stats_of, ConnState};
use super::dataplane::Shared;
pub use super::outcome::Outcome;
use crate::config::format_duration;

pub enum Request {
    Status(Sender<StatusView>),
    /// The Prometheus text of `/metrics` (see `metrics`).
    Metrics(Sender<String>),
    /// Everything `history` and `diagnose` read (`snapshot` request, answered as JSON).
    Snapshot(Sender<crate::snapshot::Snapshot>),
    Down(Sender<()>),
    /// `initiate`, `terminate`, `rekey` of one connection; answered once done, failed or
    /// `timeout` passed.
    Conn {
        op: ConnOp,
        name: String,
        timeout: Duration,
        reply: Sender<Outcome>,
    },
    /// Re-read the configuration file (as SIGHUP does), answering with the result.
    Reload(Sender<Outcome>),
}

/// An operator action on one connection, as swanctl's --initiate/--terminate/--rekey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnOp {
    Initiate,
    Terminate,
    Rekey,
}

impl ConnOp {
    pub fn word(self) -> &'static str {
        match self {
            ConnOp::Initiate => "initiate",
            ConnOp::Terminate => "terminate",
            ConnOp::Rekey => "rekey",
        }
    }
}

/// Longest `--timeout` a client may ask the daemon to wait.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Most clients served at once; more are turned away with an error line.
const MAX_CLIENTS: usize = 16;

/// `initiate 30 site-b` → (Initiate, 30 s, "site-b"); the name is the rest of the line.
fn parse_conn_request(line: &str) -> Option<(ConnOp, Duration, String)> {
    let (word, rest) = line.split_once(' ')?;
    let op = [ConnOp::Initiate, ConnOp::Terminate, ConnOp::Rekey]
        .into_iter()
        .find(|o| o.word() == word)?;
    let (secs, name) = rest.split_once(' ')?;
    let secs: u64 = secs.parse().ok()?;
    if name.is_empty() {
        return None;
    }
    Some((
        op,
        Duration::from_secs(secs).min(MAX_WAIT),
        name.to_string(),
    ))
}

/// A status snapshot, as JSON and as the table people read.
pub struct StatusView {
    pub json: Value,
    /// (local, remote) identity per connection, for the table (the JSON stays as it was).
    pub ids: Vec<(String, String)>,
}

fn hex8(x: u32) -> String {
    format!("{x:08x}")
}

impl StatusView {
    pub fn collect(
        endpoint: &Endpoint,
        conns: &[ConnState],
        sad: &Sad,
        shared: &Shared,
        started: Instant,
    ) -> StatusView {
        let now = Instant::now();
        let ike_sas = endpoint.ike_sas(now);
        let connections: Vec<Value> = conns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.removed)
            .map(|(i, c)| {
                let ike: Vec<Value> = ike_sas
                    .iter()
                    .filter(|s| s.conn == i)
                    .map(|s| {
                        json!({
                            "cookies": s.cookies.to_string(),
                            "role": match s.role { Role::Initiator => "initiator", Role::Responder => "responder" },
                            "mode": match s.mode { ferrovpn_ike::Phase1Mode::Main => "main", ferrovpn_ike::Phase1Mode::Aggressive => "aggressive" },
                            "state": s.state,
                            "local": s.local.to_string(),
                            "remote": s.remote.to_string(),
                            "proposal": s.proposal.map(|p| p.to_string()),
                            "age_s": s.age.as_secs(),
                            "lifetime_s": s.lifetime.as_secs(),
                            "nat_floated": s.nat.floated,
                            "nat_local_behind": s.nat.local_behind_nat,
                            "nat_remote_behind": s.nat.remote_behind_nat,
                            "peer_dpd": s.features.dpd,
                            "quick_modes_in_flight": s.quick_modes_in_flight,
                        })
                    })
                    .collect();
                let ipsec: Vec<Value> = c
                    .pairs
                    .iter()
                    .map(|p| {
                        let (i, o) = (stats_of(sad, p.inbound), stats_of(sad, p.outbound));
                        json!({
                            "local_ts": p.child.local_ts.to_string(),
                            "remote_ts": p.child.remote_ts.to_string(),
                            "spi_in": hex8(p.child.inbound.spi),
                            "spi_out": hex8(p.child.outbound.spi),
                            "cipher": format!("{}{}", p.child.cipher.name(), p.child.integrity.map(|x| format!("-{}", x.name())).unwrap_or_default()),
                            "pfs": p.child.pfs.map(|g| g.name()),
                            "encap": match p.child.encapsulation { ferrovpn_ike::EspEncapsulation::Raw => "raw", _ => "udp" },
                            "ike": p.ike.to_string(),
                            "age_s": now.saturating_duration_since(p.established).as_secs(),
                            "lifetime_s": p.child.lifetime.as_secs(),
                            "in_packets": i.packets, "in_bytes": i.bytes,
                            "out_packets": o.packets, "out_bytes": o.bytes,
                            "auth_failures": i.auth_failures, "replay_drops": i.replay_drops,
                            "bad_padding": i.bad_padding, "malformed": i.malformed,
                            "expired_drops": i.expired_drops + o.expired_drops,
                            "outbound_held": p.held.is_some(),
                        })
                    })
                    .collect();
                // A gateway's clients (issue 14): one lease each, with its IPsec SAs' counters.
                let leases6 = endpoint.leases(i, true);
                let pool6 = c.cfg.gateway.as_ref().and_then(|g| g.pool6).map(|p| {
                    let (used, size) = leases6
                        .as_ref()
                        .map_or((0, pool_size(&p)), |(l, size)| (l.len() as u64, *size));
                    json!({ "pool": p.to_string(), "size": size, "used": used, "free": size.saturating_sub(used) })
                });
                let leases4 = endpoint.leases(i, false);
                let clients: Vec<Value> = leases4
                    .iter()
                    .chain(leases6.iter())
                    .flat_map(|(l, _)| l.iter())
                    .map(|(address, l)| {
                        let host = ferrovpn_ike::TrafficSelector::host(*address);
                        let (mut ip, mut ib, mut op, mut ob) = (0, 0, 0, 0);
                        for p in c.pairs.iter().filter(|p| p.child.remote_ts == host) {
                            let (i, o) = (stats_of(sad, p.inbound), stats_of(sad, p.outbound));
                            ip += i.packets;
                            ib += i.bytes;
                            op += o.packets;
                            ob += o.bytes;
                        }
                        json!({
                            "user": l.user,
                            "address": address.to_string(),
                            "peer": l.peer.to_string(),
                            "since_s": now.saturating_duration_since(l.since).as_secs(),
                            "in_packets": ip, "in_bytes": ib,
                            "out_packets": op, "out_bytes": ob,
                        })
                    })
                    .collect();
                let pool = c.cfg.gateway.as_ref().map(|g| {
                    let (used, size) = leases4
                        .as_ref()
                        .map_or((0, pool_size(&g.pool)), |(l, size)| (l.len() as u64, *size));
                    json!({ "pool": g.pool.to_string(), "size": size, "used": used, "free": size.saturating_sub(used) })
                });
                json!({
                    "name": c.cfg.name,
                    "local_addr": c.cfg.local_addr.to_string(),
                    "remote_addr": c.cfg.remote_addr.to_string(),
                    "up": !c.pairs.is_empty(),
                    "held": c.held,
                    "last_failure": c.last_failure,
                    "mode_config": c.mode_config.as_ref().map(|m| json!({
                        "summary": crate::remote_access::describe(m),
                        "address": m.ip4_address.map(|a| a.to_string()),
                        "banner": m.banner,
                    })),
                    "ike_sas": ike,
                    "ipsec_sas": ipsec,
                    "pool": pool,
                    "pool6": pool6,
                    "clients": clients,
                })
            })
            .collect();
        let ic = endpoint.counters();
        let (dh_ready, dh_inline) = endpoint.dh_pool_use();
        let g = sad.global_stats();
        let io = &shared.counters;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let xl = crate::users::Limiter::global();
        let xp = crate::pam_users::PamStats::global();
        let json = json!({
            "uptime_s": now.saturating_duration_since(started).as_secs(),
            "connections": connections,
            "counters": {
                "ike": { "received": ic.received, "malformed": ic.malformed, "unknown_sa": ic.unknown_sa, "invalid_cookie": ic.invalid_cookie,
                         "no_connection": ic.no_connection, "half_open_dropped": ic.half_open_dropped, "half_open_replaced": ic.half_open_replaced, "xauth_locked_out": ic.xauth_locked_out,
                         "xauth_hashed": ld(&xl.hashed), "xauth_cached": ld(&xl.cached), "xauth_throttled": ld(&xl.throttled),
                         "xauth_pam_checks": ld(&xp.checks), "xauth_pam_answered": ld(&xp.answered), "xauth_pam_busy": ld(&xp.busy),
                         "xauth_pam_queue_full": ld(&xp.queue_full), "xauth_pam_errors": ld(&xp.errors), "duplicates": ic.duplicates,
                         "bad_hash": ic.bad_hash, "unexpected": ic.unexpected, "queue_dropped": ld(&io.ike_queue_dropped),
                         "recovery_triggers": ic.recovery_triggers, "recovery_actions": ic.recovery_actions,
                         "fragments_received": ic.fragments_received, "fragments_reassembled": ic.fragments_reassembled,
                         "fragments_dropped": ic.fragments_dropped, "fragments_over_limit": ic.fragments_over_limit,
                         "fragment_timeouts": ic.fragment_timeouts, "fragments_sent": ic.fragments_sent,
                         "dh_pool_ready": dh_ready, "dh_pool_inline": dh_inline,
                         "dh_jobs": endpoint.dh_jobs_total(), "dh_jobs_in_flight": endpoint.dh_jobs_in_flight() },
                "esp": { "unknown_spi": g.unknown_spi, "unknown_sa": g.unknown_sa, "malformed": g.malformed,
                         "no_policy": ld(&io.no_policy), "spoofed": ld(&io.spoofed), "send_errors": ld(&io.send_errors), "tun_write_errors": ld(&io.tun_write_errors),
                         "malformed_udp": ld(&io.malformed_udp), "offload_errors": ld(&io.offload_errors),
                         "too_big": ld(&io.too_big), "ptb_sent": ld(&io.ptb_sent) },
            },
        });
        let ids = conns
            .iter()
            .filter(|c| !c.removed)
            .map(|c| (c.cfg.local_id.to_string(), c.cfg.remote_id.to_string()))
            .collect();
        StatusView { json, ids }
    }

    /// The table for people, in the order an engineer checks things: IKE, then IPsec.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = |v: &Value| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        };
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        out.push_str(&format!(
            "ferrovpn up {}\n",
            format_duration(Duration::from_secs(n(&self.json["uptime_s"])))
        ));
        for (i, c) in self.json["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            out.push_str(&format!(
                "\nconnection {} ({} -> {}): {}\n",
                s(&c["name"]),
                s(&c["local_addr"]),
                s(&c["remote_addr"]),
                if c["up"].as_bool() == Some(true) {
                    "UP"
                } else if c["held"].as_bool() == Some(true) {
                    "DOWN (held by terminate; `ferrovpn initiate` brings it back)"
                } else {
                    "DOWN"
                }
            ));
            if let Some((l, r)) = self.ids.get(i) {
                out.push_str(&format!("  identities: local {l}, remote {r}\n"));
            }
            if let Some(f) = c["last_failure"].as_str() {
                out.push_str(&format!("  last failure: {f}\n"));
            }
            if let Some(m) = c["mode_config"]["summary"].as_str() {
                out.push_str(&format!("  mode config: {m}\n"));
            }
            if let Some(b) = c["mode_config"]["banner"].as_str() {
                out.push_str(&format!("  banner: {}\n", b.replace('\n', "\n          ")));
            }
            for p in ["pool", "pool6"] {
                if c[p].is_object() {
                    out.push_str(&format!(
                        "  pool {}: {} used, {} free\n",
                        s(&c[p]["pool"]),
                        n(&c[p]["used"]),
                        n(&c[p]["free"])
                    ));
                }
            }
            for k in c["clients"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  client {} {} from {}  since {}s  in {} pkts {} bytes  out {} pkts {} bytes\n",
                    k["user"].as_str().unwrap_or("-"),
                    s(&k["address"]),
                    s(&k["peer"]),
                    n(&k["since_s"]),
                    n(&k["in_packets"]),
                    n(&k["in_bytes"]),
                    n(&k["out_packets"]),
                    n(&k["out_bytes"]),
                ));
            }
            for k in c["ike_sas"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  IKE  {}  {} {} {}  {} -> {}  {}  age {}s/{}s{}{}\n",
                    s(&k["cookies"]),
                    s(&k["mode"]),
                    s(&k["role"]),
                    s(&k["state"]),
                    s(&k["local"]),
                    s(&k["remote"]),
                    k["proposal"].as_str().unwrap_or("-"),
                    n(&k["age_s"]),
                    n(&k["lifetime_s"]),
                    if k["nat_floated"].as_bool() == Some(true) {
                        "  NAT-T"
                    } else {
                        ""
                    },
                    if k["peer_dpd"].as_bool() == Some(true) {
                        "  DPD"
                    } else {
                        ""
                    },
                ));
            }
            for p in c["ipsec_sas"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  ESP  {} === {}  spi in {} out {}  {} ({}{})  age {}s/{}s\n       in {} pkts {} bytes  out {} pkts {} bytes  drops: auth {} replay {} padding {} malformed {}\n",
                    s(&p["local_ts"]),
                    s(&p["remote_ts"]),
                    s(&p["spi_in"]),
                    s(&p["spi_out"]),
                    s(&p["cipher"]),
                    s(&p["encap"]),
                    p["pfs"].as_str().map(|g| format!(", pfs {g}")).unwrap_or_default(),
                    n(&p["age_s"]),
                    n(&p["lifetime_s"]),
                    n(&p["in_packets"]),
                    n(&p["in_bytes"]),
                    n(&p["out_packets"]),
                    n(&p["out_bytes"]),
                    n(&p["auth_failures"]),
                    n(&p["replay_drops"]),
                    n(&p["bad_padding"]),
                    n(&p["malformed"]),
                ));
                if p["outbound_held"].as_bool() == Some(true) {
                    out.push_str("       not sending yet: the older pair carries our traffic until the peer uses this one\n");
                }
            }
        }
        // Only counters that moved: a dozen features' zeros would hide the one that matters.
        out.push_str("\ncounters (non-zero; `status --json` has all):\n");
        for (group, title) in [("ike", "IKE"), ("esp", "ESP")] {
            let Some(m) = self.json["counters"][group].as_object() else {
                continue;
            };
            let mut items: Vec<String> = m
                .iter()
                .filter(|(_, v)| v.as_u64() != Some(0))
                .map(|(k, v)| format!("{} {}", k.replace('_', " "), n(v)))
                .collect();
            let zeros = m.len() - items.len();
            if zeros > 0 {
                items.push(format!("{zeros} more at 0"));
            }
            out.push_str(&format!("  {title:<4} {}\n", items.join(", ")));
        }
        out
    }
}

/// The control socket's listener thread.
pub struct ControlServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `path` (which `runstate::prepare` found free) and serves requests; returns the server
/// and the `(st_dev, st_ino)` of the socket file, for the run-state record and for removing only
/// that file at exit.
pub fn serve(
    path: &Path,
    requests: Sender<Request>,
    waker: Arc<mio::Waker>,
) -> io::Result<(ControlServer, (u64, u64))> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let (listener, inode) = bind_restricted(path)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            let busy = Arc::new(AtomicUsize::new(0));
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        if busy.load(Ordering::Relaxed) >= MAX_CLIENTS {
                            let _ = stream.write_all(b"error: busy, try again\n");
                            continue;
                        }
                        busy.fetch_add(1, Ordering::Relaxed);
                        let (requests, waker, busy2) =
                            (requests.clone(), waker.clone(), busy.clone());
                        let spawned = std::thread::Builder::new()
                            .name("control-client".into())
                            .spawn(move || {
                                let _ = handle(stream, &requests, &waker);
                                busy2.fetch_sub(1, Ordering::Relaxed);
                            });
                        if spawned.is_err() {
                            busy.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
    Ok((
        ControlServer {
            stop,
            thread: Some(thread),
        },
        inode,
    ))
}

/// Creates a listening unix socket at `path` that is mode 0600 from the moment anyone can reach
/// it. bind(2) creates the file with `0777 & ~umask` and a unix socket cannot be fchmod'ed before
/// it has a name; changing the umask around bind would race with the threads already running
/// (umask is per process). So: bind and listen inside a fresh 0700 directory (mkdtemp) next to
/// `path`, which nobody else can enter, chmod the socket to 0600 there, and only then rename it
/// into place with `RENAME_NOREPLACE` (never over a file that appeared meanwhile). The socket is
/// therefore also never visible before it listens.
pub fn bind_restricted(path: &Path) -> io::Result<(UnixListener, (u64, u64))> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;

    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut template = parent.as_os_str().as_bytes().to_vec();
    template.extend_from_slice(b"/.ferrovpn-sock-XXXXXX");
    let template = CString::new(template).map_err(io::Error::other)?;
    let tmpdir = crate::sys::fs::make_temp_dir(template)?;
    let tmp = tmpdir.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        let m = std::fs::symlink_metadata(&tmp)?;
        let from = CString::new(tmp.as_os_str().as_bytes()).map_err(io::Error::other)?;
        let to = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        if let Err(e) = crate::sys::fs::rename_noreplace(&from, &to) {
            return Err(io::Error::new(
                e.kind(),
                format!("publishing {}: {e}", path.display()),
            ));
        }
        Ok((listener, (m.dev(), m.ino())))
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&tmpdir);
    result
}

/// Removes the control socket at exit, only if `path` is still the socket this daemon bound.
pub fn remove_if_ours(path: &Path, inode: (u64, u64)) {
    if crate::runstate::socket_inode(path) == Some(inode) {
        let _ = std::fs::remove_file(path);
    }
}

/// The bound control socket file, removed (if still ours) when dropped: on every exit path,
/// also when setup fails after binding it.
pub struct SocketFile {
    pub path: PathBuf,
    pub inode: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        remove_if_ours(&self.path, self.inode);
    }
}

fn handle(stream: UnixStream, requests: &Sender<Request>, waker: &mio::Waker) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(stream.try_clone()?)
        .take(256)
        .read_line(&mut line)?;
    let mut out = stream;
    let timeout = Duration::from_secs(5);
    match line.trim() {
        cmd @ ("status" | "status json") => {
            let (tx, rx) = bounded(1);
            requests
                .send(Request::Status(tx))
                .map_err(|_| io::Error::other("daemon stopping"))?;
            waker.wake()?;
            let view = rx
                .recv_timeout(timeout)
                .map_err(|_| io::Error::other("no answer"))?;
            let text = if cmd == "status json" {
                format!("{}\n", view.json)
            } else {
                view.table()
            };
            out.write_all(text.as_bytes())
        }
        "snapshot" => {
            let (tx, rx) = bounded(1);
            requests
                .send(Request::Snapshot(tx))
                .map_err(|_| io::Error::other("daemon stopping"))?;
            waker.wake()?;
            let snap = rx
                .recv_timeout(timeout)
                .map_err(|_| io::Error::other("no answer"))?;
            let text = serde_json::to_string(&snap).map_err(io::Error::other)?;
            out.write_all(format!("{text}\n").as_bytes())
        }
        "down" => {
            let (tx, rx) = bounded(1);
            requests
                .send(Request::Down(tx))
                .map_err(|_| io::Error::other("daemon stopping"))?;
            waker.wake()?;
            rx.recv_timeout(timeout)
                .map_err(|_| io::Error::other("no answer"))?;
            out.write_all(b"ok: shutting down\n")
        }
        "reload" => {
            let (tx, rx) = bounded(1);
            requests
                .send(Request::Reload(tx))
                .map_err(|_| io::Error::other("daemon stopping"))?;
            waker.wake()?;
            let o = rx
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| io::Error::other("no answer"))?;
            out.write_all(o.to_text().as_bytes())
        }
        l => match parse_conn_request(l) {
            Some((op, wait, name)) => {
                let (tx, rx) = bounded(1);
                requests
                    .send(Request::Conn {
                        op,
                        name,
                        timeout: wait,
                        reply: tx,
                    })
                    .map_err(|_| io::Error::other("daemon stopping"))?;
                waker.wake()?;
                let o = rx
                    .recv_timeout(wait + timeout)
                    .unwrap_or_else(|_| Outcome::Failed("the daemon did not answer".into()));
                out.write_all(o.to_text().as_bytes())
            }
            None => out.write_all(
                format!(
                    "error: unknown request {l:?} (status, status json, snapshot, down, \
                     initiate|terminate|rekey SECONDS NAME, reload)\n"
                )
                .as_bytes(),
            ),
        },
    }
}

/// Sends one request to a running daemon and returns its answer.
pub fn request(path: &PathBuf, cmd: &str) -> io::Result<String> {
    request_waiting(path, cmd, Duration::from_secs(10))
}

/// [`request`] for one that may take `wait` (an `initiate` waiting for its tunnel).
pub fn request_waiting(path: &PathBuf, cmd: &str, wait: Duration) -> io::Result<String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{}: {e} (is ferrovpn up running?)", path.display()),
        )
    })?;
    s.set_read_timeout(Some(wait))?;
    s.write_all(format!("{cmd}\n").as_bytes())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Leasable addresses of a gateway pool (network and broadcast excluded, as the ike crate).
pub(super) fn pool_size(pool: &crate::ipnet::IpNet) -> u64 {
    let width = if pool.is_ipv6() { 128u32 } else { 32 };
    let host_bits = width.saturating_sub(u32::from(pool.prefix_len()));
    let all = 1u64.checked_shl(host_bits).unwrap_or(0);
    match (host_bits, pool.is_ipv6()) {
        (0..=1, _) => all,
        (64.., _) => u64::MAX,
        // The Subnet-Router anycast address is not leased (RFC 4291 §2.6.1).
        (_, true) => all.saturating_sub(1),
        (_, false) => all.saturating_sub(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "fv-control-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&d).unwrap();
        d
    }

    /// The socket appears with mode 0600, listening, and no temporary directory stays behind.
    #[test]
    fn the_socket_is_published_restricted_and_listening() {
        let dir = tmpdir("bind");
        let path = dir.join("c.sock");
        let (l, inode) = bind_restricted(&path).unwrap();
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        assert_eq!((m.dev(), m.ino()), inode);
        assert!(UnixStream::connect(&path).is_ok());
        let entries: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        drop(l);
        remove_if_ours(&path, inode);
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Binding never replaces a file at the path, and removal at exit spares a file that is not
    /// the socket this daemon bound.
    #[test]
    fn nothing_else_at_the_path_is_replaced_or_removed() {
        let dir = tmpdir("noreplace");
        let path = dir.join("ferrovpn.toml");
        std::fs::write(&path, b"keep me").unwrap();
        let e = bind_restricted(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        let m = std::fs::metadata(&path).unwrap();
        remove_if_ours(&path, (m.dev(), m.ino()));
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn connection_requests_name_the_action_a_wait_and_the_rest_of_the_line_as_name() {
        assert_eq!(
            parse_conn_request("initiate 30 site b"),
            Some((ConnOp::Initiate, Duration::from_secs(30), "site b".into()))
        );
        assert_eq!(
            parse_conn_request("rekey 99999 x"),
            Some((ConnOp::Rekey, MAX_WAIT, "x".into()))
        );
        assert_eq!(parse_conn_request("terminate 0 "), None);
        assert_eq!(parse_conn_request("terminate x y"), None);
        assert_eq!(parse_conn_request("frobnicate 1 x"), None);
        assert_eq!(parse_conn_request("initiate"), None);
    }

    #[test]
    fn the_table_shows_identities_and_counters_as_lines_not_json() {
        let view = StatusView {
            json: json!({
                "uptime_s": 5,
                "connections": [{ "name": "e2e", "local_addr": "192.0.2.1", "remote_addr": "192.0.2.2",
                                  "up": true, "last_failure": null, "ike_sas": [], "ipsec_sas": [] }],
                "counters": { "ike": { "received": 12, "malformed": 3 }, "esp": { "unknown_spi": 1 } },
            }),
            ids: vec![("192.0.2.1".into(), "fqdn:peer.example".into())],
        };
        let t = view.table();
        assert!(
            t.contains("  identities: local 192.0.2.1, remote fqdn:peer.example\n"),
            "{t}"
        );
        assert!(t.contains("  IKE  malformed 3, received 12\n"), "{t}");
        assert!(t.contains("  ESP  unknown spi 1\n"), "{t}");
        assert!(!t.contains('{'), "no raw JSON: {t}");
    }

    #[test]
    fn a_pair_held_back_says_it_does_not_send_yet() {
        let pair = |spi: &str, held: bool| {
            json!({ "local_ts": "198.51.100.0/24", "remote_ts": "203.0.113.0/24", "spi_in": spi,
                    "spi_out": "0000beef", "cipher": "aes128gcm16", "encap": "udp", "pfs": null,
                    "age_s": 1, "lifetime_s": 30, "in_packets": 0, "in_bytes": 0,
                    "out_packets": 0, "out_bytes": 0, "auth_failures": 0, "replay_drops": 0,
                    "bad_padding": 0, "malformed": 0, "outbound_held": held })
        };
        let view = StatusView {
            json: json!({
                "uptime_s": 5,
                "connections": [{ "name": "e2e", "local_addr": "192.0.2.1", "remote_addr": "192.0.2.2",
                                  "up": true, "last_failure": null, "ike_sas": [],
                                  "ipsec_sas": [pair("0000aaaa", false), pair("0000bbbb", true)] }],
                "counters": {},
            }),
            ids: Vec::new(),
        };
        let t = view.table();
        assert_eq!(t.matches("not sending yet").count(), 1, "{t}");
        let held = t.find("spi in 0000bbbb").unwrap();
        assert!(
            t[held..].contains("not sending yet: the older pair carries our traffic"),
            "{t}"
        );
    }

    /// The text status lists the counters that moved and says how many others are 0.
    #[test]
    fn the_status_table_shows_only_counters_that_moved() {
        let view = StatusView {
            json: serde_json::json!({
                "uptime_secs": 5,
                "connections": [],
                "counters": {
                    "ike": {"received": 5, "bad_hash": 0, "xauth_pam_checks": 0},
                    "esp": {"unknown_spi": 0, "spoofed": 2}
                }
            }),
            ids: Vec::new(),
        };
        let t = view.table();
        assert!(
            t.contains("IKE  received 5, 2 more at 0\n")
                && t.contains("ESP  spoofed 2, 1 more at 0\n"),
            "{t}"
        );
        assert!(!t.contains("bad hash"), "{t}");
    }
}
