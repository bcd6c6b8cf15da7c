//! TUN packet I/O: ferrovpn's `ferrovpn::tun::Tun` against tun-rs 2 (`SyncDevice`), both
//! without offloads (no `IFF_VNET_HDR`), one queue each, on two devices in one namespace.
//! write: IPv4/UDP packets written into the device (the kernel routes and drops them: their
//! destination is not local and forwarding is off). read: a UDP socket sends GSO runs of 46
//! datagrams to an address behind the device (the kernel segments them), the benchmark reads
//! them out. Alternating rounds, medians and the ratio.
//! Usage (root, inside a fresh network namespace): tun ROUNDS PACKETS SIZE

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrovpn::tun::{Tun, TunOptions};

const UDP_SEGMENT: libc::c_int = 103;

fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split(' '))
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip {args}");
}

/// An IPv4/UDP packet of `size` bytes from `src` to `dst` (header checksum filled in).
fn packet(src: [u8; 4], dst: [u8; 4], size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let mut sum: u32 = p[..20]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&4500u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((size - 20) as u16).to_be_bytes());
    p
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Reads `n` packets with `read`, while a thread sends GSO runs towards `dst` until they are in.
fn read_rate(n: usize, dst: &str, size: usize, mut read: impl FnMut(&mut [u8]) -> usize) -> f64 {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let dst = dst.to_string();
    let payload = size - 28;
    let sender = std::thread::spawn(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let seg = payload as libc::c_int;
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_UDP,
                UDP_SEGMENT,
                (&seg as *const libc::c_int).cast(),
                4,
            );
        }
        let buf = vec![7u8; payload * (65_000 / payload)];
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = s.send_to(&buf, &dst);
        }
    });
    let mut buf = vec![0u8; 65_536];
    // Warm up: the first packets in, then time the rest.
    for _ in 0..1000 {
        read(&mut buf);
    }
    let t = Instant::now();
    let mut got = 0;
    while got < n {
        if read(&mut buf) > 0 {
            got += 1;
        }
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender.join().unwrap();
    // Empty the queue for the next run.
    std::thread::sleep(Duration::from_millis(50));
    rate
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rounds: usize = a[1].parse().unwrap();
    let n: usize = a[2].parse().unwrap();
    let size: usize = a[3].parse().unwrap();

    let ours = Tun::open("fvab0", TunOptions::default()).expect("ours: open");
    let mut b = tun_rs::DeviceBuilder::new().name("fvab1");
    b = b.enable(true);
    let theirs = b.build_sync().expect("tun-rs: open");
    ip("addr add 198.51.100.1/25 dev fvab0");
    ip("link set fvab0 up");
    ip("addr add 198.51.100.129/25 dev fvab1");
    ip("link set fvab1 up");
    ip("link set lo up");

    let p0 = packet([198, 51, 100, 2], [203, 0, 113, 9], size);
    let p1 = packet([198, 51, 100, 130], [203, 0, 113, 9], size);
    let names = ["write ours", "write tun-rs", "read ours", "read tun-rs"];
    let mut rates: Vec<Vec<f64>> = vec![vec![]; 4];
    for round in 0..rounds {
        for (m, name) in names.iter().enumerate() {
            let rate = match m {
                0 => {
                    let t = Instant::now();
                    for _ in 0..n {
                        ours.write(&p0).unwrap();
                    }
                    n as f64 / t.elapsed().as_secs_f64()
                }
                1 => {
                    let t = Instant::now();
                    for _ in 0..n {
                        theirs.send(&p1).unwrap();
                    }
                    n as f64 / t.elapsed().as_secs_f64()
                }
                2 => read_rate(n, "198.51.100.2:9", size, |b| ours.read(b).unwrap_or(0)),
                _ => read_rate(n, "198.51.100.130:9", size, |b| theirs.recv(b).unwrap_or(0)),
            };
            rates[m].push(rate);
            println!("round {round} {name:13} {rate:>10.0} pkt/s");
        }
    }
    println!("median over {rounds} alternating rounds, {n} packets of {size} bytes:");
    let med: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
    for (i, name) in names.iter().enumerate() {
        let base = med[i - i % 2];
        println!(
            "  {name:13} {:>10.0} pkt/s  ({:.2}x ours)",
            med[i],
            med[i] / base
        );
    }
}
