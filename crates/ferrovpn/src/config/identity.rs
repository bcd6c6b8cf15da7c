//! IKE identities (RFC 2407 §4.6.2.1 ID types) and how `local_id`/`remote_id` are written.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IKE identity (RFC 2407 §4.6.2.1 ID types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Fqdn(String),
    UserFqdn(String),
    KeyId(Vec<u8>),
    /// ID_DER_ASN1_DN: the DN as written (`dn:C=XX, O=Example, CN=gw`) and its DER.
    Dn(String, Vec<u8>),
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Ipv4(a) => write!(f, "{a}"),
            Identity::Ipv6(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "fqdn:{s}"),
            Identity::UserFqdn(s) => write!(f, "userfqdn:{s}"),
            Identity::Dn(s, _) => write!(f, "dn:{s}"),
            Identity::KeyId(k) => match std::str::from_utf8(k) {
                Ok(s) if !s.starts_with('#') => write!(f, "keyid:{s}"),
                _ => {
                    f.write_str("keyid:#")?;
                    k.iter().try_for_each(|b| write!(f, "{b:02x}"))
                }
            },
        }
    }
}

impl From<IpAddr> for Identity {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        }
    }
}

pub(super) fn parse_identity(key: &str, s: &str) -> Result<Identity, String> {
    let nonempty = |v: &str, what: &str| {
        if v.is_empty() {
            Err(format!("{key}: empty {what}"))
        } else {
            Ok(v.to_string())
        }
    };
    if let Some(v) = s.strip_prefix("fqdn:") {
        return nonempty(v, "FQDN").map(Identity::Fqdn);
    }
    if let Some(v) = s.strip_prefix("userfqdn:") {
        let v = nonempty(v, "user FQDN")?;
        if !v.contains('@') {
            return Err(format!("{key}: userfqdn:{v} needs the form user@domain"));
        }
        return Ok(Identity::UserFqdn(v));
    }
    if let Some(v) = s.strip_prefix("dn:") {
        let der = ferrovpn_ike::cert::parse_dn(v).map_err(|e| format!("{key}: {e}"))?;
        if key != "remote_id" && ferrovpn_ike::cert::dn_has_wildcard(&der) {
            return Err(format!(
                "{key}: dn:{} has a wildcard value (*): only remote_id may be a pattern",
                v.trim()
            ));
        }
        return Ok(Identity::Dn(v.trim().to_string(), der));
    }
    if let Some(v) = s.strip_prefix("keyid:") {
        let v = nonempty(v, "key id")?;
        return match v.strip_prefix('#') {
            Some(hex) => decode_hex(hex)
                .map(Identity::KeyId)
                .ok_or_else(|| format!("{key}: keyid:#{hex} is not an even number of hex digits")),
            None => Ok(Identity::KeyId(v.into_bytes())),
        };
    }
    s.parse::<IpAddr>().map(Identity::from).map_err(|_| {
        format!("{key}: '{s}' is not an IP address; write fqdn:{s}, userfqdn:{s} or keyid:{s}")
    })
}

pub(super) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len().checked_rem(2) != Some(0) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}
