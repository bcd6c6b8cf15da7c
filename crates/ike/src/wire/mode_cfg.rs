//! The Attribute payload of the Transaction exchange (draft-dukes-ike-mode-cfg §3.2) and the
//! attributes it carries: Mode Config (§3.3), XAuth (draft-beaulieu-ike-xauth §4.2) and the
//! Cisco Unity ones. A zero-copy view checks the lengths once; [`AttributePayload`] is the
//! owned parse/emit pair; [`ModeCfgSettings`] decodes what a gateway assigns.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use zeroize::Zeroize;

use super::error::WireError;
pub use super::limits::MAX_CFG_ATTRIBUTES;
pub use super::numbers::{CfgAttrType, CfgType};
use super::reader::Reader;
use super::sa::AttributeValue;

/// Attribute Format bit: set for TV (basic) attributes (draft-dukes-ike-mode-cfg §3.2).
const AF: u16 = 0x8000;

/// XAUTH_TYPE values (draft-beaulieu-ike-xauth §4.2): only Generic is answered.
pub mod xauth_type {
    pub const GENERIC: u16 = 0;
}

/// XAUTH_STATUS values (draft-beaulieu-ike-xauth §4.2).
pub mod xauth_status {
    pub const FAIL: u16 = 0;
    pub const OK: u16 = 1;
}

/// One attribute seen through a checked view: a TV value or the bytes of a TLV value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfgValue<'a> {
    Basic(u16),
    Variable(&'a [u8]),
}

/// One attribute of a checked [`AttributePayloadView`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CfgAttr<'a> {
    pub attr_type: CfgAttrType,
    pub value: CfgValue<'a>,
}

/// Zero-copy view of an Attribute payload body (type, RESERVED, identifier, attributes) whose
/// attribute lengths were checked by [`AttributePayloadView::new_checked`].
#[derive(Debug, Clone, Copy)]
pub struct AttributePayloadView<T: AsRef<[u8]>> {
    buf: T,
}

/// Reads one attribute: TV when the AF bit is set, else length and value (RFC 2408 §3.3).
fn read_attr<'a>(r: &mut Reader<'a>) -> Result<CfgAttr<'a>, WireError> {
    let t = r.u16().map_err(|_| WireError::Malformed("CP attribute"))?;
    let v = r.u16().map_err(|_| WireError::Malformed("CP attribute"))?;
    let attr_type = CfgAttrType(t & !AF);
    if t & AF != 0 {
        return Ok(CfgAttr {
            attr_type,
            value: CfgValue::Basic(v),
        });
    }
    let available = r.remaining();
    let data = r.take(usize::from(v)).map_err(|_| WireError::BadLength {
        what: "CP attribute",
        length: usize::from(v),
        available,
    })?;
    Ok(CfgAttr {
        attr_type,
        value: CfgValue::Variable(data),
    })
}

impl<T: AsRef<[u8]>> AttributePayloadView<T> {
    /// Checks the fixed part and that the attributes fill the body exactly.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let body = buf.as_ref();
        let mut r = Reader::new(body);
        r.take(4).map_err(|_| WireError::Malformed("CP"))?;
        let mut count = 0usize;
        while !r.is_empty() {
            count = count.saturating_add(1);
            if count > MAX_CFG_ATTRIBUTES {
                return Err(WireError::TooManyAttributes);
            }
            read_attr(&mut r)?;
        }
        Ok(AttributePayloadView { buf })
    }

    pub fn cfg_type(&self) -> CfgType {
        CfgType(self.buf.as_ref().first().copied().unwrap_or(0))
    }

    pub fn identifier(&self) -> u16 {
        let b = self.buf.as_ref();
        match (b.get(2), b.get(3)) {
            (Some(&h), Some(&l)) => u16::from_be_bytes([h, l]),
            _ => 0,
        }
    }

    /// The attributes in order (the view was checked: iteration never fails).
    pub fn attributes(&self) -> impl Iterator<Item = CfgAttr<'_>> {
        let mut r = Reader::new(self.buf.as_ref().get(4..).unwrap_or(&[]));
        std::iter::from_fn(move || {
            if r.is_empty() {
                None
            } else {
                read_attr(&mut r).ok()
            }
        })
    }
}

