//! Wireshark's ESP SA table (`esp_sa`, the UAT file of Wireshark's ESP preferences, as
//! strongSwan's save-keys plugin and ferrovpn's key export write it): one SA direction per line,
//! eight quoted fields: protocol, source, destination, SPI, encryption algorithm, encryption
//! key, authentication algorithm, authentication key. Algorithm names are spelled as Wireshark
//! spells them; the keys are in KEYMAT order (AEAD key followed by its 4-byte salt, RFC 4106 §8.1).

use std::fmt;
use std::net::IpAddr;

use ferrovpn_esp::{AesKeyLen, Cipher, EspCrypto, GcmIcv, Integrity, SecretKey};

use super::keys::decode_hex;

/// Wireshark's names of the ESP encryption algorithms we decrypt (packet-esp.c).
pub const AES_GCM_8: &str = "AES-GCM with 8 octet ICV [RFC4106]";
pub const AES_GCM_12: &str = "AES-GCM with 12 octet ICV [RFC4106]";
pub const AES_GCM_16: &str = "AES-GCM with 16 octet ICV [RFC4106]";
/// Older Wireshark releases' AES-GCM, the ICV length implied by an "ANY n bit" authentication.
pub const AES_GCM_ANY: &str = "AES-GCM [RFC4106]";
pub const CHACHA20_POLY1305: &str = "ChaCha20 with Poly1305 [RFC7634]";
pub const AES_CBC: &str = "AES-CBC [RFC3602]";
/// Wireshark's names of the ESP authentication algorithms.
pub const AUTH_NULL: &str = "NULL";
pub const HMAC_SHA1_96: &str = "HMAC-SHA-1-96 [RFC2404]";
pub const HMAC_SHA256_128: &str = "HMAC-SHA-256-128 [RFC4868]";
pub const HMAC_SHA384_192: &str = "HMAC-SHA-384-192 [RFC4868]";
pub const HMAC_SHA512_256: &str = "HMAC-SHA-512-256 [RFC4868]";

/// Wireshark's (encryption, authentication) names for a data plane transform.
pub fn wireshark_names(cipher: Cipher) -> (&'static str, &'static str) {
    match cipher {
        Cipher::AesGcm { icv, .. } => (
            match icv {
                GcmIcv::Icv8 => AES_GCM_8,
                GcmIcv::Icv12 => AES_GCM_12,
                GcmIcv::Icv16 => AES_GCM_16,
            },
            AUTH_NULL,
        ),
        Cipher::ChaCha20Poly1305 => (CHACHA20_POLY1305, AUTH_NULL),
        Cipher::AesCbc { integrity, .. } => (
            AES_CBC,
            match integrity {
                Integrity::HmacSha1_96 => HMAC_SHA1_96,
                Integrity::HmacSha256_128 => HMAC_SHA256_128,
                Integrity::HmacSha384_192 => HMAC_SHA384_192,
                Integrity::HmacSha512_256 => HMAC_SHA512_256,
            },
        ),
    }
}

/// Why an ESP SA table line is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EspSaError {
    #[error("line {line}: expected 8 quoted fields: protocol, source, destination, SPI, encryption, key, authentication, key")]
    Fields { line: usize },
    #[error("line {line}: protocol must be IPv4, IPv6 or Any")]
    Protocol { line: usize },
    #[error("line {line}: address '{value}' is neither an IP address nor *")]
    Address { line: usize, value: String },
    #[error("line {line}: SPI must be 0x followed by up to 8 hex digits")]
    Spi { line: usize },
    #[error("line {line}: a key is not hex")]
    Key { line: usize },
    #[error("line {line}: the key length does not fit {algorithm}")]
    KeyLength { line: usize, algorithm: String },
}

/// One SA direction: packets from `src` to `dst` with `spi` (`None` address = any).
pub struct EspSaEntry {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub spi: u32,
    pub crypto: EspCrypto,
}

