//! ESP proposals in Quick Mode (RFC 2407 §4.5, §4.6.3.1; RFC 3947 §5.2): the SA payload we
//! offer, reading a transform, the responder's choice, the initiator's check of the answer, and
//! lifetimes (never longer than ours, RFC 2409 §4.5; RESPONDER-LIFETIME).

use std::borrow::Cow;
use std::time::Duration;

use super::state::EspChoice;

use crate::algorithm::{DhGroup, EspCipher, EspIntegrity};
use crate::config::ConnectionConfig;
use crate::context::Ctx;
use crate::event::{Event, Failure};
use crate::proposal::EspProposal;
use crate::sa::IkeSa;
use crate::wire::{
    attr, Notification, NotifyType, Payload, PayloadType, Proposal, ProtocolId, SaPayload,
    Transform, IPSEC_DOI,
};

/// Lifetime assumed when a proposal carries none (RFC 2407 §4.5).
const DEFAULT_ESP_LIFETIME: Duration = Duration::from_secs(28800);

/// Encapsulation mode attribute for our side (RFC 3947 §5.2; drafts use 61443).
pub(super) fn encap_mode(sa: &IkeSa) -> u16 {
    match (sa.nat.floated, sa.nat_d_type) {
        (true, Some(PayloadType::NAT_D_DRAFT)) => attr::encap_mode::UDP_TUNNEL_DRAFT,
        (true, _) => attr::encap_mode::UDP_TUNNEL,
        (false, _) => attr::encap_mode::TUNNEL,
    }
}

pub(super) fn is_tunnel_mode(m: u16) -> bool {
    matches!(
        m,
        attr::encap_mode::TUNNEL
            | attr::encap_mode::UDP_TUNNEL
            | attr::encap_mode::UDP_TUNNEL_DRAFT
    )
}

pub(super) fn is_udp_mode(m: u16) -> bool {
    matches!(
        m,
        attr::encap_mode::UDP_TUNNEL | attr::encap_mode::UDP_TUNNEL_DRAFT
    )
}

/// The ESP SA payload we offer: one proposal, one transform per configured ESP proposal.
pub(crate) fn esp_offer(
    proposals: &[EspProposal],
    spi: u32,
    mode: u16,
    lifetime: Duration,
    kb: Option<u64>,
) -> SaPayload {
    let transforms = proposals
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut a = vec![
                crate::wire::Attribute::basic(attr::ipsec::SA_LIFE_TYPE, attr::life_type::SECONDS),
                crate::wire::Attribute::from_u64(attr::ipsec::SA_LIFE_DURATION, lifetime.as_secs()),
            ];
            if let Some(kb) = kb {
                a.push(crate::wire::Attribute::basic(
                    attr::ipsec::SA_LIFE_TYPE,
                    attr::life_type::KILOBYTES,
                ));
                a.push(crate::wire::Attribute::from_u64(
                    attr::ipsec::SA_LIFE_DURATION,
                    kb,
                ));
            }
            if let Some(g) = p.pfs_group {
                a.push(crate::wire::Attribute::basic(
                    attr::ipsec::GROUP_DESCRIPTION,
                    g.number(),
                ));
            }
            a.push(crate::wire::Attribute::basic(
                attr::ipsec::ENCAPSULATION_MODE,
                mode,
            ));
            if let Some(i) = p.integrity {
                a.push(crate::wire::Attribute::basic(
                    attr::ipsec::AUTH_ALGORITHM,
                    i.attribute_value(),
                ));
            }
            if let Some(k) = p.cipher.key_length_attribute() {
                a.push(crate::wire::Attribute::basic(attr::ipsec::KEY_LENGTH, k));
            }
            if p.esn {
                a.push(crate::wire::Attribute::basic(
                    attr::ipsec::EXTENDED_SEQUENCE_NUMBER,
                    1,
                ));
            }
            Transform {
                number: u8::try_from(i + 1).unwrap_or(u8::MAX),
                transform_id: p.cipher.transform_id(),
                attributes: a,
            }
        })
        .collect();
    SaPayload {
        doi: IPSEC_DOI,
        situation: crate::wire::SIT_IDENTITY_ONLY,
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms,
        }],
    }
}

