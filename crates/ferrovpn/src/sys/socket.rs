//! Socket calls: socket, setsockopt/getsockopt, bind, sendto, recvfrom, and the conversion
//! between `SocketAddr` and `sockaddr_storage`.

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn cvt_size(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// `socket(2)`: a descriptor this process owns.
pub fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers; the result is checked.
    let fd = cvt(unsafe { libc::socket(domain, ty, proto) })?;
    // SAFETY: fd is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(2)` with an int value.
pub fn set_int_opt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: v is a valid c_int for the duration of the call and the length says so.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::addr_of!(v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Attaches a socket filter that accepts nothing (`SO_ATTACH_FILTER`, one BPF "return 0"): a
/// send-only socket then queues no input at all.
pub fn drop_all_input(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut code = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: prog points at one valid instruction for the duration of the call; the kernel
    // copies the program.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::addr_of!(prog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `getsockopt(2)` of an int value.
pub fn get_int_opt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut l = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and l are valid for writes, l holds v's size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::addr_of_mut!(v).cast(),
            &mut l,
        )
    })?;
    Ok(v)
}

/// An all-zero `sockaddr_storage` (family `AF_UNSPEC`).
pub fn zeroed_sockaddr() -> libc::sockaddr_storage {
    // SAFETY: an all-zero sockaddr_storage is a valid value (plain integers).
    unsafe { std::mem::zeroed() }
}

/// A `sockaddr_storage` for `addr`, and its length.
pub fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut ss = zeroed_sockaddr();
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ss).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(ss).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// The address in a `sockaddr_storage` filled by the kernel.
pub fn socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in; storage is large enough and
            // aligned for it.
            let sin: libc::sockaddr_in = unsafe { std::ptr::read(std::ptr::addr_of!(*ss).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6; storage is large enough and
            // aligned for it.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read(std::ptr::addr_of!(*ss).cast()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// `bind(2)` to `addr`.
pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddr) -> io::Result<()> {
    let (ss, len) = sockaddr(addr);
    // SAFETY: ss holds a valid sockaddr of length len, alive across the call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(ss).cast(), len) }).map(drop)
}

/// `sendto(2)` of one datagram to `dst`. Takes a raw descriptor: a wrong one fails with
/// `EBADF` (or writes to that descriptor), it cannot touch memory.
pub fn send_to(fd: RawFd, data: &[u8], dst: SocketAddr) -> io::Result<usize> {
    let (ss, len) = sockaddr(dst);
    // SAFETY: data and ss are valid for reads of the given lengths across the call.
    cvt_size(unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            0,
            std::ptr::addr_of!(ss).cast(),
            len,
        )
    })
}

/// `recvfrom(2)` of one datagram into `buf`: its length (capped at `buf.len()`) and sender.
pub fn recv_from(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, libc::sockaddr_storage)> {
    let mut ss = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut sl = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: buf and ss are valid for writes of the given lengths across the call.
    let n = cvt_size(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            ss.as_mut_ptr().cast(),
            &mut sl,
        )
    })?;
    // SAFETY: zero-initialised and possibly filled by the kernel; either way a valid value.
    let ss = unsafe { ss.assume_init() };
    Ok((n.min(buf.len()), ss))
}
