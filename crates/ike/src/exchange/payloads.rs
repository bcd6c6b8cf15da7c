//! Reading payloads out of a message (RFC 2408 §3): the first payload of a kind, the raw
//! bytes that HASHes cover, and the bounds RFC 2409 §5 sets on nonces.

use crate::error::InputError;
use crate::wire::{
    self, Header, Identification, Payload, PayloadIter, PayloadType, SaPayload, WireError,
};

/// Body of an ID payload as hashed into HASH_I/HASH_R.
pub(crate) fn id_body(id: &Identification) -> Vec<u8> {
    let mut b = Vec::new();
    Payload::Identification(id.clone()).emit_body(&mut b);
    b
}

/// First payload of a kind.
pub(crate) fn find<'a, T>(
    payloads: &'a [Payload],
    f: impl Fn(&'a Payload) -> Option<T>,
) -> Option<T> {
    payloads.iter().find_map(f)
}

pub(crate) fn sa_of(p: &Payload) -> Option<&SaPayload> {
    match p {
        Payload::Sa(s) => Some(s),
        _ => None,
    }
}
pub(crate) fn ke_of(p: &Payload) -> Option<&Vec<u8>> {
    match p {
        Payload::KeyExchange(k) => Some(k),
        _ => None,
    }
}
pub(crate) fn nonce_of(p: &Payload) -> Option<&Vec<u8>> {
    match p {
        Payload::Nonce(n) => Some(n),
        _ => None,
    }
}
pub(crate) fn id_of(p: &Payload) -> Option<&Identification> {
    match p {
        Payload::Identification(i) => Some(i),
        _ => None,
    }
}
pub(crate) fn hash_of(p: &Payload) -> Option<&Vec<u8>> {
    match p {
        Payload::Hash(h) => Some(h),
        _ => None,
    }
}

/// Nonce length bounds of RFC 2409 §5.
pub(crate) fn nonce_ok(n: &[u8]) -> bool {
    (8..=256).contains(&n.len())
}

/// The exact body bytes of the first payload of `kind` in a plaintext message.
pub(crate) fn raw_body(
    first: PayloadType,
    datagram: &[u8],
    kind: PayloadType,
) -> Result<Vec<u8>, InputError> {
    let body = datagram.get(Header::LEN..).ok_or(WireError::Truncated)?;
    for raw in PayloadIter::new(first, body) {
        let raw = raw?;
        if raw.payload_type == kind {
            return Ok(raw.body.to_vec());
        }
    }
    Err(InputError::Missing(kind))
}

/// The HASH that opens a decrypted protected message and the raw bytes after it up to the end
/// of the payload chain (what HASH(1) covers, RFC 2409 §5.5), read from the generic payload
/// headers only, so a message whose payloads do not decode can still be authenticated.
pub(crate) fn split_protected(
    first: PayloadType,
    body: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let mut hash = None;
    let mut first_len = 0usize;
    let mut end = 0usize;
    for raw in PayloadIter::new(first, body) {
        let raw = raw?;
        if hash.is_none() {
            if raw.payload_type != PayloadType::HASH {
                return Err(WireError::Malformed("HASH (not first)"));
            }
            hash = Some(raw.body.to_vec());
            first_len = raw.bytes.len();
        }
        end = raw.offset + raw.bytes.len();
    }
    let hash = hash.ok_or(WireError::Malformed("HASH (missing)"))?;
    let rest = body
        .get(first_len..end)
        .ok_or(WireError::Truncated)?
        .to_vec();
    Ok((hash, rest))
}

/// Splits a decrypted body into its payloads, plus the raw bytes after the first payload up to
/// the end of the chain (what a HASH(1)-style hash covers).
pub(crate) fn parse_protected(
    first: PayloadType,
    body: &[u8],
) -> Result<(Vec<Payload>, Vec<u8>), WireError> {
    let mut first_len = None;
    let mut end = 0usize;
    for raw in PayloadIter::new(first, body) {
        let raw = raw?;
        if first_len.is_none() {
            first_len = Some(raw.bytes.len());
        }
        end = raw.offset + raw.bytes.len();
    }
    let chain = body.get(..end).ok_or(WireError::Truncated)?;
    let payloads = wire::parse_payloads(first, chain)?;
    let rest = chain
        .get(first_len.unwrap_or(0)..)
        .ok_or(WireError::Truncated)?
        .to_vec();
    Ok((payloads, rest))
}
