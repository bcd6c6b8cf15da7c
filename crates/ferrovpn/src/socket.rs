//! The daemon's sockets: UDP 500 (IKE, RFC 2409) and 4500 (NAT-T and ESP-in-UDP, RFC 3947 /
//! RFC 3948) bound to the connection's local address, and a raw IP protocol 50 socket for plain
//! ESP (RFC 4303), beside which IPv4 sends through a send-only `IPPROTO_RAW` socket. All can
//! carry `SO_MARK`, so that policy routing (see `routing`) sends them to the peer over the
//! physical interface rather than into the tunnel.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use ferrovpn_esp::ip::Ipv4Packet;

use crate::sys;

/// IKE port (RFC 2409).
pub const IKE_PORT: u16 = 500;
/// NAT-T port (RFC 3947 §4).
pub const NAT_T_PORT: u16 = 4500;
/// IP protocol number of ESP.
pub const IPPROTO_ESP: i32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketOptions {
    /// `SO_MARK` value (needs CAP_NET_ADMIN).
    pub fwmark: Option<u32>,
    pub nonblocking: bool,
    /// Receive and send buffer size in bytes (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`, CAP_NET_ADMIN):
    /// a burst of ESP must not overflow the kernel's default ~200 KiB while workers catch up.
    pub buffer_bytes: Option<u32>,
}

/// The two IKE sockets of one local address.
#[derive(Debug)]
pub struct IkeSockets {
    /// UDP 500.
    pub ike: UdpSocket,
    /// UDP 4500 (non-ESP marker + IKE, and ESP-in-UDP).
    pub nat_t: UdpSocket,
}

fn new_socket(
    v6: bool,
    ty: libc::c_int,
    proto: libc::c_int,
    nonblocking: bool,
) -> io::Result<OwnedFd> {
    let domain = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let mut ty = ty | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    sys::socket::socket(domain, ty, proto)
}

fn set_int_opt(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    sys::socket::set_int_opt(fd.as_fd(), level, name, v)
}

/// Turns on `UDP_GRO`; false when the kernel does not have it (before 5.0).
pub fn enable_udp_gro(sock: &UdpSocket) -> bool {
    set_int_opt(sock, libc::SOL_UDP, sys::mmsg::UDP_GRO, 1).is_ok()
}

fn apply(fd: &OwnedFd, opts: &SocketOptions) -> io::Result<()> {
    if let Some(mark) = opts.fwmark {
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int)?;
    }
    if let Some(b) = opts.buffer_bytes {
        let b = libc::c_int::try_from(b).unwrap_or(libc::c_int::MAX);
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, b)?;
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, b)?;
    }
    Ok(())
}

/// Outer IPv4 packets (ESP, ESP-in-UDP, IKE) leave without DF (`IP_PMTUDISC_DONT`): one
/// larger than the link or path MTU is fragmented (here or by a router) and reassembled by the
/// peer's kernel before our socket sees it, instead of being dropped. RFC 4301 §8.1 lets an
/// implementation clear DF on the outer header; RFC 4459 §4.1 names this post-fragmentation
/// the fallback that always delivers. Keeping DF would only pay off with PMTU propagation into
/// the tunnel (RFC 4301 §8.2), which this daemon does not do: the TUN MTU (computed from the
/// cipher overhead) and MSS clamping keep packets under the link MTU instead, so fragments only
/// appear when `mtu` is set too large or a hop further on has a smaller MTU, and then a
/// filtered ICMP "fragmentation needed" cannot black-hole the tunnel. IPv6 routers never
/// fragment (RFC 8200 §5): there the kernel's default already fragments at the sender to the
/// path MTU it knows, so IPv6 sockets keep it.
fn allow_outer_fragments(fd: &OwnedFd, v6: bool) -> io::Result<()> {
    if v6 {
        return Ok(());
    }
    set_int_opt(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DONT,
    )
}

