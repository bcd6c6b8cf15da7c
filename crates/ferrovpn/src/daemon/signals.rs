//! SIGINT and SIGTERM as a file descriptor the event loop polls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Blocks SIGINT/SIGTERM in every thread and returns a signalfd that reports them.
pub(super) fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset manipulation on a local, then pthread_sigmask/signalfd with valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Reads one pending record from the signalfd; true when a signal arrived.
pub(super) fn received(sigfd: &OwnedFd) -> bool {
    let mut info = [0u8; 128];
    // SAFETY: reading a signalfd_siginfo-sized record into a local buffer.
    let n = unsafe { libc::read(sigfd.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) };
    n > 0
}
