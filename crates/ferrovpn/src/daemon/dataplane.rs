//! The ESP pipelines' I/O: TUN devices and ESP sockets behind the esp crate's
//! `PacketSource`/`PacketSink`, and the outbound policy table that picks an SA per packet.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crossbeam_channel::Sender;
use ferrovpn_esp::nat_t::{classify, UdpPayload};
use ferrovpn_esp::{Batch, Encap, PacketSink, PacketSource, Recv, SaHandle};
use ferrovpn_ike::Datagram;

use crate::ipnet::IpNet;
use crate::socket::RawEsp;
use crate::tun::Tun;

/// How long a source waits for packets before reporting `Idle` (so shutdown is noticed).
const POLL_MS: i32 = 100;

/// An outbound policy: packets from `local` to `remote` read from TUN `tun` use `handle`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub tun: usize,
    pub local: IpNet,
    pub remote: IpNet,
    pub handle: SaHandle,
}

/// Drops the data plane counts outside the SAD.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Packets read from a TUN that no installed SA covers.
    pub no_policy: AtomicU64,
    pub send_errors: AtomicU64,
    pub tun_write_errors: AtomicU64,
    /// UDP/4500 payloads that were neither IKE, ESP nor keepalives.
    pub malformed_udp: AtomicU64,
}

/// What the pipelines and the control loop share.
pub struct Shared {
    pub tuns: Vec<Arc<Tun>>,
    /// Newest last: the most recent SA for a selector pair wins (make-before-break rekey).
    pub policies: RwLock<Vec<Policy>>,
    /// Inbound SA → TUN its packets are written to.
    pub inbound: RwLock<HashMap<SaHandle, usize>>,
    pub raw: HashMap<IpAddr, Arc<RawEsp>>,
    /// UDP 4500 sockets by local address (ESP-in-UDP out; IKE+ESP in).
    pub nat_t: HashMap<IpAddr, Arc<UdpSocket>>,
    pub counters: IoCounters,
}

fn poll_in(fds: &[RawFd]) -> Vec<bool> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: pfds is a valid array of pollfd for the duration of the call.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, POLL_MS) };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    pfds.iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLERR) != 0)
        .collect()
}

/// (source, destination) of an IPv4/IPv6 packet; None when it is neither.
fn addresses(p: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match p.first()? >> 4 {
        4 => {
            let s: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = p.get(16..20)?.try_into().ok()?;
            Some((IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d))))
        }
        6 => {
            let s: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = p.get(24..40)?.try_into().ok()?;
            Some((IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d))))
        }
        _ => None,
    }
}

/// Inner packets from the TUN devices, each tagged with its outbound SA.
pub struct TunSource {
    pub shared: Arc<Shared>,
}

impl PacketSource for TunSource {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv {
        let fds: Vec<RawFd> = self.shared.tuns.iter().map(|t| t.as_raw_fd()).collect();
        let ready = poll_in(&fds);
        if !ready.contains(&true) {
            return Recv::Idle;
        }
        let Ok(policies) = self.shared.policies.read() else {
            return Recv::Closed;
        };
        for (i, tun) in self.shared.tuns.iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                continue;
            }
            while let Some(p) = batch.push() {
                match tun.read(p.spare_mut()) {
                    Ok(n) => {
                        p.set_len(n);
                        let sa = addresses(p.data()).and_then(|(src, dst)| {
                            policies
                                .iter()
                                .rev()
                                .find(|x| {
                                    x.tun == i
                                        && x.remote.contains_addr(dst)
                                        && x.local.contains_addr(src)
                                })
                                .map(|x| x.handle)
                        });
                        match sa {
                            Some(h) => p.sa = Some(h),
                            None => {
                                self.shared
                                    .counters
                                    .no_policy
                                    .fetch_add(1, Ordering::Relaxed);
                                batch.pop();
                            }
                        }
                    }
                    Err(_) => {
                        batch.pop();
                        break;
                    }
                }
            }
        }
        Recv::Data
    }
}

/// ESP packets out: raw protocol 50 or ESP-in-UDP, as the SA says.
pub struct EspSink {
    pub shared: Arc<Shared>,
}

