//! AEAD transforms: AES-GCM (RFC 4106) and ChaCha20-Poly1305 (RFC 7634).
//!
//! Both use nonce = salt(4) || IV(8) and AAD = SPI || seq, or SPI || seq_hi || seq_lo with ESN
//! (RFC 4106 §4–5, RFC 7634 §2–2.1). The IV is the 64-bit sequence number, unique per key
//! (RFC 4106 §3.1 allows a counter).

use aes::cipher::generic_array::typenum::Unsigned;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockCipher, BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit, StreamCipher};
use aes::{Aes128, Aes256};
use aes_gcm::aead::consts::{U12, U16};
use aes_gcm::aead::{AeadCore, AeadInPlace};
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use zeroize::{Zeroize, Zeroizing};

use super::{split, AesKeyLen, EspTransform, GcmIcv};
use crate::error::{EspError, SadError};

pub(super) const SALT_LEN: usize = 4;
const IV_LEN: usize = 8;

/// Additional authenticated data of RFC 4106 §5 / RFC 7634 §2.1.
struct Aad {
    buf: [u8; 12],
    len: usize,
}

impl Aad {
    fn new(hdr: &[u8], seq_hi: Option<u32>) -> Aad {
        let mut buf = [0u8; 12];
        match seq_hi {
            None => {
                for (d, s) in buf.iter_mut().zip(hdr.iter().take(8)) {
                    *d = *s;
                }
                Aad { buf, len: 8 }
            }
            Some(hi) => {
                for (d, s) in buf.iter_mut().zip(hdr.iter().take(4)) {
                    *d = *s;
                }
                for (d, s) in buf[4..8].iter_mut().zip(hi.to_be_bytes()) {
                    *d = s;
                }
                for (d, s) in buf[8..].iter_mut().zip(hdr.iter().skip(4).take(4)) {
                    *d = *s;
                }
                Aad { buf, len: 12 }
            }
        }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn nonce(salt: &[u8; 4], iv: &[u8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    for (d, s) in n[4..].iter_mut().zip(iv) {
        *d = *s;
    }
    n
}

fn iv_from_seq(seq: u64, iv: &mut [u8]) {
    for (d, s) in iv.iter_mut().zip(seq.to_be_bytes()) {
        *d = s;
    }
}

/// Splits KEYMAT `key || salt` (RFC 4106 §8.1, RFC 7634 §4).
fn key_and_salt(enc: &[u8]) -> (&[u8], [u8; 4]) {
    let (key, salt) = enc.split_at(enc.len().saturating_sub(SALT_LEN));
    (key, <[u8; 4]>::try_from(salt).unwrap_or([0; 4]))
}

fn key_error(expected: usize, got: usize) -> SadError {
    SadError::KeyLength {
        which: "encryption",
        expected,
        got,
    }
}

pub(super) fn gcm(
    key_len: AesKeyLen,
    icv: GcmIcv,
    enc: &[u8],
) -> Result<Box<dyn EspTransform>, SadError> {
    let (key, salt) = key_and_salt(enc);
    let err = || key_error(key_len.bytes() + SALT_LEN, enc.len());
    Ok(match (key_len, icv) {
        (_, GcmIcv::Icv16) => backend::gcm16(key_len, key, salt).ok_or_else(err)?,
        (AesKeyLen::Aes128, GcmIcv::Icv12) => Box::new(RustCryptoAead {
            aead: aes_gcm::AesGcm::<Aes128, U12, U12>::new_from_slice(key).map_err(|_| err())?,
            salt,
        }),
        (AesKeyLen::Aes256, GcmIcv::Icv12) => Box::new(RustCryptoAead {
            aead: aes_gcm::AesGcm::<Aes256, U12, U12>::new_from_slice(key).map_err(|_| err())?,
            salt,
        }),
        (AesKeyLen::Aes128, GcmIcv::Icv8) => Box::new(Gcm8::new(
            Aes128::new_from_slice(key).map_err(|_| err())?,
            salt,
        )),
        (AesKeyLen::Aes256, GcmIcv::Icv8) => Box::new(Gcm8::new(
            Aes256::new_from_slice(key).map_err(|_| err())?,
            salt,
        )),
    })
}

pub(super) fn chacha20poly1305(enc: &[u8]) -> Result<Box<dyn EspTransform>, SadError> {
    let (key, salt) = key_and_salt(enc);
    backend::chacha20poly1305(key, salt).ok_or_else(|| key_error(32 + SALT_LEN, enc.len()))
}

/// Any RustCrypto AEAD with a 96-bit nonce.
struct RustCryptoAead<A> {
    aead: A,
    salt: [u8; 4],
}

impl<A> Drop for RustCryptoAead<A> {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl<A> EspTransform for RustCryptoAead<A>
where
    A: AeadInPlace + AeadCore<NonceSize = U12> + Send + Sync,
{
    fn iv_len(&self) -> usize {
        IV_LEN
    }

    fn icv_len(&self) -> usize {
        A::TagSize::USIZE
    }

    fn block_len(&self) -> usize {
        4
    }

    fn make_iv(&self, seq: u64, iv: &mut [u8]) {
        iv_from_seq(seq, iv)
    }

    fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let (hdr, iv, body, icv) = split(pkt, IV_LEN, self.icv_len()).ok_or(EspError::NoRoom)?;
        let n = nonce(&self.salt, iv);
        let aad = Aad::new(hdr, seq_hi);
        let tag = self
            .aead
            .encrypt_in_place_detached(GenericArray::from_slice(&n), aad.as_slice(), body)
            .map_err(|_| EspError::NoRoom)?;
        for (d, s) in icv.iter_mut().zip(tag.iter()) {
            *d = *s;
        }
        Ok(())
    }

    fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let (hdr, iv, body, icv) = split(pkt, IV_LEN, self.icv_len()).ok_or(EspError::Truncated)?;
        let n = nonce(&self.salt, iv);
        let aad = Aad::new(hdr, seq_hi);
        let tag = GenericArray::from_slice(icv);
        self.aead
            .decrypt_in_place_detached(GenericArray::from_slice(&n), aad.as_slice(), body, tag)
            .map_err(|_| EspError::AuthFailed)
    }
}

/// AES-GCM with the tag truncated to 8 bytes (RFC 4106 §6), built from CTR and GHASH as in
/// NIST SP 800-38D §7.1: J0 = nonce || 1, ciphertext = CTR from inc32(J0),
/// tag = MSB_64(E(K, J0) ^ GHASH_H(A || C || len(A) || len(C))).
struct Gcm8<C> {
    cipher: C,
    h: Zeroizing<[u8; 16]>,
    salt: [u8; 4],
}

impl<C> Drop for Gcm8<C> {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl<C> Gcm8<C>
where
    C: BlockEncrypt + BlockCipher + BlockSizeUser<BlockSize = U16> + Clone + Send + Sync,
{
    fn new(cipher: C, salt: [u8; 4]) -> Self {
        let mut h = GenericArray::default();
        cipher.encrypt_block(&mut h);
        let mut hk = Zeroizing::new([0u8; 16]);
        hk.copy_from_slice(&h);
        Gcm8 {
            cipher,
            h: hk,
            salt,
        }
    }

    fn full_tag(&self, j0: &[u8; 16], aad: &[u8], ct: &[u8]) -> [u8; 16] {
        let mut gh =
            <GHash as ghash::universal_hash::KeyInit>::new(GenericArray::from_slice(&self.h[..]));
        gh.update_padded(aad);
        gh.update_padded(ct);
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&((aad.len() as u64) * 8).to_be_bytes());
        lens[8..].copy_from_slice(&((ct.len() as u64) * 8).to_be_bytes());
        gh.update(&[GenericArray::clone_from_slice(&lens)]);
        let s = gh.finalize();
        let mut ek = GenericArray::clone_from_slice(j0);
        self.cipher.encrypt_block(&mut ek);
        let mut t = [0u8; 16];
        for ((d, a), b) in t.iter_mut().zip(ek.iter()).zip(s.iter()) {
            *d = a ^ b;
        }
        t
    }

    fn ctr(&self, j0: &[u8; 16], data: &mut [u8]) {
        let mut start = *j0;
        start[15] = 2;
        let core = ctr::CtrCore::<C, ctr::flavors::Ctr32BE>::inner_iv_init(
            self.cipher.clone(),
            GenericArray::from_slice(&start),
        );
        let mut ctr = ctr::Ctr32BE::<C>::from_core(core);
        ctr.apply_keystream(data);
    }
}

fn j0(salt: &[u8; 4], iv: &[u8]) -> [u8; 16] {
    let mut j = [0u8; 16];
    j[..12].copy_from_slice(&nonce(salt, iv));
    j[15] = 1;
    j
}

impl<C> EspTransform for Gcm8<C>
where
    C: BlockEncrypt + BlockCipher + BlockSizeUser<BlockSize = U16> + Clone + Send + Sync,
{
    fn iv_len(&self) -> usize {
        IV_LEN
    }

    fn icv_len(&self) -> usize {
        8
    }

    fn block_len(&self) -> usize {
        4
    }

    fn make_iv(&self, seq: u64, iv: &mut [u8]) {
        iv_from_seq(seq, iv)
    }

    fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let (hdr, iv, body, icv) = split(pkt, IV_LEN, 8).ok_or(EspError::NoRoom)?;
        let j = j0(&self.salt, iv);
        self.ctr(&j, body);
        let t = self.full_tag(&j, Aad::new(hdr, seq_hi).as_slice(), body);
        for (d, s) in icv.iter_mut().zip(t.iter()) {
            *d = *s;
        }
        Ok(())
    }

    fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        use subtle::ConstantTimeEq;
        let (hdr, iv, body, icv) = split(pkt, IV_LEN, 8).ok_or(EspError::Truncated)?;
        let j = j0(&self.salt, iv);
        let t = self.full_tag(&j, Aad::new(hdr, seq_hi).as_slice(), body);
        if !bool::from(t[..8].ct_eq(icv)) {
            return Err(EspError::AuthFailed);
        }
        self.ctr(&j, body);
        Ok(())
    }
}

