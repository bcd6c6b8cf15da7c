//! The generic payload chain (RFC 2408 §3.2) and the payloads carried in it (§3.4–§3.15,
//! RFC 3947 §3.2/§5.2, the Cisco/strongSwan fragmentation payload).

use super::error::WireError;
use super::id::Identification;
use super::limits::MAX_PAYLOADS;
use super::mode_cfg::AttributePayload;
use super::numbers::{IdType, NotifyType, PayloadType, ProtocolId};
use super::reader::Reader;
use super::sa::SaPayload;

/// A decoded payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(SaPayload),
    KeyExchange(Vec<u8>),
    Identification(Identification),
    Certificate {
        encoding: u8,
        data: Vec<u8>,
    },
    CertificateRequest {
        encoding: u8,
        authority: Vec<u8>,
    },
    Hash(Vec<u8>),
    Signature(Vec<u8>),
    Nonce(Vec<u8>),
    Notification(Notification),
    Delete(Delete),
    VendorId(Vec<u8>),
    /// NAT-D (RFC 3947 §3.2); `draft` selects type 130 instead of 20.
    NatD {
        draft: bool,
        hash: Vec<u8>,
    },
    /// NAT-OA (RFC 3947 §5.2): an IPv4/IPv6 address ID; `draft` selects type 131 instead of 21.
    NatOa {
        draft: bool,
        id: Identification,
    },
    Fragment(Fragment),
    /// Attribute payload of the Transaction exchange (draft-dukes-ike-mode-cfg §3.2).
    Attributes(AttributePayload),
    /// Types we carry without interpreting: skippable private types (128–255) whose RESERVED
    /// byte is zero.
    Unknown {
        payload_type: PayloadType,
        data: Vec<u8>,
    },
}

/// Notification payload (RFC 2408 §3.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub doi: u32,
    pub protocol: ProtocolId,
    pub notify_type: NotifyType,
    pub spi: Vec<u8>,
    pub data: Vec<u8>,
}

/// Delete payload (RFC 2408 §3.15); every SPI has `spi_size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub doi: u32,
    pub protocol: ProtocolId,
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

/// IKEv1 fragment (payload 132, Cisco format as strongSwan implements it): id, number, LAST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub id: u16,
    pub number: u8,
    pub last: bool,
    pub data: Vec<u8>,
}

impl Fragment {
    pub const FLAG_LAST: u8 = 1;
}

/// One payload of a chain, not yet decoded: `bytes` is the whole payload with its generic
/// header, `offset` its position in the body given to [`PayloadIter::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    pub payload_type: PayloadType,
    pub next_payload: PayloadType,
    pub offset: usize,
    pub bytes: &'a [u8],
    pub body: &'a [u8],
}

impl RawPayload<'_> {
    /// The generic header's RESERVED byte (IKEv2's critical bit lives here).
    pub fn reserved(&self) -> u8 {
        self.bytes.get(1).copied().unwrap_or(0)
    }
}

/// Walks a payload chain (RFC 2408 §3.2) and stops after the payload whose next is NONE; bytes
/// after it (encryption padding) are left in [`PayloadIter::trailing`]. Fused after an error.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    body: &'a [u8],
    offset: usize,
    next: PayloadType,
    count: usize,
    failed: bool,
}

impl<'a> PayloadIter<'a> {
    pub fn new(first: PayloadType, body: &'a [u8]) -> Self {
        PayloadIter {
            body,
            offset: 0,
            next: first,
            count: 0,
            failed: false,
        }
    }

    /// Bytes after the end of the chain (all of it once iteration stopped without error).
    pub fn trailing(&self) -> &'a [u8] {
        self.body.get(self.offset..).unwrap_or(&[])
    }

    fn step(&mut self) -> Result<RawPayload<'a>, WireError> {
        self.count = self.count.saturating_add(1);
        if self.count > MAX_PAYLOADS {
            return Err(WireError::TooManyPayloads);
        }
        let rest = self.body.get(self.offset..).unwrap_or(&[]);
        let mut r = Reader::new(rest);
        let next = PayloadType(r.u8()?);
        let _reserved = r.u8()?;
        let length = usize::from(r.u16()?);
        if length < 4 || length > rest.len() {
            return Err(WireError::BadLength {
                what: "payload",
                length,
                available: rest.len(),
            });
        }
        let bytes = rest.get(..length).ok_or(WireError::Truncated)?;
        let raw = RawPayload {
            payload_type: self.next,
            next_payload: next,
            offset: self.offset,
            bytes,
            body: bytes.get(4..).unwrap_or(&[]),
        };
        // length <= rest.len(), the bytes left after offset: the sum is within the body.
        self.offset = self.offset.saturating_add(length);
        self.next = next;
        Ok(raw)
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next == PayloadType::NONE {
            return None;
        }
        let item = self.step();
        if item.is_err() {
            self.failed = true;
        }
        Some(item)
    }
}

