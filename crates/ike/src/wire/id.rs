//! Identification payload (RFC 2408 §3.8, RFC 2407 §4.6.2) and its typed value.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::WireError;
use super::numbers::IdType;
use super::reader::Reader;

/// Identification payload body: type, DOI-specific protocol and port, data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification {
    pub id_type: IdType,
    pub protocol: u8,
    pub port: u16,
    pub data: Vec<u8>,
}

/// Typed identification data (RFC 2407 §4.6.2.1); subnets carry address and mask.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdValue {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Ipv4Subnet(Ipv4Addr, Ipv4Addr),
    Ipv6Subnet(Ipv6Addr, Ipv6Addr),
    Ipv4Range(Ipv4Addr, Ipv4Addr),
    Ipv6Range(Ipv6Addr, Ipv6Addr),
    Fqdn(String),
    UserFqdn(String),
    KeyId(Vec<u8>),
    Other(IdType, Vec<u8>),
}

fn v4(b: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
}

fn v6(b: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
}

/// Required data length for the address types, `None` for variable-length types.
pub(crate) fn fixed_len(id_type: IdType) -> Option<usize> {
    match id_type {
        IdType::IPV4_ADDR => Some(4),
        IdType::IPV4_ADDR_SUBNET | IdType::IPV4_ADDR_RANGE => Some(8),
        IdType::IPV6_ADDR => Some(16),
        IdType::IPV6_ADDR_SUBNET | IdType::IPV6_ADDR_RANGE => Some(32),
        _ => None,
    }
}

impl Identification {
    pub fn new(value: &IdValue, protocol: u8, port: u16) -> Self {
        let cat = |a: &[u8], b: &[u8]| [a, b].concat();
        let (id_type, data) = match value {
            IdValue::Ipv4(a) => (IdType::IPV4_ADDR, a.octets().to_vec()),
            IdValue::Ipv6(a) => (IdType::IPV6_ADDR, a.octets().to_vec()),
            IdValue::Ipv4Subnet(a, m) => (IdType::IPV4_ADDR_SUBNET, cat(&a.octets(), &m.octets())),
            IdValue::Ipv6Subnet(a, m) => (IdType::IPV6_ADDR_SUBNET, cat(&a.octets(), &m.octets())),
            IdValue::Ipv4Range(a, b) => (IdType::IPV4_ADDR_RANGE, cat(&a.octets(), &b.octets())),
            IdValue::Ipv6Range(a, b) => (IdType::IPV6_ADDR_RANGE, cat(&a.octets(), &b.octets())),
            IdValue::Fqdn(s) => (IdType::FQDN, s.as_bytes().to_vec()),
            IdValue::UserFqdn(s) => (IdType::USER_FQDN, s.as_bytes().to_vec()),
            IdValue::KeyId(k) => (IdType::KEY_ID, k.clone()),
            IdValue::Other(t, d) => (*t, d.clone()),
        };
        Identification {
            id_type,
            protocol,
            port,
            data,
        }
    }

    /// Typed value; address types must have exactly their length, names must be UTF-8.
    pub fn value(&self) -> Result<IdValue, WireError> {
        let d = self.data.as_slice();
        let bad = || WireError::BadIdLength {
            id_type: self.id_type.0,
            length: d.len(),
        };
        let text = || String::from_utf8(d.to_vec()).map_err(|_| WireError::BadIdText);
        let halves = |n: usize| (d.get(..n).unwrap_or(&[]), d.get(n..).unwrap_or(&[]));
        Ok(match self.id_type {
            IdType::IPV4_ADDR => IdValue::Ipv4(v4(d).ok_or_else(bad)?),
            IdType::IPV6_ADDR => IdValue::Ipv6(v6(d).ok_or_else(bad)?),
            IdType::IPV4_ADDR_SUBNET | IdType::IPV4_ADDR_RANGE => {
                let (a, b) = halves(4);
                let (a, b) = (v4(a).ok_or_else(bad)?, v4(b).ok_or_else(bad)?);
                if self.id_type == IdType::IPV4_ADDR_SUBNET {
                    IdValue::Ipv4Subnet(a, b)
                } else {
                    IdValue::Ipv4Range(a, b)
                }
            }
            IdType::IPV6_ADDR_SUBNET | IdType::IPV6_ADDR_RANGE => {
                let (a, b) = halves(16);
                let (a, b) = (v6(a).ok_or_else(bad)?, v6(b).ok_or_else(bad)?);
                if self.id_type == IdType::IPV6_ADDR_SUBNET {
                    IdValue::Ipv6Subnet(a, b)
                } else {
                    IdValue::Ipv6Range(a, b)
                }
            }
            IdType::FQDN => IdValue::Fqdn(text()?),
            IdType::USER_FQDN => IdValue::UserFqdn(text()?),
            IdType::KEY_ID => IdValue::KeyId(d.to_vec()),
            t => IdValue::Other(t, d.to_vec()),
        })
    }

    /// Parses an ID payload body, checking address lengths (RFC 2407 §4.6.2.1).
    pub(crate) fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let id_type = IdType(r.u8()?);
        let protocol = r.u8()?;
        let port = r.u16()?;
        let data = r.rest();
        if fixed_len(id_type).is_some_and(|n| n != data.len()) {
            return Err(WireError::BadIdLength {
                id_type: id_type.0,
                length: data.len(),
            });
        }
        Ok(Identification {
            id_type,
            protocol,
            port,
            data: data.to_vec(),
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.id_type.0);
        out.push(self.protocol);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&self.data);
    }
}

/// Prefix length of a contiguous mask, if it is one.
fn prefix_len(mask: u128, bits: u32) -> Option<u32> {
    let ones = mask.leading_ones();
    let shifted = mask.checked_shl(ones).unwrap_or(0);
    (shifted == 0 && ones <= bits).then_some(ones)
}

impl fmt::Display for IdValue {
    /// strongSwan-like: addresses, `net/len` (or `net/mask`), `lo-hi`, names, `#hex` key IDs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex =
            |f: &mut fmt::Formatter<'_>, d: &[u8]| d.iter().try_for_each(|b| write!(f, "{b:02x}"));
        match self {
            IdValue::Ipv4(a) => write!(f, "{a}"),
            IdValue::Ipv6(a) => write!(f, "{a}"),
            IdValue::Ipv4Subnet(a, m) => match prefix_len(u128::from(u32::from(*m)) << 96, 32) {
                Some(l) => write!(f, "{a}/{l}"),
                None => write!(f, "{a}/{m}"),
            },
            IdValue::Ipv6Subnet(a, m) => match prefix_len(u128::from(*m), 128) {
                Some(l) => write!(f, "{a}/{l}"),
                None => write!(f, "{a}/{m}"),
            },
            IdValue::Ipv4Range(a, b) => write!(f, "{a}-{b}"),
            IdValue::Ipv6Range(a, b) => write!(f, "{a}-{b}"),
            IdValue::Fqdn(s) | IdValue::UserFqdn(s) => f.write_str(s),
            IdValue::KeyId(k) => {
                f.write_str("@#")?;
                hex(f, k)
            }
            IdValue::Other(t, d) => {
                write!(f, "{t}:")?;
                hex(f, d)
            }
        }
    }
}
