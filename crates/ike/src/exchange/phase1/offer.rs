//! The ISAKMP SA offer and choice (RFC 2409 §5, App. A; RFC 2407 §4.4.2): the SA payload we
//! offer, reading a transform, the responder's choice, the initiator's check of the answer, and
//! the lifetime (never longer than ours, RFC 2409 §4.5).

use std::time::Duration;

use crate::algorithm::{DhGroup, IkeCipher, IkeHash};
use crate::config::ConnectionConfig;
use crate::context::Ctx;
use crate::event::Event;
use crate::proposal::IkeProposal;
use crate::sa::IkeSa;
use crate::wire::{
    attr, Attribute, Proposal, ProtocolId, SaPayload, Transform, IPSEC_DOI, SIT_IDENTITY_ONLY,
};

/// Transform ID KEY_IKE (RFC 2407 §4.4.2).
const KEY_IKE: u8 = 1;

/// The SA payload offering `proposals` as transforms of one ISAKMP proposal.
pub(crate) fn offer(proposals: &[IkeProposal], lifetime: Duration, auth: u16) -> SaPayload {
    let transforms = proposals
        .iter()
        .enumerate()
        .map(|(i, p)| Transform {
            number: u8::try_from(i + 1).unwrap_or(u8::MAX),
            transform_id: KEY_IKE,
            attributes: transform_attributes(p, lifetime, auth),
        })
        .collect();
    SaPayload {
        doi: IPSEC_DOI,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ISAKMP,
            spi: Vec::new(),
            transforms,
        }],
    }
}

fn transform_attributes(p: &IkeProposal, lifetime: Duration, auth: u16) -> Vec<Attribute> {
    let mut a = vec![Attribute::basic(
        attr::ike::ENCRYPTION_ALGORITHM,
        p.cipher.attribute_value(),
    )];
    if let Some(k) = p.cipher.key_length_attribute() {
        a.push(Attribute::basic(attr::ike::KEY_LENGTH, k));
    }
    a.push(Attribute::basic(
        attr::ike::HASH_ALGORITHM,
        p.hash.attribute_value(),
    ));
    a.push(Attribute::basic(
        attr::ike::GROUP_DESCRIPTION,
        p.group.number(),
    ));
    a.push(Attribute::basic(attr::ike::AUTHENTICATION_METHOD, auth));
    a.push(Attribute::basic(
        attr::ike::LIFE_TYPE,
        attr::life_type::SECONDS,
    ));
    a.push(Attribute::from_u64(
        attr::ike::LIFE_DURATION,
        lifetime.as_secs(),
    ));
    a
}

/// What one offered phase 1 transform says, if we implement all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OfferedTransform {
    pub proposal: IkeProposal,
    pub auth_method: u16,
    pub lifetime: Option<Duration>,
}

pub(crate) fn read_transform(t: &Transform) -> Option<OfferedTransform> {
    if t.transform_id != KEY_IKE {
        return None;
    }
    let (mut enc, mut key_len, mut hash, mut group, mut auth) = (None, None, None, None, None);
    let mut life_type = None;
    let mut lifetime = None;
    for a in &t.attributes {
        let v = a.as_u64();
        let v16 = v.and_then(|v| u16::try_from(v).ok());
        match a.attr_type {
            attr::ike::ENCRYPTION_ALGORITHM => enc = v16,
            attr::ike::KEY_LENGTH => key_len = v16,
            attr::ike::HASH_ALGORITHM => hash = v16,
            attr::ike::GROUP_DESCRIPTION => group = v16,
            attr::ike::AUTHENTICATION_METHOD => auth = v16,
            attr::ike::LIFE_TYPE => life_type = v16,
            attr::ike::LIFE_DURATION => {
                if life_type == Some(attr::life_type::SECONDS) {
                    lifetime = v.map(Duration::from_secs);
                }
            }
            _ => return None,
        }
    }
    Some(OfferedTransform {
        proposal: IkeProposal {
            cipher: IkeCipher::from_attributes(enc?, key_len)?,
            hash: IkeHash::from_attribute(hash?)?,
            group: DhGroup::from_number(group?)?,
        },
        auth_method: auth?,
        lifetime,
    })
}

