//! Known-answer tests: full ESP packets from draft-mcgrew-gcm-test-01 §4 (AES-GCM, RFC 4106)
//! and RFC 7634 Appendix A (ChaCha20-Poly1305).

mod common;

use common::*;
use ferrovpn_esp::*;

struct GcmCase {
    key: &'static str,
    /// salt (4) || IV (8)
    nonce: &'static str,
    /// SPI || seq, or SPI || seq_hi || seq_lo with ESN
    aad: &'static str,
    plaintext: &'static str,
    ciphertext: &'static str,
    tag: &'static str,
}

/// The AES-128/256 GCM packets of draft-mcgrew-gcm-test-01 §4 (the 192-bit case is left out:
/// ESP here offers 128 and 256-bit keys only; the GMAC cases are RFC 4543, not implemented).
const GCM: &[GcmCase] = &[
    GcmCase {
        key: "4c80cdefbb5d10da906ac73c3613a634",
        nonce: "2e443b684956ed7e3b244cfe",
        aad: "000043218765432100000000",
        plaintext: "45000048699a000080114db7c0a80102c0a801010a9bf15638d301000001000000000000045f736970045f756470037369700963796265726369747902646b000021000101020201",
        ciphertext: "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce61bc17d768fd9732",
        tag: "459018148f6cbe722fd04796562dfdb4",
    },
    GcmCase {
        key: "feffe9928665731c6d6a8f9467308308",
        nonce: "cafebabefacedbaddecaf888",
        aad: "0000a5f80000000a",
        plaintext: "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d001000001000000000000037369700963796265726369747902646b00000100010001",
        ciphertext: "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1",
        tag: "83b70d3aa8bc6ee4c309e9d85a41ad4a",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        nonce: "112233440102030405060708",
        aad: "4a2cbfe300000002",
        plaintext: "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b40101040201020201",
        ciphertext: "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14e99def842d8e",
        tag: "b335f4eecfdbf831824b4c4915956c96",
    },
    GcmCase {
        key: "00000000000000000000000000000000",
        nonce: "000000000000000000000000",
        aad: "0000000000000001",
        plaintext: "4500003c99c500008001cb7a40679318010101010800075c020044006162636465666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
        ciphertext: "4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284456476492719ffb64de7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3",
        tag: "f821d496eeb096e98ad2b69e4799c71d",
    },
    GcmCase {
        key: "3de09874b388e6491988d0c3607eae1f",
        nonce: "57690e434e280000a2fca1a3",
        aad: "42f67e3f1010101010101010",
        plaintext: "4500003c99c300008001cb7c40679318010101010800085c020043006162636465666768696a6b6c6d6e6f707172737475767761626364656667686901020201",
        ciphertext: "fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c35791765acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a",
        tag: "e0d731cc978ecafaeae88f00e80d6e48",
    },
    GcmCase {
        key: "3de09874b388e6491988d0c3607eae1f",
        nonce: "57690e434e280000a2fca1a3",
        aad: "42f67e3f1010101010101010",
        plaintext: "4500001c42a200008001441f406793b6e00000020a00f5ff01020201",
        ciphertext: "fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed",
        tag: "369f071f35e034be95f112e4e7d05d35",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aab",
        nonce: "decaf888cafedebaceface74",
        aad: "000001000000000000000001",
        plaintext: "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d500004e20001e8c18d75b81dc91baa0476b91b924b280389d92c963bac046ec959b6266c04722b14923010101",
        ciphertext: "18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f9190feebaf2cb01984e65863965d7472b79da345e0e780191f0d2f0e0f496c226f2127b27db35724e7845d68",
        tag: "651f57e65f354f75ff17015769623436",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        nonce: "73616c74616e640169766563",
        aad: "17405e67156f3126dd0db99b",
        plaintext: "45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb71260250101f646d540001",
        ciphertext: "f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57ff4d3a31ce673119e",
        tag: "451626c2415771e3b7eebca614c89b35",
    },
    GcmCase {
        key: "3de09874b388e6491988d0c3607eae1f",
        nonce: "57690e434e280000a2fca1a3",
        aad: "42f67e3f1010101010101010",
        plaintext: "45000049333e00007f119182c3fb1d10c2b1d326c02831ce0035cb458003025b000001e0001e8c18d65759d52284a0352c71475c8880391c764d6e5ee0496b325ae270c03899493915010101",
        ciphertext: "fba2cad12fc1f9f00d3cebf305410db83d7784b607323d220f24b0a97d54182800cadb0f68d99ef0e0c0c89ae9bea8884e52d65bc1afd0740f742444747b5b39ab533163aad4550ee5160975",
        tag: "cdb608c5769189609763b8e18caa81e2",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        nonce: "73616c74616e640169766563",
        aad: "17405e67156f3126dd0db99b",
        plaintext: "636973636f0172756c657301746865016e6574776501646566696e6501746865746563686e6f6c6f67696573017468617477696c6c01646566696e65746f6d6f72726f7701020201",
        ciphertext: "d4b7ed86a1777f2ea13d6973d324c69e7b43f826fb56831226508bebd2dceb18d0a6df10e5487df074113e14c641024e3e6773d91a62ee429b043a10e3efe6b012a49363412364f8",
        tag: "c0cac587f249e56b11e24f30e44ccc76",
    },
    GcmCase {
        key: "7d773d00c144c525ac619d18c84a3f47",
        nonce: "d966426743457e9182443bc6",
        aad: "335467aeffffffff",
        plaintext: "01020201",
        ciphertext: "437f866b",
        tag: "cb3f699fe9b0822bac961c4504bef270",
    },
    GcmCase {
        key: "abbccddef00112233445566778899aab",
        nonce: "decaf888cafedebaceface74",
        aad: "000001000000000000000001",
        plaintext: "746f016265016f72016e6f7401746f0162650001",
        ciphertext: "29c9fc69a197d038ccdd14e2ddfcaa0543332164",
        tag: "412503524303ed3c6c5f283843af8c3e",
    },
    GcmCase {
        key: "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961",
        nonce: "7475726e333021696765746d",
        aad: "796b6963ffffffffffffffff",
        plaintext: "45000030da3a00008001df3bc0a80005c0a800010800c6cd020007006162636465666768696a6b6c6d6e6f707172737401020201",
        ciphertext: "f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a864cd3d78ca4ae68a32b42458fb57dbe821dcc63b9",
        tag: "d0937ba2945f669368661a329fb4c053",
    },
];

