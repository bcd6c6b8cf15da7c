//! SIGINT, SIGTERM and SIGHUP as a file descriptor an event loop can poll.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Blocks SIGINT/SIGTERM/SIGHUP in the calling thread (and the threads it starts later) and returns a
/// non-blocking signalfd that reports them.
pub fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid, exclusively borrowed sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    // SAFETY: set is initialised; a null old-set pointer is allowed.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: -1 asks for a new descriptor; set is initialised.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh from signalfd and owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads one pending record from a signalfd: the number of the signal that arrived, if any.
pub fn signal_received(sigfd: &OwnedFd) -> Option<i32> {
    let mut info = [0u8; 128];
    // SAFETY: reads at most info.len() bytes (one signalfd_siginfo) into a local buffer.
    let n = unsafe { libc::read(sigfd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) };
    if n <= 0 {
        return None;
    }
    // ssi_signo, the record's first field (u32, native byte order).
    let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
    i32::try_from(signo).ok()
}