/// Reads one ESP transform; None when it uses something we do not implement.
pub(crate) fn read_esp_transform(t: &Transform) -> Option<EspChoice> {
    let (mut key_len, mut auth, mut group, mut mode, mut esn) =
        (None, None, None, attr::encap_mode::TUNNEL, false);
    let (mut life_type, mut lifetime, mut kb) = (None, None, None);
    for a in &t.attributes {
        let v = a.as_u64();
        let v16 = v.and_then(|v| u16::try_from(v).ok());
        match a.attr_type {
            attr::ipsec::SA_LIFE_TYPE => life_type = v16,
            attr::ipsec::SA_LIFE_DURATION => match life_type {
                Some(attr::life_type::SECONDS) => lifetime = v.map(Duration::from_secs),
                Some(attr::life_type::KILOBYTES) => kb = v,
                _ => return None,
            },
            attr::ipsec::GROUP_DESCRIPTION => group = Some(DhGroup::from_number(v16?)?),
            attr::ipsec::ENCAPSULATION_MODE => mode = v16?,
            attr::ipsec::AUTH_ALGORITHM => auth = Some(EspIntegrity::from_attribute(v16?)?),
            attr::ipsec::KEY_LENGTH => key_len = v16,
            attr::ipsec::EXTENDED_SEQUENCE_NUMBER => esn = v == Some(1),
            _ => return None,
        }
    }
    let cipher = EspCipher::from_transform(t.transform_id, key_len)?;
    if cipher.is_aead() == auth.is_some() {
        return None;
    }
    Some(EspChoice {
        proposal: EspProposal {
            cipher,
            integrity: auth,
            pfs_group: group,
            esn,
        },
        encap_mode: mode,
        lifetime: lifetime.unwrap_or(DEFAULT_ESP_LIFETIME),
        lifetime_kb: kb,
    })
}

pub(super) fn describe_esp(sa: &SaPayload) -> String {
    let mut v = Vec::new();
    for p in &sa.proposals {
        for t in &p.transforms {
            match read_esp_transform(t) {
                Some(c) if !is_tunnel_mode(c.encap_mode) => {
                    v.push(format!("{} (transport mode)", c.proposal))
                }
                Some(c) => v.push(c.proposal.to_string()),
                None => v.push(format!(
                    "transform {} (unsupported attributes)",
                    t.transform_id
                )),
            }
        }
    }
    v.join(", ")
}

/// Why a proposal or answer naming a reserved ESP SPI (RFC 4303 §2.1) is refused: the data
/// plane could not install the pair, and the tunnel would be up without carrying traffic.
pub(crate) fn reserved_spi(spi: u32) -> String {
    format!("the peer chose the reserved ESP SPI {spi:#010x} (0-255 are reserved, RFC 4303 §2.1)")
}

/// NO-PROPOSAL-CHOSEN for a Quick Mode: our ESP proposals and what the peer's side was.
pub(crate) fn no_esp_proposal(ours: &[EspProposal], theirs: String) -> Failure {
    Failure::NoProposalChosen {
        ours: describe_esp_ours(ours),
        theirs,
    }
}

impl IkeSa {
    /// Our ESP proposals on this ISAKMP SA: the configured ones, with PFS in the phase 1 group
    /// added to those without when a remote-access gateway asked for it by Mode Config (Cisco
    /// UNITY_PFS; the group is phase 1's, as Cisco's and vpnc's clients take it).
    pub(crate) fn esp_proposals<'a>(&self, cfg: &'a ConnectionConfig) -> Cow<'a, [EspProposal]> {
        match self.unity_pfs {
            Some(g) if cfg.esp_proposals.iter().any(|p| p.pfs_group.is_none()) => cfg
                .esp_proposals
                .iter()
                .map(|p| EspProposal {
                    pfs_group: p.pfs_group.or(Some(g)),
                    ..*p
                })
                .collect(),
            _ => Cow::Borrowed(&cfg.esp_proposals),
        }
    }
}

fn describe_esp_ours(ps: &[EspProposal]) -> String {
    ps.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// RESPONDER-LIFETIME data: life type/duration attributes (RFC 2407 §4.6.3.1).
pub(super) fn lifetime_attributes(lifetime: Duration) -> Vec<u8> {
    let mut out = vec![0x80, 0x01, 0x00, 0x01];
    let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
    out.extend_from_slice(&[0x00, 0x02, 0x00, 0x04]);
    out.extend_from_slice(&secs.to_be_bytes());
    out
}

/// Reads the seconds out of RESPONDER-LIFETIME data; bounded, never panics.
pub(super) fn parse_lifetime_attributes(mut data: &[u8]) -> Option<Duration> {
    let mut life_type = None;
    let mut secs = None;
    while data.len() >= 4 {
        let ty = u16::from_be_bytes([data[0], data[1]]);
        let (value, used): (u64, usize) = if ty & 0x8000 != 0 {
            (u64::from(u16::from_be_bytes([data[2], data[3]])), 4)
        } else {
            let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
            let v = data.get(4..4 + len)?;
            if v.is_empty() || v.len() > 8 {
                return None;
            }
            (
                v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
                4 + len,
            )
        };
        match ty & 0x7fff {
            1 => life_type = Some(value),
            2 if life_type == Some(1) => secs = Some(Duration::from_secs(value)),
            _ => {}
        }
        data = data.get(used..)?;
    }
    secs
}

/// Responder: the peer's first tunnel-mode ESP transform that matches one of our proposals
/// exactly, with the proposal it came in.
/// Whether the offer asks for transport mode only (RFC 2407 §4.5 Encapsulation Mode): ferrovpn
/// negotiates tunnel mode only, and says so before looking at the selectors (a transport
/// offer's host selectors would otherwise be refused as if they were the mismatch).
pub(super) fn transport_only(offer: &SaPayload) -> bool {
    let modes: Vec<u16> = offer
        .proposals
        .iter()
        .flat_map(|p| &p.transforms)
        .filter_map(read_esp_transform)
        .map(|c| c.encap_mode)
        .collect();
    !modes.is_empty() && !modes.iter().any(|&m| is_tunnel_mode(m))
}

pub(super) fn choose_esp<'a>(
    ours: &[EspProposal],
    offer: &'a SaPayload,
) -> Option<(&'a Proposal, &'a Transform, EspChoice)> {
    for prop in &offer.proposals {
        if prop.protocol != ProtocolId::ESP || prop.spi.len() != 4 {
            continue;
        }
        for t in &prop.transforms {
            if let Some(c) = read_esp_transform(t) {
                if is_tunnel_mode(c.encap_mode) && ours.contains(&c.proposal) {
                    return Some((prop, t, c));
                }
            }
        }
    }
    None
}