#[cfg(feature = "rustcrypto")]
mod backend {
    //! RustCrypto AEADs (feature `rustcrypto`).
    use super::*;

    pub(super) fn gcm16(
        key_len: AesKeyLen,
        key: &[u8],
        salt: [u8; 4],
    ) -> Option<Box<dyn EspTransform>> {
        Some(match key_len {
            AesKeyLen::Aes128 => Box::new(RustCryptoAead {
                aead: aes_gcm::Aes128Gcm::new_from_slice(key).ok()?,
                salt,
            }),
            AesKeyLen::Aes256 => Box::new(RustCryptoAead {
                aead: aes_gcm::Aes256Gcm::new_from_slice(key).ok()?,
                salt,
            }),
        })
    }

    pub(super) fn chacha20poly1305(key: &[u8], salt: [u8; 4]) -> Option<Box<dyn EspTransform>> {
        Some(Box::new(RustCryptoAead {
            aead: ::chacha20poly1305::ChaCha20Poly1305::new_from_slice(key).ok()?,
            salt,
        }))
    }
}

#[cfg(all(feature = "ring", not(feature = "rustcrypto")))]
mod backend {
    //! ring AEADs (default): AES-GCM-16 and ChaCha20-Poly1305.
    use super::*;
    use ring::aead::{
        Aad as RingAad, LessSafeKey, Nonce, Tag, UnboundKey, AES_128_GCM, AES_256_GCM,
        CHACHA20_POLY1305,
    };

