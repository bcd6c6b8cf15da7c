//! Aggressive Mode with pre-shared keys or signatures (RFC 2409 §5, §5.1, §5.4): AM1–AM3. The
//! group cannot be negotiated (KE travels in AM1) and with a PSK the responder's HASH_R is sent
//! in the clear, which is why answering it is an opt-in (signatures need none).

use std::sync::Arc;

use crate::config::Phase1Auth;
use crate::context::Ctx;
use crate::crypto::{CryptoError, Phase1Keys};
use crate::error::InputError;
use crate::event::{Failure, Role};
use crate::exchange::main_mode::while_computing;
use crate::exchange::payloads::{find, hash_of, id_of, ke_of, nonce_of, raw_body, sa_of};
use crate::exchange::phase1;
use crate::exchange::phase1::steps::{our_ke, peer_ke_ok};
use crate::exchange::phase1::KeysNow;
use crate::keyed::Keyed;
use crate::proposal::IkeProposal;
use crate::sa::{Computing, IkeSa, OurKe, Phase1};
use crate::wire::{
    self, ExchangeType, Flags, Header, Identification, NotifyType, Payload, PayloadType, SaPayload,
};

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
        let offer = phase1::offer(&same_group, ctx.cfg.ike_lifetime, ctx.cfg.auth_method());
        let mut sai_b = Vec::new();
        Payload::Sa(offer.clone()).emit_body(&mut sai_b);
        let ours = our_ke(ctx, group, sai_b);
        let mut payloads = vec![
            Payload::Sa(offer),
            Payload::KeyExchange(ours.ke.clone()),
            Payload::Nonce(ours.nonce.clone()),
            Payload::Identification(phase1::our_id(ctx.cfg)),
        ];
        payloads.extend(phase1::cert_requests(ctx.cfg));
        payloads.extend(phase1::our_vendor_ids(
            Role::Initiator,
            &self.features,
            ctx.cfg.fragmentation,
        ));
        payloads.extend(crate::exchange::transaction::client_vendor_ids(ctx.cfg));
        self.phase = Phase1::AmI1Sent(ours);
        let data = self.plain_message(ExchangeType::AGGRESSIVE, 0, &payloads);
        self.send(ctx, "AM1", &payloads, data, 0, true);
    }

    pub(crate) fn aggressive_mode_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        match (&self.phase, self.role) {
            (Phase1::Start, Role::Responder) => self.am1_received(ctx, header, datagram),
            (Phase1::AmI1Sent(_), _) => self.am2_received(ctx, header, datagram),
            (Phase1::AmR2Sent(k), _) => self.am3_received(ctx, Arc::clone(k), header, datagram),
            (Phase1::AmR1Computing(c, _) | Phase1::AmI2Computing(c), _) => {
                Err(while_computing(c, datagram))
            }
            _ => Err(InputError::Unexpected(self.state().name())),
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
        if !ctx.cfg.allow_aggressive_psk && matches!(ctx.cfg.auth, Phase1Auth::Psk) {
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
        raw_body(header.next_payload, datagram, PayloadType::ID)?;
        let Some((chosen, reply, sai_b)) =
            self.choose_from_offer(ctx, header, datagram, offer, &msg.payloads)?
        else {
            return Ok(());
        };
        let proposal = chosen.proposal;
        if !peer_ke_ok(proposal.group, ke, ni) {
            self.fail_key_exchange(ctx);
            return Ok(());
        }
        if let Err(f) = phase1::check_peer_id(ctx.cfg, id) {
            self.fail(ctx, f, Some(NotifyType::INVALID_ID_INFORMATION));
            return Ok(());
        }
        self.adopt_lifetime(ctx, &chosen);
        let ours = our_ke(ctx, proposal.group, sai_b);
        let waiting_reply = Box::new(reply.clone());
        let wait = move |c| Phase1::AmR1Computing(c, waiting_reply);
        if let KeysNow::Ready(done, ours) =
            self.keys_now(ctx, proposal, ours, ke, ni, datagram, wait)
        {
            self.am1_keys_ready(ctx, proposal, *ours, done, reply, datagram)?;
        }
        Ok(())
    }

    /// AM1's keys are computed: AM2 with our KE, nonce, proof and NAT-D.
    fn am1_keys_ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        proposal: IkeProposal,
        ours: OurKe,
        done: Result<Phase1Keys, CryptoError>,
        reply: SaPayload,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let header = Header::parse(datagram)?;
        let msg = wire::Message::parse(datagram)?;
        let peer_id_b = raw_body(header.next_payload, datagram, PayloadType::ID)?;
        let job = (proposal, &ours, done);
        let Some(keys) = self.keys_or_fail(ctx, job, &msg.payloads, peer_id_b)? else {
            return Ok(());
        };
        self.phase = Phase1::AmR2Sent(Arc::clone(&keys));
        let Some(proof) = self.our_proof(ctx, &keys) else {
            return Ok(());
        };
        let OurKe { ke, nonce, .. } = ours;
        let mut payloads = vec![
            Payload::Sa(reply),
            Payload::KeyExchange(ke),
            Payload::Nonce(nonce),
        ];
        payloads.extend(proof);
        payloads.extend(phase1::cert_requests(ctx.cfg));
        payloads.extend(phase1::our_vendor_ids(
            Role::Responder,
            &self.features,
            ctx.cfg.fragmentation,
        ));
        payloads.extend(phase1::nat_d_payloads(ctx, self, proposal.hash));
        self.tamper(ctx, "AM2", 0, &mut payloads);
        // Retransmitted until AM3 comes: the initiator is done after AM3 and repeats nothing,
        // so a lost AM3 is only asked for again by our AM2 (as Main Mode's initiator repeats
        // MM5 for a lost MM6). The half-open timeout still ends it.
        self.answer_plain(
            ctx,
            ExchangeType::AGGRESSIVE,
            "AM2",
            &payloads,
            datagram,
            true,
        );
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
        let Phase1::AmI1Sent(ours) = &self.phase else {
            return Err(InputError::Unexpected(self.state().name()));
        };
        let group = ours.dh.group();
        let Some(chosen) = self.accept_answer(ctx, answer, &msg.payloads, |g| g == group) else {
            return Ok(());
        };
        let ke = find(&msg.payloads, ke_of).ok_or(InputError::Missing(PayloadType::KE))?;
        let nr = find(&msg.payloads, nonce_of).ok_or(InputError::Missing(PayloadType::NONCE))?;
        find(&msg.payloads, id_of).ok_or(InputError::Missing(PayloadType::ID))?;
        let hash = find(&msg.payloads, hash_of);
        if hash.is_none() && matches!(ctx.cfg.auth, Phase1Auth::Psk) {
            return Err(InputError::Missing(PayloadType::HASH));
        }
        let proposal = chosen.proposal;
        if !peer_ke_ok(proposal.group, ke, nr) {
            self.fail_key_exchange(ctx);
            return Ok(());
        }
        self.adopt_lifetime(ctx, &chosen);
        let Phase1::AmI1Sent(ours) = std::mem::replace(&mut self.phase, Phase1::Dead) else {
            return Err(InputError::Unexpected(self.state().name()));
        };
        let wait = Phase1::AmI2Computing;
        if let KeysNow::Ready(done, ours) =
            self.keys_now(ctx, proposal, ours, ke, nr, datagram, wait)
        {
            self.am2_keys_ready(ctx, proposal, ours, done, &msg.payloads, datagram)?;
        }
        Ok(())
    }

    /// AM2's keys are computed: verify the responder, detect NAT, authenticate ourselves
    /// (AM3, encrypted).
    fn am2_keys_ready(
        &mut self,
        ctx: &mut Ctx<'_>,
        proposal: IkeProposal,
        ours: Box<OurKe>,
        done: Result<Phase1Keys, CryptoError>,
        msg: &[Payload],
        datagram: &[u8],
    ) -> Result<(), InputError> {
        let id = find(msg, id_of).ok_or(InputError::Missing(PayloadType::ID))?;
        let hash = find(msg, hash_of);
        let Some(keys) = self.keys_or_fail(ctx, (proposal, &ours, done), msg, Vec::new())? else {
            return Ok(());
        };
        let proved = match hash {
            Some(hash) if matches!(ctx.cfg.auth, Phase1Auth::Psk) => {
                self.peer_proves(ctx, &keys, id, hash, "HASH_R in AM2")
            }
            _ => self.peer_proves_with(ctx, &keys, msg, "SIG_R in AM2"),
        };
        if !proved {
            return Ok(());
        }
        phase1::detect_nat(ctx, self, proposal.hash, msg);
        let nat_d = phase1::nat_d_payloads(ctx, self, proposal.hash);
        phase1::float_if_needed(self);
        let Some(mut payloads) = self.our_proof(ctx, &keys) else {
            return Ok(());
        };
        // AM3 carries no ID: the initiator's went in AM1.
        payloads.retain(|p| !matches!(p, Payload::Identification(_)));
        payloads.extend(nat_d);
        payloads.extend(self.initial_contact(ctx));
        self.establish_with(
            ctx,
            keys,
            ExchangeType::AGGRESSIVE,
            "AM3",
            &payloads,
            datagram,
        );
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
        if let Phase1Auth::Certificate(_) = ctx.cfg.auth {
            // The ID came in AM1; the signature is over HASH_I of that ID (RFC 2409 §5.1).
            let Ok(id) = Identification::parse(&keys.peer_id_b) else {
                return Err(InputError::Unexpected(self.state().name()));
            };
            let mut with_id = vec![Payload::Identification(id)];
            with_id.extend(payloads.iter().cloned());
            if !self.peer_proves_with(ctx, &keys, &with_id, "SIG_I in AM3") {
                return Ok(());
            }
        } else {
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
        }
        phase1::detect_nat(ctx, self, keys.hash(), &payloads);
        phase1::float_if_needed(self);
        self.note_initial_contact(ctx, &payloads);
        self.replies.remember(datagram, None);
        self.phase1_established(ctx, keys);
        Ok(())
    }
}

impl IkeSa {
    /// The driver computed the keys AM1 (responder, with the SA payload it answers with) or
    /// AM2 (initiator) waits for: the exchange continues as it would have inline.
    pub(crate) fn aggressive_mode_keys_done(
        &mut self,
        ctx: &mut Ctx<'_>,
        c: Computing,
        reply: Option<SaPayload>,
        done: Result<Phase1Keys, CryptoError>,
    ) -> Result<(), InputError> {
        match reply {
            Some(reply) => self.am1_keys_ready(ctx, c.proposal, *c.ours, done, reply, &c.request),
            None => {
                let msg = wire::Message::parse(&c.request)?;
                self.am2_keys_ready(ctx, c.proposal, c.ours, done, &msg.payloads, &c.request)
            }
        }
    }
}
