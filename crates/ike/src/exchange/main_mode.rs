//! Main Mode with pre-shared keys or signatures (RFC 2409 §5, §5.1, §5.4): MM1–MM6, as initiator and responder.

use std::sync::Arc;

use crate::context::Ctx;
use crate::crypto::{CryptoError, Phase1Keys};
use crate::error::InputError;
use crate::event::Role;
use crate::exchange::payloads::{find, ke_of, nonce_of, sa_of};
use crate::exchange::phase1;
use crate::exchange::phase1::steps::{our_ke, peer_ke_ok};
use crate::exchange::phase1::KeysNow;
use crate::keyed::Keyed;
use crate::sa::{Computing, IkeSa, OurKe, Phase1};
use crate::wire::{self, ExchangeType, Header, Payload, PayloadType};

impl IkeSa {
    /// MM1: HDR, SA, VID…
    pub(crate) fn main_mode_initiate(&mut self, ctx: &mut Ctx<'_>) {
        let offer = phase1::offer(
            &ctx.cfg.ike_proposals,
            ctx.cfg.ike_lifetime,
            ctx.cfg.auth_method(),
        );
        let mut payloads = vec![Payload::Sa(offer)];
        payloads.extend(phase1::our_vendor_ids(
            Role::Initiator,
            &self.features,
            ctx.cfg.fragmentation,
        ));
        payloads.extend(crate::exchange::transaction::client_vendor_ids(ctx.cfg));
        self.tamper(ctx, "MM1", 0, &mut payloads);
        let mut sai_b = Vec::new();
        if let Some(sa) = payloads.iter().find(|p| matches!(p, Payload::Sa(_))) {
            sa.emit_body(&mut sai_b);
        }
        self.phase = Phase1::MmI1Sent { sai_b };
        let data = self.plain_message(ExchangeType::IDENTITY_PROTECTION, 0, &payloads);
        self.send(ctx, "MM1", &payloads, data, 0, true);
    }

