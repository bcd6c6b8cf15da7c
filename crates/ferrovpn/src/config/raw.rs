//! The TOML shape as serde reads it: unknown keys are errors, so typos are caught. Nothing here is
//! validated; the other modules turn these into typed values.

use std::path::PathBuf;

use serde::Deserialize;

use super::negotiation::{AuthKind, Fragmentation, Mode, NatTraversal, Start};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) daemon: RawDaemon,
    #[serde(default)]
    pub(super) connection: Vec<RawConnection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub(super) control_socket: Option<PathBuf>,
    pub(super) log_level: Option<String>,
    pub(super) workers: Option<usize>,
    pub(super) save_keys_dir: Option<PathBuf>,
    pub(super) metrics_listen: Option<String>,
    #[serde(default)]
    pub(super) metrics_allow_remote: bool,
    pub(super) retransmit_timeout: Option<String>,
    pub(super) retransmit_base: Option<f64>,
    pub(super) retransmit_tries: Option<u32>,
    pub(super) max_half_open: Option<usize>,
    pub(super) dh_pool: Option<usize>,
    pub(super) dh_workers: Option<usize>,
    #[serde(default)]
    pub(super) shared_interfaces: Vec<String>,
    pub(super) offloads: Option<bool>,
    #[serde(default)]
    pub(super) pin_workers: bool,
    pub(super) run_dir: Option<PathBuf>,
}

/// One of `alt_certs`: another certificate of ours and its key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAltCert {
    pub(super) cert_file: PathBuf,
    pub(super) key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnection {
    pub(super) name: String,
    pub(super) local_addr: String,
    pub(super) remote_addr: String,
    pub(super) local_id: Option<String>,
    pub(super) remote_id: Option<String>,
    pub(super) psk: Option<String>,
    pub(super) psk_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) auth: AuthKind,
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) crl_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) alt_certs: Vec<RawAltCert>,
    #[serde(default)]
    pub(super) mode: Mode,
    #[serde(default)]
    pub(super) allow_aggressive_psk: bool,
    pub(super) ike: Option<String>,
    pub(super) esp: Option<String>,
    pub(super) ike_lifetime: Option<String>,
    pub(super) esp_lifetime: Option<String>,
    pub(super) esp_lifetime_bytes: Option<u64>,
    #[serde(default)]
    pub(super) nat_traversal: NatTraversal,
    pub(super) dpd_interval: Option<String>,
    pub(super) nat_keepalive: Option<String>,
    pub(super) dpd_timeout: Option<String>,
    pub(super) start: Start,
    #[serde(default)]
    pub(super) allow_weak_dh: bool,
    #[serde(default = "yes")]
    pub(super) invalid_spi_recovery: bool,
    #[serde(default)]
    pub(super) fragmentation: Fragmentation,
    pub(super) fragment_size: Option<i64>,
    pub(super) route_based: Option<RawRouteBased>,
    pub(super) policy_based: Option<RawPolicyBased>,
    pub(super) remote_access: Option<String>,
    pub(super) xauth_user: Option<String>,
    pub(super) xauth_password_file: Option<PathBuf>,
    pub(super) modeconfig: Option<String>,
    pub(super) dns_hook: Option<PathBuf>,
    pub(super) pool: Option<String>,
    pub(super) pool6: Option<String>,
    pub(super) dns: Option<Vec<String>>,
    pub(super) domains: Option<Vec<String>>,
    pub(super) split_include: Option<Vec<String>>,
    pub(super) banner: Option<String>,
    pub(super) users_file: Option<PathBuf>,
    pub(super) xauth_pam_service: Option<String>,
    pub(super) xauth_pam_confdir: Option<PathBuf>,
    pub(super) xauth_max_failures: Option<i64>,
    pub(super) xauth_lockout: Option<String>,
    #[serde(default)]
    pub(super) xauth_after_psk: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteBased {
    pub(super) interface: String,
    pub(super) mtu: Option<u32>,
    pub(super) tcp_mss: Option<RawTcpMss>,
    pub(super) local_ts: Option<OneOrMany>,
    pub(super) remote_ts: Option<OneOrMany>,
    pub(super) routes: Option<Vec<String>>,
    pub(super) address: Option<OneOrMany>,
}

/// `"198.51.100.0/24"` or `["198.51.100.0/24", "2001:db8:1::/48"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicyBased {
    pub(super) pairs: Vec<RawPair>,
    pub(super) tcp_mss: Option<RawTcpMss>,
}

/// `tcp_mss = "auto" | "off" | 1360`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawTcpMss {
    Word(String),
    Number(i64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPair {
    pub(super) local: String,
    pub(super) remote: String,
}

pub(super) fn yes() -> bool {
    true
}
