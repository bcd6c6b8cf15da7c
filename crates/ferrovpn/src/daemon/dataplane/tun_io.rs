//! TUN side of the pipelines: the outbound source (reads, offload segmentation, policy
//! lookup, MSS clamping) and the inbound sink (queue by flow, GRO, writes).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferrovpn_esp::icmpv6::{packet_too_big, IPV6_MIN_MTU};
use ferrovpn_esp::ip::{IpPacket, IPV6_HEADER};
use ferrovpn_esp::mss::MssClamp;
use ferrovpn_esp::offload::{Gro, Role, Segmenter, VnetHdr, GSO_NONE, VNET_HDR_LEN};
use ferrovpn_esp::{Batch, PacketBuf, PacketSink, PacketSource, Recv, SaHandle, Verdict};

use super::shared::{DeviceView, IoCounters, Shared, TunTable, POLL_MS};
use super::Policies;
use crate::sys::epoll::Epoll;
use crate::tun::Tun;

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
    /// Those queues' descriptors, watched; a wait reports a descriptor, `position` says where
    /// it is in `queues`.
    epoll: Epoll,
    watched: HashMap<RawFd, Arc<Tun>>,
    position: HashMap<RawFd, usize>,
    /// The keys (descriptors) of the last wait, reused.
    ready: Vec<u64>,
    read_buf: Box<[u8]>,
    pending: Option<Pending>,
    ptb: PtbLimit,
}

/// At most `PTB_PER_SECOND` Packet Too Big messages per source thread (RFC 4443 §2.4 (f)).
const PTB_PER_SECOND: u32 = 100;

#[derive(Debug)]
struct PtbLimit {
    window: std::time::Instant,
    sent: u32,
    buf: Box<[u8]>,
}

impl PtbLimit {
    fn allow(&mut self) -> bool {
        let now = std::time::Instant::now();
        if now.duration_since(self.window) >= std::time::Duration::from_secs(1) {
            self.window = now;
            self.sent = 0;
        }
        self.sent = self.sent.saturating_add(1);
        self.sent <= PTB_PER_SECOND
    }
}

/// True (and the packet is dropped) when `packet` is an IPv6 packet larger than TUN `i`'s
/// tunnel carries whole; a rate-limited ICMPv6 Packet Too Big goes back into the TUN.
fn too_big(
    table: &TunTable,
    counters: &IoCounters,
    ptb: &mut PtbLimit,
    i: usize,
    tun: &Tun,
    packet: &[u8],
) -> bool {
    let limit = table.ptb_mtu.get(i).copied().unwrap_or(u32::MAX);
    if packet.len() as u64 <= u64::from(limit) || ferrovpn_esp::ip::version(packet) != Some(6) {
        return false;
    }
    counters.too_big.fetch_add(1, Ordering::Relaxed);
    if !ptb.allow() {
        return true;
    }
    let vnet = if tun.vnet_hdr() { VNET_HDR_LEN } else { 0 };
    let (hdr, body) = ptb.buf.split_at_mut(vnet);
    hdr.fill(0);
    if let Some(n) = packet_too_big(packet, limit, body) {
        let out = ptb.buf.get(..vnet + n).unwrap_or_default();
        match tun.write(out) {
            Ok(_) => counters.ptb_sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.tun_write_errors.fetch_add(1, Ordering::Relaxed),
        };
    }
    true
}

impl TunSource {
    /// Reads queue `lane` of every TUN device, following the table as it changes.
    pub fn new(shared: Arc<Shared>, lane: usize) -> io::Result<Self> {
        let view = DeviceView::new(&shared.devices);
        let queues = lane_queues(&view.table, lane);
        let mut source = TunSource {
            shared,
            lane,
            view,
            queues,
            epoll: Epoll::new()?,
            watched: HashMap::new(),
            position: HashMap::new(),
            ready: Vec::with_capacity(64),
            read_buf: vec![0u8; TUN_READ_MAX].into_boxed_slice(),
            pending: None,
            ptb: PtbLimit {
                window: std::time::Instant::now(),
                sent: 0,
                buf: vec![0u8; VNET_HDR_LEN + IPV6_MIN_MTU as usize].into_boxed_slice(),
            },
        };
        source.watch();
        Ok(source)
    }

