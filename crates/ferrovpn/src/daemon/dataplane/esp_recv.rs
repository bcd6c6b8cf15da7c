//! ESP in: `recvmmsg` from the raw sockets and UDP 4500 straight into the pipeline's buffers
//! (UDP GRO datagrams cut by segment size); IKE found on UDP 4500 goes to the control loop.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Sender;
use ferrovpn_esp::ip::Ipv4Packet;
use ferrovpn_esp::nat_t::{classify, UdpPayload};
use ferrovpn_esp::{Batch, PacketSource, Recv};
use ferrovpn_ike::Datagram;

use super::shared::{poll_in, Shared, IKE_QUEUE, LOG_EVERY, MMSG};
use crate::socket::{enable_udp_gro, RawEsp};
use crate::sys::mmsg::{recvmmsg, Received, RecvMsg};
use crate::sys::socket::socket_addr;

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

/// Coalesced datagrams read per `recvmmsg` on a `UDP_GRO` socket.
const GRO_MSGS: usize = 8;
/// Largest coalesced datagram (a UDP datagram's limit).
const GRO_BUF: usize = 65_535;

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
            let room = self.gro.bufs.len().min(GRO_MSGS);
            let mut bufs = self.gro.bufs.iter_mut();
            let mut msgs: [RecvMsg<'_>; GRO_MSGS] = std::array::from_fn(|_| match bufs.next() {
                Some(b) => RecvMsg::new(b),
                None => RecvMsg::empty(),
            });
            if room == 0 {
                return;
            }
            let mut meta = [Received::default(); GRO_MSGS];
            let got = recvmmsg(fd, &mut msgs[..room], &mut meta, true);
            for (k, r) in meta.iter().take(got).enumerate() {
                if r.truncated || r.len == 0 {
                    continue;
                }
                self.gro.pending.push_back(GroDatagram {
                    buf: k,
                    len: r.len,
                    segment: r.gro_segment.unwrap_or(r.len),
                    offset: 0,
                    from: r.from,
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
        let mut meta = [Received::default(); MMSG];
        let mut yielded = false;
        while !batch.is_full() {
            let base = batch.len();
            let mut room = 0;
            while room < MMSG && batch.push().is_some() {
                room += 1;
            }
            if room == 0 {
                return;
            }
            let got = {
                // Disjoint borrows of the new packets' buffers, held until the call returns.
                // One buffer per packet, raw IPv4 included: its IP header lands in front of
                // the ESP packet and is stripped below.
                let pkts = batch
                    .packets_mut()
                    .get_mut(base..base + room)
                    .unwrap_or_default();
                let mut bufs = pkts.iter_mut();
                let mut msgs: [RecvMsg<'_>; MMSG] = std::array::from_fn(|_| match bufs.next() {
                    Some(p) => RecvMsg::new(p.spare_mut()),
                    None => RecvMsg::empty(),
                });
                // Raw sockets name the source too: reports of unknown SPIs need it.
                recvmmsg(fd, &mut msgs[..room], &mut meta[..room], false)
            };
            // Keep the ESP packets at the front of what was pushed, in arrival order.
            let mut kept = 0;
            for k in 0..got {
                let Some(r) = meta.get(k) else {
                    continue;
                };
                let (len, truncated, a) = (r.len, r.truncated, &r.from);
                let Some(p) = batch.packets_mut().get_mut(base + k) else {
                    continue;
                };
                p.source = socket_addr(a).map(|a| a.ip());
                let esp = if truncated {
                    false
                } else if raw_v4 {
                    // The ESP packet starts after the IPv4 header, options included.
                    p.set_len(len);
                    match Ipv4Packet::new_checked(p.data()).map(|ip| ip.header_len()) {
                        Ok(ihl) => p.strip_front(ihl),
                        Err(_) => false,
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
                // Raw sockets get one skb per packet, so a sender's batch trickles in and a
                // short read here means small coalesced TUN writes and a wake-up per few
                // packets. Let the sender run once and read again before going back to poll.
                if got > 0 && udp_local.is_none() && !yielded && batch.len() < MMSG / 2 {
                    yielded = true;
                    std::thread::yield_now();
                    continue;
                }
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
#[cfg(test)]
mod tests {
    use super::super::esp_send::{SendList, Target};
    use super::super::shared::tests::udp_pair;
    use super::super::shared::{ike_queue, Devices, IoCounters, TunTable};
    use super::*;
    use crate::sys::socket::sockaddr;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicU64;
    use std::sync::RwLock;

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
            policies: RwLock::new(Default::default()),
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
            list.push(Target::Udp(tx.as_raw_fd()), p, local, &errors);
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

    /// Raw IPv4 ESP between two namespaces: each packet is read into one buffer and its outer
    /// header stripped, IPv4 options included (a 24-byte header sent by hand), in order, with
    /// the sender as source.
    #[test]
    fn raw_esp_arrives_without_its_outer_header_options_included() {
        use crate::netns::{require_root, NetNs};
        use crate::socket::{RawEsp, SocketOptions};
        use std::net::{IpAddr, Ipv4Addr};
        if !require_root("esp_recv::raw_esp_arrives_without_its_outer_header") {
            return;
        }
        let (a, b) = NetNs::pair("rcv").unwrap();
        let (la, lb) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let opts = SocketOptions {
            nonblocking: true,
            ..Default::default()
        };
        let rx = b.run(|| RawEsp::open(lb.into(), &opts).unwrap());
        let tx = a.run(|| RawEsp::open(la.into(), &opts).unwrap());
        let h = tx.hdrincl().unwrap();
        let shared = Arc::new(Shared {
            devices: Devices::new(TunTable::default()),
            policies: RwLock::new(Default::default()),
            inbound: RwLock::new(HashMap::new()),
            raw: HashMap::from([(IpAddr::V4(lb), Arc::new(rx))]),
            nat_t: HashMap::new(),
            counters: IoCounters::default(),
        });
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (ike_tx, _ike_rx) = ike_queue();
        let mut src = EspSource::new(shared, ike_tx, waker);
        let esp = |i: u8, n: usize| {
            let mut p = vec![i; n];
            p[..8].copy_from_slice(&[0, 0, 0x10, 1, 0, 0, 0, i]);
            p
        };
        let dst = SocketAddr::new(IpAddr::V4(lb), 0);
        let errors = AtomicU64::new(0);
        let (first, last) = (esp(1, 1400), esp(3, 60));
        let mut list = SendList::new();
        list.push(Target::Hdrincl(h), &first, dst, &errors);
        list.flush(&errors);
        // IHL 6: four bytes of options (NOP, NOP, NOP, end of list) in front of the ESP.
        let with_options = esp(2, 200);
        let mut wire = ferrovpn_esp::ip::ipv4_header(la, lb, 50, 64, 224, false).to_vec();
        wire[0] = 0x46;
        wire.extend([1, 1, 1, 0]);
        wire.extend(&with_options);
        crate::sys::socket::send_to(h.fd, &wire, dst).unwrap();
        let mut list = SendList::new();
        list.push(Target::Hdrincl(h), &last, dst, &errors);
        list.flush(&errors);
        assert_eq!(errors.load(Ordering::Relaxed), 0);
        let mut batch = Batch::new(64, 2048);
        let mut got = Vec::new();
        for _ in 0..50 {
            if got.len() >= 3 {
                break;
            }
            batch.clear();
            src.recv_batch(&mut batch);
            for p in batch.packets() {
                assert_eq!(p.source, Some(IpAddr::V4(la)));
                got.push(p.data().to_vec());
            }
        }
        assert_eq!(got, vec![first, with_options, last]);
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
        // The keepalive our IKE side sends (RFC 3948 §2.3) is dropped here, uncounted.
        let keepalive = ferrovpn_ike::Datagram::nat_keepalive(local, local);
        tx.send_to(&keepalive.data, local).unwrap();
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
}
