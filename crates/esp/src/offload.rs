//! TUN offloads (Linux `include/uapi/linux/virtio_net.h`, Documentation/networking/
//! segmentation-offloads.rst): the `virtio_net_hdr` in front of every packet of a TUN opened with
//! `IFF_VNET_HDR`, checksum completion (`NEEDS_CSUM`), TCP segmentation of a GSO super-packet
//! into MSS-sized IP packets (RFC 9293 §3.1, RFC 791 §3.1, RFC 8200 §3), and the reverse:
//! coalescing in-order segments of one TCP flow into one super-packet (GRO).
//!
//! Pure functions on byte slices, no I/O. Everything the kernel (or a peer, for coalescing) put
//! in a header is checked before use; bad values are an [`OffloadError`], never a panic.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use thiserror::Error;

use crate::ip::{IpError, IpPacket, Ipv4Packet, Ipv6Packet};

/// Length of `struct virtio_net_hdr` (no `num_buffers`), the TUN default (`TUNSETVNETHDRSZ`).
pub const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
pub const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_*`: what kind of super-packet this is.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV4: u8 = 1;
pub const GSO_UDP: u8 = 3;
pub const GSO_TCPV6: u8 = 4;
pub const GSO_UDP_L4: u8 = 5;
/// Flag bit of `gso_type`: the TCP segments carry ECN CWR.
pub const GSO_ECN: u8 = 0x80;
/// Most segments one coalesced super-packet carries.
pub const MAX_SEGMENTS: usize = 64;

const IPPROTO_TCP: u8 = 6;
const IPV4_MIN: usize = crate::ip::IPV4_MIN_HEADER;
const IPV6_LEN: usize = crate::ip::IPV6_HEADER;
const TCP_MIN: usize = 20;
/// Offset of the checksum inside the TCP header.
const TCP_CSUM: usize = 16;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const CWR: u8 = 0x80;

/// Why a packet from the TUN (or one to coalesce) could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OffloadError {
    #[error("shorter than its headers")]
    Truncated,
    #[error("GSO type {0} not supported")]
    UnsupportedGso(u8),
    #[error("GSO size 0")]
    ZeroGsoSize,
    #[error("IP version does not match the GSO type")]
    IpVersion,
    #[error("not a TCP packet without IPv6 extension headers")]
    NotTcp,
    #[error("bad IP header length")]
    IpHeaderLength,
    #[error("bad TCP header length")]
    TcpHeaderLength,
    #[error("checksum start/offset outside the packet")]
    ChecksumOffsets,
    #[error("output buffer too small")]
    NoRoom,
}

/// The virtio-net header (fields in host byte order, as a TUN without `TUNSETVNETBE` uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Splits a TUN read into its header and the IP packet after it.
    pub fn split(buf: &[u8]) -> Result<(VnetHdr, &[u8]), OffloadError> {
        let (h, packet) = buf
            .split_first_chunk::<VNET_HDR_LEN>()
            .ok_or(OffloadError::Truncated)?;
        let [flags, gso_type, h0, h1, g0, g1, s0, s1, o0, o1] = *h;
        let hdr = VnetHdr {
            flags,
            gso_type,
            hdr_len: u16::from_ne_bytes([h0, h1]),
            gso_size: u16::from_ne_bytes([g0, g1]),
            csum_start: u16::from_ne_bytes([s0, s1]),
            csum_offset: u16::from_ne_bytes([o0, o1]),
        };
        Ok((hdr, packet))
    }

    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

// ---- Internet checksum (RFC 1071) ----

/// `at..at + len`, saturating: a `get` with it fails instead of the sum overflowing.
fn span(at: usize, len: usize) -> std::ops::Range<usize> {
    at..at.saturating_add(len)
}

/// Adds `data` as big-endian 16-bit words (odd tail padded with zero) to `acc`. The sums
/// cannot wrap: a packet is far below 2^32 words of at most 2^32.
pub(crate) fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        if let &[a, b, c, d] = w {
            acc = acc.wrapping_add(u64::from(u32::from_be_bytes([a, b, c, d])));
        }
    }
    let mut rest = words.remainder().chunks(2);
    for c in &mut rest {
        let hi = c.first().copied().unwrap_or(0);
        let lo = c.get(1).copied().unwrap_or(0);
        acc = acc.wrapping_add(u64::from(u16::from_be_bytes([hi, lo])));
    }
    acc
}

pub(crate) fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff).wrapping_add(acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data` (RFC 1071), as stored in a header.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Sum of the TCP pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) of an IPv4 or IPv6 packet.
fn pseudo_header(ip: &[u8], v6: bool, tcp_len: usize) -> u64 {
    let addrs = if v6 { ip.get(8..40) } else { ip.get(12..20) };
    sum(
        addrs.unwrap_or_default(),
        u64::from(IPPROTO_TCP).wrapping_add(tcp_len as u64),
    )
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    if let Some(d) = b.get_mut(span(at, 2)) {
        d.copy_from_slice(&v.to_be_bytes());
    }
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    match b.get(span(at, 2)) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn get_u32(b: &[u8], at: usize) -> u32 {
    match b.get(span(at, 4)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Finishes a `NEEDS_CSUM` checksum: the field at `csum_start + csum_offset` holds the
/// pseudo-header sum, the Internet checksum from `csum_start` to the end replaces it.
pub fn complete_checksum(hdr: &VnetHdr, packet: &mut [u8]) -> Result<(), OffloadError> {
    if hdr.flags & NEEDS_CSUM == 0 {
        return Ok(());
    }
    let start = usize::from(hdr.csum_start);
    let at = start.saturating_add(usize::from(hdr.csum_offset));
    if at.saturating_add(2) > packet.len() {
        return Err(OffloadError::ChecksumOffsets);
    }
    let c = checksum(packet.get(start..).unwrap_or_default());
    put_u16(packet, at, c);
    Ok(())
}

// ---- TCP segmentation (GSO) ----

/// IP and TCP header lengths of a TCP packet, checked against its length.
fn tcp_headers(packet: &[u8], v6: bool) -> Result<(usize, usize), OffloadError> {
    let ip = if v6 {
        Ipv6Packet::new_checked(packet).map(IpPacket::V6)
    } else {
        Ipv4Packet::new_checked(packet).map(IpPacket::V4)
    }
    .map_err(|e| match e {
        IpError::Truncated => OffloadError::Truncated,
        IpError::HeaderLength => OffloadError::IpHeaderLength,
        IpError::Version => OffloadError::IpVersion,
    })?;
    if ip.protocol() != IPPROTO_TCP {
        return Err(OffloadError::NotTcp);
    }
    let ip_len = ip.header_len();
    let doff = packet
        .get(ip_len.saturating_add(12))
        .map(|b| usize::from(b >> 4).saturating_mul(4))
        .ok_or(OffloadError::Truncated)?;
    if doff < TCP_MIN {
        return Err(OffloadError::TcpHeaderLength);
    }
    if packet.len() < ip_len.saturating_add(doff) {
        return Err(OffloadError::Truncated);
    }
    Ok((ip_len, doff))
}

/// Cuts one packet read from the TUN into the IP packets it stands for: a TCP GSO super-packet
/// into MSS-sized segments, anything else into itself with its checksum completed. Keeps no
/// borrow, so a reader can stop when its batch is full and go on with the next one.
#[derive(Debug, Clone)]
pub struct Segmenter {
    hdr: VnetHdr,
    /// None: not TCP GSO, one packet passed through.
    tcp: Option<TcpGso>,
    count: usize,
    next: usize,
}

#[derive(Debug, Clone, Copy)]
struct TcpGso {
    v6: bool,
    ip_len: usize,
    hdr_len: usize,
    mss: usize,
    payload: usize,
}

impl Segmenter {
    /// Checks `hdr` against `packet` (the bytes after the virtio-net header).
    pub fn new(hdr: &VnetHdr, packet: &[u8]) -> Result<Segmenter, OffloadError> {
        let v6 = match hdr.gso_type & !GSO_ECN {
            GSO_NONE => {
                if hdr.flags & NEEDS_CSUM != 0
                    && span(usize::from(hdr.csum_start), usize::from(hdr.csum_offset))
                        .end
                        .saturating_add(2)
                        > packet.len()
                {
                    return Err(OffloadError::ChecksumOffsets);
                }
                return Ok(Segmenter {
                    hdr: *hdr,
                    tcp: None,
                    count: 1,
                    next: 0,
                });
            }
            GSO_TCPV4 => false,
            GSO_TCPV6 => true,
            other => return Err(OffloadError::UnsupportedGso(other)),
        };
        if hdr.gso_size == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        if crate::ip::version(packet) != Some(if v6 { 6 } else { 4 }) {
            return Err(OffloadError::IpVersion);
        }
        let (ip_len, tcp_len) = tcp_headers(packet, v6)?;
        if hdr.flags & NEEDS_CSUM != 0
            && (usize::from(hdr.csum_start) != ip_len || usize::from(hdr.csum_offset) != TCP_CSUM)
        {
            return Err(OffloadError::ChecksumOffsets);
        }
        // tcp_headers checked ip_len + tcp_len <= packet.len().
        let hdr_len = ip_len.saturating_add(tcp_len);
        let mss = usize::from(hdr.gso_size);
        let payload = packet.len().saturating_sub(hdr_len);
        Ok(Segmenter {
            hdr: *hdr,
            tcp: Some(TcpGso {
                v6,
                ip_len,
                hdr_len,
                mss,
                payload,
            }),
            count: payload.div_ceil(mss).max(1),
            next: 0,
        })
    }

    /// Packets this super-packet becomes in all.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Packets not yet written out.
    pub fn remaining(&self) -> usize {
        self.count.saturating_sub(self.next)
    }

    /// Writes the next packet into `out` and returns its length; `None` when all are out.
    /// `packet` must be the one given to [`Segmenter::new`].
    pub fn next_into(
        &mut self,
        packet: &[u8],
        out: &mut [u8],
    ) -> Option<Result<usize, OffloadError>> {
        if self.next >= self.count {
            return None;
        }
        let i = self.next;
        self.next = self.next.saturating_add(1);
        Some(match self.tcp {
            None => self.passthrough(packet, out),
            Some(t) => t.segment(i, self.count, packet, out),
        })
    }

    fn passthrough(&self, packet: &[u8], out: &mut [u8]) -> Result<usize, OffloadError> {
        let dst = out.get_mut(..packet.len()).ok_or(OffloadError::NoRoom)?;
        dst.copy_from_slice(packet);
        complete_checksum(&self.hdr, dst)?;
        Ok(packet.len())
    }
}

impl TcpGso {
    fn segment(
        &self,
        i: usize,
        count: usize,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<usize, OffloadError> {
        // i < count = payload / mss rounded up, so i * mss <= payload (< 64 KiB).
        let offset = i.saturating_mul(self.mss);
        let from = self.hdr_len.saturating_add(offset);
        let len = self.mss.min(self.payload.saturating_sub(offset));
        let total = self.hdr_len.saturating_add(len);
        let (Some(headers), Some(data), Some(dst)) = (
            packet.get(..self.hdr_len),
            packet.get(span(from, len)),
            out.get_mut(..total),
        ) else {
            return Err(if out.len() < total {
                OffloadError::NoRoom
            } else {
                OffloadError::Truncated
            });
        };
        let (dh, dd) = dst.split_at_mut(self.hdr_len);
        dh.copy_from_slice(headers);
        dd.copy_from_slice(data);
        let ip = self.ip_len;
        if self.v6 {
            put_u16(dst, 4, total.saturating_sub(IPV6_LEN) as u16);
        } else {
            put_u16(dst, 2, total as u16);
            put_u16(dst, 4, get_u16(dst, 4).wrapping_add(i as u16));
            put_u16(dst, 10, 0);
            let c = checksum(dst.get(..ip).unwrap_or_default());
            put_u16(dst, 10, c);
        }
        let seq = get_u32(dst, ip.saturating_add(4)).wrapping_add(offset as u32);
        if let Some(s) = dst.get_mut(span(ip.saturating_add(4), 4)) {
            s.copy_from_slice(&seq.to_be_bytes());
        }
        if let Some(f) = dst.get_mut(ip.saturating_add(13)) {
            if i.saturating_add(1) < count {
                *f &= !(FIN | PSH);
            }
            if i > 0 {
                *f &= !CWR;
            }
        }
        let csum = ip.saturating_add(TCP_CSUM);
        put_u16(dst, csum, 0);
        let acc = pseudo_header(dst, self.v6, total.saturating_sub(ip));
        let c = !fold(sum(dst.get(ip..).unwrap_or_default(), acc));
        put_u16(dst, csum, c);
        Ok(total)
    }
}

// ---- TCP coalescing (GRO) ----

/// A TCP segment as coalescing sees it.
#[derive(Debug, Clone, Copy)]
struct Seg {
    v6: bool,
    ip_len: usize,
    hdr_len: usize,
    payload: usize,
    seq: u32,
    flags: u8,
    /// Plain data segment (ACK, maybe PSH, payload, valid checksums, no IPv4 options or
    /// fragmentation): may join a super-packet.
    mergeable: bool,
}

/// The flow and headers of a TCP packet; None for anything else.
fn parse_seg(p: &[u8]) -> Option<Seg> {
    let ip = IpPacket::new_checked(p).ok()?;
    let v6 = ip.is_ipv6();
    let (ip_len, tcp_len) = tcp_headers(p, v6).ok()?;
    if ip.total_len() != p.len() {
        return None;
    }
    // tcp_headers checked ip_len + tcp_len <= p.len().
    let hdr_len = ip_len.saturating_add(tcp_len);
    let flags = *p.get(ip_len.saturating_add(13))?;
    let payload = p.len().saturating_sub(hdr_len);
    let plain_v4 = match ip {
        IpPacket::V6(_) => true,
        IpPacket::V4(v4) => ip_len == IPV4_MIN && !v4.is_fragment(),
    };
    let mergeable = plain_v4
        && payload > 0
        && flags & !(ACK | PSH) == 0
        && flags & ACK != 0
        && (v6 || checksum(p.get(..ip_len)?) == 0)
        && !fold(sum(
            p.get(ip_len..)?,
            pseudo_header(p, v6, p.len().saturating_sub(ip_len)),
        )) == 0;
    Some(Seg {
        v6,
        ip_len,
        hdr_len,
        payload,
        seq: get_u32(p, ip_len.saturating_add(4)),
        flags,
        mergeable,
    })
}

/// Same 5-tuple (addresses and ports).
fn same_flow(a: &[u8], sa: &Seg, b: &[u8], sb: &Seg) -> bool {
    if sa.v6 != sb.v6 {
        return false;
    }
    let addrs = if sa.v6 { 8..40 } else { 12..20 };
    a.get(addrs.clone()) == b.get(addrs) && a.get(span(sa.ip_len, 4)) == b.get(span(sb.ip_len, 4))
}

/// Headers that must be equal for two segments to be one stream of bytes: IP TOS/TTL/DF
/// (IPv6 traffic class, flow label, hop limit), TCP ACK, window, options.
fn same_headers(a: &[u8], sa: &Seg, b: &[u8], sb: &Seg) -> bool {
    if sa.hdr_len != sb.hdr_len {
        return false;
    }
    let ip_same = if sa.v6 {
        a.get(..4) == b.get(..4) && a.get(7) == b.get(7)
    } else {
        a.get(1) == b.get(1) && a.get(6) == b.get(6) && a.get(8) == b.get(8)
    };
    let t = sa.ip_len;
    ip_same
        && a.get(span(t.saturating_add(8), 4)) == b.get(span(t.saturating_add(8), 4))
        && a.get(span(t.saturating_add(14), 2)) == b.get(span(t.saturating_add(14), 2))
        && a.get(t.saturating_add(TCP_MIN)..sa.hdr_len)
            == b.get(t.saturating_add(TCP_MIN)..sb.hdr_len)
}

/// What the writer does with packet `i` of a planned batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not written (dropped before, or empty).
    Skip,
    /// Written alone, with a zero virtio-net header.
    Single,
    /// First of a super-packet: written with [`Gro::merge_headers`] and the payloads of
    /// [`Gro::members`].
    Head,
    /// Its payload travels in the super-packet of an earlier head.
    Member,
}

#[derive(Debug, Clone, Copy)]
struct Group {
    head: usize,
    seg: Seg,
    last: usize,
    last_seg: Seg,
    count: usize,
    payload: usize,
    closed: bool,
    psh: bool,
}

/// Plans which packets of a batch go into the TUN together, as the kernel's TCP GRO would:
/// segments of one flow, in order, contiguous in sequence space, with equal headers, only ACK
/// (and PSH on the last), equal sizes but for the last. Reused from batch to batch.
#[derive(Debug, Default)]
pub struct Gro {
    roles: Vec<Role>,
    /// Next member of the same super-packet, per packet (`usize::MAX`: none).
    next: Vec<usize>,
    /// Group of each head, per packet.
    group_of: Vec<usize>,
    groups: Vec<Group>,
    /// Groups that may still grow.
    open: Vec<usize>,
}

/// Most flows tracked at once in one batch; packets of further flows are written singly.
const MAX_OPEN_FLOWS: usize = 16;
const NONE: usize = usize::MAX;

impl Gro {
    pub fn new() -> Self {
        Self::default()
    }

    /// Plans a batch of `n` packets; `packet(i)` is `None` for packets not to be coalesced
    /// (dropped, or bound for a TUN without offloads).
    pub fn plan<'a>(&mut self, n: usize, packet: impl Fn(usize) -> Option<&'a [u8]>) {
        self.roles.clear();
        self.roles.resize(n, Role::Skip);
        self.next.clear();
        self.next.resize(n, NONE);
        self.group_of.clear();
        self.group_of.resize(n, NONE);
        self.groups.clear();
        self.open.clear();
        for i in 0..n {
            let Some(p) = packet(i) else { continue };
            if p.is_empty() {
                continue;
            }
            if let Some(r) = self.roles.get_mut(i) {
                *r = Role::Single;
            }
            let Some(seg) = parse_seg(p) else { continue };
            let flow = self.open.iter().position(|&g| {
                self.groups.get(g).is_some_and(|gr| {
                    packet(gr.head).is_some_and(|h| same_flow(h, &gr.seg, p, &seg))
                })
            });
            if let Some(k) = flow {
                let g = self.open.get(k).copied().unwrap_or(NONE);
                let head = self.groups.get(g).and_then(|gr| packet(gr.head));
                if head.is_some_and(|h| self.try_append(g, i, h, p, &seg)) {
                    continue;
                }
                // Anything else of this flow ends its super-packet: nothing may overtake.
                self.open.swap_remove(k);
            }
            if seg.mergeable && self.open.len() < MAX_OPEN_FLOWS {
                if let Some(x) = self.group_of.get_mut(i) {
                    *x = self.groups.len();
                }
                self.groups.push(Group {
                    head: i,
                    seg,
                    last: i,
                    last_seg: seg,
                    count: 1,
                    payload: seg.payload,
                    closed: seg.flags & PSH != 0,
                    psh: seg.flags & PSH != 0,
                });
                if seg.flags & PSH == 0 {
                    self.open.push(self.groups.len().saturating_sub(1));
                }
            }
        }
        for g in &self.groups {
            if g.count > 1 {
                if let Some(r) = self.roles.get_mut(g.head) {
                    *r = Role::Head;
                }
            }
        }
    }

    fn try_append(&mut self, g: usize, i: usize, head: &[u8], p: &[u8], seg: &Seg) -> bool {
        let Some(gr) = self.groups.get(g).copied() else {
            return false;
        };
        let fits = seg.mergeable
            && !gr.closed
            && gr.count < MAX_SEGMENTS
            && seg.payload <= gr.seg.payload
            && gr
                .seg
                .hdr_len
                .saturating_add(gr.payload)
                .saturating_add(seg.payload)
                <= usize::from(u16::MAX)
            && seg.seq == gr.last_seg.seq.wrapping_add(gr.last_seg.payload as u32)
            && same_headers(head, &gr.seg, p, seg);
        if !fits {
            return false;
        }
        if let Some(n) = self.next.get_mut(gr.last) {
            *n = i;
        }
        if let Some(r) = self.roles.get_mut(i) {
            *r = Role::Member;
        }
        let psh = seg.flags & PSH != 0;
        if let Some(gm) = self.groups.get_mut(g) {
            gm.last = i;
            gm.last_seg = *seg;
            gm.count = gm.count.saturating_add(1);
            gm.payload = gm.payload.saturating_add(seg.payload);
            gm.psh = psh;
            gm.closed = psh || seg.payload < gr.seg.payload;
        }
        true
    }

    pub fn role(&self, i: usize) -> Role {
        self.roles.get(i).copied().unwrap_or(Role::Skip)
    }

    /// The packets after head `i` whose payloads follow it, in order.
    pub fn members(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut at = self.next.get(i).copied().unwrap_or(NONE);
        std::iter::from_fn(move || {
            let cur = at;
            at = self.next.get(cur).copied()?;
            Some(cur)
        })
    }

    /// Rewrites the headers of head `i` (in `head`, its packet) into those of the super-packet
    /// and returns the virtio-net header to write in front of it. The TCP checksum field gets
    /// the pseudo-header sum (`NEEDS_CSUM`), as the kernel expects of a GSO packet.
    pub fn merge_headers(&self, i: usize, head: &mut [u8]) -> Option<VnetHdr> {
        let g = self.groups.get(*self.group_of.get(i)?)?;
        let s = g.seg;
        if g.count < 2 || head.len() != s.hdr_len.saturating_add(s.payload) {
            return None;
        }
        // Bounded by u16::MAX in try_append.
        let total = s.hdr_len.saturating_add(g.payload);
        let ip = s.ip_len;
        if s.v6 {
            put_u16(head, 4, total.saturating_sub(IPV6_LEN) as u16);
        } else {
            put_u16(head, 2, total as u16);
            put_u16(head, 10, 0);
            let c = checksum(head.get(..ip)?);
            put_u16(head, 10, c);
        }
        if g.psh {
            *head.get_mut(ip.saturating_add(13))? |= PSH;
        }
        let partial = fold(pseudo_header(head, s.v6, total.saturating_sub(ip)));
        put_u16(head, ip.saturating_add(TCP_CSUM), partial);
        Some(VnetHdr {
            flags: NEEDS_CSUM,
            gso_type: if s.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: s.hdr_len as u16,
            gso_size: s.payload as u16,
            csum_start: ip as u16,
            csum_offset: TCP_CSUM as u16,
        })
    }

    /// Header length of the packets of head `i`'s super-packet (members contribute the bytes
    /// after it).
    pub fn header_len(&self, i: usize) -> Option<usize> {
        let g = self.groups.get(*self.group_of.get(i)?)?;
        Some(g.seg.hdr_len)
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::indexing_slicing)] // tests: fixed inputs
mod tests;
