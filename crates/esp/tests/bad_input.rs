//! Every drop reason: the packet is dropped with a typed error and the right counter moves.

mod common;

use std::sync::Arc;

use common::*;
use ferrovpn_esp::*;

const GCM: Cipher = Cipher::AesGcm {
    key: AesKeyLen::Aes128,
    icv: GcmIcv::Icv16,
};
const CBC: Cipher = Cipher::AesCbc {
    key: AesKeyLen::Aes128,
    integrity: Integrity::HmacSha256_128,
};
const T: Timestamp = Timestamp::ZERO;

fn crypto_for(cipher: Cipher) -> EspCrypto {
    let (e, a) = keys(cipher, 9);
    EspCrypto::new(cipher, &e, &a).unwrap()
}

/// Body = inner || padding || pad length || next header, padded to the cipher's block.
fn body(inner: &[u8], pad: &[u8], nh: u8) -> Vec<u8> {
    let mut b = inner.to_vec();
    b.extend_from_slice(pad);
    b.push(pad.len() as u8);
    b.push(nh);
    b
}

#[test]
fn truncated_packets() {
    for cipher in [GCM, CBC] {
        let p = pair(cipher);
        let mut r = p.sad.reader();
        // Shorter than SPI + seq: global counter.
        for n in 0..8 {
            assert_eq!(
                decap_one(&mut r, &vec![0x10; n], T),
                Err(EspError::Truncated)
            );
        }
        assert_eq!(p.sad.global_stats().malformed, 8);
        // Known SPI but no room for IV, trailer and ICV: per-SA counter.
        let esp = encap_one(&mut r, p.out, &ipv4(20, 0), T).unwrap();
        let min = 8 + cipher.iv_len() + 2 + cipher.icv_len();
        for n in [8, 12, min - 1] {
            assert_eq!(
                decap_one(&mut r, &esp[..n], T),
                Err(EspError::Truncated),
                "{n}"
            );
        }
        assert_eq!(p.sad.stats(p.inb).unwrap().malformed, 3);
    }
}

#[test]
fn cbc_ciphertext_not_a_block_multiple() {
    let p = pair(CBC);
    let mut r = p.sad.reader();
    let mut esp = encap_one(&mut r, p.out, &ipv4(20, 0), T).unwrap();
    esp.remove(40); // one byte out of the ciphertext
    assert_eq!(decap_one(&mut r, &esp, T), Err(EspError::BadLength));
    assert_eq!(p.sad.stats(p.inb).unwrap().malformed, 1);
}

#[test]
fn unknown_spi() {
    let p = pair(GCM);
    let mut r = p.sad.reader();
    let mut esp = encap_one(&mut r, p.out, &ipv4(20, 0), T).unwrap();
    esp[3] ^= 1;
    assert_eq!(decap_one(&mut r, &esp, T), Err(EspError::UnknownSpi));
    assert_eq!(p.sad.global_stats().unknown_spi, 1);
}

#[test]
fn unknown_outbound_sa() {
    let p = pair(GCM);
    let mut r = p.sad.reader();
    let mut b = [buf(&ipv4(20, 0))];
    r.encap_batch(&mut b, T); // no SA named
    assert_eq!(b[0].verdict(), Verdict::Dropped(EspError::UnknownSa));
    assert_eq!(
        encap_one(&mut r, p.inb, &ipv4(20, 0), T),
        Err(EspError::UnknownSa)
    ); // inbound handle
    assert_eq!(p.sad.global_stats().unknown_sa, 2);
}

#[test]
fn failed_icv_for_every_cipher() {
    for cipher in Cipher::ALL {
        let p = pair(cipher);
        let mut r = p.sad.reader();
        let esp = encap_one(&mut r, p.out, &ipv4(50, 0), T).unwrap();
        for pos in [9, 8 + cipher.iv_len() + 3, esp.len() - 1] {
            let mut bad = esp.clone();
            bad[pos] ^= 0x40;
            assert_eq!(
                decap_one(&mut r, &bad, T),
                Err(EspError::AuthFailed),
                "{}",
                cipher.name()
            );
        }
        let st = p.sad.stats(p.inb).unwrap();
        assert_eq!((st.auth_failures, st.packets), (3, 0), "{}", cipher.name());
        // A failed ICV does not consume the sequence number.
        assert!(decap_one(&mut r, &esp, T).is_ok());
    }
}

