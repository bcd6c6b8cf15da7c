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

/// `fragment_size` default: strongSwan's `charon.fragment_size` (bytes of IP datagram).
pub const DEFAULT_FRAGMENT_SIZE: usize = ferrovpn_ike::config::DEFAULT_FRAGMENT_SIZE;
/// Smallest `fragment_size`: the IPv4 minimum reassembly size (RFC 791), below which a
/// datagram is no safer.
pub const MIN_FRAGMENT_SIZE: usize = 576;
/// Largest `fragment_size`: the largest IP datagram.
pub const MAX_FRAGMENT_SIZE: usize = 65535;

/// Longest IKE or IPsec SA lifetime: 24 h, the maximum Cisco IOS and Juniper accept for both.
/// A peer may propose a shorter one, which is adopted (RFC 2409 §4.5), never a longer one.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest `dpd_interval`: 1 h (Cisco's `isakmp keepalive` allows at most 3600 s).
pub const MAX_DPD_INTERVAL: Duration = Duration::from_secs(3600);
/// Longest `nat_keepalive`: 1 h (NATs drop an idle UDP mapping after 30 s to a few minutes).
pub const MAX_NAT_KEEPALIVE: Duration = Duration::from_secs(3600);
/// Longest `dpd_timeout`: 2 h.
pub const MAX_DPD_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// Longest time an unanswered IKE exchange may be retransmitted before it fails.
pub const MAX_RETRANSMIT_SCHEDULE: Duration = Duration::from_secs(3600);
/// Most data plane threads per direction; each is also one queue of every TUN device.
pub const MAX_WORKERS: usize = 64;

/// Memory one half-open responder negotiation holds, rounded up: measured 2.2 KB (modp2048) and
/// 2.6 KB (ecp256) per SA with 20,000 spoofed MM1s held at once (RSS growth ÷ SAs), so 4 KiB
/// leaves room for allocator slack and the cookie map.
pub const HALF_OPEN_SA_BYTES: u64 = 4096;
/// Share of the host's memory that half-open negotiations may hold by default: 1/256 (4 MiB on
/// a 1 GiB host, 96 MiB on 24 GiB).
pub const HALF_OPEN_MEMORY_SHARE: u64 = 256;
/// The default `max_half_open` is never below this (the old fixed limit) …
pub const MIN_DEFAULT_HALF_OPEN: usize = 1024;
/// … nor above this (64 Ki negotiations: 256 MiB at most).
pub const MAX_DEFAULT_HALF_OPEN: usize = 65_536;
/// The largest `max_half_open` accepted: 1 Mi negotiations, 4 GiB.
pub const MAX_HALF_OPEN: usize = 1 << 20;
/// Diffie-Hellman key pairs kept ready per group in use (`[daemon] dh_pool`).
pub const DEFAULT_DH_POOL: usize = 0;
/// The largest `dh_pool` accepted (a modp8192 key pair holds about 2 KB).
pub const MAX_DH_POOL: usize = 65_536;
/// Threads computing Diffie-Hellman shared secrets and phase 1 keys (`[daemon] dh_workers`;
/// 0: the IKE thread computes them inline).
pub const DEFAULT_DH_WORKERS: usize = 0;
/// The largest `dh_workers` accepted.
pub const MAX_DH_WORKERS: usize = 64;

/// The default `max_half_open` for a host with `mem_total` bytes (None: unknown): its
/// [`HALF_OPEN_MEMORY_SHARE`] divided by [`HALF_OPEN_SA_BYTES`], within
/// [`MIN_DEFAULT_HALF_OPEN`]..=[`MAX_DEFAULT_HALF_OPEN`].
pub fn default_max_half_open(mem_total: Option<u64>) -> usize {
    let Some(m) = mem_total else {
        return MIN_DEFAULT_HALF_OPEN;
    };
    let n = m / HALF_OPEN_MEMORY_SHARE / HALF_OPEN_SA_BYTES;
    usize::try_from(n)
        .unwrap_or(MAX_DEFAULT_HALF_OPEN)
        .clamp(MIN_DEFAULT_HALF_OPEN, MAX_DEFAULT_HALF_OPEN)
}

/// `MemTotal` of `/proc/meminfo` in bytes.
pub fn mem_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}