    /// ring keeps its key schedule opaque (not zeroized by ring); the salt is ours to wipe.
    struct RingAead {
        key: LessSafeKey,
        salt: [u8; 4],
    }

    impl Drop for RingAead {
        fn drop(&mut self) {
            self.salt.zeroize();
        }
    }

    impl EspTransform for RingAead {
        fn iv_len(&self) -> usize {
            IV_LEN
        }

        fn icv_len(&self) -> usize {
            16
        }

        fn block_len(&self) -> usize {
            4
        }

        fn make_iv(&self, seq: u64, iv: &mut [u8]) {
            iv_from_seq(seq, iv)
        }

        fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
            let (hdr, iv, body, icv) = split(pkt, IV_LEN, 16).ok_or(EspError::NoRoom)?;
            let n = Nonce::assume_unique_for_key(nonce(&self.salt, iv));
            let aad = Aad::new(hdr, seq_hi);
            let tag = self
                .key
                .seal_in_place_separate_tag(n, RingAad::from(aad.as_slice()), body)
                .map_err(|_| EspError::NoRoom)?;
            for (d, s) in icv.iter_mut().zip(tag.as_ref()) {
                *d = *s;
            }
            Ok(())
        }

        fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
            let (hdr, iv, body, icv) = split(pkt, IV_LEN, 16).ok_or(EspError::Truncated)?;
            let n = Nonce::assume_unique_for_key(nonce(&self.salt, iv));
            let aad = Aad::new(hdr, seq_hi);
            let tag = Tag::try_from(&*icv).map_err(|_| EspError::AuthFailed)?;
            self.key
                .open_in_place_separate_tag(n, RingAad::from(aad.as_slice()), tag, body, 0..)
                .map(|_| ())
                .map_err(|_| EspError::AuthFailed)
        }
    }

    pub(super) fn gcm16(
        key_len: AesKeyLen,
        key: &[u8],
        salt: [u8; 4],
    ) -> Option<Box<dyn EspTransform>> {
        let alg = match key_len {
            AesKeyLen::Aes128 => &AES_128_GCM,
            AesKeyLen::Aes256 => &AES_256_GCM,
        };
        let key = LessSafeKey::new(UnboundKey::new(alg, key).ok()?);
        Some(Box::new(RingAead { key, salt }))
    }

    pub(super) fn chacha20poly1305(key: &[u8], salt: [u8; 4]) -> Option<Box<dyn EspTransform>> {
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).ok()?);
        Some(Box::new(RingAead { key, salt }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The composed 8-byte-tag GCM must equal the first 8 bytes of the full AES-GCM tag.
    #[test]
    fn gcm8_is_truncated_full_gcm() {
        let key = [0x42u8; 16];
        let salt = [1, 2, 3, 4];
        let g8 = Gcm8::new(Aes128::new_from_slice(&key).unwrap(), salt);
        let full = aes_gcm::Aes128Gcm::new_from_slice(&key).unwrap();
        for len in [0usize, 1, 15, 16, 17, 100] {
            let mut pkt = vec![0u8; 8 + 8 + len + 8];
            pkt[..8].copy_from_slice(&[0, 0, 1, 0, 0, 0, 0, 7]);
            pkt[8..16].copy_from_slice(&7u64.to_be_bytes());
            for (i, b) in pkt[16..16 + len].iter_mut().enumerate() {
                *b = i as u8;
            }
            let plain = pkt[16..16 + len].to_vec();
            g8.seal(&mut pkt, None).unwrap();
            let mut body = plain.clone();
            let n = nonce(&salt, &7u64.to_be_bytes());
            let tag = full
                .encrypt_in_place_detached(GenericArray::from_slice(&n), &pkt[..8], &mut body)
                .unwrap();
            assert_eq!(&pkt[16..16 + len], &body[..]);
            assert_eq!(&pkt[16 + len..], &tag[..8]);
            g8.open(&mut pkt, None).unwrap();
            assert_eq!(&pkt[16..16 + len], &plain[..]);
        }
    }
}
