//! The state of the control thread: the IKE endpoint, the per-connection state, the SAD and
//! the sockets IKE uses. Its methods live by job: `event_loop` (waiting and dispatching),
//! `events` (acting on endpoint events), `install` (SAs into the data plane), `observe`
//! (metrics and key export).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ferrovpn_esp::{MonotonicClock, SaHandle, Sad};
use ferrovpn_ike::Endpoint;
use mio::net::UdpSocket as MioUdp;
use mio::Token;

use super::conn::ConnState;
use super::dataplane::Shared;
use super::{drop_log, history, metrics, notify, pending, recovery, save_keys};

pub(super) const WAKER: Token = Token(0);
pub(super) const SIGNALS: Token = Token(1);
/// UDP 500 sockets use tokens from here on.
pub(super) const IKE_BASE: usize = 16;

/// The control thread: everything the event loop reads and changes.
pub(super) struct Daemon {
    pub(super) endpoint: Endpoint,
    pub(super) conns: Vec<ConnState>,
    pub(super) sad: Arc<Sad>,
    pub(super) shared: Arc<Shared>,
    pub(super) clock: Arc<MonotonicClock>,
    pub(super) ike500: Vec<(SocketAddr, MioUdp)>,
    pub(super) nat_t: HashMap<IpAddr, Arc<UdpSocket>>,
    pub(super) started: Instant,
    pub(super) stop: bool,
    /// Inbound SAs installed after QM2, waiting for QM3: (connection, message ID, handle).
    pub(super) early_inbound: Vec<(usize, u32, SaHandle)>,
    pub(super) events: metrics::EventCounters,
    pub(super) key_export: Option<save_keys::KeyExport>,
    /// Connection of each initiator cookie seen, for log lines after the SA is gone.
    pub(super) cookie_conns: HashMap<[u8; 8], usize>,
    /// Recent IKE events and ESP counter samples per connection, for `history`/`diagnose`.
    pub(super) history: history::History,
    /// How long an unanswered IKE message is retransmitted (for `diagnose`).
    pub(super) give_up: Duration,
    /// ESP with unknown SPIs reported by the data plane (invalid-SPI recovery).
    pub(super) unknown_spi_rx: Receiver<recovery::UnknownSpi>,
    /// systemd readiness, status and watchdog (no-op outside a `Type=notify` unit).
    pub(super) notify: notify::Notifier,
    /// `initiate`/`rekey` requests waiting for the network.
    pub(super) pending: Vec<pending::Pending>,
    /// rtnetlink: devices, addresses, routes and rules made at start and by reloads.
    pub(super) nl: crate::netlink::Netlink,
    /// What this daemon made, recorded for the next start after a crash.
    pub(super) run_state: super::setup::RunState,
    pub(super) policy_routing: crate::routing::PolicyRouting,
    /// The IKE and ESP sockets carry the fwmark (a tunnel takes a default route).
    pub(super) fwmark: bool,
    /// The file `reload` and SIGHUP read.
    pub(super) config_path: Option<std::path::PathBuf>,
    /// The `[daemon]` table in effect (it cannot change while running).
    pub(super) daemon_cfg: crate::config::DaemonConfig,
    /// MM1/AM1 dropped at the half-open limit: logged per interval, shown by `diagnose`.
    pub(super) half_open: drop_log::HalfOpenDrops,
    /// IKEv1 fragments dropped: logged per interval.
    pub(super) fragment_drops: drop_log::FragmentDrops,
    /// Fills the endpoint's pool of DH key pairs from its own thread (`[daemon] dh_pool`).
    pub(super) dh_maker: Option<super::dh_pool::DhMaker>,
    /// Compute shared secrets and phase 1 keys for the endpoint (`[daemon] dh_workers`).
    pub(super) dh_workers: Option<super::dh_pool::DhWorkers>,
    /// TUN devices several connections share (`[daemon] shared_interfaces`) that are up.
    pub(super) shared_devices: Vec<super::setup::SharedDevice>,
    /// The earliest `retry_at`/`pairs_retry_at` of any connection (lowered when one is set,
    /// recomputed when the connections are scanned), so a turn of the event loop does not
    /// walk every connection.
    pub(super) conn_timers: Option<Instant>,
    /// When the CRL files were last looked at (`refresh_crls`).
    pub(super) crls_checked: Option<Instant>,
}

impl Daemon {
    /// A connection's retry timer was set to `t`.
    pub(super) fn conn_timer_set(&mut self, t: Instant) {
        self.conn_timers = Some(self.conn_timers.map_or(t, |x| x.min(t)));
    }
}
