//! The IKEv1 key schedule: SKEYID and its children, the phase 1 encryption key and IVs, the
//! authentication and Quick Mode hashes, KEYMAT (RFC 2409 §5, §5.5, Appendix B) and the NAT-D
//! hash (RFC 3947 §3.2).

use core::fmt;
use std::net::IpAddr;

use zeroize::Zeroizing;

use super::prf::{hash as digest, prf};
use super::secret::Secret;
use crate::algorithm::{IkeCipher, IkeHash};

/// `SKEYID = prf(pre-shared-key, Ni_b | Nr_b)` (RFC 2409 §5, pre-shared key authentication).
pub fn skeyid_psk(hash: IkeHash, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> Secret {
    prf(hash, psk, &[ni_b, nr_b])
}

/// `SKEYID = prf(Ni_b | Nr_b, g^xy)` (RFC 2409 §5, signature authentication).
pub fn skeyid_sig(hash: IkeHash, ni_b: &[u8], nr_b: &[u8], g_xy: &[u8]) -> Secret {
    let mut key = Zeroizing::new(Vec::with_capacity(ni_b.len() + nr_b.len()));
    key.extend_from_slice(ni_b);
    key.extend_from_slice(nr_b);
    prf(hash, &key, &[g_xy])
}

/// Keys of an ISAKMP SA (RFC 2409 §5, Appendix B). `Debug` prints no key material.
#[derive(Clone)]
pub struct Phase1Keys {
    pub skeyid: Secret,
    /// Keying material for non-ISAKMP SAs (Quick Mode KEYMAT).
    pub skeyid_d: Secret,
    /// Key of the ISAKMP authentication hashes (HASH(1..3), Informational HASH).
    pub skeyid_a: Secret,
    /// Source of the phase 1 encryption key.
    pub skeyid_e: Secret,
    /// Phase 1 encryption key, exactly `cipher.key_len()` bytes.
    pub enc_key: Secret,
    /// Initial phase 1 IV, `cipher.block_len()` bytes: `hash(g^xi | g^xr)` truncated.
    pub iv: Vec<u8>,
}

impl fmt::Debug for Phase1Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Phase1Keys")
            .field("enc_key_len", &self.enc_key.len())
            .finish_non_exhaustive()
    }
}

impl Phase1Keys {
    /// Derives SKEYID_d/a/e, the encryption key and the initial IV from SKEYID.
    ///
    /// ```text
    /// SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)
    /// SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)
    /// SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        hash: IkeHash,
        cipher: IkeCipher,
        skeyid: Secret,
        g_xy: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
        g_xi: &[u8],
        g_xr: &[u8],
    ) -> Phase1Keys {
        let skeyid_d = prf(hash, &skeyid, &[g_xy, cky_i, cky_r, &[0]]);
        let skeyid_a = prf(hash, &skeyid, &[&skeyid_d, g_xy, cky_i, cky_r, &[1]]);
        let skeyid_e = prf(hash, &skeyid, &[&skeyid_a, g_xy, cky_i, cky_r, &[2]]);
        let enc_key = encryption_key(hash, &skeyid_e, cipher.key_len());
        let mut iv = digest(hash, &[g_xi, g_xr]);
        iv.truncate(cipher.block_len());
        Phase1Keys {
            skeyid,
            skeyid_d,
            skeyid_a,
            skeyid_e,
            enc_key,
            iv,
        }
    }
}

/// The phase 1 encryption key: the leading bytes of SKEYID_e, or when SKEYID_e is too short the
/// Appendix B expansion `K1 = prf(SKEYID_e, 0)`, `Kn = prf(SKEYID_e, Kn-1)`, `Ka = K1 | K2 | ...`.
fn encryption_key(hash: IkeHash, skeyid_e: &[u8], key_len: usize) -> Secret {
    if skeyid_e.len() >= key_len {
        return Zeroizing::new(skeyid_e.get(..key_len).unwrap_or(skeyid_e).to_vec());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(
        key_len.saturating_add(hash.output_len()),
    ));
    let mut k = prf(hash, skeyid_e, &[&[0]]);
    loop {
        out.extend_from_slice(&k);
        if out.len() >= key_len {
            break;
        }
        k = prf(hash, skeyid_e, &[&k]);
    }
    out.truncate(key_len);
    out
}

/// `HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)` (RFC 2409 §5).
#[allow(clippy::too_many_arguments)]
pub fn hash_i(
    hash: IkeHash,
    skeyid: &[u8],
    g_xi: &[u8],
    g_xr: &[u8],
    cky_i: &[u8; 8],
    cky_r: &[u8; 8],
    sai_b: &[u8],
    idii_b: &[u8],
) -> Secret {
    prf(hash, skeyid, &[g_xi, g_xr, cky_i, cky_r, sai_b, idii_b])
}

/// `HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)` (RFC 2409 §5).
#[allow(clippy::too_many_arguments)]
pub fn hash_r(
    hash: IkeHash,
    skeyid: &[u8],
    g_xr: &[u8],
    g_xi: &[u8],
    cky_r: &[u8; 8],
    cky_i: &[u8; 8],
    sai_b: &[u8],
    idir_b: &[u8],
) -> Secret {
    prf(hash, skeyid, &[g_xr, g_xi, cky_r, cky_i, sai_b, idir_b])
}

