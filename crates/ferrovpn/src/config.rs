//! The TOML configuration: parsed with serde (unknown keys are errors, so typos are caught), then
//! validated into typed values. Every problem is reported as one message naming the key path,
//! e.g. `connection "site-b": ike: unknown algorithm 'aes257' in 'aes257-sha256-modp2048'`.
//! config/README.md documents every key. Relative paths are resolved against the directory of
//! the configuration file when it is loaded, so `up --daemon` (which changes to `/`) and `check`
//! see the same files. What is legal but worth knowing (legacy algorithms, an interface that
//! already exists) comes back as [`Remark`]s, shown by `check` and logged by `up`.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrovpn_ike::algorithm::DhGroup;
use ferrovpn_ike::proposal::{parse_esp_proposals, parse_ike_proposals, EspProposal, IkeProposal};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::ipnet::{IfAddr, IpNet};
use crate::secret_file::{self, PrivateDir, SecretFileError};

/// Default path of the control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ferrovpn.sock";
/// Default phase 1 proposal (also the ike crate's default).
pub const DEFAULT_IKE: &str = "aes256-sha256-modp2048";
/// Default phase 2 proposal.
pub const DEFAULT_ESP: &str = "aes128gcm16";

/// Longest IKE or IPsec SA lifetime: 24 h, the maximum Cisco IOS and Juniper accept for both.
/// A peer may propose a shorter one, which is adopted (RFC 2409 §4.5), never a longer one.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest `dpd_interval`: 1 h (Cisco's `isakmp keepalive` allows at most 3600 s).
pub const MAX_DPD_INTERVAL: Duration = Duration::from_secs(3600);
/// Longest `dpd_timeout`: 2 h.
pub const MAX_DPD_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// Longest time an unanswered IKE exchange may be retransmitted before it fails.
pub const MAX_RETRANSMIT_SCHEDULE: Duration = Duration::from_secs(3600);
/// Most data plane threads per direction; each is also one queue of every TUN device.
pub const MAX_WORKERS: usize = 64;
/// `sun_path` of a Unix socket address holds at most this many bytes before its NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Why a configuration was refused; the Display text is the whole message for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Syntax(String),
    #[error("daemon: {0}")]
    Daemon(String),
    #[error("no [[connection]] defined")]
    NoConnections,
    #[error("connection \"{name}\": {problem}")]
    Connection { name: String, problem: String },
}

/// What the configuration is loaded for: `up` needs every secret; `check` may validate a
/// configuration before its secrets are installed (a missing `psk_file` is then a warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Run,
    Check,
}

/// How loud a [`Remark`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Legal, but weaker or less interoperable than it looks, or `up` may still fail.
    Warning,
    /// Worth knowing.
    Note,
}

/// What a remark is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The configuration file itself.
    File,
    Daemon,
    Connection(String),
}

/// Something about a valid configuration the operator should know; `check` prints these and
/// `up` logs them at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark {
    pub severity: Severity,
    pub scope: Scope,
    pub text: String,
}

impl fmt::Display for Remark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::File => f.write_str(&self.text),
            Scope::Daemon => write!(f, "daemon: {}", self.text),
            Scope::Connection(c) => write!(f, "connection \"{c}\": {}", self.text),
        }
    }
}

// ---- raw TOML shape ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    connection: Vec<RawConnection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    control_socket: Option<PathBuf>,
    log_level: Option<String>,
    workers: Option<usize>,
    save_keys_dir: Option<PathBuf>,
    metrics_listen: Option<String>,
    #[serde(default)]
    metrics_allow_remote: bool,
    retransmit_timeout: Option<String>,
    retransmit_base: Option<f64>,
    retransmit_tries: Option<u32>,
    offloads: Option<bool>,
    #[serde(default)]
    pin_workers: bool,
    run_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnection {
    name: String,
    local_addr: String,
    remote_addr: String,
    local_id: Option<String>,
    remote_id: Option<String>,
    psk: Option<String>,
    psk_file: Option<PathBuf>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    allow_aggressive_psk: bool,
    ike: Option<String>,
    esp: Option<String>,
    ike_lifetime: Option<String>,
    esp_lifetime: Option<String>,
    esp_lifetime_bytes: Option<u64>,
    #[serde(default)]
    nat_traversal: NatTraversal,
    dpd_interval: Option<String>,
    dpd_timeout: Option<String>,
    start: Start,
    #[serde(default)]
    allow_weak_dh: bool,
    #[serde(default = "yes")]
    invalid_spi_recovery: bool,
    route_based: Option<RawRouteBased>,
    policy_based: Option<RawPolicyBased>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouteBased {
    interface: String,
    mtu: Option<u32>,
    tcp_mss: Option<RawTcpMss>,
    local_ts: Option<String>,
    remote_ts: Option<String>,
    routes: Option<Vec<String>>,
    address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyBased {
    pairs: Vec<RawPair>,
    tcp_mss: Option<RawTcpMss>,
}

/// `tcp_mss = "auto" | "off" | 1360`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTcpMss {
    Word(String),
    Number(i64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPair {
    local: String,
    remote: String,
}

// ---- validated types ----

/// A validated configuration file.
#[derive(Debug)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub connections: Vec<Connection>,
    /// Warnings and notes, in file order.
    pub remarks: Vec<Remark>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Absolute when the file was loaded with [`Config::load`].
    pub control_socket: PathBuf,
    pub log_level: LogLevel,
    /// Data plane threads per direction (default: half the cores, at least 1): outbound
    /// lanes, one per TUN queue; inbound, 1 = one thread, more = parallel decryption.
    pub workers: NonZeroUsize,
    /// Pin each data plane thread to one CPU, round robin over the allowed ones.
    pub pin_workers: bool,
    /// Debug only: write every SA's keys to Wireshark's tables in this directory.
    pub save_keys_dir: Option<PathBuf>,
    /// Prometheus text endpoint (`GET /metrics`), loopback unless `metrics_allow_remote`.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// IKE retransmission schedule, for every connection.
    pub retransmit: Retransmit,
    /// TUN checksum and TCP segmentation offloads with GRO-style coalescing (default on).
    pub offloads: bool,
    /// Where the daemon records what it created (see `runstate`); absolute.
    pub run_dir: PathBuf,
}

/// When an unanswered IKE message is sent again, and when the exchange is given up: after
/// `timeout`, then `timeout * base^n` for each further try (strongSwan's charon.retransmit_*).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retransmit {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
        }
    }
}

impl Retransmit {
    /// How long an unanswered exchange lasts before it is declared failed.
    pub fn give_up_after(&self) -> Duration {
        let mut wait = self.timeout.as_secs_f64();
        let mut total = 0.0;
        for _ in 0..=self.tries {
            total += wait;
            wait *= self.base;
        }
        Duration::from_secs_f64(total)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Phase 1 exchange (RFC 2409 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Main,
    Aggressive,
}

/// NAT traversal policy (RFC 3947): float to 4500 when a NAT is seen, or always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatTraversal {
    #[default]
    Auto,
    Force,
}

/// Whether this side starts phase 1 or waits for the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    Initiate,
    Respond,
}

/// An IKE identity (RFC 2407 §4.6.2.1 ID types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    UserFqdn(String),
    KeyId(Vec<u8>),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "fqdn:{s}"),
            Identity::UserFqdn(s) => write!(f, "userfqdn:{s}"),
            Identity::KeyId(k) => match std::str::from_utf8(k) {
                Ok(s) if !s.starts_with('#') => write!(f, "keyid:{s}"),
                _ => {
                    f.write_str("keyid:#")?;
                    k.iter().try_for_each(|b| write!(f, "{b:02x}"))
                }
            },
        }
    }
}

impl From<IpAddr> for Identity {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }
    }
}

/// A pre-shared key; wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// Dead peer detection (RFC 3706).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    pub interval: Duration,
    pub timeout: Duration,
}

/// A TUN interface whose routes lead into the tunnel; one SA pair local_ts ⇄ remote_ts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteBased {
    pub interface: String,
    /// None: computed from the outer MTU and the ESP overhead.
    pub mtu: Option<u16>,
    pub local_ts: IpNet,
    pub remote_ts: IpNet,
    pub routes: Vec<IpNet>,
    pub address: Option<IfAddr>,
}

/// TCP MSS clamping on the connection's TUN (RFC 6691): SYNs in both directions announce at
/// most this MSS, so TCP never needs path-MTU discovery through the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpMss {
    /// The TUN MTU − 40 (IPv4) or − 60 (IPv6).
    #[default]
    Auto,
    Off,
    /// This MSS for IPv4 and IPv6 SYNs alike.
    Fixed(u16),
}

/// One Quick Mode SA pair of a policy-based connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectorPair {
    pub local: IpNet,
    pub remote: IpNet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tunnel {
    RouteBased(RouteBased),
    PolicyBased(Vec<SelectorPair>),
}

/// A validated `[[connection]]`.
#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub local_addr: IpAddr,
    pub remote_addr: IpAddr,
    pub local_id: Identity,
    pub remote_id: Identity,
    /// Empty only when a `check` found `psk_file` missing (a warning then).
    pub psk: Psk,
    /// Where the key was read from (resolved), None for an inline `psk`.
    pub psk_file: Option<PathBuf>,
    pub mode: Mode,
    pub allow_aggressive_psk: bool,
    pub ike: Vec<IkeProposal>,
    pub esp: Vec<EspProposal>,
    pub ike_lifetime: Duration,
    pub esp_lifetime: Duration,
    pub esp_lifetime_bytes: Option<u64>,
    pub nat_traversal: NatTraversal,
    /// None when `dpd_interval = "0s"`.
    pub dpd: Option<Dpd>,
    pub start: Start,
    pub allow_weak_dh: bool,
    /// Act on ESP with unknown SPIs / IKE with unknown cookies from the peer (see the ike crate).
    pub invalid_spi_recovery: bool,
    pub tunnel: Tunnel,
    pub tcp_mss: TcpMss,
}

