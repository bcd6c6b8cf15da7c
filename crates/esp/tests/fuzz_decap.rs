//! Property: decap of arbitrary bytes (random or a mutated valid packet) never panics and never
//! accepts a forged packet. Same harness as fuzz/fuzz_targets/esp_decap.rs.

mod common;

use std::sync::Arc;

use common::*;
use ferrovpn_esp::*;
use proptest::prelude::*;

const SPIS: [u32; 4] = [0x100, 0x101, 0x102, 0x103];

fn sad() -> (Arc<Sad>, Vec<Vec<u8>>) {
    let sad = Arc::new(Sad::new());
    let ciphers = [
        Cipher::AesGcm {
            key: AesKeyLen::Aes128,
            icv: GcmIcv::Icv16,
        },
        Cipher::ChaCha20Poly1305,
        Cipher::AesCbc {
            key: AesKeyLen::Aes128,
            integrity: Integrity::HmacSha1_96,
        },
        Cipher::AesGcm {
            key: AesKeyLen::Aes256,
            icv: GcmIcv::Icv8,
        },
    ];
    let mut valid = Vec::new();
    for (spi, c) in SPIS.iter().zip(ciphers) {
        let mut o = config(*spi, Direction::Outbound, c, 1);
        o.esn = *spi & 1 == 0;
        let mut i = o.clone();
        i.direction = Direction::Inbound;
        let out = sad.add(&o, Timestamp::ZERO).unwrap();
        sad.add(&i, Timestamp::ZERO).unwrap();
        let mut r = sad.reader();
        valid.push(encap_one(&mut r, out, &ipv4(33, 7), Timestamp::ZERO).unwrap());
    }
    (sad, valid)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_are_dropped(spi_idx in 0usize..5, body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (sad, _) = sad();
        let mut r = sad.reader();
        let mut pkt = body;
        if let Some(spi) = SPIS.get(spi_idx) {
            if pkt.len() >= 4 {
                pkt[..4].copy_from_slice(&spi.to_be_bytes());
            }
        }
        let mut b = [buf(&pkt)];
        r.decap_batch(&mut b, Timestamp::ZERO);
        prop_assert!(matches!(b[0].verdict(), Verdict::Dropped(_)));
    }

    #[test]
    fn mutated_valid_packets_are_dropped(which in 0usize..4, pos in any::<usize>(), xor in 1u8.., cut in 0usize..8) {
        let (sad, valid) = sad();
        let mut r = sad.reader();
        let mut pkt = valid[which].clone();
        let p = pos % pkt.len();
        pkt[p] ^= xor;
        let new_len = pkt.len() - cut;
        pkt.truncate(new_len);
        let mut b = [buf(&pkt)];
        r.decap_batch(&mut b, Timestamp::ZERO);
        prop_assert!(matches!(b[0].verdict(), Verdict::Dropped(_)));
        // The unmodified packet still decapsulates (nothing was consumed by the forgery),
        // unless only the sequence number was modified and the packet was cut.
        let mut b = [buf(&valid[which])];
        r.decap_batch(&mut b, Timestamp::ZERO);
        prop_assert_eq!(b[0].verdict(), Verdict::Ok);
    }
}