/// IV of the first message of a phase 2 or Informational exchange:
/// `hash(last phase 1 CBC block | M-ID)` truncated to the block length (RFC 2409 Appendix B).
pub fn phase2_iv(
    hash: IkeHash,
    last_phase1_block: &[u8],
    message_id: u32,
    block_len: usize,
) -> Vec<u8> {
    let mut iv = digest(hash, &[last_phase1_block, &message_id.to_be_bytes()]);
    iv.truncate(block_len);
    iv
}

/// Quick Mode `HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr])`, where `rest` is
/// the message after the HASH payload; also the Informational HASH (RFC 2409 §5.5, §5.7).
pub fn qm_hash1(hash: IkeHash, skeyid_a: &[u8], message_id: u32, rest: &[u8]) -> Secret {
    prf(hash, skeyid_a, &[&message_id.to_be_bytes(), rest])
}

/// Quick Mode `HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr])`
/// (RFC 2409 §5.5); `rest` is the message after the HASH payload.
pub fn qm_hash2(
    hash: IkeHash,
    skeyid_a: &[u8],
    message_id: u32,
    ni_b: &[u8],
    rest: &[u8],
) -> Secret {
    prf(hash, skeyid_a, &[&message_id.to_be_bytes(), ni_b, rest])
}

/// Quick Mode `HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)` (RFC 2409 §5.5).
pub fn qm_hash3(
    hash: IkeHash,
    skeyid_a: &[u8],
    message_id: u32,
    ni_b: &[u8],
    nr_b: &[u8],
) -> Secret {
    prf(
        hash,
        skeyid_a,
        &[&[0], &message_id.to_be_bytes(), ni_b, nr_b],
    )
}

/// `len` bytes of KEYMAT for one direction of an IPsec SA (RFC 2409 §5.5):
/// `K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)`,
/// `Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b)`, `K1 | K2 | ...` truncated.
/// `g_qm_xy` is the Quick Mode Diffie-Hellman secret when PFS is used.
#[allow(clippy::too_many_arguments)]
pub fn keymat(
    hash: IkeHash,
    skeyid_d: &[u8],
    g_qm_xy: Option<&[u8]>,
    protocol: u8,
    spi: &[u8],
    ni_b: &[u8],
    nr_b: &[u8],
    len: usize,
) -> Secret {
    let g = g_qm_xy.unwrap_or(&[]);
    let proto = [protocol];
    let mut out = Zeroizing::new(Vec::with_capacity(len.saturating_add(hash.output_len())));
    let mut k = prf(hash, skeyid_d, &[g, &proto, spi, ni_b, nr_b]);
    loop {
        out.extend_from_slice(&k);
        if out.len() >= len {
            break;
        }
        k = prf(hash, skeyid_d, &[&k, g, &proto, spi, ni_b, nr_b]);
    }
    out.truncate(len);
    out
}

/// NAT-D payload data: `HASH(CKY-I | CKY-R | IP | Port)` with the address in network byte order
/// (4 or 16 bytes) and the UDP port big-endian (RFC 3947 §3.2).
pub fn nat_d(hash: IkeHash, cky_i: &[u8; 8], cky_r: &[u8; 8], addr: IpAddr, port: u16) -> Vec<u8> {
    let port = port.to_be_bytes();
    match addr {
        IpAddr::V4(a) => digest(hash, &[cky_i, cky_r, &a.octets(), &port]),
        IpAddr::V6(a) => digest(hash, &[cky_i, cky_r, &a.octets(), &port]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_key_material() {
        let keys = Phase1Keys::derive(
            IkeHash::Sha1,
            IkeCipher::AesCbc128,
            Zeroizing::new(vec![0xab; 20]),
            &[1; 128],
            &[2; 8],
            &[3; 8],
            &[4; 128],
            &[5; 128],
        );
        let s = format!("{keys:?}");
        assert!(!s.contains("171") && !s.contains("ab"), "{s}");
    }

    #[test]
    fn encryption_key_is_a_prefix_of_skeyid_e_when_long_enough() {
        let keys = Phase1Keys::derive(
            IkeHash::Sha2_256,
            IkeCipher::AesCbc256,
            Zeroizing::new(vec![7; 32]),
            &[1; 32],
            &[2; 8],
            &[3; 8],
            &[4; 32],
            &[5; 32],
        );
        assert_eq!(&keys.enc_key[..], &keys.skeyid_e[..32]);
        assert_eq!(keys.iv.len(), 16);
    }

    #[test]
    fn keymat_has_the_requested_length() {
        for len in [0, 1, 20, 21, 64, 100] {
            let k = keymat(
                IkeHash::Sha1,
                &[1; 20],
                None,
                3,
                &[0, 0, 0, 1],
                b"ni",
                b"nr",
                len,
            );
            assert_eq!(k.len(), len);
        }
    }
}
