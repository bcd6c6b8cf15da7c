//! ferrovpn's capture reader (crates/ferrovpn/src/decode/capture.rs) against pcap-file 3.0.0-rc.3
//! on the same files: frame count, link type, timestamp and bytes per frame; then the same files
//! cut short and with bytes flipped, counting panics (caught) of each reader.
//! Usage: pcap FILE... (the repository's test captures; synthetic big-endian, nanosecond and
//! pcapng SPB/PB/if_tsresol files are generated here too).

use std::panic::{catch_unwind, AssertUnwindSafe};

use ferrovpn::decode::capture;
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::{Block, PcapNgParser};

/// (link type, seconds, nanoseconds, bytes) per frame.
type Frames = Vec<(u32, u64, u32, Vec<u8>)>;

fn ours(buf: &[u8]) -> Result<(Frames, bool), String> {
    let c = capture::read(buf).map_err(|e| e.to_string())?;
    let frames = c
        .frames
        .iter()
        .map(|f| {
            (
                u32::from(f.link_type),
                f.time.secs,
                f.time.nanos,
                f.data.to_vec(),
            )
        })
        .collect();
    Ok((frames, c.stopped.is_none()))
}

fn theirs(buf: &[u8]) -> Result<(Frames, bool), String> {
    let mut out = Vec::new();
    let magic = buf.get(..4).ok_or("short")?;
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let (mut rest, mut p) = PcapNgParser::new(buf).map_err(|e| e.to_string())?;
        while !rest.is_empty() {
            let (r, block) = match p.next_block(rest) {
                Ok(x) => x,
                Err(_) => return Ok((out, false)),
            };
            let link = |p: &PcapNgParser, i: u32| {
                p.interfaces()
                    .get(i as usize)
                    .map(|d| u32::from(d.linktype))
            };
            match block {
                Block::EnhancedPacket(b) => {
                    let l = link(&p, b.interface_id).unwrap_or(u32::MAX);
                    let t = b.timestamp;
                    out.push((l, t.as_secs(), t.subsec_nanos(), b.data.to_vec()));
                }
                Block::SimplePacket(b) => {
                    let l = link(&p, 0).unwrap_or(u32::MAX);
                    out.push((l, 0, 0, b.data.to_vec()));
                }
                Block::Packet(b) => {
                    let l = link(&p, u32::from(b.interface_id)).unwrap_or(u32::MAX);
                    let t = b.timestamp;
                    out.push((l, t.as_secs(), t.subsec_nanos(), b.data.to_vec()));
                }
                _ => {}
            }
            rest = r;
        }
        Ok((out, true))
    } else {
        let (mut rest, p) = PcapParser::new(buf).map_err(|e| e.to_string())?;
        let link = u32::from(p.header().datalink);
        while !rest.is_empty() {
            let (r, pkt) = match p.next_packet(rest) {
                Ok(x) => x,
                Err(_) => return Ok((out, false)),
            };
            let t = pkt.timestamp();
            out.push((link, t.as_secs(), t.subsec_nanos(), pkt.data().to_vec()));
            rest = r;
        }
        Ok((out, true))
    }
}