    /// Dispatches a Main Mode message by the state we are in.
    pub(crate) fn main_mode_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        match (&self.phase, self.role) {
            (Phase1::Start, Role::Responder) => self.mm1_received(ctx, header, datagram),
            (Phase1::MmI1Sent { .. }, _) => self.mm2_received(ctx, header, datagram),
            (Phase1::MmR2Sent { .. }, _) => self.mm3_received(ctx, header, datagram),
            (Phase1::MmI3Sent { .. }, _) => self.mm4_received(ctx, header, datagram),
            (Phase1::MmR4Sent(k), _) => self.mm5_received(ctx, Arc::clone(k), header, datagram),
            (Phase1::MmI5Sent(k), _) => self.mm6_received(ctx, Arc::clone(k), header, datagram),
            (Phase1::MmR3Computing(c) | Phase1::MmI4Computing(c), _) => {
                Err(while_computing(c, datagram))
            }
            _ => Err(InputError::Unexpected(self.state().name())),
        }
    }

    /// MM1 → MM2: choose one transform.
    fn mm1_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let msg = wire::Message::parse(datagram)?;
        self.log_received(ctx, "MM1", header, &msg.payloads);
        let offer = find(&msg.payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        let Some((chosen, reply, sai_b)) =
            self.choose_from_offer(ctx, header, datagram, offer, &msg.payloads)?
        else {
            return Ok(());
        };
        self.adopt_lifetime(ctx, &chosen);
        self.phase = Phase1::MmR2Sent {
            proposal: chosen.proposal,
            sai_b,
        };
        let mut payloads = vec![Payload::Sa(reply)];
        payloads.extend(phase1::our_vendor_ids(
            Role::Responder,
            &self.features,
            ctx.cfg.fragmentation,
        ));
        self.tamper(ctx, "MM2", 0, &mut payloads);
        self.answer_plain(
            ctx,
            ExchangeType::IDENTITY_PROTECTION,
            "MM2",
            &payloads,
            datagram,
            false,
        );
        Ok(())
    }

    /// MM2 → MM3: KE, Nonce, NAT-D.
    fn mm2_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let msg = wire::Message::parse(datagram)?;
        self.log_received(ctx, "MM2", header, &msg.payloads);
        let answer = find(&msg.payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        let Some(chosen) = self.accept_answer(ctx, answer, &msg.payloads, |_| true) else {
            return Ok(());
        };
        self.adopt_lifetime(ctx, &chosen);
        let Phase1::MmI1Sent { sai_b } = &mut self.phase else {
            return Err(InputError::Unexpected(self.state().name()));
        };
        let sai_b = std::mem::take(sai_b);
        let ours = our_ke(ctx, chosen.proposal.group, sai_b);
        let mut payloads = vec![
            Payload::KeyExchange(ours.ke.clone()),
            Payload::Nonce(ours.nonce.clone()),
        ];
        payloads.extend(phase1::cert_requests(ctx.cfg));
        self.phase = Phase1::MmI3Sent {
            proposal: chosen.proposal,
            ours,
        };
        payloads.extend(phase1::nat_d_payloads(ctx, self, chosen.proposal.hash));
        self.answer_plain(
            ctx,
            ExchangeType::IDENTITY_PROTECTION,
            "MM3",
            &payloads,
            datagram,
            true,
        );
        Ok(())
    }

    /// MM3 → MM4: both sides can now derive keys.
    fn mm3_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let Phase1::MmR2Sent { proposal, .. } = &self.phase else {
            return Err(InputError::Unexpected(self.state().name()));
        };
        let proposal = *proposal;
        let msg = wire::Message::parse(datagram)?;
        self.log_received(ctx, "MM3", header, &msg.payloads);
        let (ke, nonce) = peer_ke_nonce(&msg.payloads)?;
        if !peer_ke_ok(proposal.group, ke, nonce) {
            self.fail_key_exchange(ctx);
            return Ok(());
        }
        let Phase1::MmR2Sent { sai_b, .. } = &mut self.phase else {
            return Err(InputError::Unexpected(self.state().name()));
        };
        let sai_b = std::mem::take(sai_b);
        let ours = our_ke(ctx, proposal.group, sai_b);
        let wait = Phase1::MmR3Computing;
        if let KeysNow::Ready(done, ours) =
            self.keys_now(ctx, proposal, ours, ke, nonce, datagram, wait)
        {
            self.mm3_keys_ready(ctx, proposal, ours, done, &msg.payloads, datagram)?;
        }
        Ok(())
    }

    /// MM3's keys are computed: MM4 with our KE, nonce and NAT-D.
    fn mm3_keys_ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        proposal: crate::proposal::IkeProposal,
        ours: Box<OurKe>,
        done: Result<Phase1Keys, CryptoError>,
        msg: &[Payload],
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let Some(keys) = self.keys_or_fail(ctx, (proposal, &ours, done), msg, Vec::new())? else {
            return Ok(());
        };
        self.phase = Phase1::MmR4Sent(keys);
        phase1::detect_nat(ctx, self, proposal.hash, msg);
        let OurKe { ke, nonce, .. } = *ours;
        let mut payloads = vec![Payload::KeyExchange(ke), Payload::Nonce(nonce)];
        payloads.extend(phase1::cert_requests(ctx.cfg));
        payloads.extend(phase1::nat_d_payloads(ctx, self, proposal.hash));
        self.answer_plain(
            ctx,
            ExchangeType::IDENTITY_PROTECTION,
            "MM4",
            &payloads,
            datagram,
            false,
        );
        phase1::float_if_needed(self);
        Ok(())
    }

    /// MM4 → MM5: derive keys, detect NAT, float, authenticate.
    fn mm4_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let msg = wire::Message::parse(datagram)?;
        self.log_received(ctx, "MM4", header, &msg.payloads);
        let (ke, nonce) = peer_ke_nonce(&msg.payloads)?;
        let Phase1::MmI3Sent { proposal, .. } = &self.phase else {
            return Err(InputError::Unexpected(self.state().name()));
        };
        let proposal = *proposal;
        if !peer_ke_ok(proposal.group, ke, nonce) {
            self.fail_key_exchange(ctx);
            return Ok(());
        }
        let Phase1::MmI3Sent { ours, .. } = std::mem::replace(&mut self.phase, Phase1::Dead) else {
            return Err(InputError::Unexpected(self.state().name()));
        };
        let wait = Phase1::MmI4Computing;
        if let KeysNow::Ready(done, ours) =
            self.keys_now(ctx, proposal, ours, ke, nonce, datagram, wait)
        {
            self.mm4_keys_ready(ctx, proposal, ours, done, &msg.payloads, datagram)?;
        }
        Ok(())
    }

    /// MM4's keys are computed: detect NAT, float, authenticate (MM5).
    fn mm4_keys_ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        proposal: crate::proposal::IkeProposal,
        ours: Box<OurKe>,
        done: Result<Phase1Keys, CryptoError>,
        msg: &[Payload],
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let Some(mut keys) = self.keys_or_fail(ctx, (proposal, &ours, done), msg, Vec::new())?
        else {
            return Ok(());
        };
        self.phase = Phase1::MmI5Sent(Arc::clone(&keys));
        phase1::detect_nat(ctx, self, proposal.hash, msg);
        phase1::float_if_needed(self);
        let Some(mut payloads) = self.our_proof(ctx, &keys) else {
            return Ok(());
        };
        payloads.extend(self.initial_contact(ctx));
        self.send_encrypted_phase1(
            ctx,
            &mut keys,
            ExchangeType::IDENTITY_PROTECTION,
            "MM5",
            &payloads,
            datagram,
            true,
        );
        Ok(())
    }

    /// MM5 → MM6: verify HASH_I and the identity, answer with ours.
    fn mm5_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut keys: Arc<Keyed>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let Some(payloads) = self.mm_peer_proves(ctx, &mut keys, header, datagram) else {
            return Ok(());
        };
        self.note_initial_contact(ctx, &payloads);
        let Some(reply) = self.our_proof(ctx, &keys) else {
            return Ok(());
        };
        self.establish_with(
            ctx,
            keys,
            ExchangeType::IDENTITY_PROTECTION,
            "MM6",
            &reply,
            datagram,
        );
        Ok(())
    }

    /// MM6: verify HASH_R and the identity; phase 1 is up.
    fn mm6_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut keys: Arc<Keyed>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        if self
            .mm_peer_proves(ctx, &mut keys, header, datagram)
            .is_none()
        {
            return Ok(());
        }
        self.phase1_established(ctx, keys);
        Ok(())
    }

    /// MM5 (as responder) or MM6 (as initiator): opens the message and checks the peer's ID
    /// and HASH, or its certificate and SIG (RFC 2409 §5, §5.1); its payloads when the peer
    /// proved its identity, `None` after failing the SA.
    fn mm_peer_proves(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &mut Arc<Keyed>,
        header: &Header,
        datagram: &[u8],
    ) -> Option<Vec<Payload>> {
        let (name, what) = match self.role {
            Role::Responder => ("MM5", "HASH_I in MM5"),
            Role::Initiator => ("MM6", "HASH_R in MM6"),
        };
        let payloads = self.open_phase1(ctx, keys, header, datagram, name)?;
        self.peer_proves_with(ctx, keys, &payloads, what)
            .then_some(payloads)
    }
}

