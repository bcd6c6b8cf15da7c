//! A whole plaintext ISAKMP message (RFC 2408 §3.1): header and payload chain.

use super::error::WireError;
use super::header::{Header, HeaderView};
use super::numbers::Flags;
use super::payload::{emit_payloads, Payload, PayloadIter};

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
