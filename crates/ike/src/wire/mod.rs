//! ISAKMP wire format (RFC 2408 §3, RFC 2407 §4, RFC 3947 §3–§5, IKE fragmentation): zero-copy
//! views with checked lengths plus parse/emit structs. No input makes this module panic.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod attr;
mod header;
mod id;
mod numbers;
mod payload;
mod reader;
mod sa;
pub mod vendor_id;

pub use header::{Header, HeaderView};
pub use id::{IdValue, Identification};
pub use numbers::{ExchangeType, Flags, IdType, NotifyType, PayloadType, ProtocolId};
pub use payload::{
    emit_payloads, parse_payloads, payload_list, Delete, Fragment, Notification, Payload,
    PayloadIter, RawPayload, MAX_PAYLOADS,
};
pub use sa::{Attribute, AttributeValue, Proposal, SaPayload, Transform, MAX_ATTRIBUTE_LEN};
pub use vendor_id::KnownVendor;

/// The IPsec DOI (RFC 2407 §4.2).
pub const IPSEC_DOI: u32 = 1;
/// SIT_IDENTITY_ONLY, the only IPsec DOI situation we handle (RFC 2407 §4.2).
pub const SIT_IDENTITY_ONLY: u32 = 1;
/// SIT_SECRECY (RFC 2407 §4.2): labelled domains, refused.
pub const SIT_SECRECY: u32 = 2;
/// SIT_INTEGRITY (RFC 2407 §4.2): labelled domains, refused.
pub const SIT_INTEGRITY: u32 = 4;

/// Why bytes are not a well-formed ISAKMP message; each maps to the notify a peer expects
/// (RFC 2408 §3.14.1, §5.2–§5.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated message")]
    Truncated,
    #[error("bad {what} length {length} ({available} bytes available)")]
    BadLength {
        what: &'static str,
        length: usize,
        available: usize,
    },
    #[error("unsupported ISAKMP version {0:#04x}")]
    UnsupportedVersion(u8),
    #[error("unsupported payload type {0}")]
    UnsupportedPayload(u8),
    #[error("more than {MAX_PAYLOADS} payloads")]
    TooManyPayloads,
    #[error("variable attribute longer than {MAX_ATTRIBUTE_LEN} bytes")]
    AttributeTooLong,
    #[error("message is encrypted")]
    Encrypted,
    #[error("unsupported DOI {0}")]
    UnsupportedDoi(u32),
    #[error("unsupported situation {0:#x}")]
    UnsupportedSituation(u32),
    #[error("bad proposal syntax: {0}")]
    BadProposalSyntax(&'static str),
    #[error("{found} transforms where {declared} were declared")]
    TransformCount { declared: u8, found: usize },
    #[error("SPI size {size} invalid for protocol {protocol}")]
    BadSpiSize { protocol: u8, size: u8 },
    #[error("ID type {id_type} with {length} bytes of data")]
    BadIdLength { id_type: u8, length: usize },
    #[error("ID data is not valid text")]
    BadIdText,
    #[error("malformed {0} payload")]
    Malformed(&'static str),
}

impl WireError {
    /// The notify type answering this error (RFC 2408 §3.14.1).
    pub fn notify(&self) -> NotifyType {
        match self {
            WireError::UnsupportedVersion(_) => NotifyType::INVALID_MAJOR_VERSION,
            WireError::UnsupportedPayload(_) => NotifyType::INVALID_PAYLOAD_TYPE,
            WireError::UnsupportedDoi(_) => NotifyType::DOI_NOT_SUPPORTED,
            WireError::UnsupportedSituation(_) => NotifyType::SITUATION_NOT_SUPPORTED,
            WireError::BadProposalSyntax(_) | WireError::TransformCount { .. } => {
                NotifyType::BAD_PROPOSAL_SYNTAX
            }
            WireError::BadSpiSize { .. } => NotifyType::INVALID_SPI,
            WireError::BadIdLength { .. } | WireError::BadIdText => {
                NotifyType::INVALID_ID_INFORMATION
            }
            WireError::AttributeTooLong => NotifyType::ATTRIBUTES_NOT_SUPPORTED,
            WireError::Encrypted => NotifyType::INVALID_FLAGS,
            WireError::Truncated
            | WireError::BadLength { .. }
            | WireError::TooManyPayloads
            | WireError::Malformed(_) => NotifyType::PAYLOAD_MALFORMED,
        }
    }
}

/// A whole plaintext ISAKMP message: header and decoded payload chain (RFC 2408 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a plaintext datagram (without the RFC 3948 non-ESP marker). The header length must
    /// equal the datagram length and the chain must end exactly there; `Err(Encrypted)` when the
    /// E flag is set, as the body then needs the phase 1 keys.
    pub fn parse(datagram: &[u8]) -> Result<Message, WireError> {
        let view = HeaderView::new_checked(datagram)?;
        let header = view.header();
        if header.flags.contains(Flags::ENCRYPTION) {
            return Err(WireError::Encrypted);
        }
        let body = view.body();
        let mut iter = PayloadIter::new(header.next_payload, body);
        let mut payloads = Vec::new();
        for raw in iter.by_ref() {
            payloads.push(Payload::parse(&raw?)?);
        }
        if !iter.trailing().is_empty() {
            return Err(WireError::BadLength {
                what: "message",
                length: body.len().saturating_sub(iter.trailing().len()),
                available: body.len(),
            });
        }
        Ok(Message { header, payloads })
    }

    /// Emits the message, filling in the header's next-payload and length fields.
    pub fn emit(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let first = emit_payloads(&self.payloads, &mut body);
        let header = Header {
            next_payload: first,
            length: u32::try_from(Header::LEN.saturating_add(body.len())).unwrap_or(u32::MAX),
            ..self.header.clone()
        };
        let mut out = Vec::with_capacity(Header::LEN.saturating_add(body.len()));
        header.emit(&mut out);
        out.extend_from_slice(&body);
        out
    }
}
