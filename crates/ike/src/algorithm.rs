//! Algorithm identifiers shared by the codec, the key schedule, the exchanges and the config.
//!
//! Numbers are the IKEv1 attribute values of RFC 2409 Appendix A and the IPsec DOI values of
//! RFC 2407 §4.4/§4.5 (with the later IANA additions for AES, SHA-2, GCM and ChaCha20).

/// Phase 1 encryption algorithm (RFC 2409 App. A class 1; AES per RFC 3602, key length class 14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeCipher {
    TripleDesCbc,
    AesCbc128,
    AesCbc192,
    AesCbc256,
}

impl IkeCipher {
    /// Value of the Encryption Algorithm attribute (class 1).
    pub fn attribute_value(self) -> u16 {
        match self {
            IkeCipher::TripleDesCbc => 5,
            IkeCipher::AesCbc128 | IkeCipher::AesCbc192 | IkeCipher::AesCbc256 => 7,
        }
    }

    /// Value of the Key Length attribute (class 14), when one is sent.
    pub fn key_length_attribute(self) -> Option<u16> {
        match self {
            IkeCipher::TripleDesCbc => None,
            IkeCipher::AesCbc128 => Some(128),
            IkeCipher::AesCbc192 => Some(192),
            IkeCipher::AesCbc256 => Some(256),
        }
    }

    /// Maps (class 1 value, optional class 14 value) back to a cipher we implement.
    pub fn from_attributes(alg: u16, key_bits: Option<u16>) -> Option<Self> {
        match (alg, key_bits) {
            (5, None) => Some(IkeCipher::TripleDesCbc),
            (7, Some(128)) => Some(IkeCipher::AesCbc128),
            (7, Some(192)) => Some(IkeCipher::AesCbc192),
            (7, Some(256)) => Some(IkeCipher::AesCbc256),
            _ => None,
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            IkeCipher::TripleDesCbc => 24,
            IkeCipher::AesCbc128 => 16,
            IkeCipher::AesCbc192 => 24,
            IkeCipher::AesCbc256 => 32,
        }
    }

    pub fn block_len(self) -> usize {
        match self {
            IkeCipher::TripleDesCbc => 8,
            _ => 16,
        }
    }

    /// strongSwan proposal keyword.
    pub fn name(self) -> &'static str {
        match self {
            IkeCipher::TripleDesCbc => "3des",
            IkeCipher::AesCbc128 => "aes128",
            IkeCipher::AesCbc192 => "aes192",
            IkeCipher::AesCbc256 => "aes256",
        }
    }
}

/// Phase 1 hash algorithm (class 2); the PRF is HMAC with this hash (RFC 2409 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeHash {
    Md5,
    Sha1,
    Sha2_256,
    Sha2_384,
    Sha2_512,
}

impl IkeHash {
    pub fn attribute_value(self) -> u16 {
        match self {
            IkeHash::Md5 => 1,
            IkeHash::Sha1 => 2,
            IkeHash::Sha2_256 => 4,
            IkeHash::Sha2_384 => 5,
            IkeHash::Sha2_512 => 6,
        }
    }

    pub fn from_attribute(v: u16) -> Option<Self> {
        Some(match v {
            1 => IkeHash::Md5,
            2 => IkeHash::Sha1,
            4 => IkeHash::Sha2_256,
            5 => IkeHash::Sha2_384,
            6 => IkeHash::Sha2_512,
            _ => return None,
        })
    }

    /// Digest (and HMAC output) length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            IkeHash::Md5 => 16,
            IkeHash::Sha1 => 20,
            IkeHash::Sha2_256 => 32,
            IkeHash::Sha2_384 => 48,
            IkeHash::Sha2_512 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            IkeHash::Md5 => "md5",
            IkeHash::Sha1 => "sha1",
            IkeHash::Sha2_256 => "sha256",
            IkeHash::Sha2_384 => "sha384",
            IkeHash::Sha2_512 => "sha512",
        }
    }
}

