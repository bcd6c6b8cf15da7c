//! What the daemon keeps per connection beside the IKE endpoint: its configuration, routing
//! and the IPsec SA pairs it installed. Read by status, history and metrics.

use std::time::{Duration, Instant};

use ferrovpn_esp::{SaHandle, Sad};
use ferrovpn_ike::{ChildSa, Cookies};

use super::dataplane::Policy;
use crate::config::Connection;
use crate::routing::Installed;

/// One IPsec SA pair installed in the data plane.
#[derive(Debug, Clone)]
pub struct InstalledPair {
    pub ike: Cookies,
    pub child: ChildSa,
    pub inbound: SaHandle,
    pub outbound: SaHandle,
    pub established: Instant,
    /// Inbound packets accepted when last looked at (`note_esp_liveness`).
    pub in_packets_seen: u64,
    /// Its outbound policy, held back while an older pair with the same selectors still
    /// sends: QM3 was ours, and until it arrives the peer drops ESP on the new SA. It goes in
    /// when the first packet arrives on the new pair or the older one stops sending
    /// (`Daemon::release_held`).
    pub held: Option<Policy>,
}

/// Per-connection state the daemon keeps beside the IKE endpoint.
pub struct ConnState {
    pub cfg: Connection,
    pub tun: Option<usize>,
    pub routing: Option<Installed>,
    pub pairs: Vec<InstalledPair>,
    pub retry_at: Option<Instant>,
    /// When to negotiate again the configured pairs that lost their SA while phase 1 is up.
    pub pairs_retry_at: Option<Instant>,
    pub backoff: Duration,
    pub last_failure: Option<String>,
    /// Terminated by the operator: not initiated again (retries, DPD restart) until
    /// `ferrovpn initiate` or the peer brings it up.
    pub held: bool,
    /// IKE and Quick Mode failures so far (an `initiate` or `rekey` waiting sees new ones).
    pub failures: u64,
    /// Taken out by a reload: its id stays (the endpoint's `ConnId`), nothing shows it.
    pub removed: bool,
    /// The addresses set on its TUN device (one per family at most), and the device's ifindex.
    pub addresses: Vec<crate::ipnet::IfAddr>,
    pub ifindex: u32,
    /// What the remote-access gateway assigned last (Mode Config), for `status`.
    pub mode_config: Option<ferrovpn_ike::wire::ModeCfgSettings>,
}

/// Wait before a connection's first retry; it doubles with each retry, up to `MAX_BACKOFF`,
/// until a new ISAKMP SA resets it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl ConnState {
    /// When a retry scheduled `now` is due: after the current backoff, which then doubles.
    pub fn next_retry(&mut self, now: Instant) -> Instant {
        let at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        at
    }

    /// A connection whose TUN (index `tun` in the TUN table) and routing were just set up:
    /// no SA yet, never failed, first retry after 5 s.
    pub fn new(
        cfg: Connection,
        tun: usize,
        routing: Installed,
        addresses: Vec<crate::ipnet::IfAddr>,
        ifindex: u32,
    ) -> Self {
        ConnState {
            cfg,
            tun: Some(tun),
            routing: Some(routing),
            pairs: Vec::new(),
            retry_at: None,
            pairs_retry_at: None,
            backoff: FIRST_BACKOFF,
            last_failure: None,
            held: false,
            failures: 0,
            removed: false,
            addresses,
            ifindex,
            mode_config: None,
        }
    }
}

/// Direction helper for status: which SAD handle holds which counters.
pub fn stats_of(sad: &Sad, h: SaHandle) -> ferrovpn_esp::SaStats {
    sad.stats(h).unwrap_or_default()
}
