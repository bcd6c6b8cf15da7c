//! AES-CBC (RFC 3602) with HMAC integrity (RFC 2404, RFC 4868): encrypt-then-MAC, the ICV
//! covering SPI | seq | IV | ciphertext, plus seq_hi with ESN (RFC 4303 §2.2.1, §3.3.2.2).

use aes::cipher::block_padding::NoPadding;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::{Aes128, Aes256};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::integrity::{Integrity, Mac};
use super::{split, AesKeyLen, EspTransform};
use crate::error::{EspError, SadError};

const BLOCK: usize = 16;

/// One per SA, so the size difference of the key schedules does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Aes {
    A128(Aes128),
    A256(Aes256),
}

struct CbcHmac {
    aes: Aes,
    /// Keys the IV generator: IV = AES(iv_key, seq), unpredictable without the key (RFC 3602 §2.3).
    iv_gen: Aes128,
    mac: Mac,
}

pub(super) fn build(
    key: AesKeyLen,
    integrity: Integrity,
    enc: &[u8],
    auth: &[u8],
) -> Result<Box<dyn EspTransform>, SadError> {
    let err = || SadError::KeyLength {
        which: "encryption",
        expected: key.bytes(),
        got: enc.len(),
    };
    let aes = match key {
        AesKeyLen::Aes128 => Aes::A128(Aes128::new_from_slice(enc).map_err(|_| err())?),
        AesKeyLen::Aes256 => Aes::A256(Aes256::new_from_slice(enc).map_err(|_| err())?),
    };
    let mut h = Sha256::new();
    h.update(b"ferrovpn-esp cbc iv");
    h.update(enc);
    h.update(auth);
    let mut digest: [u8; 32] = h.finalize().into();
    let iv_gen = Aes128::new(GenericArray::from_slice(&digest[..16]));
    digest.zeroize();
    Ok(Box::new(CbcHmac {
        aes,
        iv_gen,
        mac: Mac::new(integrity, auth),
    }))
}

impl CbcHmac {
    fn mac_parts<'a>(hdr: &'a [u8], iv: &'a [u8], body: &'a [u8], hi: &'a [u8]) -> [&'a [u8]; 4] {
        [hdr, iv, body, hi]
    }
}

impl EspTransform for CbcHmac {
    fn iv_len(&self) -> usize {
        BLOCK
    }

    fn icv_len(&self) -> usize {
        self.mac.icv_len()
    }

    fn block_len(&self) -> usize {
        BLOCK
    }

    fn make_iv(&self, seq: u64, iv: &mut [u8]) {
        let mut b = GenericArray::default();
        b[8..].copy_from_slice(&seq.to_be_bytes());
        self.iv_gen.encrypt_block(&mut b);
        for (d, s) in iv.iter_mut().zip(b.iter()) {
            *d = *s;
        }
    }

    fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let icv_len = self.icv_len();
        let (hdr, iv, body, icv) = split(pkt, BLOCK, icv_len).ok_or(EspError::NoRoom)?;
        if body.len() % BLOCK != 0 {
            return Err(EspError::BadLength);
        }
        let ivb = GenericArray::from_slice(iv);
        let n = body.len();
        let r = match &self.aes {
            Aes::A128(k) => cbc::Encryptor::<Aes128>::inner_iv_init(k.clone(), ivb)
                .encrypt_padded_mut::<NoPadding>(body, n)
                .map(|_| ()),
            Aes::A256(k) => cbc::Encryptor::<Aes256>::inner_iv_init(k.clone(), ivb)
                .encrypt_padded_mut::<NoPadding>(body, n)
                .map(|_| ()),
        };
        r.map_err(|_| EspError::BadLength)?;
        let hi = seq_hi.map(u32::to_be_bytes);
        let hi: &[u8] = hi.as_ref().map_or(&[], |h| &h[..]);
        let tag = self.mac.full(&Self::mac_parts(hdr, iv, body, hi));
        for (d, s) in icv.iter_mut().zip(tag.as_slice()) {
            *d = *s;
        }
        Ok(())
    }

    fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        let icv_len = self.icv_len();
        let (hdr, iv, body, icv) = split(pkt, BLOCK, icv_len).ok_or(EspError::Truncated)?;
        if body.is_empty() || body.len() % BLOCK != 0 {
            return Err(EspError::BadLength);
        }
        let hi = seq_hi.map(u32::to_be_bytes);
        let hi: &[u8] = hi.as_ref().map_or(&[], |h| &h[..]);
        if !self.mac.verify(&Self::mac_parts(hdr, iv, body, hi), icv) {
            return Err(EspError::AuthFailed);
        }
        let ivb = GenericArray::from_slice(iv);
        let r = match &self.aes {
            Aes::A128(k) => cbc::Decryptor::<Aes128>::inner_iv_init(k.clone(), ivb)
                .decrypt_padded_mut::<NoPadding>(body)
                .map(|_| ()),
            Aes::A256(k) => cbc::Decryptor::<Aes256>::inner_iv_init(k.clone(), ivb)
                .decrypt_padded_mut::<NoPadding>(body)
                .map(|_| ()),
        };
        r.map_err(|_| EspError::BadLength)
    }
}