/// The ESP SAs of a table. Debug never shows a key; `EspCrypto` wipes them when dropped.
#[derive(Default)]
pub struct EspSaTable {
    entries: Vec<EspSaEntry>,
    /// Lines naming algorithms ferrovpn does not implement (3DES, AES-CTR, NULL, ...).
    pub unsupported: usize,
}

impl fmt::Debug for EspSaTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspSaTable")
            .field("sas", &self.entries.len())
            .field("unsupported", &self.unsupported)
            .finish_non_exhaustive()
    }
}

impl EspSaTable {
    /// Parses the table; blank lines and `#` comments are skipped, lines with algorithms we do
    /// not implement are counted in `unsupported`.
    pub fn parse(text: &str) -> Result<EspSaTable, EspSaError> {
        let mut table = EspSaTable::default();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_quoted(line).ok_or(EspSaError::Fields { line: line_no })?;
            let [proto, src, dst, spi, enc, enc_key, auth, auth_key] = fields.as_slice() else {
                return Err(EspSaError::Fields { line: line_no });
            };
            if !["IPv4", "IPv6", "Any", "*"].contains(&proto.as_str()) {
                return Err(EspSaError::Protocol { line: line_no });
            }
            let addr = |v: &str| -> Result<Option<IpAddr>, EspSaError> {
                if v == "*" || v.is_empty() {
                    return Ok(None);
                }
                v.parse().map(Some).map_err(|_| EspSaError::Address {
                    line: line_no,
                    value: v.to_string(),
                })
            };
            let (src, dst) = (addr(src)?, addr(dst)?);
            let spi = spi
                .strip_prefix("0x")
                .or_else(|| spi.strip_prefix("0X"))
                .filter(|h| !h.is_empty() && h.len() <= 8)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or(EspSaError::Spi { line: line_no })?;
            let key = |k: &str| {
                let h = k
                    .strip_prefix("0x")
                    .or_else(|| k.strip_prefix("0X"))
                    .unwrap_or(k);
                decode_hex(h)
                    .map(zeroize::Zeroizing::new)
                    .ok_or(EspSaError::Key { line: line_no })
            };
            let (enc_key, auth_key) = (key(enc_key)?, key(auth_key)?);
            let Some(cipher) = cipher_of(enc, auth, enc_key.len()) else {
                table.unsupported += 1;
                continue;
            };
            let crypto = EspCrypto::new(
                cipher,
                &SecretKey::new(&enc_key),
                &SecretKey::new(&auth_key),
            )
            .map_err(|_| EspSaError::KeyLength {
                line: line_no,
                algorithm: format!("{enc} / {auth}"),
            })?;
            table.entries.push(EspSaEntry {
                src,
                dst,
                spi,
                crypto,
            });
        }
        Ok(table)
    }

    /// The SA for a packet with this SPI between these addresses; the newest line wins.
    pub fn get(&self, spi: u32, src: IpAddr, dst: IpAddr) -> Option<&EspSaEntry> {
        self.entries.iter().rev().find(|e| {
            e.spi == spi && e.src.is_none_or(|a| a == src) && e.dst.is_none_or(|a| a == dst)
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The transform a pair of Wireshark names and the encryption key length stand for.
fn cipher_of(enc: &str, auth: &str, enc_key_len: usize) -> Option<Cipher> {
    let aes = |len: usize| match len {
        16 => Some(AesKeyLen::Aes128),
        32 => Some(AesKeyLen::Aes256),
        _ => None,
    };
    let gcm = |icv| {
        Some(Cipher::AesGcm {
            key: aes(enc_key_len.checked_sub(4)?)?,
            icv,
        })
    };
    match enc {
        AES_GCM_8 => gcm(GcmIcv::Icv8),
        AES_GCM_12 => gcm(GcmIcv::Icv12),
        AES_GCM_16 => gcm(GcmIcv::Icv16),
        AES_GCM_ANY => gcm(match auth {
            "ANY 64 bit authentication [no checking]" => GcmIcv::Icv8,
            "ANY 96 bit authentication [no checking]" => GcmIcv::Icv12,
            _ => GcmIcv::Icv16,
        }),
        CHACHA20_POLY1305 => Some(Cipher::ChaCha20Poly1305),
        AES_CBC => Some(Cipher::AesCbc {
            key: aes(enc_key_len)?,
            integrity: match auth {
                HMAC_SHA1_96 => Integrity::HmacSha1_96,
                HMAC_SHA256_128 => Integrity::HmacSha256_128,
                HMAC_SHA384_192 => Integrity::HmacSha384_192,
                HMAC_SHA512_256 => Integrity::HmacSha512_256,
                _ => return None,
            },
        }),
        _ => None,
    }
}

/// Splits a line of comma-separated fields, each optionally in double quotes (commas inside
/// quotes are kept); `None` on an unterminated quote.
fn split_quoted(line: &str) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => cur.push(chars.next()?),
            ',' if !quoted => fields.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(cur.trim().to_string());
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCM: &str = "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0xc65cbcd3\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x000102030405060708090a0b0c0d0e0f10111213\",\"NULL\",\"\"";

    #[test]
    fn parses_ferrovpn_strongswan_and_old_wireshark_lines() {
        let text = format!(
            "# comment\n{GCM}\n\
             \"IPv4\",\"192.0.2.2\",\"192.0.2.1\",\"0x0000beef\",\"AES-GCM [RFC4106]\",\"0x{}\",\"ANY 64 bit authentication [no checking]\",\"0x\"\n\
             \"IPv6\",\"*\",\"2001:db8::1\",\"0x1\",\"AES-CBC [RFC3602]\",\"0x{}\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x{}\"\n\
             \"IPv4\",\"192.0.2.2\",\"192.0.2.1\",\"0x2\",\"TripleDES-CBC [RFC2451]\",\"0x00\",\"NULL\",\"\"\n",
            "11".repeat(36),
            "22".repeat(16),
            "33".repeat(32)
        );
        let t = EspSaTable::parse(&text).unwrap();
        assert_eq!((t.len(), t.unsupported), (3, 1));
        let a = "192.0.2.1".parse().unwrap();
        let b = "192.0.2.2".parse().unwrap();
        assert_eq!(
            t.get(0xc65cbcd3, a, b).unwrap().crypto.cipher().name(),
            "aes128gcm16"
        );
        assert!(t.get(0xc65cbcd3, b, a).is_none());
        assert_eq!(
            t.get(0xbeef, b, a).unwrap().crypto.cipher().name(),
            "aes256gcm8"
        );
        let v6 = "2001:db8::1".parse().unwrap();
        assert_eq!(
            t.get(1, "2001:db8::9".parse().unwrap(), v6)
                .unwrap()
                .crypto
                .cipher()
                .name(),
            "aes128-sha256"
        );
        assert!(!format!("{t:?}").contains("0001"));
    }

    #[test]
    fn names_round_trip_for_every_transform() {
        for c in Cipher::ALL {
            let (enc, auth) = wireshark_names(c);
            assert_eq!(
                cipher_of(enc, auth, c.enc_key_len()),
                Some(c),
                "{}",
                c.name()
            );
        }
    }

    #[test]
    fn rejects_malformed_lines() {
        let cases = [
            ("\"IPv4\",\"1.2.3.4\"", EspSaError::Fields { line: 1 }),
            (
                &GCM.replace("\"IPv4\"", "\"IPX\""),
                EspSaError::Protocol { line: 1 },
            ),
            (
                &GCM.replace("0xc65cbcd3", "c65cbcd3"),
                EspSaError::Spi { line: 1 },
            ),
            (
                &GCM.replace("0xc65cbcd3", "0x123456789"),
                EspSaError::Spi { line: 1 },
            ),
            (
                &GCM.replace("0x0001", "0xzz01"),
                EspSaError::Key { line: 1 },
            ),
            (
                &GCM.replace("\"IPv4\",", "\"IPv4,"),
                EspSaError::Fields { line: 1 },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(EspSaTable::parse(line).unwrap_err(), want, "{line}");
        }
        assert!(matches!(
            EspSaTable::parse(&GCM.replace("1213\"", "121314\"")),
            Ok(t) if t.unsupported == 1
        ));
    }
}
