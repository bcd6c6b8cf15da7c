//! Fuzz target: arbitrary TUN reads (virtio-net header + packet) through the segmenter, and
//! arbitrary packets through the coalescer. Neither may panic; segments must fit their buffer.
#![no_main]

use ferrovpn_esp::offload::{Gro, Role, Segmenter, VnetHdr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = vec![0u8; 9216];
    let mut segments = Vec::new();
    if let Ok((hdr, packet)) = VnetHdr::split(data) {
        if let Ok(mut s) = Segmenter::new(&hdr, packet) {
            while let Some(r) = s.next_into(packet, &mut out) {
                match r {
                    Ok(n) => {
                        assert!(n <= out.len());
                        if segments.len() < 64 {
                            segments.push(out[..n].to_vec());
                        }
                    }
                    Err(_) => break,
                }
            }
        }
    }
    // The input cut at every 0xff byte, plus the segments, as one batch to coalesce.
    segments.extend(data.split(|&b| b == 0xff).map(<[u8]>::to_vec));
    let mut gro = Gro::new();
    gro.plan(segments.len(), |i| segments.get(i).map(Vec::as_slice));
    for i in 0..segments.len() {
        if gro.role(i) == Role::Head {
            let mut head = segments[i].clone();
            let hdr = gro.merge_headers(i, &mut head).expect("a head merges");
            let members: Vec<usize> = gro.members(i).collect();
            assert!(!members.is_empty() && members.iter().all(|&m| m > i));
            assert!(usize::from(hdr.hdr_len) <= head.len());
        }
    }
});
