//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ferrovpn_esp::*;

pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

pub fn tunnel() -> TunnelEndpoints {
    TunnelEndpoints {
        local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        remote: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
    }
}

/// Deterministic key material of the right lengths for `cipher`.
pub fn keys(cipher: Cipher, seed: u8) -> (SecretKey, SecretKey) {
    let e: Vec<u8> = (0..cipher.enc_key_len())
        .map(|i| seed ^ (i as u8).wrapping_mul(7))
        .collect();
    let a: Vec<u8> = (0..cipher.auth_key_len())
        .map(|i| seed.wrapping_add(i as u8) ^ 0x5a)
        .collect();
    (SecretKey::new(&e), SecretKey::new(&a))
}

pub fn config(spi: u32, dir: Direction, cipher: Cipher, seed: u8) -> SaConfig {
    let (e, a) = keys(cipher, seed);
    SaConfig::new(spi, dir, cipher, e, a, tunnel())
}

/// A pair of SAs (outbound on one side, inbound on the other) sharing keys, in one SAD.
pub struct Pair {
    pub sad: Arc<Sad>,
    pub out: SaHandle,
    pub inb: SaHandle,
}

pub fn pair_with(cipher: Cipher, esn: bool, encap: Encap, spi: u32) -> Pair {
    let sad = Arc::new(Sad::new());
    let mut o = config(spi, Direction::Outbound, cipher, 9);
    o.esn = esn;
    o.encap = encap;
    let mut i = o.clone();
    i.direction = Direction::Inbound;
    let out = sad.add(&o, Timestamp::ZERO).unwrap();
    let inb = sad.add(&i, Timestamp::ZERO).unwrap();
    Pair { sad, out, inb }
}

pub fn pair(cipher: Cipher) -> Pair {
    pair_with(cipher, false, Encap::Raw, 0x1000)
}

/// An IPv4 packet (header + `payload_len` bytes) with a correct total length field.
pub fn ipv4(payload_len: usize, tag: u8) -> Vec<u8> {
    let total = 20 + payload_len;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[198, 51, 100, 1]);
    p[16..20].copy_from_slice(&[203, 0, 113, 1]);
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = tag.wrapping_add(i as u8);
    }
    p
}

/// An IPv6 packet (header + `payload_len` bytes) with a correct payload length field.
pub fn ipv6(payload_len: usize, tag: u8) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload_len];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    p[24..40].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = tag.wrapping_add(i as u8);
    }
    p
}

pub fn buf(data: &[u8]) -> PacketBuf {
    let mut b = PacketBuf::new(DEFAULT_CAPACITY);
    assert!(b.fill(data));
    b
}

/// Encapsulates one inner packet with `sa`, returns the ESP packet bytes.
pub fn encap_one(
    r: &mut SadReader,
    sa: SaHandle,
    inner: &[u8],
    now: Timestamp,
) -> Result<Vec<u8>, EspError> {
    let mut b = [buf(inner)];
    b[0].set_sa(sa);
    r.encap_batch(&mut b, now);
    match b[0].verdict() {
        Verdict::Ok => Ok(b[0].data().to_vec()),
        Verdict::Dropped(e) => Err(e),
        Verdict::Pending => panic!("not processed"),
    }
}

/// Decapsulates one ESP packet, returns the inner packet bytes.
pub fn decap_one(r: &mut SadReader, esp: &[u8], now: Timestamp) -> Result<Vec<u8>, EspError> {
    let mut b = [buf(esp)];
    r.decap_batch(&mut b, now);
    match b[0].verdict() {
        Verdict::Ok => Ok(b[0].data().to_vec()),
        Verdict::Dropped(e) => Err(e),
        Verdict::Pending => panic!("not processed"),
    }
}

/// Builds and seals an ESP packet with an arbitrary decrypted body (payload + trailer), so
/// tests can produce authentic packets with bad trailers.
pub fn craft(crypto: &EspCrypto, spi: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&spi.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..crypto.iv_len()).map(|i| i as u8 ^ 0x33));
    p.extend_from_slice(body);
    p.resize(p.len() + crypto.icv_len(), 0);
    crypto.seal(&mut p, None).unwrap();
    p
}
