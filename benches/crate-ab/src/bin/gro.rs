//! TUN write with GRO (`IFF_VNET_HDR`, TUN_F_CSUM|TSO4): batches of 64 TCP/IPv4 segments of one
//! flow (1448 bytes of payload each, in sequence, ACK only) written into a TUN, coalesced first.
//! ours: ferrovpn-esp `offload::Gro::plan` + `merge_headers`, then one `writev` per super-packet
//! (virtio-net header, head packet, members' payloads as iovecs: no copy), as
//! crates/ferrovpn/src/daemon/dataplane.rs does. tun-rs: `SyncDevice::send_multiple` with a
//! `GROTable` (coalesces by copying members' payloads into the head's buffer, one `write` per
//! super-packet). The kernel drops what arrives (non-local destination, forwarding off). Both
//! get their 64 buffers refilled from the same template before every batch (what decryption
//! does in the pipeline). Alternating rounds, medians (segments/s) and the ratio.
//! Usage (root, inside a fresh network namespace): gro ROUNDS BATCHES

use std::io::IoSlice;
use std::process::Command;
use std::time::Instant;

use ferrovpn::tun::{Tun, TunOptions, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6};
use ferrovpn_esp::offload::{Gro, Role, MAX_SEGMENTS, VNET_HDR_LEN};

const MSS: usize = 1448;
const BATCH: usize = 64;

fn ip(args: &str) {
    let ok = Command::new("ip")
        .args(args.split(' '))
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip {args}");
}

/// Segment `k` of one TCP flow 198.51.100.2:40000 -> 203.0.113.9:5001.
fn segment(k: usize, src: [u8; 4]) -> Vec<u8> {
    let len = 40 + MSS;
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..6].copy_from_slice(&(1000 + k as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&[203, 0, 113, 9]);
    let mut s: u32 = p[..20]
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    p[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5001u16.to_be_bytes());
    p[24..28].copy_from_slice(&(1_000_000u32 + (k * MSS) as u32).to_be_bytes());
    p[28..32].copy_from_slice(&77u32.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x10; // ACK
    p[34..36].copy_from_slice(&512u16.to_be_bytes());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = (i + k) as u8;
    }
    // A valid TCP checksum, as decrypted packets carry.
    let mut sum: u32 = 0;
    for c in [&p[12..20]].into_iter().flat_map(|s| s.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    sum += 6 + (len - 20) as u32;
    for c in p[20..].chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[36..38].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rounds: usize = a[1].parse().unwrap();
    let batches: usize = a[2].parse().unwrap();

    let ours = Tun::open(
        "fvab2",
        TunOptions {
            vnet_hdr: true,
            ..Default::default()
        },
    )
    .expect("ours: open");
    ours.set_offload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        .expect("ours: offload");
    let theirs = tun_rs::DeviceBuilder::new()
        .name("fvab3")
        .offload(true)
        .build_sync()
        .expect("tun-rs: open");
    ip("addr add 198.51.100.1/25 dev fvab2");
    ip("link set fvab2 up");
    ip("addr add 198.51.100.129/25 dev fvab3");
    ip("link set fvab3 up");

    let tmpl_a: Vec<Vec<u8>> = (0..BATCH).map(|k| segment(k, [198, 51, 100, 2])).collect();
    let tmpl_b: Vec<Vec<u8>> = (0..BATCH)
        .map(|k| {
            let mut b = vec![0u8; VNET_HDR_LEN];
            b.extend(segment(k, [198, 51, 100, 130]));
            b
        })
        .collect();
    let mut pkts_a = tmpl_a.clone();
    let mut bufs_b: Vec<Vec<u8>> = tmpl_b
        .iter()
        .map(|b| {
            let mut v = Vec::with_capacity(65_600);
            v.extend_from_slice(b);
            v
        })
        .collect();
    let mut gro = Gro::new();
    let mut table = tun_rs::GROTable::default();
    let plain = [0u8; VNET_HDR_LEN];

    let mut writes_a = 0usize;
    let mut rates = [vec![], vec![]];
    for round in 0..rounds {
        for m in 0..2 {
            let t = Instant::now();
            for _ in 0..batches {
                if m == 0 {
                    for (p, t) in pkts_a.iter_mut().zip(&tmpl_a) {
                        p.copy_from_slice(t);
                    }
                    gro.plan(BATCH, |i| pkts_a.get(i).map(|p| p.as_slice()));
                    for i in 0..BATCH {
                        match gro.role(i) {
                            Role::Skip | Role::Member => {}
                            Role::Single => {
                                ours.writev(&[IoSlice::new(&plain), IoSlice::new(&pkts_a[i])])
                                    .unwrap();
                                writes_a += 1;
                            }
                            Role::Head => {
                                let hdr = gro.merge_headers(i, &mut pkts_a[i]).expect("merge");
                                let vnet = hdr.emit();
                                let hl = gro.header_len(i).unwrap_or(0);
                                let mut parts = [IoSlice::new(&[]); MAX_SEGMENTS + 1];
                                let mut n = 0;
                                for (slot, d) in parts.iter_mut().zip(
                                    std::iter::once(&vnet[..])
                                        .chain(std::iter::once(pkts_a[i].as_slice()))
                                        .chain(gro.members(i).map(|k| &pkts_a[k][hl..])),
                                ) {
                                    *slot = IoSlice::new(d);
                                    n += 1;
                                }
                                ours.writev(&parts[..n]).unwrap();
                                writes_a += 1;
                            }
                        }
                    }
                } else {
                    for (b, t) in bufs_b.iter_mut().zip(&tmpl_b) {
                        b.clear();
                        b.extend_from_slice(t);
                    }
                    theirs
                        .send_multiple(&mut table, &mut bufs_b, VNET_HDR_LEN)
                        .unwrap();
                }
            }
            let r = (batches * BATCH) as f64 / t.elapsed().as_secs_f64();
            rates[m].push(r);
            println!(
                "round {round} {:7} {:>10.0} segments/s",
                ["ours", "tun-rs"][m],
                r
            );
        }
    }
    println!(
        "ours: {:.1} writes per batch of {BATCH}",
        writes_a as f64 / (rounds * batches) as f64
    );
    // What the kernel received: one rx packet per write (a super-packet counts once).
    let rx = |dev: &str| -> f64 {
        std::fs::read_to_string(format!("/sys/class/net/{dev}/statistics/rx_packets"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    let total = (rounds * batches) as f64;
    println!(
        "kernel rx packets per batch: ours {:.1}, tun-rs {:.1}",
        rx("fvab2") / total,
        rx("fvab3") / total
    );
    let (x, y) = (median(&mut rates[0]), median(&mut rates[1]));
    println!("median over {rounds} alternating rounds of {batches} batches of {BATCH} segments:");
    println!("  ours    {x:>10.0} segments/s");
    println!("  tun-rs  {y:>10.0} segments/s, {:.2}x ours", y / x);
}
