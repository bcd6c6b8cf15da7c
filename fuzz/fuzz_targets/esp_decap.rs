//! Fuzz target: arbitrary bytes into tunnel-mode ESP decap for a few SAs (GCM-16, ChaCha20-
//! Poly1305, CBC+HMAC-SHA1, GCM-8, ESN on some). First byte picks an SPI to splice in, so the
//! fuzzer reaches the per-SA paths; it must never panic and never accept a forgery.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use ferrovpn_esp::*;
use libfuzzer_sys::fuzz_target;

const SPIS: [u32; 4] = [0x100, 0x101, 0x102, 0x103];

fn sad() -> &'static Arc<Sad> {
    static SAD: OnceLock<Arc<Sad>> = OnceLock::new();
    SAD.get_or_init(|| {
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
        let tunnel = TunnelEndpoints {
            local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            remote: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        };
        for (spi, c) in SPIS.iter().zip(ciphers) {
            let e = SecretKey::new(&vec![0x11; c.enc_key_len()]);
            let a = SecretKey::new(&vec![0x22; c.auth_key_len()]);
            let mut cfg = SaConfig::new(*spi, Direction::Inbound, c, e, a, tunnel);
            cfg.esn = spi & 1 == 0;
            cfg.replay_window = 64;
            sad.add(&cfg, Timestamp::ZERO).expect("valid SA");
        }
        sad
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((sel, rest)) = data.split_first() else {
        return;
    };
    let mut pkt = PacketBuf::new(DEFAULT_CAPACITY);
    if !pkt.fill(rest) {
        return;
    }
    if let (Some(spi), Some(head)) = (SPIS.get(usize::from(*sel) % 5), pkt.data_mut().get_mut(..4))
    {
        head.copy_from_slice(&spi.to_be_bytes());
    }
    let mut r = sad().reader();
    let mut batch = [pkt];
    r.decap_batch(&mut batch, Timestamp::ZERO);
    assert!(
        matches!(batch[0].verdict(), Verdict::Dropped(_)),
        "forged packet accepted"
    );
    let _ = nat_t::classify(rest);
});
