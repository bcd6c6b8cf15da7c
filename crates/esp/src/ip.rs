//! Zero-copy views of IPv4 (RFC 791 §3.1) and IPv6 (RFC 8200 §3) headers: the one IP parser
//! of the data plane, `decode`, MSS clamping and offloads.
//!
//! `new_checked` validates once (version, fixed header present, IPv4 header length sane);
//! accessors then read fields by offset. Accessors never panic, not even on a view built with
//! `new_unchecked` over a short buffer: a missing byte reads as zero.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of an IPv4 header without options.
pub const IPV4_MIN_HEADER: usize = 20;
/// Length of the fixed IPv6 header.
pub const IPV6_HEADER: usize = 40;

/// Why bytes are not the IP header asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    #[error("shorter than its IP header")]
    Truncated,
    #[error("wrong IP version")]
    Version,
    #[error("IPv4 header length below 20 bytes")]
    HeaderLength,
}

/// The version nibble of the first byte (4, 6, or anything else); None for no bytes.
pub fn version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn be16(b: &[u8], at: usize) -> u16 {
    match at.checked_add(2).and_then(|end| b.get(at..end)) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

fn octets<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = at.checked_add(N).and_then(|end| b.get(at..end)) {
        a.copy_from_slice(s);
    }
    a
}

/// An IPv4 header at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without checks; accessors read missing bytes as zero.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Checks version 4, a header length of at least 20 and that the header (options
    /// included) is within the buffer. The total length field is not checked against the
    /// buffer: callers differ in what they accept (captures, TFC padding, super-packets).
    pub fn new_checked(buffer: T) -> Result<Self, IpError> {
        let p = Ipv4Packet { buffer };
        let b = p.buffer.as_ref();
        match version(b) {
            None => return Err(IpError::Truncated),
            Some(4) => {}
            Some(_) => return Err(IpError::Version),
        }
        let hl = p.header_len();
        if hl < IPV4_MIN_HEADER {
            return Err(IpError::HeaderLength);
        }
        if b.len() < hl {
            return Err(IpError::Truncated);
        }
        Ok(p)
    }

    /// Internet Header Length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(byte(self.buffer.as_ref(), 0) & 0x0f).saturating_mul(4)
    }

    /// The Total Length field: header and data in bytes.
    pub fn total_len(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), 2))
    }

    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// More-fragments flag set or a fragment offset: not a whole datagram.
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), 6) & 0x3fff != 0
    }

    pub fn ttl(&self) -> u8 {
        byte(self.buffer.as_ref(), 8)
    }

    pub fn protocol(&self) -> u8 {
        byte(self.buffer.as_ref(), 9)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(octets::<4>(self.buffer.as_ref(), 12))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(octets::<4>(self.buffer.as_ref(), 16))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// An IPv4 header without options (RFC 791 §3.1) for a packet of `total_len` bytes: version 4,
/// IHL 5, TOS 0, identification 0, DF as given, no fragment offset, the header checksum set.
/// Written by a sender that builds its own outer header (a raw `IP_HDRINCL` socket).
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ttl: u8,
    total_len: u16,
    dont_fragment: bool,
) -> [u8; IPV4_MIN_HEADER] {
    let [l0, l1] = total_len.to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    let flags = if dont_fragment { 0x40 } else { 0 };
    let mut h = [
        0x45, 0, l0, l1, 0, 0, flags, 0, ttl, protocol, 0, 0, s0, s1, s2, s3, d0, d1, d2, d3,
    ];
    // One's complement sum of the ten 16-bit words (RFC 791 §3.1, RFC 1071); the checksum
    // words are still zero. Ten words cannot overflow a u32.
    let sum = h
        .chunks_exact(2)
        .map(|w| match w {
            &[a, b] => u32::from(u16::from_be_bytes([a, b])),
            _ => 0,
        })
        .fold(0u32, u32::wrapping_add);
    let folded = (sum & 0xffff).wrapping_add(sum >> 16);
    let folded = (folded & 0xffff).wrapping_add(folded >> 16);
    let [c0, c1] = (!(folded as u16)).to_be_bytes();
    h[10] = c0;
    h[11] = c1;
    h
}