/// One owned attribute of an Attribute payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgAttribute {
    pub attr_type: CfgAttrType,
    pub value: AttributeValue,
}

impl CfgAttribute {
    pub fn basic(attr_type: CfgAttrType, value: u16) -> Self {
        CfgAttribute {
            attr_type: CfgAttrType(attr_type.0 & !AF),
            value: AttributeValue::Basic(value),
        }
    }

    pub fn variable(attr_type: CfgAttrType, value: impl Into<Vec<u8>>) -> Self {
        CfgAttribute {
            attr_type: CfgAttrType(attr_type.0 & !AF),
            value: AttributeValue::Variable(value.into()),
        }
    }

    /// A zero-length TLV: in a REQUEST, "send me this" (draft-dukes-ike-mode-cfg §3.2).
    pub fn empty(attr_type: CfgAttrType) -> Self {
        CfgAttribute::variable(attr_type, Vec::new())
    }

    fn malformed(&self, expected: &'static str) -> WireError {
        WireError::BadCfgAttribute {
            attr_type: self.attr_type.0,
            expected,
        }
    }

    /// The value bytes of a TLV attribute; a TV attribute where a TLV is due is malformed.
    pub fn bytes(&self) -> Result<&[u8], WireError> {
        match &self.value {
            AttributeValue::Variable(b) => Ok(b),
            AttributeValue::Basic(_) => Err(self.malformed("a variable-length value")),
        }
    }

    /// A 16-bit value: TV, or a TLV of two bytes (both encodings are seen in the wild).
    pub fn u16(&self) -> Result<u16, WireError> {
        match &self.value {
            AttributeValue::Basic(v) => Ok(*v),
            AttributeValue::Variable(b) => <[u8; 2]>::try_from(b.as_slice())
                .map(u16::from_be_bytes)
                .map_err(|_| self.malformed("a 16-bit value")),
        }
    }

    /// A 32-bit value (INTERNAL_ADDRESS_EXPIRY): a TLV of four bytes, or TV.
    pub fn u32(&self) -> Result<u32, WireError> {
        match &self.value {
            AttributeValue::Basic(v) => Ok(u32::from(*v)),
            AttributeValue::Variable(b) => <[u8; 4]>::try_from(b.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| self.malformed("a 32-bit value")),
        }
    }

    pub fn ipv4(&self) -> Result<Ipv4Addr, WireError> {
        <[u8; 4]>::try_from(self.bytes()?)
            .map(Ipv4Addr::from)
            .map_err(|_| self.malformed("4 bytes (an IPv4 address)"))
    }

    /// An IPv6 address with an optional prefix length byte (16 or 17 bytes; §3.3, RFC 4306).
    pub fn ipv6(&self) -> Result<(Ipv6Addr, Option<u8>), WireError> {
        let b = self.bytes()?;
        let addr = b
            .get(..16)
            .and_then(|a| <[u8; 16]>::try_from(a).ok())
            .map(Ipv6Addr::from);
        match (addr, b.get(16), b.len()) {
            (Some(a), None, 16) => Ok((a, None)),
            (Some(a), Some(&p), 17) if p <= 128 => Ok((a, Some(p))),
            _ => Err(self.malformed("16 or 17 bytes (an IPv6 address and prefix)")),
        }
    }

    /// UTF-8 text without NULs (user names, banner, domains); trailing NULs some gateways
    /// append are dropped.
    pub fn text(&self) -> Result<String, WireError> {
        let b = self.bytes()?;
        let end = b
            .iter()
            .rposition(|&c| c != 0)
            .map_or(0, |i| i.saturating_add(1));
        let b = b.get(..end).unwrap_or(&[]);
        if b.contains(&0) {
            return Err(self.malformed("text without NUL bytes"));
        }
        String::from_utf8(b.to_vec()).map_err(|_| self.malformed("UTF-8 text"))
    }

    /// UNITY_SPLIT_INCLUDE / UNITY_LOCAL_LAN: entries of 14 bytes, network and mask first
    /// (the remaining 6 bytes, protocol and ports, are zero in practice and ignored).
    pub fn ipv4_networks(&self) -> Result<Vec<(Ipv4Addr, Ipv4Addr)>, WireError> {
        let b = self.bytes()?;
        if b.len() % 14 != 0 {
            return Err(self.malformed("entries of 14 bytes (network, mask, 6 bytes)"));
        }
        Ok(b.chunks_exact(14)
            .filter_map(|e| {
                let net = <[u8; 4]>::try_from(e.get(..4)?).ok()?;
                let mask = <[u8; 4]>::try_from(e.get(4..8)?).ok()?;
                Some((Ipv4Addr::from(net), Ipv4Addr::from(mask)))
            })
            .collect())
    }