/// The peer's KE and nonce in MM3/MM4.
fn peer_ke_nonce(payloads: &[Payload]) -> Result<(&[u8], &[u8]), InputError> {
    let ke = find(payloads, ke_of).ok_or(InputError::Missing(PayloadType::KE))?;
    let nonce = find(payloads, nonce_of).ok_or(InputError::Missing(PayloadType::NONCE))?;
    Ok((ke, nonce))
}

impl IkeSa {
    /// The driver computed the keys MM3 (responder) or MM4 (initiator) waits for: the
    /// exchange continues as it would have inline.
    pub(crate) fn main_mode_keys_done(
        &mut self,
        ctx: &mut Ctx<'_>,
        c: Computing,
        done: Result<Phase1Keys, CryptoError>,
    ) -> Result<(), InputError> {
        let msg = wire::Message::parse(&c.request)?;
        match self.role {
            Role::Responder => {
                self.mm3_keys_ready(ctx, c.proposal, c.ours, done, &msg.payloads, &c.request)
            }
            Role::Initiator => {
                self.mm4_keys_ready(ctx, c.proposal, c.ours, done, &msg.payloads, &c.request)
            }
        }
    }
}

/// A message while the keys are computed: a repeat of the one that asked for them (the
/// answer follows when they are ready), or one that does not fit.
pub(crate) fn while_computing(c: &Computing, datagram: &[u8]) -> InputError {
    if c.request == datagram {
        InputError::Duplicate
    } else {
        InputError::Unexpected("keys being computed")
    }
}