/// Diffie-Hellman group (class 4 in phase 1, GROUP-DESCRIPTION class 3 in phase 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// RFC 2409 §6.2 (1024-bit MODP).
    Modp1024,
    /// RFC 3526 §2 (1536-bit MODP).
    Modp1536,
    /// RFC 3526 §3.
    Modp2048,
    /// RFC 3526 §4.
    Modp3072,
    /// RFC 3526 §5.
    Modp4096,
    /// RFC 3526 §6.
    Modp6144,
    /// RFC 3526 §7.
    Modp8192,
    /// RFC 5903 (NIST P-256).
    Ecp256,
    /// RFC 5903 (NIST P-384).
    Ecp384,
    /// RFC 5903 (NIST P-521).
    Ecp521,
    /// Curve25519 (IANA group 31, RFC 8031 encoding).
    Curve25519,
}

impl DhGroup {
    pub const ALL: [DhGroup; 11] = [
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Modp6144,
        DhGroup::Modp8192,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
    ];

    pub fn number(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Modp6144 => 17,
            DhGroup::Modp8192 => 18,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Ecp521 => 21,
            DhGroup::Curve25519 => 31,
        }
    }

    pub fn from_number(n: u16) -> Option<Self> {
        DhGroup::ALL.into_iter().find(|g| g.number() == n)
    }

    /// Length of the public value in a KE payload.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp1536 => 192,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Modp4096 => 512,
            DhGroup::Modp6144 => 768,
            DhGroup::Modp8192 => 1024,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Ecp521 => 132,
            DhGroup::Curve25519 => 32,
        }
    }

    /// True for MODP groups smaller than 2048 bits, refused unless the config opts in.
    pub fn is_weak(self) -> bool {
        matches!(self, DhGroup::Modp1024 | DhGroup::Modp1536)
    }

    /// strongSwan proposal keyword.
    pub fn name(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp1536 => "modp1536",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Modp3072 => "modp3072",
            DhGroup::Modp4096 => "modp4096",
            DhGroup::Modp6144 => "modp6144",
            DhGroup::Modp8192 => "modp8192",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Ecp521 => "ecp521",
            DhGroup::Curve25519 => "curve25519",
        }
    }
}

/// ESP encryption transform (IPsec DOI ESP transform ID, RFC 2407 §4.4.4 and IANA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspCipher {
    /// ESP_AES (12), RFC 3602.
    AesCbc { key_bits: u16 },
    /// ESP_AES_GCM_8/12/16 (18/19/20), RFC 4106.
    AesGcm { key_bits: u16, icv_len: u8 },
    /// ESP_CHACHA20_POLY1305 (28), RFC 7634.
    ChaCha20Poly1305,
}

impl EspCipher {
    pub fn transform_id(self) -> u8 {
        match self {
            EspCipher::AesCbc { .. } => 12,
            EspCipher::AesGcm { icv_len: 8, .. } => 18,
            EspCipher::AesGcm { icv_len: 12, .. } => 19,
            EspCipher::AesGcm { .. } => 20,
            EspCipher::ChaCha20Poly1305 => 28,
        }
    }

    /// The Key Length attribute (IPsec class 6) sent with this transform.
    pub fn key_length_attribute(self) -> Option<u16> {
        match self {
            EspCipher::AesCbc { key_bits } | EspCipher::AesGcm { key_bits, .. } => Some(key_bits),
            EspCipher::ChaCha20Poly1305 => None,
        }
    }

    pub fn from_transform(id: u8, key_bits: Option<u16>) -> Option<Self> {
        let aes_bits = |k: Option<u16>| match k {
            Some(b @ (128 | 192 | 256)) => Some(b),
            _ => None,
        };
        Some(match id {
            12 => EspCipher::AesCbc {
                key_bits: aes_bits(key_bits)?,
            },
            18..=20 => EspCipher::AesGcm {
                key_bits: aes_bits(key_bits)?,
                icv_len: match id {
                    18 => 8,
                    19 => 12,
                    _ => 16,
                },
            },
            28 if key_bits.is_none() || key_bits == Some(256) => EspCipher::ChaCha20Poly1305,
            _ => return None,
        })
    }

    pub fn is_aead(self) -> bool {
        !matches!(self, EspCipher::AesCbc { .. })
    }

