//! Distinguished names as IKE identities (ID_DER_ASN1_DN, RFC 2407 §4.6.2.1): strongSwan's
//! text form, comparison and wildcard patterns.

use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;

/// Parses a DN as strongSwan and `openssl x509 -noout -subject` write it, most general RDN
/// first (`C=XX, O=Example, CN=gw.example.net`), into the DER of an ID_DER_ASN1_DN.
pub fn parse_dn(s: &str) -> Result<Vec<u8>, String> {
    // Spaces after an unescaped comma separate RDNs; RFC 4514 has none.
    let (mut compact, mut escaped, mut after_comma) = (String::new(), false, false);
    for ch in s.trim().chars() {
        if after_comma && ch == ' ' {
            continue;
        }
        after_comma = !escaped && ch == ',';
        escaped = !escaped && ch == '\\';
        compact.push(ch);
    }
    let mut rdns: x509_cert::name::RdnSequence = compact
        .parse()
        .map_err(|e| format!("'{s}' is not a distinguished name: {e}"))?;
    // `parse` reads RFC 4514 order (most specific first); ours is the reverse.
    rdns.0.reverse();
    if rdns.0.is_empty() {
        return Err(format!("'{s}' is an empty distinguished name"));
    }
    rdns.to_der().map_err(|e| e.to_string())
}

/// A DER DN as text (RFC 4514), for logs; what is not a DN is shown by its length.
pub fn dn_string(der: &[u8]) -> String {
    Name::from_der(der).map_or_else(
        |_| format!("(not a DN, {} bytes)", der.len()),
        |n| n.to_string(),
    )
}

/// Two DER DNs name the same entity: equal attribute types and values, compared as text
/// without regard to the string type (PrintableString vs UTF8String) or ASCII case.
pub fn same_dn(a: &[u8], b: &[u8]) -> bool {
    match (Name::from_der(a), Name::from_der(b)) {
        (Ok(a), Ok(b)) => a.to_string().eq_ignore_ascii_case(&b.to_string()),
        _ => false,
    }
}

/// A remote identity with strongSwan's DN wildcards (`C=CH, O=Example, CN=*`): `pattern`
/// matches `dn` when both have the same RDNs in the same order with the same attribute types,
/// and each value is equal as in `same_dn` or is `*` in the pattern.
pub fn dn_matches(pattern: &[u8], dn: &[u8]) -> bool {
    let (Ok(p), Ok(d)) = (Name::from_der(pattern), Name::from_der(dn)) else {
        return false;
    };
    p.0.len() == d.0.len()
        && p.0.iter().zip(d.0.iter()).all(|(pr, dr)| {
            pr.0.len() == dr.0.len()
                && pr.0.iter().zip(dr.0.iter()).all(|(pa, da)| {
                    let (ps, ds) = (pa.to_string(), da.to_string());
                    pa.oid == da.oid && (pa.value.value() == b"*" || ps.eq_ignore_ascii_case(&ds))
                })
        })
}

/// Does a DN (DER) hold a wildcard value (`CN=*`): a pattern, never an identity we send.
pub fn dn_has_wildcard(dn: &[u8]) -> bool {
    Name::from_der(dn).is_ok_and(|n| {
        n.0.iter()
            .any(|r| r.0.iter().any(|a| a.value.value() == b"*"))
    })
}