    /// Makes the epoll set follow `queues`: descriptors of queues gone are deleted, new ones
    /// added (a change costs calls for what changed only). `watched` keeps each watched
    /// queue open, so its descriptor number cannot be reused while it is in the set.
    fn watch(&mut self) {
        self.position = self
            .queues
            .iter()
            .enumerate()
            .map(|(k, (_, t))| (t.as_raw_fd(), k))
            .collect();
        let (queues, position, epoll) = (&self.queues, &self.position, &self.epoll);
        self.watched.retain(|fd, tun| {
            let keep = position
                .get(fd)
                .and_then(|&k| queues.get(k))
                .is_some_and(|(_, t)| Arc::ptr_eq(t, tun));
            if !keep {
                let _ = epoll.delete(*fd);
            }
            keep
        });
        for (_, tun) in self.queues.iter() {
            let fd = tun.as_raw_fd();
            if self.watched.contains_key(&fd) {
                continue;
            }
            match self.epoll.add(fd, u64::try_from(fd).unwrap_or(u64::MAX)) {
                Ok(()) => {
                    self.watched.insert(fd, tun.clone());
                }
                // Only ENOMEM/ENOSPC (fs.epoll.max_user_watches) can refuse a valid descriptor.
                Err(e) => tracing::error!(
                    "TUN queue {fd} cannot be watched ({e}): its packets are not read; \
                     raise fs.epoll.max_user_watches"
                ),
            }
        }
    }

    /// Waits up to `timeout_ms` for input on the queues; true when any is ready (its keys in
    /// `ready`).
    fn wait(&mut self, timeout_ms: i32) -> bool {
        if self.epoll.wait(&mut self.ready, timeout_ms).is_err() {
            self.ready.clear();
        }
        !self.ready.is_empty()
    }

