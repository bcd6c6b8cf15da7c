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
    #[error("line {line}: address {value} is not an {protocol} address")]
    AddressFamily {
        line: usize,
        protocol: String,
        value: String,
    },
    #[error("line {line}: SPI must be 0x followed by up to 8 hex digits")]
    Spi { line: usize },
    #[error("line {line}: a key is not hex")]
    Key { line: usize },
    #[error("line {line}: the key length does not fit {algorithm}")]
    KeyLength { line: usize, algorithm: String },
    #[error("line {line}: encryption '{encryption}' with authentication '{authentication}' is not one decode implements (AES-GCM, ChaCha20 with Poly1305, AES-CBC with HMAC-SHA-1/256/384/512)")]
    Unsupported {
        line: usize,
        encryption: String,
        authentication: String,
    },
}

impl EspSaError {
    /// The table line (1-based) the error is about.
    pub fn line(&self) -> usize {
        match self {
            EspSaError::Fields { line }
            | EspSaError::Protocol { line }
            | EspSaError::Address { line, .. }
            | EspSaError::AddressFamily { line, .. }
            | EspSaError::Spi { line }
            | EspSaError::Key { line }
            | EspSaError::KeyLength { line, .. }
            | EspSaError::Unsupported { line, .. } => *line,
        }
    }
}

/// One SA direction: packets from `src` to `dst` with `spi` (`None` address = any).
pub struct EspSaEntry {
    /// Line of the table (1-based) this SA comes from.
    pub line: usize,
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
    /// Every line that could not be used, with why, in file order.
    pub skipped: Vec<EspSaError>,
}

impl fmt::Debug for EspSaTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspSaTable")
            .field("sas", &self.entries.len())
            .field("unsupported", &self.unsupported)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl EspSaTable {
    /// Parses the table strictly: the first malformed line is an error; lines with algorithms
    /// we do not implement are only counted in `unsupported`.
    pub fn parse(text: &str) -> Result<EspSaTable, EspSaError> {
        let table = EspSaTable::read(text);
        match table
            .skipped
            .iter()
            .find(|e| !matches!(e, EspSaError::Unsupported { .. }))
        {
            Some(e) => Err(e.clone()),
            None => Ok(table),
        }
    }

    /// Reads the table as `decode --keys` does: every usable line is kept, every other one is
    /// in `skipped` with why; blank lines and `#` comments are skipped silently.
    pub fn read(text: &str) -> EspSaTable {
        let mut table = EspSaTable::default();
        for (line_no, line) in (1usize..).zip(text.lines()) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line_no, line) {
                Ok(entry) => table.entries.push(entry),
                Err(e) => {
                    if matches!(e, EspSaError::Unsupported { .. }) {
                        table.unsupported = table.unsupported.saturating_add(1);
                    }
                    table.skipped.push(e);
                }
            }
        }
        table
    }

    /// The SA for a packet with this SPI between these addresses; the newest line wins.
    pub fn get(&self, spi: u32, src: IpAddr, dst: IpAddr) -> Option<&EspSaEntry> {
        self.entries.iter().rev().find(|e| {
            e.spi == spi && e.src.is_none_or(|a| a == src) && e.dst.is_none_or(|a| a == dst)
        })
    }

    /// The usable SAs, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &EspSaEntry> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One table line (not blank, not a comment) as an SA, or why it is not usable.
fn parse_line(line_no: usize, line: &str) -> Result<EspSaEntry, EspSaError> {
    let fields = split_quoted(line).ok_or(EspSaError::Fields { line: line_no })?;
    let [proto, src, dst, spi, enc, enc_key, auth, auth_key] = fields.as_slice() else {
        return Err(EspSaError::Fields { line: line_no });
    };
    let family = match proto.as_str() {
        "IPv4" => Some(true),
        "IPv6" => Some(false),
        "Any" | "*" => None,
        _ => return Err(EspSaError::Protocol { line: line_no }),
    };
    let addr = |v: &str| -> Result<Option<IpAddr>, EspSaError> {
        if v == "*" || v.is_empty() {
            return Ok(None);
        }
        let a: IpAddr = v.parse().map_err(|_| EspSaError::Address {
            line: line_no,
            value: v.to_string(),
        })?;
        if family.is_some_and(|v4| v4 != a.is_ipv4()) {
            return Err(EspSaError::AddressFamily {
                line: line_no,
                protocol: proto.clone(),
                value: v.to_string(),
            });
        }
        Ok(Some(a))
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
    let key_length = || EspSaError::KeyLength {
        line: line_no,
        algorithm: format!(
            "{enc} / {auth} ({} bytes of encryption key, {} of authentication key)",
            enc_key.len(),
            auth_key.len()
        ),
    };
    let cipher = match cipher_of(enc, auth, enc_key.len()) {
        Ok(c) => c,
        Err(Unusable::KeyLength) => return Err(key_length()),
        Err(Unusable::Algorithm) => {
            return Err(EspSaError::Unsupported {
                line: line_no,
                encryption: enc.clone(),
                authentication: auth.clone(),
            })
        }
    };
    let crypto = EspCrypto::new(
        cipher,
        &SecretKey::new(&enc_key),
        &SecretKey::new(&auth_key),
    )
    .map_err(|_| key_length())?;
    Ok(EspSaEntry {
        line: line_no,
        src,
        dst,
        spi,
        crypto,
    })
}

/// Why a pair of algorithm names and a key length give no transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    /// Not a transform ferrovpn implements.
    Algorithm,
    /// A transform we implement, but not with a key of this length.
    KeyLength,
}