/// (ESP packet on the wire, seq_hi if ESN, crypto)
fn gcm_packet(c: &GcmCase) -> (Vec<u8>, Option<u32>, EspCrypto) {
    let key = h(c.key);
    let nonce = h(c.nonce);
    let aad = h(c.aad);
    let mut enc = key.clone();
    enc.extend_from_slice(&nonce[..4]);
    let cipher = Cipher::AesGcm {
        key: if key.len() == 16 {
            AesKeyLen::Aes128
        } else {
            AesKeyLen::Aes256
        },
        icv: GcmIcv::Icv16,
    };
    let crypto = EspCrypto::new(cipher, &SecretKey::new(&enc), &SecretKey::empty()).unwrap();
    let (seq_hi, seq_lo) = match aad.len() {
        8 => (None, &aad[4..8]),
        12 => (
            Some(u32::from_be_bytes(aad[4..8].try_into().unwrap())),
            &aad[8..12],
        ),
        _ => unreachable!(),
    };
    let mut pkt = aad[..4].to_vec();
    pkt.extend_from_slice(seq_lo);
    pkt.extend_from_slice(&nonce[4..]);
    pkt.extend_from_slice(&h(c.ciphertext));
    pkt.extend_from_slice(&h(c.tag));
    (pkt, seq_hi, crypto)
}

#[test]
fn draft_mcgrew_gcm_test_packets_open() {
    for (i, c) in GCM.iter().enumerate() {
        let (mut pkt, seq_hi, crypto) = gcm_packet(c);
        let plain = h(c.plaintext);
        let d = crypto
            .open(&mut pkt, seq_hi)
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert_eq!(&pkt[16..pkt.len() - 16], &plain[..], "case {i}");
        assert_eq!(d.next_header, *plain.last().unwrap(), "case {i}");
        let pad = plain[plain.len() - 2] as usize;
        assert_eq!(d.payload, 16..16 + plain.len() - 2 - pad, "case {i}");
    }
}

