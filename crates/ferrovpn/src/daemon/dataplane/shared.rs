//! What the data plane's sources and sinks share: [`Shared`] (TUNs, sockets, policies,
//! counters), the IKE queue from UDP 4500 to the control loop, log rate limits, polling.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crossbeam_channel::Sender;
use ferrovpn_esp::mss::MssClamp;
use ferrovpn_esp::SaHandle;
use ferrovpn_ike::Datagram;

use super::Policies;
use crate::socket::RawEsp;
use crate::tun::Tun;

/// How long a source waits for packets before reporting `Idle` (so shutdown is noticed).
pub(super) const POLL_MS: i32 = 100;
/// Messages per `sendmmsg`/`recvmmsg` call.
pub(super) const MMSG: usize = 64;

/// Drops the data plane counts outside the SAD.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Packets read from a TUN that no installed SA covers (on a shared TUN: also those whose
    /// destination no connection routes).
    pub no_policy: AtomicU64,
    /// Decapsulated packets refused by a shared TUN: their inner source is not routed to the
    /// connection of their SA (one peer posing as another's network).
    pub spoofed: AtomicU64,
    pub send_errors: AtomicU64,
    pub tun_write_errors: AtomicU64,
    /// UDP/4500 payloads that were neither IKE, ESP nor keepalives.
    pub malformed_udp: AtomicU64,
    /// TUN reads whose virtio-net header did not fit the packet.
    pub offload_errors: AtomicU64,
    /// IKE datagrams from UDP 4500 dropped because the control loop's queue was full.
    pub ike_queue_dropped: AtomicU64,
    /// Inner IPv6 packets dropped as too big for the tunnel (RFC 2473 §7.1).
    pub too_big: AtomicU64,
    /// ICMPv6 Packet Too Big messages written back into a TUN for them.
    pub ptb_sent: AtomicU64,
    /// When the last "IKE queue full" line was logged (rate limit).
    pub(super) ike_queue_logged: LogLimit,
}

/// IKE datagrams from UDP 4500 waiting for the control loop. A peer has a handful of
/// messages in flight per exchange, so this covers hundreds of peers negotiating at once,
/// while a flood the control loop cannot keep up with costs at most this many packet buffers
/// (2048 × 9.4 KiB ≈ 19 MiB) instead of all the memory: the excess is dropped and counted.
pub const IKE_QUEUE: usize = 2048;

/// The channel from the ESP reader to the control loop, `IKE_QUEUE` datagrams deep.
pub fn ike_queue() -> (Sender<Datagram>, crossbeam_channel::Receiver<Datagram>) {
    crossbeam_channel::bounded(IKE_QUEUE)
}

/// At most one log line per `LOG_EVERY` for an event that can repeat at packet rate; its
/// counter has the exact number.
#[derive(Debug, Default)]
pub(super) struct LogLimit {
    /// Milliseconds since `log_epoch()` before which nothing more is logged.
    next_ms: AtomicU64,
}

pub(super) const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

fn log_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

