//! ESP packet protection on one set of keys, below SA state: seal a prepared packet, open one
//! and parse its trailer (RFC 4303 §2.4–2.6, §3.3, §3.4). Mode-agnostic; tunnel-mode rules sit
//! on top in `sa`.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use std::fmt;
use std::ops::Range;

use crate::cipher::{self, Cipher, EspTransform, SecretKey, ESP_HEADER_LEN};
use crate::error::{EspError, SadError};

/// Next header values (IANA protocol numbers) used in tunnel mode.
pub const NEXT_HEADER_IPV4: u8 = 4;
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": a dummy packet (RFC 4303 §2.6).
pub const NEXT_HEADER_NONE: u8 = 59;

/// Result of opening an ESP packet: next header and where the payload sits in the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub next_header: u8,
    pub payload: Range<usize>,
}

/// A keyed ESP transform: the cipher, checked key lengths, and the packet layout.
pub struct EspCrypto {
    cipher: Cipher,
    transform: Box<dyn EspTransform>,
}

impl fmt::Debug for EspCrypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EspCrypto({})", self.cipher.name())
    }
}

impl EspCrypto {
    /// Checks key lengths (KEYMAT order: AEAD key||salt; CBC encryption key + integrity key).
    pub fn new(
        cipher: Cipher,
        enc_key: &SecretKey,
        auth_key: &SecretKey,
    ) -> Result<Self, SadError> {
        Ok(EspCrypto {
            cipher,
            transform: cipher::build(cipher, enc_key, auth_key)?,
        })
    }

    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    pub fn iv_len(&self) -> usize {
        self.transform.iv_len()
    }

    pub fn icv_len(&self) -> usize {
        self.transform.icv_len()
    }

    pub fn block_len(&self) -> usize {
        self.transform.block_len()
    }

    /// Bytes of padding for a payload of `len` bytes (RFC 4303 §2.4: payload + padding + 2
    /// is a multiple of the block size, at least 4).
    pub fn pad_len(&self, len: usize) -> usize {
        let b = self.block_len().max(4);
        // b >= 4: no division by zero; used < b: no underflow.
        #[allow(clippy::arithmetic_side_effects)]
        let pad = {
            let used = (len % b + 2) % b;
            (b - used) % b
        };
        pad
    }

    /// Bytes added in front of the payload (header + IV) and behind it (max trailer + ICV).
    #[allow(clippy::arithmetic_side_effects)] // constants of the transform, each at most 32
    pub fn overhead(&self) -> (usize, usize) {
        (
            ESP_HEADER_LEN + self.iv_len(),
            self.block_len().max(4) - 1 + 2 + self.icv_len(),
        )
    }

    pub(crate) fn make_iv(&self, seq: u64, iv: &mut [u8]) {
        self.transform.make_iv(seq, iv)
    }

    /// Encrypts `pkt` = SPI | seq | IV | payload | padding | pad len | next header | ICV-space
    /// and writes the ICV. The caller wrote header, IV and trailer.
    pub fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        self.transform.seal(pkt, seq_hi)
    }

    /// Verifies the ICV and decrypts in place (no trailer parsing).
    pub fn decrypt(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError> {
        #[allow(clippy::arithmetic_side_effects)] // constants of the transform, each at most 32
        let min = ESP_HEADER_LEN + self.iv_len() + 2 + self.icv_len();
        if pkt.len() < min {
            return Err(EspError::Truncated);
        }
        self.transform.open(pkt, seq_hi)
    }

    /// Parses the decrypted trailer: pad length, monotonic padding 1, 2, 3, … and next header
    /// (RFC 4303 §2.4, §3.4.4.1).
    pub fn trailer(&self, pkt: &[u8]) -> Result<Decrypted, EspError> {
        let start = ESP_HEADER_LEN.saturating_add(self.iv_len());
        let end = pkt
            .len()
            .checked_sub(self.icv_len())
            .filter(|e| *e >= start.saturating_add(2))
            .ok_or(EspError::Truncated)?;
        let pad_end = end.checked_sub(2).ok_or(EspError::Truncated)?;
        let (pad_len, next_header) = match pkt.get(pad_end..end) {
            Some(&[pad_len, next_header]) => (usize::from(pad_len), next_header),
            _ => return Err(EspError::Truncated),
        };
        let pay_end = pad_end
            .checked_sub(pad_len)
            .filter(|p| *p >= start)
            .ok_or(EspError::BadPadding)?;
        let padding = pkt.get(pay_end..pad_end).ok_or(EspError::BadPadding)?;
        let mut bad = 0u8;
        for (i, b) in padding.iter().enumerate() {
            bad |= b ^ (i as u8).wrapping_add(1); // i < 255: the pad length is a u8
        }
        if bad != 0 {
            return Err(EspError::BadPadding);
        }
        Ok(Decrypted {
            next_header,
            payload: start..pay_end,
        })
    }

    /// `decrypt` then `trailer`: the lower-level receive path for any mode.
    pub fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<Decrypted, EspError> {
        self.decrypt(pkt, seq_hi)?;
        self.trailer(pkt)
    }
}
