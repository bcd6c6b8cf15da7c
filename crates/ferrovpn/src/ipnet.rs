//! IP prefixes as written in configs and routes: `198.51.100.0/24`, `2001:db8::/32`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a prefix string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("'{0}' is not an address/prefix_length (e.g. 198.51.100.0/24)")]
    Syntax(String),
    #[error("'{0}': prefix length must be at most {1}")]
    TooLong(String, u8),
    #[error("{given} has host bits set (did you mean {network}?)")]
    HostBits { given: String, network: IpNet },
}

/// A network: address with all host bits clear, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix_len: u8,
}

/// An interface address with its on-link prefix (`198.51.100.1/24`); host bits are the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// Clears the bits of `addr` past `prefix_len`.
fn mask(addr: IpAddr, prefix_len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix_len.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix_len.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

fn split(s: &str) -> Result<(IpAddr, u8), PrefixError> {
    let syntax = || PrefixError::Syntax(s.to_string());
    let (a, l) = s.trim().split_once('/').ok_or_else(syntax)?;
    let addr: IpAddr = a.parse().map_err(|_| syntax())?;
    let len: u8 = l.parse().map_err(|_| syntax())?;
    if len > max_len(addr) {
        return Err(PrefixError::TooLong(s.to_string(), max_len(addr)));
    }
    Ok((addr, len))
}

impl IpNet {
    /// A network; fails when host bits are set.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        (prefix_len <= max_len(addr) && mask(addr, prefix_len) == addr)
            .then_some(IpNet { addr, prefix_len })
    }

    /// The network `addr/prefix_len` falls in.
    pub fn truncating(addr: IpAddr, prefix_len: u8) -> Self {
        let prefix_len = prefix_len.min(max_len(addr));
        IpNet {
            addr: mask(addr, prefix_len),
            prefix_len,
        }
    }

    /// The host route for one address (/32 or /128).
    pub fn host(addr: IpAddr) -> Self {
        IpNet {
            addr,
            prefix_len: max_len(addr),
        }
    }

    /// `0.0.0.0/0` or `::/0`.
    pub fn default_for(v6: bool) -> Self {
        let addr = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        IpNet {
            addr,
            prefix_len: 0,
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    pub fn is_default(&self) -> bool {
        self.prefix_len == 0
    }

    pub fn contains_addr(&self, a: IpAddr) -> bool {
        a.is_ipv6() == self.is_ipv6() && mask(a, self.prefix_len) == self.addr
    }

    /// True when every address of `other` is in `self`.
    pub fn contains(&self, other: &IpNet) -> bool {
        other.prefix_len >= self.prefix_len && self.contains_addr(other.addr)
    }
}

impl FromStr for IpNet {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (addr, len) = split(s)?;
        IpNet::new(addr, len).ok_or_else(|| PrefixError::HostBits {
            given: s.trim().to_string(),
            network: IpNet::truncating(addr, len),
        })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl IfAddr {
    pub fn network(&self) -> IpNet {
        IpNet::truncating(self.addr, self.prefix_len)
    }
}

impl FromStr for IfAddr {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, PrefixError> {
        let (addr, prefix_len) = split(s)?;
        Ok(IfAddr { addr, prefix_len })
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_networks() {
        let n: IpNet = "198.51.100.0/24".parse().unwrap();
        assert_eq!(n.to_string(), "198.51.100.0/24");
        assert!(n.contains_addr("198.51.100.77".parse().unwrap()));
        assert!(!n.contains_addr("198.51.101.1".parse().unwrap()));
        let n6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(n6.contains_addr("2001:db8:1::1".parse().unwrap()));
        assert!(!n6.contains_addr("198.51.100.1".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<IpNet>().unwrap().is_default());
    }

    #[test]
    fn host_bits_are_refused_with_a_suggestion() {
        assert_eq!(
            "198.51.100.1/24".parse::<IpNet>().unwrap_err().to_string(),
            "198.51.100.1/24 has host bits set (did you mean 198.51.100.0/24?)"
        );
    }

    #[test]
    fn malformed_prefixes_are_refused() {
        assert!(matches!(
            "198.51.100.0".parse::<IpNet>(),
            Err(PrefixError::Syntax(_))
        ));
        assert!(matches!(
            "198.51.100.0/33".parse::<IpNet>(),
            Err(PrefixError::TooLong(_, 32))
        ));
        assert!(matches!(
            "2001:db8::/129".parse::<IpNet>(),
            Err(PrefixError::TooLong(_, 128))
        ));
        assert!("x/24".parse::<IpNet>().is_err());
    }

    #[test]
    fn containment_of_networks() {
        let big: IpNet = "203.0.113.0/24".parse().unwrap();
        let small: IpNet = "203.0.113.128/25".parse().unwrap();
        assert!(big.contains(&small));
        assert!(!small.contains(&big));
        assert!(IpNet::default_for(false).contains(&big));
        assert!(!IpNet::default_for(true).contains(&big));
    }

    #[test]
    fn interface_addresses_keep_host_bits() {
        let a: IfAddr = "198.51.100.1/24".parse().unwrap();
        assert_eq!(a.to_string(), "198.51.100.1/24");
        assert_eq!(a.network().to_string(), "198.51.100.0/24");
    }

    proptest::proptest! {
        #[test]
        fn networks_round_trip_through_text(a: u32, b: u128, len4 in 0u8..=32, len6 in 0u8..=128) {
            for n in [
                IpNet::truncating(IpAddr::V4(Ipv4Addr::from(a)), len4),
                IpNet::truncating(IpAddr::V6(Ipv6Addr::from(b)), len6),
            ] {
                proptest::prop_assert_eq!(n.to_string().parse::<IpNet>(), Ok(n));
                proptest::prop_assert!(n.contains_addr(n.addr()));
            }
        }

        #[test]
        fn arbitrary_prefix_text_never_panics(s in "[0-9a-f.:/]{0,45}") {
            let _ = s.parse::<IpNet>();
            let _ = s.parse::<IfAddr>();
        }
    }
}
