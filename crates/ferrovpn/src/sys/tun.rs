//! TUN ioctls (linux/if_tun.h): `TUNSETIFF`, `TUNGETIFF`, `TUNSETOFFLOAD`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `TUNSETOFFLOAD` (`_IOW('T', 208, unsigned int)`): which offloads the kernel may hand the
/// reader.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;

fn ifreq_for(name: &str, flags: libc::c_short) -> libc::ifreq {
    // SAFETY: an all-zero ifreq is a valid value (plain integers and arrays).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = flags;
    ifr
}

fn name_of(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `TUNSETIFF`: attaches `fd` (an open `/dev/net/tun`) to the device `name` with `IFF_*`
/// `flags`; the name the kernel assigned. `name` longer than IFNAMSIZ - 1 is cut.
pub fn set_iff(fd: BorrowedFd<'_>, name: &str, flags: libc::c_short) -> io::Result<String> {
    let mut ifr = ifreq_for(name, flags);
    // SAFETY: TUNSETIFF reads and writes one ifreq, which ifr is, alive across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(name_of(&ifr))
}

/// `TUNGETIFF`: the device's `IFF_*` flags as the kernel reports them.
pub fn get_iff_flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    let mut ifr = ifreq_for("", 0);
    // SAFETY: TUNGETIFF fills one ifreq, which ifr is, alive across the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNGETIFF stored the flags in ifru_flags, the union member read here.
    Ok(libc::c_int::from(unsafe { ifr.ifr_ifru.ifru_flags }) & 0xffff)
}

/// `TUNSETOFFLOAD` with `TUN_F_*` flags.
pub fn set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD as _, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
