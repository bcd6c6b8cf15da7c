//! Main Mode with pre-shared keys (RFC 2409 §5, §5.4): MM1–MM6, as initiator and responder.

use std::sync::Arc;

use crate::context::Ctx;
use crate::error::InputError;
use crate::event::{Failure, Role};
use crate::exchange::payloads::{find, hash_of, id_of, ke_of, nonce_of, parse_protected, sa_of};
use crate::exchange::phase1;
use crate::keyed::Keyed;
use crate::sa::{IkeSa, Phase1State};
use crate::wire::{self, ExchangeType, Flags, Header, NotifyType, Payload, PayloadType};

impl IkeSa {
    /// MM1: HDR, SA, VID…
    pub(crate) fn main_mode_initiate(&mut self, ctx: &mut Ctx<'_>) {
        let offer = phase1::offer(&ctx.cfg.ike_proposals, ctx.cfg.ike_lifetime);
        let mut payloads = vec![Payload::Sa(offer)];
        payloads.extend(phase1::our_vendor_ids(Role::Initiator, &self.features));
        self.tamper(ctx, "MM1", 0, &mut payloads);
        let mut sai_b = Vec::new();
        if let Some(sa) = payloads.iter().find(|p| matches!(p, Payload::Sa(_))) {
            sa.emit_body(&mut sai_b);
        }
        if let Some(n) = self.negotiation() {
            n.sai_b = sai_b;
        }
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
        let keys = self.keyed();
        match (self.state, keys) {
            (Phase1State::MmR2Sent, None) if self.first_message_pending() => {
                self.mm1_received(ctx, header, datagram)
            }
            (Phase1State::MmI1Sent, None) => self.mm2_received(ctx, header, datagram),
            (Phase1State::MmR2Sent, None) => self.mm3_received(ctx, header, datagram),
            (Phase1State::MmI3Sent, None) => self.mm4_received(ctx, header, datagram),
            (Phase1State::MmR4Sent, Some(k)) => self.mm5_received(ctx, k, header, datagram),
            (Phase1State::MmI5Sent, Some(k)) => self.mm6_received(ctx, k, header, datagram),
            (s, _) => Err(InputError::Unexpected(s.name())),
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
        let Some((chosen, reply)) =
            self.choose_from_offer(ctx, header, datagram, offer, &msg.payloads)?
        else {
            return Ok(());
        };
        self.adopt_choice(ctx, &chosen)?;
        let mut payloads = vec![Payload::Sa(reply)];
        payloads.extend(phase1::our_vendor_ids(Role::Responder, &self.features));
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
        self.adopt_choice(ctx, &chosen)?;
        let (g_xi, ni) = self.our_ke_nonce(ctx, chosen.proposal.group)?;
        let mut payloads = vec![Payload::KeyExchange(g_xi), Payload::Nonce(ni)];
        payloads.extend(phase1::nat_d_payloads(ctx, self));
        self.answer_plain(
            ctx,
            ExchangeType::IDENTITY_PROTECTION,
            "MM3",
            &payloads,
            datagram,
            true,
        );
        self.state = Phase1State::MmI3Sent;
        Ok(())
    }

    /// MM3 → MM4: both sides can now derive keys.
    fn mm3_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let msg = wire::Message::parse(datagram)?;
        self.log_received(ctx, "MM3", header, &msg.payloads);
        if !self.mm_peer_ke_nonce(ctx, &msg.payloads)? {
            return Ok(());
        }
        let group = self
            .proposal()
            .map(|p| p.group)
            .ok_or(InputError::Unexpected("no negotiated proposal"))?;
        let (g_xr, nr) = self.our_ke_nonce(ctx, group)?;
        if self.keys_or_fail(ctx).is_none() {
            return Ok(());
        }
        phase1::detect_nat(ctx, self, &msg.payloads);
        let mut payloads = vec![Payload::KeyExchange(g_xr), Payload::Nonce(nr)];
        payloads.extend(phase1::nat_d_payloads(ctx, self));
        self.answer_plain(
            ctx,
            ExchangeType::IDENTITY_PROTECTION,
            "MM4",
            &payloads,
            datagram,
            false,
        );
        phase1::float_if_needed(self);
        self.state = Phase1State::MmR4Sent;
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
        if !self.mm_peer_ke_nonce(ctx, &msg.payloads)? {
            return Ok(());
        }
        let Some(mut keys) = self.keys_or_fail(ctx) else {
            return Ok(());
        };
        phase1::detect_nat(ctx, self, &msg.payloads);
        phase1::float_if_needed(self);
        let (id, hash) = self.our_id_and_hash(ctx, &keys);
        let mut payloads = vec![Payload::Identification(id), Payload::Hash(hash.to_vec())];
        payloads.extend(self.initial_contact(ctx));
        if !self.send_encrypted_phase1(
            ctx,
            &mut keys,
            ExchangeType::IDENTITY_PROTECTION,
            "MM5",
            &payloads,
            datagram,
            true,
        ) {
            return Ok(());
        }
        self.state = Phase1State::MmI5Sent;
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
        let (our, hash_r) = self.our_id_and_hash(ctx, &keys);
        let reply = vec![Payload::Identification(our), Payload::Hash(hash_r.to_vec())];
        if !self.send_encrypted_phase1(
            ctx,
            &mut keys,
            ExchangeType::IDENTITY_PROTECTION,
            "MM6",
            &reply,
            datagram,
            false,
        ) {
            return Ok(());
        }
        self.phase1_established(ctx);
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
        self.phase1_established(ctx);
        Ok(())
    }

