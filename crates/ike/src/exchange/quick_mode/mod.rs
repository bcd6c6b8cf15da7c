//! Quick Mode (RFC 2409 §5.5): QM1–QM3 with optional PFS, traffic selectors as ID payloads,
//! RESPONDER-LIFETIME (RFC 2407 §4.6.3.1) and the commit bit (RFC 2408 §4.6 / CONNECTED).

pub(crate) mod state;

pub(crate) use state::{EspChoice, QmState, QuickMode};

use std::time::Duration;

use crate::algorithm::{DhGroup, EspCipher, EspIntegrity};
use crate::config::TrafficSelector;
use crate::context::Ctx;
use crate::crypto::{self, DhPrivate, Secret};
use crate::error::InputError;
use crate::event::{ChildSa, EspEncapsulation, EspKeys, Event, Failure, Role};
use crate::exchange::payloads::{find, ke_of, nonce_of, nonce_ok, parse_protected, sa_of};
use crate::keyed::Keyed;
use crate::proposal::EspProposal;
use crate::retransmit::Retransmit;
use crate::sa::{IkeSa, InstalledChild};
use crate::time::later;
use crate::wire::{
    attr, emit_payloads, ExchangeType, Flags, Header, Identification, Notification, NotifyType,
    Payload, PayloadType, Proposal, ProtocolId, SaPayload, Transform, IPSEC_DOI,
};

/// Quick Modes in flight per ISAKMP SA; more QM1s are dropped.
const MAX_QUICK_MODES: usize = 32;
/// Lifetime assumed when a proposal carries none (RFC 2407 §4.5).
const DEFAULT_ESP_LIFETIME: Duration = Duration::from_secs(28800);
/// How long a finished exchange is kept to answer retransmissions.
const LINGER: Duration = Duration::from_secs(60);
/// CONNECTED notify (RFC 2408 §3.14.1), the answer to the commit bit.
const CONNECTED: NotifyType = NotifyType(16384);

/// A decrypted Quick Mode message: its payloads, the bytes after HASH, and the HASH.
struct Opened {
    payloads: Vec<Payload>,
    rest: Vec<u8>,
    hash: Vec<u8>,
}

/// Encapsulation mode attribute for our side (RFC 3947 §5.2; drafts use 61443).
fn encap_mode(sa: &IkeSa) -> u16 {
    match (sa.nat.floated, sa.nat_d_type) {
        (true, Some(PayloadType::NAT_D_DRAFT)) => attr::encap_mode::UDP_TUNNEL_DRAFT,
        (true, _) => attr::encap_mode::UDP_TUNNEL,
        (false, _) => attr::encap_mode::TUNNEL,
    }
}

fn is_tunnel_mode(m: u16) -> bool {
    matches!(
        m,
        attr::encap_mode::TUNNEL
            | attr::encap_mode::UDP_TUNNEL
            | attr::encap_mode::UDP_TUNNEL_DRAFT
    )
}

