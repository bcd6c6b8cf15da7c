//! TUN devices through `/dev/net/tun` and the `TUNSETIFF` ioctl (Linux
//! Documentation/networking/tuntap.rst): layer-3 packets, no packet-info prefix (`IFF_NO_PI`),
//! optionally several queues on one device (`IFF_MULTI_QUEUE`, one fd per worker) and the
//! virtio-net header (`IFF_VNET_HDR`) that GSO/GRO offloads will need.
//!
//! The tun-tap crate is not used: it cannot express multi-queue or vnet headers.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::netlink::{link_index, Netlink, NetlinkError};
use crate::sys;

/// Longest interface name Linux accepts (IFNAMSIZ minus the NUL).
pub const MAX_NAME_LEN: usize = 15;

/// `TUN_F_*`: partial checksums, TCP segmentation offload for IPv4 and IPv6.
pub const TUN_F_CSUM: libc::c_uint = 0x01;
pub const TUN_F_TSO4: libc::c_uint = 0x02;
pub const TUN_F_TSO6: libc::c_uint = 0x04;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunOptions {
    /// Allow several queues (fds) on this device; every queue must be opened with it.
    pub multi_queue: bool,
    /// Prefix every packet with a `struct virtio_net_hdr` (offloads; handled by the caller).
    pub vnet_hdr: bool,
    /// Reads and writes return `WouldBlock` instead of waiting.
    pub nonblocking: bool,
    /// Only create: fail with `EBUSY` when a device of this name exists (`IFF_TUN_EXCL`), where
    /// `TUNSETIFF` would otherwise attach to it (e.g. to a persistent TUN someone else made).
    pub exclusive: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("TUN name '{name}': {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("open /dev/net/tun: {0}")]
    Open(io::Error),
    #[error("TUNSETIFF {name}: {source}")]
    SetIff { name: String, source: io::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Netlink(#[from] NetlinkError),
}

/// One queue (file descriptor) of a TUN device.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
    vnet_hdr: bool,
}

/// Closes the devices' queues from several threads at once. A non-persistent TUN goes away when
/// its last queue closes, and the kernel then waits (an RCU barrier, outside its RTNL lock) for
/// about 20 ms per device: in parallel those waits overlap, so `down` is not 20 ms × devices.
/// Only our own descriptors are closed: nothing of anyone else's is touched.
pub fn close_in_parallel(devices: Vec<Vec<std::sync::Arc<Tun>>>) {
    /// Enough threads to overlap the kernel's waits; each only sleeps in `close`.
    const THREADS: usize = 32;
    let per = devices.len().div_ceil(THREADS).max(1);
    let mut devices = devices;
    let mut chunks = Vec::new();
    while !devices.is_empty() {
        let rest = devices.split_off(per.min(devices.len()));
        chunks.push(std::mem::replace(&mut devices, rest));
    }
    std::thread::scope(|s| {
        for chunk in chunks {
            // When no thread can be made, the closure (and the chunk) drops here, in turn.
            let _ = std::thread::Builder::new()
                .name("tun-close".into())
                .spawn_scoped(s, move || drop(chunk));
        }
    });
}

/// Checks a name before it reaches the kernel.
pub fn check_name(name: &str) -> Result<(), TunError> {
    let bad = |reason| TunError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad("longer than 15 bytes (IFNAMSIZ)"));
    }
    if name == "." || name == ".." {
        return Err(bad("reserved"));
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace() || !b.is_ascii())
    {
        return Err(bad("contains '/', ':', whitespace, NUL or non-ASCII"));
    }
    Ok(())
}

impl Tun {
    /// Creates (or, unless `exclusive`, attaches a queue to) the TUN device `name`. The device is
    /// not persistent: it vanishes when its last queue is closed, also when the process is
    /// killed, so a crash leaves no device behind.
    pub fn open(name: &str, opts: TunOptions) -> Result<Tun, TunError> {
        check_name(name)?;
        let path = c"/dev/net/tun";
        let mut oflags = libc::O_RDWR | libc::O_CLOEXEC;
        if opts.nonblocking {
            oflags |= libc::O_NONBLOCK;
        }
        let fd = sys::fd::open(path, oflags).map_err(TunError::Open)?;
        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
        if opts.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        if opts.vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        if opts.exclusive {
            flags |= libc::IFF_TUN_EXCL;
        }
        let name =
            sys::tun::set_iff(fd.as_fd(), name, flags as libc::c_short).map_err(|source| {
                TunError::SetIff {
                    name: name.to_string(),
                    source,
                }
            })?;
        Ok(Tun {
            fd,
            name,
            vnet_hdr: opts.vnet_hdr,
        })
    }

