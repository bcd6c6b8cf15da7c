//! The steps Main Mode and Aggressive Mode both take (RFC 2409 §5): choosing from the
//! initiator's offer, checking the responder's answer, the KE and nonce exchange, deriving the
//! keys, proving and checking identities, and phase 1 established. Each step fails the SA with
//! the notify RFC 2408 §5 names when the peer's part is unacceptable, and then returns
//! `None`/`false`.

use std::sync::Arc;
use std::time::Duration;

use super::identity::check_peer_id;
use super::keys::{keyed, new_nonce};
use super::nat_t::learn_vendor_ids;
use super::offer::{accept_choice, choose, describe_offer, describe_ours, OfferedTransform};
use crate::algorithm::DhGroup;
use crate::config::Phase1Mode;
use crate::context::Ctx;
use crate::crypto::{CryptoError, Phase1Keys};
use crate::error::InputError;
use crate::event::{Event, Failure, Role};
use crate::exchange::payloads::{find, id_body, ke_of, nonce_ok, parse_protected, raw_body};
use crate::keyed::Keyed;
use crate::proposal::IkeProposal;
use crate::sa::{IkeSa, OurKe, Phase1};
use crate::time::later;
use crate::wire::{
    ExchangeType, Flags, Header, Identification, NotifyType, Payload, PayloadType, SaPayload,
};

impl IkeSa {
    /// Responder, MM1/AM1: chooses one transform and returns it with our answer's SA payload
    /// and the body of the initiator's (hashed into HASH_I/HASH_R); `None` after
    /// NO-PROPOSAL-CHOSEN.
    pub(crate) fn choose_from_offer(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
        offer: &SaPayload,
        payloads: &[Payload],
    ) -> Result<Option<(OfferedTransform, SaPayload, Vec<u8>)>, InputError> {
        let sai_b = raw_body(header.next_payload, datagram, PayloadType::SA)?;
        self.peer_offer = describe_offer(offer);
        learn_vendor_ids(self, payloads);
        let chosen = choose(ctx.cfg, offer, None);
        if chosen.is_none() {
            let reason = Failure::NoProposalChosen {
                ours: describe_ours(ctx.cfg),
                theirs: self.peer_offer.clone(),
            };
            self.fail(ctx, reason, Some(NotifyType::NO_PROPOSAL_CHOSEN));
        }
        Ok(chosen.map(|(o, reply)| (o, reply, sai_b)))
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
        learn_vendor_ids(self, payloads);
        let chosen = accept_choice(ctx.cfg, answer).filter(|c| group_ok(c.proposal.group));
        if chosen.is_none() {
            let reason = Failure::NoProposalChosen {
                ours: describe_ours(ctx.cfg),
                theirs: describe_offer(answer),
            };
            self.fail(ctx, reason, Some(NotifyType::NO_PROPOSAL_CHOSEN));
        }
        chosen
    }

    /// Fails the SA for a KE or nonce of the wrong size (RFC 2409 §5).
    pub(crate) fn fail_key_exchange(&mut self, ctx: &mut Ctx<'_>) {
        self.fail(
            ctx,
            Failure::InvalidKeyExchange,
            Some(NotifyType::INVALID_KEY_INFORMATION),
        );
    }

