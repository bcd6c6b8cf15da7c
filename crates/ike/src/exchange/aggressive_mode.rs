//! Aggressive Mode with pre-shared keys (RFC 2409 §5, §5.4): AM1–AM3. The group cannot be
//! negotiated (KE travels in AM1) and the responder's HASH_R is sent in the clear, which is why
//! answering it is an opt-in.

use std::sync::Arc;

use crate::context::Ctx;
use crate::error::InputError;
use crate::event::{Failure, Role};
use crate::exchange::payloads::{
    find, hash_of, id_body, id_of, ke_of, nonce_of, nonce_ok, raw_body, sa_of,
};
use crate::exchange::phase1;
use crate::keyed::Keyed;
use crate::sa::{IkeSa, Phase1State};
use crate::wire::{self, ExchangeType, Flags, Header, NotifyType, Payload, PayloadType};

impl IkeSa {
    /// AM1: HDR, SA, KE, Ni, IDii, VID… — only proposals with the first proposal's group.
    pub(crate) fn aggressive_mode_initiate(&mut self, ctx: &mut Ctx<'_>) {
        let Some(group) = ctx.cfg.ike_proposals.first().map(|p| p.group) else {
            return;
        };
        let same_group: Vec<_> = ctx
            .cfg
            .ike_proposals
            .iter()
            .copied()
            .filter(|p| p.group == group)
            .collect();
        let offer = phase1::offer(&same_group, ctx.cfg.ike_lifetime);
        let mut sai_b = Vec::new();
        Payload::Sa(offer.clone()).emit_body(&mut sai_b);
        let dh = phase1::new_dh(ctx, group);
        let (g_xi, ni) = (dh.public_value(), phase1::new_nonce(ctx));
        if let Some(n) = self.negotiation() {
            (n.sai_b, n.dh, n.g_xi, n.ni) = (sai_b, Some(dh), g_xi.clone(), ni.clone());
        }
        let mut payloads = vec![
            Payload::Sa(offer),
            Payload::KeyExchange(g_xi),
            Payload::Nonce(ni),
            Payload::Identification(phase1::our_id(ctx.cfg)),
        ];
        payloads.extend(phase1::our_vendor_ids(Role::Initiator, &self.features));
        let data = self.plain_message(ExchangeType::AGGRESSIVE, 0, &payloads);
        self.send(ctx, "AM1", &payloads, data, 0, true);
    }

