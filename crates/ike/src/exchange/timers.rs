//! Everything time-driven in an ISAKMP SA: retransmissions, half-open expiry, DPD (RFC 3706
//! §5.5), the lifetimes and rekeys of the ISAKMP SA and its IPsec SAs.

use std::time::{Duration, Instant};

use crate::config::ConnectionConfig;
use crate::context::{Ctx, Datagram};
use crate::event::{Event, Failure, Role, Udp4500Probe};
use crate::sa::{IkeSa, Phase1, Phase1State};
use crate::time::later;
use crate::wire::NotifyType;

/// How long a responder keeps an unfinished phase 1: strongSwan's default
/// `half_open_timeout` (ours is `Settings::half_open_timeout`, 60 s).
const PEER_HALF_OPEN: Duration = Duration::from_secs(30);

impl IkeSa {
    /// Everything time-driven: retransmissions, half-open expiry, DPD, rekey and lifetimes.
    /// Returns true when the endpoint should start a new phase 1 to replace this one.
    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_>) -> bool {
        let cookies = self.cookies;
        if let Some(message) = self.overdue_mm3(ctx) {
            let after = ctx.now.saturating_duration_since(self.created);
            self.fail(ctx, Failure::Overdue { message, after }, None);
            return false;
        }
        if let Some(r) = self.retransmit.as_mut() {
            let sent = r.sent;
            match r.due(ctx, cookies) {
                Err((message, tries)) => {
                    // A responder's AM2 went unanswered: nothing shows the AM1 came from the
                    // peer (a spoofed one ends so), as when the half-open timeout ends it.
                    let reason = if self.awaits_first_answer() {
                        Failure::Abandoned { after: message }
                    } else {
                        self.no_response(message, tries)
                    };
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
        if self.is_half_open() && ctx.now >= later(self.progressed, ctx.settings.half_open_timeout)
        {
            let reason = match self.state() {
                // Nothing came back after MM2/AM2: no evidence this was the peer at all.
                _ if self.phase.computing().is_some() => Failure::Timeout,
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
        self.transaction_timer(ctx);
        if matches!(self.phase, Phase1::Dead) {
            return false;
        }
        self.quick_mode_timers(ctx);
        // One that gave up just now lets what waited for it go.
        self.start_held_exchanges(ctx);
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
        self.keepalive_timer(ctx);
        self.child_lifetimes(ctx);
        if !self.rekey_started
            && self
                .phase1_renew_at(ctx.cfg, ctx.settings)
                .is_some_and(|t| ctx.now >= t)
        {
            self.rekey_started = true;
            return true;
        }
        false
    }

    /// Main Mode initiator, MM3 retransmission due: the responder has held its half-open state
    /// since our first MM1 at the earliest, and strongSwan drops it `PEER_HALF_OPEN` after.
    /// Past that, a retransmission reaches a peer that has likely forgotten the exchange
    /// (seen against strongSwan at 20 % loss: MM4 lost, MM3 retransmitted for 165 s into
    /// nothing), so the attempt ends and the daemon's retry starts afresh with MM1. MM5 keeps
    /// its retransmissions: their silence is evidence for `SilentAfterMm5`'s diagnosis.
    fn overdue_mm3(&self, ctx: &Ctx<'_>) -> Option<&'static str> {
        let r = self.retransmit.as_ref()?;
        let due = ctx.now >= r.next_at;
        let late = ctx.now >= later(self.created, PEER_HALF_OPEN);
        (self.role == Role::Initiator && r.name == "MM3" && due && late).then_some(r.name)
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
    /// When the next NAT-keepalive is due: only once established, floated to UDP 4500 and with
    /// ourselves behind the NAT (RFC 3948 §4; "force" counts as behind one, as strongSwan).
    pub(crate) fn keepalive_due(&self, cfg: &ConnectionConfig) -> Option<Instant> {
        let every = cfg.nat_keepalive?;
        let since = self.keepalive_sent.or(self.established_at)?;
        (self.nat.floated && self.nat.local_behind_nat).then(|| later(since, every))
    }

    fn keepalive_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.keepalive_due(ctx.cfg).is_some_and(|t| ctx.now >= t) {
            ctx.out
                .transmits
                .push_back(Datagram::nat_keepalive(self.local, self.remote));
            self.keepalive_sent = Some(ctx.now);
        }
    }

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
        // A Quick Mode of ours awaiting its answer probes the peer already, and an exchange
        // beside it breaks strongSwan, which recognises a retransmitted request only if it is
        // the last request it saw: after our R-U-THERE, a resent QM1 is decrypted as new, with
        // the wrong IV, which also corrupts the IV its QM3 needs (seen at 20 % loss: the pair up
        // on our side, never on strongSwan's). strongSwan itself runs one exchange at a time.
        if self.quick_mode_awaits_answer() {
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
                let pending = self.quick_mode_pending(index);
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