/// The transform a pair of Wireshark names and the encryption key length stand for.
fn cipher_of(enc: &str, auth: &str, enc_key_len: usize) -> Result<Cipher, Unusable> {
    let aes = |len: Option<usize>| match len {
        Some(16) => Ok(AesKeyLen::Aes128),
        Some(32) => Ok(AesKeyLen::Aes256),
        _ => Err(Unusable::KeyLength),
    };
    // The AES key followed by its 4-byte salt (RFC 4106 §8.1).
    let gcm = |icv| {
        Ok(Cipher::AesGcm {
            key: aes(enc_key_len.checked_sub(4))?,
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
        CHACHA20_POLY1305 => Ok(Cipher::ChaCha20Poly1305),
        AES_CBC => {
            let integrity = match auth {
                HMAC_SHA1_96 => Integrity::HmacSha1_96,
                HMAC_SHA256_128 => Integrity::HmacSha256_128,
                HMAC_SHA384_192 => Integrity::HmacSha384_192,
                HMAC_SHA512_256 => Integrity::HmacSha512_256,
                _ => return Err(Unusable::Algorithm),
            };
            Ok(Cipher::AesCbc {
                key: aes(Some(enc_key_len))?,
                integrity,
            })
        }
        _ => Err(Unusable::Algorithm),
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
// In tests an out-of-range index or an overflow is a failed test, which is what it should be.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
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
            assert_eq!(cipher_of(enc, auth, c.enc_key_len()), Ok(c), "{}", c.name());
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
            Err(EspSaError::KeyLength { line: 1, .. })
        ));
    }

    #[test]
    fn read_keeps_the_good_lines_and_says_why_each_other_is_skipped() {
        let cbc = format!(
            "\"IPv4\",\"192.0.2.2\",\"192.0.2.1\",\"0x2\",\"AES-CBC [RFC3602]\",\"0x{}\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x{}\"",
            "22".repeat(16),
            "33".repeat(32)
        );
        let text = [
            GCM.to_string(),
            GCM.replace(
                "AES-GCM with 16 octet ICV [RFC4106]",
                "TripleDES-CBC [RFC2451]",
            ),
            GCM.replace("1213\"", "121314\""),
            GCM.replace("192.0.2.2", "2001:db8::2"),
            GCM.replace("192.0.2.2", "192.0.2.300"),
            "# a comment".to_string(),
            "garbage".to_string(),
            cbc.replace(&"33".repeat(32), &"33".repeat(20)),
            cbc.clone(),
        ]
        .join("\n");
        let t = EspSaTable::read(&text);
        assert_eq!(t.len(), 2);
        assert_eq!(t.entries().map(|e| e.line).collect::<Vec<_>>(), [1, 9]);
        assert_eq!(t.unsupported, 1);
        let lines: Vec<usize> = t.skipped.iter().map(EspSaError::line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 7, 8]);
        assert!(
            matches!(&t.skipped[0], EspSaError::Unsupported { encryption, .. } if encryption.starts_with("TripleDES"))
        );
        assert!(matches!(t.skipped[1], EspSaError::KeyLength { .. }));
        assert!(
            matches!(&t.skipped[2], EspSaError::AddressFamily { value, .. } if value == "2001:db8::2")
        );
        assert!(matches!(t.skipped[3], EspSaError::Address { .. }));
        assert!(matches!(t.skipped[4], EspSaError::Fields { line: 7 }));
        assert!(matches!(
            t.skipped[5],
            EspSaError::KeyLength { line: 8, .. }
        ));
        assert!(t.skipped[1]
            .to_string()
            .starts_with("line 3: the key length does not fit AES-GCM with 16 octet ICV"));
        // Strictly, the first malformed line is the error.
        assert_eq!(EspSaTable::parse(&text).unwrap_err(), t.skipped[1]);
    }
}
