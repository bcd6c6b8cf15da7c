//! The ESP pipelines' I/O: TUN devices and ESP sockets behind the esp crate's
//! `PacketSource`/`PacketSink`, and the outbound policy table that picks an SA per packet.
//!
//! Sockets move packets in batches: `recvmmsg` straight into the pipeline's buffers (raw IPv4
//! headers land in a side buffer, so the ESP packet needs no copy) and `sendmmsg` out, with
//! UDP GSO (`UDP_SEGMENT`) joining runs of equal-sized ESP-in-UDP packets to one peer into one
//! message. TUN devices opened with offloads (`IFF_VNET_HDR`, TSO) give one TCP super-packet per
//! read, which the source cuts into MTU-sized packets (`offload::Segmenter`); the TUN sink joins
//! in-order segments of one flow back into super-packets (`offload::Gro`), one write each.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crossbeam_channel::Sender;
use ferrovpn_esp::mss::MssClamp;
use ferrovpn_esp::nat_t::{classify, UdpPayload};
use ferrovpn_esp::offload::{Gro, Role, Segmenter, VnetHdr, VNET_HDR_LEN};
use ferrovpn_esp::{Batch, Encap, PacketBuf, PacketSink, PacketSource, Recv, SaHandle, Verdict};
use ferrovpn_ike::Datagram;

use crate::ipnet::IpNet;
use crate::socket::{enable_udp_gro, sockaddr, socket_addr, RawEsp, UDP_GRO};
use crate::tun::Tun;

/// How long a source waits for packets before reporting `Idle` (so shutdown is noticed).
const POLL_MS: i32 = 100;
/// Messages per `sendmmsg`/`recvmmsg` call.
const MMSG: usize = 64;
/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// Largest UDP GSO send: the kernel's UDP_MAX_SEGMENTS and a 64 KiB datagram.
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;
/// Raw IPv4 sockets deliver the IP header; without options it is this long.
const IPV4_HEADER: usize = 20;
/// How long a sink waits for room in a full socket send buffer before dropping.
const SEND_WAIT_MS: i32 = 5;

/// Cleared for the whole process when the kernel answers a UDP GSO send with EIO (no checksum
/// offload on the path).
static UDP_GSO: AtomicBool = AtomicBool::new(true);

/// An outbound policy: packets from `local` to `remote` read from TUN `tun` use `handle`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub tun: usize,
    pub local: IpNet,
    pub remote: IpNet,
    pub handle: SaHandle,
}

/// Drops the data plane counts outside the SAD.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Packets read from a TUN that no installed SA covers.
    pub no_policy: AtomicU64,
    pub send_errors: AtomicU64,
    pub tun_write_errors: AtomicU64,
    /// UDP/4500 payloads that were neither IKE, ESP nor keepalives.
    pub malformed_udp: AtomicU64,
    /// TUN reads whose virtio-net header did not fit the packet.
    pub offload_errors: AtomicU64,
    /// IKE datagrams from UDP 4500 dropped because the control loop's queue was full.
    pub ike_queue_dropped: AtomicU64,
    /// When the last "IKE queue full" line was logged (rate limit).
    ike_queue_logged: LogLimit,
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
struct LogLimit {
    /// Milliseconds since `log_epoch()` before which nothing more is logged.
    next_ms: AtomicU64,
}

const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

fn log_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

impl LogLimit {
    /// True for the first call, then again once `LOG_EVERY` has passed.
    fn allow(&self) -> bool {
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
    /// Newest last: the most recent SA for a selector pair wins (make-before-break rekey).
    pub policies: RwLock<Vec<Policy>>,
    /// Inbound SA → TUN its packets are written to.
    pub inbound: RwLock<HashMap<SaHandle, usize>>,
    pub raw: HashMap<IpAddr, Arc<RawEsp>>,
    /// UDP 4500 sockets by local address (ESP-in-UDP out; IKE+ESP in).
    pub nat_t: HashMap<IpAddr, Arc<UdpSocket>>,
    pub counters: IoCounters,
}

/// The TUN devices by index (the index `Policy::tun` and `inbound` use).
#[derive(Default)]
pub struct TunTable {
    /// The queues of each TUN device (none for a removed one, whose index is not reused). Each
    /// outbound lane reads its own queue ([`TunSource::new`]); a decapsulated packet is written
    /// through the queue its flow hashes to, and the kernel then steers the flow's outbound
    /// packets to that same queue (tun's automatic flow steering), so one lane sees all of a
    /// flow.
    pub tuns: Vec<Vec<Arc<Tun>>>,
    /// MSS limit of TCP SYNs through each TUN, both ways (same index as `tuns`).
    pub tcp_mss: Vec<MssClamp>,
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
struct DeviceView {
    generation: u64,
    table: Arc<TunTable>,
}

impl DeviceView {
    fn new(d: &Devices) -> DeviceView {
        DeviceView {
            generation: d.generation.load(Ordering::Acquire),
            table: d.current(),
        }
    }