    /// The keys of a finished Diffie-Hellman job over our KE and the peer's, found in the
    /// payloads of the message that asked for them (MM3/MM4, AM1/AM2; see
    /// [`keyed`](super::keys::keyed)); `None` after INVALID-KEY-INFORMATION (the peer's public
    /// value is not a valid one of the group).
    pub(crate) fn keys_or_fail(
        &mut self,
        ctx: &mut Ctx<'_>,
        job: (IkeProposal, &OurKe, Result<Phase1Keys, CryptoError>),
        msg: &[Payload],
        peer_id_b: Vec<u8>,
    ) -> Result<Option<Arc<Keyed>>, InputError> {
        let (proposal, ours, done) = job;
        let peer_ke = find(msg, ke_of).ok_or(InputError::Missing(PayloadType::KE))?;
        match keyed(self, proposal, ours, peer_ke, done, peer_id_b) {
            Ok(k) => Ok(Some(k)),
            Err(f) => {
                self.fail(ctx, f, Some(NotifyType::INVALID_KEY_INFORMATION));
                Ok(None)
            }
        }
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
        if let Err(f) = check_peer_id(ctx.cfg, id) {
            self.refuse_identity(ctx, keys, f);
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

/// Our DH pair and nonce (RFC 2409 §5), with the initiator's SA payload body.
pub(crate) fn our_ke(ctx: &mut Ctx<'_>, group: DhGroup, sai_b: Vec<u8>) -> Box<OurKe> {
    let dh = Arc::new(ctx.new_dh(group));
    let ke = dh.public_value();
    let nonce = new_nonce(ctx);
    Box::new(OurKe {
        sai_b,
        dh,
        ke,
        nonce,
    })
}

/// The peer's KE must be of the group's length and its nonce 8–256 bytes (RFC 2409 §5).
pub(crate) fn peer_ke_ok(group: DhGroup, ke: &[u8], nonce: &[u8]) -> bool {
    ke.len() == group.public_len() && nonce_ok(nonce)
}

/// Pause between AM3 and the first QM1 (see `phase1_established`).
const AGGRESSIVE_QM_DELAY: Duration = Duration::from_millis(50);

impl IkeSa {
    /// Phase 1 done: report it, and as initiator start one Quick Mode per configured pair.
    pub(crate) fn phase1_established(&mut self, ctx: &mut Ctx<'_>, keys: Arc<Keyed>) {
        let proposal = keys.proposal;
        self.phase = Phase1::Established(keys);
        self.established_at = Some(ctx.now);
        self.last_heard = ctx.now;
        self.retransmit = None;
        self.dpd.seq = u32::from_be_bytes(ctx.random::<4>()) & 0x7fff_ffff;
        ctx.event(Event::IkeSaEstablished {
            conn: self.conn,
            cookies: self.cookies,
            role: self.role,
            mode: self.mode,
            proposal,
            lifetime: self.lifetime,
            peer: self.remote,
            features: self.features,
            nat: self.nat,
        });
        #[cfg(feature = "test-support")]
        if self.role == Role::Responder && ctx.cfg.test_gateway.is_some() {
            self.test_gateway_start(ctx);
            return;
        }
        if self.role == Role::Responder && ctx.cfg.gateway.is_some() {
            self.gateway_start(ctx);
            return;
        }
        if self.role == Role::Initiator && ctx.cfg.remote_access.is_some() {
            // XAuth and Mode Config first: Quick Mode needs the assigned address. A rekey
            // answers them again from the configured credentials (the user is not asked).
            if let Some(keys) = self.established_keys() {
                self.remote_access_start(ctx, &keys);
            }
            return;
        }
        if self.role == Role::Initiator && !self.is_rekey {
            match self.mode {
                Phase1Mode::Main => self.start_quick_modes(ctx),
                // AM3 and QM1 would leave back to back, and a peer that handles them on
                // separate threads (strongSwan) may see QM1 first and drop it until our
                // retransmission 4 s later; a short pause lets AM3 land first.
                Phase1Mode::Aggressive => {
                    self.quick_modes_at = Some(later(ctx.now, AGGRESSIVE_QM_DELAY))
                }
            }
        }
    }

    /// One Quick Mode per configured pair (phase 1 initiator).
    pub(crate) fn start_quick_modes(&mut self, ctx: &mut Ctx<'_>) {
        self.quick_modes_at = None;
        let Some(keys) = self.established_keys() else {
            return;
        };
        for i in 0..ctx.cfg.children.len() {
            self.quick_mode_initiate(ctx, &keys, i, None);
        }
    }
}

impl IkeSa {
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

    /// Sends the last message of phase 1 (MM6, AM3), which authenticates us, and
    /// establishes the ISAKMP SA with `keys` unless it could not be sealed.
    pub(crate) fn establish_with(
        &mut self,
        ctx: &mut Ctx<'_>,
        mut keys: Arc<Keyed>,
        exchange: ExchangeType,
        name: &'static str,
        payloads: &[Payload],
        request: &[u8],
    ) {
        if self.send_encrypted_phase1(ctx, &mut keys, exchange, name, payloads, request, false) {
            self.phase1_established(ctx, keys);
        }
    }
}