impl PacketSink for EspSink {
    fn send_batch(&mut self, batch: &mut Batch) {
        for p in batch.ok_packets() {
            let Some((t, encap)) = p.tunnel else { continue };
            let r = match encap {
                Encap::Raw => match self.shared.raw.get(&t.local) {
                    Some(raw) => raw.send_to(p.data(), t.remote),
                    None => Err(io::Error::other("no raw ESP socket")),
                },
                Encap::Udp { remote_port, .. } => match self.shared.nat_t.get(&t.local) {
                    Some(s) => s.send_to(p.data(), SocketAddr::new(t.remote, remote_port)),
                    None => Err(io::Error::other("no UDP 4500 socket")),
                },
            };
            if r.is_err() {
                self.shared
                    .counters
                    .send_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// ESP packets in, from the raw sockets and UDP 4500; IKE found on 4500 goes to the control
/// loop through `ike` (and a wake-up).
pub struct EspSource {
    pub shared: Arc<Shared>,
    pub ike: Sender<Datagram>,
    pub wake: Arc<mio::Waker>,
    scratch: Vec<u8>,
}

impl EspSource {
    pub fn new(shared: Arc<Shared>, ike: Sender<Datagram>, wake: Arc<mio::Waker>) -> Self {
        EspSource {
            shared,
            ike,
            wake,
            scratch: vec![0u8; 65536],
        }
    }
}

impl PacketSource for EspSource {
    fn recv_batch(&mut self, batch: &mut Batch) -> Recv {
        let raws: Vec<(IpAddr, Arc<RawEsp>)> = self
            .shared
            .raw
            .iter()
            .map(|(a, r)| (*a, r.clone()))
            .collect();
        let udps: Vec<(IpAddr, Arc<UdpSocket>)> = self
            .shared
            .nat_t
            .iter()
            .map(|(a, s)| (*a, s.clone()))
            .collect();
        let fds: Vec<RawFd> = raws
            .iter()
            .map(|(_, r)| r.as_raw_fd())
            .chain(udps.iter().map(|(_, s)| s.as_raw_fd()))
            .collect();
        let ready = poll_in(&fds);
        if !ready.contains(&true) {
            return Recv::Idle;
        }
        for (i, (_, raw)) in raws.iter().enumerate() {
            if !ready.get(i).copied().unwrap_or(false) {
                continue;
            }
            while !batch.is_full() {
                match raw.recv(&mut self.scratch) {
                    Ok(d) => {
                        if let (Some(p), Some(esp)) =
                            (batch.push(), self.scratch.get(d.offset..d.len))
                        {
                            if !p.fill(esp) {
                                batch.pop();
                            }
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        for (j, (local, sock)) in udps.iter().enumerate() {
            if !ready.get(raws.len() + j).copied().unwrap_or(false) {
                continue;
            }
            let local_addr = SocketAddr::new(*local, 4500);
            while let Some(p) = batch.push() {
                match sock.recv_from(p.spare_mut()) {
                    Ok((n, from)) => {
                        p.set_len(n);
                        match classify(p.data()) {
                            UdpPayload::Esp(_) => {}
                            UdpPayload::Ike(msg) => {
                                let _ = self.ike.send(Datagram {
                                    local: local_addr,
                                    remote: from,
                                    data: msg.to_vec(),
                                });
                                let _ = self.wake.wake();
                                batch.pop();
                            }
                            UdpPayload::Keepalive => batch.pop(),
                            UdpPayload::Malformed => {
                                self.shared
                                    .counters
                                    .malformed_udp
                                    .fetch_add(1, Ordering::Relaxed);
                                batch.pop();
                            }
                        }
                    }
                    Err(_) => {
                        batch.pop();
                        break;
                    }
                }
            }
        }
        Recv::Data
    }
}

/// Decapsulated inner packets into the TUN of their connection.
pub struct TunSink {
    pub shared: Arc<Shared>,
}

impl PacketSink for TunSink {
    fn send_batch(&mut self, batch: &mut Batch) {
        let Ok(inbound) = self.shared.inbound.read() else {
            return;
        };
        for p in batch.ok_packets() {
            let tun =
                p.sa.and_then(|h| inbound.get(&h))
                    .and_then(|i| self.shared.tuns.get(*i));
            match tun {
                Some(t) if t.write(p.data()).is_ok() => {}
                _ => {
                    self.shared
                        .counters
                        .tun_write_errors
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_ipv4_and_ipv6_packets() {
        let mut v4 = vec![0x45u8; 20];
        v4[12..16].copy_from_slice(&[198, 51, 100, 1]);
        v4[16..20].copy_from_slice(&[203, 0, 113, 1]);
        assert_eq!(
            addresses(&v4),
            Some((
                "198.51.100.1".parse().unwrap(),
                "203.0.113.1".parse().unwrap()
            ))
        );
        let mut v6 = vec![0u8; 40];
        v6[0] = 0x60;
        v6[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            addresses(&v6).unwrap().1,
            "2001:db8::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(addresses(&[0x45, 0]), None);
        assert_eq!(addresses(&[]), None);
        assert_eq!(addresses(&[0x10; 60]), None);
    }
}
