//! File descriptor calls: open, read, write, writev, non-blocking mode, poll.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A negative return of a libc call as the `errno` error, else the value.
fn cvt<T: Copy + Default + PartialOrd>(r: T) -> io::Result<T> {
    if r < T::default() {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `open(2)`: a descriptor this process owns from then on.
pub fn open(path: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: path is NUL-terminated and lives across the call; the result is checked.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), flags) })?;
    // SAFETY: fd is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `read(2)` into `buf`; the number of bytes read.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes for the duration of the call.
    let n = cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(n.unsigned_abs())
}

/// `write(2)` of `data`; the number of bytes written.
pub fn write(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    // SAFETY: data is valid for reads of data.len() bytes for the duration of the call.
    let n = cvt(unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) })?;
    Ok(n.unsigned_abs())
}

/// `writev(2)` of `parts` as one write.
pub fn writev(fd: BorrowedFd<'_>, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let count = libc::c_int::try_from(parts.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: IoSlice is ABI-compatible with iovec (std guarantees it on Unix); every slice
    // is valid for reads for the duration of the call and `count` does not exceed them.
    let n = cvt(unsafe { libc::writev(fd.as_raw_fd(), parts.as_ptr().cast(), count) })?;
    Ok(n.unsigned_abs())
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFL takes no argument and only reads the descriptor's flags.
    let fl = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let fl = if on {
        fl | libc::O_NONBLOCK
    } else {
        fl & !libc::O_NONBLOCK
    };
    // SAFETY: F_SETFL takes an int of flags by value.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, fl) }).map(drop)
}

/// `poll(2)` on `fds` for up to `timeout_ms`; the number of ready descriptors (0 on timeout
/// or error).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> usize {
    let n = libc::nfds_t::try_from(fds.len()).unwrap_or(libc::nfds_t::MAX);
    // SAFETY: fds is a valid, writable array of n pollfd for the duration of the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
    usize::try_from(r).unwrap_or(0)
}

/// Waits up to `timeout_ms` for `events` (`POLLIN`, `POLLOUT`) on `fd`; true when ready.
pub fn wait(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> bool {
    let mut p = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    poll(&mut p, timeout_ms) > 0
}
