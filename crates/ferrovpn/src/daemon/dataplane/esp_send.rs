//! ESP out: batches of encapsulated packets to the raw and UDP 4500 sockets with `sendmmsg`,
//! joining runs of equal-sized ESP-in-UDP packets to one peer with UDP GSO, and writing the
//! outer IPv4 header of raw ESP ourselves for the send-only `IPPROTO_RAW` socket.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ferrovpn_esp::ip::{ipv4_header, IPV4_MIN_HEADER};
use ferrovpn_esp::{Batch, Encap, PacketSink};

use super::shared::{wait_writable, Shared, MMSG};
use crate::socket::{HdrinclTx, IPPROTO_ESP};
use crate::sys::mmsg::{sendmmsg, SendMsg};
use crate::sys::socket::send_to;

/// Largest UDP GSO send: the kernel's UDP_MAX_SEGMENTS and a 64 KiB datagram.
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;
/// How long a sink waits for room in a full socket send buffer before dropping.
const SEND_WAIT_MS: i32 = 5;

/// Cleared for the whole process when the kernel answers a UDP GSO send with EIO (no checksum
/// offload on the path).
static UDP_GSO: AtomicBool = AtomicBool::new(true);

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

/// The socket a [`SendList`] sends through, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// UDP 4500: equal-sized packets to one peer join UDP GSO runs.
    Udp(RawFd),
    /// A raw protocol 50 socket: the kernel writes the IP header.
    Raw(RawFd),
    /// A send-only `IPPROTO_RAW` socket: each packet goes out behind an IPv4 header we write
    /// (its own iovec); one larger than the device MTU through the protocol 50 socket.
    Hdrincl(HdrinclTx),
}

impl Target {
    fn fd(&self) -> RawFd {
        match self {
            Target::Udp(fd) | Target::Raw(fd) => *fd,
            Target::Hdrincl(tx) => tx.fd,
        }
    }
}

/// Up to `MMSG` outgoing datagrams for one socket, sent with one `sendmmsg`. The slices borrow
/// the packet data for `'a`, so the borrow checker keeps every queued buffer alive (and
/// unmodified) until the list is flushed or dropped.
pub(super) struct SendList<'a> {
    to: Target,
    msgs: [Option<Msg>; MMSG],
    nmsgs: usize,
    iovs: [IoSlice<'a>; MMSG],
    niovs: usize,
}

impl<'a> SendList<'a> {
    pub(super) fn new() -> Self {
        SendList {
            to: Target::Raw(-1),
            msgs: [None; MMSG],
            nmsgs: 0,
            iovs: [IoSlice::new(&[]); MMSG],
            niovs: 0,
        }
    }