    /// Opens `n` queues of one multi-queue device, e.g. one per worker thread; `exclusive`
    /// applies to the first (the one that creates the device).
    pub fn open_queues(name: &str, n: usize, opts: TunOptions) -> Result<Vec<Tun>, TunError> {
        let opts = TunOptions {
            multi_queue: true,
            ..opts
        };
        (0..n)
            .map(|i| {
                Tun::open(
                    name,
                    TunOptions {
                        exclusive: opts.exclusive && i == 0,
                        ..opts
                    },
                )
            })
            .collect()
    }

    /// The device name the kernel assigned.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every read and write carries a `virtio_net_hdr` first (opened with `IFF_VNET_HDR`).
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    /// Lets the kernel hand over packets with partial checksums and TCP super-packets
    /// (`TUNSETOFFLOAD` with `TUN_F_*` flags); needs `IFF_VNET_HDR`.
    pub fn set_offload(&self, flags: libc::c_uint) -> io::Result<()> {
        sys::tun::set_offload(self.fd.as_fd(), flags)
    }

    /// The `IFF_*` flags of the device as the kernel reports them (`TUNGETIFF`).
    pub fn flags(&self) -> io::Result<libc::c_int> {
        sys::tun::get_iff_flags(self.fd.as_fd())
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        sys::fd::set_nonblocking(self.fd.as_fd(), on)
    }

