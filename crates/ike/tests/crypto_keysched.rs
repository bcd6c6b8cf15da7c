//! The IKEv1 key schedule against values computed independently with Python's hmac/hashlib
//! (tests/data/keysched_vectors.py, whose output is tests/data/keysched_vectors.rs).

use std::net::IpAddr;

use ferrovpn_ike::algorithm::{DhGroup, IkeCipher, IkeHash};
use ferrovpn_ike::crypto::keys::{
    hash_i, hash_r, keymat, nat_d, phase2_iv, qm_hash1, qm_hash2, qm_hash3, skeyid_psk,
};
use ferrovpn_ike::crypto::{DhPrivate, Phase1Keys};

#[allow(dead_code)]
mod vectors {
    include!("data/keysched_vectors.rs");
}
use vectors::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

// The inputs of keysched_vectors.py.
const PSK: &[u8] = b"ferrovpn test psk";
const CKY_I: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
const CKY_R: [u8; 8] = [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18];
const SAI_B: &str = "00000001000000010000002c01010001";
const IDII_B: &str = "011101f4c0000201";
const IDIR_B: &str = "011101f4c0000202";
const MESSAGE_ID: u32 = 0x1234_5678;
const SPI: [u8; 4] = [0xc0, 0xff, 0xee, 0x01];
const PROTO_ESP: u8 = 3;

fn ni_b() -> Vec<u8> {
    (0x10..0x30).collect()
}
fn nr_b() -> Vec<u8> {
    (0x30..0x50).collect()
}
fn qm_ni() -> Vec<u8> {
    (0x50..0x60).collect()
}
fn qm_nr() -> Vec<u8> {
    (0x60..0x74).collect()
}

/// The phase 1 shared secret, from the fixed MODP-1024 exponents.
fn g_xy() -> Vec<u8> {
    let i = DhPrivate::from_secret_bytes(DhGroup::Modp1024, &h(MODP1024_XI)).unwrap();
    i.shared_secret(&h(MODP1024_GXR)).unwrap().to_vec()
}

fn phase1(hash: IkeHash, cipher: IkeCipher) -> Phase1Keys {
    let skeyid = skeyid_psk(hash, PSK, &ni_b(), &nr_b());
    Phase1Keys::derive(
        hash,
        cipher,
        skeyid,
        &g_xy(),
        &CKY_I,
        &CKY_R,
        &h(MODP1024_GXI),
        &h(MODP1024_GXR),
    )
}

struct Expected {
    skeyid: &'static str,
    d: &'static str,
    a: &'static str,
    e: &'static str,
    enc_key: &'static str,
    iv: &'static str,
    hash_i: &'static str,
    hash_r: &'static str,
}

fn check_phase1(hash: IkeHash, cipher: IkeCipher, x: Expected) {
    assert_eq!(g_xy(), h(MODP1024_GXY));
    let k = phase1(hash, cipher);
    assert_eq!(*k.skeyid, h(x.skeyid), "SKEYID");
    assert_eq!(*k.skeyid_d, h(x.d), "SKEYID_d");
    assert_eq!(*k.skeyid_a, h(x.a), "SKEYID_a");
    assert_eq!(*k.skeyid_e, h(x.e), "SKEYID_e");
    assert_eq!(*k.enc_key, h(x.enc_key), "encryption key");
    assert_eq!(k.enc_key.len(), cipher.key_len());
    assert_eq!(k.iv, h(x.iv), "phase 1 IV");
    assert_eq!(k.iv.len(), cipher.block_len());
    let (gxi, gxr) = (h(MODP1024_GXI), h(MODP1024_GXR));
    let hi = hash_i(
        hash,
        &k.skeyid,
        &gxi,
        &gxr,
        &CKY_I,
        &CKY_R,
        &h(SAI_B),
        &h(IDII_B),
    );
    let hr = hash_r(
        hash,
        &k.skeyid,
        &gxr,
        &gxi,
        &CKY_R,
        &CKY_I,
        &h(SAI_B),
        &h(IDIR_B),
    );
    assert_eq!(*hi, h(x.hash_i), "HASH_I");
    assert_eq!(*hr, h(x.hash_r), "HASH_R");
}

#[test]
fn sha1_aes256_phase1_expands_skeyid_e_per_appendix_b() {
    check_phase1(
        IkeHash::Sha1,
        IkeCipher::AesCbc256,
        Expected {
            skeyid: SHA1_AES256_SKEYID,
            d: SHA1_AES256_SKEYID_D,
            a: SHA1_AES256_SKEYID_A,
            e: SHA1_AES256_SKEYID_E,
            enc_key: SHA1_AES256_ENC_KEY,
            iv: SHA1_AES256_IV,
            hash_i: SHA1_AES256_HASH_I,
            hash_r: SHA1_AES256_HASH_R,
        },
    );
    let k = phase1(IkeHash::Sha1, IkeCipher::AesCbc256);
    assert_ne!(
        k.enc_key[..20],
        k.skeyid_e[..],
        "a 20-byte SKEYID_e is expanded, not used as the key prefix"
    );
}