/// Decodes every payload of a chain; bytes after the chain (padding) are ignored.
pub fn parse_payloads(first: PayloadType, body: &[u8]) -> Result<Vec<Payload>, WireError> {
    PayloadIter::new(first, body)
        .map(|raw| Payload::parse(&raw?))
        .collect()
}

/// Appends the chain with every next-payload and length field filled in; returns the first
/// payload's type (NONE when empty) for the header or the enclosing next-payload field.
pub fn emit_payloads(payloads: &[Payload], out: &mut Vec<u8>) -> PayloadType {
    let mut body = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        body.clear();
        p.emit_body(&mut body);
        let next = payloads
            .get(i.saturating_add(1))
            .map_or(PayloadType::NONE, Payload::payload_type);
        out.push(next.0);
        out.push(0);
        out.extend_from_slice(
            &u16::try_from(body.len().saturating_add(4))
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        out.extend_from_slice(&body);
    }
    // The scratch copy may hold an XAuth password (Attribute payload): wiped, not just freed.
    zeroize::Zeroize::zeroize(&mut body);
    payloads
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type)
}

/// Notify label as strongSwan logs IKEv1 notifies: `DPD`, `DPD_ACK`, else the name with `_`.
fn log_label(t: NotifyType) -> String {
    match t {
        NotifyType::R_U_THERE => "DPD".into(),
        NotifyType::R_U_THERE_ACK => "DPD_ACK".into(),
        t if t.is_known() => t.name().replace('-', "_"),
        t => t.0.to_string(),
    }
}

/// strongSwan-style summary for logs, e.g. `[ SA V V V ]` or `[ HASH N(DPD) ]`.
pub fn payload_list(payloads: &[Payload]) -> String {
    let mut s = String::from("[ ");
    for p in payloads {
        match p {
            Payload::Notification(n) => s.push_str(&format!("N({})", log_label(n.notify_type))),
            // strongSwan's labels: CPRQ, CPRP, CPS, CPA (draft-dukes-ike-mode-cfg §3.2).
            Payload::Attributes(a) => s.push_str(match a.cfg_type.0 {
                1 => "CPRQ",
                2 => "CPRP",
                3 => "CPS",
                4 => "CPA",
                _ => "CP",
            }),
            Payload::Unknown { payload_type, .. } if !payload_type.is_known() => {
                s.push_str(&format!("U({})", payload_type.0))
            }
            p => s.push_str(p.payload_type().name()),
        }
        s.push(' ');
    }
    s.push(']');
    s
}

impl Payload {
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::KeyExchange(_) => PayloadType::KE,
            Payload::Identification(_) => PayloadType::ID,
            Payload::Certificate { .. } => PayloadType::CERT,
            Payload::CertificateRequest { .. } => PayloadType::CR,
            Payload::Hash(_) => PayloadType::HASH,
            Payload::Signature(_) => PayloadType::SIG,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notification(_) => PayloadType::N,
            Payload::Delete(_) => PayloadType::D,
            Payload::VendorId(_) => PayloadType::VID,
            Payload::NatD { draft: false, .. } => PayloadType::NAT_D,
            Payload::NatD { draft: true, .. } => PayloadType::NAT_D_DRAFT,
            Payload::NatOa { draft: false, .. } => PayloadType::NAT_OA,
            Payload::NatOa { draft: true, .. } => PayloadType::NAT_OA_DRAFT,
            Payload::Fragment(_) => PayloadType::FRAGMENT,
            Payload::Attributes(_) => PayloadType::ATTR,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Decodes one raw payload. Unknown types 0–127 and private types with a nonzero RESERVED
    /// byte (IKEv2's critical bit) are `UnsupportedPayload` (INVALID-PAYLOAD-TYPE).
    pub fn parse(raw: &RawPayload<'_>) -> Result<Payload, WireError> {
        Payload::parse_body(raw.payload_type, raw.body).and_then(|p| match p {
            Payload::Unknown { payload_type, .. }
                if payload_type.is_private() && raw.reserved() != 0 =>
            {
                Err(WireError::UnsupportedPayload(payload_type.0))
            }
            p => Ok(p),
        })
    }