    /// The network list of UNITY_SPLIT_INCLUDE in its wire form (14 bytes per entry).
    pub fn from_ipv4_networks(attr_type: CfgAttrType, nets: &[(Ipv4Addr, Ipv4Addr)]) -> Self {
        let mut v = Vec::with_capacity(nets.len().saturating_mul(14));
        for (net, mask) in nets {
            v.extend_from_slice(&net.octets());
            v.extend_from_slice(&mask.octets());
            v.extend_from_slice(&[0; 6]);
        }
        CfgAttribute::variable(attr_type, v)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        match &self.value {
            AttributeValue::Basic(v) => {
                out.extend_from_slice(&(self.attr_type.0 | AF).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttributeValue::Variable(b) => {
                let len = b.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(self.attr_type.0 & !AF).to_be_bytes());
                out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
                out.extend_from_slice(b.get(..len).unwrap_or(b));
            }
        }
    }
}

/// Attribute payload body (draft-dukes-ike-mode-cfg §3.2). Values are wiped on drop: a REPLY
/// to XAuth carries the user's password.
#[derive(Clone, PartialEq, Eq)]
pub struct AttributePayload {
    pub cfg_type: CfgType,
    pub identifier: u16,
    pub attributes: Vec<CfgAttribute>,
}

impl fmt::Debug for AttributePayload {
    /// Types only: values (passwords) never reach a log through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let types: Vec<String> = self
            .attributes
            .iter()
            .map(|a| a.attr_type.to_string())
            .collect();
        f.debug_struct("AttributePayload")
            .field("cfg_type", &self.cfg_type)
            .field("identifier", &self.identifier)
            .field("attributes", &types)
            .finish()
    }
}

impl Drop for AttributePayload {
    fn drop(&mut self) {
        for a in &mut self.attributes {
            if let AttributeValue::Variable(v) = &mut a.value {
                v.zeroize();
            }
        }
    }
}

impl AttributePayload {
    pub fn new(cfg_type: CfgType, identifier: u16, attributes: Vec<CfgAttribute>) -> Self {
        AttributePayload {
            cfg_type,
            identifier,
            attributes,
        }
    }

    pub fn parse(body: &[u8]) -> Result<Self, WireError> {
        let view = AttributePayloadView::new_checked(body)?;
        let attributes = view
            .attributes()
            .map(|a| CfgAttribute {
                attr_type: a.attr_type,
                value: match a.value {
                    CfgValue::Basic(v) => AttributeValue::Basic(v),
                    CfgValue::Variable(b) => AttributeValue::Variable(b.to_vec()),
                },
            })
            .collect();
        Ok(AttributePayload {
            cfg_type: view.cfg_type(),
            identifier: view.identifier(),
            attributes,
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.cfg_type.0);
        out.push(0);
        out.extend_from_slice(&self.identifier.to_be_bytes());
        for a in &self.attributes {
            a.emit(out);
        }
    }

    /// The one attribute of a type; two of a single-valued type are a typed error.
    pub fn single(&self, attr_type: CfgAttrType) -> Result<Option<&CfgAttribute>, WireError> {
        let mut it = self.attributes.iter().filter(|a| a.attr_type == attr_type);
        let first = it.next();
        if it.next().is_some() {
            return Err(WireError::DuplicateAttribute(attr_type.0));
        }
        Ok(first)
    }

    /// Whether an attribute of the type is present.
    pub fn has(&self, attr_type: CfgAttrType) -> bool {
        self.attributes.iter().any(|a| a.attr_type == attr_type)
    }

    /// strongSwan-style summary, e.g. `CP(XAUTH_USER_NAME XAUTH_USER_PASSWORD)`.
    pub fn summary(&self) -> String {
        let names: Vec<String> = self
            .attributes
            .iter()
            .map(|a| a.attr_type.to_string())
            .collect();
        format!("{} {}", self.cfg_type, names.join(" "))
    }
}

/// What a Mode Config REPLY or SET assigns (draft-dukes-ike-mode-cfg §3.3, Cisco Unity).
/// Zero-length values (a gateway echoing our REQUEST) count as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeCfgSettings {
    pub ip4_address: Option<Ipv4Addr>,
    pub ip4_netmask: Option<Ipv4Addr>,
    pub ip4_dns: Vec<Ipv4Addr>,
    pub ip4_nbns: Vec<Ipv4Addr>,
    /// Address and prefix length (from the 17th byte or INTERNAL_IP6_NETMASK).
    pub ip6_address: Option<(Ipv6Addr, Option<u8>)>,
    pub ip6_dns: Vec<Ipv6Addr>,
    pub ip6_nbns: Vec<Ipv6Addr>,
    /// Seconds the address is valid (INTERNAL_ADDRESS_EXPIRY).
    pub address_expiry: Option<u32>,
    /// Networks to send through the tunnel (UNITY_SPLIT_INCLUDE); empty means everything.
    pub split_include: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// Domains resolved through the tunnel's DNS servers (UNITY_SPLITDNS_NAME).
    pub split_dns: Vec<String>,
    pub default_domain: Option<String>,
    pub banner: Option<String>,
    /// UNITY_PFS: the gateway wants PFS in Quick Mode (its value, a flag or a group).
    pub pfs: Option<u16>,
    pub save_password: Option<bool>,
}