fn pcap(le: bool, nanos: bool) -> Vec<u8> {
    let w32 =
        |o: &mut Vec<u8>, v: u32| o.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
    let w16 =
        |o: &mut Vec<u8>, v: u16| o.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
    let mut o = Vec::new();
    w32(&mut o, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    w16(&mut o, 2);
    w16(&mut o, 4);
    w32(&mut o, 0);
    w32(&mut o, 0);
    w32(&mut o, 65535);
    w32(&mut o, 101); // LINKTYPE_RAW
    for (i, len) in [20usize, 61, 1400].into_iter().enumerate() {
        w32(&mut o, 1_700_000_000 + i as u32);
        w32(&mut o, if nanos { 123_456_789 } else { 123_456 });
        w32(&mut o, len as u32);
        w32(&mut o, len as u32);
        o.extend((0..len).map(|b| b as u8));
    }
    o
}

fn pcapng(le: bool, tsresol: Option<u8>) -> Vec<u8> {
    let w32 =
        |o: &mut Vec<u8>, v: u32| o.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
    let w16 =
        |o: &mut Vec<u8>, v: u16| o.extend(if le { v.to_le_bytes() } else { v.to_be_bytes() });
    let block = |o: &mut Vec<u8>, t: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        w32(o, t);
        w32(o, len);
        o.extend(body);
        w32(o, len);
    };
    let mut o = Vec::new();
    let mut b = Vec::new();
    w32(&mut b, 0x1a2b_3c4d);
    w16(&mut b, 1);
    w16(&mut b, 0);
    b.extend((-1i64).to_le_bytes());
    block(&mut o, 0x0a0d_0d0a, &b);
    let mut b = Vec::new();
    w16(&mut b, 1); // LINKTYPE_ETHERNET
    w16(&mut b, 0);
    w32(&mut b, 0); // snaplen 0 = unlimited
    if let Some(r) = tsresol {
        w16(&mut b, 9);
        w16(&mut b, 1);
        b.extend([r, 0, 0, 0]);
        w32(&mut b, 0); // opt_endofopt
    }
    block(&mut o, 1, &b);
    let ticks: u64 = match tsresol {
        None => 1_700_000_000_123_456,
        Some(9) => 1_700_000_000_123_456_789,
        Some(_) => 1_700_000_000_000,
    };
    let data: Vec<u8> = (0..64u8).collect();
    // EPB
    let mut b = Vec::new();
    w32(&mut b, 0);
    w32(&mut b, (ticks >> 32) as u32);
    w32(&mut b, ticks as u32);
    w32(&mut b, 62);
    w32(&mut b, 62);
    b.extend(&data[..62]);
    b.extend([0, 0]);
    block(&mut o, 6, &b);
    // SPB
    let mut b = Vec::new();
    w32(&mut b, 64);
    b.extend(&data);
    block(&mut o, 3, &b);
    // obsolete PB
    let mut b = Vec::new();
    w16(&mut b, 0);
    w16(&mut b, 0);
    w32(&mut b, (ticks >> 32) as u32);
    w32(&mut b, ticks as u32);
    w32(&mut b, 64);
    w32(&mut b, 64);
    b.extend(&data);
    block(&mut o, 2, &b);
    o
}

/// Runs `f` and says whether it panicked.
fn panics(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let mut inputs: Vec<(String, Vec<u8>)> = std::env::args()
        .skip(1)
        .map(|p| (p.clone(), std::fs::read(&p).expect("read")))
        .collect();
    for (name, buf) in [
        ("synthetic pcap LE us", pcap(true, false)),
        ("synthetic pcap BE ns", pcap(false, true)),
        ("synthetic pcapng LE default tsresol", pcapng(true, None)),
        ("synthetic pcapng BE if_tsresol=9", pcapng(false, Some(9))),
        (
            "synthetic pcapng LE if_tsresol=2^-10",
            pcapng(true, Some(0x8a)),
        ),
    ] {
        inputs.push((name.into(), buf));
    }
    println!("file | ours frames | pcap-file frames | same frames (link, time, bytes)");
    let mut differ = 0;
    for (name, buf) in &inputs {
        let a = ours(buf);
        let b = theirs(buf);
        let (na, nb) = (
            a.as_ref().map(|x| x.0.len()).unwrap_or(0),
            b.as_ref().map(|x| x.0.len()).unwrap_or(0),
        );
        let same = match (&a, &b) {
            (Ok(x), Ok(y)) => x.0 == y.0,
            _ => false,
        };
        if !same {
            differ += 1;
            if let (Ok(x), Ok(y)) = (&a, &b) {
                for (f, g) in x.0.iter().zip(&y.0) {
                    if f != g {
                        println!(
                            "  first difference: ours link {} t={}.{:09} / pcap-file link {} t={}.{:09}",
                            f.0, f.1, f.2, g.0, g.1, g.2
                        );
                        break;
                    }
                }
            } else {
                println!(
                    "  ours {:?} / pcap-file {:?}",
                    a.as_ref().err(),
                    b.as_ref().err()
                );
            }
        }
        println!("{name} | {na} | {nb} | {}", if same { "yes" } else { "NO" });
    }
    // Damaged inputs: every truncation point and 20000 single-byte mutations per file.
    let (mut cases, mut p_ours, mut p_theirs) = (0u64, 0u64, 0u64);
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (_, buf) in &inputs {
        let mut variants: Vec<Vec<u8>> = (0..buf.len()).map(|n| buf[..n].to_vec()).collect();
        for _ in 0..20_000 {
            let mut v = buf.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % v.len();
                v[i] = next() as u8;
            }
            variants.push(v);
        }
        for v in variants {
            cases += 1;
            p_ours += u64::from(panics(|| drop(ours(&v))));
            p_theirs += u64::from(panics(|| drop(theirs(&v))));
        }
    }
    println!("damaged inputs: {cases}; panics: ours {p_ours}, pcap-file {p_theirs}");
    println!("files read differently: {differ} of {}", inputs.len());
}