    /// Drains every queue of the last [`wait`](Self::wait) into the batch.
    fn drain_ready(&mut self, policies: &Policies, batch: &mut Batch) {
        let ready = std::mem::take(&mut self.ready);
        let queues = self.queues.clone();
        for key in &ready {
            let queue = RawFd::try_from(*key)
                .ok()
                .and_then(|fd| self.position.get(&fd))
                .and_then(|&k| queues.get(k));
            if let Some((i, tun)) = queue {
                self.drain(*i, tun, policies, batch);
            }
        }
        self.ready = ready;
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
                    p.set_sa(pd.sa);
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
    fn drain(&mut self, i: usize, tun: &Tun, policies: &Policies, batch: &mut Batch) {
        if tun.vnet_hdr() {
            return self.drain_offloaded(i, tun, policies, batch);
        }
        while let Some(p) = batch.push() {
            match tun.read(p.spare_mut()) {
                Ok(n) => {
                    p.set_len(n);
                    if too_big(
                        &self.view.table,
                        &self.shared.counters,
                        &mut self.ptb,
                        i,
                        tun,
                        p.data(),
                    ) {
                        batch.pop();
                        continue;
                    }
                    match policies.outbound(i, p.data()) {
                        Some(h) => {
                            p.set_sa(h);
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
    fn drain_offloaded(&mut self, i: usize, tun: &Tun, policies: &Policies, batch: &mut Batch) {
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
            if hdr.gso_type == GSO_NONE
                && too_big(
                    &self.view.table,
                    &shared.counters,
                    &mut self.ptb,
                    i,
                    tun,
                    packet,
                )
            {
                continue;
            }
            let Some(sa) = policies.outbound(i, packet) else {
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
            self.watch();
        }
        if self.pending.is_some() {
            // The rest of a super-packet first, then whatever is ready, without waiting.
            if !self.flush_pending(batch) {
                return Recv::Data;
            }
            let Ok(policies) = shared.policies.read() else {
                return Recv::Closed;
            };
            if self.wait(0) {
                self.drain_ready(&policies, batch);
            }
            return Recv::Data;
        }
        // Wait without the policy lock, then take it, so a policy change never waits for an
        // idle wait.
        if !self.wait(POLL_MS) {
            return Recv::Idle;
        }
        let Ok(policies) = shared.policies.read() else {
            return Recv::Closed;
        };
        self.drain_ready(&policies, batch);
        Recv::Data
    }
}

/// Decapsulated inner packets into the TUN of their connection; into a TUN with offloads,
/// in-order TCP segments of one flow go as one super-packet.
pub struct TunSink {
    shared: Arc<Shared>,
    view: DeviceView,
    /// Where ESP with an unknown SPI is reported (invalid-SPI recovery), if anywhere.
    unknown_spi: Option<crate::daemon::recovery::UnknownSpiReports>,
    gro: Gro,
    /// Per packet of the current batch: where it goes. Reused from batch to batch.
    dest: Vec<Dest>,
}

/// Where a decapsulated packet goes.
#[derive(Debug, Clone, Copy)]
enum Dest {
    /// (TUN, queue).
    Tun(usize, usize),
    /// Not a packet to write (dropped earlier), or its TUN is gone.
    None,
    /// Refused by a shared TUN (source not routed to its connection), counted.
    Spoofed,
}

impl Dest {
    fn tun(self) -> Option<(usize, usize)> {
        match self {
            Dest::Tun(t, q) => Some((t, q)),
            _ => None,
        }
    }
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
    pub fn with_unknown_spi_reports(
        mut self,
        r: crate::daemon::recovery::UnknownSpiReports,
    ) -> Self {
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
            let Ok(policies) = shared.policies.read() else {
                return;
            };
            // One map lookup per run of packets of one SA, not per packet.
            let mut last: Option<(SaHandle, Option<(usize, usize)>)> = None;
            self.dest.clear();
            self.dest.extend(batch.packets().iter().map(|p| {
                let Some(h) = p.sa().filter(|_| p.verdict() == Verdict::Ok) else {
                    return Dest::None;
                };
                let at = match last {
                    Some((lh, t)) if lh == h => t,
                    _ => {
                        let t = inbound.get(&h).copied();
                        last = Some((h, t));
                        t
                    }
                };
                let Some((tun, conn)) = at else {
                    return Dest::None;
                };
                if !policies.source_allowed(tun, conn, p.data()) {
                    shared.counters.spoofed.fetch_add(1, Ordering::Relaxed);
                    return Dest::Spoofed;
                }
                match table.tuns.get(tun) {
                    Some(q) => Dest::Tun(tun, queue_for(p.data(), q.len())),
                    None => Dest::None,
                }
            }));
        }
        for (p, d) in batch.packets_mut().iter_mut().zip(&self.dest) {
            if let Some((t, _)) = d.tun() {
                clamp_mss(&table, t, p);
            }
        }
        let dest = &self.dest;
        let tun_at = |i: usize| {
            let (t, q) = dest.get(i).copied()?.tun()?;
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
                .is_some_and(|p| p.verdict() == Verdict::Ok)
                || matches!(self.dest.get(i), Some(Dest::Spoofed))
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
    let fold = |b: &[u8]| b.iter().fold(0u32, |h, &x| h.rotate_left(8) ^ u32::from(x));
    let (addrs, proto, l4) = match IpPacket::new_checked(p) {
        Ok(IpPacket::V4(ip)) => {
            let l4 = (!ip.is_fragment()).then_some(ip.header_len());
            let a = fold(&ip.src_addr().octets()) ^ fold(&ip.dst_addr().octets());
            (a, Some(ip.protocol()), l4)
        }
        Ok(IpPacket::V6(ip)) => {
            let (s, d) = (ip.src_addr().octets(), ip.dst_addr().octets());
            let a = s
                .chunks(4)
                .zip(d.chunks(4))
                .fold(0, |h, (s, d)| h ^ fold(s) ^ fold(d));
            (a, Some(ip.next_header()), Some(IPV6_HEADER))
        }
        Err(_) => return 0,
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
}
