//! Informational exchanges (RFC 2408 §4.8, RFC 2409 §5.7): notifies, deletes, DPD (RFC 3706),
//! and the timers of an ISAKMP SA (retransmission, DPD, lifetimes).

use std::time::Duration;

use crate::config::Phase1Mode;
use crate::context::Ctx;
use crate::crypto;
use crate::error::InputError;
use crate::event::{Event, Failure, Role, Udp4500Probe};
use crate::exchange::payloads::parse_protected;
use crate::exchange::quick_mode::state::{QmState, QuickMode};
use crate::keyed::Keyed;
use std::sync::Arc;

use crate::sa::{IkeSa, Phase1, Phase1State};
use crate::time::later;
use crate::wire::{
    self, Delete, ExchangeType, Flags, Header, Notification, NotifyType, Payload, ProtocolId,
    WireError, IPSEC_DOI,
};

/// Pause between AM3 and the first QM1 (see `phase1_established`).
const AGGRESSIVE_QM_DELAY: Duration = Duration::from_millis(50);

impl IkeSa {
    /// A notify about this ISAKMP SA: its SPI is both cookies (RFC 3706 §5, RFC 2407 §4.6.3).
    pub(crate) fn isakmp_notify(&self, notify_type: NotifyType, data: Vec<u8>) -> Payload {
        Payload::Notification(Notification {
            doi: IPSEC_DOI,
            protocol: ProtocolId::ISAKMP,
            notify_type,
            spi: [self.cookies.initiator_spi, self.cookies.responder_spi].concat(),
            data,
        })
    }

    /// Sends HDR*, HASH(1), N/D… under a fresh message ID and its own IV.
    pub(crate) fn send_informational(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        mut rest: Vec<Payload>,
    ) -> Result<(), Failure> {
        let message_id = ctx.message_id();
        self.tamper(ctx, "INFO", message_id, &mut rest);
        let iv = keys.phase2_iv(message_id);
        let mut rest_bytes = Vec::new();
        wire::emit_payloads(&rest, &mut rest_bytes);
        let hash = keys.hash1(message_id, &rest_bytes);
        let mut payloads = vec![Payload::Hash(hash.to_vec())];
        payloads.extend(rest);
        let header = self.header(ExchangeType::INFORMATIONAL, Flags(0), message_id);
        let (data, _) = keys.seal(header, &payloads, &iv)?;
        self.send(ctx, "INFO", &payloads, data, message_id, false);
        Ok(())
    }