impl ModeCfgSettings {
    /// Decodes the attributes of a REPLY or SET. Single-valued attributes twice, and values of
    /// the wrong size or encoding, are typed errors; unknown attributes are ignored.
    pub fn from_payload(p: &AttributePayload) -> Result<Self, WireError> {
        let mut s = ModeCfgSettings::default();
        let present = |t| -> Result<Option<&CfgAttribute>, WireError> {
            Ok(p.single(t)?
                .filter(|a| !matches!(&a.value, AttributeValue::Variable(v) if v.is_empty())))
        };
        s.ip4_address = present(CfgAttrType::INTERNAL_IP4_ADDRESS)?
            .map(CfgAttribute::ipv4)
            .transpose()?;
        s.ip4_netmask = present(CfgAttrType::INTERNAL_IP4_NETMASK)?
            .map(CfgAttribute::ipv4)
            .transpose()?;
        if let Some(m) = s.ip4_netmask {
            let bits = u32::from(m);
            if bits.leading_ones().saturating_add(bits.trailing_zeros()) != 32 {
                return Err(WireError::BadCfgAttribute {
                    attr_type: CfgAttrType::INTERNAL_IP4_NETMASK.0,
                    expected: "a contiguous netmask",
                });
            }
        }
        let ip6_mask = present(CfgAttrType::INTERNAL_IP6_NETMASK)?
            .map(CfgAttribute::ipv6)
            .transpose()?
            .map(|(m, _)| u128::from(m).leading_ones());
        s.ip6_address = present(CfgAttrType::INTERNAL_IP6_ADDRESS)?
            .map(CfgAttribute::ipv6)
            .transpose()?
            .map(|(a, p)| (a, p.or(ip6_mask.and_then(|m| u8::try_from(m).ok()))));
        s.address_expiry = present(CfgAttrType::INTERNAL_ADDRESS_EXPIRY)?
            .map(CfgAttribute::u32)
            .transpose()?;
        // Text of NULs alone is as absent as an empty value.
        let text = |t| -> Result<Option<String>, WireError> {
            Ok(present(t)?
                .map(CfgAttribute::text)
                .transpose()?
                .filter(|s| !s.is_empty()))
        };
        s.default_domain = text(CfgAttrType::UNITY_DEF_DOMAIN)?;
        s.banner = text(CfgAttrType::UNITY_BANNER)?;
        s.pfs = present(CfgAttrType::UNITY_PFS)?
            .map(CfgAttribute::u16)
            .transpose()?;
        s.save_password = present(CfgAttrType::UNITY_SAVE_PASSWD)?
            .map(|a| a.u16().map(|v| v != 0))
            .transpose()?;
        for a in &p.attributes {
            if matches!(&a.value, AttributeValue::Variable(v) if v.is_empty()) {
                continue;
            }
            match a.attr_type {
                CfgAttrType::INTERNAL_IP4_DNS => s.ip4_dns.push(a.ipv4()?),
                CfgAttrType::INTERNAL_IP4_NBNS => s.ip4_nbns.push(a.ipv4()?),
                CfgAttrType::INTERNAL_IP6_DNS => s.ip6_dns.push(a.ipv6()?.0),
                CfgAttrType::INTERNAL_IP6_NBNS => s.ip6_nbns.push(a.ipv6()?.0),
                CfgAttrType::UNITY_SPLIT_INCLUDE => s.split_include.extend(a.ipv4_networks()?),
                CfgAttrType::UNITY_SPLITDNS_NAME => s.split_dns.extend(
                    a.text()?
                        .split(',')
                        .map(str::trim)
                        .filter(|d| !d.is_empty())
                        .map(String::from),
                ),
                _ => {}
            }
        }
        Ok(s)
    }

