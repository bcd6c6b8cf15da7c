//! UDP send with GSO: ferrovpn's batch (crates/ferrovpn/src/daemon/dataplane.rs `SendList`:
//! one `sendmmsg` per 64 packets, each run of equal-sized packets one message with an iovec per
//! packet and a `UDP_SEGMENT` cmsg, at most 64 segments / 65,000 bytes) against quinn-udp 0.6
//! (`UdpSocketState::try_send`: one `sendmsg` per `Transmit`, a contiguous buffer cut into
//! `segment_size` datagrams by the kernel). "quinn-copy" first copies the packets from their
//! own buffers into the contiguous one, as the ESP pipeline (one buffer per packet) would have
//! to. The `SendList` logic is restated here (it is private to the daemon); the syscalls,
//! message layout and limits are the same.
//! Usage: udp ADDR ROUNDS PACKETS SIZE — alternates ours / quinn / quinn-copy ROUNDS times,
//! prints each run, then the median packets/s of each and the ratios.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_udp::{Transmit, UdpSocketState};

const BATCH: usize = 64;
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Cmsg([u8; 32]);

fn ours_send(fd: i32, dst: SocketAddr, pkts: &[Box<[u8]>]) {
    let seg = pkts[0].len();
    let per_msg = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / seg).max(1);
    let iovs: Vec<libc::iovec> = pkts
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr() as *mut _,
            iov_len: p.len(),
        })
        .collect();
    let (mut ss, len) = sockaddr(dst);
    let nmsgs = pkts.len().div_ceil(per_msg);
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; nmsgs];
    let mut cmsgs = vec![Cmsg([0; 32]); nmsgs];
    for (k, h) in hdrs.iter_mut().enumerate() {
        let first = k * per_msg;
        let n = per_msg.min(pkts.len() - first);
        h.msg_hdr.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_namelen = len;
        h.msg_hdr.msg_iov = iovs[first..].as_ptr() as *mut _;
        h.msg_hdr.msg_iovlen = n as _;
        if n > 1 {
            unsafe {
                h.msg_hdr.msg_control = cmsgs[k].0.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = libc::CMSG_SPACE(2) as _;
                let cm = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                (*cm).cmsg_level = libc::IPPROTO_UDP;
                (*cm).cmsg_type = UDP_SEGMENT;
                (*cm).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<u16>(), seg as u16);
            }
        }
    }
    let mut done = 0;
    while done < nmsgs {
        let r = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr().add(done), (nmsgs - done) as _, 0) };
        assert!(r > 0, "sendmmsg: {}", std::io::Error::last_os_error());
        done += r as usize;
    }
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let SocketAddr::V4(a) = a else {
        panic!("IPv4 only")
    };
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as _,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
    (ss, std::mem::size_of::<libc::sockaddr_in>() as _)
}

fn quinn_send(state: &UdpSocketState, sock: &UdpSocket, dst: SocketAddr, flat: &[u8], seg: usize) {
    let per = state.max_gso_segments().min(GSO_MAX_BYTES / seg).max(1);
    for chunk in flat.chunks(per * seg) {
        let t = Transmit {
            destination: dst,
            ecn: None,
            contents: chunk,
            segment_size: (chunk.len() > seg).then_some(seg),
            src_ip: None,
        };
        state.try_send(sock.into(), &t).expect("quinn-udp send");
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let dst: SocketAddr = a[1].parse().unwrap();
    let rounds: usize = a[2].parse().unwrap();
    let packets: usize = a[3].parse().unwrap();
    let size: usize = a[4].parse().unwrap();

    // One receiver for every run: UDP_GRO on, drained with recv (coalesced 64 KiB reads).
    let rx = UdpSocket::bind(dst).unwrap();
    let on: libc::c_int = 1;
    let big: libc::c_int = 64 << 20;
    unsafe {
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            4,
        );
        libc::setsockopt(
            rx.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            4,
        );
    }
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (r2, s2) = (received.clone(), stop.clone());
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        while !s2.load(Ordering::Relaxed) {
            if let Ok(n) = rx.recv(&mut buf) {
                r2.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    });

    let tx = UdpSocket::bind(SocketAddr::new(dst.ip(), 0)).unwrap();
    let state = UdpSocketState::new((&tx).into()).unwrap();
    println!("quinn-udp max_gso_segments {}", state.max_gso_segments());
    let pkts: Vec<Box<[u8]>> = (0..BATCH)
        .map(|i| vec![i as u8; size].into_boxed_slice())
        .collect();
    let mut flat = vec![0u8; BATCH * size];
    let modes = ["ours", "quinn-udp", "quinn-udp+copy"];
    let mut rates: Vec<Vec<f64>> = vec![vec![]; modes.len()];
    for round in 0..rounds {
        for (m, name) in modes.iter().enumerate() {
            // Let the receiver drain what the last run left.
            std::thread::sleep(Duration::from_millis(150));
            let before = received.load(Ordering::Relaxed);
            let t = Instant::now();
            for _ in 0..packets / BATCH {
                match m {
                    0 => ours_send(tx.as_raw_fd(), dst, &pkts),
                    1 => quinn_send(&state, &tx, dst, &flat, size),
                    _ => {
                        for (d, p) in flat.chunks_mut(size).zip(&pkts) {
                            d.copy_from_slice(p);
                        }
                        quinn_send(&state, &tx, dst, &flat, size)
                    }
                }
            }
            let secs = t.elapsed().as_secs_f64();
            std::thread::sleep(Duration::from_millis(150));
            let got = (received.load(Ordering::Relaxed) - before) as f64 / size as f64;
            let sent = (packets / BATCH * BATCH) as f64;
            let rate = sent / secs;
            rates[m].push(rate);
            println!(
                "round {round} {name:15} {:>10.0} pkt/s {:>7.2} Gbit/s  received {:.1}%",
                rate,
                rate * size as f64 * 8.0 / 1e9,
                100.0 * got / sent
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    drain.join().unwrap();
    let med: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
    println!("median over {rounds} alternating rounds, {packets} packets of {size} bytes:");
    for (n, m) in modes.iter().zip(&med) {
        println!("  {n:15} {m:>10.0} pkt/s  ({:.2}x ours)", m / med[0]);
    }
}