#[test]
fn draft_mcgrew_gcm_test_packets_seal() {
    for (i, c) in GCM.iter().enumerate() {
        let (want, seq_hi, crypto) = gcm_packet(c);
        let mut pkt = want[..16].to_vec();
        pkt.extend_from_slice(&h(c.plaintext));
        pkt.extend_from_slice(&[0; 16]);
        crypto.seal(&mut pkt, seq_hi).unwrap();
        assert_eq!(pkt, want, "case {i}");
    }
}

#[test]
fn draft_mcgrew_gcm_tampered_or_wrong_esn_fails() {
    let (mut pkt, seq_hi, crypto) = gcm_packet(&GCM[0]);
    assert!(seq_hi.is_some());
    let mut wrong = pkt.clone();
    assert_eq!(
        crypto.open(&mut wrong, seq_hi.map(|h| h ^ 1)),
        Err(EspError::AuthFailed)
    );
    assert_eq!(crypto.open(&mut wrong, None), Err(EspError::AuthFailed));
    let n = pkt.len();
    pkt[n - 1] ^= 0x80;
    assert_eq!(crypto.open(&mut pkt, seq_hi), Err(EspError::AuthFailed));
}

const RFC7634_KEY: &str =
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3";
const RFC7634_PLAIN: &str = "
    45 00 00 54 a6 f2 00 00 40 01 e7 78 c6 33 64 05
    c0 00 02 05 08 00 5b 7a 3a 08 00 00 55 3b ec 10
    00 07 36 27 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13
    14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 20 21 22 23
    24 25 26 27 28 29 2a 2b 2c 2d 2e 2f 30 31 32 33
    34 35 36 37 01 02 02 04";
const RFC7634_ESP: &str = "
    01 02 03 04 00 00 00 05 10 11 12 13 14 15 16 17
    24 03 94 28 b9 7f 41 7e 3c 13 75 3a 4f 05 08 7b
    67 c3 52 e6 a7 fa b1 b9 82 d4 66 ef 40 7a e5 c6
    14 ee 80 99 d5 28 44 eb 61 aa 95 df ab 4c 02 f7
    2a a7 1e 7c 4c 4f 64 c9 be fe 2f ac c6 38 e8 f3
    cb ec 16 3f ac 46 9b 50 27 73 f6 fb 94 e6 64 da
    91 65 b8 28 29 f6 41 e0
    76 aa a8 26 6b 7f b0 f7 b1 1b 36 99 07 e1 ad 43";

fn rfc7634_crypto() -> EspCrypto {
    EspCrypto::new(
        Cipher::ChaCha20Poly1305,
        &SecretKey::new(&h(RFC7634_KEY)),
        &SecretKey::empty(),
    )
    .unwrap()
}

#[test]
fn rfc7634_appendix_a_seal_and_open() {
    let crypto = rfc7634_crypto();
    let want = h(RFC7634_ESP);
    let mut pkt = want[..16].to_vec();
    pkt.extend_from_slice(&h(RFC7634_PLAIN));
    pkt.extend_from_slice(&[0; 16]);
    crypto.seal(&mut pkt, None).unwrap();
    assert_eq!(pkt, want);
    let d = crypto.open(&mut pkt, None).unwrap();
    assert_eq!(d.next_header, NEXT_HEADER_IPV4);
    assert_eq!(&pkt[d.payload], &h(RFC7634_PLAIN)[..84]);
}

/// The RFC 7634 example is a tunnel-mode packet: the SAD decapsulates it to the inner IPv4.
#[test]
fn rfc7634_appendix_a_tunnel_decap_through_sad() {
    let sad = std::sync::Arc::new(Sad::new());
    let cfg = SaConfig::new(
        0x01020304,
        Direction::Inbound,
        Cipher::ChaCha20Poly1305,
        SecretKey::new(&h(RFC7634_KEY)),
        SecretKey::empty(),
        tunnel(),
    );
    let sa = sad.add(&cfg, Timestamp::ZERO).unwrap();
    let mut r = sad.reader();
    let inner = decap_one(&mut r, &h(RFC7634_ESP), Timestamp::from_secs(1)).unwrap();
    assert_eq!(inner, h(RFC7634_PLAIN)[..84]);
    let st = sad.stats(sa).unwrap();
    assert_eq!((st.packets, st.bytes), (1, 84));
    assert_eq!(st.last_packet, Some(Timestamp::from_secs(1)));
    // The same packet again is a replay.
    assert_eq!(
        decap_one(&mut r, &h(RFC7634_ESP), Timestamp::ZERO),
        Err(EspError::Replay)
    );
}