/// A printable list of the transforms a peer offered, for the NO-PROPOSAL-CHOSEN report.
pub(crate) fn describe_offer(sa: &SaPayload) -> String {
    let mut v = Vec::new();
    for p in &sa.proposals {
        for t in &p.transforms {
            match read_transform(t) {
                Some(o) if o.auth_method == attr::auth_method::PSK => {
                    v.push(o.proposal.to_string())
                }
                // 65001–65010: XAUTHInitPreShared … (draft-ietf-ipsec-isakmp-xauth §5.1).
                Some(o) if (65001..=65010).contains(&o.auth_method) => v.push(format!(
                    "{} (auth method {}: XAuth, remote access)",
                    o.proposal, o.auth_method
                )),
                Some(o) => v.push(format!("{} (auth method {})", o.proposal, o.auth_method)),
                None => v.push(format!(
                    "transform {} (unsupported attributes)",
                    t.transform_id
                )),
            }
        }
    }
    v.join(", ")
}

pub(crate) fn describe_ours(cfg: &ConnectionConfig) -> String {
    cfg.ike_proposals
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Responder's choice: the peer's first transform that we also allow (RFC 2409 §5: the
/// responder returns exactly one transform). Returns it and the SA payload to answer with.
pub(crate) fn choose(
    cfg: &ConnectionConfig,
    offer: &SaPayload,
    group: Option<DhGroup>,
) -> Option<(OfferedTransform, SaPayload)> {
    if offer.doi != IPSEC_DOI || offer.situation != SIT_IDENTITY_ONLY {
        return None;
    }
    for p in &offer.proposals {
        if p.protocol != ProtocolId::ISAKMP {
            continue;
        }
        for t in &p.transforms {
            let Some(o) = read_transform(t) else { continue };
            let acceptable = o.auth_method == cfg.auth_method()
                && cfg.ike_proposals.contains(&o.proposal)
                && (cfg.allow_weak_dh || !o.proposal.group.is_weak())
                && group.is_none_or(|g| g == o.proposal.group);
            if acceptable {
                let reply = SaPayload {
                    doi: offer.doi,
                    situation: offer.situation,
                    proposals: vec![Proposal {
                        number: p.number,
                        protocol: p.protocol,
                        spi: p.spi.clone(),
                        transforms: vec![t.clone()],
                    }],
                };
                return Some((o, reply));
            }
        }
    }
    None
}

/// Initiator's check of the responder's answer: one transform, one we offered.
pub(crate) fn accept_choice(
    cfg: &ConnectionConfig,
    answer: &SaPayload,
) -> Option<OfferedTransform> {
    let [p] = answer.proposals.as_slice() else {
        return None;
    };
    let [t] = p.transforms.as_slice() else {
        return None;
    };
    let o = read_transform(t)?;
    (o.auth_method == cfg.auth_method() && cfg.ike_proposals.contains(&o.proposal)).then_some(o)
}

/// Phase 1 lifetime: the shorter of ours and the one in the chosen transform (RFC 2409 §4.5:
/// never a longer one), but not under a minute unless ours is.
pub(crate) fn lifetime(cfg: &ConnectionConfig, o: &OfferedTransform) -> Duration {
    o.lifetime
        .map_or(cfg.ike_lifetime, |l| l.min(cfg.ike_lifetime))
        .max(Duration::from_secs(60).min(cfg.ike_lifetime))
}

impl IkeSa {
    /// Sets the ISAKMP SA lifetime from the chosen transform, reporting a peer's value above
    /// ours (RFC 2409 §4.5: only a lower one is adopted).
    pub(crate) fn adopt_lifetime(&mut self, ctx: &mut Ctx<'_>, o: &OfferedTransform) {
        self.lifetime = lifetime(ctx.cfg, o);
        if let Some(theirs) = o.lifetime.filter(|l| *l > ctx.cfg.ike_lifetime) {
            ctx.event(Event::LifetimeCapped {
                conn: self.conn,
                cookies: self.cookies,
                sa: "ISAKMP SA",
                unit: "s",
                theirs: theirs.as_secs(),
                ours: self.lifetime.as_secs(),
            });
        }
    }
}