/// The send-only `IPPROTO_RAW` socket beside the protocol 50 socket `esp` of `src`: same
/// `SO_MARK` and send buffer, bound to `src` (the route lookup's source), and the TTL `esp`
/// uses.
fn open_hdrincl(
    src: std::net::Ipv4Addr,
    esp: &OwnedFd,
    opts: &SocketOptions,
) -> io::Result<(OwnedFd, HdrinclTx)> {
    let fd = new_socket(false, libc::SOCK_RAW, libc::IPPROTO_RAW, opts.nonblocking)?;
    // Nobody reads it: packets of IP protocol 255 sent to us must not pile up in it.
    crate::sys::socket::drop_all_input(fd.as_fd())?;
    if let Some(mark) = opts.fwmark {
        set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int)?;
    }
    if let Some(b) = opts.buffer_bytes {
        let b = libc::c_int::try_from(b).unwrap_or(libc::c_int::MAX);
        set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, b)?;
    }
    bind(&fd, SocketAddr::new(IpAddr::V4(src), 0))?;
    // An unset IP_TTL reads as the system default (net.ipv4.ip_default_ttl).
    let ttl = get_int_opt(esp, libc::IPPROTO_IP, libc::IP_TTL)?;
    let ttl = u8::try_from(ttl).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let tx = HdrinclTx {
        fd: fd.as_raw_fd(),
        fallback: esp.as_raw_fd(),
        src,
        ttl,
    };
    Ok((fd, tx))
}

use crate::sys::socket::socket_addr;

/// Reads the address out of a `sockaddr_storage` filled by the kernel.
fn ip_of(ss: &libc::sockaddr_storage) -> Option<IpAddr> {
    socket_addr(ss).map(|a| a.ip())
}

fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    sys::socket::bind(fd.as_fd(), addr)
}

/// A UDP socket bound to `addr` with `SO_REUSEADDR` (a restarted daemon rebinds at once).
///
/// On Linux, `SO_REUSEADDR` on UDP also lets a second process that sets it bind the same
/// address and port; keeping to one daemon is the control socket's job, not the bind's.
pub fn bind_udp(addr: SocketAddr, opts: &SocketOptions) -> io::Result<UdpSocket> {
    let fd = new_socket(
        addr.is_ipv6(),
        libc::SOCK_DGRAM,
        libc::IPPROTO_UDP,
        opts.nonblocking,
    )?;
    set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if addr.is_ipv6() {
        set_int_opt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    allow_outer_fragments(&fd, addr.is_ipv6())?;
    apply(&fd, opts)?;
    bind(&fd, addr)?;
    Ok(UdpSocket::from(fd))
}

/// UDP 500 and 4500 on `local`.
pub fn bind_ike(local: IpAddr, opts: &SocketOptions) -> io::Result<IkeSockets> {
    Ok(IkeSockets {
        ike: bind_udp(SocketAddr::new(local, IKE_PORT), opts)?,
        nat_t: bind_udp(SocketAddr::new(local, NAT_T_PORT), opts)?,
    })
}

/// A raw IP socket for protocol 50: sends ESP packets (the kernel adds the IP header) and
/// receives every ESP packet addressed to this host. IPv4 adds a send-only `IPPROTO_RAW`
/// socket for the data plane's batches ([`RawEsp::hdrincl`]).
#[derive(Debug)]
pub struct RawEsp {
    fd: OwnedFd,
    v6: bool,
    /// IPv4: the send-only socket, when it could be opened.
    tx: Option<(OwnedFd, HdrinclTx)>,
}

/// How to send ESP through the send-only `IPPROTO_RAW` socket of a [`RawEsp`] (raw(7):
/// `IP_HDRINCL` implied, it receives nothing): the sender writes the 20-byte outer IPv4
/// header itself, so the kernel neither copies the packet through a checksum nor corks it
/// (the protocol 50 socket's `ip_append_data`), and the one protocol 50 socket stays the only
/// one each inbound ESP packet is cloned to. The kernel still fills in the total length and
/// the header checksum, picks the identification when it is 0, and routes by destination and
/// `SO_MARK` as for the protocol 50 socket.
///
/// The header must match what the protocol 50 socket writes: this `src`, this `ttl`, TOS 0,
/// no DF (see `allow_outer_fragments`). With `IP_HDRINCL` the kernel refuses (`EMSGSIZE`)
/// rather than fragments a packet larger than the outgoing device's MTU: send those through
/// `fallback` (the protocol 50 socket), which fragments them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HdrinclTx {
    /// The `IPPROTO_RAW` socket (borrowed from the `RawEsp`: valid while it lives).
    pub fd: RawFd,
    /// The protocol 50 socket, for packets above the device MTU.
    pub fallback: RawFd,
    /// The connection's local address: the outer source.
    pub src: std::net::Ipv4Addr,
    /// The TTL the protocol 50 socket would use (its `IP_TTL`: the system default).
    pub ttl: u8,
}

