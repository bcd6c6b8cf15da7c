//! ESP transforms: the cipher behind a small trait, chosen once per SA.
//!
//! Backends (decided here, measured in docs/BENCHMARKS.md):
//! - AES-GCM with a 16-byte ICV and ChaCha20-Poly1305: ring 0.17 by default, RustCrypto
//!   `aes-gcm` / `chacha20poly1305` with feature `rustcrypto`.
//! - AES-GCM with a 12-byte ICV: RustCrypto `AesGcm<Aes, U12, U12>` (ring only does 16-byte tags).
//! - AES-GCM with an 8-byte ICV: `aes-gcm` 0.10 accepts tags of 12–16 bytes only, so this one is
//!   GCM composed from RustCrypto `ctr` + `ghash` (NIST SP 800-38D §7.1, tag = MSB_64), checked
//!   against the full-tag AEAD in the tests.
//! - AES-CBC (RustCrypto `aes` + `cbc`) with HMAC (ring in the `ring` build, else RustCrypto).

mod aead;
mod cbc_hmac;
mod integrity;

use std::fmt;

use zeroize::Zeroizing;

use crate::error::{EspError, SadError};

pub use integrity::Integrity;

/// Length of the ESP header fields in front of the IV: SPI and sequence number (RFC 4303 §2).
pub const ESP_HEADER_LEN: usize = 8;

/// AES key size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AesKeyLen {
    Aes128,
    Aes256,
}

impl AesKeyLen {
    pub fn bytes(self) -> usize {
        match self {
            AesKeyLen::Aes128 => 16,
            AesKeyLen::Aes256 => 32,
        }
    }
}

/// ICV length of AES-GCM (RFC 4106 §6: 8, 12 or 16 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GcmIcv {
    Icv8,
    Icv12,
    Icv16,
}

impl GcmIcv {
    pub fn bytes(self) -> usize {
        match self {
            GcmIcv::Icv8 => 8,
            GcmIcv::Icv12 => 12,
            GcmIcv::Icv16 => 16,
        }
    }
}

/// The ESP transform of an SA: encryption plus integrity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-GCM (RFC 4106). Key material: key || 4-byte salt.
    AesGcm { key: AesKeyLen, icv: GcmIcv },
    /// ChaCha20-Poly1305 (RFC 7634). Key material: 32-byte key || 4-byte salt.
    ChaCha20Poly1305,
    /// AES-CBC (RFC 3602) with a separate HMAC integrity key (RFC 2404, RFC 4868).
    AesCbc {
        key: AesKeyLen,
        integrity: Integrity,
    },
}

impl Cipher {
    /// Bytes of encryption key material expected in `SaConfig::enc_key` (KEYMAT order).
    pub fn enc_key_len(self) -> usize {
        match self {
            Cipher::AesGcm { key, .. } => key.bytes() + aead::SALT_LEN,
            Cipher::ChaCha20Poly1305 => 32 + aead::SALT_LEN,
            Cipher::AesCbc { key, .. } => key.bytes(),
        }
    }

    /// Bytes of integrity key expected in `SaConfig::auth_key` (0 for AEADs).
    pub fn auth_key_len(self) -> usize {
        match self {
            Cipher::AesCbc { integrity, .. } => integrity.key_len(),
            _ => 0,
        }
    }

    pub fn iv_len(self) -> usize {
        match self {
            Cipher::AesCbc { .. } => 16,
            _ => 8,
        }
    }

    pub fn icv_len(self) -> usize {
        match self {
            Cipher::AesGcm { icv, .. } => icv.bytes(),
            Cipher::ChaCha20Poly1305 => 16,
            Cipher::AesCbc { integrity, .. } => integrity.icv_len(),
        }
    }

    /// Alignment of payload + trailer (RFC 4303 §2.4): the cipher block, at least 4.
    pub fn block_len(self) -> usize {
        match self {
            Cipher::AesCbc { .. } => 16,
            _ => 4,
        }
    }

    /// Largest inner packet an ESP packet of at most `esp_len` bytes carries (RFC 4303 §2:
    /// SPI + sequence number, IV, payload, padding to the block, pad length and next header,
    /// ICV).
    pub fn max_payload(self, esp_len: usize) -> usize {
        let room = esp_len.saturating_sub(ESP_HEADER_LEN + self.iv_len() + self.icv_len());
        let b = self.block_len();
        (room / b * b).saturating_sub(2)
    }