    /// MM5 (as responder) or MM6 (as initiator): opens the message and checks the peer's ID
    /// and HASH (RFC 2409 §5); its payloads when the peer proved its identity, `None` after
    /// failing the SA (only the responder reports a missing payload to the peer).
    fn mm_peer_proves(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &mut Arc<Keyed>,
        header: &Header,
        datagram: &[u8],
    ) -> Option<Vec<Payload>> {
        let (name, what, missing) = match self.role {
            Role::Responder => ("MM5", "HASH_I in MM5", Some(NotifyType::PAYLOAD_MALFORMED)),
            Role::Initiator => ("MM6", "HASH_R in MM6", None),
        };
        let payloads = self.open_phase1(ctx, keys, header, datagram, name)?;
        let (Some(id), Some(hash)) = (find(&payloads, id_of), find(&payloads, hash_of)) else {
            self.fail(
                ctx,
                Failure::Malformed("ID or HASH payload missing".into()),
                missing,
            );
            return None;
        };
        self.peer_proves(ctx, keys, id, hash, what)
            .then_some(payloads)
    }

    /// Takes the peer's KE and nonce from MM3/MM4; `Ok(false)` after failing the SA.
    fn mm_peer_ke_nonce(
        &mut self,
        ctx: &mut Ctx<'_>,
        payloads: &[Payload],
    ) -> Result<bool, InputError> {
        let p = self
            .proposal()
            .ok_or(InputError::Unexpected("no negotiated proposal"))?;
        let ke = find(payloads, ke_of).ok_or(InputError::Missing(PayloadType::KE))?;
        let nonce = find(payloads, nonce_of).ok_or(InputError::Missing(PayloadType::NONCE))?;
        self.take_peer_ke_nonce(ctx, p.group, ke, nonce)
    }

    /// Sends an encrypted phase 1 message (MM5, MM6, AM3) on the phase 1 IV chain, advances the
    /// chain and keeps it as the answer to `request`; false (SA failed) if it cannot be sealed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_encrypted_phase1(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &mut Arc<Keyed>,
        exchange: ExchangeType,
        name: &'static str,
        payloads: &[Payload],
        request: &[u8],
        retransmit: bool,
    ) -> bool {
        let mut payloads = payloads.to_vec();
        self.tamper(ctx, name, 0, &mut payloads);
        let payloads = payloads.as_slice();
        let header = self.header(exchange, Flags(0), 0);
        match keys.seal(header, payloads, &keys.p1_iv) {
            Ok((data, last)) => {
                self.set_p1_iv(keys, last);
                let sent = self.send(ctx, name, payloads, data, 0, retransmit);
                self.replies.remember(request, Some(sent));
                true
            }
            Err(f) => {
                self.fail(ctx, f, None);
                false
            }
        }
    }

    /// Decrypts an encrypted phase 1 message (MM5, MM6, AM3) and advances the IV chain. A body
    /// that does not decrypt to a valid payload chain means the keys differ: the PSKs.
    pub(crate) fn open_phase1(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &mut Arc<Keyed>,
        header: &Header,
        datagram: &[u8],
        name: &'static str,
    ) -> Option<Vec<Payload>> {
        if !header.flags.contains(Flags::ENCRYPTION) {
            let reason = Failure::AuthenticationFailed {
                detail: format!("{name} arrived unencrypted"),
            };
            self.fail(ctx, reason, Some(NotifyType::AUTHENTICATION_FAILED));
            return None;
        }
        let opened = keys.open(datagram, &keys.p1_iv).and_then(|(body, last)| {
            let (payloads, _) = parse_protected(header.next_payload, &body)?;
            Ok((payloads, last))
        });
        match opened {
            Ok((payloads, last)) => {
                self.set_p1_iv(keys, last);
                self.log_received(ctx, name, header, &payloads);
                Some(payloads)
            }
            Err(e) => {
                self.log_received(ctx, name, header, &[]);
                let reason = Failure::AuthenticationFailed {
                    detail: format!("{name} does not decrypt to valid payloads ({e})"),
                };
                self.fail(ctx, reason, Some(NotifyType::AUTHENTICATION_FAILED));
                None
            }
        }
    }
}
