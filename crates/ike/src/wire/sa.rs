//! Security Association payload with its nested Proposal and Transform payloads and data
//! attributes (RFC 2408 §3.3–§3.6, RFC 2407 §4.6.1).

use super::error::WireError;
use super::limits::MAX_ATTRIBUTE_LEN;
use super::numbers::{PayloadType, ProtocolId, IPSEC_DOI, SIT_IDENTITY_ONLY};
use super::reader::Reader;

/// More proposals or transforms than this in one SA is refused (peers send a few dozen at most).
const MAX_NESTED: usize = 64;
/// Attribute Format bit: set for type/value (basic) attributes (RFC 2408 §3.3).
const AF: u16 = 0x8000;

/// SA payload body (RFC 2408 §3.4): DOI, situation, proposals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPayload {
    pub doi: u32,
    pub situation: u32,
    pub proposals: Vec<Proposal>,
}

/// Proposal payload (RFC 2408 §3.5); `spi` is empty or 16 bytes for ISAKMP, 4 for AH/ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub number: u8,
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// Transform payload (RFC 2408 §3.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub number: u8,
    pub transform_id: u8,
    pub attributes: Vec<Attribute>,
}

/// Data attribute (RFC 2408 §3.3); `attr_type` excludes the AF bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub attr_type: u16,
    pub value: AttributeValue,
}

/// Basic (TV, 16-bit) or variable (TLV) attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Basic(u16),
    Variable(Vec<u8>),
}

impl Attribute {
    pub fn basic(attr_type: u16, value: u16) -> Self {
        Attribute {
            attr_type: attr_type & !AF,
            value: AttributeValue::Basic(value),
        }
    }

    /// Basic when the value fits 16 bits, else a 4- or 8-byte variable attribute (lifetimes).
    pub fn from_u64(attr_type: u16, value: u64) -> Self {
        if let Ok(v) = u16::try_from(value) {
            Attribute::basic(attr_type, v)
        } else if let Ok(v) = u32::try_from(value) {
            Attribute {
                attr_type: attr_type & !AF,
                value: AttributeValue::Variable(v.to_be_bytes().to_vec()),
            }
        } else {
            Attribute {
                attr_type: attr_type & !AF,
                value: AttributeValue::Variable(value.to_be_bytes().to_vec()),
            }
        }
    }

