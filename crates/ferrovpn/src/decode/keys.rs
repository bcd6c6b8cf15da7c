//! Wireshark's IKEv1 decryption table (`ikev1_decryption_table`, the file strongSwan's
//! save-keys plugin writes): one line per IKE SA, `initiator cookie, encryption key` in hex,
//! fields optionally quoted as Wireshark's own UAT editor writes them.

use std::collections::HashMap;
use std::fmt;

use zeroize::Zeroizing;

/// Why a decryption table line is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyTableError {
    #[error("line {line}: expected \"<initiator cookie>\",\"<encryption key>\"")]
    Fields { line: usize },
    #[error("line {line}: the initiator cookie must be 16 hex digits")]
    Cookie { line: usize },
    #[error("line {line}: the encryption key is not hex")]
    Key { line: usize },
}

impl KeyTableError {
    /// The table line (1-based) the error is about.
    pub fn line(&self) -> usize {
        match self {
            KeyTableError::Fields { line }
            | KeyTableError::Cookie { line }
            | KeyTableError::Key { line } => *line,
        }
    }
}

/// Phase 1 encryption keys (Ka, RFC 2409 Appendix B) by initiator cookie. Debug never shows
/// a key; the keys are wiped when the table is dropped.
#[derive(Default, Clone)]
pub struct KeyTable {
    keys: HashMap<[u8; 8], Zeroizing<Vec<u8>>>,
    /// Every line that could not be used, with why, in file order.
    pub skipped: Vec<KeyTableError>,
}

impl fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyTable")
            .field("sas", &self.keys.len())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl KeyTable {
    /// Parses the table strictly: the first malformed line is an error.
    pub fn parse(text: &str) -> Result<KeyTable, KeyTableError> {
        let table = KeyTable::read(text);
        match table.skipped.first() {
            Some(e) => Err(e.clone()),
            None => Ok(table),
        }
    }

    /// Reads the table as `decode --keys` does: every usable line is kept, every other one is
    /// in `skipped` with why; blank lines and `#` comments are skipped silently.
    pub fn read(text: &str) -> KeyTable {
        let mut table = KeyTable::default();
        for (line_no, line) in (1usize..).zip(text.lines()) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line_no, line) {
                Ok((cookie, key)) => {
                    table.keys.insert(cookie, key);
                }
                Err(e) => table.skipped.push(e),
            }
        }
        table
    }

    /// Adds (or replaces) the key of one IKE SA.
    pub fn insert(&mut self, initiator_spi: [u8; 8], key: &[u8]) {
        self.keys
            .insert(initiator_spi, Zeroizing::new(key.to_vec()));
    }

    /// The phase 1 encryption key of the SA with this initiator cookie.
    pub fn get(&self, initiator_spi: &[u8; 8]) -> Option<&[u8]> {
        self.keys.get(initiator_spi).map(|k| k.as_slice())
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// One table line (not blank, not a comment): the initiator cookie and its key.
fn parse_line(line_no: usize, line: &str) -> Result<([u8; 8], Zeroizing<Vec<u8>>), KeyTableError> {
    let mut fields = line.split(',').map(unquote);
    let (Some(cookie), Some(key)) = (fields.next(), fields.next()) else {
        return Err(KeyTableError::Fields { line: line_no });
    };
    if fields.next().is_some() {
        return Err(KeyTableError::Fields { line: line_no });
    }
    let cookie = decode_hex(cookie)
        .and_then(|c| <[u8; 8]>::try_from(c.as_slice()).ok())
        .ok_or(KeyTableError::Cookie { line: line_no })?;
    let key = decode_hex(key)
        .filter(|k| !k.is_empty())
        .ok_or(KeyTableError::Key { line: line_no })?;
    Ok((cookie, Zeroizing::new(key)))
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    let f = f
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(f);
    f.strip_prefix("0x")
        .or_else(|| f.strip_prefix("0X"))
        .unwrap_or(f)
}

/// Decodes hex digits (either case); `None` on odd length or a non-hex character.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| match p {
            [hi, lo] => Some(digit(*hi)? << 4 | digit(*lo)?),
            _ => None,
        })
        .collect()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(
        String::with_capacity(bytes.len().saturating_mul(2)),
        |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        },
    )
}

#[cfg(test)]
// In tests an out-of-range index or an overflow is a failed test, which is what it should be.
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn parses_wireshark_and_strongswan_lines() {
        let t = KeyTable::parse(
            "# comment\n\
             \"294fc81dda83b4c6\",\"ea7ca8ff575625e1083bd7629832e4c8\"\n\
             \n\
             0123456789ABCDEF,0x000102\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.get(&[0x29, 0x4f, 0xc8, 0x1d, 0xda, 0x83, 0xb4, 0xc6])
                .unwrap()[..2],
            [0xea, 0x7c]
        );
        assert_eq!(
            t.get(&[1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
            Some(&[0u8, 1, 2][..])
        );
        assert!(!format!("{t:?}").contains("ea7c"));
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(
            KeyTable::parse("0011").unwrap_err(),
            KeyTableError::Fields { line: 1 }
        );
        assert_eq!(
            KeyTable::parse("\n\"0011\",\"00\"").unwrap_err(),
            KeyTableError::Cookie { line: 2 }
        );
        assert_eq!(
            KeyTable::parse("0011223344556677,zz").unwrap_err(),
            KeyTableError::Key { line: 1 }
        );
        assert_eq!(
            KeyTable::parse("0011223344556677,00,11").unwrap_err(),
            KeyTableError::Fields { line: 1 }
        );
    }

    #[test]
    fn read_keeps_the_good_lines_and_says_why_each_other_is_skipped() {
        let t = KeyTable::read(
            "0011223344556677,zz\n\
             \"294fc81dda83b4c6\",\"ea7c\"\n\
             # comment\n\
             0011,00\n\
             only-one-field\n\
             8877665544332211,\"\"\n",
        );
        assert_eq!(t.len(), 1);
        assert!(t
            .get(&[0x29, 0x4f, 0xc8, 0x1d, 0xda, 0x83, 0xb4, 0xc6])
            .is_some());
        assert_eq!(
            t.skipped,
            [
                KeyTableError::Key { line: 1 },
                KeyTableError::Cookie { line: 4 },
                KeyTableError::Fields { line: 5 },
                KeyTableError::Key { line: 6 },
            ]
        );
    }
}
