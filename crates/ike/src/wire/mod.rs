//! ISAKMP wire format (RFC 2408 §3, RFC 2407 §4, RFC 3947 §3–§5, IKE fragmentation, the
//! Transaction exchange's Attribute payload of draft-dukes-ike-mode-cfg): zero-copy
//! views with checked lengths plus parse/emit structs. No input makes this module panic.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

pub mod attr;
mod error;
mod header;
mod id;
mod limits;
mod message;
pub mod mode_cfg;
mod numbers;
mod payload;
mod reader;
mod sa;
pub mod vendor_id;

pub use error::WireError;
pub use header::{Header, HeaderView};
pub use id::{IdValue, Identification};
pub use limits::{MAX_ATTRIBUTE_LEN, MAX_PAYLOADS};
pub use message::Message;
pub use mode_cfg::{
    AttributePayload, AttributePayloadView, CfgAttrType, CfgAttribute, CfgType, ModeCfgSettings,
};
pub use numbers::{
    ExchangeType, Flags, IdType, NotifyType, PayloadType, ProtocolId, IPSEC_DOI, SIT_IDENTITY_ONLY,
    SIT_INTEGRITY, SIT_SECRECY,
};
pub use payload::{
    emit_payloads, parse_payloads, payload_list, Delete, Fragment, Notification, Payload,
    PayloadIter, RawPayload,
};
pub use sa::{Attribute, AttributeValue, Proposal, SaPayload, Transform};
pub use vendor_id::KnownVendor;
