//! The steps Main Mode and Aggressive Mode both take (RFC 2409 §5): choosing from the
//! initiator's offer, checking the responder's answer, the KE and nonce exchange, deriving the
//! keys, and proving and checking identities. Each step fails the SA with the notify RFC 2408
//! §5 names when the peer's part is unacceptable, and then returns `None`/`false`.

use std::sync::Arc;

use crate::algorithm::DhGroup;
use crate::context::Ctx;
use crate::crypto::Secret;
use crate::error::InputError;
use crate::event::{Failure, Role};
use crate::exchange::payloads::{id_body, nonce_ok, raw_body};
use crate::exchange::phase1::{self, OfferedTransform};
use crate::keyed::Keyed;
use crate::sa::IkeSa;
use crate::wire::{
    ExchangeType, Header, Identification, NotifyType, Payload, PayloadType, SaPayload,
};

impl IkeSa {
    /// Responder, MM1/AM1: keeps the body of the initiator's SA payload (hashed into
    /// HASH_I/HASH_R) and chooses one transform; `None` after NO-PROPOSAL-CHOSEN.
    pub(crate) fn choose_from_offer(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
        offer: &SaPayload,
        payloads: &[Payload],
    ) -> Result<Option<(OfferedTransform, SaPayload)>, InputError> {
        self.negotiating()?.sai_b = raw_body(header.next_payload, datagram, PayloadType::SA)?;
        self.peer_offer = phase1::describe_offer(offer);
        phase1::learn_vendor_ids(self, payloads);
        let chosen = phase1::choose(ctx.cfg, offer, None);
        if chosen.is_none() {
            let reason = Failure::NoProposalChosen {
                ours: phase1::describe_ours(ctx.cfg),
                theirs: self.peer_offer.clone(),
            };
            self.fail(ctx, reason, Some(NotifyType::NO_PROPOSAL_CHOSEN));
        }
        Ok(chosen)
    }

    /// Initiator, MM2/AM2: the responder's choice must be one transform we offered (in
    /// Aggressive Mode, of the group our KE is in); `None` after NO-PROPOSAL-CHOSEN.
    pub(crate) fn accept_answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        answer: &SaPayload,
        payloads: &[Payload],
        group_ok: impl Fn(DhGroup) -> bool,
    ) -> Option<OfferedTransform> {
        phase1::learn_vendor_ids(self, payloads);
        let chosen = phase1::accept_choice(ctx.cfg, answer).filter(|c| group_ok(c.proposal.group));
        if chosen.is_none() {
            let reason = Failure::NoProposalChosen {
                ours: phase1::describe_ours(ctx.cfg),
                theirs: phase1::describe_offer(answer),
            };
            self.fail(ctx, reason, Some(NotifyType::NO_PROPOSAL_CHOSEN));
        }
        chosen
    }

    /// Records the chosen proposal and the ISAKMP SA lifetime it implies.
    pub(crate) fn adopt_choice(
        &mut self,
        ctx: &mut Ctx<'_>,
        chosen: &OfferedTransform,
    ) -> Result<(), InputError> {
        self.negotiating()?.proposal = Some(chosen.proposal);
        self.adopt_lifetime(ctx, chosen);
        Ok(())
    }

    /// Our DH pair and nonce, kept as our side's (g^xi/Ni as initiator, g^xr/Nr as
    /// responder); returns the public value and the nonce to send.
    pub(crate) fn our_ke_nonce(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: DhGroup,
    ) -> Result<(Vec<u8>, Vec<u8>), InputError> {
        let dh = phase1::new_dh(ctx, group);
        let (ke, nonce) = (dh.public_value(), phase1::new_nonce(ctx));
        let role = self.role;
        let n = self.negotiating()?;
        n.dh = Some(dh);
        match role {
            Role::Initiator => (n.g_xi, n.ni) = (ke.clone(), nonce.clone()),
            Role::Responder => (n.g_xr, n.nr) = (ke.clone(), nonce.clone()),
        }
        Ok((ke, nonce))
    }

    /// The peer's KE and nonce (RFC 2409 §5: the group's length, a nonce of 8–256 bytes),
    /// kept as its side's; `false` after INVALID-KEY-INFORMATION.
    pub(crate) fn take_peer_ke_nonce(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: DhGroup,
        ke: &[u8],
        nonce: &[u8],
    ) -> Result<bool, InputError> {
        if ke.len() != group.public_len() || !nonce_ok(nonce) {
            self.fail(
                ctx,
                Failure::InvalidKeyExchange,
                Some(NotifyType::INVALID_KEY_INFORMATION),
            );
            return Ok(false);
        }
        let (ke, nonce) = (ke.to_vec(), nonce.to_vec());
        let role = self.role;
        let n = self.negotiating()?;
        match role {
            Role::Responder => (n.g_xi, n.ni) = (ke, nonce),
            Role::Initiator => (n.g_xr, n.nr) = (ke, nonce),
        }
        Ok(true)
    }

    /// Derives the keys; `None` after INVALID-KEY-INFORMATION (the peer's public value is not
    /// a valid one of the group).
    pub(crate) fn keys_or_fail(&mut self, ctx: &mut Ctx<'_>) -> Option<Arc<Keyed>> {
        match phase1::derive_keys(ctx, self) {
            Ok(k) => Some(k),
            Err(f) => {
                self.fail(ctx, f, Some(NotifyType::INVALID_KEY_INFORMATION));
                None
            }
        }
    }

    /// Our ID payload and the HASH_I/HASH_R that proves it (RFC 2409 §5).
    pub(crate) fn our_id_and_hash(&self, ctx: &Ctx<'_>, keys: &Keyed) -> (Identification, Secret) {
        let id = phase1::our_id(ctx.cfg);
        let hash = keys.auth_hash(&self.cookies, self.role, &id_body(&id));
        (id, hash)
    }

    /// The peer's HASH must verify over its ID, and the ID must be the configured one;
    /// `false` after AUTHENTICATION-FAILED or INVALID-ID-INFORMATION.
    pub(crate) fn peer_proves(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        id: &Identification,
        hash: &[u8],
        what: &str,
    ) -> bool {
        if !self.verify_peer_hash(ctx, keys, hash, &id_body(id), what) {
            return false;
        }
        if let Err(f) = phase1::check_peer_id(ctx.cfg, id) {
            self.fail(ctx, f, Some(NotifyType::INVALID_ID_INFORMATION));
            return false;
        }
        true
    }

    /// INITIAL-CONTACT in MM5/AM3 (RFC 2407 §4.6.3.3), unless this SA replaces one or
    /// another SA with the peer is up (the peer's SAs with us are not stale then).
    pub(crate) fn initial_contact(&self, ctx: &Ctx<'_>) -> Option<Payload> {
        (ctx.cfg.initial_contact && !self.is_rekey && !self.has_contact)
            .then(|| self.isakmp_notify(NotifyType::INITIAL_CONTACT, Vec::new()))
    }

    /// Sends a plaintext phase 1 message and keeps it as the answer to `request`.
    pub(crate) fn answer_plain(
        &mut self,
        ctx: &mut Ctx<'_>,
        exchange: ExchangeType,
        name: &'static str,
        payloads: &[Payload],
        request: &[u8],
        retransmit: bool,
    ) {
        let data = self.plain_message(exchange, 0, payloads);
        let sent = self.send(ctx, name, payloads, data, 0, retransmit);
        self.replies.remember(request, Some(sent));
    }
}
