//! What Main Mode and Aggressive Mode share: the ISAKMP SA offer and choice (RFC 2409 §5,
//! App. A), vendor IDs, NAT-D (RFC 3947 §3), keys and the identity check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::{DhGroup, IkeCipher, IkeHash};
use crate::config::ConnectionConfig;
use crate::context::{Ctx, Datagram};
use crate::crypto::{self, DhPrivate, Phase1Keys};
use crate::event::{Cookies, Direction, Event, Failure, MessageLog, NatStatus, PeerFeatures, Role};
use crate::keyed::Keyed;
use crate::proposal::IkeProposal;
use crate::sa::{IkeSa, OurKe, Udp4500ProbeState};
use crate::wire::{
    self, attr, vendor_id, Attribute, ExchangeType, Flags, Identification, KnownVendor, Payload,
    PayloadType, Proposal, ProtocolId, SaPayload, Transform, IPSEC_DOI, SIT_IDENTITY_ONLY,
};

/// Transform ID KEY_IKE (RFC 2407 §4.4.2).
const KEY_IKE: u8 = 1;

/// The SA payload offering `proposals` as transforms of one ISAKMP proposal.
pub(crate) fn offer(proposals: &[IkeProposal], lifetime: Duration) -> SaPayload {
    let transforms = proposals
        .iter()
        .enumerate()
        .map(|(i, p)| Transform {
            number: u8::try_from(i + 1).unwrap_or(u8::MAX),
            transform_id: KEY_IKE,
            attributes: transform_attributes(p, lifetime),
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

fn transform_attributes(p: &IkeProposal, lifetime: Duration) -> Vec<Attribute> {
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
    a.push(Attribute::basic(
        attr::ike::AUTHENTICATION_METHOD,
        attr::auth_method::PSK,
    ));
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
            let acceptable = o.auth_method == attr::auth_method::PSK
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
    (o.auth_method == attr::auth_method::PSK && cfg.ike_proposals.contains(&o.proposal))
        .then_some(o)
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

/// Vendor IDs we send: DPD, NAT-T (RFC and the drafts old peers know), fragmentation.
pub(crate) fn our_vendor_ids(role: Role, features: &PeerFeatures) -> Vec<Payload> {
    let mut v = vec![KnownVendor::Dpd];
    match role {
        Role::Initiator => v.extend([
            KnownVendor::NatTRfc3947,
            KnownVendor::NatTDraft02,
            KnownVendor::NatTDraft02N,
        ]),
        Role::Responder if features.nat_t_rfc => v.push(KnownVendor::NatTRfc3947),
        Role::Responder if features.nat_t_draft => v.push(KnownVendor::NatTDraft02N),
        Role::Responder => {}
    }
    v.into_iter()
        .map(|k| Payload::VendorId(vendor_id::vid_bytes(k)))
        .collect()
}

/// Records what the peer announced and picks the NAT-D payload type.
pub(crate) fn learn_vendor_ids(sa: &mut IkeSa, payloads: &[Payload]) {
    for p in payloads {
        if let Payload::VendorId(v) = p {
            match vendor_id::recognise(v) {
                Some(KnownVendor::Dpd) => sa.features.dpd = true,
                Some(KnownVendor::NatTRfc3947) => sa.features.nat_t_rfc = true,
                Some(k) if k.is_nat_t_draft() => sa.features.nat_t_draft = true,
                Some(KnownVendor::Fragmentation) => sa.features.fragmentation = true,
                Some(KnownVendor::CiscoUnity) => sa.features.cisco_unity = true,
                Some(KnownVendor::XAuth) => sa.features.xauth = true,
                Some(KnownVendor::StrongSwan) => sa.features.strongswan = true,
                _ => {}
            }
        }
    }
    if sa.nat_d_type.is_none() {
        sa.nat_d_type = if sa.features.nat_t_rfc {
            Some(PayloadType::NAT_D)
        } else if sa.features.nat_t_draft {
            Some(PayloadType::NAT_D_DRAFT)
        } else {
            None
        };
    }
}

/// Our NAT-D payloads: the peer's address first, then ours (RFC 3947 §3.2). With forced
/// encapsulation our own hash is deliberately wrong so both sides float.
pub(crate) fn nat_d_payloads(ctx: &mut Ctx<'_>, sa: &IkeSa, hash: IkeHash) -> Vec<Payload> {
    let Some(ty) = sa.nat_d_type else {
        return Vec::new();
    };
    let draft = ty == PayloadType::NAT_D_DRAFT;
    let c = &sa.cookies;
    let remote = crypto::nat_d(
        hash,
        &c.initiator_spi,
        &c.responder_spi,
        sa.remote.ip(),
        sa.remote.port(),
    );
    let local = if ctx.cfg.nat_traversal == crate::config::NatTraversal::Force {
        ctx.random::<20>()[..hash.output_len().min(20)].to_vec()
    } else {
        crypto::nat_d(
            hash,
            &c.initiator_spi,
            &c.responder_spi,
            sa.local.ip(),
            sa.local.port(),
        )
    };
    vec![
        Payload::NatD {
            draft,
            hash: remote,
        },
        Payload::NatD { draft, hash: local },
    ]
}

/// Compares the peer's NAT-D payloads with our view of the addresses (RFC 3947 §3.2).
pub(crate) fn detect_nat(ctx: &Ctx<'_>, sa: &mut IkeSa, hash: IkeHash, payloads: &[Payload]) {
    let hashes: Vec<&Vec<u8>> = payloads
        .iter()
        .filter_map(|x| match x {
            Payload::NatD { hash, .. } => Some(hash),
            _ => None,
        })
        .collect();
    let force = ctx.cfg.nat_traversal == crate::config::NatTraversal::Force;
    let Some((dest, sources)) = hashes.split_first() else {
        sa.nat = NatStatus {
            local_behind_nat: force,
            remote_behind_nat: false,
            floated: false,
        };
        return;
    };
    let c = &sa.cookies;
    let mine = crypto::nat_d(
        hash,
        &c.initiator_spi,
        &c.responder_spi,
        sa.local.ip(),
        sa.local.port(),
    );
    let theirs = crypto::nat_d(
        hash,
        &c.initiator_spi,
        &c.responder_spi,
        sa.remote.ip(),
        sa.remote.port(),
    );
    sa.nat.local_behind_nat = force || !crypto::ct_eq(dest, &mine);
    sa.nat.remote_behind_nat = !sources.iter().any(|s| crypto::ct_eq(s, &theirs));
}

/// Moves IKE to UDP 4500 when a NAT was detected (RFC 3947 §4).
pub(crate) fn float_if_needed(sa: &mut IkeSa) {
    if (sa.nat.local_behind_nat || sa.nat.remote_behind_nat)
        && sa.nat_d_type.is_some()
        && !sa.nat.floated
    {
        sa.nat.floated = true;
        if sa.local.port() == 500 {
            sa.local = SocketAddr::new(sa.local.ip(), 4500);
        }
        if sa.remote.port() == 500 {
            sa.remote = SocketAddr::new(sa.remote.ip(), 4500);
        }
    }
}

/// Computes g^xy, SKEYID and the derived keys once both KE and both nonces are known
/// (RFC 2409 §5, App. B). Our DH private value is not needed after this.
pub(crate) fn derive_keys(
    ctx: &Ctx<'_>,
    sa: &IkeSa,
    proposal: IkeProposal,
    ours: &OurKe,
    peer_ke: &[u8],
    peer_nonce: &[u8],
    peer_id_b: Vec<u8>,
) -> Result<Arc<Keyed>, Failure> {
    let g_xy = ours
        .dh
        .shared_secret(peer_ke)
        .map_err(|_| Failure::InvalidKeyExchange)?;
    let (g_xi, g_xr, ni, nr) = match sa.role {
        Role::Initiator => (
            ours.ke.as_slice(),
            peer_ke,
            ours.nonce.as_slice(),
            peer_nonce,
        ),
        Role::Responder => (
            peer_ke,
            ours.ke.as_slice(),
            peer_nonce,
            ours.nonce.as_slice(),
        ),
    };
    let skeyid = crypto::skeyid_psk(proposal.hash, &ctx.cfg.psk, ni, nr);
    let keys = Phase1Keys::derive(
        proposal.hash,
        proposal.cipher,
        skeyid,
        &g_xy,
        &sa.cookies.initiator_spi,
        &sa.cookies.responder_spi,
        g_xi,
        g_xr,
    );
    Ok(Arc::new(Keyed {
        proposal,
        p1_iv: keys.iv.clone(),
        keys,
        g_xi: g_xi.to_vec(),
        g_xr: g_xr.to_vec(),
        sai_b: ours.sai_b.clone(),
        peer_id_b,
    }))
}

/// A fresh DH key pair for `group`.
pub(crate) fn new_dh(ctx: &mut Ctx<'_>, group: DhGroup) -> DhPrivate {
    DhPrivate::generate(group, ctx.rng)
}

/// A 32-byte nonce (RFC 2409 §5: 8 to 256 bytes).
pub(crate) fn new_nonce(ctx: &mut Ctx<'_>) -> Vec<u8> {
    ctx.random::<32>().to_vec()
}

/// Our phase 1 ID payload. RFC 2407 §4.6.2: protocol/port may be 0 or UDP/500; we send 0.
pub(crate) fn our_id(cfg: &ConnectionConfig) -> Identification {
    Identification::new(&cfg.local_id, 0, 0)
}

/// The peer's ID must be the configured one (RFC 2409 §5: checked with the HASH).
pub(crate) fn check_peer_id(cfg: &ConnectionConfig, id: &Identification) -> Result<(), Failure> {
    let got = id.value().map_err(|e| Failure::Malformed(e.to_string()))?;
    if got == cfg.remote_id {
        Ok(())
    } else {
        Err(Failure::IdentityMismatch {
            expected: cfg.remote_id.to_string(),
            received: got.to_string(),
        })
    }
}

impl IkeSa {
    /// Checks the peer's HASH in constant time; a mismatch fails the SA with
    /// AUTHENTICATION-FAILED, naming `what` (e.g. "HASH_I in MM5").
    pub(crate) fn verify_peer_hash(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        hash: &[u8],
        id_b: &[u8],
        what: &str,
    ) -> bool {
        let expected = keys.auth_hash(&self.cookies, self.role.peer(), id_b);
        let ok = crypto::ct_eq(&expected, hash);
        if !ok {
            let reason = Failure::AuthenticationFailed {
                detail: format!("{what} does not verify"),
            };
            self.fail(
                ctx,
                reason,
                Some(crate::wire::NotifyType::AUTHENTICATION_FAILED),
            );
        }
        ok
    }
}

impl IkeSa {
    /// Sends (or resends) the UDP 4500 probe: a fresh MM1 with a cookie of its own, from our
    /// port 4500 to the peer's, offering our proposals. Any answer with that cookie proves
    /// the path passes UDP 4500; the peer's half-open state for it simply times out.
    pub fn send_udp4500_probe(&mut self, ctx: &mut Ctx<'_>) {
        if self.probe.as_ref().is_some_and(|p| p.answered) {
            return;
        }
        let probe = match self.probe.take() {
            Some(p) => p,
            None => {
                let mut cookie = ctx.random::<8>();
                if cookie == [0; 8] || cookie == self.cookies.initiator_spi {
                    cookie[0] ^= 0x5a;
                }
                let offer = offer(&ctx.cfg.ike_proposals, ctx.cfg.ike_lifetime);
                let mut payloads = vec![Payload::Sa(offer)];
                payloads.extend(our_vendor_ids(Role::Initiator, &PeerFeatures::default()));
                let mut header = self.header(ExchangeType::IDENTITY_PROTECTION, Flags(0), 0);
                header.initiator_spi = cookie;
                header.responder_spi = [0; 8];
                let data = wire::Message { header, payloads }.emit();
                Udp4500ProbeState {
                    cookie,
                    datagram: Datagram {
                        local: SocketAddr::new(self.local.ip(), 4500),
                        remote: SocketAddr::new(self.remote.ip(), self.remote.port()),
                        data,
                    },
                    answered: false,
                }
            }
        };
        ctx.event(Event::Message(MessageLog {
            direction: Direction::Sent,
            name: "PROBE",
            cookies: Cookies {
                initiator_spi: probe.cookie,
                responder_spi: [0; 8],
            },
            message_id: 0,
            payloads: "[ SA V ] (fresh MM1 to UDP 4500: does the path pass it?)".into(),
            peer: probe.datagram.remote,
            local: probe.datagram.local,
            retransmission: false,
        }));
        ctx.out.transmits.push_back(probe.datagram.clone());
        self.probe = Some(probe);
    }
}