    pub(crate) fn aggressive_mode_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let keys = self.keyed();
        match (self.state, keys) {
            (Phase1State::AmR2Sent, None) if self.first_message_pending() => {
                self.am1_received(ctx, header, datagram)
            }
            (Phase1State::AmI1Sent, None) => self.am2_received(ctx, header, datagram),
            (Phase1State::AmR2Sent, Some(k)) => self.am3_received(ctx, k, header, datagram),
            (s, _) => Err(InputError::Unexpected(s.name())),
        }
    }

    /// AM1 → AM2: choose, derive keys, authenticate ourselves first.
    fn am1_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let msg = wire::Message::parse(datagram)?;
        self.log_received(ctx, "AM1", header, &msg.payloads);
        if !ctx.cfg.allow_aggressive_psk {
            self.fail(
                ctx,
                Failure::AggressiveModeRefused,
                Some(NotifyType::AUTHENTICATION_FAILED),
            );
            return Ok(());
        }
        let offer = find(&msg.payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        let ke = find(&msg.payloads, ke_of).ok_or(InputError::Missing(PayloadType::KE))?;
        let ni = find(&msg.payloads, nonce_of).ok_or(InputError::Missing(PayloadType::NONCE))?;
        let id = find(&msg.payloads, id_of).ok_or(InputError::Missing(PayloadType::ID))?;
        self.negotiating()?.sai_b = raw_body(header.next_payload, datagram, PayloadType::SA)?;
        self.negotiating()?.peer_id_b = raw_body(header.next_payload, datagram, PayloadType::ID)?;
        self.peer_offer = phase1::describe_offer(offer);
        phase1::learn_vendor_ids(self, &msg.payloads);
        let Some((chosen, reply)) = phase1::choose(ctx.cfg, offer, None) else {
            let reason = Failure::NoProposalChosen {
                ours: phase1::describe_ours(ctx.cfg),
                theirs: self.peer_offer.clone(),
            };
            self.fail(ctx, reason, Some(NotifyType::NO_PROPOSAL_CHOSEN));
            return Ok(());
        };
        if ke.len() != chosen.proposal.group.public_len() || !nonce_ok(ni) {
            self.fail(
                ctx,
                Failure::InvalidKeyExchange,
                Some(NotifyType::INVALID_KEY_INFORMATION),
            );
            return Ok(());
        }
        if let Err(f) = phase1::check_peer_id(ctx.cfg, id) {
            self.fail(ctx, f, Some(NotifyType::INVALID_ID_INFORMATION));
            return Ok(());
        }
        self.negotiating()?.proposal = Some(chosen.proposal);
        self.adopt_lifetime(ctx, &chosen);
        let dh = phase1::new_dh(ctx, chosen.proposal.group);
        let (g_xr, nr) = (dh.public_value(), phase1::new_nonce(ctx));
        let n = self.negotiating()?;
        (n.g_xi, n.ni) = (ke.clone(), ni.clone());
        (n.dh, n.g_xr, n.nr) = (Some(dh), g_xr.clone(), nr.clone());
        let keys = match phase1::derive_keys(ctx, self) {
            Ok(k) => k,
            Err(f) => {
                self.fail(ctx, f, Some(NotifyType::INVALID_KEY_INFORMATION));
                return Ok(());
            }
        };
        let our = phase1::our_id(ctx.cfg);
        let hash_r = keys.auth_hash(&self.cookies, self.role, &id_body(&our));
        let mut payloads = vec![
            Payload::Sa(reply),
            Payload::KeyExchange(g_xr),
            Payload::Nonce(nr),
            Payload::Identification(our),
            Payload::Hash(hash_r.to_vec()),
        ];
        payloads.extend(phase1::our_vendor_ids(Role::Responder, &self.features));
        payloads.extend(phase1::nat_d_payloads(ctx, self));
        self.tamper(ctx, "AM2", 0, &mut payloads);
        let data = self.plain_message(ExchangeType::AGGRESSIVE, 0, &payloads);
        let sent = self.send(ctx, "AM2", &payloads, data, 0, false);
        self.replies.remember(datagram, Some(sent));
        Ok(())
    }

    /// AM2 → AM3: verify the responder, detect NAT, authenticate ourselves (encrypted).
    fn am2_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let msg = wire::Message::parse(datagram)?;
        self.log_received(ctx, "AM2", header, &msg.payloads);
        let answer = find(&msg.payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        phase1::learn_vendor_ids(self, &msg.payloads);
        let group = self.negotiating()?.dh.as_ref().map(|d| d.group());
        let chosen = match phase1::accept_choice(ctx.cfg, answer) {
            Some(c) if Some(c.proposal.group) == group => c,
            _ => {
                let reason = Failure::NoProposalChosen {
                    ours: phase1::describe_ours(ctx.cfg),
                    theirs: phase1::describe_offer(answer),
                };
                self.fail(ctx, reason, Some(NotifyType::NO_PROPOSAL_CHOSEN));
                return Ok(());
            }
        };
        let ke = find(&msg.payloads, ke_of).ok_or(InputError::Missing(PayloadType::KE))?;
        let nr = find(&msg.payloads, nonce_of).ok_or(InputError::Missing(PayloadType::NONCE))?;
        let id = find(&msg.payloads, id_of).ok_or(InputError::Missing(PayloadType::ID))?;
        let hash = find(&msg.payloads, hash_of).ok_or(InputError::Missing(PayloadType::HASH))?;
        if ke.len() != chosen.proposal.group.public_len() || !nonce_ok(nr) {
            self.fail(
                ctx,
                Failure::InvalidKeyExchange,
                Some(NotifyType::INVALID_KEY_INFORMATION),
            );
            return Ok(());
        }
        let n = self.negotiating()?;
        (n.proposal, n.g_xr, n.nr) = (Some(chosen.proposal), ke.clone(), nr.clone());
        self.adopt_lifetime(ctx, &chosen);
        let mut keys = match phase1::derive_keys(ctx, self) {
            Ok(k) => k,
            Err(f) => {
                self.fail(ctx, f, Some(NotifyType::INVALID_KEY_INFORMATION));
                return Ok(());
            }
        };
        if !self.verify_peer_hash(ctx, &keys, hash, &id_body(id), "HASH_R in AM2") {
            return Ok(());
        }
        if let Err(f) = phase1::check_peer_id(ctx.cfg, id) {
            self.fail(ctx, f, Some(NotifyType::INVALID_ID_INFORMATION));
            return Ok(());
        }
        phase1::detect_nat(ctx, self, &msg.payloads);
        let nat_d = phase1::nat_d_payloads(ctx, self);
        phase1::float_if_needed(self);
        let our = phase1::our_id(ctx.cfg);
        let hash_i = keys.auth_hash(&self.cookies, self.role, &id_body(&our));
        let mut payloads = vec![Payload::Hash(hash_i.to_vec())];
        payloads.extend(nat_d);
        if ctx.cfg.initial_contact && !self.is_rekey && !self.has_contact {
            payloads.push(self.isakmp_notify(NotifyType::INITIAL_CONTACT, Vec::new()));
        }
        if !self.send_encrypted_phase1(
            ctx,
            &mut keys,
            ExchangeType::AGGRESSIVE,
            "AM3",
            &payloads,
            datagram,
            false,
        ) {
            return Ok(());
        }
        self.phase1_established(ctx);
        Ok(())
    }

    /// AM3: verify HASH_I (encrypted as RFC 2409 requires; a plaintext AM3 is accepted, as
    /// some Cisco releases send it so).
    fn am3_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut keys: Arc<Keyed>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let payloads = if header.flags.contains(Flags::ENCRYPTION) {
            let Some(payloads) = self.open_phase1(ctx, &mut keys, header, datagram, "AM3") else {
                return Ok(());
            };
            payloads
        } else {
            let msg = wire::Message::parse(datagram)?;
            self.log_received(ctx, "AM3", header, &msg.payloads);
            msg.payloads
        };
        let Some(hash) = find(&payloads, hash_of) else {
            self.fail(
                ctx,
                Failure::Malformed("AM3 without HASH".into()),
                Some(NotifyType::PAYLOAD_MALFORMED),
            );
            return Ok(());
        };
        if !self.verify_peer_hash(ctx, &keys, hash, &keys.peer_id_b, "HASH_I in AM3") {
            return Ok(());
        }
        phase1::detect_nat(ctx, self, &payloads);
        phase1::float_if_needed(self);
        self.note_initial_contact(ctx, &payloads);
        self.replies.remember(datagram, None);
        self.phase1_established(ctx);
        Ok(())
    }
}