/// Where the ESP packet sits in a buffer filled by [`RawEsp::recv`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspDatagram {
    pub src: IpAddr,
    /// Start of the ESP header: after the IPv4 header (raw IPv4 sockets deliver it), 0 for IPv6.
    pub offset: usize,
    /// End of the packet.
    pub len: usize,
}

impl RawEsp {
    /// Opens the socket and binds it to `local` so it sees only packets to that address.
    pub fn open(local: IpAddr, opts: &SocketOptions) -> io::Result<RawEsp> {
        let v6 = local.is_ipv6();
        let fd = new_socket(v6, libc::SOCK_RAW, IPPROTO_ESP, opts.nonblocking)?;
        allow_outer_fragments(&fd, v6)?;
        apply(&fd, opts)?;
        bind(&fd, SocketAddr::new(local, 0))?;
        let tx = match local {
            // IPv6 keeps the protocol 50 socket: there `IPPROTO_RAW` does not imply a header
            // written by the sender (`IPV6_HDRINCL`), and the kernel fragments at the sender.
            IpAddr::V6(_) => None,
            IpAddr::V4(src) => match open_hdrincl(src, &fd, opts) {
                Ok(tx) => Some(tx),
                Err(e) => {
                    tracing::warn!(
                        "raw ESP from {src}: no send-only IPPROTO_RAW socket ({e}), \
                         sending through the protocol 50 socket"
                    );
                    None
                }
            },
        };
        Ok(RawEsp { fd, v6, tx })
    }

    /// IPv4: the send-only socket and the header to write, when there is one.
    pub fn hdrincl(&self) -> Option<HdrinclTx> {
        self.tx.as_ref().map(|(_, t)| *t)
    }

    /// Sends one ESP packet (SPI onwards) to `dst`.
    pub fn send_to(&self, esp: &[u8], dst: IpAddr) -> io::Result<usize> {
        if dst.is_ipv6() != self.v6 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "destination address family differs from the socket's",
            ));
        }
        sys::socket::send_to(self.fd.as_raw_fd(), esp, SocketAddr::new(dst, 0))
    }

    /// Receives one packet into `buf`; `buf[d.offset..d.len]` is the ESP packet.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<EspDatagram> {
        let (len, ss) = sys::socket::recv_from(self.fd.as_fd(), buf)?;
        let bad = |m| io::Error::new(io::ErrorKind::InvalidData, m);
        let src = ip_of(&ss).ok_or_else(|| bad("unknown address family"))?;
        let offset = if self.v6 {
            0
        } else {
            match buf.get(..len).map(Ipv4Packet::new_checked) {
                Some(Ok(ip)) => ip.header_len(),
                _ => return Err(bad("truncated IPv4 header")),
            }
        };
        Ok(EspDatagram { src, offset, len })
    }
}