/// Initiator: the answer must be one ESP proposal with a 4-byte SPI and one transform we
/// offered; returns it and the responder's SPI.
pub(super) fn accept_esp(ours: &[EspProposal], answer: &SaPayload) -> Option<(EspChoice, Vec<u8>)> {
    let [prop] = answer.proposals.as_slice() else {
        return None;
    };
    let [t] = prop.transforms.as_slice() else {
        return None;
    };
    if prop.protocol != ProtocolId::ESP || prop.spi.len() != 4 {
        return None;
    }
    read_esp_transform(t)
        .filter(|c| ours.contains(&c.proposal))
        .map(|c| (c, prop.spi.clone()))
}

impl IkeSa {
    /// Responder: an offered lifetime above ours is lowered to ours and answered with
    /// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1); a KB lifetime is the lower of both.
    pub(super) fn cap_offered_lifetimes(
        &self,
        ctx: &mut Ctx<'_>,
        choice: &mut EspChoice,
        spi_in: u32,
    ) -> Option<Payload> {
        let mut notify = None;
        if choice.lifetime > ctx.cfg.esp_lifetime {
            ctx.event(Event::LifetimeCapped {
                conn: self.conn,
                cookies: self.cookies,
                sa: "IPsec SA",
                unit: "s",
                theirs: choice.lifetime.as_secs(),
                ours: ctx.cfg.esp_lifetime.as_secs(),
            });
            choice.lifetime = ctx.cfg.esp_lifetime;
            notify = Some(Payload::Notification(Notification {
                doi: IPSEC_DOI,
                protocol: ProtocolId::ESP,
                notify_type: NotifyType::RESPONDER_LIFETIME,
                spi: spi_in.to_be_bytes().to_vec(),
                data: lifetime_attributes(ctx.cfg.esp_lifetime),
            }));
        }
        if let (Some(ours), Some(theirs)) = (ctx.cfg.esp_lifetime_kb, choice.lifetime_kb) {
            choice.lifetime_kb = Some(ours.min(theirs));
        }
        notify
    }

    /// Initiator: the responder may lower our lifetimes, never raise them (RFC 2409 §4.5); a
    /// higher one is reported and replaced by ours, a RESPONDER-LIFETIME lowers it further.
    pub(super) fn cap_answered_lifetimes(
        &self,
        ctx: &mut Ctx<'_>,
        choice: &mut EspChoice,
        payloads: &[Payload],
    ) {
        let capped = [
            (
                "s",
                choice.lifetime.as_secs(),
                Some(ctx.cfg.esp_lifetime.as_secs()),
            ),
            (
                "KB",
                choice.lifetime_kb.unwrap_or(0),
                ctx.cfg.esp_lifetime_kb,
            ),
        ];
        for (unit, theirs, ours) in capped {
            if let Some(ours) = ours.filter(|o| theirs > *o) {
                ctx.event(Event::LifetimeCapped {
                    conn: self.conn,
                    cookies: self.cookies,
                    sa: "IPsec SA",
                    unit,
                    theirs,
                    ours,
                });
            }
        }
        choice.lifetime = choice.lifetime.min(ctx.cfg.esp_lifetime);
        if let Some(ours) = ctx.cfg.esp_lifetime_kb {
            choice.lifetime_kb = Some(choice.lifetime_kb.map_or(ours, |k| k.min(ours)));
        }
        for pl in payloads {
            if let Payload::Notification(n) = pl {
                if n.notify_type == NotifyType::RESPONDER_LIFETIME {
                    if let Some(l) = parse_lifetime_attributes(&n.data) {
                        choice.lifetime = choice.lifetime.min(l);
                    }
                }
            }
        }
    }
}
