//! Why bytes are not a well-formed ISAKMP message, and the notify each error is answered with.

use super::limits::{MAX_ATTRIBUTE_LEN, MAX_CFG_ATTRIBUTES, MAX_PAYLOADS};
use super::numbers::{CfgAttrType, NotifyType};

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
    #[error("more than {MAX_CFG_ATTRIBUTES} attributes in an Attribute payload")]
    TooManyAttributes,
    #[error("attribute {} appears twice", CfgAttrType(*.0))]
    DuplicateAttribute(u16),
    #[error("attribute {} is not {expected}", CfgAttrType(*attr_type))]
    BadCfgAttribute {
        attr_type: u16,
        expected: &'static str,
    },
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
            | WireError::Malformed(_)
            | WireError::TooManyAttributes
            | WireError::DuplicateAttribute(_)
            | WireError::BadCfgAttribute { .. } => NotifyType::PAYLOAD_MALFORMED,
        }
    }
}
