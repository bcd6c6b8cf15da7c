use super::*;
use proptest::prelude::*;

const SEQ0: u32 = 0xffff_f000;

/// A TCP super-packet as the kernel hands it to a TUN with TSO on: one IP/TCP header, the TCP
/// checksum field holding the pseudo-header sum, and its virtio-net header.
fn super_packet(
    v6: bool,
    payload: &[u8],
    mss: u16,
    flags: u8,
    options: &[u8],
) -> (VnetHdr, Vec<u8>) {
    tcp_packet(v6, payload, SEQ0, flags, options, mss, 0x1234)
}

fn tcp_packet(
    v6: bool,
    payload: &[u8],
    seq: u32,
    flags: u8,
    options: &[u8],
    mss: u16,
    id: u16,
) -> (VnetHdr, Vec<u8>) {
    assert_eq!(options.len() % 4, 0);
    let ip_len = if v6 { 40 } else { 20 };
    let tcp_len = 20 + options.len();
    let total = ip_len + tcp_len + payload.len();
    let mut p = Vec::with_capacity(total);
    if v6 {
        p.extend_from_slice(&[0x60, 0, 0, 0]);
        p.extend_from_slice(&((total - 40) as u16).to_be_bytes());
        p.extend_from_slice(&[6, 64]);
        p.extend_from_slice(
            &"2001:db8:1::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(
            &"2001:db8:2::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
    } else {
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&[0x40, 0, 64, 6, 0, 0, 198, 51, 100, 1, 203, 0, 113, 1]);
        let c = checksum(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&5201u16.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&77u32.to_be_bytes());
    p.push(((tcp_len / 4) as u8) << 4);
    p.push(flags);
    p.extend_from_slice(&501u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    let partial = fold(pseudo_header(&p, v6, total - ip_len));
    p[ip_len + 16..ip_len + 18].copy_from_slice(&partial.to_be_bytes());
    let hdr = VnetHdr {
        flags: NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
        hdr_len: (ip_len + tcp_len) as u16,
        gso_size: mss,
        csum_start: ip_len as u16,
        csum_offset: 16,
    };
    (hdr, p)
}

/// A plain packet with a full TCP checksum, as it arrives decrypted from the peer.
fn finished(v6: bool, payload: &[u8], seq: u32, flags: u8) -> Vec<u8> {
    let (h, mut p) = tcp_packet(v6, payload, seq, flags, &[], 0, 9);
    complete_checksum(&h, &mut p).unwrap();
    p
}

fn checksums_valid(p: &[u8]) -> bool {
    let v6 = p[0] >> 4 == 6;
    let ip = if v6 { 40 } else { usize::from(p[0] & 15) * 4 };
    (v6 || checksum(&p[..ip]) == 0) && !fold(sum(&p[ip..], pseudo_header(p, v6, p.len() - ip))) == 0
}

fn segment_all(hdr: &VnetHdr, p: &[u8]) -> Result<Vec<Vec<u8>>, OffloadError> {
    let mut s = Segmenter::new(hdr, p)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Some(r) = s.next_into(p, &mut buf) {
        out.push(buf[..r?].to_vec());
    }
    assert_eq!(s.remaining(), 0);
    Ok(out)
}

/// Writes a planned batch the way the TUN sink does: (vnet header, bytes) per write.
fn coalesce(pkts: &[Vec<u8>]) -> Vec<(VnetHdr, Vec<u8>)> {
    let mut gro = Gro::new();
    gro.plan(pkts.len(), |i| pkts.get(i).map(Vec::as_slice));
    let mut writes = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        match gro.role(i) {
            Role::Skip | Role::Member => {}
            Role::Single => writes.push((VnetHdr::default(), p.clone())),
            Role::Head => {
                let mut head = p.clone();
                let h = gro.merge_headers(i, &mut head).unwrap();
                let hl = gro.header_len(i).unwrap();
                for m in gro.members(i) {
                    head.extend_from_slice(&pkts[m][hl..]);
                }
                writes.push((h, head));
            }
        }
    }
    writes
}

fn tcp_field(p: &[u8], at: usize) -> u32 {
    let ip = if p[0] >> 4 == 6 { 40 } else { 20 };
    get_u32(p, ip + at)
}

fn tcp_flags(p: &[u8]) -> u8 {
    let ip = if p[0] >> 4 == 6 { 40 } else { 20 };
    p[ip + 13]
}

#[test]
fn vnet_header_round_trips_and_short_input_is_an_error() {
    let h = VnetHdr {
        flags: NEEDS_CSUM,
        gso_type: GSO_TCPV6,
        hdr_len: 72,
        gso_size: 1348,
        csum_start: 40,
        csum_offset: 16,
    };
    let mut buf = h.emit().to_vec();
    buf.extend_from_slice(&[0x60, 1, 2]);
    let (back, rest) = VnetHdr::split(&buf).unwrap();
    assert_eq!(back, h);
    assert_eq!(rest, &[0x60, 1, 2]);
    assert_eq!(VnetHdr::split(&buf[..9]), Err(OffloadError::Truncated));
}

#[test]
fn checksum_matches_rfc1071_example() {
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
    assert_eq!(checksum(&data), !0xddf2);
    assert_eq!(checksum(&[0x12]), !0x1200);
}

#[test]
fn needs_csum_is_completed_for_a_plain_udp_packet() {
    let mut p = vec![
        0x45, 0, 0, 33, 0, 1, 0, 0, 64, 17, 0, 0, 198, 51, 100, 1, 203, 0, 113, 1,
    ];
    p.extend_from_slice(&[
        0x13, 0x88, 0x00, 0x09, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o',
    ]);
    let partial = fold(sum(&p[12..20], 17 + 13));
    p[26..28].copy_from_slice(&partial.to_be_bytes());
    let h = VnetHdr {
        flags: NEEDS_CSUM,
        csum_start: 20,
        csum_offset: 6,
        ..Default::default()
    };
    let segs = segment_all(&h, &p).unwrap();
    assert_eq!(segs.len(), 1);
    let q = &segs[0];
    assert_eq!(!fold(sum(&q[20..], sum(&q[12..20], 17 + 13))), 0);
    assert_eq!(&q[..26], &p[..26]);
}

#[test]
fn payload_of_exactly_one_mss_is_one_segment() {
    let (h, p) = super_packet(false, &[7u8; 1000], 1000, ACK | PSH, &[]);
    let segs = segment_all(&h, &p).unwrap();
    assert_eq!(segs.len(), 1);
    assert!(checksums_valid(&segs[0]));
    assert_eq!(tcp_flags(&segs[0]), ACK | PSH);
    assert_eq!(coalesce(&segs), vec![(VnetHdr::default(), segs[0].clone())]);
}

#[test]
fn one_byte_left_over_is_a_last_segment_of_one_byte() {
    let payload: Vec<u8> = (0..2001u32).map(|i| i as u8).collect();
    let (h, p) = super_packet(true, &payload, 1000, ACK, &[]);
    let segs = segment_all(&h, &p).unwrap();
    assert_eq!(
        segs.iter().map(|s| s.len() - 60).collect::<Vec<_>>(),
        vec![1000, 1000, 1]
    );
    assert_eq!(tcp_field(&segs[2], 4), SEQ0.wrapping_add(2000));
    assert!(segs.iter().all(|s| checksums_valid(s)));
}

#[test]
fn fin_and_psh_only_on_the_last_segment_cwr_only_on_the_first() {
    let (h, p) = super_packet(false, &[1u8; 3500], 1200, ACK | PSH | FIN | CWR, &[]);
    let segs = segment_all(&h, &p).unwrap();
    let flags: Vec<u8> = segs.iter().map(|s| tcp_flags(s)).collect();
    assert_eq!(flags, vec![ACK | CWR, ACK, ACK | PSH | FIN]);
    let ids: Vec<u16> = segs.iter().map(|s| get_u16(s, 4)).collect();
    assert_eq!(ids, vec![0x1234, 0x1235, 0x1236]);
    // CWR and FIN segments are never merged; without CWR the first two are.
    let w = coalesce(&segs);
    assert_eq!(w.len(), 3);
    assert!(w.iter().all(|(h, _)| *h == VnetHdr::default()));
    let (h, p) = super_packet(false, &[1u8; 3500], 1200, ACK | PSH | FIN, &[]);
    let segs = segment_all(&h, &p).unwrap();
    let w = coalesce(&segs);
    assert_eq!(w.len(), 2);
    assert_eq!(w[0].0.gso_type, GSO_TCPV4);
    assert_eq!(w[0].1.len(), 40 + 2400);
    assert_eq!(w[1], (VnetHdr::default(), segs[2].clone()));
}

#[test]
fn tcp_options_are_copied_into_every_segment() {
    let opts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let (h, p) = super_packet(false, &[3u8; 2500], 1000, ACK, &opts);
    let segs = segment_all(&h, &p).unwrap();
    assert_eq!(segs.len(), 3);
    for s in &segs {
        assert_eq!(&s[40..52], &opts);
        assert!(checksums_valid(s));
    }
    let w = coalesce(&segs);
    assert_eq!(w, vec![(h, p)]);
}

#[test]
fn untrusted_header_values_are_errors() {
    let (h, p) = super_packet(false, &[0u8; 3000], 1000, ACK, &[]);
    let bad = |h: VnetHdr, p: &[u8]| Segmenter::new(&h, p).unwrap_err();
    assert_eq!(
        bad(VnetHdr { gso_size: 0, ..h }, &p),
        OffloadError::ZeroGsoSize
    );
    assert_eq!(
        bad(
            VnetHdr {
                gso_type: GSO_TCPV6,
                ..h
            },
            &p
        ),
        OffloadError::IpVersion
    );
    assert_eq!(
        bad(
            VnetHdr {
                gso_type: GSO_UDP,
                ..h
            },
            &p
        ),
        OffloadError::UnsupportedGso(3)
    );
    assert_eq!(
        bad(
            VnetHdr {
                gso_type: GSO_UDP_L4,
                ..h
            },
            &p
        ),
        OffloadError::UnsupportedGso(5)
    );
    assert_eq!(
        bad(
            VnetHdr {
                csum_offset: 6,
                ..h
            },
            &p
        ),
        OffloadError::ChecksumOffsets
    );
    assert_eq!(bad(h, &p[..30]), OffloadError::Truncated);
    assert_eq!(bad(h, &[]), OffloadError::IpVersion);
    let mut q = p.clone();
    q[0] = 0x44;
    assert_eq!(bad(h, &q), OffloadError::IpHeaderLength);
    let mut q = p.clone();
    q[9] = 17;
    assert_eq!(bad(h, &q), OffloadError::NotTcp);
    let mut q = p.clone();
    q[32] = 0x40;
    assert_eq!(bad(h, &q), OffloadError::TcpHeaderLength);
    let mut q = p.clone();
    q[32] = 0xf0;
    assert_eq!(bad(h, &q[..60]), OffloadError::Truncated);
    let plain = VnetHdr {
        flags: NEEDS_CSUM,
        csum_start: 3030,
        csum_offset: 16,
        ..Default::default()
    };
    assert_eq!(bad(plain, &p), OffloadError::ChecksumOffsets);
    // An output buffer too small is an error too.
    let mut s = Segmenter::new(&h, &p).unwrap();
    assert_eq!(
        s.next_into(&p, &mut [0u8; 100]),
        Some(Err(OffloadError::NoRoom))
    );
}

#[test]
fn flows_are_coalesced_separately_and_never_reordered() {
    let a = |seq: u32, len: usize, flags: u8| finished(false, &vec![1u8; len], seq, flags);
    let b = |seq: u32, len: usize| finished(true, &vec![2u8; len], seq, ACK);
    let pkts = vec![
        a(100, 500, ACK),
        b(7, 300),
        a(600, 500, ACK),
        b(307, 300),
        a(1100, 500, ACK), // after this, a pure ACK of flow a ends its super-packet
        a(1600, 0, ACK),
        a(1600, 500, ACK),
        a(2100, 500, ACK),
        b(900, 300), // a gap in flow b
    ];
    let mut gro = Gro::new();
    gro.plan(pkts.len(), |i| pkts.get(i).map(Vec::as_slice));
    let roles: Vec<Role> = (0..pkts.len()).map(|i| gro.role(i)).collect();
    use Role::*;
    assert_eq!(
        roles,
        vec![Head, Head, Member, Member, Member, Single, Head, Member, Single]
    );
    assert_eq!(gro.members(0).collect::<Vec<_>>(), vec![2, 4]);
    assert_eq!(gro.members(6).collect::<Vec<_>>(), vec![7]);
}

#[test]
fn segments_that_differ_are_not_coalesced() {
    let base = finished(false, &[1u8; 500], 100, ACK);
    let next = finished(false, &[1u8; 500], 600, ACK);
    type Change = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Change)> = vec![
        ("other ack", Box::new(|p| p[31] ^= 1)),
        ("other window", Box::new(|p| p[35] ^= 1)),
        ("other ttl", Box::new(|p| p[8] = 63)),
        ("bad tcp checksum", Box::new(|p| p[50] ^= 0xff)),
        ("a fragment", Box::new(|p| p[6] = 0x20)),
        ("syn", Box::new(|p| p[33] |= 0x02)),
    ];
    for (what, change) in cases {
        let mut q = next.clone();
        change(&mut q);
        if !what.contains("checksum") {
            // Keep the checksums right so only the difference counts.
            let (ip, tcp) = (20, q.len() - 20);
            q[10..12].fill(0);
            let c = checksum(&q[..ip]);
            q[10..12].copy_from_slice(&c.to_be_bytes());
            q[36..38].fill(0);
            let c = !fold(sum(&q[ip..], pseudo_header(&q, false, tcp)));
            q[36..38].copy_from_slice(&c.to_be_bytes());
        }
        let w = coalesce(&[base.clone(), q.clone()]);
        assert_eq!(w.len(), 2, "{what}");
    }
    // A longer second segment cannot follow a shorter first one.
    let long = finished(false, &[1u8; 600], 600, ACK);
    assert_eq!(coalesce(&[base.clone(), long]).len(), 2);
    // Skipped packets (dropped before the sink) are not written.
    let mut gro = Gro::new();
    gro.plan(2, |i| (i == 1).then_some(&base[..]));
    assert_eq!((gro.role(0), gro.role(1)), (Role::Skip, Role::Single));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Segmenting a super-packet and coalescing the segments gives the super-packet back, and
    /// every segment on the way is a valid IP/TCP packet.
    #[test]
    fn segment_then_coalesce_round_trips(
        v6 in any::<bool>(),
        len in 1usize..20_000,
        mss in 1u16..1500,
        psh in any::<bool>(),
        opt_words in 0usize..4,
        seed in any::<u8>(),
    ) {
        let payload: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
        let opts = vec![1u8; opt_words * 4];
        let flags = if psh { ACK | PSH } else { ACK };
        let (h, p) = super_packet(v6, &payload, mss, flags, &opts);
        let segs = segment_all(&h, &p).unwrap();
        let hl = usize::from(h.hdr_len);
        prop_assert_eq!(segs.len(), len.div_ceil(usize::from(mss)));
        let mut stream = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            prop_assert!(checksums_valid(s));
            prop_assert!(s.len() - hl <= usize::from(mss));
            prop_assert_eq!(tcp_field(s, 4), SEQ0.wrapping_add(stream.len() as u32));
            stream.extend_from_slice(&s[hl..]);
            let last = i + 1 == segs.len();
            prop_assert_eq!(tcp_flags(s), if last { flags } else { ACK });
        }
        prop_assert_eq!(&stream, &payload);

        let writes = coalesce(&segs);
        let mut back = Vec::new();
        for (wh, w) in &writes {
            back.extend_from_slice(&w[hl..]);
            if wh.gso_type == GSO_NONE {
                prop_assert!(checksums_valid(w));
            } else {
                let again = segment_all(wh, w).unwrap();
                prop_assert!(again.iter().all(|s| checksums_valid(s)));
            }
        }
        prop_assert_eq!(&back, &payload);
        if segs.len() > 1 && segs.len() <= MAX_SEGMENTS {
            prop_assert_eq!(writes, vec![(h, p)]);
        }
    }

    /// Arbitrary headers and bytes never panic the segmenter or the coalescer.
    #[test]
    fn garbage_never_panics(
        vnet in proptest::array::uniform10(any::<u8>()),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        mutate in proptest::collection::vec((0usize..120, any::<u8>()), 0..6),
    ) {
        let (_, mut p) = super_packet(body.len() % 2 == 0, &body, 40, ACK, &[]);
        for (at, v) in &mutate {
            if let Some(b) = p.get_mut(*at) { *b = *v; }
        }
        let mut buf = vnet.to_vec();
        buf.extend_from_slice(&p);
        let (h, pkt) = VnetHdr::split(&buf).unwrap();
        if let Ok(segs) = segment_all(&h, pkt) {
            let _ = coalesce(&segs);
        }
        let _ = coalesce(&[p.clone(), p.clone(), body.clone()]);
    }
}
