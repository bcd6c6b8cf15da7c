//! `ipsec.secrets` (strongSwan ipsec.secrets(5), Libreswan ipsec.secrets(5)): lines
//! `[selectors] : PSK "key"`, a continuation line starts with white space. Only PSK entries
//! are read; key material never appears in a note.

use zeroize::Zeroizing;

use super::model::{decode_secret, Note, SecretEntry};

/// Reads the PSK entries; other kinds (RSA, ECDSA, XAUTH, EAP, ...) and unreadable lines are
/// noted (without their values).
pub fn parse(text: &str, notes: &mut Vec<Note>) -> Vec<SecretEntry> {
    // Join continuation lines first, remembering where each entry began.
    let mut entries: Vec<(usize, Zeroizing<String>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim_end();
        let trimmed = l.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if l.starts_with([' ', '\t']) {
            if let Some((_, e)) = entries.last_mut() {
                e.push(' ');
                e.push_str(trimmed);
                continue;
            }
        }
        entries.push((i + 1, Zeroizing::new(trimmed.to_string())));
    }
    let mut out = Vec::new();
    for (line, e) in &entries {
        if let Some(rest) = e.strip_prefix("include") {
            if rest.starts_with(char::is_whitespace) {
                notes.push(Note::new(
                    *line,
                    "include",
                    "not followed: give the included file with another --secrets",
                ));
                continue;
            }
        }
        let Some((selectors, secret)) = split_colon(e) else {
            notes.push(Note::new(
                *line,
                "secrets",
                "no ':' separating selectors and secret; ignored",
            ));
            continue;
        };
        let secret = secret.trim_start();
        let (kind, value) = match secret.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (secret, ""),
        };
        if !kind.eq_ignore_ascii_case("PSK") {
            notes.push(Note::new(
                *line,
                format!("{} secret", kind.chars().take(16).collect::<String>()),
                "only PSK entries can be carried over; ignored",
            ));
            continue;
        }
        let Some(key) = quoted_value(value).and_then(decode_secret) else {
            notes.push(Note::new(
                *line,
                "PSK",
                "the key is not readable (quotes, 0x hex or 0s base64); ignored",
            ));
            continue;
        };
        out.push(SecretEntry {
            line: *line,
            selectors: selectors.split_whitespace().map(str::to_string).collect(),
            key,
        });
    }
    out
}

/// Splits at the first `:` outside quotes that is followed by white space or the end (an IPv6
/// selector holds colons too, but never `: `).
fn split_colon(s: &str) -> Option<(&str, &str)> {
    let mut in_quotes = false;
    let b = s.as_bytes();
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ':' if !in_quotes && b.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()) => {
                return Some((s.get(..i)?, s.get(i + 1..)?));
            }
            _ => {}
        }
    }
    None
}

/// The secret: `"text"` or `'text'` (taken literally), or a bare word (`0x…`, `0s…`).
fn quoted_value(v: &str) -> Option<&str> {
    for q in ['"', '\''] {
        if let Some(rest) = v.strip_prefix(q) {
            return rest.rfind(q).and_then(|end| rest.get(..end));
        }
    }
    let w = v.split_whitespace().next()?;
    Some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_lines_with_selectors_continuations_and_other_kinds() {
        let text = "\
# ipsec.secrets
192.0.2.1 192.0.2.2 : PSK \"v+NkxY9LLZvwj4qCC2o/gGrWDF2d21jL\"
@moon.example @sun.example : PSK 0x6b65792d68657821
: RSA moonKey.pem
2001:db8::1 2001:db8::2
    : PSK 'with spaces inside'
bogus line
";
        let mut notes = Vec::new();
        let s = parse(text, &mut notes);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].selectors, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(&s[0].key[..], b"v+NkxY9LLZvwj4qCC2o/gGrWDF2d21jL");
        assert_eq!(&s[1].key[..], b"key-hex!");
        assert_eq!(s[2].selectors, ["2001:db8::1", "2001:db8::2"]);
        assert_eq!(&s[2].key[..], b"with spaces inside");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes.iter().all(|n| !n.to_string().contains("v+Nkx")));
    }
}
