//! Batched datagram I/O: `sendmmsg(2)` with UDP GSO (`UDP_SEGMENT`) and `recvmmsg(2)` with
//! UDP GRO (`UDP_GRO` control messages). Buffers are borrowed as `IoSlice`/`IoSliceMut` (ABI
//! compatible with `iovec`), so the borrow checker keeps them alive across each call.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::socket::{sockaddr, zeroed_sockaddr};

/// Messages per `sendmmsg`/`recvmmsg` call at most; larger slices are cut to this.
pub const MAX_MSGS: usize = 64;
/// `UDP_SEGMENT` (linux/udp.h): the segment size of a UDP GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// `UDP_GRO` (linux/udp.h): the segment size of a coalesced receive (an int, level `SOL_UDP`).
pub const UDP_GRO: libc::c_int = 104;

/// Control message space for one `UDP_SEGMENT` (u16) value, 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct GsoCmsg([u8; 32]);

/// Control message space for the `UDP_GRO` segment size (an int), 8-byte aligned.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct GroCmsg([u8; 64]);

fn zeroed_mmsghdrs() -> [libc::mmsghdr; MAX_MSGS] {
    // SAFETY: an all-zero mmsghdr (null pointers, zero lengths) is a valid value.
    unsafe { std::mem::zeroed() }
}

/// One message of a [`sendmmsg`]: the packets `parts[first..first + count]` to `dst`, sent as
/// one UDP GSO train of `segment`-byte datagrams when `segment > 0` (else one datagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendMsg {
    pub first: usize,
    pub count: usize,
    pub dst: SocketAddr,
    pub segment: u16,
}

/// `sendmmsg(2)` of `msgs` (at most [`MAX_MSGS`]) on `fd`: how many messages the kernel took,
/// or the error of the first one. A message whose range lies outside `parts` is an
/// `InvalidInput` error before anything is sent. `fd` is raw: a wrong one fails with `EBADF`.
pub fn sendmmsg(fd: RawFd, parts: &[IoSlice<'_>], msgs: &[SendMsg]) -> io::Result<usize> {
    let n = msgs.len().min(MAX_MSGS);
    if n == 0 {
        return Ok(0);
    }
    let mut hdrs = zeroed_mmsghdrs();
    let mut addrs = [zeroed_sockaddr(); MAX_MSGS];
    let mut cmsgs = [GsoCmsg([0; 32]); MAX_MSGS];
    for (((m, h), a), c) in msgs
        .iter()
        .zip(hdrs.iter_mut())
        .zip(addrs.iter_mut())
        .zip(cmsgs.iter_mut())
        .take(n)
    {
        let iovs = m
            .first
            .checked_add(m.count)
            .and_then(|end| parts.get(m.first..end))
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let (ss, len) = sockaddr(m.dst);
        *a = ss;
        h.msg_hdr.msg_name = std::ptr::addr_of_mut!(*a).cast();
        h.msg_hdr.msg_namelen = len;
        // sendmsg only reads the iovecs; IoSlice is ABI-compatible with iovec.
        h.msg_hdr.msg_iov = iovs.as_ptr().cast_mut().cast();
        h.msg_hdr.msg_iovlen = iovs.len() as _;
        if m.segment > 0 {
            h.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE only computes a size.
            h.msg_hdr.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
            // SAFETY: msg_control points at c (32 bytes, aligned for cmsghdr), which holds
            // CMSG_SPACE(2) bytes, so the first header and its 2 data bytes lie inside it.
            unsafe {
                let cm = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                (*cm).cmsg_level = libc::IPPROTO_UDP;
                (*cm).cmsg_type = UDP_SEGMENT;
                (*cm).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<u16>(), m.segment);
            }
        }
    }
    // SAFETY: hdrs[..n] point at addrs, cmsgs and the iovecs of `parts`, all alive and
    // unmoved until the call returns; n <= MAX_MSGS = hdrs.len().
    let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, 0) };
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

/// The buffer one received message goes into: the whole datagram (one iovec).
pub struct RecvMsg<'a> {
    part: IoSliceMut<'a>,
    nparts: usize,
}

impl<'a> RecvMsg<'a> {
    pub fn new(data: &'a mut [u8]) -> Self {
        RecvMsg {
            part: IoSliceMut::new(data),
            nparts: 1,
        }
    }

    /// No buffer: a placeholder that receives nothing.
    pub fn empty() -> Self {
        RecvMsg {
            part: IoSliceMut::new(&mut []),
            nparts: 0,
        }
    }
}

/// What [`recvmmsg`] reports for one message.
#[derive(Clone, Copy)]
pub struct Received {
    /// Bytes received (all parts together).
    pub len: usize,
    /// The datagram was longer than the buffers (`MSG_TRUNC`).
    pub truncated: bool,
    /// The sender (family `AF_UNSPEC` when the kernel named none).
    pub from: libc::sockaddr_storage,
    /// `UDP_GRO`: the segment size of a coalesced datagram, when asked for and present.
    pub gro_segment: Option<usize>,
}

impl Default for Received {
    fn default() -> Self {
        Received {
            len: 0,
            truncated: false,
            from: zeroed_sockaddr(),
            gro_segment: None,
        }
    }
}

/// The segment size a `UDP_GRO` control message in `h` carries, if any.
fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: the kernel filled msg_control/msg_controllen (within the GroCmsg buffer it was
    // given); the CMSG_* macros stay inside it and return null at its end.
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

/// Non-blocking `recvmmsg(2)` on `fd` into `msgs` (at most [`MAX_MSGS`] and `meta.len()`):
/// the number of messages received (0 when none or on error), each described in `meta`.
/// With `gro`, the `UDP_GRO` segment size of each is read too.
pub fn recvmmsg(fd: RawFd, msgs: &mut [RecvMsg<'_>], meta: &mut [Received], gro: bool) -> usize {
    let room = msgs.len().min(meta.len()).min(MAX_MSGS);
    if room == 0 {
        return 0;
    }
    let mut hdrs = zeroed_mmsghdrs();
    let mut addrs = [zeroed_sockaddr(); MAX_MSGS];
    let mut cmsgs = [GroCmsg([0; 64]); MAX_MSGS];
    for (((m, h), a), c) in msgs
        .iter_mut()
        .zip(hdrs.iter_mut())
        .zip(addrs.iter_mut())
        .zip(cmsgs.iter_mut())
        .take(room)
    {
        // IoSliceMut is ABI-compatible with iovec; nparts is 0 or 1 (the one `part`).
        h.msg_hdr.msg_iov = std::ptr::addr_of_mut!(m.part).cast();
        h.msg_hdr.msg_iovlen = m.nparts.min(1) as _;
        h.msg_hdr.msg_name = std::ptr::addr_of_mut!(*a).cast();
        h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as _;
        if gro {
            h.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = c.0.len() as _;
        }
    }
    // SAFETY: hdrs[..room] point at the caller's buffers (borrowed mutably through `msgs`),
    // addrs and cmsgs, all alive and unmoved until the call returns; room <= hdrs.len().
    let r = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            room as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let got = usize::try_from(r).unwrap_or(0).min(room);
    for ((h, a), out) in hdrs.iter().zip(addrs.iter()).zip(meta.iter_mut()).take(got) {
        *out = Received {
            len: h.msg_len as usize,
            truncated: h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            from: *a,
            gro_segment: if gro { gro_segment(&h.msg_hdr) } else { None },
        };
    }
    got
}
