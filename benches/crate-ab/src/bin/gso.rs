//! TSO super-packet split (what a TUN with `IFF_VNET_HDR` and TUN_F_TSO4 hands up):
//! ferrovpn-esp's `offload::Segmenter` (crates/esp/src/offload.rs) against tun-rs 2's
//! `gso_split` (the function its `SyncDevice::recv_multiple` calls), in memory, same input:
//! one IPv4/TCP super-packet of 45 × 1448 bytes of payload (a full 64 KiB TSO read).
//! First checks that both produce the same segments, then alternates rounds of N splits
//! each and prints medians (super-packets/s and segments/s) and the ratio.
//! Usage: gso ROUNDS SPLITS

use std::time::Instant;

use ferrovpn_esp::offload::{Segmenter, VnetHdr};
use tun_rs::VirtioNetHdr;

const MSS: usize = 1448;
const SEGS: usize = 45;

fn superpacket() -> Vec<u8> {
    let len = 40 + SEGS * MSS;
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[198, 51, 100, 1]);
    p[16..20].copy_from_slice(&[203, 0, 113, 1]);
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
    p[24..28].copy_from_slice(&1_000_000u32.to_be_bytes());
    p[28..32].copy_from_slice(&77u32.to_be_bytes());
    p[32] = 5 << 4;
    p[33] = 0x18; // PSH ACK
    p[34..36].copy_from_slice(&512u16.to_be_bytes());
    // Pseudo-header sum in the checksum field, as the kernel leaves it with NEEDS_CSUM.
    let mut ph: u32 = [198u16 << 8 | 51, 100 << 8 | 1, 203 << 8, 113 << 8 | 1, 6]
        .iter()
        .map(|&x| u32::from(x))
        .sum::<u32>()
        + (len - 20) as u32;
    while ph > 0xffff {
        ph = (ph & 0xffff) + (ph >> 16);
    }
    p[36..38].copy_from_slice(&(ph as u16).to_be_bytes());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    p
}

fn ours(input: &[u8], out: &mut [Vec<u8>], sizes: &mut [usize]) -> usize {
    let hdr = VnetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    let mut seg = Segmenter::new(&hdr, input).expect("ours: segmenter");
    let mut n = 0;
    while let Some(r) = seg.next_into(input, &mut out[n]) {
        sizes[n] = r.expect("ours: segment");
        n += 1;
    }
    n
}

fn theirs(input: &mut [u8], out: &mut [Vec<u8>], sizes: &mut [usize]) -> usize {
    let hdr = VirtioNetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    tun_rs::gso_split(input, hdr, out, sizes, 0, false).expect("tun-rs: gso_split")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rounds: usize = a[1].parse().unwrap();
    let n: usize = a[2].parse().unwrap();
    let sp = superpacket();
    {
        // Which bytes does tun-rs change in its input?
        let (mut i, mut o, mut z) = (sp.clone(), vec![vec![0u8; 2048]; 64], vec![0usize; 64]);
        theirs(&mut i, &mut o, &mut z);
        let changed: Vec<usize> = (0..sp.len()).filter(|&k| i[k] != sp[k]).collect();
        println!("tun-rs changes input bytes {changed:?}");
    }
    let mut input = sp.clone();
    let mut out_a = vec![vec![0u8; 2048]; 64];
    let mut out_b = vec![vec![0u8; 2048]; 64];
    let (mut sa, mut sb) = (vec![0usize; 64], vec![0usize; 64]);
    let na = ours(&sp, &mut out_a, &mut sa);
    let nb = theirs(&mut input, &mut out_b, &mut sb);
    let same = na == nb && (0..na).all(|i| out_a[i][..sa[i]] == out_b[i][..sb[i]]);
    println!("segments: ours {na}, tun-rs {nb}; identical bytes: {same}");
    if !same {
        for i in 0..na.min(nb) {
            if out_a[i][..sa[i]] != out_b[i][..sb[i]] {
                let d = (0..sa[i].min(sb[i])).find(|&k| out_a[i][k] != out_b[i][k]);
                println!(
                    "  segment {i} differs first at byte {d:?} (lengths {} / {})",
                    sa[i], sb[i]
                );
                break;
            }
        }
    }
    let mut rates = [vec![], vec![]];
    for round in 0..rounds {
        for m in 0..2 {
            let t = Instant::now();
            for _ in 0..n {
                // tun-rs rewrites the headers of its input in place: both get them back.
                input[..40].copy_from_slice(&sp[..40]);
                if m == 0 {
                    std::hint::black_box(ours(&input, &mut out_a, &mut sa));
                } else {
                    std::hint::black_box(theirs(&mut input, &mut out_b, &mut sb));
                }
            }
            let r = n as f64 / t.elapsed().as_secs_f64();
            rates[m].push(r);
            println!(
                "round {round} {:7} {:>9.0} super-packets/s ({:.2} M segments/s)",
                ["ours", "tun-rs"][m],
                r,
                r * SEGS as f64 / 1e6
            );
        }
    }
    let (a, b) = (median(&mut rates[0]), median(&mut rates[1]));
    println!("median over {rounds} alternating rounds of {n} splits:");
    println!(
        "  ours    {a:>9.0} super-packets/s ({:.2} M segments/s)",
        a * SEGS as f64 / 1e6
    );
    println!(
        "  tun-rs  {b:>9.0} super-packets/s ({:.2} M segments/s), {:.2}x ours",
        b * SEGS as f64 / 1e6,
        b / a
    );
}