// ---- parsing and validation ----

impl Config {
    /// Reads and validates a file for `up`: every secret must be there.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_for(path, Purpose::Run)
    }

    /// Reads and validates a file; relative paths in it are resolved against its directory
    /// (made absolute first).
    pub fn load_for(path: &Path, purpose: Purpose) -> Result<Config, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        // The text may hold inline PSKs: wipe it when done.
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(read_err)?);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let base = std::path::absolute(dir).map_err(read_err)?;
        let mut cfg = Config::parse_for(&text, &base, purpose)?;
        // Inline keys in a file others can read are as good as published.
        if cfg.connections.iter().any(|c| c.psk_file.is_none()) {
            if let Ok(m) = std::fs::metadata(path) {
                let mode = m.permissions().mode() & 0o7777;
                if mode & 0o044 != 0 {
                    cfg.remarks.insert(
                        0,
                        Remark {
                            severity: Severity::Warning,
                            scope: Scope::File,
                            text: format!(
                                "{} holds an inline psk and is readable by group/others (mode {mode:04o}): chmod 600 it, or use psk_file",
                                path.display()
                            ),
                        },
                    );
                }
            }
        }
        Ok(cfg)
    }

    /// Parses and validates TOML text for `up`; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
        Config::parse_for(text, base, Purpose::Run)
    }

    /// Parses and validates TOML text, inspecting the files and interfaces it names;
    /// `base` (absolute) resolves relative paths.
    pub fn parse_for(text: &str, base: &Path, purpose: Purpose) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string().trim().into()))?;
        let mut remarks = Vec::new();
        let daemon = validate_daemon(raw.daemon, base, &mut remarks)?;
        if raw.connection.is_empty() {
            return Err(ConfigError::NoConnections);
        }
        let mut connections: Vec<Connection> = Vec::new();
        for rc in raw.connection {
            let name = rc.name.clone();
            let err = |problem: String| ConfigError::Connection {
                name: name.clone(),
                problem,
            };
            check_name(&name).map_err(err)?;
            if connections.iter().any(|c| c.name == name) {
                return Err(err("duplicate connection name".into()));
            }
            let mut notes = Vec::new();
            let c = validate_connection(rc, base, purpose, &mut notes).map_err(err)?;
            check_against_others(&c, &connections).map_err(err)?;
            inspect_host(&c, &mut notes).map_err(err)?;
            remarks.extend(notes.into_iter().map(|(severity, text)| Remark {
                severity,
                scope: Scope::Connection(name.clone()),
                text,
            }));
            connections.push(c);
        }
        Ok(Config {
            daemon,
            connections,
            remarks,
        })
    }

    /// The remarks of one connection (`None`: those of the file and the daemon).
    pub fn remarks_of<'a>(&'a self, conn: Option<&'a str>) -> impl Iterator<Item = &'a Remark> {
        self.remarks.iter().filter(move |r| match (&r.scope, conn) {
            (Scope::Connection(c), Some(n)) => c == n,
            (Scope::Connection(_), None) => false,
            (_, None) => true,
            (_, Some(_)) => false,
        })
    }
}

fn validate_daemon(
    d: RawDaemon,
    base: &Path,
    remarks: &mut Vec<Remark>,
) -> Result<DaemonConfig, ConfigError> {
    let mut warn = |text: String| {
        remarks.push(Remark {
            severity: Severity::Warning,
            scope: Scope::Daemon,
            text,
        })
    };
    let log_level = match d.log_level.as_deref().unwrap_or("info") {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        other => {
            return Err(ConfigError::Daemon(format!(
                "log_level: '{other}' is not one of error, warn, info, debug, trace"
            )))
        }
    };
    let cores = std::thread::available_parallelism().ok();
    let workers = match d.workers {
        Some(n) if n > MAX_WORKERS => {
            return Err(ConfigError::Daemon(format!(
                "workers: {n} is above the maximum of {MAX_WORKERS} (each worker is a thread per direction and a queue of every TUN device)"
            )))
        }
        Some(n) => {
            let n = NonZeroUsize::new(n)
                .ok_or_else(|| ConfigError::Daemon("workers: must be at least 1".into()))?;
            if let Some(c) = cores.filter(|c| n > *c) {
                warn(format!(
                    "workers: {n} is more than the {c} CPUs available here; the extra data plane threads only compete for them"
                ));
            }
            n
        }
        // Both directions are busy at once (TCP's ACKs come back), so each gets half.
        None => cores
            .and_then(|n| NonZeroUsize::new(n.get() / 2))
            .unwrap_or(NonZeroUsize::MIN),
    };
    let save_keys_dir = match &d.save_keys_dir {
        None => None,
        Some(dir) if dir.as_os_str().is_empty() => {
            return Err(ConfigError::Daemon(
                "save_keys_dir: must not be empty (leave it out to export no keys)".into(),
            ))
        }
        Some(dir) => {
            let dir = secret_file::resolve(base, dir);
            check_key_dir(&dir).map_err(|e| ConfigError::Daemon(format!("save_keys_dir: {e}")))?;
            Some(dir)
        }
    };
    let control_socket = match &d.control_socket {
        None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
        Some(p) if p.as_os_str().is_empty() => {
            return Err(ConfigError::Daemon(
                "control_socket: must not be empty (the default is /run/ferrovpn.sock)".into(),
            ))
        }
        Some(p) => secret_file::resolve(base, p),
    };
    check_control_socket(&control_socket)
        .map_err(|e| ConfigError::Daemon(format!("control_socket: {e}")))?;
    let metrics_listen = match &d.metrics_listen {
        None => None,
        Some(s) => {
            let a: std::net::SocketAddr = s.parse().map_err(|_| {
                ConfigError::Daemon(format!(
                    "metrics_listen: '{s}' is not an address:port such as 127.0.0.1:9273 or [::1]:9273"
                ))
            })?;
            if !a.ip().is_loopback() && !d.metrics_allow_remote {
                return Err(ConfigError::Daemon(format!(
                    "metrics_listen: {a} is not a loopback address; the endpoint has no authentication, set metrics_allow_remote = true to serve it there anyway"
                )));
            }
            Some(a)
        }
    };
    let dflt = Retransmit::default();
    let timeout = match d.retransmit_timeout.as_deref() {
        Some(t) => parse_duration(t)
            .map_err(|e| ConfigError::Daemon(format!("retransmit_timeout: {e}")))?,
        None => dflt.timeout,
    };
    if timeout < Duration::from_secs(1) || timeout > Duration::from_secs(60) {
        return Err(ConfigError::Daemon(format!(
            "retransmit_timeout: {} is outside 1s to 1m",
            format_duration(timeout)
        )));
    }
    let retransmit_base = d.retransmit_base.unwrap_or(dflt.base);
    if !(1.0..=4.0).contains(&retransmit_base) {
        return Err(ConfigError::Daemon(format!(
            "retransmit_base: {retransmit_base} is outside 1.0 to 4.0"
        )));
    }
    let tries = d.retransmit_tries.unwrap_or(dflt.tries);
    if !(1..=20).contains(&tries) {
        return Err(ConfigError::Daemon(format!(
            "retransmit_tries: {tries} is outside 1 to 20"
        )));
    }
    let retransmit = Retransmit {
        timeout,
        base: retransmit_base,
        tries,
    };
    let schedule = retransmit.give_up_after();
    if schedule > MAX_RETRANSMIT_SCHEDULE {
        return Err(ConfigError::Daemon(format!(
            "retransmit_timeout {}, retransmit_base {retransmit_base} and retransmit_tries {tries} would retransmit an unanswered exchange for {}; the maximum is {}",
            format_duration(timeout),
            format_duration(Duration::from_secs(schedule.as_secs())),
            format_duration(MAX_RETRANSMIT_SCHEDULE)
        )));
    }
    Ok(DaemonConfig {
        save_keys_dir,
        metrics_listen,
        control_socket,
        log_level,
        workers,
        retransmit,
        offloads: d.offloads.unwrap_or(true),
        pin_workers: d.pin_workers,
        run_dir: match &d.run_dir {
            None => PathBuf::from(crate::runstate::DEFAULT_RUN_DIR),
            Some(p) if p.is_absolute() => p.clone(),
            Some(p) => {
                return Err(ConfigError::Daemon(format!(
                    "run_dir: {} must be an absolute path",
                    p.display()
                )))
            }
        },
    })
}

/// `save_keys_dir` and the key tables already in it, as the daemon will find them.
fn check_key_dir(dir: &Path) -> Result<(), SecretFileError> {
    let d = PrivateDir::open(dir)?;
    for name in [crate::key_files::IKEV1_TABLE, crate::key_files::ESP_TABLE] {
        d.check_existing(name)?;
    }
    Ok(())
}

