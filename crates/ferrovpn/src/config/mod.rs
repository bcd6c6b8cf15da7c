//! The TOML configuration: parsed with serde (unknown keys are errors, so typos are caught), then
//! validated into typed values. Every problem is reported as one message naming the key path,
//! e.g. `connection "site-b": ike: unknown algorithm 'aes257' in 'aes257-sha256-modp2048'`.
//! config/README.md documents every key. Relative paths are resolved against the directory of
//! the configuration file when it is loaded, so `up --daemon` (which changes to `/`) and `check`
//! see the same files. What is legal but worth knowing (legacy algorithms, an interface that
//! already exists) comes back as [`Remark`]s, shown by `check` and logged by `up`.

mod connection;
mod credentials;
mod daemon;
mod defaults;
mod error;
mod host;
mod identity;
mod negotiation;
mod raw;
mod remark;
mod remote_access;
mod secret;
#[cfg(test)]
mod tests;
mod tunnel;
mod units;

pub use connection::{Connection, Dpd};
pub use credentials::{Auth, CRL_CHECK_INTERVAL};
pub use daemon::{DaemonConfig, LogLevel, Retransmit};
pub use defaults::{
    DEFAULT_CONTROL_SOCKET, DEFAULT_ESP, DEFAULT_IKE, MAX_DPD_INTERVAL, MAX_DPD_TIMEOUT,
    MAX_LIFETIME, MAX_RETRANSMIT_SCHEDULE, MAX_WORKERS,
};
pub use error::ConfigError;
pub use identity::Identity;
pub use negotiation::{Fragmentation, Mode, NatTraversal, Start};
pub use remark::{Remark, Scope, Severity};
pub use remote_access::{Gateway, RemoteAccess, Xauth, XauthUsers};
pub use secret::{Psk, Purpose};
pub use tunnel::{check_interface_name, RouteBased, SelectorPair, TcpMss, Tunnel};
pub use units::{format_duration, parse_duration};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use connection::{
    check_against_others, check_name, check_shared_routes, validate_connection, Taken,
};
use daemon::validate_daemon;
use host::{inspect_host, HostAddresses};
use raw::RawConfig;

/// A validated configuration file.
#[derive(Debug)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub connections: Vec<Connection>,
    /// Warnings and notes, in file order.
    pub remarks: Vec<Remark>,
}

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
        if cfg
            .connections
            .iter()
            .any(|c| c.psk_file.is_none() && matches!(c.auth, Auth::Psk))
        {
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
        let mut host = HostAddresses::default();
        let mut taken = Taken::default();
        for rc in raw.connection {
            let name = rc.name.clone();
            let err = |problem: String| ConfigError::Connection {
                name: name.clone(),
                problem,
            };
            check_name(&name).map_err(err)?;
            if !taken.name(&name) {
                return Err(err("duplicate connection name".into()));
            }
            let mut notes = Vec::new();
            let mut c = validate_connection(rc, base, purpose, &mut notes).map_err(err)?;
            if let Tunnel::RouteBased(r) = &mut c.tunnel {
                r.shared = daemon.shared_interfaces.contains(&r.interface);
            }
            check_against_others(&c, &mut taken, &daemon.shared_interfaces).map_err(err)?;
            inspect_host(&c, &mut host, &mut notes).map_err(err)?;
            remarks.extend(notes.into_iter().map(|(severity, text)| Remark {
                severity,
                scope: Scope::Connection(name.clone()),
                text,
            }));
            connections.push(c);
        }
        check_shared_routes(&connections, &daemon.shared_interfaces)?;
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

    /// The remarks of every connection by its name, in one pass (a file with thousands of
    /// connections would otherwise scan all remarks once per connection).
    pub fn remarks_by_connection(&self) -> std::collections::HashMap<&str, Vec<&Remark>> {
        let mut m: std::collections::HashMap<&str, Vec<&Remark>> = std::collections::HashMap::new();
        for r in &self.remarks {
            if let Scope::Connection(c) = &r.scope {
                m.entry(c.as_str()).or_default().push(r);
            }
        }
        m
    }
}
