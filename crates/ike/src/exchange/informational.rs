//! Informational exchanges (RFC 2408 §4.8, RFC 2409 §5.7): notifies, deletes and DPD (RFC 3706)
//! messages, and deleting IPsec SAs and the ISAKMP SA.

use crate::config::Phase1Mode;
use crate::context::Ctx;
use crate::crypto;
use crate::error::InputError;
use crate::event::{Event, Failure, Role};
use crate::exchange::payloads::parse_protected;
use crate::exchange::quick_mode::proposal::no_esp_proposal;
use crate::exchange::quick_mode::state::QmState;
use crate::keyed::Keyed;
use crate::sa::{IkeSa, Phase1};
use crate::wire::{
    self, Delete, ExchangeType, Flags, Header, Notification, NotifyType, Payload, ProtocolId,
    WireError, IPSEC_DOI,
};

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

    /// A DELETE of this ISAKMP SA (RFC 2408 §3.15: both cookies as its SPI).
    pub(crate) fn isakmp_delete(&self) -> Payload {
        Payload::Delete(Delete {
            doi: IPSEC_DOI,
            protocol: ProtocolId::ISAKMP,
            spi_size: 16,
            spis: vec![[self.cookies.initiator_spi, self.cookies.responder_spi].concat()],
        })
    }

    /// The peer proved the keys (its HASH or SIG verified) but not the configured identity.
    /// A Main Mode initiator refuses after MM6, when the peer's phase 1 is complete: a plain
    /// notify is dropped there (charon: "message verification failed") and the peer's ISAKMP
    /// SA stayed up. So the notify and a DELETE of the SA go protected (RFC 2408 §5), as
    /// strongSwan does, in two messages: charon reads no further than an error notify.
    /// Before that, the plain notify as for other phase 1 refusals.
    pub(crate) fn refuse_identity(&mut self, ctx: &mut Ctx<'_>, keys: &Keyed, reason: Failure) {
        if self.role == Role::Initiator && self.mode == Phase1Mode::Main {
            let n = self.isakmp_notify(NotifyType::INVALID_ID_INFORMATION, Vec::new());
            let _ = self.send_informational(ctx, keys, vec![n]);
            let d = self.isakmp_delete();
            let _ = self.send_informational(ctx, keys, vec![d]);
            self.fail(ctx, reason, None);
        } else {
            self.fail(ctx, reason, Some(NotifyType::INVALID_ID_INFORMATION));
        }
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

    /// Sends an Informational request of ours that answers nothing (a DELETE, an INVALID-SPI),
    /// or holds it while a Quick Mode of ours awaits its answer: strongSwan takes every request
    /// as its new "last request" and recognises a retransmitted QM1 only by that, so a message
    /// between QM1 and its copy makes the copy look new (decrypted with the wrong IV). Held
    /// messages go once that Quick Mode ends (`start_held_exchanges`).
    pub(crate) fn send_unsolicited(&mut self, ctx: &mut Ctx<'_>, keys: &Keyed, rest: Vec<Payload>) {
        if self.our_quick_mode_in_flight() {
            self.held_informationals.push(rest);
        } else {
            let _ = self.send_informational(ctx, keys, rest);
        }
    }

    /// Sends the held Informational requests (`send_unsolicited`) once no Quick Mode of ours
    /// awaits its answer.
    pub(crate) fn release_held_informationals(&mut self, ctx: &mut Ctx<'_>) {
        if self.held_informationals.is_empty() || self.our_quick_mode_in_flight() {
            return;
        }
        let Some(keys) = self.established_keys() else {
            return;
        };
        for rest in std::mem::take(&mut self.held_informationals) {
            let _ = self.send_informational(ctx, &keys, rest);
        }
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
        if !protected && self.is_established() {
            // Unauthenticated notifies cannot tear down an authenticated SA.
            self.log_received_noted(
                ctx,
                "INFO",
                header,
                &payloads,
                "(unprotected after phase 1: ignored, anyone who saw the cookies can forge it)",
            );
            return Err(InputError::Unexpected("unprotected INFO after phase 1"));
        }
        self.log_received(ctx, "INFO", header, &payloads);
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
            // One that names the SPI of a Quick Mode of ours in flight refuses that Quick Mode.
            (NotifyType::INVALID_SPI, _)
                if protected
                    && self.is_established()
                    && n.protocol == ProtocolId::ESP
                    && !self.names_quick_mode_in_flight(&n.spi) =>
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
                let by_spi_match = self.names_quick_mode_in_flight(&n.spi);
                let qm = self
                    .quick_modes
                    .iter_mut()
                    .filter(|q| q.awaits_qm2())
                    .find(|q| !by_spi_match || by_spi.is_some_and(|s| s == q.spi_in));
                match qm {
                    Some(q) => {
                        q.retransmit = None;
                        q.state = QmState::Done;
                        q.expires = Some(ctx.now);
                        let message_id = q.message_id;
                        let reason = if t == NotifyType::NO_PROPOSAL_CHOSEN {
                            no_esp_proposal(
                                &ctx.cfg.esp_proposals,
                                "not disclosed (the peer answered QM1 with a protected NO-PROPOSAL-CHOSEN)".into(),
                            )
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
                self.deleted_by_peer = true;
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

    /// True when `spi` is the inbound SPI of a Quick Mode of ours still waiting for its answer.
    fn names_quick_mode_in_flight(&self, spi: &[u8]) -> bool {
        let Ok(spi) = <[u8; 4]>::try_from(spi).map(u32::from_be_bytes) else {
            return false;
        };
        self.quick_modes
            .iter()
            .any(|q| q.retransmit.is_some() && q.spi_in == spi)
    }

    /// INITIAL-CONTACT in MM5/AM3 (RFC 2407 §4.6.3.3).
    pub(crate) fn note_initial_contact(&mut self, ctx: &mut Ctx<'_>, payloads: &[Payload]) {
        if payloads.iter().any(|p| matches!(p, Payload::Notification(n) if n.notify_type == NotifyType::INITIAL_CONTACT)) {
            self.initial_contact_received = true;
            ctx.event(Event::InitialContact { conn: self.conn, cookies: self.cookies });
        }
    }

    /// Deletes one IPsec SA pair: tells the peer our inbound SPI and the data plane both.
    pub(crate) fn delete_child(&mut self, ctx: &mut Ctx<'_>, index: usize, reason: &str) {
        if index >= self.children.len() {
            return;
        }
        let c = self.children.swap_remove(index);
        self.send_esp_delete(ctx, c.spi_in);
        ctx.event(Event::ChildSaDeleted {
            conn: self.conn,
            inbound_spi: c.spi_in,
            outbound_spi: c.spi_out,
            reason: reason.to_string(),
        });
    }

    /// Tells the peer that our inbound SPI `spi` is gone (RFC 2408 §3.15): it deletes the IPsec
    /// SA it sends on.
    pub(crate) fn send_esp_delete(&mut self, ctx: &mut Ctx<'_>, spi: u32) {
        let d = Payload::Delete(Delete {
            doi: IPSEC_DOI,
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![spi.to_be_bytes().to_vec()],
        });
        if let Some(keys) = self.keyed() {
            self.send_unsolicited(ctx, &keys, vec![d]);
        }
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
            // The SA ends: its Quick Modes are abandoned, and what they held goes now.
            self.queued_quick_modes.clear();
            for q in self.quick_modes.iter_mut().filter(|q| q.ours_in_flight()) {
                q.retransmit = None;
            }
            self.release_held_informationals(ctx);
            while !self.children.is_empty() {
                let last = self.children.len() - 1;
                self.delete_child(ctx, last, reason);
            }
            let d = self.isakmp_delete();
            if !self.children_handed_over {
                let _ = self.send_informational(ctx, &keys, vec![d]);
            }
            ctx.event(Event::IkeSaDeleted {
                conn: self.conn,
                cookies: self.cookies,
                reason: reason.to_string(),
            });
        }
        self.phase = Phase1::Dead;
        self.retransmit = None;
    }
}