impl AsFd for RawEsp {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for RawEsp {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The `SO_MARK` of a socket (for tests and status output).
pub fn fwmark(sock: &impl AsFd) -> io::Result<u32> {
    get_int_opt(sock, libc::SOL_SOCKET, libc::SO_MARK).map(|v| v as u32)
}

fn get_int_opt(sock: &impl AsFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    sys::socket::get_int_opt(sock.as_fd(), level, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{require_root, NetNs};

    fn wait_readable(fd: RawFd) {
        let ready = crate::sys::fd::wait(fd, libc::POLLIN, 5000);
        assert!(ready, "socket did not become readable");
    }

    #[test]
    fn udp_500_to_500_between_namespaces() {
        if !require_root("socket::udp_500_to_500_between_namespaces") {
            return;
        }
        let (a, b) = NetNs::pair("udp").unwrap();
        for (local_b, remote_b, local_a) in [
            ("192.0.2.2", "192.0.2.2:500", "192.0.2.1"),
            ("2001:db8::2", "[2001:db8::2]:500", "2001:db8::1"),
        ] {
            let opts = SocketOptions {
                fwmark: Some(0x1234),
                nonblocking: true,
                buffer_bytes: None,
            };
            let rx = b.run(|| bind_ike(local_b.parse().unwrap(), &opts).unwrap());
            let tx = a.run(|| bind_ike(local_a.parse().unwrap(), &opts).unwrap());
            assert_eq!(fwmark(&tx.ike).unwrap(), 0x1234);
            assert_eq!(tx.nat_t.local_addr().unwrap().port(), 4500);
            if local_a.contains('.') {
                let pmtu = get_int_opt(&tx.nat_t, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER);
                assert_eq!(pmtu.unwrap(), libc::IP_PMTUDISC_DONT);
            }
            tx.ike.send_to(b"MM1", remote_b).unwrap();
            wait_readable(rx.ike.as_raw_fd());
            let mut buf = [0u8; 16];
            let (n, from) = rx.ike.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"MM1");
            assert_eq!(from, SocketAddr::new(local_a.parse().unwrap(), 500));
        }
    }

    #[test]
    fn raw_esp_between_namespaces() {
        if !require_root("socket::raw_esp_between_namespaces") {
            return;
        }
        let (a, b) = NetNs::pair("esp").unwrap();
        let opts = SocketOptions {
            fwmark: Some(7),
            nonblocking: false,
            buffer_bytes: None,
        };
        let esp = [0x00, 0x00, 0x10, 0x01, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        for (la, lb) in [("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")] {
            let (la, lb): (IpAddr, IpAddr) = (la.parse().unwrap(), lb.parse().unwrap());
            let rx = b.run(|| RawEsp::open(lb, &opts).unwrap());
            let tx = a.run(|| RawEsp::open(la, &opts).unwrap());
            assert_eq!(fwmark(&tx).unwrap(), 7);
            // IPv4 has the send-only socket beside it, with the same mark; IPv6 does not.
            match tx.hdrincl() {
                Some(h) => {
                    assert_eq!((IpAddr::V4(h.src), h.fallback), (la, tx.as_raw_fd()));
                    let fd = &tx.tx.as_ref().unwrap().0;
                    assert_eq!(fd.as_raw_fd(), h.fd);
                    assert_eq!(fwmark(fd).unwrap(), 7);
                    let proto = get_int_opt(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).unwrap();
                    assert_eq!(proto, libc::IPPROTO_RAW);
                    assert_eq!(
                        u32::from(h.ttl),
                        get_int_opt(&tx, libc::IPPROTO_IP, libc::IP_TTL).unwrap() as u32
                    );
                }
                None => assert!(la.is_ipv6(), "no IPPROTO_RAW socket for {la}"),
            }
            if la.is_ipv4() {
                let pmtu = get_int_opt(&tx, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER).unwrap();
                assert_eq!(pmtu, libc::IP_PMTUDISC_DONT);
            }
            // Larger than the 1500-byte veth: fragmented on the way, whole at the receiver.
            let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
            assert_eq!(tx.send_to(&big, lb).unwrap(), big.len());
            wait_readable(rx.as_raw_fd());
            let mut buf = [0u8; 4096];
            let d = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[d.offset..d.len], &big[..]);
            // A packet of IP protocol 255 to b, sent before the ESP packet below (which is then
            // the barrier): b's send-only socket must not queue it.
            if let (IpAddr::V4(sa), IpAddr::V4(sb)) = (la, lb) {
                let other = a.run(|| {
                    sys::socket::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW).unwrap()
                });
                let mut p = ferrovpn_esp::ip::ipv4_header(sa, sb, 255, 64, 28, false).to_vec();
                p.extend([0u8; 8]);
                sys::socket::send_to(other.as_raw_fd(), &p, SocketAddr::new(lb, 0)).unwrap();
            }
            assert_eq!(tx.send_to(&esp, lb).unwrap(), esp.len());
            wait_readable(rx.as_raw_fd());
            let mut buf = [0u8; 256];
            let d = rx.recv(&mut buf).unwrap();
            assert_eq!(d.src, la);
            assert_eq!(&buf[d.offset..d.len], &esp);
            assert_eq!(d.offset, if la.is_ipv4() { 20 } else { 0 });
            if let Some((fd, _)) = rx.tx.as_ref() {
                sys::fd::set_nonblocking(fd.as_fd(), true).unwrap();
                let got = sys::socket::recv_from(fd.as_fd(), &mut buf);
                assert_eq!(
                    got.map(|(n, _)| n).unwrap_err().kind(),
                    io::ErrorKind::WouldBlock,
                    "the send-only socket queued input"
                );
            }
            let wrong = if la.is_ipv4() {
                "2001:db8::2"
            } else {
                "192.0.2.2"
            };
            assert_eq!(
                tx.send_to(&esp, wrong.parse().unwrap()).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }
}
