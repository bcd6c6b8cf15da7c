//! Encap → decap round trips for every cipher, IPv4 and IPv6 inner packets, raw and UDP
//! encapsulation, ESN on and off.

mod common;

use common::*;
use ferrovpn_esp::nat_t::{classify, UdpPayload};
use ferrovpn_esp::*;

#[test]
fn every_cipher_family_round_trips() {
    let encaps = [
        Encap::Raw,
        Encap::Udp {
            local_port: 4500,
            remote_port: 4500,
        },
    ];
    for cipher in Cipher::ALL {
        for esn in [false, true] {
            for encap in encaps {
                let p = pair_with(cipher, esn, encap, 0x4242);
                let mut r = p.sad.reader();
                let now = Timestamp::from_secs(5);
                for (n, len) in [0usize, 1, 13, 100, 1380, 8000].into_iter().enumerate() {
                    for inner in [ipv4(len, n as u8), ipv6(len, n as u8)] {
                        let what = format!("{} esn={esn} {encap:?} len={len}", cipher.name());
                        let esp = encap_one(&mut r, p.out, &inner, now).expect(&what);
                        let (front, _) =
                            EspCrypto::new(cipher, &keys(cipher, 9).0, &keys(cipher, 9).1)
                                .unwrap()
                                .overhead();
                        assert_eq!(&esp[..4], &0x4242u32.to_be_bytes(), "{what}");
                        assert_eq!((esp.len() - front - cipher.icv_len()) % 4, 0, "{what}");
                        if let Encap::Udp { .. } = encap {
                            assert_eq!(classify(&esp), UdpPayload::Esp(&esp[..]), "{what}");
                        }
                        assert_ne!(
                            &esp[front..front + inner.len().min(16)],
                            &inner[..inner.len().min(16)]
                        );
                        let back = decap_one(&mut r, &esp, now).expect(&what);
                        assert_eq!(back, inner, "{what}");
                    }
                }
                let out = p.sad.stats(p.out).unwrap();
                let inb = p.sad.stats(p.inb).unwrap();
                assert_eq!(out.packets, 12);
                assert_eq!(inb.packets, 12);
                assert_eq!(out.bytes, inb.bytes);
            }
        }
    }
}

#[test]
fn esn_round_trip_across_the_2_pow_32_boundary() {
    for cipher in [
        Cipher::AesGcm {
            key: AesKeyLen::Aes128,
            icv: GcmIcv::Icv16,
        },
        Cipher::ChaCha20Poly1305,
        Cipher::AesCbc {
            key: AesKeyLen::Aes256,
            integrity: Integrity::HmacSha256_128,
        },
    ] {
        let p = pair_with(cipher, true, Encap::Raw, 0x777);
        p.sad.set_next_seq(p.out, 0xffff_fffd).unwrap();
        let mut r = p.sad.reader();
        let mut wire = Vec::new();
        for i in 0..6u8 {
            wire.push(encap_one(&mut r, p.out, &ipv4(40, i), Timestamp::ZERO).unwrap());
        }
        // Low 32 bits on the wire wrap; the receiver infers the high half.
        let lows: Vec<u32> = wire
            .iter()
            .map(|w| u32::from_be_bytes(w[4..8].try_into().unwrap()))
            .collect();
        assert_eq!(lows, [0xffff_fffd, 0xffff_fffe, 0xffff_ffff, 0, 1, 2]);
        // Deliver slightly reordered across the boundary.
        for i in [0usize, 2, 1, 4, 3, 5] {
            assert_eq!(
                decap_one(&mut r, &wire[i], Timestamp::ZERO).unwrap(),
                ipv4(40, i as u8)
            );
        }
        assert_eq!(
            decap_one(&mut r, &wire[2], Timestamp::ZERO),
            Err(EspError::Replay)
        );
    }
}

#[test]
fn tfc_padding_after_inner_packet_is_removed() {
    // RFC 4303 §2.7: bytes after the inner packet (per its length field) are dropped.
    let p = pair(Cipher::ChaCha20Poly1305);
    let mut r = p.sad.reader();
    let mut padded = ipv4(30, 1);
    padded.extend_from_slice(&[0xee; 20]);
    let esp = encap_one(&mut r, p.out, &padded, Timestamp::ZERO).unwrap();
    assert_eq!(
        decap_one(&mut r, &esp, Timestamp::ZERO).unwrap(),
        ipv4(30, 1)
    );
}

#[test]
fn outbound_packet_carries_its_tunnel() {
    let p = pair_with(
        Cipher::ChaCha20Poly1305,
        false,
        Encap::Udp {
            local_port: 4500,
            remote_port: 31000,
        },
        0x999,
    );
    let mut r = p.sad.reader();
    let mut b = [buf(&ipv6(10, 0))];
    b[0].set_sa(p.out);
    r.encap_batch(&mut b, Timestamp::ZERO);
    assert_eq!(b[0].verdict(), Verdict::Ok);
    assert_eq!(
        b[0].tunnel(),
        Some((
            tunnel(),
            Encap::Udp {
                local_port: 4500,
                remote_port: 31000
            }
        ))
    );
}

#[test]
fn batch_of_64_mixed_packets() {
    let p = pair(Cipher::AesGcm {
        key: AesKeyLen::Aes256,
        icv: GcmIcv::Icv16,
    });
    let mut r = p.sad.reader();
    let inners: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            if i & 1 == 0 {
                ipv4(i * 20, i as u8)
            } else {
                ipv6(i * 20, i as u8)
            }
        })
        .collect();
    let mut batch: Vec<PacketBuf> = inners
        .iter()
        .map(|i| {
            let mut b = buf(i);
            b.set_sa(p.out);
            b
        })
        .collect();
    r.encap_batch(&mut batch, Timestamp::ZERO);
    let mut wire: Vec<PacketBuf> = batch
        .iter()
        .map(|b| {
            assert_eq!(b.verdict(), Verdict::Ok);
            buf(b.data())
        })
        .collect();
    r.decap_batch(&mut wire, Timestamp::ZERO);
    for (w, i) in wire.iter().zip(&inners) {
        assert_eq!(w.verdict(), Verdict::Ok);
        assert_eq!(w.data(), &i[..]);
        assert_eq!(w.sa(), Some(p.inb));
        assert_eq!(w.next_header(), if i[0] >> 4 == 4 { 4 } else { 41 });
    }
}

#[test]
fn max_payload_is_the_largest_inner_packet_that_fits() {
    for cipher in Cipher::ALL {
        let p = pair(cipher);
        let mut r = p.sad.reader();
        let now = Timestamp::from_secs(5);
        for esp_len in [1472usize, 1480, 1452, 1000] {
            let max = cipher.max_payload(esp_len);
            let what = format!("{} in {esp_len}", cipher.name());
            let fits = encap_one(&mut r, p.out, &ipv4(max - 20, 1), now).expect(&what);
            assert!(fits.len() <= esp_len, "{what}: {}", fits.len());
            let over = encap_one(&mut r, p.out, &ipv4(max - 19, 1), now).expect(&what);
            assert!(over.len() > esp_len, "{what}: one more byte still fits");
        }
    }
    // aes128gcm16 over IPv4 raw ESP on a 1500-byte link: 1480 - 8 - 8 - 16, minus 2.
    let gcm = Cipher::ALL
        .into_iter()
        .find(|c| c.name() == "aes128gcm16")
        .unwrap();
    assert_eq!(gcm.max_payload(1480), 1446);
}
