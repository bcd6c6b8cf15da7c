//! The `[daemon]` table: control socket, logging, workers, key export, metrics, retransmission,
//! run directory; and its validation.

use std::num::NonZeroUsize;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::defaults::{
    default_max_half_open, mem_total, CONTROL_SOCKET_NAME, DEFAULT_CONTROL_SOCKET, DEFAULT_DH_POOL,
    DEFAULT_DH_WORKERS, MAX_DH_POOL, MAX_DH_WORKERS, MAX_HALF_OPEN, MAX_RETRANSMIT_SCHEDULE,
    MAX_WORKERS,
};
use super::error::ConfigError;
use super::raw::RawDaemon;
use super::remark::{Remark, Scope, Severity};
use super::units::{format_duration, parse_duration};
use crate::secret_file::{self, PrivateDir, SecretFileError};

/// The validated `[daemon]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Absolute when the file was loaded with [`Config::load`](crate::config::Config::load).
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
    /// Responder negotiations not yet authenticated, across all peers; more MM1/AM1 are
    /// dropped (default: scaled to the host's memory, see `defaults::default_max_half_open`).
    pub max_half_open: usize,
    /// Diffie-Hellman key pairs kept ready per group in use, made by a worker thread
    /// (0: made inline by the IKE thread).
    pub dh_pool: usize,
    /// Threads that compute Diffie-Hellman shared secrets and phase 1 keys for the IKE thread
    /// (0: it computes them itself).
    pub dh_workers: usize,
    /// TUN devices that several route-based connections share (`route_based.interface` names
    /// one): the connection of an outbound packet is the one whose `routes` hold its
    /// destination, a gateway with thousands of peers needs one device, not thousands.
    pub shared_interfaces: Vec<String>,
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

/// `sun_path` of a Unix socket address holds at most this many bytes before its NUL.
pub(super) const MAX_SOCKET_PATH: usize = 107;

pub(super) fn validate_daemon(
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
    let run_dir = match &d.run_dir {
        None => PathBuf::from(crate::runstate::DEFAULT_RUN_DIR),
        Some(p) if p.is_absolute() => p.clone(),
        Some(p) => {
            return Err(ConfigError::Daemon(format!(
                "run_dir: {} must be an absolute path",
                p.display()
            )))
        }
    };
    // In the run directory by default: the daemon creates it, and a systemd unit with
    // ProtectSystem=strict may write there (RuntimeDirectory=ferrovpn) but not to /run itself.
    let control_socket = match &d.control_socket {
        None => run_dir.join(CONTROL_SOCKET_NAME),
        Some(p) if p.as_os_str().is_empty() => {
            return Err(ConfigError::Daemon(format!(
                "control_socket: must not be empty (the default is {DEFAULT_CONTROL_SOCKET})"
            )))
        }
        Some(p) => secret_file::resolve(base, p),
    };
    check_control_socket(&control_socket, &run_dir)
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
    let max_half_open = match d.max_half_open {
        Some(n) if !(1..=MAX_HALF_OPEN).contains(&n) => {
            return Err(ConfigError::Daemon(format!(
                "max_half_open: {n} is outside 1 to {MAX_HALF_OPEN}"
            )))
        }
        Some(n) => n,
        None => default_max_half_open(mem_total()),
    };
    let dh_pool = match d.dh_pool {
        Some(n) if n > MAX_DH_POOL => {
            return Err(ConfigError::Daemon(format!(
                "dh_pool: {n} is above the maximum of {MAX_DH_POOL}"
            )))
        }
        Some(n) => n,
        None => DEFAULT_DH_POOL,
    };
    let dh_workers = match d.dh_workers {
        Some(n) if n > MAX_DH_WORKERS => {
            return Err(ConfigError::Daemon(format!(
                "dh_workers: {n} is above the maximum of {MAX_DH_WORKERS}"
            )))
        }
        Some(n) => n,
        None => DEFAULT_DH_WORKERS,
    };
    let mut shared_interfaces: Vec<String> = Vec::new();
    for name in d.shared_interfaces {
        super::tunnel::check_interface_name(&name)
            .map_err(|e| ConfigError::Daemon(format!("shared_interfaces: {e}")))?;
        if shared_interfaces.contains(&name) {
            return Err(ConfigError::Daemon(format!(
                "shared_interfaces: {name} is listed twice"
            )));
        }
        shared_interfaces.push(name);
    }
    Ok(DaemonConfig {
        save_keys_dir,
        max_half_open,
        dh_pool,
        dh_workers,
        shared_interfaces,
        metrics_listen,
        control_socket,
        log_level,
        workers,
        retransmit,
        offloads: d.offloads.unwrap_or(true),
        pin_workers: d.pin_workers,
        run_dir,
    })
}

/// `save_keys_dir` and the key tables already in it, as the daemon will find them.
pub(super) fn check_key_dir(dir: &Path) -> Result<(), SecretFileError> {
    let d = PrivateDir::open(dir)?;
    for name in [crate::key_files::IKEV1_TABLE, crate::key_files::ESP_TABLE] {
        d.check_existing(name)?;
    }
    Ok(())
}

/// What can be known about the control socket path before binding it.
pub(super) fn check_control_socket(p: &Path, run_dir: &Path) -> Result<(), String> {
    if p.as_os_str().is_empty() {
        return Err(format!(
            "must not be empty (the default is {DEFAULT_CONTROL_SOCKET})"
        ));
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
        // The daemon creates its run directory before it binds the socket.
        Some(dir) if dir == run_dir => Ok(()),
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(format!(
            "{}: directory {} does not exist",
            p.display(),
            dir.display()
        )),
        _ => Ok(()),
    }
}