    /// The attributes of a REPLY or SET carrying these settings (a gateway's side).
    pub fn to_attributes(&self) -> Vec<CfgAttribute> {
        let mut v = Vec::new();
        let v4 = |t, a: &Ipv4Addr| CfgAttribute::variable(t, a.octets().to_vec());
        if let Some(a) = &self.ip4_address {
            v.push(v4(CfgAttrType::INTERNAL_IP4_ADDRESS, a));
        }
        if let Some(m) = &self.ip4_netmask {
            v.push(v4(CfgAttrType::INTERNAL_IP4_NETMASK, m));
        }
        v.extend(
            self.ip4_dns
                .iter()
                .map(|a| v4(CfgAttrType::INTERNAL_IP4_DNS, a)),
        );
        v.extend(
            self.ip4_nbns
                .iter()
                .map(|a| v4(CfgAttrType::INTERNAL_IP4_NBNS, a)),
        );
        if let Some((a, p)) = &self.ip6_address {
            let mut b = a.octets().to_vec();
            b.extend(p);
            v.push(CfgAttribute::variable(CfgAttrType::INTERNAL_IP6_ADDRESS, b));
        }
        let v6 = |t, a: &Ipv6Addr| CfgAttribute::variable(t, a.octets().to_vec());
        v.extend(
            self.ip6_dns
                .iter()
                .map(|a| v6(CfgAttrType::INTERNAL_IP6_DNS, a)),
        );
        v.extend(
            self.ip6_nbns
                .iter()
                .map(|a| v6(CfgAttrType::INTERNAL_IP6_NBNS, a)),
        );
        if let Some(e) = self.address_expiry {
            v.push(CfgAttribute::variable(
                CfgAttrType::INTERNAL_ADDRESS_EXPIRY,
                e.to_be_bytes().to_vec(),
            ));
        }
        if !self.split_include.is_empty() {
            v.push(CfgAttribute::from_ipv4_networks(
                CfgAttrType::UNITY_SPLIT_INCLUDE,
                &self.split_include,
            ));
        }
        if !self.split_dns.is_empty() {
            v.push(CfgAttribute::variable(
                CfgAttrType::UNITY_SPLITDNS_NAME,
                self.split_dns.join(","),
            ));
        }
        let text = |t, s: &String| CfgAttribute::variable(t, s.as_bytes().to_vec());
        if let Some(d) = &self.default_domain {
            v.push(text(CfgAttrType::UNITY_DEF_DOMAIN, d));
        }
        if let Some(b) = &self.banner {
            v.push(text(CfgAttrType::UNITY_BANNER, b));
        }
        if let Some(p) = self.pfs {
            v.push(CfgAttribute::basic(CfgAttrType::UNITY_PFS, p));
        }
        if let Some(s) = self.save_password {
            v.push(CfgAttribute::basic(
                CfgAttrType::UNITY_SAVE_PASSWD,
                u16::from(s),
            ));
        }
        v
    }

    /// Prefix length of the IPv4 netmask (32 when none was assigned: a host address).
    pub fn ip4_prefix_len(&self) -> u8 {
        self.ip4_netmask.map_or(32, |m| {
            u8::try_from(u32::from(m).leading_ones()).unwrap_or(32)
        })
    }
}