#[test]
fn replayed_and_too_old() {
    let p = pair(GCM);
    let mut r = p.sad.reader();
    let first = encap_one(&mut r, p.out, &ipv4(20, 0), T).unwrap();
    p.sad.set_next_seq(p.out, 5000).unwrap();
    let later = encap_one(&mut r, p.out, &ipv4(20, 1), T).unwrap();
    assert!(decap_one(&mut r, &later, T).is_ok());
    assert_eq!(decap_one(&mut r, &later, T), Err(EspError::Replay)); // duplicate
    assert_eq!(decap_one(&mut r, &first, T), Err(EspError::Replay)); // left of 1024 window
    assert_eq!(p.sad.stats(p.inb).unwrap().replay_drops, 2);
}

#[test]
fn bad_padding_is_detected_after_authentication() {
    for cipher in [GCM, CBC] {
        let p = pair(cipher);
        let mut r = p.sad.reader();
        let c = crypto_for(cipher);
        let inner = ipv4(10, 0); // 30 bytes; +2 trailer = 32 (block-aligned for both)
        let cases = [
            body(&inner[..28], &[1, 3], 4), // not 1, 2
            body(&inner[..29], &[7], 4),    // not 1
            body(
                &inner[..16],
                &[1, 2, 3, 4, 5, 6, 7, 9, 9, 10, 11, 12, 13, 14],
                4,
            ), // hole
        ];
        for (i, b) in cases.iter().enumerate() {
            assert_eq!(b.len() % 16, 0);
            let esp = craft(&c, 0x1000, 10 + i as u32, b);
            assert_eq!(
                decap_one(&mut r, &esp, T),
                Err(EspError::BadPadding),
                "{} case {i}",
                cipher.name()
            );
        }
        // Pad length larger than the whole payload.
        let mut b = vec![0u8; 30];
        b.extend_from_slice(&[200, 4]);
        let esp = craft(&c, 0x1000, 20, &b);
        assert_eq!(decap_one(&mut r, &esp, T), Err(EspError::BadPadding));
        assert_eq!(p.sad.stats(p.inb).unwrap().bad_padding, 4);
    }
}

#[test]
fn bad_next_header_dummy_and_bad_inner() {
    let p = pair(GCM);
    let mut r = p.sad.reader();
    let c = crypto_for(GCM);
    let v4 = ipv4(10, 0); // 30 bytes
                          // TCP (6) is not a tunnel-mode next header.
    let esp = craft(&c, 0x1000, 1, &body(&v4, &[1, 2], 6));
    assert_eq!(decap_one(&mut r, &esp, T), Err(EspError::BadNextHeader));
    // Dummy packet (59).
    let esp = craft(&c, 0x1000, 2, &body(&v4, &[1, 2], 59));
    assert_eq!(decap_one(&mut r, &esp, T), Err(EspError::Dummy));
    // Next header says IPv6, packet is IPv4.
    let esp = craft(&c, 0x1000, 3, &body(&v4, &[1, 2], 41));
    assert_eq!(decap_one(&mut r, &esp, T), Err(EspError::BadInnerPacket));
    // IPv4 total length larger than the payload.
    let mut long = v4.clone();
    long[2..4].copy_from_slice(&100u16.to_be_bytes());
    let esp = craft(&c, 0x1000, 4, &body(&long, &[1, 2], 4));
    assert_eq!(decap_one(&mut r, &esp, T), Err(EspError::BadInnerPacket));
    let st = p.sad.stats(p.inb).unwrap();
    assert_eq!(
        (st.bad_next_header, st.dummy, st.malformed, st.packets),
        (1, 1, 2, 0)
    );
    // Outbound: only IPv4/IPv6 can be tunnelled.
    assert_eq!(
        encap_one(&mut r, p.out, &[0x11; 30], T),
        Err(EspError::BadInnerPacket)
    );
    assert_eq!(encap_one(&mut r, p.out, &[], T), Err(EspError::Truncated));
    assert_eq!(p.sad.stats(p.out).unwrap().malformed, 2);
}

