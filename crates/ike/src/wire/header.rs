//! The fixed ISAKMP header (RFC 2408 §3.1).

use super::error::WireError;
use super::numbers::{ExchangeType, Flags, PayloadType};
use super::reader::Reader;

/// Parsed ISAKMP header; `version` is the raw byte (0x10 for IKEv1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub initiator_spi: [u8; 8],
    pub responder_spi: [u8; 8],
    pub next_payload: PayloadType,
    pub version: u8,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    pub length: u32,
}

impl Header {
    pub const LEN: usize = 28;
    /// Major version 1, minor 0.
    pub const VERSION: u8 = 0x10;

    /// Parses the header of a whole datagram: major version 1 (any minor, RFC 2408 §5.2), and a
    /// length field equal to the datagram length (shorter datagram: `Truncated`).
    pub fn parse(buf: &[u8]) -> Result<Header, WireError> {
        HeaderView::new_checked(buf).map(|v| v.header())
    }

    pub fn major_version(&self) -> u8 {
        self.version >> 4
    }

    pub fn minor_version(&self) -> u8 {
        self.version & 0x0f
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.initiator_spi);
        out.extend_from_slice(&self.responder_spi);
        out.push(self.next_payload.0);
        out.push(self.version);
        out.push(self.exchange.0);
        out.push(self.flags.0);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

/// Zero-copy view of a datagram whose header was validated once by [`HeaderView::new_checked`].
#[derive(Debug, Clone)]
pub struct HeaderView<T: AsRef<[u8]>> {
    buf: T,
    length: usize,
}

impl<T: AsRef<[u8]>> HeaderView<T> {
    /// Checks the header is complete, the major version is 1 and the length field matches `buf`.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        let head = b.get(..Header::LEN).ok_or(WireError::Truncated)?;
        let mut r = Reader::new(head.get(17..).ok_or(WireError::Truncated)?);
        let version = r.u8()?;
        if version >> 4 != 1 {
            return Err(WireError::UnsupportedVersion(version));
        }
        let mut r = Reader::new(head.get(24..).ok_or(WireError::Truncated)?);
        let length = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if length < Header::LEN {
            return Err(WireError::BadLength {
                what: "message",
                length,
                available: b.len(),
            });
        }
        if length > b.len() {
            return Err(WireError::Truncated);
        }
        if length < b.len() {
            return Err(WireError::BadLength {
                what: "message",
                length,
                available: b.len(),
            });
        }
        Ok(HeaderView { buf, length })
    }

    fn field<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(s) = at
            .checked_add(N)
            .and_then(|end| self.buf.as_ref().get(at..end))
        {
            a.copy_from_slice(s);
        }
        a
    }

    pub fn initiator_spi(&self) -> [u8; 8] {
        self.field(0)
    }

    pub fn responder_spi(&self) -> [u8; 8] {
        self.field(8)
    }

    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.field::<1>(16)[0])
    }

    pub fn version(&self) -> u8 {
        self.field::<1>(17)[0]
    }

    pub fn exchange(&self) -> ExchangeType {
        ExchangeType(self.field::<1>(18)[0])
    }

    pub fn flags(&self) -> Flags {
        Flags(self.field::<1>(19)[0])
    }

    pub fn message_id(&self) -> u32 {
        u32::from_be_bytes(self.field(20))
    }

    pub fn length(&self) -> u32 {
        u32::from_be_bytes(self.field(24))
    }

    /// The payload bytes, 28..length.
    pub fn body(&self) -> &[u8] {
        self.buf
            .as_ref()
            .get(Header::LEN..self.length)
            .unwrap_or(&[])
    }

    pub fn header(&self) -> Header {
        Header {
            initiator_spi: self.initiator_spi(),
            responder_spi: self.responder_spi(),
            next_payload: self.next_payload(),
            version: self.version(),
            exchange: self.exchange(),
            flags: self.flags(),
            message_id: self.message_id(),
            length: self.length(),
        }
    }

    pub fn into_inner(self) -> T {
        self.buf
    }
}
