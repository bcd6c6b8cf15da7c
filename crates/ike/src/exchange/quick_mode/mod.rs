//! Quick Mode (RFC 2409 §5.5): QM1–QM3 with optional PFS, traffic selectors as ID payloads,
//! RESPONDER-LIFETIME (RFC 2407 §4.6.3.1) and the commit bit (RFC 2408 §4.6 / CONNECTED).
//! This file takes a message to its exchange and runs the timers; `initiator` and `responder`
//! hold the two sides, `proposal`, `selectors` and `keys` what they negotiate, `seal` how
//! their messages are protected.

mod initiator;
mod keys;
pub(crate) mod proposal;
mod responder;
mod seal;
mod selectors;
pub(crate) mod state;

use self::state::{QmState, QuickMode};

use crate::context::Ctx;
use crate::error::InputError;
use crate::event::{ChildSa, Event, Failure, Role};
use crate::sa::{IkeSa, InstalledChild};
use crate::time::later;
use crate::wire::{Flags, Header};

/// Quick Modes in flight per ISAKMP SA; more QM1s are dropped.
const MAX_QUICK_MODES: usize = 32;

impl IkeSa {
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
        if let Some(reply) = qm.replies.lookup(datagram, ctx.now, ctx.settings) {
            if let Some(r) = reply {
                ctx.out.transmits.extend(r.iter().cloned());
            }
            // A repeat of a message we answered: the peer is alive (RFC 3706 §5.5 idle only).
            self.last_heard = ctx.now;
            self.dpd.outstanding = None;
            self.quick_modes.push(qm);
            return Err(InputError::Duplicate);
        }
        let result = match (qm.role, &qm.state) {
            (Role::Initiator, QmState::I1Sent { .. }) => {
                self.qm2_received(ctx, &keys, header, datagram, &mut qm)
            }
            (Role::Responder, QmState::R2Sent { .. }) => {
                self.qm3_received(ctx, &keys, header, datagram, &mut qm)
            }
            (Role::Initiator, QmState::AwaitConnected { .. }) => {
                self.qm_connected_received(ctx, &keys, header, datagram, &mut qm)
            }
            _ => Err(InputError::Unexpected("Quick Mode already complete")),
        };
        self.quick_modes.push(qm);
        result
    }

    /// Reports a Quick Mode that ended without an IPsec SA.
    pub(super) fn child_failed(&self, ctx: &mut Ctx<'_>, message_id: u32, reason: Failure) {
        ctx.event(Event::ChildSaFailed {
            conn: self.conn,
            cookies: self.cookies,
            message_id,
            reason,
        });
    }

    pub(super) fn install_child(&mut self, ctx: &mut Ctx<'_>, qm: &QuickMode, child: ChildSa) {
        self.children.push(InstalledChild {
            message_id: qm.message_id,
            child_index: qm.child_index,
            spi_in: qm.spi_in,
            spi_out: child.outbound.spi,
            established: ctx.now,
            lifetime: child.lifetime,
            lifetime_kb: child.lifetime_kb,
            initiated_by_us: qm.role == Role::Initiator,
            rekey_started: false,
            retire_at: None,
            peer_deleted: false,
            expired: false,
        });
        ctx.event(Event::ChildSaEstablished(child));
        // Make-before-break: the new pair carries outbound traffic once the peer has it (the
        // daemon holds a pair whose QM3 was ours until a packet arrives on it); the old one is
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
        let mut abandoned = Vec::new();
        let mut i = 0;
        while let Some(qm) = self.quick_modes.get_mut(i) {
            if let Some(r) = qm.retransmit.as_mut() {
                if let Err((name, tries)) = r.due(ctx, cookies) {
                    if qm.role == Role::Responder {
                        abandoned.push(qm.spi_in);
                    }
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
            if let Some(mut echo) = qm.echo.take_if(|e| ctx.now >= e.next_at) {
                echo.resend(ctx, cookies);
            }
            if qm.expires.is_some_and(|t| ctx.now >= t) && qm.retransmit.is_none() {
                self.quick_modes.swap_remove(i);
                continue;
            }
            i += 1;
        }
        // A responder that never got QM3: the initiator may have installed the pair as it
        // sent QM3 (strongSwan does), and would send into an SPI we never use. The DELETE
        // makes both sides agree; one that never got QM2 ignores it.
        for spi in abandoned {
            self.send_esp_delete(ctx, spi);
        }
    }
}