    /// The value as an integer: a basic value, or a big-endian variable value of 1–8 bytes.
    pub fn as_u64(&self) -> Option<u64> {
        match &self.value {
            AttributeValue::Basic(v) => Some(u64::from(*v)),
            AttributeValue::Variable(b) if (1..=8).contains(&b.len()) => {
                Some(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
            }
            AttributeValue::Variable(_) => None,
        }
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let t = r.u16()?;
        let v = r.u16()?;
        if t & AF != 0 {
            return Ok(Attribute {
                attr_type: t & !AF,
                value: AttributeValue::Basic(v),
            });
        }
        let len = usize::from(v);
        if len > MAX_ATTRIBUTE_LEN {
            return Err(WireError::AttributeTooLong);
        }
        let data = r.take(len)?;
        Ok(Attribute {
            attr_type: t,
            value: AttributeValue::Variable(data.to_vec()),
        })
    }

    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        match &self.value {
            AttributeValue::Basic(v) => {
                out.extend_from_slice(&(self.attr_type | AF).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttributeValue::Variable(b) => {
                let len = b.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(self.attr_type & !AF).to_be_bytes());
                out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
                out.extend_from_slice(b.get(..len).unwrap_or(b));
            }
        }
    }
}

/// Reads one nested payload (proposal or transform): (next, body); its length must fit `r`.
fn nested<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<(u8, &'a [u8]), WireError> {
    let available = r.remaining();
    let next = r.u8()?;
    let _reserved = r.u8()?;
    let length = usize::from(r.u16()?);
    if length < 4 || length > available {
        return Err(WireError::BadLength {
            what,
            length,
            available,
        });
    }
    Ok((next, r.take(length.saturating_sub(4))?))
}

/// Writes a nested payload header plus body.
fn emit_nested(out: &mut Vec<u8>, next: PayloadType, body: &[u8]) {
    out.push(next.0);
    out.push(0);
    out.extend_from_slice(
        &u16::try_from(body.len().saturating_add(4))
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(body);
}

/// Allowed SPI sizes per protocol (RFC 2408 §3.5, RFC 2407 §4.4.1, RFC 3173 §4.1 for the CPI).
fn spi_size_ok(protocol: ProtocolId, size: u8) -> bool {
    match protocol {
        ProtocolId::ISAKMP => size == 0 || size == 16,
        ProtocolId::AH | ProtocolId::ESP => size == 4,
        ProtocolId::IPCOMP => size == 2 || size == 4,
        _ => size <= 16,
    }
}

impl SaPayload {
    /// Parses an SA body; only the IPsec DOI with SIT_IDENTITY_ONLY is supported (RFC 2407 §4.2).
    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let doi = r.u32()?;
        if doi != IPSEC_DOI {
            return Err(WireError::UnsupportedDoi(doi));
        }
        let situation = r.u32()?;
        if situation != SIT_IDENTITY_ONLY {
            return Err(WireError::UnsupportedSituation(situation));
        }
        let mut proposals = Vec::new();
        let mut next = if r.is_empty() {
            0
        } else {
            PayloadType::PROPOSAL.0
        };
        while next != 0 {
            if proposals.len() >= MAX_NESTED {
                return Err(WireError::BadProposalSyntax("too many proposals"));
            }
            let (n, pbody) = nested(&mut r, "proposal")?;
            if n != 0 && n != PayloadType::PROPOSAL.0 {
                return Err(WireError::BadProposalSyntax(
                    "proposal followed by a non-proposal payload",
                ));
            }
            proposals.push(Proposal::parse(pbody)?);
            next = n;
        }
        if !r.is_empty() {
            let available = body.len();
            return Err(WireError::BadLength {
                what: "SA",
                length: available.saturating_sub(r.remaining()),
                available,
            });
        }
        if proposals.is_empty() {
            return Err(WireError::BadProposalSyntax("SA without proposals"));
        }
        Ok(SaPayload {
            doi,
            situation,
            proposals,
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.extend_from_slice(&self.situation.to_be_bytes());
        let mut body = Vec::new();
        for (i, p) in self.proposals.iter().enumerate() {
            body.clear();
            p.emit(&mut body);
            let last = i.saturating_add(1) == self.proposals.len();
            emit_nested(
                out,
                if last {
                    PayloadType::NONE
                } else {
                    PayloadType::PROPOSAL
                },
                &body,
            );
        }
    }
}

impl Proposal {
    fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let number = r.u8()?;
        let protocol = ProtocolId(r.u8()?);
        let spi_size = r.u8()?;
        let declared = r.u8()?;
        if declared == 0 {
            return Err(WireError::BadProposalSyntax("proposal without transforms"));
        }
        if !spi_size_ok(protocol, spi_size) {
            return Err(WireError::BadSpiSize {
                protocol: protocol.0,
                size: spi_size,
            });
        }
        let spi = r
            .take(usize::from(spi_size))
            .map_err(|_| WireError::BadLength {
                what: "proposal SPI",
                length: usize::from(spi_size),
                available: body.len(),
            })?
            .to_vec();
        let mut transforms = Vec::new();
        let mut next = if r.is_empty() {
            0
        } else {
            PayloadType::TRANSFORM.0
        };
        while next != 0 {
            if transforms.len() >= usize::from(declared) {
                return Err(WireError::TransformCount {
                    declared,
                    found: transforms.len().saturating_add(1),
                });
            }
            let (n, tbody) = nested(&mut r, "transform")?;
            if n != 0 && n != PayloadType::TRANSFORM.0 {
                return Err(WireError::BadProposalSyntax(
                    "transform followed by a non-transform payload",
                ));
            }
            transforms.push(Transform::parse(tbody)?);
            next = n;
        }
        if !r.is_empty() {
            return Err(WireError::BadLength {
                what: "proposal",
                length: body.len().saturating_sub(r.remaining()),
                available: body.len(),
            });
        }
        if transforms.len() != usize::from(declared) {
            return Err(WireError::TransformCount {
                declared,
                found: transforms.len(),
            });
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.number);
        out.push(self.protocol.0);
        out.push(u8::try_from(self.spi.len()).unwrap_or(u8::MAX));
        out.push(u8::try_from(self.transforms.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.spi);
        let mut body = Vec::new();
        for (i, t) in self.transforms.iter().enumerate() {
            body.clear();
            t.emit(&mut body);
            let last = i.saturating_add(1) == self.transforms.len();
            emit_nested(
                out,
                if last {
                    PayloadType::NONE
                } else {
                    PayloadType::TRANSFORM
                },
                &body,
            );
        }
    }
}

impl Transform {
    fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let number = r.u8()?;
        let transform_id = r.u8()?;
        let _reserved2 = r.u16()?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            if attributes.len() >= MAX_NESTED {
                return Err(WireError::Malformed("transform"));
            }
            attributes.push(Attribute::parse(&mut r).map_err(|e| match e {
                WireError::Truncated => WireError::BadLength {
                    what: "attribute",
                    length: body.len(),
                    available: body.len(),
                },
                e => e,
            })?);
        }
        Ok(Transform {
            number,
            transform_id,
            attributes,
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.number);
        out.push(self.transform_id);
        out.extend_from_slice(&[0, 0]);
        for a in &self.attributes {
            a.emit(out);
        }
    }

    /// First attribute of `attr_type`.
    pub fn attribute(&self, attr_type: u16) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.attr_type == attr_type)
    }
}