    /// Bytes of KEYMAT the cipher consumes: key plus the 4-byte salt of RFC 4106 §8.1 / RFC 7634 §4.
    pub fn keymat_len(self) -> usize {
        match self {
            EspCipher::AesCbc { key_bits } => usize::from(key_bits) / 8,
            EspCipher::AesGcm { key_bits, .. } => usize::from(key_bits) / 8 + 4,
            EspCipher::ChaCha20Poly1305 => 36,
        }
    }

    /// strongSwan proposal keyword.
    pub fn name(self) -> String {
        match self {
            EspCipher::AesCbc { key_bits } => format!("aes{key_bits}"),
            EspCipher::AesGcm { key_bits, icv_len } => format!("aes{key_bits}gcm{icv_len}"),
            EspCipher::ChaCha20Poly1305 => "chacha20poly1305".to_string(),
        }
    }
}

/// ESP integrity algorithm (IPsec DOI Authentication Algorithm attribute, class 5; RFC 4868).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EspIntegrity {
    HmacSha1_96,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl EspIntegrity {
    pub fn attribute_value(self) -> u16 {
        match self {
            EspIntegrity::HmacSha1_96 => 2,
            EspIntegrity::HmacSha256_128 => 5,
            EspIntegrity::HmacSha384_192 => 6,
            EspIntegrity::HmacSha512_256 => 7,
        }
    }

    pub fn from_attribute(v: u16) -> Option<Self> {
        Some(match v {
            2 => EspIntegrity::HmacSha1_96,
            5 => EspIntegrity::HmacSha256_128,
            6 => EspIntegrity::HmacSha384_192,
            7 => EspIntegrity::HmacSha512_256,
            _ => return None,
        })
    }

    /// Bytes of KEYMAT the integrity key takes.
    pub fn key_len(self) -> usize {
        match self {
            EspIntegrity::HmacSha1_96 => 20,
            EspIntegrity::HmacSha256_128 => 32,
            EspIntegrity::HmacSha384_192 => 48,
            EspIntegrity::HmacSha512_256 => 64,
        }
    }

    pub fn icv_len(self) -> usize {
        match self {
            EspIntegrity::HmacSha1_96 => 12,
            EspIntegrity::HmacSha256_128 => 16,
            EspIntegrity::HmacSha384_192 => 24,
            EspIntegrity::HmacSha512_256 => 32,
        }
    }

    /// strongSwan proposal keyword.
    pub fn name(self) -> &'static str {
        match self {
            EspIntegrity::HmacSha1_96 => "sha1",
            EspIntegrity::HmacSha256_128 => "sha256",
            EspIntegrity::HmacSha384_192 => "sha384",
            EspIntegrity::HmacSha512_256 => "sha512",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dh_group_numbers_round_trip() {
        for g in DhGroup::ALL {
            assert_eq!(DhGroup::from_number(g.number()), Some(g));
        }
        assert_eq!(DhGroup::from_number(1), None);
    }

    #[test]
    fn esp_transform_ids_round_trip() {
        for c in [
            EspCipher::AesCbc { key_bits: 128 },
            EspCipher::AesCbc { key_bits: 256 },
            EspCipher::AesGcm {
                key_bits: 128,
                icv_len: 8,
            },
            EspCipher::AesGcm {
                key_bits: 256,
                icv_len: 12,
            },
            EspCipher::AesGcm {
                key_bits: 128,
                icv_len: 16,
            },
            EspCipher::ChaCha20Poly1305,
        ] {
            assert_eq!(
                EspCipher::from_transform(c.transform_id(), c.key_length_attribute()),
                Some(c)
            );
        }
        assert_eq!(
            EspCipher::from_transform(12, None),
            None,
            "AES needs a key length"
        );
    }

    #[test]
    fn ike_cipher_attributes_round_trip() {
        for c in [
            IkeCipher::TripleDesCbc,
            IkeCipher::AesCbc128,
            IkeCipher::AesCbc192,
            IkeCipher::AesCbc256,
        ] {
            assert_eq!(
                IkeCipher::from_attributes(c.attribute_value(), c.key_length_attribute()),
                Some(c)
            );
        }
    }
}