    /// Queues `data` (borrowed as long as the list lives) for `dst` through `to`, flushing
    /// first when the list is full or belongs to another socket.
    pub(super) fn push(&mut self, to: Target, data: &'a [u8], dst: SocketAddr, errors: &AtomicU64) {
        if self.nmsgs > 0 && (to != self.to || self.niovs == MMSG) {
            self.flush(errors);
        }
        self.to = to;
        let iov = IoSlice::new(data);
        // Extend the last message into (or as) a UDP GSO run: equal-sized segments to one
        // peer, a shorter one may end it.
        if matches!(to, Target::Udp(_)) && UDP_GSO.load(Ordering::Relaxed) {
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
    pub(super) fn flush(&mut self, errors: &AtomicU64) {
        let n = self.nmsgs;
        if n == 0 {
            return;
        }
        let mut out = [SendMsg {
            first: 0,
            count: 0,
            dst: SocketAddr::from(([0, 0, 0, 0], 0)),
            segment: 0,
        }; MMSG];
        for (o, m) in out.iter_mut().zip(&self.msgs).take(n) {
            if let Some(m) = m {
                *o = SendMsg {
                    first: m.first_iov,
                    count: m.iovs,
                    dst: m.dst,
                    segment: if m.segment > 0 && m.iovs > 1 {
                        m.segment as u16
                    } else {
                        0
                    },
                };
            }
        }
        // IP_HDRINCL: message k is [its IPv4 header, its ESP packet] (one packet per message,
        // no GSO on raw sockets); the headers live here until the sends below return.
        let mut heads = [[0u8; IPV4_MIN_HEADER]; MMSG];
        let mut wide = [IoSlice::new(&[]); 2 * MMSG];
        let iovs = match self.to {
            Target::Hdrincl(tx) => {
                for (h, o) in heads.iter_mut().zip(out.iter()).take(n) {
                    let data = self.iovs.get(o.first).map_or(0, |d| d.len());
                    if let std::net::IpAddr::V4(dst) = o.dst.ip() {
                        // The kernel fills in the total length itself; too long fails anyway.
                        let len = data.saturating_add(IPV4_MIN_HEADER);
                        let len = u16::try_from(len).unwrap_or(u16::MAX);
                        *h = ipv4_header(tx.src, dst, IPPROTO_ESP as u8, tx.ttl, len, false);
                    }
                }
                for ((pair, h), o) in wide
                    .chunks_exact_mut(2)
                    .zip(heads.iter())
                    .zip(out.iter())
                    .take(n)
                {
                    if let ([ph, pd], Some(d)) = (pair, self.iovs.get(o.first)) {
                        *ph = IoSlice::new(h);
                        *pd = *d;
                    }
                }
                for (k, o) in out.iter_mut().take(n).enumerate() {
                    o.first = 2 * k;
                    o.count = 2;
                }
                wide.get(..2 * n).unwrap_or_default()
            }
            Target::Udp(_) | Target::Raw(_) => self.iovs.get(..self.niovs).unwrap_or_default(),
        };
        let fd = self.to.fd();
        let mut done = 0;
        let mut waited = false;
        let mut err = io::Error::from_raw_os_error(0);
        while done < n {
            let r = match sendmmsg(fd, iovs, out.get(done..n).unwrap_or_default()) {
                Ok(0) => {
                    err = io::Error::last_os_error();
                    0
                }
                Ok(r) => r,
                Err(e) => {
                    err = e;
                    0
                }
            };
            if r > 0 {
                done += r;
                waited = false;
                continue;
            }
            let raw = err.raw_os_error().unwrap_or(0);
            if (raw == libc::EAGAIN || raw == libc::ENOBUFS) && !waited {
                waited = true;
                wait_writable(fd, SEND_WAIT_MS);
                continue;
            }
            if let Some(m) = self.msgs.get(done).copied().flatten() {
                let too_big = raw == libc::EINVAL || raw == libc::EMSGSIZE;
                if let (Target::Hdrincl(tx), libc::EMSGSIZE) = (self.to, raw) {
                    // Larger than the device MTU: the protocol 50 socket fragments it.
                    self.send_each(tx.fallback, m, errors);
                } else if m.segment > 0 && m.iovs > 1 && (raw == libc::EIO || too_big) {
                    // EIO: no checksum offload for GSO on this path, send one by one from now
                    // on. EINVAL, or EMSGSIZE on newer kernels: this run did not fit (e.g.
                    // segment larger than the MTU, which a single datagram may exceed as
                    // fragments), send it one by one and keep GSO for the next.
                    if raw == libc::EIO {
                        UDP_GSO.store(false, Ordering::Relaxed);
                    }
                    self.send_each(fd, m, errors);
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

    /// Sends the packets of a message one datagram at a time through `fd`.
    fn send_each(&self, fd: RawFd, m: Msg, errors: &AtomicU64) {
        for iov in self.iovs.iter().skip(m.first_iov).take(m.iovs) {
            if send_to(fd, iov, m.dst).is_err() {
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
            let Some((t, encap)) = p.tunnel() else {
                continue;
            };
            let (to, dst) = match encap {
                Encap::Raw => match self.shared.raw.get(&t.local) {
                    Some(raw) => {
                        let to = match (raw.hdrincl(), t.remote) {
                            (Some(tx), std::net::IpAddr::V4(_)) => Target::Hdrincl(tx),
                            _ => Target::Raw(raw.as_raw_fd()),
                        };
                        (to, SocketAddr::new(t.remote, 0))
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
                Encap::Udp { remote_port, .. } => match self.shared.nat_t.get(&t.local) {
                    Some(s) => (
                        Target::Udp(s.as_raw_fd()),
                        SocketAddr::new(t.remote, remote_port),
                    ),
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                },
            };
            list.push(to, p.data(), dst, errors);
        }
        list.flush(errors);
    }
}
#[cfg(test)]
mod tests {
    use super::super::shared::tests::udp_pair;
    use super::*;

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
            l.push(Target::Udp(-1), &big, peer, &errors);
        }
        // A shorter packet ends the run; the next one starts a new message.
        l.push(Target::Udp(-1), &small, peer, &errors);
        l.push(Target::Udp(-1), &big, peer, &errors);
        // Another peer, then raw ESP: never joined.
        l.push(Target::Udp(-1), &big, other, &errors);
        assert_eq!(shape(&l), vec![(4, 1400), (1, 0), (1, 0)]);
        let mut raw = SendList::new();
        raw.push(Target::Raw(-1), &big, peer, &errors);
        raw.push(Target::Raw(-1), &big, peer, &errors);
        assert_eq!(shape(&raw), vec![(1, 0), (1, 0)]);
    }

    #[test]
    fn gso_runs_stop_at_the_kernel_limits() {
        let errors = AtomicU64::new(0);
        let peer: SocketAddr = "192.0.2.2:4500".parse().unwrap();
        let p = vec![0u8; 1500];
        let mut l = SendList::new();
        for _ in 0..50 {
            l.push(Target::Udp(-1), &p, peer, &errors);
        }
        let s = shape(&l);
        assert!(s.iter().all(|&(n, _)| n * 1500 <= GSO_MAX_BYTES));
        assert_eq!(s.iter().map(|&(n, _)| n).sum::<usize>(), 50);
        assert_eq!(s[0], (GSO_MAX_BYTES / 1500, 1500));
    }
    /// Raw ESP through the send-only IPPROTO_RAW socket between two namespaces (1500-byte
    /// veth): packets that fit leave behind the header we wrote (our source, the default TTL,
    /// no DF, protocol 50); one larger than the MTU is refused there and goes out through the
    /// protocol 50 socket in fragments. All arrive whole and in order, none counted as errors.
    #[test]
    fn hdrincl_sends_keep_the_outer_header_and_fragment_what_is_too_big() {
        use crate::netns::{require_root, NetNs};
        use crate::socket::{RawEsp, SocketOptions};
        use ferrovpn_esp::ip::Ipv4Packet;
        use std::net::{IpAddr, Ipv4Addr};
        if !require_root("esp_send::hdrincl_sends_keep_the_outer_header") {
            return;
        }
        let (a, b) = NetNs::pair("hdr").unwrap();
        let (la, lb) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let opts = SocketOptions::default();
        let rx = b.run(|| RawEsp::open(lb.into(), &opts).unwrap());
        let tx = a.run(|| RawEsp::open(la.into(), &opts).unwrap());
        let h = tx.hdrincl().expect("an IPv4 RawEsp has a send-only socket");
        let pkts: Vec<Vec<u8>> = [100usize, 1480, 3000, 1400, 1481, 60]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut p = vec![i as u8; n];
                p[..4].copy_from_slice(&0x1234u32.to_be_bytes());
                p
            })
            .collect();
        let errors = AtomicU64::new(0);
        let dst = SocketAddr::new(IpAddr::V4(lb), 0);
        let mut l = SendList::new();
        for p in &pkts {
            l.push(Target::Hdrincl(h), p, dst, &errors);
        }
        l.flush(&errors);
        assert_eq!(errors.load(Ordering::Relaxed), 0);
        let mut buf = vec![0u8; 4096];
        for p in &pkts {
            assert!(crate::sys::fd::wait(rx.as_raw_fd(), libc::POLLIN, 5000));
            let d = rx.recv(&mut buf).unwrap();
            assert_eq!(d.src, IpAddr::V4(la));
            assert_eq!(&buf[d.offset..d.len], &p[..], "packet of {} bytes", p.len());
            let ip = Ipv4Packet::new_checked(&buf[..d.offset]).unwrap();
            assert_eq!((ip.protocol(), ip.ttl()), (50, h.ttl));
            assert_eq!(buf[6] & 0x40, 0, "DF set on {} bytes", p.len());
        }
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
            l.push(Target::Udp(tx.as_raw_fd()), p, dst, &errors);
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
}