    /// An Informational message for this SA, protected or not.
    pub(crate) fn informational_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        // Protected: decrypted and its HASH(1) verified with the keys it came under.
        let (payloads, keys) = if header.flags.contains(Flags::ENCRYPTION) {
            let keys = match (self.keyed(), self.proposal()) {
                (Some(k), _) => k,
                // A proposal but no keys yet: the body cannot be decrypted.
                (None, Some(_)) => return Err(WireError::Truncated.into()),
                (None, None) => return Err(InputError::Unexpected("encrypted INFO before keys")),
            };
            let (body, _) = keys.open(datagram, &keys.phase2_iv(header.message_id))?;
            let (payloads, rest) = parse_protected(header.next_payload, &body)?;
            let Some(Payload::Hash(h)) = payloads.first() else {
                return Err(InputError::Missing(wire::PayloadType::HASH));
            };
            if !crypto::ct_eq(&keys.hash1(header.message_id, &rest), h) {
                return Err(InputError::BadHash("INFO"));
            }
            (payloads, Some(keys))
        } else {
            (wire::Message::parse(datagram)?.payloads, None)
        };
        let protected = keys.is_some();
        self.log_received(ctx, "INFO", header, &payloads);
        if !protected && self.is_established() {
            // Unauthenticated notifies cannot tear down an authenticated SA.
            return Err(InputError::Unexpected("unprotected INFO after phase 1"));
        }
        if protected {
            self.last_heard = ctx.now;
            self.dpd.outstanding = None;
        }
        for p in &payloads {
            match p {
                Payload::Notification(n) => self.notify_received(ctx, keys.as_deref(), n),
                Payload::Delete(d) if protected => self.delete_received(ctx, d),
                _ => {}
            }
        }
        Ok(())
    }

    /// A Transaction exchange (XAuth / Mode Config, draft-dukes-ike-mode-cfg): authenticated
    /// like an Informational (HASH(1)), then named and refused, as ferrovpn is site-to-site.
    pub(crate) fn transaction_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        if !header.flags.contains(Flags::ENCRYPTION) {
            return Err(InputError::Unexpected("unprotected Transaction exchange"));
        }
        let keys = self
            .established_keys()
            .ok_or(InputError::Unexpected("Transaction before keys"))?;
        let iv = keys.phase2_iv(header.message_id);
        if !keys.hash1_verifies(header, datagram, &iv)? {
            return Err(InputError::BadHash("TRANSACTION"));
        }
        self.log_received(ctx, "TRANSACTION", header, &[]);
        self.refuse(
            ctx,
            "TRANSACTION",
            header.message_id,
            "the peer expects XAuth/Mode Config (Transaction exchange) — remote access, which ferrovpn does not support".into(),
            Some((ProtocolId::ISAKMP, NotifyType::UNSUPPORTED_EXCHANGE_TYPE)),
            true,
        );
        Ok(())
    }

    /// A notify; `keys` when it came protected (and so authenticated) under them.
    fn notify_received(&mut self, ctx: &mut Ctx<'_>, keys: Option<&Keyed>, n: &Notification) {
        let protected = keys.is_some();
        match (n.notify_type, keys) {
            (NotifyType::R_U_THERE, Some(keys)) if self.is_established() => {
                let ack = self.isakmp_notify(NotifyType::R_U_THERE_ACK, n.data.clone());
                let _ = self.send_informational(ctx, keys, vec![ack]);
            }
            (NotifyType::R_U_THERE_ACK, _) => {}
            (NotifyType::INITIAL_CONTACT, _) if protected => {
                self.initial_contact_received = true;
                ctx.event(Event::InitialContact {
                    conn: self.conn,
                    cookies: self.cookies,
                });
            }
            // The peer has no SA for this SPI of ours; the endpoint drops and renegotiates it.
            (NotifyType::INVALID_SPI, _)
                if protected && self.is_established() && n.protocol == ProtocolId::ESP =>
            {
                if let Ok(spi) = <[u8; 4]>::try_from(n.spi.as_slice()) {
                    self.invalid_spi_received.push(u32::from_be_bytes(spi));
                }
            }
            // Before phase 1 completes only a protected notify (its HASH(1) needs SKEYID_a,
            // hence the PSK) may end the negotiation; a plain one may be forged: recorded only.
            (t, _) if t.is_error() && !self.is_established() && protected => {
                self.fail(ctx, Failure::PeerNotify(t), None);
            }
            (t, _) if t.is_error() && !self.is_established() => {
                self.plain_notify = Some(t);
                ctx.event(Event::NotifyReceived {
                    conn: Some(self.conn),
                    cookies: self.cookies,
                    notify: t,
                    authenticated: false,
                })
            }
            (t, _) if t.is_error() => {
                // An error about a Quick Mode in flight: match it by our SPI, else the oldest.
                let by_spi = <[u8; 4]>::try_from(n.spi.as_slice())
                    .ok()
                    .map(u32::from_be_bytes);
                // strongSwan refuses QM1 with SPI 0 (it had not chosen a proposal to take an
                // SPI from): an authenticated error that names no SPI of ours is about the
                // oldest Quick Mode we are waiting on.
                let in_flight =
                    |q: &&mut QuickMode| q.retransmit.is_some() && q.role == Role::Initiator;
                let by_spi_match = self
                    .quick_modes
                    .iter()
                    .any(|q| q.retransmit.is_some() && by_spi.is_some_and(|s| s == q.spi_in));
                let qm = self
                    .quick_modes
                    .iter_mut()
                    .filter(in_flight)
                    .find(|q| !by_spi_match || by_spi.is_some_and(|s| s == q.spi_in));
                match qm {
                    Some(q) => {
                        q.retransmit = None;
                        q.state = QmState::Done;
                        q.expires = Some(ctx.now);
                        let message_id = q.message_id;
                        let reason = if t == NotifyType::NO_PROPOSAL_CHOSEN {
                            Failure::NoProposalChosen {
                                ours: ctx
                                    .cfg
                                    .esp_proposals
                                    .iter()
                                    .map(|p| p.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                theirs: "not disclosed (the peer answered QM1 with a protected NO-PROPOSAL-CHOSEN)".into(),
                            }
                        } else {
                            Failure::PeerNotify(t)
                        };
                        ctx.event(Event::ChildSaFailed {
                            conn: self.conn,
                            cookies: self.cookies,
                            message_id,
                            reason,
                        });
                    }
                    None => ctx.event(Event::NotifyReceived {
                        conn: Some(self.conn),
                        cookies: self.cookies,
                        notify: t,
                        authenticated: protected,
                    }),
                }
            }
            (t, _) => ctx.event(Event::NotifyReceived {
                conn: Some(self.conn),
                cookies: self.cookies,
                notify: t,
                authenticated: protected,
            }),
        }
    }

    fn delete_received(&mut self, ctx: &mut Ctx<'_>, d: &Delete) {
        match d.protocol {
            ProtocolId::ISAKMP => {
                // Its IPsec SAs live on (RFC 2409 §5.7); the endpoint moves them to another
                // ISAKMP SA of the connection or removes them.
                ctx.event(Event::IkeSaDeleted {
                    conn: self.conn,
                    cookies: self.cookies,
                    reason: "deleted by peer".into(),
                });
                self.phase = Phase1::Dead;
            }
            ProtocolId::ESP => {
                for spi in &d.spis {
                    let Ok(spi) = <[u8; 4]>::try_from(spi.as_slice()).map(u32::from_be_bytes)
                    else {
                        continue;
                    };
                    self.peer_deleted_child(ctx, spi);
                }
            }
            _ => {}
        }
    }

    /// INITIAL-CONTACT in MM5/AM3 (RFC 2407 §4.6.3.3).
    pub(crate) fn note_initial_contact(&mut self, ctx: &mut Ctx<'_>, payloads: &[Payload]) {
        if payloads.iter().any(|p| matches!(p, Payload::Notification(n) if n.notify_type == NotifyType::INITIAL_CONTACT)) {
            self.initial_contact_received = true;
            ctx.event(Event::InitialContact { conn: self.conn, cookies: self.cookies });
        }
    }

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

    /// Deletes one IPsec SA pair: tells the peer our inbound SPI and the data plane both.
    pub(crate) fn delete_child(&mut self, ctx: &mut Ctx<'_>, index: usize, reason: &str) {
        if index >= self.children.len() {
            return;
        }
        let c = self.children.swap_remove(index);
        let d = Payload::Delete(Delete {
            doi: IPSEC_DOI,
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![c.spi_in.to_be_bytes().to_vec()],
        });
        if let Some(keys) = self.keyed() {
            let _ = self.send_informational(ctx, &keys, vec![d]);
        }
        ctx.event(Event::ChildSaDeleted {
            conn: self.conn,
            inbound_spi: c.spi_in,
            outbound_spi: c.spi_out,
            reason: reason.to_string(),
        });
    }

    /// Removes every IPsec SA pair from the data plane without telling the peer.
    pub(crate) fn drop_children(&mut self, ctx: &mut Ctx<'_>, reason: &str) {
        for c in self.children.drain(..) {
            ctx.event(Event::ChildSaDeleted {
                conn: self.conn,
                inbound_spi: c.spi_in,
                outbound_spi: c.spi_out,
                reason: reason.to_string(),
            });
        }
    }

    /// Deletes this ISAKMP SA and its IPsec SAs, telling the peer when we can.
    pub(crate) fn delete(&mut self, ctx: &mut Ctx<'_>, reason: &str) {
        if let Some(keys) = self.established_keys() {
            while !self.children.is_empty() {
                let last = self.children.len() - 1;
                self.delete_child(ctx, last, reason);
            }
            let spi = [self.cookies.initiator_spi, self.cookies.responder_spi].concat();
            let d = Payload::Delete(Delete {
                doi: IPSEC_DOI,
                protocol: ProtocolId::ISAKMP,
                spi_size: 16,
                spis: vec![spi],
            });
            let _ = self.send_informational(ctx, &keys, vec![d]);
            ctx.event(Event::IkeSaDeleted {
                conn: self.conn,
                cookies: self.cookies,
                reason: reason.to_string(),
            });
        }
        self.phase = Phase1::Dead;
        self.retransmit = None;
    }

    /// Everything time-driven: retransmissions, half-open expiry, DPD, rekey and lifetimes.
    /// Returns true when the endpoint should start a new phase 1 to replace this one.
    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let cookies = self.cookies;
        if let Some(r) = self.retransmit.as_mut() {
            let sent = r.sent;
            match r.due(ctx, cookies) {
                Err((message, tries)) => {
                    let reason = self.no_response(message, tries);
                    self.fail(ctx, reason, None);
                    return false;
                }
                // Silence after MM5 on UDP 4500: wrong PSK or 4500 blocked? Ask the path with
                // a fresh MM1 there, alongside each retransmission (see `SilentAfterMm5`).
                Ok(()) if r.sent > sent && r.name == "MM5" && self.nat.floated => {
                    self.send_udp4500_probe(ctx);
                }
                Ok(()) => {}
            }
        }
        if self.is_half_open() && ctx.now >= later(self.created, ctx.settings.half_open_timeout) {
            let reason = match self.state() {
                // Nothing came back after MM2/AM2: no evidence this was the peer at all.
                Phase1State::MmR2Sent => Failure::Abandoned { after: "MM2" },
                Phase1State::AmR2Sent => Failure::Abandoned { after: "AM2" },
                _ => Failure::Timeout,
            };
            self.fail(ctx, reason, None);
            return false;
        }
        if self.quick_modes_at.is_some_and(|t| ctx.now >= t) {
            self.start_quick_modes(ctx);
        }
        self.quick_mode_timers(ctx);
        let Some(est) = self.established_at else {
            return false;
        };
        if ctx.now >= later(est, self.lifetime) {
            self.delete(ctx, "ISAKMP SA lifetime expired");
            return false;
        }
        self.dpd_timer(ctx);
        if matches!(self.phase, Phase1::Dead) {
            return false;
        }
        self.child_lifetimes(ctx);
        if self.role == Role::Initiator
            && !self.rekey_started
            && self
                .phase1_rekey_at(ctx.settings)
                .is_some_and(|t| ctx.now >= t)
        {
            self.rekey_started = true;
            return true;
        }
        false
    }

    /// Why the retransmissions of `message` went unanswered, as far as we can tell.
    fn no_response(&self, message: &'static str, tries: u32) -> Failure {
        if message != "MM5" {
            return match self.plain_notify {
                Some(notify) => Failure::NoResponseButPlainNotify {
                    message,
                    tries,
                    notify,
                },
                None => Failure::NoResponse { message, tries },
            };
        }
        let probe = match (&self.probe, self.nat.floated) {
            (_, false) => Udp4500Probe::NotNeeded,
            (Some(p), true) if p.answered => Udp4500Probe::Answered,
            (Some(_), true) => Udp4500Probe::Unanswered,
            (None, true) => return Failure::NoResponse { message, tries },
        };
        Failure::SilentAfterMm5 { tries, probe }
    }

    /// RFC 3706 §5.5: R-U-THERE after `interval` of silence, a new sequence number per try;
    /// the peer is dead once an R-U-THERE is out and nothing authenticated has arrived for
    /// `timeout` since the last message (as strongSwan counts its IKEv1 dpd_timeout).
    fn dpd_timer(&mut self, ctx: &mut Ctx<'_>) {
        let Some(dpd) = ctx.cfg.dpd else { return };
        if !self.features.dpd {
            return;
        }
        if self.dpd.outstanding.is_some() && ctx.now >= later(self.last_heard, dpd.timeout) {
            ctx.event(Event::PeerDead {
                conn: self.conn,
                cookies: self.cookies,
            });
            self.drop_children(ctx, "peer dead (DPD)");
            ctx.event(Event::IkeSaDeleted {
                conn: self.conn,
                cookies: self.cookies,
                reason: "peer dead (DPD)".into(),
            });
            self.phase = Phase1::Dead;
            return;
        }
        let due = match self.dpd.outstanding {
            Some((_, sent)) => ctx.now >= later(sent, ctx.settings.retransmit_timeout),
            None => ctx.now >= later(self.last_heard, dpd.interval),
        };
        if !due {
            return;
        }
        self.dpd.seq = self.dpd.seq.wrapping_add(1);
        self.dpd.outstanding = Some((self.dpd.seq, ctx.now));
        let n = self.isakmp_notify(NotifyType::R_U_THERE, self.dpd.seq.to_be_bytes().to_vec());
        if let Some(keys) = self.keyed() {
            let _ = self.send_informational(ctx, &keys, vec![n]);
        }
    }

    /// Rekeys IPsec SAs we initiated before they expire (make-before-break: the old pair is
    /// deleted `rekeyed_drain` after the new one is installed) and deletes those past their
    /// hard lifetime.
    fn child_lifetimes(&mut self, ctx: &mut Ctx<'_>) {
        let mut i = 0;
        while let Some(c) = self.children.get(i) {
            if c.retire_at.is_some_and(|t| ctx.now >= t) {
                if c.peer_deleted {
                    self.drop_child(ctx, i, "deleted by peer");
                } else {
                    self.delete_child(ctx, i, "rekeyed");
                }
                continue;
            }
            if ctx.now >= later(c.established, c.lifetime) {
                if self.drain_expired(ctx, i) {
                    i += 1;
                    continue;
                }
                let Some(c) = self.children.get(i) else {
                    break;
                };
                let (index, ours) = (c.child_index, c.initiated_by_us && c.retire_at.is_none());
                self.delete_child(ctx, i, "lifetime expired");
                // It expired unreplaced (its rekey failed): negotiate the pair afresh.
                let replaced = self
                    .children
                    .iter()
                    .any(|c| c.child_index == index && c.retire_at.is_none());
                let pending = self
                    .quick_modes
                    .iter()
                    .any(|q| q.child_index == index && q.state != QmState::Done);
                if let (true, false, false, Some(keys)) = (ours, replaced, pending, self.keyed()) {
                    self.quick_mode_initiate(ctx, &keys, index, None);
                }
                continue;
            }
            if c.initiated_by_us
                && !c.rekey_started
                && ctx.now >= later(c.established, ctx.settings.rekey_after(c.lifetime))
            {
                if self.has_newer_pair(i) {
                    self.delete_child(ctx, i, "redundant (a newer pair for its selectors is up)");
                    continue;
                }
                let (index, spi) = (c.child_index, c.spi_in);
                if let Some(c) = self.children.get_mut(i) {
                    c.rekey_started = true;
                }
                if let Some(keys) = self.keyed() {
                    self.quick_mode_initiate(ctx, &keys, index, Some(spi));
                }
            }
            i += 1;
        }
    }
}