    /// Reads one packet into `buf`; returns its length.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        sys::fd::read(self.fd.as_fd(), buf)
    }

    /// Writes one packet (an IPv4 or IPv6 datagram, after the vnet header if enabled).
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        sys::fd::write(self.fd.as_fd(), packet)
    }

    /// Writes one packet gathered from several buffers (the vnet header, then packet bytes).
    pub fn writev(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        sys::fd::writev(self.fd.as_fd(), parts)
    }

    /// Sets the device MTU (through rtnetlink).
    pub fn set_mtu(&self, nl: &mut Netlink, mtu: u32) -> Result<(), TunError> {
        nl.set_mtu(link_index(&self.name)?, mtu)?;
        Ok(())
    }

    /// Sets how many packets the kernel queues for the reader before dropping (through
    /// rtnetlink); the TUN default of 500 overflows under a single fast TCP stream.
    pub fn set_txqueuelen(&self, nl: &mut Netlink, len: u32) -> Result<(), TunError> {
        nl.set_txqueuelen(link_index(&self.name)?, len)?;
        Ok(())
    }

    /// Brings the device administratively up (through rtnetlink).
    pub fn up(&self, nl: &mut Netlink) -> Result<(), TunError> {
        nl.set_link_up(link_index(&self.name)?, true)?;
        Ok(())
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{require_root, NetNs};
    use std::net::{Ipv4Addr, UdpSocket};

    #[test]
    fn names_are_checked_before_the_kernel_sees_them() {
        assert!(check_name("fv0").is_ok());
        assert!(check_name("a23456789012345").is_ok());
        for bad in ["", "a234567890123456", "a/b", "a b", "a:1", ".."] {
            assert!(
                matches!(check_name(bad), Err(TunError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    /// Waits for a readable fd; the timeout only keeps a broken test from hanging.
    fn wait_readable(t: &Tun) {
        let ready = crate::sys::fd::wait(t.as_raw_fd(), libc::POLLIN, 5000);
        assert!(ready, "TUN did not become readable");
    }

    fn checksum(b: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for c in b.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// An IPv4/UDP datagram with a zero (absent) UDP checksum.
    fn udp4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let c = checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    /// Reads until an IPv4 UDP packet to `dport` shows up (skipping e.g. IPv6 router solicits).
    fn read_udp4_to(t: &Tun, dport: u16) -> Vec<u8> {
        let mut buf = [0u8; 2048];
        for _ in 0..50 {
            wait_readable(t);
            let n = match t.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            };
            let p = &buf[..n];
            if p[0] >> 4 == 4 && p[9] == 17 && u16::from_be_bytes([p[22], p[23]]) == dport {
                return p.to_vec();
            }
        }
        panic!("no UDP packet to port {dport} on the TUN");
    }

    #[test]
    fn packets_flow_both_ways_through_the_tun() {
        if !require_root("tun::packets_flow_both_ways_through_the_tun") {
            return;
        }
        let ns = NetNs::new("tun").unwrap();
        ns.run(|| {
            let tun = Tun::open(
                "fvt0",
                TunOptions {
                    nonblocking: true,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(tun.name(), "fvt0");
            let flags = tun.flags().unwrap();
            assert_eq!(flags & libc::IFF_TUN, libc::IFF_TUN);
            assert_eq!(flags & libc::IFF_NO_PI, libc::IFF_NO_PI);
            let mut nl = Netlink::open().unwrap();
            tun.set_mtu(&mut nl, 1400).unwrap();
            tun.up(&mut nl).unwrap();
            nl.add_address(
                link_index("fvt0").unwrap(),
                "198.51.100.1/24".parse().unwrap(),
            )
            .unwrap();

            // Kernel -> TUN: a datagram routed to the TUN's subnet is read as an IP packet.
            let sock = UdpSocket::bind("198.51.100.1:4000").unwrap();
            sock.send_to(b"to-tun", "198.51.100.2:9").unwrap();
            let p = read_udp4_to(&tun, 9);
            assert_eq!(&p[12..16], &[198, 51, 100, 1]);
            assert_eq!(&p[16..20], &[198, 51, 100, 2]);
            assert_eq!(&p[28..], b"to-tun");

            // TUN -> kernel: a written packet is delivered to the local socket.
            let pkt = udp4(
                Ipv4Addr::new(198, 51, 100, 2),
                Ipv4Addr::new(198, 51, 100, 1),
                9,
                4000,
                b"from-tun",
            );
            assert_eq!(tun.write(&pkt).unwrap(), pkt.len());
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = sock.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"from-tun");
            assert_eq!(from.to_string(), "198.51.100.2:9");
            drop(nl);
        });
        let link = ns.ip(&["-o", "link", "show", "fvt0"]);
        assert!(link.is_err(), "a non-persistent TUN vanishes with its fd");
    }

    #[test]
    fn devices_closed_in_parallel_are_all_gone_and_others_stay() {
        if !require_root("tun::devices_closed_in_parallel_are_all_gone_and_others_stay") {
            return;
        }
        let ns = NetNs::new("tunc").unwrap();
        // A persistent TUN someone else made: not ours, it stays.
        ns.ip(&["tuntap", "add", "dev", "fvkeep", "mode", "tun"])
            .unwrap();
        ns.run(|| {
            let devices: Vec<Vec<std::sync::Arc<Tun>>> = (0..40)
                .map(|i| {
                    let t = Tun::open(&format!("fvc{i}"), TunOptions::default()).unwrap();
                    vec![std::sync::Arc::new(t)]
                })
                .collect();
            assert!(link_index("fvc39").is_ok());
            close_in_parallel(devices);
            // Another test of this binary forking a command at that moment holds copies of
            // our descriptors until its exec: the devices go when it has exec'ed.
            for i in 0..40 {
                let name = format!("fvc{i}");
                let gone = (0..200).any(|_| {
                    let g = link_index(&name).is_err();
                    if !g {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    g
                });
                assert!(gone, "{name} is gone");
            }
            assert!(link_index("fvkeep").is_ok(), "a device not ours stays");
        });
    }

    #[test]
    fn multi_queue_and_vnet_hdr() {
        if !require_root("tun::multi_queue_and_vnet_hdr") {
            return;
        }
        let ns = NetNs::new("tunmq").unwrap();
        ns.run(|| {
            let opts = TunOptions {
                vnet_hdr: true,
                nonblocking: true,
                ..Default::default()
            };
            let queues = Tun::open_queues("fvmq0", 3, opts).unwrap();
            assert_eq!(queues.len(), 3);
            for q in &queues {
                assert_eq!(q.name(), "fvmq0");
                let f = q.flags().unwrap();
                assert_eq!(f & libc::IFF_MULTI_QUEUE, libc::IFF_MULTI_QUEUE);
                assert_eq!(f & libc::IFF_VNET_HDR, libc::IFF_VNET_HDR);
            }
            // A single-queue open of a multi-queue device is refused.
            let e = Tun::open("fvmq0", TunOptions::default()).unwrap_err();
            assert!(matches!(e, TunError::SetIff { .. }), "{e}");
            // Nothing to read yet on a non-blocking queue.
            let mut buf = [0u8; 64];
            let e = queues[1].read(&mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            queues[0].set_nonblocking(false).unwrap();
        });
    }

    #[test]
    fn with_offloads_packets_carry_a_vnet_header_both_ways() {
        if !require_root("tun::with_offloads_packets_carry_a_vnet_header_both_ways") {
            return;
        }
        let ns = NetNs::new("tunoff").unwrap();
        ns.run(|| {
            let tun = Tun::open(
                "fvo0",
                TunOptions {
                    vnet_hdr: true,
                    nonblocking: true,
                    ..Default::default()
                },
            )
            .unwrap();
            assert!(tun.vnet_hdr());
            tun.set_offload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
                .unwrap();
            let mut nl = Netlink::open().unwrap();
            tun.up(&mut nl).unwrap();
            nl.add_address(
                link_index("fvo0").unwrap(),
                "198.51.100.1/24".parse().unwrap(),
            )
            .unwrap();
            let sock = UdpSocket::bind("198.51.100.1:4000").unwrap();
            sock.send_to(b"to-tun", "198.51.100.2:9").unwrap();
            // Kernel -> TUN: a 10-byte virtio-net header, then the IP packet (UDP checksum may
            // be left partial: NEEDS_CSUM, which the data plane completes).
            let mut buf = [0u8; 2048];
            let p = loop {
                wait_readable(&tun);
                let n = tun.read(&mut buf).unwrap();
                let p = &buf[..n];
                if n > 38 && p[10] >> 4 == 4 && p[19] == 17 && p[33] == 9 {
                    break p.to_vec();
                }
            };
            let (hdr, ip) = ferrovpn_esp::offload::VnetHdr::split(&p).unwrap();
            assert_eq!(hdr.gso_type, ferrovpn_esp::offload::GSO_NONE);
            assert_eq!(&ip[28..], b"to-tun");

            // TUN -> kernel: a zero header, then the packet.
            let pkt = udp4(
                Ipv4Addr::new(198, 51, 100, 2),
                Ipv4Addr::new(198, 51, 100, 1),
                9,
                4000,
                b"from-tun",
            );
            let plain = [0u8; 10];
            let n = tun
                .writev(&[io::IoSlice::new(&plain), io::IoSlice::new(&pkt)])
                .unwrap();
            assert_eq!(n, 10 + pkt.len());
            sock.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut got = [0u8; 64];
            let (n, _) = sock.recv_from(&mut got).unwrap();
            assert_eq!(&got[..n], b"from-tun");
            drop(nl);
        });
    }

    /// An exclusive open never attaches to a device someone else made (`ip tuntap add`): EBUSY,
    /// and the device stays as it was; without a device of that name it creates one.
    #[test]
    fn an_exclusive_open_refuses_an_existing_persistent_tun() {
        if !require_root("tun::an_exclusive_open_refuses_an_existing_persistent_tun") {
            return;
        }
        let ns = NetNs::new("tunexcl").unwrap();
        ns.ip(&["tuntap", "add", "dev", "fvx0", "mode", "tun"])
            .unwrap();
        let excl = TunOptions {
            exclusive: true,
            ..Default::default()
        };
        ns.run(|| {
            let e = Tun::open("fvx0", excl).unwrap_err();
            match e {
                TunError::SetIff { source, .. } => {
                    assert_eq!(source.raw_os_error(), Some(libc::EBUSY))
                }
                other => panic!("{other:?}"),
            }
            let q = Tun::open_queues("fvx1", 2, excl).unwrap();
            assert_eq!(q.len(), 2);
        });
        assert!(ns.ip(&["link", "show", "fvx0"]).is_ok());
        assert!(ns.ip(&["link", "show", "fvx1"]).is_err());
    }
}