impl LogLimit {
    /// True for the first call, then again once `LOG_EVERY` has passed.
    pub(super) fn allow(&self) -> bool {
        let now = u64::try_from(log_epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let period = u64::try_from(LOG_EVERY.as_millis()).unwrap_or(u64::MAX);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(period),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// What the pipelines and the control loop share.
pub struct Shared {
    /// The TUN devices, replaced as a whole when a reload adds or removes one.
    pub devices: Devices,
    /// The outbound policies, and which connection a packet read from each TUN belongs to.
    pub policies: RwLock<Policies>,
    /// Inbound SA → (TUN its packets are written to, its connection).
    pub inbound: RwLock<HashMap<SaHandle, (usize, usize)>>,
    pub raw: HashMap<IpAddr, Arc<RawEsp>>,
    /// UDP 4500 sockets by local address (ESP-in-UDP out; IKE+ESP in).
    pub nat_t: HashMap<IpAddr, Arc<UdpSocket>>,
    pub counters: IoCounters,
}

/// The TUN devices by index (the index `Policy::tun` and `inbound` use).
#[derive(Default)]
pub struct TunTable {
    /// The queues of each TUN device (none for a removed one, whose index is not reused). Each
    /// outbound lane reads its own queue ([`TunSource::new`](super::TunSource::new)); a
    /// decapsulated packet is written through the queue its flow hashes to, and the kernel then
    /// steers the flow's outbound packets to that same queue (tun's automatic flow steering),
    /// so one lane sees all of a flow.
    pub tuns: Vec<Vec<Arc<Tun>>>,
    /// MSS limit of TCP SYNs through each TUN, both ways (same index as `tuns`).
    pub tcp_mss: Vec<MssClamp>,
    /// Per TUN: inner IPv6 packets longer than this are dropped and answered with an ICMPv6
    /// Packet Too Big announcing it (RFC 2473 §7.1); `u32::MAX` (or no entry): never.
    pub ptb_mtu: Vec<u32>,
}

/// The current [`TunTable`] and its generation: the data plane threads keep a snapshot and
/// compare the generation once per batch (one atomic load), as `SadReader` does for the SAD.
pub struct Devices {
    table: RwLock<Arc<TunTable>>,
    generation: AtomicU64,
}

impl Devices {
    pub fn new(table: TunTable) -> Devices {
        Devices {
            table: RwLock::new(Arc::new(table)),
            generation: AtomicU64::new(0),
        }
    }

    /// The table now.
    pub fn current(&self) -> Arc<TunTable> {
        self.table
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The table now, taking the holder apart (at shutdown).
    pub fn into_current(self) -> Arc<TunTable> {
        self.table.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes a new table; the threads drop their copy of the old one within one poll.
    pub fn publish(&self, table: TunTable) {
        match self.table.write() {
            Ok(mut t) => *t = Arc::new(table),
            Err(p) => *p.into_inner() = Arc::new(table),
        }
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// A thread's snapshot of [`Devices`].
pub(super) struct DeviceView {
    generation: u64,
    pub(super) table: Arc<TunTable>,
}

impl DeviceView {
    pub(super) fn new(d: &Devices) -> DeviceView {
        DeviceView {
            generation: d.generation.load(Ordering::Acquire),
            table: d.current(),
        }
    }

    /// True when the table changed since the last look (and the snapshot is now the new one).
    pub(super) fn refresh(&mut self, d: &Devices) -> bool {
        let g = d.generation.load(Ordering::Acquire);
        if g == self.generation {
            return false;
        }
        self.generation = g;
        self.table = d.current();
        true
    }
}

thread_local! {
    /// The reader thread's poll set, reused from batch to batch.
    static POLL_SET: RefCell<Vec<libc::pollfd>> = const { RefCell::new(Vec::new()) };
}

/// Waits up to `POLL_MS` for input on `fds`; calls `ready(i)` for each readable one. Returns
/// false when none was.
pub(super) fn poll_in(fds: impl Iterator<Item = RawFd>, mut ready: impl FnMut(usize)) -> bool {
    POLL_SET.with(|set| {
        let mut pfds = set.borrow_mut();
        pfds.clear();
        pfds.extend(fds.map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }));
        if crate::sys::fd::poll(&mut pfds, POLL_MS) == 0 {
            return false;
        }
        for (i, p) in pfds.iter().enumerate() {
            if p.revents & (libc::POLLIN | libc::POLLERR) != 0 {
                ready(i);
            }
        }
        true
    })
}

/// Waits up to `ms` until `fd` can take more data.
pub(super) fn wait_writable(fd: RawFd, ms: i32) -> bool {
    crate::sys::fd::wait(fd, libc::POLLOUT, ms)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::sys::socket::{sockaddr, socket_addr};
    use std::net::SocketAddr;

    pub(in crate::daemon::dataplane) fn udp_pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        (tx, rx)
    }

    #[test]
    fn socket_addresses_round_trip_through_sockaddr_storage() {
        for a in ["192.0.2.1:4500", "[2001:db8::7]:500"] {
            let a: SocketAddr = a.parse().unwrap();
            let (ss, _) = sockaddr(a);
            assert_eq!(socket_addr(&ss), Some(a));
        }
        let unspec = crate::sys::socket::zeroed_sockaddr();
        assert_eq!(socket_addr(&unspec), None);
    }
    #[test]
    fn a_rate_limited_log_allows_the_first_line_then_waits() {
        let l = LogLimit::default();
        assert!(l.allow());
        assert!(!l.allow());
        assert!(!l.allow());
    }
}