    /// strongSwan proposal keyword, e.g. `aes128gcm16`, `aes256-sha256`.
    pub fn name(self) -> &'static str {
        use AesKeyLen::*;
        use GcmIcv::*;
        use Integrity::*;
        match self {
            Cipher::AesGcm {
                key: Aes128,
                icv: Icv8,
            } => "aes128gcm8",
            Cipher::AesGcm {
                key: Aes128,
                icv: Icv12,
            } => "aes128gcm12",
            Cipher::AesGcm {
                key: Aes128,
                icv: Icv16,
            } => "aes128gcm16",
            Cipher::AesGcm {
                key: Aes256,
                icv: Icv8,
            } => "aes256gcm8",
            Cipher::AesGcm {
                key: Aes256,
                icv: Icv12,
            } => "aes256gcm12",
            Cipher::AesGcm {
                key: Aes256,
                icv: Icv16,
            } => "aes256gcm16",
            Cipher::ChaCha20Poly1305 => "chacha20poly1305",
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha1_96,
            } => "aes128-sha1",
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha256_128,
            } => "aes128-sha256",
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha384_192,
            } => "aes128-sha384",
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha512_256,
            } => "aes128-sha512",
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha1_96,
            } => "aes256-sha1",
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha256_128,
            } => "aes256-sha256",
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha384_192,
            } => "aes256-sha384",
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha512_256,
            } => "aes256-sha512",
        }
    }

    /// Every transform this crate implements (tests and benches iterate over it).
    pub const ALL: [Cipher; 15] = {
        use AesKeyLen::*;
        use GcmIcv::*;
        use Integrity::*;
        [
            Cipher::AesGcm {
                key: Aes128,
                icv: Icv16,
            },
            Cipher::AesGcm {
                key: Aes128,
                icv: Icv12,
            },
            Cipher::AesGcm {
                key: Aes128,
                icv: Icv8,
            },
            Cipher::AesGcm {
                key: Aes256,
                icv: Icv16,
            },
            Cipher::AesGcm {
                key: Aes256,
                icv: Icv12,
            },
            Cipher::AesGcm {
                key: Aes256,
                icv: Icv8,
            },
            Cipher::ChaCha20Poly1305,
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha1_96,
            },
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha256_128,
            },
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha384_192,
            },
            Cipher::AesCbc {
                key: Aes128,
                integrity: HmacSha512_256,
            },
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha1_96,
            },
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha256_128,
            },
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha384_192,
            },
            Cipher::AesCbc {
                key: Aes256,
                integrity: HmacSha512_256,
            },
        ]
    };
}

/// Key bytes that are wiped on drop and never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl SecretKey {
    pub fn new(bytes: &[u8]) -> Self {
        SecretKey(Zeroizing::new(bytes.to_vec()))
    }

    pub fn empty() -> Self {
        SecretKey::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretKey {
    fn from(v: Vec<u8>) -> Self {
        SecretKey(Zeroizing::new(v))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} bytes, redacted)", self.0.len())
    }
}

/// One ESP transform instance with its keys (RFC 4303 §3.3.2 / §3.4.4).
///
/// `pkt` is always a whole ESP packet `SPI | seq | IV | payload+trailer | ICV`; `seq_hi` is the
/// high half of an extended sequence number (RFC 4303 §2.2.1), `None` without ESN.
pub trait EspTransform: Send + Sync {
    fn iv_len(&self) -> usize;
    fn icv_len(&self) -> usize;
    /// Alignment of payload + trailer (RFC 4303 §2.4): the cipher block, at least 4.
    fn block_len(&self) -> usize;
    /// Writes the IV for the packet with 64-bit sequence number `seq`.
    fn make_iv(&self, seq: u64, iv: &mut [u8]);
    /// Encrypts the payload in place and writes the ICV; IV must already be in `pkt`.
    fn seal(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError>;
    /// Verifies the ICV (constant time) and decrypts the payload in place.
    fn open(&self, pkt: &mut [u8], seq_hi: Option<u32>) -> Result<(), EspError>;
}

/// Checks key lengths and builds the transform (key layout = IKE KEYMAT order).
pub fn build(
    cipher: Cipher,
    enc_key: &SecretKey,
    auth_key: &SecretKey,
) -> Result<Box<dyn EspTransform>, SadError> {
    if enc_key.len() != cipher.enc_key_len() {
        return Err(SadError::KeyLength {
            which: "encryption",
            expected: cipher.enc_key_len(),
            got: enc_key.len(),
        });
    }
    if auth_key.len() != cipher.auth_key_len() {
        return Err(SadError::KeyLength {
            which: "integrity",
            expected: cipher.auth_key_len(),
            got: auth_key.len(),
        });
    }
    let enc = enc_key.expose();
    let t: Box<dyn EspTransform> = match cipher {
        Cipher::AesGcm { key, icv } => aead::gcm(key, icv, enc)?,
        Cipher::ChaCha20Poly1305 => aead::chacha20poly1305(enc)?,
        Cipher::AesCbc { key, integrity } => {
            cbc_hmac::build(key, integrity, enc, auth_key.expose())?
        }
    };
    Ok(t)
}

/// Splits an ESP packet into header, IV, payload and ICV; `None` if too short.
#[allow(clippy::type_complexity)]
pub(crate) fn split(
    pkt: &mut [u8],
    iv_len: usize,
    icv_len: usize,
) -> Option<(&[u8], &mut [u8], &mut [u8], &mut [u8])> {
    let body_end = pkt.len().checked_sub(icv_len)?;
    let min = ESP_HEADER_LEN.checked_add(iv_len)?;
    if body_end < min {
        return None;
    }
    let (front, icv) = pkt.split_at_mut(body_end);
    let (hdr, rest) = front.split_at_mut(ESP_HEADER_LEN);
    let (iv, body) = rest.split_at_mut(iv_len);
    Some((hdr, iv, body, icv))
}
