//! Network interfaces by name and by address, through the C library and ioctls (rtnetlink is
//! in `netlink`).

use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `if_nametoindex`: the index of interface `name` in the calling thread's network namespace.
pub fn index_of(name: &CStr) -> Option<u32> {
    // SAFETY: name is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => None,
        i => Some(i),
    }
}

/// The name of the interface that holds `addr` (`getifaddrs`); None when no interface has it.
pub fn holding_address(addr: IpAddr) -> Option<CString> {
    holding_addresses(&[addr]).pop().flatten()
}

/// For each of `addrs`, the name of the interface that holds it, from one `getifaddrs` walk
/// (it dumps every interface: one walk per address would make start-up quadratic once each
/// connection has added its TUN device).
pub fn holding_addresses(addrs: &[IpAddr]) -> Vec<Option<CString>> {
    let mut names: Vec<Option<CString>> = vec![None; addrs.len()];
    each_address(|here, ifname| {
        for (a, name) in addrs.iter().zip(names.iter_mut()) {
            if *a == here && name.is_none() {
                *name = Some(ifname.to_owned());
            }
        }
    });
    names
}

/// Every IPv4 and IPv6 address of every interface, from one `getifaddrs` walk.
pub fn all_addresses() -> Vec<IpAddr> {
    let mut all = Vec::new();
    each_address(|a, _| all.push(a));
    all
}

/// Calls `f` with each interface address and its interface's name (`getifaddrs`); nothing when
/// the list cannot be read.
fn each_address(mut f: impl FnMut(IpAddr, &CStr)) {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills list, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return;
    }
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: cur is a non-null node of the list getifaddrs returned, alive until
        // freeifaddrs below.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of the family it names, so it
        // may be read as that family's sockaddr.
        let here: Option<IpAddr> = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    Some(IpAddr::V4(u32::from_be(sin.sin_addr.s_addr).into()))
                }
                libc::AF_INET6 => {
                    let sin6 = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::V6(sin6.sin6_addr.s6_addr.into()))
                }
                _ => None,
            }
        };
        if let Some(here) = here {
            // SAFETY: ifa_name is a non-null NUL-terminated string owned by the list, alive
            // until freeifaddrs below; `f` only borrows it for the call.
            f(here, unsafe { CStr::from_ptr(ifa.ifa_name) });
        }
    }
    // SAFETY: list came from getifaddrs and is freed once; no reference into it outlives this.
    unsafe { libc::freeifaddrs(list) };
}

/// `SIOCGIFMTU`: the MTU of interface `name`.
pub fn mtu_of(name: &CStr) -> Option<u32> {
    // SAFETY: a plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a fresh descriptor we own; closed through OwnedFd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.to_bytes()) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu of one valid, exclusively borrowed
    // ifreq.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr) };
    if rc < 0 {
        return None;
    }
    // SAFETY: SIOCGIFMTU succeeded, so it stored the MTU in ifru_mtu.
    u32::try_from(unsafe { ifr.ifr_ifru.ifru_mtu }).ok()
}