/// An IPv6 fixed header at the start of a buffer (extension headers are not walked).
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// A view without checks; accessors read missing bytes as zero.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Checks version 6 and that the 40-byte fixed header is within the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, IpError> {
        let b = buffer.as_ref();
        match version(b) {
            None => return Err(IpError::Truncated),
            Some(6) => {}
            Some(_) => return Err(IpError::Version),
        }
        if b.len() < IPV6_HEADER {
            return Err(IpError::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The Payload Length field (0 for a jumbogram, RFC 2675).
    pub fn payload_len(&self) -> usize {
        usize::from(be16(self.buffer.as_ref(), 4))
    }

    /// Header and payload: payload length + 40.
    pub fn total_len(&self) -> usize {
        self.payload_len().saturating_add(IPV6_HEADER)
    }

    pub fn next_header(&self) -> u8 {
        byte(self.buffer.as_ref(), 6)
    }

    pub fn hop_limit(&self) -> u8 {
        byte(self.buffer.as_ref(), 7)
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(octets::<16>(self.buffer.as_ref(), 8))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(octets::<16>(self.buffer.as_ref(), 24))
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// An IPv4 or IPv6 packet, by its version nibble.
#[derive(Debug, Clone, Copy)]
pub enum IpPacket<T: AsRef<[u8]>> {
    V4(Ipv4Packet<T>),
    V6(Ipv6Packet<T>),
}

impl<T: AsRef<[u8]>> IpPacket<T> {
    /// Dispatches on the version nibble, then checks as [`Ipv4Packet::new_checked`] or
    /// [`Ipv6Packet::new_checked`] do.
    pub fn new_checked(buffer: T) -> Result<Self, IpError> {
        match version(buffer.as_ref()) {
            None => Err(IpError::Truncated),
            Some(4) => Ipv4Packet::new_checked(buffer).map(IpPacket::V4),
            Some(6) => Ipv6Packet::new_checked(buffer).map(IpPacket::V6),
            Some(_) => Err(IpError::Version),
        }
    }

    pub fn is_ipv6(&self) -> bool {
        matches!(self, IpPacket::V6(_))
    }

    pub fn src_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.src_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.src_addr()),
        }
    }

    pub fn dst_addr(&self) -> IpAddr {
        match self {
            IpPacket::V4(p) => IpAddr::V4(p.dst_addr()),
            IpPacket::V6(p) => IpAddr::V6(p.dst_addr()),
        }
    }

    /// IPv4 protocol, or the IPv6 header's next header.
    pub fn protocol(&self) -> u8 {
        match self {
            IpPacket::V4(p) => p.protocol(),
            IpPacket::V6(p) => p.next_header(),
        }
    }

    /// Length of the IP header in front of the protocol's data (IPv6: the fixed header).
    pub fn header_len(&self) -> usize {
        match self {
            IpPacket::V4(p) => p.header_len(),
            IpPacket::V6(_) => IPV6_HEADER,
        }
    }

    /// Length the header says the whole packet has.
    pub fn total_len(&self) -> usize {
        match self {
            IpPacket::V4(p) => p.total_len(),
            IpPacket::V6(p) => p.total_len(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
        p.extend([198, 51, 100, 1, 203, 0, 113, 9]);
        p.extend([0u8; 8]);
        p
    }

    fn v6() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 6, 255];
        p.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend("2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend([0u8; 8]);
        p
    }

    #[test]
    fn ipv4_fields() {
        let p = Ipv4Packet::new_checked(v4()).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1234);
        assert!(!p.is_fragment(), "DF alone is not a fragment");
        assert_eq!((p.ttl(), p.protocol()), (64, 17));
        assert_eq!(p.src_addr(), Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(203, 0, 113, 9));
        let mut f = v4();
        f[6] = 0x20; // more fragments
        assert!(Ipv4Packet::new_unchecked(&f).is_fragment());
        f[6] = 0;
        f[7] = 1; // offset 8
        assert!(Ipv4Packet::new_unchecked(&f).is_fragment());
    }

    #[test]
    fn built_ipv4_header_reads_back_and_checks_out() {
        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        for (len, df) in [(20u16, false), (1500, false), (0xffff, true)] {
            let h = ipv4_header(src, dst, 50, 64, len, df);
            let p = Ipv4Packet::new_checked(&h[..]).unwrap();
            assert_eq!((p.header_len(), p.total_len()), (20, usize::from(len)));
            assert_eq!((p.ttl(), p.protocol(), p.ident()), (64, 50, 0));
            assert_eq!((p.src_addr(), p.dst_addr()), (src, dst));
            assert!(!p.is_fragment());
            assert_eq!(h[6] & 0x40 != 0, df, "DF bit");
            // A correct header checksum makes the one's complement sum of the header 0xffff.
            let mut sum: u32 = h
                .chunks(2)
                .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(sum, 0xffff, "checksum of {h:02x?}");
        }
        // A known header: 45 00 00 73 00 00 40 00 40 11 .. .. c0 a8 00 01 c0 a8 00 c7 has the
        // checksum b8 61.
        let h = ipv4_header(
            Ipv4Addr::new(192, 168, 0, 1),
            Ipv4Addr::new(192, 168, 0, 199),
            17,
            64,
            0x73,
            true,
        );
        assert_eq!(&h[10..12], &[0xb8, 0x61]);
    }

    #[test]
    fn ipv6_fields() {
        let p = Ipv6Packet::new_checked(v6()).unwrap();
        assert_eq!((p.payload_len(), p.total_len()), (8, 48));
        assert_eq!((p.next_header(), p.hop_limit()), (6, 255));
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        let ip = IpPacket::new_checked(v6()).unwrap();
        assert!(ip.is_ipv6());
        assert_eq!((ip.protocol(), ip.header_len()), (6, 40));
        assert_eq!(ip.src_addr(), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn checked_constructors_refuse_what_is_not_a_header() {
        assert_eq!(
            IpPacket::new_checked(&[][..]).err(),
            Some(IpError::Truncated)
        );
        assert_eq!(
            IpPacket::new_checked(&[0x10; 60][..]).err(),
            Some(IpError::Version)
        );
        assert_eq!(Ipv4Packet::new_checked(v6()).err(), Some(IpError::Version));
        assert_eq!(Ipv6Packet::new_checked(v4()).err(), Some(IpError::Version));
        assert_eq!(
            IpPacket::new_checked(&v4()[..19]).err(),
            Some(IpError::Truncated)
        );
        assert_eq!(
            IpPacket::new_checked(&v6()[..39]).err(),
            Some(IpError::Truncated)
        );
        let mut p = v4();
        p[0] = 0x44; // IHL 16 bytes
        assert_eq!(IpPacket::new_checked(&p).err(), Some(IpError::HeaderLength));
        p[0] = 0x47; // 28 bytes of header with options: fits
        assert_eq!(IpPacket::new_checked(&p).unwrap().header_len(), 28);
        p[0] = 0x48; // 32: beyond the buffer
        assert_eq!(IpPacket::new_checked(&p).err(), Some(IpError::Truncated));
        assert_eq!(version(&[]), None);
        assert_eq!(version(&[0x45]), Some(4));
    }

    #[test]
    fn unchecked_views_of_short_buffers_read_zeros() {
        let p = Ipv4Packet::new_unchecked(&[0x45u8, 0, 1][..]);
        assert_eq!((p.total_len(), p.protocol()), (0, 0));
        assert_eq!(p.dst_addr(), Ipv4Addr::UNSPECIFIED);
        let p = Ipv6Packet::new_unchecked(&[][..]);
        assert_eq!(p.src_addr(), Ipv6Addr::UNSPECIFIED);
    }

    proptest! {
        #[test]
        fn never_panics_on_any_input(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = IpPacket::new_checked(&b[..]) {
                prop_assert!(p.header_len() <= b.len());
                let _ = (p.src_addr(), p.dst_addr(), p.protocol(), p.total_len());
            }
            let v4 = Ipv4Packet::new_unchecked(&b[..]);
            let _ = (v4.header_len(), v4.total_len(), v4.ident(), v4.is_fragment(), v4.ttl());
            let _ = (v4.protocol(), v4.src_addr(), v4.dst_addr());
            let v6 = Ipv6Packet::new_unchecked(&b[..]);
            let _ = (v6.payload_len(), v6.total_len(), v6.next_header(), v6.hop_limit());
            let _ = (v6.src_addr(), v6.dst_addr());
            let _ = (Ipv4Packet::new_checked(&b[..]), Ipv6Packet::new_checked(&b[..]));
        }
    }
}
