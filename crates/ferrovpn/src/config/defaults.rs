//! Default values and upper limits of the configuration keys.

use std::time::Duration;

/// File name of the control socket in `run_dir` when `control_socket` is not set.
pub const CONTROL_SOCKET_NAME: &str = "ferrovpn.sock";
/// Default path of the control socket: `CONTROL_SOCKET_NAME` in the default `run_dir`, where
/// the CLI commands look unless given `--socket`.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ferrovpn/ferrovpn.sock";
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