#[test]
fn sha256_3des_phase1_truncates_skeyid_e_and_iv() {
    check_phase1(
        IkeHash::Sha2_256,
        IkeCipher::TripleDesCbc,
        Expected {
            skeyid: SHA256_3DES_SKEYID,
            d: SHA256_3DES_SKEYID_D,
            a: SHA256_3DES_SKEYID_A,
            e: SHA256_3DES_SKEYID_E,
            enc_key: SHA256_3DES_ENC_KEY,
            iv: SHA256_3DES_IV,
            hash_i: SHA256_3DES_HASH_I,
            hash_r: SHA256_3DES_HASH_R,
        },
    );
}

#[test]
fn phase2_iv_hashes_last_block_and_message_id() {
    let last = h("00112233445566778899aabbccddeeff");
    assert_eq!(
        phase2_iv(IkeHash::Sha1, &last, MESSAGE_ID, 16),
        h(P2_IV_AES)
    );
    assert_eq!(
        phase2_iv(IkeHash::Sha1, &last, MESSAGE_ID, 8),
        h(P2_IV_AES)[..8]
    );
}

#[test]
fn quick_mode_hashes_match() {
    let k = phase1(IkeHash::Sha1, IkeCipher::AesCbc256);
    let header = h("0a000034000000010000000100000028");
    let rest1 = [&header[..], b"rest of QM1"].concat();
    let rest2 = [&header[..], b"rest of QM2"].concat();
    let sha1 = IkeHash::Sha1;
    assert_eq!(
        *qm_hash1(sha1, &k.skeyid_a, MESSAGE_ID, &rest1),
        h(QM_HASH1)
    );
    assert_eq!(
        *qm_hash2(sha1, &k.skeyid_a, MESSAGE_ID, &qm_ni(), &rest2),
        h(QM_HASH2)
    );
    assert_eq!(
        *qm_hash3(sha1, &k.skeyid_a, MESSAGE_ID, &qm_ni(), &qm_nr()),
        h(QM_HASH3)
    );
}

#[test]
fn keymat_without_and_with_pfs_spans_several_prf_blocks() {
    let k = phase1(IkeHash::Sha1, IkeCipher::AesCbc256);
    let sha1 = IkeHash::Sha1;
    let no_pfs = keymat(
        sha1,
        &k.skeyid_d,
        None,
        PROTO_ESP,
        &SPI,
        &qm_ni(),
        &qm_nr(),
        64,
    );
    assert_eq!(*no_pfs, h(KEYMAT_NO_PFS));

    let qi = DhPrivate::from_secret_bytes(DhGroup::Modp2048, &h(MODP2048_XI)).unwrap();
    let g_qm_xy = qi.shared_secret(&h(MODP2048_GXR)).unwrap();
    let pfs = keymat(
        sha1,
        &k.skeyid_d,
        Some(&g_qm_xy),
        PROTO_ESP,
        &SPI,
        &qm_ni(),
        &qm_nr(),
        64,
    );
    assert_eq!(*pfs, h(KEYMAT_PFS));

    // A shorter request is a prefix of the longer one.
    let short = keymat(
        sha1,
        &k.skeyid_d,
        None,
        PROTO_ESP,
        &SPI,
        &qm_ni(),
        &qm_nr(),
        20,
    );
    assert_eq!(short[..], no_pfs[..20]);
}

#[test]
fn nat_d_hashes_cookies_address_and_port() {
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(nat_d(IkeHash::Sha1, &CKY_I, &CKY_R, v4, 500), h(NATD_V4));
    assert_eq!(
        nat_d(IkeHash::Sha2_256, &CKY_I, &CKY_R, v6, 4500),
        h(NATD_V6)
    );
    assert_ne!(
        nat_d(IkeHash::Sha1, &CKY_I, &CKY_R, v4, 4500),
        h(NATD_V4),
        "the port is hashed"
    );
}

#[test]
fn phase1_keys_debug_shows_no_key_material() {
    let k = phase1(IkeHash::Sha1, IkeCipher::AesCbc256);
    let s = format!("{k:?}");
    for secret in [&k.skeyid, &k.skeyid_d, &k.skeyid_a, &k.skeyid_e, &k.enc_key] {
        assert!(!s.contains(&hex::encode(&secret[..4])), "{s}");
        assert!(!s.contains(&format!("{}, {}", secret[0], secret[1])), "{s}");
    }
}