    /// Decodes a payload body (without the generic header) of the given type.
    pub fn parse_body(payload_type: PayloadType, body: &[u8]) -> Result<Payload, WireError> {
        let mut r = Reader::new(body);
        let p = match payload_type {
            PayloadType::SA => Payload::Sa(SaPayload::parse(body)?),
            PayloadType::KE => Payload::KeyExchange(body.to_vec()),
            PayloadType::ID => Payload::Identification(Identification::parse(body)?),
            PayloadType::CERT => {
                let encoding = r.u8().map_err(|_| WireError::Malformed("CERT"))?;
                Payload::Certificate {
                    encoding,
                    data: r.rest().to_vec(),
                }
            }
            PayloadType::CR => {
                let encoding = r.u8().map_err(|_| WireError::Malformed("CERTREQ"))?;
                Payload::CertificateRequest {
                    encoding,
                    authority: r.rest().to_vec(),
                }
            }
            PayloadType::HASH => Payload::Hash(body.to_vec()),
            PayloadType::SIG => Payload::Signature(body.to_vec()),
            PayloadType::NONCE => Payload::Nonce(body.to_vec()),
            PayloadType::N => Payload::Notification(Notification::parse(body)?),
            PayloadType::D => Payload::Delete(Delete::parse(body)?),
            PayloadType::VID => Payload::VendorId(body.to_vec()),
            PayloadType::NAT_D | PayloadType::NAT_D_DRAFT => Payload::NatD {
                draft: payload_type == PayloadType::NAT_D_DRAFT,
                hash: body.to_vec(),
            },
            PayloadType::NAT_OA | PayloadType::NAT_OA_DRAFT => {
                let id = Identification::parse(body).map_err(|_| WireError::Malformed("NAT-OA"))?;
                if id.id_type != IdType::IPV4_ADDR && id.id_type != IdType::IPV6_ADDR {
                    return Err(WireError::Malformed("NAT-OA"));
                }
                Payload::NatOa {
                    draft: payload_type == PayloadType::NAT_OA_DRAFT,
                    id,
                }
            }
            PayloadType::FRAGMENT => Payload::Fragment(Fragment::parse(body)?),
            PayloadType::ATTR => Payload::Attributes(AttributePayload::parse(body)?),
            t if t.is_private() => Payload::Unknown {
                payload_type,
                data: body.to_vec(),
            },
            t => return Err(WireError::UnsupportedPayload(t.0)),
        };
        Ok(p)
    }

    /// Appends the body, without the 4-byte generic header (what HASH/SKEYID inputs cover).
    pub fn emit_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(sa) => sa.emit(out),
            Payload::Identification(id) | Payload::NatOa { id, .. } => id.emit(out),
            Payload::Certificate { encoding, data } => {
                out.push(*encoding);
                out.extend_from_slice(data);
            }
            Payload::CertificateRequest {
                encoding,
                authority,
            } => {
                out.push(*encoding);
                out.extend_from_slice(authority);
            }
            Payload::KeyExchange(d)
            | Payload::Hash(d)
            | Payload::Signature(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::NatD { hash: d, .. }
            | Payload::Unknown { data: d, .. } => out.extend_from_slice(d),
            Payload::Notification(n) => n.emit(out),
            Payload::Delete(d) => d.emit(out),
            Payload::Fragment(f) => f.emit(out),
            Payload::Attributes(a) => a.emit(out),
        }
    }
}

impl Notification {
    fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let fixed = |_| WireError::Malformed("N");
        let doi = r.u32().map_err(fixed)?;
        let protocol = ProtocolId(r.u8().map_err(fixed)?);
        let spi_size = r.u8().map_err(fixed)?;
        let notify_type = NotifyType(r.u16().map_err(fixed)?);
        let spi = r
            .take(usize::from(spi_size))
            .map_err(|_| WireError::BadLength {
                what: "notify SPI",
                length: usize::from(spi_size),
                available: body.len(),
            })?
            .to_vec();
        Ok(Notification {
            doi,
            protocol,
            notify_type,
            spi,
            data: r.rest().to_vec(),
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.push(self.protocol.0);
        out.push(u8::try_from(self.spi.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.notify_type.0.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
    }
}

impl Delete {
    fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let fixed = |_| WireError::Malformed("D");
        let doi = r.u32().map_err(fixed)?;
        let protocol = ProtocolId(r.u8().map_err(fixed)?);
        let spi_size = r.u8().map_err(fixed)?;
        let count = usize::from(r.u16().map_err(fixed)?);
        let size = usize::from(spi_size);
        if size == 0 && count != 0 {
            return Err(WireError::BadSpiSize {
                protocol: protocol.0,
                size: spi_size,
            });
        }
        // Both factors come from 8- and 16-bit fields: the product fits any usize >= 32 bits.
        let length = size.saturating_mul(count);
        if length != r.remaining() {
            return Err(WireError::BadLength {
                what: "delete SPIs",
                length,
                available: r.remaining(),
            });
        }
        let spis = r.rest().chunks(size.max(1)).map(<[u8]>::to_vec).collect();
        Ok(Delete {
            doi,
            protocol,
            spi_size,
            spis,
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.push(self.protocol.0);
        out.push(self.spi_size);
        out.extend_from_slice(
            &u16::try_from(self.spis.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        for s in &self.spis {
            out.extend_from_slice(s);
        }
    }
}

impl Fragment {
    fn parse(body: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(body);
        let fixed = |_| WireError::Malformed("FRAG");
        let id = r.u16().map_err(fixed)?;
        let number = r.u8().map_err(fixed)?;
        let flags = r.u8().map_err(fixed)?;
        Ok(Fragment {
            id,
            number,
            last: flags & Fragment::FLAG_LAST != 0,
            data: r.rest().to_vec(),
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(self.number);
        out.push(if self.last { Fragment::FLAG_LAST } else { 0 });
        out.extend_from_slice(&self.data);
    }
}