#[test]
fn no_tailroom_is_an_error_not_a_panic() {
    let p = pair(GCM);
    let mut r = p.sad.reader();
    let mut b = [PacketBuf::new(256)];
    let room = b[0].tailroom();
    assert!(b[0].fill(&ipv4(room - 20, 0)));
    b[0].set_sa(p.out);
    r.encap_batch(&mut b, T);
    assert_eq!(b[0].verdict(), Verdict::Dropped(EspError::NoRoom));
}

#[test]
fn sequence_space_never_wraps() {
    let p = pair(GCM);
    let events = p.sad.events();
    let mut r = p.sad.reader();
    p.sad.set_next_seq(p.out, u64::from(u32::MAX)).unwrap();
    let last = encap_one(&mut r, p.out, &ipv4(20, 0), T).unwrap();
    assert_eq!(&last[4..8], &[0xff; 4]);
    assert_eq!(
        encap_one(&mut r, p.out, &ipv4(20, 0), T),
        Err(EspError::SequenceExhausted)
    );
    let ev: Vec<_> = events.try_iter().collect();
    assert_eq!(ev.len(), 2);
    assert_eq!(
        (ev[0].kind, ev[0].cause),
        (LifetimeKind::Soft, LifetimeCause::Sequence)
    );
    assert_eq!(
        (ev[1].kind, ev[1].cause),
        (LifetimeKind::Hard, LifetimeCause::Sequence)
    );
    assert_eq!(p.sad.stats(p.out).unwrap().expired_drops, 1);
}

#[test]
fn sa_creation_checks_keys_spi_and_window() {
    let sad = Arc::new(Sad::new());
    let mut cfg = config(0x1000, Direction::Inbound, GCM, 1);
    cfg.enc_key = SecretKey::new(&[0; 16]); // salt missing
    assert_eq!(
        sad.add(&cfg, T),
        Err(SadError::KeyLength {
            which: "encryption",
            expected: 20,
            got: 16
        })
    );
    let mut cfg = config(0x1000, Direction::Inbound, CBC, 1);
    cfg.auth_key = SecretKey::new(&[0; 20]);
    assert!(matches!(
        sad.add(&cfg, T),
        Err(SadError::KeyLength {
            which: "integrity",
            ..
        })
    ));
    let cfg = config(255, Direction::Inbound, GCM, 1);
    assert_eq!(sad.add(&cfg, T), Err(SadError::ReservedSpi(255)));
    let mut cfg = config(0x1000, Direction::Inbound, GCM, 1);
    cfg.replay_window = 16;
    assert_eq!(sad.add(&cfg, T), Err(SadError::ReplayWindow(16)));
    let cfg = config(0x1000, Direction::Inbound, GCM, 1);
    sad.add(&cfg, T).unwrap();
    assert_eq!(sad.add(&cfg, T), Err(SadError::DuplicateSpi(0x1000)));
    assert!(format!("{:?}", cfg.enc_key).contains("redacted"));
}

#[test]
fn only_decap_names_the_inbound_sa_of_a_packet() {
    let p = pair(GCM);
    let mut r = p.sad.reader();
    // A source tags forged ESP (inbound SA's SPI, no valid ICV) with the inbound SA: decap
    // drops it and the tag does not survive, so nothing downstream takes it as authenticated.
    let mut forged = vec![0u8; 64];
    forged[..4].copy_from_slice(
        &p.sad
            .list()
            .iter()
            .find(|e| e.0 == p.inb)
            .unwrap()
            .1
            .to_be_bytes(),
    );
    forged[4..8].copy_from_slice(&1u32.to_be_bytes());
    let mut b = [buf(&forged)];
    b[0].set_sa(p.inb);
    r.decap_batch(&mut b, T);
    assert_eq!(b[0].verdict(), Verdict::Dropped(EspError::AuthFailed));
    assert_eq!(b[0].sa(), None);
    // A fresh buffer has no verdict to inherit.
    assert_eq!(buf(&forged).verdict(), Verdict::Pending);
}