/// The attributes a Mode Config client asks for in its REQUEST (zero-length values): the
/// address, DNS and NBNS of each family it tunnels (draft-dukes-ike-mode-cfg §3.3), and the
/// Unity ones.
pub fn mode_cfg_request_attributes(v4: bool, v6: bool) -> Vec<CfgAttribute> {
    let ip4 = [
        CfgAttrType::INTERNAL_IP4_ADDRESS,
        CfgAttrType::INTERNAL_IP4_NETMASK,
        CfgAttrType::INTERNAL_IP4_DNS,
        CfgAttrType::INTERNAL_IP4_NBNS,
    ];
    let ip6 = [
        CfgAttrType::INTERNAL_IP6_ADDRESS,
        CfgAttrType::INTERNAL_IP6_DNS,
        CfgAttrType::INTERNAL_IP6_NBNS,
    ];
    let ip4 = ip4.into_iter().filter(|_| v4);
    let ip6 = ip6.into_iter().filter(|_| v6);
    ip4.chain(ip6)
        .chain([
            CfgAttrType::UNITY_BANNER,
            CfgAttrType::UNITY_DEF_DOMAIN,
            CfgAttrType::UNITY_SPLITDNS_NAME,
            CfgAttrType::UNITY_SPLIT_INCLUDE,
            CfgAttrType::UNITY_LOCAL_LAN,
            CfgAttrType::UNITY_PFS,
            CfgAttrType::UNITY_SAVE_PASSWD,
        ])
        .map(CfgAttribute::empty)
        .collect()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn roundtrip(p: &AttributePayload) -> AttributePayload {
        let mut out = Vec::new();
        p.emit(&mut out);
        AttributePayload::parse(&out).expect("emitted payload parses")
    }

    #[test]
    fn xauth_request_parses_tv_and_tlv_attributes() {
        // CFG_REQUEST id 0x1234: XAUTH_TYPE=0 (TV), USER_NAME and USER_PASSWORD empty (TLV).
        let body = [
            1, 0, 0x12, 0x34, 0xc0, 0x88, 0, 0, 0x40, 0x89, 0, 0, 0x40, 0x8a, 0, 0,
        ];
        let view = AttributePayloadView::new_checked(&body[..]).unwrap();
        assert_eq!(view.cfg_type(), CfgType::REQUEST);
        assert_eq!(view.identifier(), 0x1234);
        let attrs: Vec<_> = view.attributes().collect();
        assert_eq!(attrs.len(), 3);
        assert_eq!(attrs[0].attr_type, CfgAttrType::XAUTH_TYPE);
        assert_eq!(attrs[0].value, CfgValue::Basic(0));
        assert_eq!(attrs[1].attr_type, CfgAttrType::XAUTH_USER_NAME);
        assert_eq!(attrs[2].value, CfgValue::Variable(&[]));
        let p = AttributePayload::parse(&body).unwrap();
        let mut out = Vec::new();
        p.emit(&mut out);
        assert_eq!(out, body);
    }

    #[test]
    fn attribute_overrunning_the_payload_is_a_length_error() {
        let body = [2, 0, 0, 1, 0, 1, 0, 8, 192, 0, 2];
        assert!(matches!(
            AttributePayloadView::new_checked(&body[..]),
            Err(WireError::BadLength { .. })
        ));
        assert!(AttributePayloadView::new_checked(&[2u8, 0, 0][..]).is_err());
        // A half attribute header after a good one.
        assert!(AttributePayloadView::new_checked(&[2u8, 0, 0, 1, 0x80, 7, 0, 1, 0][..]).is_err());
    }

    #[test]
    fn too_many_attributes_are_refused() {
        let mut body = vec![2, 0, 0, 1];
        for _ in 0..=MAX_CFG_ATTRIBUTES {
            body.extend_from_slice(&[0x80, 0x07, 0, 0]);
        }
        assert_eq!(
            AttributePayload::parse(&body),
            Err(WireError::TooManyAttributes)
        );
    }

    #[test]
    fn settings_roundtrip_every_attribute() {
        let s = ModeCfgSettings {
            ip4_address: Some(Ipv4Addr::new(198, 51, 100, 10)),
            ip4_netmask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            ip4_dns: vec![
                Ipv4Addr::new(198, 51, 100, 53),
                Ipv4Addr::new(198, 51, 100, 54),
            ],
            ip4_nbns: vec![Ipv4Addr::new(198, 51, 100, 55)],
            ip6_address: Some(("2001:db8::10".parse().unwrap(), Some(64))),
            ip6_dns: vec!["2001:db8::53".parse().unwrap()],
            ip6_nbns: vec!["2001:db8::55".parse().unwrap()],
            address_expiry: Some(3600),
            split_include: vec![
                (
                    Ipv4Addr::new(203, 0, 113, 0),
                    Ipv4Addr::new(255, 255, 255, 0),
                ),
                (
                    Ipv4Addr::new(198, 51, 100, 0),
                    Ipv4Addr::new(255, 255, 255, 128),
                ),
            ],
            split_dns: vec!["corp.example".into(), "lab.example".into()],
            default_domain: Some("example.org".into()),
            banner: Some("Authorized use only.\nSecond line.".into()),
            pfs: Some(1),
            save_password: Some(false),
        };
        let p = AttributePayload::new(CfgType::REPLY, 7, s.to_attributes());
        let back = roundtrip(&p);
        assert_eq!(back, p);
        assert_eq!(ModeCfgSettings::from_payload(&back).unwrap(), s);
        assert_eq!(s.ip4_prefix_len(), 24);
    }

    #[test]
    fn duplicate_single_valued_attribute_is_a_typed_error() {
        let a = CfgAttribute::variable(CfgAttrType::INTERNAL_IP4_ADDRESS, vec![198, 51, 100, 1]);
        let p = AttributePayload::new(CfgType::REPLY, 1, vec![a.clone(), a]);
        assert_eq!(
            ModeCfgSettings::from_payload(&p),
            Err(WireError::DuplicateAttribute(1))
        );
        // DNS servers may repeat.
        let d = CfgAttribute::variable(CfgAttrType::INTERNAL_IP4_DNS, vec![198, 51, 100, 53]);
        let p = AttributePayload::new(CfgType::REPLY, 1, vec![d.clone(), d]);
        assert_eq!(ModeCfgSettings::from_payload(&p).unwrap().ip4_dns.len(), 2);
    }

    #[test]
    fn malformed_values_are_typed_errors() {
        let cases = [
            CfgAttribute::variable(CfgAttrType::INTERNAL_IP4_ADDRESS, vec![198, 51, 100]),
            CfgAttribute::basic(CfgAttrType::INTERNAL_IP4_DNS, 5),
            CfgAttribute::variable(CfgAttrType::INTERNAL_IP4_NETMASK, vec![255, 0, 255, 0]),
            CfgAttribute::variable(CfgAttrType::INTERNAL_IP6_ADDRESS, vec![0; 15]),
            CfgAttribute::variable(CfgAttrType::UNITY_SPLIT_INCLUDE, vec![0; 13]),
            CfgAttribute::variable(CfgAttrType::UNITY_BANNER, vec![0xff, 0xfe]),
            CfgAttribute::variable(CfgAttrType::UNITY_DEF_DOMAIN, b"a\0b".to_vec()),
            CfgAttribute::variable(CfgAttrType::UNITY_PFS, vec![1, 2, 3]),
        ];
        for a in cases {
            let t = a.attr_type.0;
            let p = AttributePayload::new(CfgType::REPLY, 1, vec![a]);
            assert!(
                matches!(ModeCfgSettings::from_payload(&p), Err(WireError::BadCfgAttribute { attr_type, .. }) if attr_type == t),
                "attribute {t} must be refused"
            );
        }
    }

    #[test]
    fn empty_values_echoed_from_a_request_count_as_absent() {
        let p = AttributePayload::new(CfgType::REPLY, 1, mode_cfg_request_attributes(true, true));
        assert_eq!(
            ModeCfgSettings::from_payload(&p).unwrap(),
            ModeCfgSettings::default()
        );
    }

    #[test]
    fn debug_output_never_shows_values() {
        let p = AttributePayload::new(
            CfgType::REPLY,
            1,
            vec![CfgAttribute::variable(
                CfgAttrType::XAUTH_USER_PASSWORD,
                b"hunter2".to_vec(),
            )],
        );
        let s = format!("{p:?}");
        assert!(s.contains("XAUTH_USER_PASSWORD"));
        assert!(!s.contains("hunter2") && !s.contains("104"));
    }
}