    /// True when the table changed since the last look (and the snapshot is now the new one).
    fn refresh(&mut self, d: &Devices) -> bool {
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
fn poll_in(fds: impl Iterator<Item = RawFd>, mut ready: impl FnMut(usize)) -> bool {
    POLL_SET.with(|set| {
        let mut pfds = set.borrow_mut();
        pfds.clear();
        pfds.extend(fds.map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: pfds is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, POLL_MS) };
        if n <= 0 {
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
fn wait_writable(fd: RawFd, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: p is one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

/// (source, destination) of an IPv4/IPv6 packet; None when it is neither.
fn addresses(p: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match p.first()? >> 4 {
        4 => {
            let s: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some((IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d))))
        }
        6 => {
            let s: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some((IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d))))
        }
        _ => None,
    }
}

/// The newest outbound policy of TUN `i` that covers `packet`.
fn policy_for(policies: &[Policy], i: usize, packet: &[u8]) -> Option<SaHandle> {
    let (src, dst) = addresses(packet)?;
    policies
        .iter()
        .rev()
        .find(|x| x.tun == i && x.remote.contains_addr(dst) && x.local.contains_addr(src))
        .map(|x| x.handle)
}

/// Largest TUN read with offloads: a 64 KiB super-packet after its virtio-net header.
const TUN_READ_MAX: usize = VNET_HDR_LEN + 65_535;

/// A super-packet read but not yet cut up completely (the batch filled up).
struct Pending {
    segments: Segmenter,
    /// Bytes of the read (vnet header included) in `TunSource::read_buf`.
    len: usize,
    sa: SaHandle,
    mss: MssClamp,
}

/// Inner packets from one queue of each TUN device, each tagged with its outbound SA.
pub struct TunSource {
    shared: Arc<Shared>,
    /// Which queue of each device this source reads.
    lane: usize,
    view: DeviceView,
    /// The queue this source reads, per TUN: (index in `TunTable::tuns` and `Policy::tun`,
    /// queue).
    queues: Arc<[(usize, Arc<Tun>)]>,
    read_buf: Box<[u8]>,
    pending: Option<Pending>,
}

impl TunSource {
    /// Reads queue `lane` of every TUN device, following the table as it changes.
    pub fn new(shared: Arc<Shared>, lane: usize) -> Self {
        let view = DeviceView::new(&shared.devices);
        let queues = lane_queues(&view.table, lane);
        TunSource {
            shared,
            lane,
            view,
            queues,
            read_buf: vec![0u8; TUN_READ_MAX].into_boxed_slice(),
            pending: None,
        }
    }

    /// Cuts the pending super-packet into the batch; false when the batch filled first.
    fn flush_pending(&mut self, batch: &mut Batch) -> bool {
        let Some(pd) = self.pending.as_mut() else {
            return true;
        };
        let packet = self.read_buf.get(VNET_HDR_LEN..pd.len).unwrap_or_default();
        while pd.segments.remaining() > 0 {
            let Some(p) = batch.push() else {
                return false;
            };
            match pd.segments.next_into(packet, p.spare_mut()) {
                Some(Ok(n)) => {
                    p.set_len(n);
                    p.sa = Some(pd.sa);
                    pd.mss.apply(p.data_mut());
                }
                Some(Err(_)) => {
                    batch.pop();
                    self.shared
                        .counters
                        .offload_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
                None => {
                    batch.pop();
                    break;
                }
            }
        }
        self.pending = None;
        true
    }

    /// Reads TUN `i` until it is empty or the batch is full.
    fn drain(&mut self, i: usize, tun: &Tun, policies: &[Policy], batch: &mut Batch) {
        if tun.vnet_hdr() {
            return self.drain_offloaded(i, tun, policies, batch);
        }
        while let Some(p) = batch.push() {
            match tun.read(p.spare_mut()) {
                Ok(n) => {
                    p.set_len(n);
                    match policy_for(policies, i, p.data()) {
                        Some(h) => {
                            p.sa = Some(h);
                            clamp_mss(&self.view.table, i, p);
                        }
                        None => {
                            self.shared
                                .counters
                                .no_policy
                                .fetch_add(1, Ordering::Relaxed);
                            batch.pop();
                        }
                    }
                }
                Err(_) => {
                    batch.pop();
                    break;
                }
            }
        }
    }

    /// Reads (super-)packets with their virtio-net header and cuts them into the batch.
    fn drain_offloaded(&mut self, i: usize, tun: &Tun, policies: &[Policy], batch: &mut Batch) {
        let shared = self.shared.clone();
        let counters = &shared.counters;
        while self.flush_pending(batch) && !batch.is_full() {
            let Ok(len) = tun.read(&mut self.read_buf) else {
                return;
            };
            let read = self.read_buf.get(..len).unwrap_or_default();
            let Ok((hdr, packet)) = VnetHdr::split(read) else {
                counters.offload_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let Some(sa) = policy_for(policies, i, packet) else {
                counters.no_policy.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match Segmenter::new(&hdr, packet) {
                Ok(segments) => {
                    let mss = self.view.table.tcp_mss.get(i).copied().unwrap_or_default();
                    self.pending = Some(Pending {
                        segments,
                        len,
                        sa,
                        mss,
                    })
                }
                Err(_) => {
                    counters.offload_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Queue `lane` of every device that has one.
fn lane_queues(t: &TunTable, lane: usize) -> Arc<[(usize, Arc<Tun>)]> {
    t.tuns
        .iter()
        .enumerate()
        .filter_map(|(i, q)| q.get(lane).map(|q| (i, q.clone())))
        .collect()
}

impl PacketSource for TunSource {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv {
        let shared = self.shared.clone();
        if self.view.refresh(&shared.devices) {
            self.queues = lane_queues(&self.view.table, self.lane);
        }
        let queues = self.queues.clone();
        if self.pending.is_some() {
            // The rest of a super-packet first, then whatever is ready, without waiting.
            if !self.flush_pending(batch) {
                return Recv::Data;
            }
            let Ok(policies) = shared.policies.read() else {
                return Recv::Closed;
            };
            for (i, tun) in queues.iter() {
                self.drain(*i, tun, &policies, batch);
            }
            return Recv::Data;
        }
        let mut closed = false;
        let any = poll_in(queues.iter().map(|(_, t)| t.as_raw_fd()), |k| {
            // Taken after the wait, so a policy change never waits for an idle poll.
            let Ok(policies) = shared.policies.read() else {
                closed = true;
                return;
            };
            if let Some((i, tun)) = queues.get(k) {
                self.drain(*i, tun, &policies, batch);
            }
        });
        match (closed, any) {
            (true, _) => Recv::Closed,
            (false, true) => Recv::Data,
            (false, false) => Recv::Idle,
        }
    }
}

/// Where a sink message goes, and which packets (a run of `iov`s) it carries.
#[derive(Clone, Copy)]
struct Msg {
    first_iov: usize,
    iovs: usize,
    bytes: usize,
    /// UDP GSO segment size; 0 = a single datagram.
    segment: usize,
    /// A shorter last segment ended this GSO run.
    closed: bool,
    dst: SocketAddr,
}

/// Up to `MMSG` outgoing datagrams for one socket, sent with one `sendmmsg`.
struct SendList {
    fd: RawFd,
    udp: bool,
    msgs: [Option<Msg>; MMSG],
    nmsgs: usize,
    iovs: [libc::iovec; MMSG],
    niovs: usize,
}

/// Control message space for one `UDP_SEGMENT` (u16) value, 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct GsoCmsg([u8; 32]);

impl SendList {
    fn new() -> Self {
        SendList {
            fd: -1,
            udp: false,
            msgs: [None; MMSG],
            nmsgs: 0,
            iovs: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; MMSG],
            niovs: 0,
        }
    }

    /// Queues `data` (borrowed until the next `flush`) for `dst` on `fd`, flushing first when
    /// the list is full or belongs to another socket.
    fn push(&mut self, fd: RawFd, udp: bool, data: &[u8], dst: SocketAddr, errors: &AtomicU64) {
        if self.nmsgs > 0 && (fd != self.fd || self.niovs == MMSG) {
            self.flush(errors);
        }
        self.fd = fd;
        self.udp = udp;
        let iov = libc::iovec {
            iov_base: data.as_ptr().cast_mut().cast(),
            iov_len: data.len(),
        };
        // Extend the last message into (or as) a UDP GSO run: equal-sized segments to one
        // peer, a shorter one may end it.
        if udp && UDP_GSO.load(Ordering::Relaxed) {
            if let Some(Some(m)) = self.msgs.get_mut(self.nmsgs.wrapping_sub(1)) {
                let seg = if m.segment == 0 { m.bytes } else { m.segment };
                if m.dst == dst
                    && !m.closed
                    && data.len() <= seg
                    && m.iovs < GSO_MAX_SEGMENTS
                    && m.bytes + data.len() <= GSO_MAX_BYTES
                    && m.first_iov + m.iovs == self.niovs
                {
                    m.segment = seg;
                    m.closed = data.len() < seg;
                    m.iovs += 1;
                    m.bytes += data.len();
                    if let Some(slot) = self.iovs.get_mut(self.niovs) {
                        *slot = iov;
                        self.niovs += 1;
                    }
                    return;
                }
            }
        }
        if let (Some(slot), Some(msg)) =
            (self.iovs.get_mut(self.niovs), self.msgs.get_mut(self.nmsgs))
        {
            *slot = iov;
            *msg = Some(Msg {
                first_iov: self.niovs,
                iovs: 1,
                bytes: data.len(),
                segment: 0,
                closed: false,
                dst,
            });
            self.niovs += 1;
            self.nmsgs += 1;
        }
    }

    /// Sends everything queued; packets the kernel refuses are counted in `errors`.
    fn flush(&mut self, errors: &AtomicU64) {
        let n = self.nmsgs;
        if n == 0 {
            return;
        }
        // SAFETY: all-zero mmsghdr, sockaddr_storage and cmsg space are valid values.
        let mut hdrs: [libc::mmsghdr; MMSG] = unsafe { std::mem::zeroed() };
        let mut addrs: [libc::sockaddr_storage; MMSG] = unsafe { std::mem::zeroed() };
        let mut cmsgs = [GsoCmsg([0; 32]); MMSG];
        for (k, m) in self.msgs.iter().take(n).enumerate() {
            let (Some(m), Some(h), Some(a), Some(c)) =
                (m, hdrs.get_mut(k), addrs.get_mut(k), cmsgs.get_mut(k))
            else {
                continue;
            };
            let (ss, len) = sockaddr(m.dst);
            *a = ss;
            h.msg_hdr.msg_name = std::ptr::addr_of_mut!(*a).cast();
            h.msg_hdr.msg_namelen = len;
            // SAFETY: first_iov + iovs <= niovs <= MMSG, inside self.iovs.
            h.msg_hdr.msg_iov = unsafe { self.iovs.as_mut_ptr().add(m.first_iov) };
            h.msg_hdr.msg_iovlen = m.iovs as _;
            if m.segment > 0 && m.iovs > 1 {
                // SAFETY: c is 32 bytes, aligned for cmsghdr, enough for CMSG_SPACE(2).
                unsafe {
                    h.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
                    h.msg_hdr.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
                    let cm = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    (*cm).cmsg_level = libc::IPPROTO_UDP;
                    (*cm).cmsg_type = UDP_SEGMENT;
                    (*cm).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<u16>(), m.segment as u16);
                }
            }
        }
        let mut done = 0;
        let mut waited = false;
        while done < n {
            // SAFETY: hdrs[done..n] point at live iovecs, addresses and cmsgs; the iovecs
            // point at packet data borrowed for the duration of the batch.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd,
                    hdrs.as_mut_ptr().add(done),
                    (n - done) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                done += r as usize;
                waited = false;
                continue;
            }
            let err = io::Error::last_os_error();
            let raw = err.raw_os_error().unwrap_or(0);
            if (raw == libc::EAGAIN || raw == libc::ENOBUFS) && !waited {
                waited = true;
                wait_writable(self.fd, SEND_WAIT_MS);
                continue;
            }
            let m = self.msgs.get(done).copied().flatten();
            if let (Some(m), Some(h)) = (m, hdrs.get(done)) {
                let too_big = raw == libc::EINVAL || raw == libc::EMSGSIZE;
                if m.segment > 0 && m.iovs > 1 && (raw == libc::EIO || too_big) {
                    // EIO: no checksum offload for GSO on this path, send one by one from now
                    // on. EINVAL, or EMSGSIZE on newer kernels: this run did not fit (e.g.
                    // segment larger than the MTU, which a single datagram may exceed as
                    // fragments), send it one by one and keep GSO for the next.
                    if raw == libc::EIO {
                        UDP_GSO.store(false, Ordering::Relaxed);
                    }
                    self.send_each(h, m, errors);
                } else {
                    errors.fetch_add(m.iovs as u64, Ordering::Relaxed);
                }
            }
            done += 1;
            waited = false;
        }
        self.nmsgs = 0;
        self.niovs = 0;
    }

    /// Sends the packets of a GSO message one datagram at a time.
    fn send_each(&self, h: &libc::mmsghdr, m: Msg, errors: &AtomicU64) {
        for iov in self.iovs.iter().skip(m.first_iov).take(m.iovs) {
            // SAFETY: the iovec points at live packet data; name/namelen come from hdr.
            let r = unsafe {
                libc::sendto(
                    self.fd,
                    iov.iov_base,
                    iov.iov_len,
                    0,
                    h.msg_hdr.msg_name.cast(),
                    h.msg_hdr.msg_namelen,
                )
            };
            if r < 0 {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// ESP packets out: raw protocol 50 or ESP-in-UDP, as the SA says.
pub struct EspSink {
    pub shared: Arc<Shared>,
}

impl PacketSink for EspSink {
    fn send_batch(&mut self, batch: &mut Batch) {
        let errors = &self.shared.counters.send_errors;
        let mut list = SendList::new();
        for p in batch.ok_packets() {
            let Some((t, encap)) = p.tunnel else { continue };
            let (fd, udp, dst) = match encap {
                Encap::Raw => match self.shared.raw.get(&t.local) {
                    Some(raw) => (raw.as_raw_fd(), false, SocketAddr::new(t.remote, 0)),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
                Encap::Udp { remote_port, .. } => match self.shared.nat_t.get(&t.local) {
                    Some(s) => (s.as_raw_fd(), true, SocketAddr::new(t.remote, remote_port)),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
            };
            list.push(fd, udp, p.data(), dst, errors);
        }
        list.flush(errors);
    }
}

/// One socket ESP arrives on.
enum EspSocket {
    Raw {
        sock: Arc<RawEsp>,
        v4: bool,
    },
    Udp {
        sock: Arc<UdpSocket>,
        local: SocketAddr,
        /// `UDP_GRO` is on: datagrams arrive coalesced, read them through [`GroRecv`].
        gro: bool,
    },
}

impl EspSocket {
    fn fd(&self) -> RawFd {
        match self {
            EspSocket::Raw { sock, .. } => sock.as_raw_fd(),
            EspSocket::Udp { sock, .. } => sock.as_raw_fd(),
        }
    }
}

/// ESP packets in, from the raw sockets and UDP 4500; IKE found on 4500 goes to the control
/// loop through `ike` (and a wake-up).
pub struct EspSource {
    pub shared: Arc<Shared>,
    pub ike: Sender<Datagram>,
    pub wake: Arc<mio::Waker>,
    sockets: Vec<EspSocket>,
    gro: GroRecv,
}

/// Non-blocking `recvmmsg` into the first `room` of `hdrs`, which must point at live buffers
/// (and addresses/control space if set); the number of messages received.
fn recv_mmsg(fd: RawFd, hdrs: &mut [libc::mmsghdr], room: usize) -> usize {
    let room = room.min(hdrs.len());
    // SAFETY: hdrs[..room] are valid mmsghdrs whose pointers the callers keep alive.
    let r = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            room as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if r > 0 {
        (r as usize).min(room)
    } else {
        0
    }
}

/// Coalesced datagrams read per `recvmmsg` on a `UDP_GRO` socket.
const GRO_MSGS: usize = 8;
/// Largest coalesced datagram (a UDP datagram's limit).
const GRO_BUF: usize = 65_535;

/// Control message space for the `UDP_GRO` segment size (an int), 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct GroCmsg([u8; 64]);

/// One coalesced datagram read but not yet cut into the batch.
#[derive(Clone, Copy)]
struct GroDatagram {
    /// Index of its buffer in `GroRecv::bufs`.
    buf: usize,
    len: usize,
    /// Segment size (the whole length when the kernel did not coalesce).
    segment: usize,
    /// Bytes already cut into batches.
    offset: usize,
    from: libc::sockaddr_storage,
    local: SocketAddr,
}

/// Receive side of ESP-in-UDP with `UDP_GRO`: a few 64 KiB buffers (allocated once, reused)
/// that `recvmmsg` fills with coalesced datagrams, cut into ESP packets by segment size.
struct GroRecv {
    bufs: Vec<Box<[u8]>>,
    /// Read datagrams still to cut up, oldest first.
    pending: std::collections::VecDeque<GroDatagram>,
}

impl GroRecv {
    fn new(any: bool) -> Self {
        let n = if any { GRO_MSGS } else { 0 };
        GroRecv {
            bufs: (0..n)
                .map(|_| vec![0u8; GRO_BUF].into_boxed_slice())
                .collect(),
            pending: std::collections::VecDeque::with_capacity(n),
        }
    }
}

/// The segment size a `UDP_GRO` control message carries, if any.
fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_* macros stay inside it.
    unsafe {
        let mut cm = libc::CMSG_FIRSTHDR(h);
        while !cm.is_null() {
            if (*cm).cmsg_level == libc::SOL_UDP && (*cm).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<libc::c_int>());
                return usize::try_from(v).ok().filter(|&v| v > 0);
            }
            cm = libc::CMSG_NXTHDR(h, cm);
        }
    }
    None
}

impl EspSource {
    pub fn new(shared: Arc<Shared>, ike: Sender<Datagram>, wake: Arc<mio::Waker>) -> Self {
        let raws = shared.raw.iter().map(|(a, r)| EspSocket::Raw {
            sock: r.clone(),
            v4: a.is_ipv4(),
        });
        let udps = shared.nat_t.iter().map(|(a, s)| EspSocket::Udp {
            sock: s.clone(),
            local: SocketAddr::new(*a, 4500),
            gro: enable_udp_gro(s),
        });
        let sockets: Vec<EspSocket> = raws.chain(udps).collect();
        let any_gro = sockets
            .iter()
            .any(|s| matches!(s, EspSocket::Udp { gro: true, .. }));
        EspSource {
            shared,
            ike,
            wake,
            sockets,
            gro: GroRecv::new(any_gro),
        }
    }

    /// Cuts pending coalesced datagrams into the batch; false when the batch filled first.
    fn flush_gro(&mut self, batch: &mut Batch) -> bool {
        while let Some(d) = self.gro.pending.front_mut() {
            let data = self
                .gro
                .bufs
                .get(d.buf)
                .and_then(|b| b.get(..d.len))
                .unwrap_or_default();
            while d.offset < d.len {
                let end = d.len.min(d.offset.saturating_add(d.segment));
                let seg = data.get(d.offset..end).unwrap_or_default();
                let Some(p) = batch.push() else {
                    return false;
                };
                d.offset = end;
                let Some(dst) = p.spare_mut().get_mut(..seg.len()) else {
                    // Larger than a packet buffer: no ESP packet of ours is.
                    batch.pop();
                    self.shared
                        .counters
                        .malformed_udp
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                dst.copy_from_slice(seg);
                p.set_len(seg.len());
                p.source = socket_addr(&d.from).map(|a| a.ip());
                let (from, local) = (d.from, d.local);
                if !classify_udp(&self.shared, &self.ike, &self.wake, seg, local, &from) {
                    batch.pop();
                }
            }
            self.gro.pending.pop_front();
        }
        true
    }

    /// `recvmmsg` of coalesced datagrams from a `UDP_GRO` socket, cut into the batch.
    fn drain_gro(&mut self, fd: RawFd, local: SocketAddr, batch: &mut Batch) {
        while self.flush_gro(batch) && !batch.is_full() {
            let n = self.gro.bufs.len();
            // SAFETY: all-zero mmsghdr, iovec, sockaddr_storage are valid values.
            let mut hdrs: [libc::mmsghdr; GRO_MSGS] = unsafe { std::mem::zeroed() };
            let mut iovs: [libc::iovec; GRO_MSGS] = unsafe { std::mem::zeroed() };
            let mut addrs: [libc::sockaddr_storage; GRO_MSGS] = unsafe { std::mem::zeroed() };
            let mut cmsgs = [GroCmsg([0; 64]); GRO_MSGS];
            let mut room = 0;
            for (((h, iov), a), (c, b)) in hdrs
                .iter_mut()
                .zip(iovs.iter_mut())
                .zip(addrs.iter_mut())
                .zip(cmsgs.iter_mut().zip(self.gro.bufs.iter_mut()))
                .take(n)
            {
                *iov = libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                };
                h.msg_hdr.msg_iov = iov;
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_name = std::ptr::addr_of_mut!(*a).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
                h.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = c.0.len() as _;
                room += 1;
            }
            if room == 0 {
                return;
            }
            let got = recv_mmsg(fd, &mut hdrs, room);
            for (k, (h, a)) in hdrs.iter().zip(addrs.iter()).take(got).enumerate() {
                let len = h.msg_len as usize;
                if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len == 0 {
                    continue;
                }
                let segment = gro_segment(&h.msg_hdr).unwrap_or(len);
                self.gro.pending.push_back(GroDatagram {
                    buf: k,
                    len,
                    segment,
                    offset: 0,
                    from: *a,
                    local,
                });
            }
            if got < room {
                // Cut what was read now: the buffers are reused by the next call.
                self.flush_gro(batch);
                return;
            }
        }
    }

    /// `recvmmsg` on `sock` into the batch until the socket is empty or the batch is full.
    fn drain(&self, sock: &EspSocket, batch: &mut Batch) {
        let (fd, raw_v4) = match sock {
            EspSocket::Raw { sock, v4 } => (sock.as_raw_fd(), *v4),
            EspSocket::Udp { sock, .. } => (sock.as_raw_fd(), false),
        };
        let udp_local = match sock {
            EspSocket::Udp { local, .. } => Some(*local),
            EspSocket::Raw { .. } => None,
        };
        // SAFETY: all-zero mmsghdr, iovec and sockaddr_storage are valid values.
        let mut hdrs: [libc::mmsghdr; MMSG] = unsafe { std::mem::zeroed() };
        let mut iovs: [[libc::iovec; 2]; MMSG] = unsafe { std::mem::zeroed() };
        let mut addrs: [libc::sockaddr_storage; MMSG] = unsafe { std::mem::zeroed() };
        let mut ip_headers = [[0u8; IPV4_HEADER]; MMSG];
        while !batch.is_full() {
            let base = batch.len();
            let mut room = 0;
            while room < MMSG {
                let Some(p) = batch.push() else { break };
                let spare = p.spare_mut();
                let (Some(h), Some(iov), Some(a), Some(ih)) = (
                    hdrs.get_mut(room),
                    iovs.get_mut(room),
                    addrs.get_mut(room),
                    ip_headers.get_mut(room),
                ) else {
                    batch.pop();
                    break;
                };
                let data = libc::iovec {
                    iov_base: spare.as_mut_ptr().cast(),
                    iov_len: spare.len(),
                };
                // SAFETY: an all-zero msghdr is valid.
                h.msg_hdr = unsafe { std::mem::zeroed() };
                if raw_v4 {
                    // The IPv4 header into its side buffer, the ESP packet into the buffer.
                    iov[0] = libc::iovec {
                        iov_base: ih.as_mut_ptr().cast(),
                        iov_len: IPV4_HEADER,
                    };
                    iov[1] = data;
                    h.msg_hdr.msg_iovlen = 2;
                } else {
                    iov[0] = data;
                    h.msg_hdr.msg_iovlen = 1;
                }
                h.msg_hdr.msg_iov = iov.as_mut_ptr();
                // Raw sockets name the source too: reports of unknown SPIs need it.
                h.msg_hdr.msg_name = std::ptr::addr_of_mut!(*a).cast();
                h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
                room += 1;
            }
            if room == 0 {
                return;
            }
            // The iovecs point at packet buffers of the batch, untouched until the call returns.
            let got = recv_mmsg(fd, &mut hdrs, room);
            // Keep the ESP packets at the front of what was pushed, in arrival order.
            let mut kept = 0;
            for k in 0..got {
                let (Some(h), Some(ih), Some(a)) = (hdrs.get(k), ip_headers.get(k), addrs.get(k))
                else {
                    continue;
                };
                let len = h.msg_len as usize;
                let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                let Some(p) = batch.packets_mut().get_mut(base + k) else {
                    continue;
                };
                p.source = socket_addr(a).map(|a| a.ip());
                let esp = if truncated {
                    false
                } else if raw_v4 {
                    let ihl = ih.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
                    if ihl < IPV4_HEADER || len < ihl {
                        false
                    } else {
                        // IPv4 options (rare) spilled into the buffer: move the ESP packet.
                        let extra = ihl - IPV4_HEADER;
                        p.set_len(len - IPV4_HEADER);
                        if extra > 0 {
                            p.data_mut().copy_within(extra.., 0);
                            p.set_len(len - ihl);
                        }
                        true
                    }
                } else {
                    p.set_len(len);
                    match udp_local {
                        None => true,
                        Some(local) => {
                            classify_udp(&self.shared, &self.ike, &self.wake, p.data(), local, a)
                        }
                    }
                };
                if esp {
                    batch.packets_mut().swap(base + kept, base + k);
                    kept += 1;
                }
            }
            for _ in kept..room {
                batch.pop();
            }
            if got < room {
                return;
            }
        }
    }
}

/// True for ESP; IKE goes to the control loop, keepalives and junk are dropped.
fn classify_udp(
    shared: &Shared,
    ike: &Sender<Datagram>,
    wake: &mio::Waker,
    data: &[u8],
    local: SocketAddr,
    from: &libc::sockaddr_storage,
) -> bool {
    match classify(data) {
        UdpPayload::Esp(_) => true,
        UdpPayload::Ike(msg) => {
            if let Some(remote) = socket_addr(from) {
                let d = Datagram {
                    local,
                    remote,
                    data: msg.to_vec(),
                };
                match ike.try_send(d) {
                    Ok(()) => {
                        let _ = wake.wake();
                    }
                    Err(crossbeam_channel::TrySendError::Full(_)) => {
                        let c = &shared.counters;
                        let n = c.ike_queue_dropped.fetch_add(1, Ordering::Relaxed);
                        if c.ike_queue_logged.allow() {
                            tracing::warn!(
                                dropped_total = n.saturating_add(1),
                                "IKE on UDP 4500 from {remote} dropped: {IKE_QUEUE} datagrams \
                                 already wait for the control loop (ike_queue_dropped_total \
                                 counts them; logged at most every {}s)",
                                LOG_EVERY.as_secs()
                            );
                        }
                    }
                    Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
                }
            }
            false
        }
        UdpPayload::Keepalive => false,
        UdpPayload::Malformed => {
            shared
                .counters
                .malformed_udp
                .fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

impl PacketSource for EspSource {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv {
        if !self.gro.pending.is_empty() {
            // The rest of coalesced datagrams first; the next poll can wait.
            self.flush_gro(batch);
            return Recv::Data;
        }
        let mut ready = [false; 16];
        let mut more = Vec::new();
        let any = poll_in(self.sockets.iter().map(EspSocket::fd), |i| {
            match ready.get_mut(i) {
                Some(r) => *r = true,
                None => more.push(i),
            }
        });
        if !any {
            return Recv::Idle;
        }
        let readable = (0..ready.len())
            .filter(|&i| ready.get(i).copied().unwrap_or(false))
            .chain(more);
        for i in readable {
            match self.sockets.get(i) {
                Some(EspSocket::Udp {
                    sock,
                    local,
                    gro: true,
                }) => {
                    let (fd, local) = (sock.as_raw_fd(), *local);
                    self.drain_gro(fd, local, batch);
                }
                Some(s) => self.drain(s, batch),
                None => {}
            }
        }
        Recv::Data
    }
}

/// Decapsulated inner packets into the TUN of their connection; into a TUN with offloads,
/// in-order TCP segments of one flow go as one super-packet.
pub struct TunSink {
    shared: Arc<Shared>,
    view: DeviceView,
    /// Where ESP with an unknown SPI is reported (invalid-SPI recovery), if anywhere.
    unknown_spi: Option<super::recovery::UnknownSpiReports>,
    gro: Gro,
    /// Per packet of the current batch: (TUN, queue) it goes to. Reused from batch to batch.
    dest: Vec<Option<(usize, usize)>>,
}

/// A zero virtio-net header: a packet as it is.
const PLAIN: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

impl TunSink {
    pub fn new(shared: Arc<Shared>) -> Self {
        TunSink {
            view: DeviceView::new(&shared.devices),
            shared,
            unknown_spi: None,
            gro: Gro::new(),
            dest: Vec::with_capacity(ferrovpn_esp::pipeline::DEFAULT_BATCH),
        }
    }
}

impl TunSink {
    /// Reports ESP with an unknown SPI (rate-limited) to the control loop.
    pub fn with_unknown_spi_reports(mut self, r: super::recovery::UnknownSpiReports) -> Self {
        self.unknown_spi = Some(r);
        self
    }
}

impl PacketSink for TunSink {
    fn send_batch(&mut self, batch: &mut Batch) {
        if let Some(r) = self.unknown_spi.as_mut() {
            r.scan(batch.packets().iter(), std::time::Instant::now());
        }
        let shared = self.shared.clone();
        self.view.refresh(&shared.devices);
        let table = self.view.table.clone();
        {
            let Ok(inbound) = shared.inbound.read() else {
                return;
            };
            // One map lookup per run of packets of one SA, not per packet.
            let mut last: Option<(SaHandle, Option<usize>)> = None;
            self.dest.clear();
            self.dest.extend(batch.packets().iter().map(|p| {
                let h = p.sa.filter(|_| p.verdict == Verdict::Ok)?;
                let tun = match last {
                    Some((lh, t)) if lh == h => t,
                    _ => {
                        let t = inbound.get(&h).copied();
                        last = Some((h, t));
                        t
                    }
                }?;
                let queues = table.tuns.get(tun)?.len();
                Some((tun, queue_for(p.data(), queues)))
            }));
        }
        for (p, d) in batch.packets_mut().iter_mut().zip(&self.dest) {
            if let Some((t, _)) = d {
                clamp_mss(&table, *t, p);
            }
        }
        let dest = &self.dest;
        let tun_at = |i: usize| {
            let (t, q) = dest.get(i).copied().flatten()?;
            table.tuns.get(t)?.get(q)
        };
        {
            let pkts = batch.packets();
            self.gro.plan(pkts.len(), |i| {
                let p = pkts.get(i)?;
                tun_at(i).filter(|t| t.vnet_hdr()).map(|_| p.data())
            });
        }
        let errors = &shared.counters.tun_write_errors;
        for i in 0..batch.len() {
            if !batch
                .packets()
                .get(i)
                .is_some_and(|p| p.verdict == Verdict::Ok)
            {
                continue;
            }
            let Some(tun) = tun_at(i) else {
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let written = if !tun.vnet_hdr() {
                tun.write(data_of(batch, i))
            } else {
                match self.gro.role(i) {
                    Role::Skip | Role::Member => continue,
                    Role::Single => tun.writev(&[
                        io::IoSlice::new(&PLAIN),
                        io::IoSlice::new(data_of(batch, i)),
                    ]),
                    Role::Head => {
                        let hdr = batch
                            .packets_mut()
                            .get_mut(i)
                            .and_then(|p| self.gro.merge_headers(i, p.data_mut()));
                        let Some(hdr) = hdr else {
                            errors.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        write_super_packet(tun, &self.gro, i, &hdr, batch.packets())
                    }
                }
            };
            if written.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Lowers the MSS of a TCP SYN through TUN `tun` to its limit (RFC 6691); before any
/// coalescing, which never takes SYNs anyway.
fn clamp_mss(table: &TunTable, tun: usize, p: &mut PacketBuf) {
    if let Some(c) = table.tcp_mss.get(tun) {
        c.apply(p.data_mut());
    }
}

/// The queue (of `queues`) a decapsulated packet is written through: its flow's, so that the
/// kernel steers the flow's outbound packets to the lane reading that queue.
fn queue_for(packet: &[u8], queues: usize) -> usize {
    match queues {
        0 | 1 => 0,
        n => ((u64::from(flow_hash(packet)) * n as u64) >> 32) as usize,
    }
}

/// A hash of an IP packet's flow that is the same in both directions: addresses and, for
/// TCP/UDP without fragmentation, ports, each pair XORed.
fn flow_hash(p: &[u8]) -> u32 {
    let word = |r: std::ops::Range<usize>| {
        p.get(r).map_or(0, |b| {
            b.iter().fold(0u32, |h, &x| h.rotate_left(8) ^ u32::from(x))
        })
    };
    let (addrs, proto, l4) = match p.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(p.first().copied().unwrap_or(0) & 0x0f) * 4;
            let frag = word(6..8) & 0x3fff != 0;
            let l4 = (!frag).then_some(ihl);
            (word(12..16) ^ word(16..20), p.get(9).copied(), l4)
        }
        Some(6) => {
            let a = (8..24)
                .step_by(4)
                .fold(0, |h, o| h ^ word(o..o + 4) ^ word(o + 16..o + 20));
            (a, p.get(6).copied(), Some(40))
        }
        _ => return 0,
    };
    let ports = match (proto, l4) {
        (Some(6 | 17), Some(o)) => word(o..o + 2) ^ word(o + 2..o + 4),
        _ => 0,
    };
    // Every bit of the input reaches every bit of the output (MurmurHash3's finalizer):
    // Linux gives connect()ed sockets ports of one parity, so the low bits alone would put
    // all of one host's flows on the same queue.
    let mut h = addrs ^ ports.rotate_left(16) ^ u32::from(proto.unwrap_or(0));
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

fn data_of(b: &Batch, i: usize) -> &[u8] {
    b.packets().get(i).map(|p| p.data()).unwrap_or_default()
}

/// Writes head `i` and its members' payloads as one GSO super-packet.
fn write_super_packet(
    tun: &Tun,
    gro: &Gro,
    i: usize,
    hdr: &VnetHdr,
    pkts: &[PacketBuf],
) -> io::Result<usize> {
    let vnet = hdr.emit();
    let hl = gro.header_len(i).unwrap_or(0);
    let mut parts = [io::IoSlice::new(&[]); ferrovpn_esp::offload::MAX_SEGMENTS + 1];
    let mut n = 0;
    for (slot, data) in parts.iter_mut().zip(
        std::iter::once(&vnet[..])
            .chain(pkts.get(i).map(|p| p.data()))
            .chain(
                gro.members(i)
                    .filter_map(|m| pkts.get(m).and_then(|p| p.data().get(hl..))),
            ),
    ) {
        *slot = io::IoSlice::new(data);
        n += 1;
    }
    tun.writev(parts.get(..n).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_hash_is_the_same_both_ways_and_tells_flows_apart() {
        let v4 = |s: [u8; 4], d: [u8; 4], sp: u16, dp: u16| {
            let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
            p.extend(s);
            p.extend(d);
            p.extend(sp.to_be_bytes());
            p.extend(dp.to_be_bytes());
            p.extend([0u8; 16]);
            p
        };
        let (a, b) = ([198, 51, 100, 1], [203, 0, 113, 1]);
        assert_eq!(
            flow_hash(&v4(a, b, 40000, 5201)),
            flow_hash(&v4(b, a, 5201, 40000))
        );
        let hashes: std::collections::HashSet<u32> = (0..64)
            .map(|i| flow_hash(&v4(a, b, 40000 + i, 5201)) % 4)
            .collect();
        assert_eq!(
            hashes.len(),
            4,
            "64 flows should land on every one of 4 queues"
        );
        let v6 = |s: u8, d: u8, sp: u16, dp: u16| {
            let mut p = vec![0x60, 0, 0, 0, 0, 20, 17, 64];
            p.extend(
                [0x20, 0x01, 0x0d, 0xb8]
                    .iter()
                    .chain(&[0u8; 11])
                    .chain(&[s]),
            );
            p.extend(
                [0x20, 0x01, 0x0d, 0xb8]
                    .iter()
                    .chain(&[0u8; 11])
                    .chain(&[d]),
            );
            p.extend(sp.to_be_bytes());
            p.extend(dp.to_be_bytes());
            p
        };
        assert_eq!(
            flow_hash(&v6(1, 2, 53, 9999)),
            flow_hash(&v6(2, 1, 9999, 53))
        );
        assert_ne!(
            flow_hash(&v6(1, 2, 53, 9999)),
            flow_hash(&v6(1, 3, 53, 9999))
        );
        // Short and odd input is hashed, not a panic.
        let (p6, p4) = (v6(1, 2, 3, 4), v4(a, b, 1, 2));
        for n in 0..48 {
            flow_hash(&p6[..n.min(p6.len())]);
            flow_hash(&p4[..n.min(p4.len())]);
        }
    }

    #[test]
    fn addresses_of_ipv4_and_ipv6_packets() {
        let mut v4 = vec![0x45u8; 20];
        v4[12..16].copy_from_slice(&[198, 51, 100, 1]);
        v4[16..20].copy_from_slice(&[203, 0, 113, 1]);
        assert_eq!(
            addresses(&v4),
            Some((
                "198.51.100.1".parse().unwrap(),
                "203.0.113.1".parse().unwrap()
            ))
        );
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            addresses(&v6).unwrap().1,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(addresses(&[0x45, 0]), None);
        assert_eq!(addresses(&[]), None);
        assert_eq!(addresses(&[0x10; 60]), None);
    }

    #[test]
    fn socket_addresses_round_trip_through_sockaddr_storage() {
        for a in ["192.0.2.1:4500", "[2001:db8::7]:500"] {
            let a: SocketAddr = a.parse().unwrap();
            let (ss, _) = sockaddr(a);
            assert_eq!(socket_addr(&ss), Some(a));
        }
        // SAFETY: all-zero is a valid sockaddr_storage (family AF_UNSPEC).
        let unspec: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        assert_eq!(socket_addr(&unspec), None);
    }

    /// (packets, segment size) of each queued message.
    fn shape(l: &SendList) -> Vec<(usize, usize)> {
        l.msgs[..l.nmsgs]
            .iter()
            .map(|m| m.map(|m| (m.iovs, m.segment)).unwrap())
            .collect()
    }

    #[test]
    fn equal_sized_udp_packets_to_one_peer_join_one_gso_message() {
        let errors = AtomicU64::new(0);
        let peer: SocketAddr = "192.0.2.2:4500".parse().unwrap();
        let other: SocketAddr = "192.0.2.3:4500".parse().unwrap();
        let (big, small) = (vec![1u8; 1400], vec![2u8; 300]);
        let mut l = SendList::new();
        for _ in 0..3 {
            l.push(-1, true, &big, peer, &errors);
        }
        // A shorter packet ends the run; the next one starts a new message.
        l.push(-1, true, &small, peer, &errors);
        l.push(-1, true, &big, peer, &errors);
        // Another peer, then raw ESP: never joined.
        l.push(-1, true, &big, other, &errors);
        assert_eq!(shape(&l), vec![(4, 1400), (1, 0), (1, 0)]);
        let mut raw = SendList::new();
        raw.push(-1, false, &big, peer, &errors);
        raw.push(-1, false, &big, peer, &errors);
        assert_eq!(shape(&raw), vec![(1, 0), (1, 0)]);
    }

    #[test]
    fn gso_runs_stop_at_the_kernel_limits() {
        let errors = AtomicU64::new(0);
        let peer: SocketAddr = "192.0.2.2:4500".parse().unwrap();
        let p = vec![0u8; 1500];
        let mut l = SendList::new();
        for _ in 0..50 {
            l.push(-1, true, &p, peer, &errors);
        }
        let s = shape(&l);
        assert!(s.iter().all(|&(n, _)| n * 1500 <= GSO_MAX_BYTES));
        assert_eq!(s.iter().map(|&(n, _)| n).sum::<usize>(), 50);
        assert_eq!(s[0], (GSO_MAX_BYTES / 1500, 1500));
    }

    fn udp_pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        (tx, rx)
    }

    #[test]
    fn send_list_delivers_every_packet_in_order_as_separate_datagrams() {
        let (tx, rx) = udp_pair();
        let dst = rx.local_addr().unwrap();
        let errors = AtomicU64::new(0);
        let pkts: Vec<Vec<u8>> = (0..100u8)
            .map(|i| vec![i; if i % 10 == 9 { 100 } else { 1200 }])
            .collect();
        let mut l = SendList::new();
        for p in &pkts {
            l.push(tx.as_raw_fd(), true, p, dst, &errors);
        }
        l.flush(&errors);
        assert_eq!(errors.load(Ordering::Relaxed), 0);
        assert!(
            UDP_GSO.load(Ordering::Relaxed),
            "loopback takes UDP GSO sends"
        );
        let mut buf = [0u8; 2000];
        for p in &pkts {
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(&buf[..n], &p[..]);
        }
    }

    fn esp_source_on(
        rx: UdpSocket,
    ) -> (
        EspSource,
        Arc<Shared>,
        crossbeam_channel::Receiver<Datagram>,
    ) {
        let local = rx.local_addr().unwrap();
        let shared = Arc::new(Shared {
            devices: Devices::new(TunTable::default()),
            policies: RwLock::new(Vec::new()),
            inbound: RwLock::new(HashMap::new()),
            raw: HashMap::new(),
            nat_t: HashMap::from([(local.ip(), Arc::new(rx))]),
            counters: IoCounters::default(),
        });
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (ike_tx, ike_rx) = ike_queue();
        (
            EspSource::new(shared.clone(), ike_tx, waker),
            shared,
            ike_rx,
        )
    }

    #[test]
    fn gso_runs_arrive_through_udp_gro_as_separate_esp_packets_in_order() {
        let (tx, rx) = udp_pair();
        rx.set_nonblocking(true).unwrap();
        let local = rx.local_addr().unwrap();
        let (mut src, shared, _ike) = esp_source_on(rx);
        assert!(
            matches!(src.sockets.first(), Some(EspSocket::Udp { gro: true, .. })),
            "UDP_GRO should be on (Linux >= 5.0)"
        );
        // 150 ESP packets of 1200 bytes in GSO runs of up to 64, a shorter one ending each
        // of the last runs: more than one batch, so cutting resumes across calls.
        let packets: Vec<Vec<u8>> = (0..150u32)
            .map(|i| {
                let len = if i % 50 == 49 { 700 } else { 1200 };
                let mut p = vec![0xa5u8; len];
                p[..4].copy_from_slice(&0x1000u32.to_be_bytes());
                p[4..8].copy_from_slice(&(i + 1).to_be_bytes());
                p
            })
            .collect();
        let errors = AtomicU64::new(0);
        let mut list = SendList::new();
        for p in &packets {
            list.push(tx.as_raw_fd(), true, p, local, &errors);
        }
        list.flush(&errors);
        assert_eq!(errors.load(Ordering::Relaxed), 0);
        let mut batch = Batch::new(64, 2048);
        // Coalesced: one call fills the batch (without GRO it would hold one read's worth).
        assert_eq!(src.recv_batch(&mut batch), Recv::Data);
        assert_eq!(batch.len(), 64);
        assert!(!src.gro.pending.is_empty());
        let mut got: Vec<Vec<u8>> = batch.packets().iter().map(|p| p.data().to_vec()).collect();
        for _ in 0..100 {
            if got.len() == packets.len() {
                break;
            }
            batch.clear();
            src.recv_batch(&mut batch);
            got.extend(batch.packets().iter().map(|p| p.data().to_vec()));
        }
        assert_eq!(got.len(), packets.len());
        assert!(got == packets, "packets differ or are out of order");
        assert_eq!(shared.counters.malformed_udp.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn esp_source_keeps_esp_and_hands_ike_to_the_control_loop() {
        let (tx, rx) = udp_pair();
        rx.set_nonblocking(true).unwrap();
        let local = rx.local_addr().unwrap();
        let (mut src, shared, ike_rx) = esp_source_on(rx);
        let esp = |i: u8| vec![0, 0, 1, i, 0, 0, 0, i, 0xab, 0xcd];
        tx.send_to(&esp(1), local).unwrap();
        tx.send_to(&[0, 0, 0, 0, 7, 7, 7], local).unwrap();
        tx.send_to(&esp(2), local).unwrap();
        tx.send_to(&[0xff], local).unwrap();
        tx.send_to(&[1, 2], local).unwrap();
        tx.send_to(&esp(3), local).unwrap();
        let mut batch = Batch::new(64, 2048);
        let mut got = Vec::new();
        while got.len() < 3 {
            batch.clear();
            assert_eq!(src.recv_batch(&mut batch), Recv::Data);
            got.extend(batch.packets().iter().map(|p| p.data().to_vec()));
        }
        assert_eq!(got, vec![esp(1), esp(2), esp(3)]);
        let d = ike_rx.try_recv().unwrap();
        assert_eq!(d.data, vec![7, 7, 7]);
        assert_eq!(d.remote, tx.local_addr().unwrap());
        assert_eq!(d.local, SocketAddr::new(local.ip(), 4500));
        assert_eq!(shared.counters.malformed_udp.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn ike_beyond_the_queue_is_dropped_and_counted_not_held() {
        let (_tx, rx) = udp_pair();
        let local = rx.local_addr().unwrap();
        let (src, shared, ike_rx) = esp_source_on(rx);
        let from = sockaddr(SocketAddr::from(([127, 0, 0, 1], 4500))).0;
        let extra = 100;
        for i in 0..IKE_QUEUE + extra {
            let ike = [0, 0, 0, 0, (i % 251) as u8];
            assert!(!classify_udp(
                &shared, &src.ike, &src.wake, &ike, local, &from
            ));
        }
        assert_eq!(ike_rx.len(), IKE_QUEUE);
        let dropped = &shared.counters.ike_queue_dropped;
        assert_eq!(dropped.load(Ordering::Relaxed), extra as u64);
        // Once the control loop drains the queue, IKE flows again.
        while ike_rx.try_recv().is_ok() {}
        assert!(!classify_udp(
            &shared,
            &src.ike,
            &src.wake,
            &[0, 0, 0, 0, 9],
            local,
            &from
        ));
        assert_eq!(ike_rx.try_recv().unwrap().data, vec![9]);
        assert_eq!(dropped.load(Ordering::Relaxed), extra as u64);
    }

    #[test]
    fn a_rate_limited_log_allows_the_first_line_then_waits() {
        let l = LogLimit::default();
        assert!(l.allow());
        assert!(!l.allow());
        assert!(!l.allow());
    }
}