fn is_udp_mode(m: u16) -> bool {
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

fn describe_esp(sa: &SaPayload) -> String {
    let mut v = Vec::new();
    for p in &sa.proposals {
        for t in &p.transforms {
            match read_esp_transform(t) {
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

fn describe_esp_ours(ps: &[EspProposal]) -> String {
    ps.iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// RESPONDER-LIFETIME data: life type/duration attributes (RFC 2407 §4.6.3.1).
fn lifetime_attributes(lifetime: Duration) -> Vec<u8> {
    let mut out = vec![0x80, 0x01, 0x00, 0x01];
    let secs = u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX);
    out.extend_from_slice(&[0x00, 0x02, 0x00, 0x04]);
    out.extend_from_slice(&secs.to_be_bytes());
    out
}

/// Reads the seconds out of RESPONDER-LIFETIME data; bounded, never panics.
fn parse_lifetime_attributes(mut data: &[u8]) -> Option<Duration> {
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

/// The PFS exchange of a Quick Mode (RFC 2409 §5.5): our DH pair against the peer's KE.
enum Pfs {
    /// Neither side sent KE.
    Off,
    /// g^xy of the Quick Mode, hashed into KEYMAT.
    On(Secret),
    /// The peer's public value is not a valid one of the group.
    Invalid,
    /// Only one side has a KE.
    OneSided,
}

fn pfs_secret(dh: Option<&DhPrivate>, ke: Option<&Vec<u8>>) -> Pfs {
    match (dh, ke) {
        (Some(dh), Some(ke)) => dh.shared_secret(ke).map_or(Pfs::Invalid, Pfs::On),
        (None, None) => Pfs::Off,
        _ => Pfs::OneSided,
    }
}

/// SPIs 1–255 are reserved (RFC 4303 §2.1).
fn new_spi(ctx: &mut Ctx<'_>) -> u32 {
    loop {
        let spi = u32::from_be_bytes(ctx.random::<4>());
        if spi > 255 {
            return spi;
        }
    }
}

fn ids_of(payloads: &[Payload]) -> Vec<&Identification> {
    payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Identification(i) => Some(i),
            _ => None,
        })
        .collect()
}

fn selector(id: &Identification) -> Option<TrafficSelector> {
    TrafficSelector::from_id_value(&id.value().ok()?, id.protocol, id.port)
}

impl IkeSa {
    /// QM1: HDR*, HASH(1), SA, Ni [, KE] , IDci, IDcr.
    pub(crate) fn quick_mode_initiate(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        child_index: usize,
        replaces: Option<u32>,
    ) {
        let Some(child) = ctx.cfg.children.get(child_index).copied() else {
            return;
        };
        let message_id = ctx.message_id();
        let iv = keys.phase2_iv(message_id);
        let spi_in = new_spi(ctx);
        let ni = ctx.random::<32>().to_vec();
        let pfs = ctx.cfg.esp_proposals.first().and_then(|p| p.pfs_group);
        let dh = pfs.map(|g| DhPrivate::generate(g, ctx.rng));
        let mode = encap_mode(self);
        let offer = esp_offer(
            &ctx.cfg.esp_proposals,
            spi_in,
            mode,
            ctx.cfg.esp_lifetime,
            ctx.cfg.esp_lifetime_kb,
        );
        let mut rest = vec![Payload::Sa(offer), Payload::Nonce(ni.clone())];
        if let Some(dh) = &dh {
            rest.push(Payload::KeyExchange(dh.public_value()));
        }
        rest.push(Payload::Identification(Identification::new(
            &child.local_ts.to_id_value(),
            child.local_ts.protocol,
            child.local_ts.port,
        )));
        rest.push(Payload::Identification(Identification::new(
            &child.remote_ts.to_id_value(),
            child.remote_ts.protocol,
            child.remote_ts.port,
        )));
        let mut qm = QuickMode::new(
            message_id,
            Role::Initiator,
            QmState::I1Sent,
            iv,
            child_index,
            &child,
            spi_in,
            ni,
        );
        (qm.dh, qm.replaces) = (dh, replaces);
        let flags = if ctx.cfg.request_commit {
            Flags(Flags::COMMIT)
        } else {
            Flags(0)
        };
        match self.seal_qm(ctx, keys, &mut qm, "QM1", rest, None, flags, true) {
            Ok(()) => self.quick_modes.push(qm),
            Err(f) => self.child_failed(ctx, message_id, f),
        }
    }

    /// Builds HASH + `rest`, encrypts with the exchange's IV chain and sends it.
    #[allow(clippy::too_many_arguments)]
    fn seal_qm(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        qm: &mut QuickMode,
        name: &'static str,
        rest: Vec<Payload>,
        ni_for_hash2: Option<&[u8]>,
        flags: Flags,
        retransmit: bool,
    ) -> Result<(), Failure> {
        let mut rest = rest;
        self.tamper(ctx, name, qm.message_id, &mut rest);
        let (h, skeyid_a) = (keys.hash(), keys.skeyid_a());
        let mut rest_bytes = Vec::new();
        emit_payloads(&rest, &mut rest_bytes);
        let hash = match (name, ni_for_hash2) {
            ("QM3", _) => crypto::qm_hash3(h, skeyid_a, qm.message_id, &qm.ni, &qm.nr),
            (_, Some(ni)) => crypto::qm_hash2(h, skeyid_a, qm.message_id, ni, &rest_bytes),
            _ => keys.hash1(qm.message_id, &rest_bytes),
        };
        let mut payloads = vec![Payload::Hash(hash.to_vec())];
        payloads.extend(rest);
        let header = self.header(ExchangeType::QUICK_MODE, flags, qm.message_id);
        let (data, last) = keys.seal(header, &payloads, &qm.iv)?;
        qm.iv = last;
        let sent = self.send(ctx, name, &payloads, data, qm.message_id, false);
        if retransmit {
            qm.retransmit = Some(Retransmit::new(
                ctx,
                sent.clone(),
                name,
                &payloads,
                qm.message_id,
            ));
        }
        qm.replies.set_reply(Some(sent));
        Ok(())
    }

    /// A Quick Mode message: a new QM1, or the next message of one in flight.
    pub(crate) fn quick_mode_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let keys = match self.established_keys() {
            Some(k) if header.flags.contains(Flags::ENCRYPTION) => k,
            _ => {
                return Err(InputError::Unexpected(
                    "Quick Mode before phase 1 completed",
                ))
            }
        };
        let idx = match self
            .quick_modes
            .iter()
            .position(|q| q.message_id == header.message_id)
        {
            Some(i) => i,
            None => {
                if self.quick_modes.len() >= MAX_QUICK_MODES {
                    return Err(InputError::Unexpected("too many Quick Modes in flight"));
                }
                let iv = keys.phase2_iv(header.message_id);
                return self.qm1_received(ctx, &keys, header, datagram, iv);
            }
        };
        let mut qm = self.quick_modes.swap_remove(idx);
        if let Some(reply) = qm.replies.lookup(datagram) {
            if let Some(r) = reply {
                ctx.out.transmits.push_back(r.clone());
            }
            // A repeat of a message we answered: the peer is alive (RFC 3706 §5.5 idle only).
            self.last_heard = ctx.now;
            self.dpd.outstanding = None;
            self.quick_modes.push(qm);
            return Err(InputError::Duplicate);
        }
        let result = match (qm.role, qm.state) {
            (Role::Initiator, QmState::I1Sent) => {
                self.qm2_received(ctx, &keys, header, datagram, &mut qm)
            }
            (Role::Responder, QmState::R2Sent) => {
                self.qm3_received(ctx, &keys, header, datagram, &mut qm)
            }
            (Role::Initiator, QmState::AwaitConnected) => {
                self.qm_connected_received(ctx, &keys, header, datagram, &mut qm)
            }
            _ => Err(InputError::Unexpected("Quick Mode already complete")),
        };
        self.quick_modes.push(qm);
        result
    }

    /// Decrypts a QM message with the exchange's IV and checks it starts with HASH.
    fn open_qm(
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        iv: &mut Vec<u8>,
    ) -> Result<Opened, InputError> {
        let (body, last) = keys.open(datagram, iv)?;
        let (payloads, rest) = parse_protected(header.next_payload, &body)?;
        let Some(Payload::Hash(h)) = payloads.first() else {
            return Err(InputError::Missing(PayloadType::HASH));
        };
        let hash = h.clone();
        *iv = last;
        Ok(Opened {
            payloads,
            rest,
            hash,
        })
    }

    /// Opens the next message of a Quick Mode in flight (QM2, QM3, CONNECTED) on its IV chain
    /// and checks its HASH against `expected` of the bytes after it (RFC 2409 §5.5); the chain
    /// advances only for a message that verifies.
    #[allow(clippy::too_many_arguments)]
    fn open_qm_answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
        name: &'static str,
        expected: impl FnOnce(&QuickMode, &[u8]) -> Secret,
    ) -> Result<Vec<Payload>, InputError> {
        let mut iv = qm.iv.clone();
        let Opened {
            payloads,
            rest,
            hash,
        } = Self::open_qm(keys, header, datagram, &mut iv)?;
        if !crypto::ct_eq(&expected(qm, &rest), &hash) {
            return Err(InputError::BadHash(name));
        }
        qm.iv = iv;
        self.log_received(ctx, name, header, &payloads);
        self.last_heard = ctx.now;
        Ok(payloads)
    }

    /// Reports a Quick Mode that ended without an IPsec SA.
    fn child_failed(&self, ctx: &mut Ctx<'_>, message_id: u32, reason: Failure) {
        ctx.event(Event::ChildSaFailed {
            conn: self.conn,
            cookies: self.cookies,
            message_id,
            reason,
        });
    }

    /// QM1 → QM2 as responder.
    fn qm1_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        mut iv: Vec<u8>,
    ) -> Result<(), InputError> {
        // Authenticate from the generic payload headers first: a QM1 whose payloads do not
        // decode (strongSwan's proposal without transforms for an ESP cipher IKEv1 cannot
        // name) is still the peer's, and gets a protected answer instead of silence.
        if !keys.hash1_verifies(header, datagram, &iv)? {
            // RFC 2409 §5.5: tell the peer, at most once a second (the cookies are public).
            if self
                .hash_notify_at
                .is_none_or(|t| ctx.now >= later(t, Duration::from_secs(1)))
            {
                self.hash_notify_at = Some(ctx.now);
                let n = Payload::Notification(Notification {
                    doi: IPSEC_DOI,
                    protocol: ProtocolId::ESP,
                    notify_type: NotifyType::INVALID_HASH_INFORMATION,
                    spi: Vec::new(),
                    data: Vec::new(),
                });
                let _ = self.send_informational(ctx, keys, vec![n]);
            }
            return Err(InputError::BadHash("QM1"));
        }
        let payloads = match Self::open_qm(keys, header, datagram, &mut iv) {
            Ok(o) => o.payloads,
            Err(InputError::Wire(e)) => {
                self.log_received(ctx, "QM1", header, &[]);
                let reason = format!("QM1 cannot be processed: {e}");
                self.refuse(
                    ctx,
                    "QM1",
                    header.message_id,
                    reason,
                    Some((ProtocolId::ESP, e.notify())),
                    false,
                );
                return Err(InputError::Wire(e));
            }
            Err(e) => return Err(e),
        };
        self.log_received(ctx, "QM1", header, &payloads);
        self.last_heard = ctx.now;
        let message_id = header.message_id;
        let fail = |sa: &mut IkeSa,
                    ctx: &mut Ctx<'_>,
                    reason: Failure,
                    notify: NotifyType,
                    spi: Vec<u8>| {
            let n = Payload::Notification(Notification {
                doi: IPSEC_DOI,
                protocol: ProtocolId::ESP,
                notify_type: notify,
                spi,
                data: Vec::new(),
            });
            let _ = sa.send_informational(ctx, keys, vec![n]);
            sa.child_failed(ctx, message_id, reason);
        };
        let offer = find(&payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        let ni = find(&payloads, nonce_of)
            .ok_or(InputError::Missing(PayloadType::NONCE))?
            .clone();
        if !nonce_ok(&ni) {
            return Err(InputError::Unexpected("nonce length out of range"));
        }
        let ids = ids_of(&payloads);
        let (theirs_local, theirs_remote) = match ids.as_slice() {
            [] => (
                Some(TrafficSelector::host(self.remote.ip())),
                Some(TrafficSelector::host(self.local.ip())),
            ),
            [ci, cr] => (selector(ci), selector(cr)),
            _ => {
                return Err(InputError::Unexpected(
                    "Quick Mode needs zero or two ID payloads",
                ))
            }
        };
        let child_index = match (theirs_local, theirs_remote) {
            (Some(ci), Some(cr)) => ctx
                .cfg
                .children
                .iter()
                .position(|c| c.remote_ts.normalized() == ci && c.local_ts.normalized() == cr),
            _ => None,
        };
        let Some(child_index) = child_index else {
            let show = |t: Option<TrafficSelector>| {
                t.map_or("(unsupported ID)".to_string(), |t| t.to_string())
            };
            let ours = ctx
                .cfg
                .children
                .iter()
                .map(|c| format!("{} === {}", c.local_ts, c.remote_ts))
                .collect::<Vec<_>>()
                .join(", ");
            let reason = Failure::InvalidSelectors {
                ours,
                theirs: format!("{} === {}", show(theirs_remote), show(theirs_local)),
            };
            fail(
                self,
                ctx,
                reason,
                NotifyType::INVALID_ID_INFORMATION,
                Vec::new(),
            );
            return Ok(());
        };
        // Choose the peer's first transform that matches one of our proposals exactly.
        let mut chosen = None;
        'outer: for prop in &offer.proposals {
            if prop.protocol != ProtocolId::ESP || prop.spi.len() != 4 {
                continue;
            }
            for t in &prop.transforms {
                if let Some(c) = read_esp_transform(t) {
                    if is_tunnel_mode(c.encap_mode) && ctx.cfg.esp_proposals.contains(&c.proposal) {
                        chosen = Some((prop, t, c));
                        break 'outer;
                    }
                }
            }
        }
        let Some((prop, transform, mut choice)) = chosen else {
            let reason = Failure::NoProposalChosen {
                ours: describe_esp_ours(&ctx.cfg.esp_proposals),
                theirs: describe_esp(offer),
            };
            fail(
                self,
                ctx,
                reason,
                NotifyType::NO_PROPOSAL_CHOSEN,
                Vec::new(),
            );
            return Ok(());
        };
        let spi_out = u32::from_be_bytes(
            prop.spi
                .as_slice()
                .try_into()
                .map_err(|_| InputError::Unexpected("SPI size"))?,
        );
        let peer_ke = find(&payloads, ke_of);
        let dh = match (choice.proposal.pfs_group, peer_ke) {
            (Some(g), Some(ke)) if ke.len() == g.public_len() => {
                Some(DhPrivate::generate(g, ctx.rng))
            }
            (None, None) => None,
            _ => {
                let reason = Failure::NoProposalChosen {
                    ours: describe_esp_ours(&ctx.cfg.esp_proposals),
                    theirs: format!(
                        "{} (KE payload inconsistent with PFS group)",
                        describe_esp(offer)
                    ),
                };
                fail(
                    self,
                    ctx,
                    reason,
                    NotifyType::NO_PROPOSAL_CHOSEN,
                    Vec::new(),
                );
                return Ok(());
            }
        };
        let g_qm_xy = match pfs_secret(dh.as_ref(), peer_ke) {
            Pfs::On(s) => Some(s),
            Pfs::Invalid => {
                fail(
                    self,
                    ctx,
                    Failure::InvalidKeyExchange,
                    NotifyType::INVALID_KEY_INFORMATION,
                    Vec::new(),
                );
                return Ok(());
            }
            Pfs::Off | Pfs::OneSided => None,
        };
        let spi_in = new_spi(ctx);
        let nr = ctx.random::<32>().to_vec();
        let mut rest = vec![
            Payload::Sa(SaPayload {
                doi: offer.doi,
                situation: offer.situation,
                proposals: vec![Proposal {
                    number: prop.number,
                    protocol: ProtocolId::ESP,
                    spi: spi_in.to_be_bytes().to_vec(),
                    transforms: vec![transform.clone()],
                }],
            }),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(dh) = &dh {
            rest.push(Payload::KeyExchange(dh.public_value()));
        }
        for id in &ids {
            rest.push(Payload::Identification((*id).clone()));
        }
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
            rest.push(Payload::Notification(Notification {
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
        let commit = header.flags.contains(Flags::COMMIT);
        let child = ctx
            .cfg
            .children
            .get(child_index)
            .copied()
            .ok_or(InputError::Unexpected("child"))?;
        let mut qm = QuickMode::new(
            message_id,
            Role::Responder,
            QmState::R2Sent,
            iv,
            child_index,
            &child,
            spi_in,
            ni.clone(),
        );
        (qm.spi_out, qm.nr, qm.dh, qm.g_qm_xy) = (spi_out, nr, dh, g_qm_xy);
        (qm.choice, qm.commit) = (Some(choice), commit);
        let flags = if commit {
            Flags(Flags::COMMIT)
        } else {
            Flags(0)
        };
        self.seal_qm(ctx, keys, &mut qm, "QM2", rest, Some(&ni), flags, true)
            .map_err(|_| InputError::Unexpected("seal"))?;
        qm.replies.remember_request(datagram);
        if let Ok(child) = self.child_sa(ctx, keys, &qm) {
            ctx.event(Event::ChildSaInboundReady(child));
        }
        self.quick_modes.push(qm);
        Ok(())
    }

    /// QM2 → QM3 as initiator; installs the SA pair (or waits for CONNECTED).
    fn qm2_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
    ) -> Result<(), InputError> {
        let payloads =
            self.open_qm_answer(ctx, keys, header, datagram, qm, "QM2", |qm, rest| {
                crypto::qm_hash2(keys.hash(), keys.skeyid_a(), qm.message_id, &qm.ni, rest)
            })?;
        qm.retransmit = None;
        let answer = find(&payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        let nr = find(&payloads, nonce_of)
            .ok_or(InputError::Missing(PayloadType::NONCE))?
            .clone();
        let fail_qm = |sa: &IkeSa, ctx: &mut Ctx<'_>, qm: &mut QuickMode, reason: Failure| {
            sa.child_failed(ctx, qm.message_id, reason);
            qm.state = QmState::Done;
            qm.expires = Some(later(ctx.now, LINGER));
        };
        let choice = match (answer.proposals.as_slice(), nonce_ok(&nr)) {
            ([prop], true) if prop.protocol == ProtocolId::ESP && prop.spi.len() == 4 => {
                match prop.transforms.as_slice() {
                    [t] => read_esp_transform(t)
                        .filter(|c| ctx.cfg.esp_proposals.contains(&c.proposal))
                        .map(|c| (c, prop.spi.clone())),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some((mut choice, spi)) = choice else {
            let reason = Failure::NoProposalChosen {
                ours: describe_esp_ours(&ctx.cfg.esp_proposals),
                theirs: describe_esp(answer),
            };
            fail_qm(self, ctx, qm, reason);
            return Ok(());
        };
        // RFC 2409 §4.5: the responder may lower our lifetimes, never raise them.
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
        let ids = ids_of(&payloads);
        if let [ci, cr] = ids.as_slice() {
            if selector(ci) != Some(qm.local_ts.normalized())
                || selector(cr) != Some(qm.remote_ts.normalized())
            {
                let reason = Failure::InvalidSelectors {
                    ours: format!("{} === {}", qm.local_ts, qm.remote_ts),
                    theirs: format!(
                        "{} === {} (narrowed by the responder)",
                        selector(ci).map(|s| s.to_string()).unwrap_or_default(),
                        selector(cr).map(|s| s.to_string()).unwrap_or_default()
                    ),
                };
                fail_qm(self, ctx, qm, reason);
                return Ok(());
            }
        }
        for pl in &payloads {
            if let Payload::Notification(n) = pl {
                if n.notify_type == NotifyType::RESPONDER_LIFETIME {
                    if let Some(l) = parse_lifetime_attributes(&n.data) {
                        choice.lifetime = choice.lifetime.min(l);
                    }
                }
            }
        }
        qm.g_qm_xy = match pfs_secret(qm.dh.as_ref(), find(&payloads, ke_of)) {
            Pfs::Off => None,
            Pfs::On(s) => Some(s),
            Pfs::Invalid => {
                fail_qm(self, ctx, qm, Failure::InvalidKeyExchange);
                return Ok(());
            }
            Pfs::OneSided => {
                fail_qm(
                    self,
                    ctx,
                    qm,
                    Failure::NoProposalChosen {
                        ours: describe_esp_ours(&ctx.cfg.esp_proposals),
                        theirs: "answer without the KE payload PFS needs".into(),
                    },
                );
                return Ok(());
            }
        };
        qm.spi_out = u32::from_be_bytes(
            spi.as_slice()
                .try_into()
                .map_err(|_| InputError::Unexpected("SPI size"))?,
        );
        qm.nr = nr;
        qm.choice = Some(choice);
        // With the commit bit QM3 is resent until CONNECTED arrives: a lost QM4 is recovered
        // by the responder answering the repeated QM3 from its reply cache.
        let commit = header.flags.contains(Flags::COMMIT);
        self.seal_qm(ctx, keys, qm, "QM3", Vec::new(), None, Flags(0), commit)
            .map_err(|_| InputError::Unexpected("seal"))?;
        qm.replies.remember_request(datagram);
        let child = self
            .child_sa(ctx, keys, qm)
            .map_err(|_| InputError::Unexpected("keys"))?;
        qm.expires = Some(later(ctx.now, LINGER));
        if commit {
            qm.pending = Some(child);
            qm.state = QmState::AwaitConnected;
        } else {
            qm.state = QmState::Done;
            self.install_child(ctx, qm, child);
        }
        Ok(())
    }

    /// QM3 as responder: install; answer the commit bit with CONNECTED.
    fn qm3_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
    ) -> Result<(), InputError> {
        self.open_qm_answer(ctx, keys, header, datagram, qm, "QM3", |qm, _| {
            crypto::qm_hash3(keys.hash(), keys.skeyid_a(), qm.message_id, &qm.ni, &qm.nr)
        })?;
        qm.retransmit = None;
        qm.replies.remember_request(datagram);
        qm.replies.set_reply(None);
        let child = self
            .child_sa(ctx, keys, qm)
            .map_err(|_| InputError::Unexpected("keys"))?;
        if qm.commit {
            let n = Payload::Notification(Notification {
                doi: IPSEC_DOI,
                protocol: ProtocolId::ESP,
                notify_type: CONNECTED,
                spi: qm.spi_out.to_be_bytes().to_vec(),
                data: Vec::new(),
            });
            let _ = self.seal_qm(
                ctx,
                keys,
                qm,
                "QM4",
                vec![n],
                None,
                Flags(Flags::COMMIT),
                false,
            );
        }
        qm.state = QmState::Done;
        qm.expires = Some(later(ctx.now, LINGER));
        self.install_child(ctx, qm, child);
        Ok(())
    }

    /// CONNECTED after a commit-bit QM2: now the initiator may use the SA.
    fn qm_connected_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
    ) -> Result<(), InputError> {
        let payloads =
            self.open_qm_answer(ctx, keys, header, datagram, qm, "QM4", |qm, rest| {
                keys.hash1(qm.message_id, rest)
            })?;
        let connected = payloads
            .iter()
            .any(|p| matches!(p, Payload::Notification(n) if n.notify_type == CONNECTED));
        if let (true, Some(child)) = (connected, qm.pending.take()) {
            qm.retransmit = None;
            qm.state = QmState::Done;
            self.install_child(ctx, qm, child);
        }
        Ok(())
    }

    /// KEYMAT for both directions (RFC 2409 §5.5): each keyed by the SPI its receiver chose.
    fn child_sa(&self, ctx: &Ctx<'_>, keys: &Keyed, qm: &QuickMode) -> Result<ChildSa, Failure> {
        let choice = qm
            .choice
            .ok_or(Failure::Malformed("no ESP choice".into()))?;
        let cipher_len = choice.proposal.cipher.keymat_len();
        let len = cipher_len + choice.proposal.integrity.map_or(0, |i| i.key_len());
        let (ni, nr) = (&qm.ni, &qm.nr);
        let g = qm.g_qm_xy.as_ref().map(|s| s.as_slice());
        let direction = |spi: u32| {
            let km = crypto::keymat(
                keys.hash(),
                &keys.keys.skeyid_d,
                g,
                ProtocolId::ESP.0,
                &spi.to_be_bytes(),
                ni,
                nr,
                len,
            );
            let (e, a) = km.split_at(cipher_len.min(km.len()));
            EspKeys {
                spi,
                enc_key: Secret::new(e.to_vec()),
                auth_key: Secret::new(a.to_vec()),
            }
        };
        let encapsulation = if is_udp_mode(choice.encap_mode) || self.nat.floated {
            EspEncapsulation::Udp {
                local_port: self.local.port(),
                remote_port: self.remote.port(),
            }
        } else {
            EspEncapsulation::Raw
        };
        Ok(ChildSa {
            conn: self.conn,
            ike: self.cookies,
            message_id: qm.message_id,
            local: self.local,
            remote: self.remote,
            local_ts: qm.local_ts,
            remote_ts: qm.remote_ts,
            cipher: choice.proposal.cipher,
            integrity: choice.proposal.integrity,
            esn: choice.proposal.esn,
            pfs: choice.proposal.pfs_group,
            encapsulation,
            inbound: direction(qm.spi_in),
            outbound: direction(qm.spi_out),
            lifetime: choice.lifetime,
            lifetime_kb: choice.lifetime_kb.or(ctx.cfg.esp_lifetime_kb),
        })
    }

    fn install_child(&mut self, ctx: &mut Ctx<'_>, qm: &QuickMode, child: ChildSa) {
        self.children.push(InstalledChild {
            message_id: qm.message_id,
            child_index: qm.child_index,
            spi_in: qm.spi_in,
            spi_out: qm.spi_out,
            established: ctx.now,
            lifetime: child.lifetime,
            initiated_by_us: qm.role == Role::Initiator,
            rekey_started: false,
            retire_at: None,
            peer_deleted: false,
            expired: false,
        });
        ctx.event(Event::ChildSaEstablished(child));
        // Make-before-break: the new pair carries outbound traffic from now on; the old one is
        // deleted (both sides) only after a drain time, so packets the peer sent under the old
        // SPI before it learnt of the new SA still arrive (strongSwan: delete_rekeyed_delay).
        if let Some(old) = qm.replaces {
            let retire = later(ctx.now, ctx.settings.rekeyed_drain);
            if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == old) {
                c.retire_at = Some(retire);
            }
        }
    }

    /// Resends QMs in flight, gives up on silent ones, forgets finished ones.
    pub(crate) fn quick_mode_timers(&mut self, ctx: &mut Ctx<'_>) {
        let cookies = self.cookies;
        let conn = self.conn;
        let mut i = 0;
        while let Some(qm) = self.quick_modes.get_mut(i) {
            if let Some(r) = qm.retransmit.as_mut() {
                if let Err((name, tries)) = r.due(ctx, cookies) {
                    ctx.event(Event::ChildSaFailed {
                        conn,
                        cookies,
                        message_id: qm.message_id,
                        reason: Failure::NoResponse {
                            message: name,
                            tries,
                        },
                    });
                    qm.retransmit = None;
                    qm.state = QmState::Done;
                    qm.expires = Some(ctx.now);
                }
            }
            if qm.expires.is_some_and(|t| ctx.now >= t) && qm.retransmit.is_none() {
                self.quick_modes.swap_remove(i);
                continue;
            }
            i += 1;
        }
    }
}