/// What can be known about the control socket path before binding it.
fn check_control_socket(p: &Path) -> Result<(), String> {
    if p.as_os_str().is_empty() {
        return Err("must not be empty (the default is /run/ferrovpn.sock)".into());
    }
    let len = secret_file::path_len(p);
    if len > MAX_SOCKET_PATH {
        return Err(format!(
            "{} is {len} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH}",
            p.display()
        ));
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            return Err(format!(
                "{} is a directory; name the socket file, e.g. {}",
                p.display(),
                p.join("ferrovpn.sock").display()
            ))
        }
        Ok(m) if !m.file_type().is_socket() => {
            return Err(format!(
                "{} exists and is not a socket; ferrovpn will not replace it",
                p.display()
            ))
        }
        _ => {}
    }
    match p.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(format!(
            "{}: directory {} does not exist",
            p.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("name: must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("name: use only letters, digits, '-', '_' and '.'".into());
    }
    Ok(())
}

/// Parses `30s`, `15m`, `8h`, `1d`, or sums of them (`1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("'{s}' is not a duration (use e.g. 30s, 15m, 8h, 1d)");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for ch in t.chars() {
        if let Some(d) = ch.to_digit(10) {
            let n = num.unwrap_or(0);
            num = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(d)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n = num.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if num.is_some() {
        return Err(format!(
            "'{s}' needs a unit: s, m, h or d (e.g. {}s)",
            num.unwrap_or(0)
        ));
    }
    Ok(Duration::from_secs(total))
}

/// `Duration` in the largest unit that divides it, the way it would be written in the config.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.checked_rem(86400) == Some(0) => format!("{}d", s / 86400),
        _ if s.checked_rem(3600) == Some(0) => format!("{}h", s / 3600),
        _ if s.checked_rem(60) == Some(0) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Shortest IKE or IPsec SA lifetime accepted.
const MIN_LIFETIME: Duration = Duration::from_secs(10);

fn above_max(key: &str, d: Duration, max: Duration) -> String {
    format!(
        "{key}: {} is above the maximum of {}",
        format_duration(d),
        format_duration(max)
    )
}

fn duration_key(key: &str, v: Option<&str>, default: &str) -> Result<Duration, String> {
    parse_duration(v.unwrap_or(default)).map_err(|e| format!("{key}: {e}"))
}

fn parse_identity(key: &str, s: &str) -> Result<Identity, String> {
    let nonempty = |v: &str, what: &str| {
        if v.is_empty() {
            Err(format!("{key}: empty {what}"))
        } else {
            Ok(v.to_string())
        }
    };
    if let Some(v) = s.strip_prefix("fqdn:") {
        return nonempty(v, "FQDN").map(Identity::Fqdn);
    }
    if let Some(v) = s.strip_prefix("userfqdn:") {
        let v = nonempty(v, "user FQDN")?;
        if !v.contains('@') {
            return Err(format!("{key}: userfqdn:{v} needs the form user@domain"));
        }
        return Ok(Identity::UserFqdn(v));
    }
    if let Some(v) = s.strip_prefix("keyid:") {
        let v = nonempty(v, "key id")?;
        return match v.strip_prefix('#') {
            Some(hex) => decode_hex(hex)
                .map(Identity::KeyId)
                .ok_or_else(|| format!("{key}: keyid:#{hex} is not an even number of hex digits")),
            None => Ok(Identity::KeyId(v.into_bytes())),
        };
    }
    s.parse::<IpAddr>().map(Identity::from).map_err(|_| {
        format!("{key}: '{s}' is not an IP address; write fqdn:{s}, userfqdn:{s} or keyid:{s}")
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len().checked_rem(2) != Some(0) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Reads a PSK file through [`secret_file::read_private`]: opened once without following a
/// symlink, judged on the open descriptor. `Ok(None)`: missing, and only being checked.
fn read_psk_file(path: &Path, purpose: Purpose) -> Result<Option<Psk>, String> {
    let bytes = match secret_file::read_private(path) {
        Ok(b) => b,
        Err(SecretFileError::Missing { .. }) if purpose == Purpose::Check => return Ok(None),
        Err(e) => return Err(format!("psk_file {e}")),
    };
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(format!("psk_file {} is empty", path.display()));
    }
    Ok(Some(Psk(Zeroizing::new(trimmed.to_vec()))))
}

/// Addresses IKE cannot talk to: IKE is unicast UDP.
fn check_unicast(key: &str, a: IpAddr) -> Result<(), String> {
    let what = match a {
        _ if a.is_unspecified() => "the unspecified address",
        _ if a.is_multicast() => "a multicast address",
        IpAddr::V4(v4) if v4.is_broadcast() => "the broadcast address",
        _ => return Ok(()),
    };
    Err(format!("{key}: {a} is {what}; IKE needs a unicast address"))
}

/// Legacy algorithms kept for old peers, each named once per key.
fn legacy_warnings(
    ike_str: &str,
    ike: &[IkeProposal],
    esp_str: &str,
    esp: &[EspProposal],
) -> Vec<String> {
    use ferrovpn_ike::algorithm::{EspCipher, EspIntegrity, IkeCipher, IkeHash};
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !out.contains(&s) {
            out.push(s)
        }
    };
    for p in ike {
        if p.cipher == IkeCipher::TripleDesCbc {
            add(format!("ike: 3des in '{ike_str}' is a legacy cipher (64-bit blocks: Sweet32), accepted for old peers; prefer aes128 or aes256"));
        }
        match p.hash {
            IkeHash::Md5 => add(format!("ike: md5 in '{ike_str}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256")),
            IkeHash::Sha1 => add(format!("ike: sha1 in '{ike_str}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256")),
            _ => {}
        }
    }
    for p in esp {
        if p.integrity == Some(EspIntegrity::HmacSha1_96) && !p.cipher.is_aead() {
            add(format!("esp: sha1 in '{esp_str}' (HMAC-SHA1-96) is legacy integrity, accepted for old peers; prefer sha256 or an AEAD such as aes128gcm16"));
        }
        if p.cipher == EspCipher::ChaCha20Poly1305 {
            add(format!("esp: chacha20poly1305 in '{esp_str}' works only between ferrovpn peers: strongSwan 5.9 and Libreswan have no IKEv1 ESP transform for it (strongSwan answers NO-PROPOSAL-CHOSEN as responder and sends a proposal without transforms as initiator)"));
        }
    }
    out
}

fn parse_net(key: &str, s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>().map_err(|e| format!("{key}: {e}"))
}

fn family(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn check_groups<'a>(
    key: &str,
    list: &str,
    groups: impl Iterator<Item = &'a DhGroup>,
    allow_weak: bool,
) -> Result<(), String> {
    for g in groups {
        if g.is_weak() && !allow_weak {
            return Err(format!(
                "{key}: {} in '{list}' is a weak DH group (under 2048 bits); use modp2048 or stronger, or set allow_weak_dh = true",
                g.name()
            ));
        }
    }
    Ok(())
}

fn validate_connection(
    mut rc: RawConnection,
    base: &Path,
    purpose: Purpose,
    notes: &mut Vec<(Severity, String)>,
) -> Result<Connection, String> {
    let local_addr: IpAddr = rc
        .local_addr
        .parse()
        .map_err(|_| format!("local_addr: '{}' is not an IP address", rc.local_addr))?;
    let remote_addr: IpAddr = rc
        .remote_addr
        .parse()
        .map_err(|_| format!("remote_addr: '{}' is not an IP address", rc.remote_addr))?;
    if local_addr.is_ipv6() != remote_addr.is_ipv6() {
        return Err(format!(
            "local_addr {local_addr} and remote_addr {remote_addr} are of different address families"
        ));
    }
    check_unicast("local_addr", local_addr)?;
    check_unicast("remote_addr", remote_addr)?;
    if local_addr == remote_addr {
        return Err(format!("local_addr and remote_addr are both {local_addr}"));
    }
    let local_id = match &rc.local_id {
        Some(s) => parse_identity("local_id", s)?,
        None => Identity::from(local_addr),
    };
    let remote_id = match &rc.remote_id {
        Some(s) => parse_identity("remote_id", s)?,
        None => Identity::from(remote_addr),
    };

    let psk_file = rc
        .psk_file
        .as_deref()
        .map(|f| secret_file::resolve(base, f));
    let psk = match (rc.psk.take(), &psk_file) {
        (Some(p), None) => {
            let p = Zeroizing::new(p.into_bytes());
            if p.is_empty() {
                return Err("psk: must not be empty".into());
            }
            Psk(p)
        }
        (Some(p), Some(_)) => {
            drop(Zeroizing::new(p.into_bytes()));
            return Err("set exactly one of psk or psk_file".into());
        }
        (None, Some(f)) if f.as_os_str().is_empty() => {
            return Err("psk_file: must not be empty".into())
        }
        (None, Some(f)) => match read_psk_file(f, purpose)? {
            Some(p) => p,
            None => {
                notes.push((
                    Severity::Warning,
                    format!(
                        "psk_file {} does not exist (yet): `ferrovpn up` refuses to start until it does; create it with mode 600",
                        f.display()
                    ),
                ));
                Psk(Zeroizing::new(Vec::new()))
            }
        },
        _ => return Err("set exactly one of psk or psk_file".into()),
    };

    if rc.mode == Mode::Aggressive && rc.start == Start::Respond && !rc.allow_aggressive_psk {
        return Err("mode = \"aggressive\" as responder sends a PSK-keyed hash an eavesdropper can crack offline; set allow_aggressive_psk = true to accept that".into());
    }

    let ike_str = rc.ike.as_deref().unwrap_or(DEFAULT_IKE);
    let ike = parse_ike_proposals(ike_str).map_err(|e| format!("ike: {e}"))?;
    check_groups(
        "ike",
        ike_str,
        ike.iter().map(|p| &p.group),
        rc.allow_weak_dh,
    )?;
    let esp_str = rc.esp.as_deref().unwrap_or(DEFAULT_ESP);
    let esp = parse_esp_proposals(esp_str).map_err(|e| format!("esp: {e}"))?;
    check_groups(
        "esp",
        esp_str,
        esp.iter().filter_map(|p| p.pfs_group.as_ref()),
        rc.allow_weak_dh,
    )?;
    if rc.allow_weak_dh {
        notes.push((
            Severity::Warning,
            "allow_weak_dh = true: modp1024/modp1536 accepted".into(),
        ));
    }
    for w in legacy_warnings(ike_str, &ike, esp_str, &esp) {
        notes.push((Severity::Warning, w));
    }
    if rc.mode == Mode::Aggressive {
        notes.push((
            Severity::Warning,
            "Aggressive Mode with PSK exposes a hash of the key to offline cracking".into(),
        ));
    }
    let pfs: Vec<bool> = esp.iter().map(|p| p.pfs_group.is_some()).collect();
    if pfs.contains(&true) && pfs.contains(&false) {
        return Err(format!(
            "esp: '{esp_str}' mixes proposals with and without a DH group; IKEv1 Quick Mode either sends KE or not, so give every proposal a group or none"
        ));
    }

    let ike_lifetime = duration_key("ike_lifetime", rc.ike_lifetime.as_deref(), "8h")?;
    let esp_lifetime = duration_key("esp_lifetime", rc.esp_lifetime.as_deref(), "1h")?;
    for (k, d) in [
        ("ike_lifetime", ike_lifetime),
        ("esp_lifetime", esp_lifetime),
    ] {
        // Rekeying starts at the earliest half-way through a lifetime, so short lifetimes do
        // not storm; 10 s still leaves a Quick Mode its retransmissions. Short lifetimes are for
        // tests (the soak test uses 30 s); real tunnels use hours.
        if d < MIN_LIFETIME {
            return Err(format!(
                "{k}: {} is too short (at least {})",
                format_duration(d),
                format_duration(MIN_LIFETIME)
            ));
        }
        if d > MAX_LIFETIME {
            return Err(above_max(k, d, MAX_LIFETIME));
        }
    }
    if rc.esp_lifetime_bytes == Some(0) {
        return Err(
            "esp_lifetime_bytes: must be greater than 0 (leave it out for no limit)".into(),
        );
    }
    let dpd_interval = duration_key("dpd_interval", rc.dpd_interval.as_deref(), "30s")?;
    let dpd_timeout = duration_key("dpd_timeout", rc.dpd_timeout.as_deref(), "150s")?;
    if dpd_interval > MAX_DPD_INTERVAL {
        return Err(above_max("dpd_interval", dpd_interval, MAX_DPD_INTERVAL));
    }
    if dpd_timeout > MAX_DPD_TIMEOUT {
        return Err(above_max("dpd_timeout", dpd_timeout, MAX_DPD_TIMEOUT));
    }
    let dpd = if dpd_interval.is_zero() {
        None
    } else {
        if dpd_timeout <= dpd_interval {
            return Err(format!(
                "dpd_timeout ({}) must be longer than dpd_interval ({})",
                format_duration(dpd_timeout),
                format_duration(dpd_interval)
            ));
        }
        Some(Dpd {
            interval: dpd_interval,
            timeout: dpd_timeout,
        })
    };

    let (tunnel, tcp_mss) = match (rc.route_based, rc.policy_based) {
        (Some(mut r), None) => {
            let mss = r.tcp_mss.take();
            let r = validate_route_based(r, remote_addr)?;
            let mss = validate_tcp_mss("route_based.tcp_mss", mss, r.remote_ts.is_ipv6())?;
            if let (TcpMss::Fixed(m), Some(mtu)) = (mss, r.mtu) {
                // IPv4 + TCP headers are 40 bytes, IPv6 + TCP 60 (RFC 6691 §2).
                let hdr = if r.remote_ts.is_ipv6() { 60 } else { 40 };
                let max = mtu.saturating_sub(hdr);
                if m > max {
                    return Err(format!(
                        "route_based.tcp_mss: {m} is above mtu {mtu} - {hdr} = {max}; segments that size do not fit the tunnel"
                    ));
                }
            }
            (Tunnel::RouteBased(r), mss)
        }
        (None, Some(mut p)) => {
            let mss = p.tcp_mss.take();
            let pairs = validate_policy_based(p)?;
            let v6 = pairs.iter().any(|x| x.remote.is_ipv6());
            let mss = validate_tcp_mss("policy_based.tcp_mss", mss, v6)?;
            (Tunnel::PolicyBased(pairs), mss)
        }
        _ => {
            return Err(
                "set exactly one of [connection.route_based] or [connection.policy_based]".into(),
            )
        }
    };

    Ok(Connection {
        name: rc.name,
        local_addr,
        remote_addr,
        local_id,
        remote_id,
        psk,
        psk_file,
        mode: rc.mode,
        allow_aggressive_psk: rc.allow_aggressive_psk,
        ike,
        esp,
        ike_lifetime,
        esp_lifetime,
        esp_lifetime_bytes: rc.esp_lifetime_bytes,
        nat_traversal: rc.nat_traversal,
        dpd,
        start: rc.start,
        allow_weak_dh: rc.allow_weak_dh,
        invalid_spi_recovery: rc.invalid_spi_recovery,
        tunnel,
        tcp_mss,
    })
}

fn yes() -> bool {
    true
}

/// Linux interface names: 1..=15 bytes, no '/', ':' or whitespace.
pub fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "'{name}' must be 1 to 15 characters (Linux IFNAMSIZ)"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not a valid interface name"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || !c.is_ascii() || c.is_control())
    {
        return Err(format!(
            "'{name}' may not contain '/', ':', whitespace or non-ASCII characters"
        ));
    }
    Ok(())
}

fn validate_route_based(r: RawRouteBased, remote_addr: IpAddr) -> Result<RouteBased, String> {
    check_interface_name(&r.interface).map_err(|e| format!("route_based.interface: {e}"))?;
    let local_ts = parse_net(
        "route_based.local_ts",
        r.local_ts.as_deref().unwrap_or("0.0.0.0/0"),
    )?;
    let remote_ts = parse_net(
        "route_based.remote_ts",
        r.remote_ts.as_deref().unwrap_or("0.0.0.0/0"),
    )?;
    if local_ts.is_ipv6() != remote_ts.is_ipv6() {
        return Err(format!(
            "route_based: local_ts {local_ts} and remote_ts {remote_ts} are of different address families"
        ));
    }
    let v6 = remote_ts.is_ipv6();
    let mtu = match r.mtu {
        None => None,
        Some(m) => {
            let min = if v6 { 1280 } else { 576 };
            match u16::try_from(m) {
                Ok(m) if u32::from(m) >= min => Some(m),
                _ => {
                    return Err(format!(
                        "route_based.mtu: {m} is outside {min}..=65535 for {} traffic",
                        family(v6)
                    ))
                }
            }
        }
    };
    let routes = match r.routes {
        None => vec![remote_ts],
        Some(list) if list.is_empty() => {
            return Err(format!(
                "route_based.routes: empty, so nothing would be routed into {}; leave routes out to route remote_ts {remote_ts}, or list the prefixes",
                r.interface
            ))
        }
        Some(list) => list
            .iter()
            .map(|s| parse_net("route_based.routes", s))
            .collect::<Result<Vec<_>, _>>()?,
    };
    for route in &routes {
        if route.is_ipv6() != v6 {
            return Err(format!(
                "route_based.routes: {route} is {} but the traffic selectors are {}",
                family(route.is_ipv6()),
                family(v6)
            ));
        }
        if !remote_ts.contains(route) {
            return Err(format!(
                "route_based.routes: {route} is outside remote_ts {remote_ts}; the SA would drop that traffic"
            ));
        }
        if !route.is_default() && route.contains_addr(remote_addr) {
            return Err(format!(
                "route_based.routes: {route} contains remote_addr {remote_addr}; packets to the peer would loop into the tunnel"
            ));
        }
    }
    let address = match r.address {
        None => None,
        Some(s) => {
            let a: IfAddr = s.parse().map_err(|e| format!("route_based.address: {e}"))?;
            if a.addr.is_ipv6() != v6 {
                return Err(format!(
                    "route_based.address: {a} is {} but the traffic selectors are {}",
                    family(a.addr.is_ipv6()),
                    family(v6)
                ));
            }
            if !local_ts.contains_addr(a.addr) {
                return Err(format!(
                    "route_based.address: {} is outside local_ts {local_ts}",
                    a.addr
                ));
            }
            Some(a)
        }
    };
    Ok(RouteBased {
        interface: r.interface,
        mtu,
        local_ts,
        remote_ts,
        routes,
        address,
    })
}

/// `tcp_mss`: at least the smallest MSS every host accepts (RFC 9293 §3.7.1: 536 for IPv4,
/// RFC 8200 §8.3: 1220 for IPv6), at most a 65535-byte IPv4 packet's.
fn validate_tcp_mss(key: &str, raw: Option<RawTcpMss>, v6: bool) -> Result<TcpMss, String> {
    let min = if v6 { 1220 } else { 536 };
    match raw {
        None => Ok(TcpMss::Auto),
        Some(RawTcpMss::Word(w)) => match w.as_str() {
            "auto" => Ok(TcpMss::Auto),
            "off" => Ok(TcpMss::Off),
            _ => Err(format!(
                "{key}: '{w}' is not \"auto\", \"off\" or an MSS in bytes"
            )),
        },
        Some(RawTcpMss::Number(n)) => match u16::try_from(n) {
            Ok(m) if (min..=65495).contains(&m) => Ok(TcpMss::Fixed(m)),
            _ => Err(format!(
                "{key}: {n} is outside {min}..=65495 for {} traffic",
                family(v6)
            )),
        },
    }
}

fn validate_policy_based(p: RawPolicyBased) -> Result<Vec<SelectorPair>, String> {
    if p.pairs.is_empty() {
        return Err("policy_based.pairs: list at least one { local, remote } pair".into());
    }
    let mut out: Vec<SelectorPair> = Vec::new();
    for (i, pair) in p.pairs.iter().enumerate() {
        let local = parse_net(&format!("policy_based.pairs[{i}].local"), &pair.local)?;
        let remote = parse_net(&format!("policy_based.pairs[{i}].remote"), &pair.remote)?;
        if local.is_ipv6() != remote.is_ipv6() {
            return Err(format!(
                "policy_based.pairs[{i}]: local {local} and remote {remote} are of different address families"
            ));
        }
        let sp = SelectorPair { local, remote };
        if out.contains(&sp) {
            return Err(format!(
                "policy_based.pairs[{i}]: {local} <=> {remote} is listed twice"
            ));
        }
        out.push(sp);
    }
    Ok(out)
}

/// What the host says about a connection before anything is started: its TUN name taken by
/// a device that is not a TUN is an error; an existing TUN, or a `local_addr` no interface
/// holds, is told (the daemon decides about the TUN; the address may be added later).
fn inspect_host(c: &Connection, notes: &mut Vec<(Severity, String)>) -> Result<(), String> {
    if let Tunnel::RouteBased(r) = &c.tunnel {
        if let Ok(index) = crate::netlink::link_index(&r.interface) {
            let kind = crate::netlink::Netlink::open()
                .and_then(|mut nl| nl.link_kind(index))
                .map_err(|e| {
                    format!(
                        "route_based.interface: {} exists, and its kind cannot be read: {e}",
                        r.interface
                    )
                })?;
            match kind.as_deref() {
                Some("tun") => notes.push((
                    Severity::Note,
                    format!(
                        "route_based.interface: a TUN device {} exists already; `up` takes it over only if a ferrovpn that is no longer running left it behind",
                        r.interface
                    ),
                )),
                other => {
                    return Err(format!(
                        "route_based.interface: {} is an existing {} device, not a TUN; ferrovpn creates its own TUN device, so pick a name no interface has",
                        r.interface,
                        match other {
                            Some(k) => k,
                            // Linux gives the loopback device ifindex 1 in every namespace.
                            None if index == 1 => "loopback",
                            None => "physical or loopback",
                        }
                    ))
                }
            }
        }
    }
    if crate::netlink::mtu_of_address(c.local_addr).is_none() {
        notes.push((
            Severity::Warning,
            format!(
                "local_addr {} is not an address of this host (in this network namespace): `up` cannot bind IKE to it until it is",
                c.local_addr
            ),
        ));
    }
    Ok(())
}

/// Conflicts between connections that each look fine alone.
fn check_against_others(c: &Connection, others: &[Connection]) -> Result<(), String> {
    for o in others {
        if o.local_addr == c.local_addr && o.remote_addr == c.remote_addr {
            return Err(format!(
                "uses the same local_addr/remote_addr pair as connection \"{}\"; IKEv1 with PSK identifies the peer by address, so the two cannot be told apart",
                o.name
            ));
        }
        if let (Tunnel::RouteBased(a), Tunnel::RouteBased(b)) = (&c.tunnel, &o.tunnel) {
            if a.interface == b.interface {
                return Err(format!(
                    "route_based.interface: {} is already used by connection \"{}\"",
                    a.interface, o.name
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    if let Tunnel::RouteBased(r) = &c.tunnel {
        for route in &r.routes {
            if !seen.insert(*route) {
                return Err(format!("route_based.routes: {route} is listed twice"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret_file::tests::TempDir;

    const HEAD: &str = r#"
[[connection]]
name = "site-b"
local_addr = "192.0.2.1"
remote_addr = "192.0.2.2"
start = "initiate"
"#;

    fn with(extra: &str, tunnel: &str) -> String {
        format!("{HEAD}{extra}\n{tunnel}")
    }

    const RB: &str = "[connection.route_based]\ninterface = \"fv0\"\n";
    const PB: &str = "[connection.policy_based]\npairs = [{ local = \"198.51.100.0/24\", remote = \"203.0.113.0/24\" }]\n";

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("/nonexistent"))
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    fn example(name: &str) -> &'static str {
        match name {
            "route-based.toml" => include_str!("../../../config/route-based.toml"),
            _ => include_str!("../../../config/policy-based.toml"),
        }
    }

    /// The example configs use psk_file; make a private copy of the key beside a copy of the file.
    fn load_example(name: &str) -> Config {
        let dir = std::env::temp_dir().join(format!("ferrovpn-cfg-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = example(name).replace("/etc/ferrovpn/", "");
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("psk_file = \"") {
                let f = dir.join(rest.split('"').next().unwrap());
                std::fs::write(&f, "example-secret\n").unwrap();
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        let cfg = Config::parse(&text, &dir);
        std::fs::remove_dir_all(&dir).unwrap();
        cfg.unwrap()
    }

    #[test]
    fn tcp_mss_is_auto_unless_set_off_or_to_a_number() {
        let mss = |t: &str| parse(&with("psk = \"x\"", t)).unwrap().connections[0].tcp_mss;
        assert_eq!(mss(RB), TcpMss::Auto);
        assert_eq!(mss(PB), TcpMss::Auto);
        assert_eq!(mss(&format!("{RB}tcp_mss = \"auto\"")), TcpMss::Auto);
        assert_eq!(mss(&format!("{RB}tcp_mss = \"off\"")), TcpMss::Off);
        assert_eq!(mss(&format!("{RB}tcp_mss = 1200")), TcpMss::Fixed(1200));
        assert_eq!(mss(&format!("{PB}tcp_mss = 536")), TcpMss::Fixed(536));
    }

    #[test]
    fn example_route_based_parses() {
        let c = load_example("route-based.toml");
        assert_eq!(c.connections.len(), 1);
        let conn = &c.connections[0];
        assert_eq!(conn.psk.as_bytes(), b"example-secret");
        assert!(matches!(conn.tunnel, Tunnel::RouteBased(_)));
    }

    #[test]
    fn example_policy_based_parses() {
        let c = load_example("policy-based.toml");
        assert!(c
            .connections
            .iter()
            .any(|c| matches!(c.tunnel, Tunnel::PolicyBased(_))));
    }

    #[test]
    fn key_export_and_metrics_are_opt_in_and_metrics_stay_local_unless_allowed() {
        let dir = TempDir::new("keys-opt-in");
        std::fs::create_dir(dir.0.join("keys")).unwrap();
        let daemon = "[daemon]\nsave_keys_dir = \"keys\"\nmetrics_listen = \"[::1]:9273\"\n";
        let c =
            Config::parse(&format!("{daemon}{}", with("psk = \"s3cret\"", RB)), &dir.0).unwrap();
        assert_eq!(c.daemon.save_keys_dir, Some(dir.0.join("keys")));
        assert_eq!(c.daemon.metrics_listen, Some("[::1]:9273".parse().unwrap()));
        let remote = "[daemon]\nmetrics_listen = \"192.0.2.1:9273\"\nmetrics_allow_remote = true\n";
        let c = parse(&format!("{remote}{}", with("psk = \"s3cret\"", RB))).unwrap();
        assert_eq!(
            c.daemon.metrics_listen,
            Some("192.0.2.1:9273".parse().unwrap())
        );
    }

    #[test]
    fn minimal_connection_gets_documented_defaults() {
        let c = parse(&with("psk = \"s3cret\"", RB)).unwrap();
        assert_eq!(c.daemon.control_socket, Path::new("/run/ferrovpn.sock"));
        assert_eq!(c.daemon.log_level, LogLevel::Info);
        assert_eq!(c.daemon.save_keys_dir, None);
        assert_eq!(c.daemon.metrics_listen, None);
        let conn = &c.connections[0];
        assert_eq!(conn.mode, Mode::Main);
        assert_eq!(conn.local_id, Identity::Ipv4("192.0.2.1".parse().unwrap()));
        assert_eq!(conn.remote_id, Identity::Ipv4("192.0.2.2".parse().unwrap()));
        assert_eq!(conn.ike, parse_ike_proposals(DEFAULT_IKE).unwrap());
        assert_eq!(conn.esp, parse_esp_proposals(DEFAULT_ESP).unwrap());
        assert_eq!(conn.ike_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(conn.esp_lifetime, Duration::from_secs(3600));
        assert_eq!(conn.nat_traversal, NatTraversal::Auto);
        assert_eq!(
            conn.dpd,
            Some(Dpd {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(150)
            })
        );
        let Tunnel::RouteBased(r) = &conn.tunnel else {
            panic!()
        };
        assert_eq!(r.local_ts.to_string(), "0.0.0.0/0");
        assert_eq!(r.routes, vec![r.remote_ts]);
    }

    #[test]
    fn identities_with_prefixes() {
        let c = parse(&with(
            "psk = \"x\"\nlocal_id = \"fqdn:a.example\"\nremote_id = \"keyid:#0a0b\"",
            RB,
        ))
        .unwrap();
        assert_eq!(
            c.connections[0].local_id,
            Identity::Fqdn("a.example".into())
        );
        assert_eq!(c.connections[0].remote_id, Identity::KeyId(vec![10, 11]));
        assert_eq!(
            parse_identity("x", "userfqdn:vpn@example.org").unwrap(),
            Identity::UserFqdn("vpn@example.org".into())
        );
        assert_eq!(
            parse_identity("x", "2001:db8::1").unwrap().to_string(),
            "2001:db8::1"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172800));
        assert!(parse_duration("8").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("8x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert_eq!(format_duration(Duration::from_secs(5400)), "90m");
        assert_eq!(format_duration(Duration::from_secs(28800)), "8h");
    }

    #[test]
    fn psk_is_redacted_in_debug() {
        let c = parse(&with("psk = \"topsecret\"", RB)).unwrap();
        assert!(!format!("{:?}", c.connections[0]).contains("topsecret"));
    }

    #[test]
    fn psk_file_permissions_are_checked() {
        let dir = std::env::temp_dir().join(format!("ferrovpn-psk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k.psk");
        std::fs::write(&f, "  from-file \n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = with("psk_file = \"k.psk\"", RB);
        let e = Config::parse(&text, &dir).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "connection \"site-b\": psk_file {} is readable by group/others (mode 0644); run: chmod 600 {}",
                f.display(),
                f.display()
            )
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o620)).unwrap();
        let e = Config::parse(&text, &dir).unwrap_err().to_string();
        assert!(e.contains("writable by group/others (mode 0620)"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Config::parse(&text, &dir).unwrap();
        assert_eq!(c.connections[0].psk.as_bytes(), b"from-file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Each bad config and the one message it must produce.
    #[test]
    fn bad_configs_give_one_clear_message() {
        let rb = RB;
        let cases: Vec<(String, &str)> = vec![
            (with("psk = \"x\"\nike = \"aes257-sha256-modp2048\"", rb),
             "connection \"site-b\": ike: unknown algorithm 'aes257' in 'aes257-sha256-modp2048'"),
            (with("", rb), "connection \"site-b\": set exactly one of psk or psk_file"),
            (with("psk = \"x\"\npsk_file = \"/x\"", rb), "connection \"site-b\": set exactly one of psk or psk_file"),
            (with("psk = \"x\"", ""), "connection \"site-b\": set exactly one of [connection.route_based] or [connection.policy_based]"),
            (format!("{HEAD}psk = \"x\"\n{RB}{PB}"), "connection \"site-b\": set exactly one of [connection.route_based] or [connection.policy_based]"),
            (with("psk = \"x\"\nremote_addr = \"2001:db8::2\"", rb).replace("remote_addr = \"192.0.2.2\"\n", ""),
             "connection \"site-b\": local_addr 192.0.2.1 and remote_addr 2001:db8::2 are of different address families"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"198.51.100.1/24\""),
             "connection \"site-b\": route_based.local_ts: 198.51.100.1/24 has host bits set (did you mean 198.51.100.0/24?)"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nremote_ts = \"2001:db8::/32\""),
             "connection \"site-b\": route_based: local_ts 0.0.0.0/0 and remote_ts 2001:db8::/32 are of different address families"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nremote_ts = \"203.0.113.0/24\"\nroutes = [\"10.0.0.0/8\"]"),
             "connection \"site-b\": route_based.routes: 10.0.0.0/8 is outside remote_ts 203.0.113.0/24; the SA would drop that traffic"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nroutes = [\"192.0.2.0/24\"]"),
             "connection \"site-b\": route_based.routes: 192.0.2.0/24 contains remote_addr 192.0.2.2; packets to the peer would loop into the tunnel"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"a-very-long-name0\""),
             "connection \"site-b\": route_based.interface: 'a-very-long-name0' must be 1 to 15 characters (Linux IFNAMSIZ)"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"198.51.100.0/24\"\naddress = \"203.0.113.1/32\""),
             "connection \"site-b\": route_based.address: 203.0.113.1 is outside local_ts 198.51.100.0/24"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nmtu = 100"),
             "connection \"site-b\": route_based.mtu: 100 is outside 576..=65535 for IPv4 traffic"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\ntcp_mss = 500"),
             "connection \"site-b\": route_based.tcp_mss: 500 is outside 536..=65495 for IPv4 traffic"),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nremote_ts = \"2001:db8::/32\"\nlocal_ts = \"2001:db8:1::/48\"\ntcp_mss = 1200"),
             "connection \"site-b\": route_based.tcp_mss: 1200 is outside 1220..=65495 for IPv6 traffic"),
            (with("psk = \"x\"", &format!("{PB}tcp_mss = 70000")),
             "connection \"site-b\": policy_based.tcp_mss: 70000 is outside 536..=65495 for IPv4 traffic"),
            (with("psk = \"x\"", &format!("{PB}tcp_mss = \"clamp\"")),
             "connection \"site-b\": policy_based.tcp_mss: 'clamp' is not \"auto\", \"off\" or an MSS in bytes"),
            (with("psk = \"x\"", "[connection.policy_based]\npairs = [{ local = \"198.51.100.0/24\", remote = \"2001:db8::/32\" }]"),
             "connection \"site-b\": policy_based.pairs[0]: local 198.51.100.0/24 and remote 2001:db8::/32 are of different address families"),
            (with("psk = \"x\"", "[connection.policy_based]\npairs = []"),
             "connection \"site-b\": policy_based.pairs: list at least one { local, remote } pair"),
            (with("psk = \"x\"\nike = \"aes128-sha1-modp1024\"", rb),
             "connection \"site-b\": ike: modp1024 in 'aes128-sha1-modp1024' is a weak DH group (under 2048 bits); use modp2048 or stronger, or set allow_weak_dh = true"),
            (with("psk = \"x\"\nesp = \"aes128gcm16-modp1536\"", rb),
             "connection \"site-b\": esp: modp1536 in 'aes128gcm16-modp1536' is a weak DH group (under 2048 bits); use modp2048 or stronger, or set allow_weak_dh = true"),
            (with("psk = \"x\"\nesp = \"aes128gcm16-modp2048,aes128gcm16\"", rb),
             "connection \"site-b\": esp: 'aes128gcm16-modp2048,aes128gcm16' mixes proposals with and without a DH group; IKEv1 Quick Mode either sends KE or not, so give every proposal a group or none"),
            (with("psk = \"x\"\nike = \"aes128gcm16-modp2048\"", rb),
             "connection \"site-b\": ike: 'aes128gcm16' in 'aes128gcm16-modp2048': IKEv1 has no AEAD phase 1 ciphers; use a CBC cipher with a hash, e.g. aes256-sha256-modp2048"),
            (with("psk = \"x\"\nmode = \"aggressive\"", rb).replace("initiate", "respond"),
             "connection \"site-b\": mode = \"aggressive\" as responder sends a PSK-keyed hash an eavesdropper can crack offline; set allow_aggressive_psk = true to accept that"),
            (with("psk = \"x\"\nike_lifetime = \"8\"", rb),
             "connection \"site-b\": ike_lifetime: '8' needs a unit: s, m, h or d (e.g. 8s)"),
            (with("psk = \"x\"\nesp_lifetime = \"5s\"", rb),
             "connection \"site-b\": esp_lifetime: 5s is too short (at least 10s)"),
            (with("psk = \"x\"\ndpd_interval = \"60s\"\ndpd_timeout = \"30s\"", rb),
             "connection \"site-b\": dpd_timeout (30s) must be longer than dpd_interval (1m)"),
            (with("psk = \"x\"\nremote_id = \"peer.example\"", rb),
             "connection \"site-b\": remote_id: 'peer.example' is not an IP address; write fqdn:peer.example, userfqdn:peer.example or keyid:peer.example"),
            (with("psk = \"x\"\nlocal_addr = \"192.0.2.300\"", rb).replace("local_addr = \"192.0.2.1\"\n", ""),
             "connection \"site-b\": local_addr: '192.0.2.300' is not an IP address"),
            (with("psk = \"x\"\nesp_lifetime_bytes = 0", rb),
             "connection \"site-b\": esp_lifetime_bytes: must be greater than 0 (leave it out for no limit)"),
            (format!("{}{}", with("psk = \"x\"", rb), with("psk = \"y\"", PB)),
             "connection \"site-b\": duplicate connection name"),
            (format!("{}{}", with("psk = \"x\"", rb), with("psk = \"y\"", PB).replace("site-b", "site-c")),
             "connection \"site-c\": uses the same local_addr/remote_addr pair as connection \"site-b\"; IKEv1 with PSK identifies the peer by address, so the two cannot be told apart"),
            ("[daemon]\nlog_level = \"loud\"\n".to_string(),
             "daemon: log_level: 'loud' is not one of error, warn, info, debug, trace"),
            ("[daemon]\nsave_keys_dir = \"keys\"\n".to_string(),
             "daemon: save_keys_dir: /nonexistent/keys does not exist"),
            ("[daemon]\nmetrics_listen = \"9273\"\n".to_string(),
             "daemon: metrics_listen: '9273' is not an address:port such as 127.0.0.1:9273 or [::1]:9273"),
            ("[daemon]\nmetrics_listen = \"192.0.2.1:9273\"\n".to_string(),
             "daemon: metrics_listen: 192.0.2.1:9273 is not a loopback address; the endpoint has no authentication, set metrics_allow_remote = true to serve it there anyway"),
            ("[daemon]\nworkers = 2\n".to_string(), "no [[connection]] defined"),
            ("[daemon]\nretransmit_timeout = \"0s\"\n".to_string(),
             "daemon: retransmit_timeout: 0s is outside 1s to 1m"),
            ("[daemon]\nretransmit_timeout = \"2m\"\n".to_string(),
             "daemon: retransmit_timeout: 2m is outside 1s to 1m"),
            ("[daemon]\nretransmit_base = 0.5\n".to_string(),
             "daemon: retransmit_base: 0.5 is outside 1.0 to 4.0"),
            ("[daemon]\nretransmit_tries = 0\n".to_string(),
             "daemon: retransmit_tries: 0 is outside 1 to 20"),
        ];
        for (text, want) in cases {
            assert_eq!(err(&text), want, "config:\n{text}");
        }
    }

    #[test]
    fn typos_and_bad_enums_are_caught_by_the_parser() {
        let e = err(&with("psk = \"x\"\nlocal_adr = \"192.0.2.1\"", RB));
        assert!(e.contains("unknown field `local_adr`"), "{e}");
        let e = err(&with(
            "psk = \"x\"",
            "[connection.route_based]\ninterface = \"fv0\"\nroute = []",
        ));
        assert!(e.contains("unknown field `route`"), "{e}");
        let e = err(&with("psk = \"x\"\nmode = \"mian\"", RB));
        assert!(e.contains("unknown variant `mian`"), "{e}");
        let e = err(&with("psk = \"x\"\nnat_traversal = \"yes\"", RB));
        assert!(e.contains("unknown variant `yes`"), "{e}");
    }

    #[test]
    fn ipv6_route_based_and_aggressive_opt_in() {
        let text = r#"
[[connection]]
name = "v6"
local_addr = "2001:db8::1"
remote_addr = "2001:db8::2"
psk = "x"
mode = "aggressive"
allow_aggressive_psk = true
start = "respond"
dpd_interval = "0s"
[connection.route_based]
interface = "fv6"
local_ts = "2001:db8:1::/48"
remote_ts = "::/0"
routes = ["::/0"]
address = "2001:db8:1::1/64"
"#;
        let c = parse(text).unwrap();
        let conn = &c.connections[0];
        assert_eq!(conn.dpd, None);
        let Tunnel::RouteBased(r) = &conn.tunnel else {
            panic!()
        };
        assert!(r.routes[0].is_default() && r.routes[0].is_ipv6());
        assert_eq!(r.address.unwrap().to_string(), "2001:db8:1::1/64");
    }

    #[test]
    fn retransmission_schedule_is_configurable_for_fast_failing_tests() {
        let c = parse(&with("psk = \"x\"", RB)).unwrap();
        assert_eq!(c.daemon.retransmit, Retransmit::default());
        let text = format!(
            "[daemon]\nretransmit_timeout = \"1s\"\nretransmit_base = 1.0\nretransmit_tries = 2\n{}",
            with("psk = \"x\"", RB)
        );
        let r = parse(&text).unwrap().daemon.retransmit;
        assert_eq!(
            (r.timeout, r.base, r.tries),
            (Duration::from_secs(1), 1.0, 2)
        );
        // First send plus two retransmissions, one second apart each: given up after 3 s.
        assert_eq!(r.give_up_after(), Duration::from_secs(3));
    }

    fn warnings(c: &Config) -> Vec<String> {
        c.remarks
            .iter()
            .filter(|r| r.severity == Severity::Warning)
            .map(|r| r.to_string())
            .filter(|t| !t.contains("is not an address of this host"))
            .collect()
    }

    #[test]
    fn configured_durations_have_a_maximum_named_in_the_error() {
        let cases = [
            (
                "ike_lifetime = \"2d\"",
                "ike_lifetime: 2d is above the maximum of 1d",
            ),
            (
                "esp_lifetime = \"25h\"",
                "esp_lifetime: 25h is above the maximum of 1d",
            ),
            (
                "ike_lifetime = \"18446744073709551615s\"",
                "ike_lifetime: 18446744073709551615s is above the maximum of 1d",
            ),
            (
                "dpd_interval = \"2h\"",
                "dpd_interval: 2h is above the maximum of 1h",
            ),
            (
                "dpd_timeout = \"3h\"",
                "dpd_timeout: 3h is above the maximum of 2h",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                err(&with(&format!("psk = \"x\"\n{line}"), RB)),
                format!("connection \"site-b\": {want}")
            );
        }
        // The maxima themselves are accepted.
        let c = parse(&with(
            "psk = \"x\"\nike_lifetime = \"24h\"\nesp_lifetime = \"1d\"\ndpd_interval = \"1h\"\ndpd_timeout = \"2h\"",
            RB,
        ))
        .unwrap();
        assert_eq!(c.connections[0].ike_lifetime, MAX_LIFETIME);
        let text = format!(
            "[daemon]\nretransmit_timeout = \"1m\"\nretransmit_base = 2.0\nretransmit_tries = 10\n{}",
            with("psk = \"x\"", RB)
        );
        assert_eq!(
            err(&text),
            "daemon: retransmit_timeout 1m, retransmit_base 2 and retransmit_tries 10 would retransmit an unanswered exchange for 34h, 6m, 0s; the maximum is 1h"
                .replace("34h, 6m, 0s", &format_duration(Duration::from_secs(60 * 2047)))
        );
    }

    #[test]
    fn check_refuses_what_up_would_refuse_or_cannot_work() {
        let dir = TempDir::new("check-refuses");
        let d = dir.0.display().to_string();
        std::fs::write(dir.0.join("file"), "").unwrap();
        let long = format!("/tmp/{}.sock", "s".repeat(110));
        let cases: Vec<(String, String)> = vec![
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"lo\""),
             "connection \"site-b\": route_based.interface: lo is an existing loopback device, not a TUN; ferrovpn creates its own TUN device, so pick a name no interface has".into()),
            (format!("[daemon]\ncontrol_socket = \"\"\n{}", with("psk = \"x\"", RB)),
             "daemon: control_socket: must not be empty (the default is /run/ferrovpn.sock)".into()),
            (format!("[daemon]\ncontrol_socket = \"{d}\"\n{}", with("psk = \"x\"", RB)),
             format!("daemon: control_socket: {d} is a directory; name the socket file, e.g. {d}/ferrovpn.sock")),
            (format!("[daemon]\ncontrol_socket = \"file\"\n{}", with("psk = \"x\"", RB)),
             format!("daemon: control_socket: {d}/file exists and is not a socket; ferrovpn will not replace it")),
            (format!("[daemon]\ncontrol_socket = \"none/s.sock\"\n{}", with("psk = \"x\"", RB)),
             format!("daemon: control_socket: {d}/none/s.sock: directory {d}/none does not exist")),
            (format!("[daemon]\ncontrol_socket = \"{long}\"\n{}", with("psk = \"x\"", RB)),
             format!("daemon: control_socket: {long} is 120 bytes long; a Unix socket path holds at most 107")),
            (format!("[daemon]\nworkers = 10000\n{}", with("psk = \"x\"", RB)),
             "daemon: workers: 10000 is above the maximum of 64 (each worker is a thread per direction and a queue of every TUN device)".into()),
            (format!("[daemon]\nsave_keys_dir = \"missing\"\n{}", with("psk = \"x\"", RB)),
             format!("daemon: save_keys_dir: {d}/missing does not exist")),
            (format!("[daemon]\nsave_keys_dir = \"file\"\n{}", with("psk = \"x\"", RB)),
             format!("daemon: save_keys_dir: {d}/file is a regular file, not a directory")),
            (with("psk = \"x\"\nremote_addr = \"224.0.0.5\"", RB).replace("remote_addr = \"192.0.2.2\"\n", ""),
             "connection \"site-b\": remote_addr: 224.0.0.5 is a multicast address; IKE needs a unicast address".into()),
            (with("psk = \"x\"\nremote_addr = \"255.255.255.255\"", RB).replace("remote_addr = \"192.0.2.2\"\n", ""),
             "connection \"site-b\": remote_addr: 255.255.255.255 is the broadcast address; IKE needs a unicast address".into()),
            (with("psk = \"x\"\nremote_addr = \"0.0.0.0\"", RB).replace("remote_addr = \"192.0.2.2\"\n", ""),
             "connection \"site-b\": remote_addr: 0.0.0.0 is the unspecified address; IKE needs a unicast address".into()),
            (with("psk = \"x\"\nlocal_addr = \"ff02::1\"\nremote_addr = \"2001:db8::2\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"::/0\"\nremote_ts = \"::/0\"")
                .replace("local_addr = \"192.0.2.1\"\n", "").replace("remote_addr = \"192.0.2.2\"\n", ""),
             "connection \"site-b\": local_addr: ff02::1 is a multicast address; IKE needs a unicast address".into()),
            (with("psk = \"x\"", &format!("{RB}mtu = 1400\ntcp_mss = 1361")),
             "connection \"site-b\": route_based.tcp_mss: 1361 is above mtu 1400 - 40 = 1360; segments that size do not fit the tunnel".into()),
            (with("psk = \"x\"", "[connection.route_based]\ninterface = \"fv0\"\nlocal_ts = \"2001:db8:1::/48\"\nremote_ts = \"2001:db8:2::/48\"\nmtu = 1400\ntcp_mss = 1341"),
             "connection \"site-b\": route_based.tcp_mss: 1341 is above mtu 1400 - 60 = 1340; segments that size do not fit the tunnel".into()),
            (with("psk = \"x\"", &format!("{RB}routes = []")),
             "connection \"site-b\": route_based.routes: empty, so nothing would be routed into fv0; leave routes out to route remote_ts 0.0.0.0/0, or list the prefixes".into()),
        ];
        for (text, want) in cases {
            let got = Config::parse_for(&text, &dir.0, Purpose::Check)
                .unwrap_err()
                .to_string();
            assert_eq!(got, want, "config:\n{text}");
            // `up` shares the validation.
            assert_eq!(Config::parse(&text, &dir.0).unwrap_err().to_string(), want);
        }
        // At the limits: accepted.
        let ok = format!(
            "[daemon]\nworkers = 64\ncontrol_socket = \"ctl.sock\"\n{}",
            with("psk = \"x\"", &format!("{RB}mtu = 1400\ntcp_mss = 1360"))
        );
        let c = Config::parse(&ok, &dir.0).unwrap();
        assert_eq!(c.daemon.control_socket, dir.0.join("ctl.sock"));
    }

    #[test]
    fn unsafe_key_dirs_are_refused_by_check_and_up() {
        let dir = TempDir::new("keydir-check");
        let real = dir.0.join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.0.join("link")).unwrap();
        let cfg = |k: &str| {
            format!(
                "[daemon]\nsave_keys_dir = \"{k}\"\n{}",
                with("psk = \"x\"", RB)
            )
        };
        let e = Config::parse(&cfg("link"), &dir.0).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "daemon: save_keys_dir: {}/link is a symbolic link (to {}); refusing to follow it: name the real directory itself",
                dir.0.display(),
                real.display()
            )
        );
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Config::parse_for(&cfg("real"), &dir.0, Purpose::Check)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "daemon: save_keys_dir: {} is writable by group/others (mode 0777)",
                real.display()
            )),
            "{e}"
        );
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        let victim = dir.0.join("victim");
        std::fs::write(&victim, "x").unwrap();
        std::os::unix::fs::symlink(&victim, real.join("ikev1_decryption_table")).unwrap();
        let e = Config::parse(&cfg("real"), &dir.0).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "daemon: save_keys_dir: {}/ikev1_decryption_table is a symbolic link",
                real.display()
            )),
            "{e}"
        );
        std::fs::remove_file(real.join("ikev1_decryption_table")).unwrap();
        let c = Config::parse(&cfg("real"), &dir.0).unwrap();
        assert_eq!(c.daemon.save_keys_dir, Some(real));
    }

    #[test]
    fn a_symlinked_psk_file_is_refused_as_a_symlink() {
        let dir = TempDir::new("psk-link");
        let real = dir.0.join("real.psk");
        std::fs::write(&real, "secret").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&real, dir.0.join("k.psk")).unwrap();
        let text = with("psk_file = \"k.psk\"", RB);
        for purpose in [Purpose::Run, Purpose::Check] {
            let e = Config::parse_for(&text, &dir.0, purpose)
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "connection \"site-b\": psk_file {}/k.psk is a symbolic link (to {}); refusing to follow it: name the real file itself",
                    dir.0.display(),
                    real.display()
                )
            );
        }
    }

    #[test]
    fn a_missing_psk_file_fails_up_and_is_a_warning_for_check() {
        let dir = TempDir::new("psk-missing");
        let text = with("psk_file = \"site.psk\"", RB);
        let f = dir.0.join("site.psk");
        assert_eq!(
            Config::parse(&text, &dir.0).unwrap_err().to_string(),
            format!(
                "connection \"site-b\": psk_file {} does not exist",
                f.display()
            )
        );
        let c = Config::parse_for(&text, &dir.0, Purpose::Check).unwrap();
        assert_eq!(c.connections[0].psk_file.as_deref(), Some(f.as_path()));
        assert_eq!(
            warnings(&c),
            vec![format!("connection \"site-b\": psk_file {} does not exist (yet): `ferrovpn up` refuses to start until it does; create it with mode 600", f.display())]
        );
        // Anything else wrong with it stays an error for check too.
        std::fs::write(&f, "k").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(Config::parse_for(&text, &dir.0, Purpose::Check).is_err());
    }

    #[test]
    fn relative_paths_are_resolved_against_the_config_files_directory() {
        let dir = TempDir::new("relative");
        std::fs::create_dir(dir.0.join("sub")).unwrap();
        std::fs::create_dir(dir.0.join("sub/keys")).unwrap();
        std::fs::set_permissions(
            dir.0.join("sub/keys"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let psk = dir.0.join("sub/site.psk");
        std::fs::write(&psk, "from-file\n").unwrap();
        std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).unwrap();
        let conf = dir.0.join("sub/ferrovpn.toml");
        std::fs::write(
            &conf,
            format!(
                "[daemon]\ncontrol_socket = \"run.sock\"\nsave_keys_dir = \"keys\"\n{}",
                with("psk_file = \"site.psk\"", RB)
            ),
        )
        .unwrap();
        // Loaded from elsewhere (the working directory is not the config's): same files.
        let c = Config::load(&conf).unwrap();
        assert_eq!(c.daemon.control_socket, dir.0.join("sub/run.sock"));
        assert_eq!(c.daemon.save_keys_dir, Some(dir.0.join("sub/keys")));
        assert_eq!(c.connections[0].psk_file, Some(psk));
        assert_eq!(c.connections[0].psk.as_bytes(), b"from-file");
        // `..` in a relative config path still gives absolute paths.
        let cwd = std::env::current_dir().unwrap();
        let mut rel = PathBuf::new();
        for _ in cwd.components().skip(1) {
            rel.push("..");
        }
        let c = Config::load(&rel.join(conf.strip_prefix("/").unwrap())).unwrap();
        assert!(c.daemon.control_socket.is_absolute());
        assert!(c.daemon.control_socket.ends_with("sub/run.sock"));
    }

    #[test]
    fn legacy_algorithms_and_chacha20_are_accepted_with_a_warning() {
        let c = parse(&with(
            "psk = \"x\"\nike = \"3des-md5-modp2048, aes128-sha1-modp2048, aes256-sha256-modp2048\"\nesp = \"aes128-sha1, chacha20poly1305, aes128gcm16\"",
            RB,
        ))
        .unwrap();
        let ike = "3des-md5-modp2048, aes128-sha1-modp2048, aes256-sha256-modp2048";
        let esp = "aes128-sha1, chacha20poly1305, aes128gcm16";
        assert_eq!(
            warnings(&c),
            vec![
                format!("connection \"site-b\": ike: 3des in '{ike}' is a legacy cipher (64-bit blocks: Sweet32), accepted for old peers; prefer aes128 or aes256"),
                format!("connection \"site-b\": ike: md5 in '{ike}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256"),
                format!("connection \"site-b\": ike: sha1 in '{ike}' is a legacy hash (collisions are practical), accepted for old peers; prefer sha256"),
                format!("connection \"site-b\": esp: sha1 in '{esp}' (HMAC-SHA1-96) is legacy integrity, accepted for old peers; prefer sha256 or an AEAD such as aes128gcm16"),
                format!("connection \"site-b\": esp: chacha20poly1305 in '{esp}' works only between ferrovpn peers: strongSwan 5.9 and Libreswan have no IKEv1 ESP transform for it (strongSwan answers NO-PROPOSAL-CHOSEN as responder and sends a proposal without transforms as initiator)"),
            ]
        );
        // Modern proposals: no warning.
        assert_eq!(
            warnings(&parse(&with("psk = \"x\"", RB)).unwrap()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_inline_psk_in_a_world_readable_file_is_warned_about() {
        let dir = TempDir::new("inline");
        let conf = dir.0.join("c.toml");
        std::fs::write(&conf, with("psk = \"x\"", RB)).unwrap();
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = warnings(&Config::load(&conf).unwrap());
        assert_eq!(w, vec![format!("{} holds an inline psk and is readable by group/others (mode 0644): chmod 600 it, or use psk_file", conf.display())]);
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(warnings(&Config::load(&conf).unwrap()).is_empty());
    }

    /// An existing TUN of the configured name is left to the daemon (a note); another kind of
    /// device of that name is an error. Needs root for the namespace.
    #[test]
    fn an_existing_tun_is_noted_and_an_existing_veth_refused() {
        if !crate::netns::require_root("an_existing_tun_is_noted_and_an_existing_veth_refused") {
            return;
        }
        let ns = crate::netns::NetNs::new("cfgtun").unwrap();
        ns.ip(&["tuntap", "add", "dev", "fvt0", "mode", "tun"])
            .unwrap();
        ns.ip(&[
            "link", "add", "fvv0", "type", "veth", "peer", "name", "fvv1",
        ])
        .unwrap();
        let (tun, veth) = ns.run(|| {
            let tun = parse(&with(
                "psk = \"x\"",
                "[connection.route_based]\ninterface = \"fvt0\"",
            ));
            let veth = parse(&with(
                "psk = \"x\"",
                "[connection.route_based]\ninterface = \"fvv0\"",
            ));
            (tun.map(|c| c.remarks), veth.map(|c| c.remarks))
        });
        let tun = tun.unwrap();
        assert!(
            tun.iter().any(|r| r.severity == Severity::Note
                && r.text
                    .starts_with("route_based.interface: a TUN device fvt0 exists already")),
            "{tun:?}"
        );
        assert_eq!(
            veth.unwrap_err().to_string(),
            "connection \"site-b\": route_based.interface: fvv0 is an existing veth device, not a TUN; ferrovpn creates its own TUN device, so pick a name no interface has"
        );
    }

    proptest::proptest! {
        #[test]
        fn durations_round_trip(secs in 0u64..10_000_000) {
            let d = Duration::from_secs(secs);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn arbitrary_values_never_panic(s in "[0-9a-z#:@. ]{0,30}") {
            let _ = parse_duration(&s);
            let _ = parse_identity("id", &s);
            let _ = check_interface_name(&s);
        }
    }
}
