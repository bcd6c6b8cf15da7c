//! Quick Mode as initiator (RFC 2409 §5.5): QM1 out, QM2 in, QM3 out, and CONNECTED when
//! the responder set the commit bit (RFC 2408 §4.6).

use std::time::Duration;

use super::keys::{new_spi, pfs_secret, Pfs};
use super::proposal::{
    accept_esp, describe_esp, encap_mode, esp_offer, no_esp_proposal, reserved_spi,
};
use super::seal::QmHash;
use super::selectors::{ids_of, narrowed};
use super::state::{Agreed, QmState, QuickMode, CONNECTED, LINGER, QM3_ECHO_AFTER};

use crate::context::Ctx;
use crate::crypto;
use crate::error::InputError;
use crate::event::{Failure, Role};
use crate::exchange::payloads::{find, ke_of, nonce_of, nonce_ok, sa_of};
use crate::keyed::Keyed;
use crate::retransmit::Retransmit;
use crate::sa::IkeSa;
use crate::time::later;
use crate::wire::{Flags, Header, Identification, Payload, PayloadType};

impl IkeSa {
    /// The lifetimes a Quick Mode offers: ours, or for a rekey the shorter of ours and those
    /// the pair it replaces ended up with. A peer that keeps a shorter lifetime of its own
    /// without a RESPONDER-LIFETIME notify (strongSwan with `life_bytes`: "received 0
    /// lifebytes, configured …") keeps it for the new pair too; offered ours alone, the new
    /// pair had no byte limit here, was never rekeyed, and expired at the peer.
    fn rekey_lifetimes(
        &self,
        cfg: &crate::config::ConnectionConfig,
        replaces: Option<u32>,
    ) -> (Duration, Option<u64>) {
        let old = replaces.and_then(|spi| self.children.iter().find(|c| c.spi_in == spi));
        let Some(old) = old else {
            return (cfg.esp_lifetime, cfg.esp_lifetime_kb);
        };
        let kb = match (old.lifetime_kb, cfg.esp_lifetime_kb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        (old.lifetime.min(cfg.esp_lifetime), kb)
    }

    /// QM1: HDR*, HASH(1), SA, Ni [, KE] , IDci, IDcr. True when QM1 went out or waits its
    /// turn behind ours in flight.
    pub(crate) fn quick_mode_initiate(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        child_index: usize,
        replaces: Option<u32>,
    ) -> bool {
        let Some(mut child) = ctx.cfg.children.get(child_index).copied() else {
            return false;
        };
        self.quiet_qm3_echoes();
        if self.our_quick_mode_in_flight() {
            // One at a time, as strongSwan initiates: it recognises a retransmitted request
            // only if it is the last request it saw, so a QM1 resent after another QM1 would
            // be decrypted as new, with the wrong IV (see `quick_mode_awaits_answer`).
            if !self.queued_quick_modes.contains(&(child_index, replaces)) {
                self.queued_quick_modes.push((child_index, replaces));
            }
            return true;
        }
        let v6 = child.local_ts.addr.is_ipv6();
        if ctx.cfg.remote_access.is_some() {
            // A remote-access client's pair of a family is named by the address the gateway
            // assigned in that family; without one it is not negotiated (issue 14).
            let Some(ts) = self.assigned_local.iter().find(|t| t.addr.is_ipv6() == v6) else {
                return false;
            };
            child.local_ts = *ts;
        }
        if ctx.cfg.gateway.is_some() {
            // A gateway rekeys a client's pair with the client's address (issue 14).
            let Some(a) = self.assigned_remote.iter().find(|a| a.is_ipv6() == v6) else {
                return false;
            };
            child.remote_ts = crate::config::TrafficSelector::host(*a);
        }
        let message_id = ctx.message_id();
        let iv = keys.phase2_iv(message_id);
        let spi_in = new_spi(ctx);
        let ni = ctx.random::<32>().to_vec();
        let proposals = self.esp_proposals(ctx.cfg).into_owned();
        let pfs = proposals.first().and_then(|p| p.pfs_group);
        let dh = pfs.map(|g| ctx.new_dh(g));
        let mode = encap_mode(self);
        let (lifetime, lifetime_kb) = self.rekey_lifetimes(ctx.cfg, replaces);
        let offer = esp_offer(&proposals, spi_in, mode, lifetime, lifetime_kb);
        let mut rest = vec![Payload::Sa(offer), Payload::Nonce(ni.clone())];
        if let Some(dh) = &dh {
            rest.push(Payload::KeyExchange(dh.public_value()));
        }
        rest.push(Payload::Identification(Identification::new(
            &child.local_ts.to_id_value(),
            child.local_ts.protocol,
            child.local_ts.port,
        )));
        rest.push(Payload::Identification(Identification::new(
            &child.remote_ts.to_id_value(),
            child.remote_ts.protocol,
            child.remote_ts.port,
        )));
        let mut qm = QuickMode::new(
            message_id,
            Role::Initiator,
            QmState::I1Sent { dh },
            iv,
            child_index,
            &child,
            spi_in,
            ni,
        );
        qm.replaces = replaces;
        let flags = if ctx.cfg.request_commit {
            Flags(Flags::COMMIT)
        } else {
            Flags(0)
        };
        match self.seal_qm(ctx, keys, &mut qm, "QM1", rest, QmHash::One, flags, true) {
            Ok(()) => {
                self.quick_modes.push(qm);
                true
            }
            Err(f) => {
                self.child_failed(ctx, message_id, f);
                false
            }
        }
    }

    /// A Quick Mode of ours about to start ends the QM3 repeats of the ones before (their QM3
    /// went twice already), unless one still waits for its QM2: a setup of many pairs is not
    /// slowed down by a second each.
    fn quiet_qm3_echoes(&mut self) {
        if self.quick_modes.iter().any(QuickMode::awaits_qm2) {
            return;
        }
        for q in &mut self.quick_modes {
            q.echo = None;
        }
    }

    /// A Quick Mode of ours (as initiator) is waiting for its answer.
    pub(crate) fn our_quick_mode_in_flight(&self) -> bool {
        self.quick_modes.iter().any(QuickMode::ours_in_flight)
    }

    /// Once no Quick Mode of ours is in flight: sends the Informational requests held
    /// meanwhile, then starts the next queued Quick Mode.
    pub(crate) fn start_held_exchanges(&mut self, ctx: &mut Ctx<'_>) {
        if !self.queued_quick_modes.is_empty() {
            self.quiet_qm3_echoes();
        }
        self.release_held_informationals(ctx);
        if self.queued_quick_modes.is_empty() || self.our_quick_mode_in_flight() {
            return;
        }
        let Some(keys) = self.established_keys() else {
            return;
        };
        let (index, replaces) = self.queued_quick_modes.remove(0);
        self.quick_mode_initiate(ctx, &keys, index, replaces);
    }

    /// QM2 → QM3 as initiator; installs the SA pair (or waits for CONNECTED).
    pub(super) fn qm2_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
    ) -> Result<(), InputError> {
        let payloads =
            self.open_qm_answer(ctx, keys, header, datagram, qm, "QM2", |qm, rest| {
                crypto::qm_hash2(keys.hash(), keys.skeyid_a(), qm.message_id, &qm.ni, rest)
            })?;
        qm.retransmit = None;
        let answer = find(&payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        let nr = find(&payloads, nonce_of)
            .ok_or(InputError::Missing(PayloadType::NONCE))?
            .clone();
        let fail_qm = |sa: &IkeSa, ctx: &mut Ctx<'_>, qm: &mut QuickMode, reason: Failure| {
            sa.child_failed(ctx, qm.message_id, reason);
            qm.state = QmState::Done;
            qm.expires = Some(later(ctx.now, LINGER));
        };
        let ours = self.esp_proposals(ctx.cfg);
        let choice = if nonce_ok(&nr) {
            accept_esp(&ours, answer)
        } else {
            None
        };
        let Some((mut choice, spi)) = choice else {
            let reason = no_esp_proposal(&ours, describe_esp(answer));
            fail_qm(self, ctx, qm, reason);
            return Ok(());
        };
        self.cap_answered_lifetimes(ctx, &mut choice, &payloads);
        if let Some(reason) = narrowed(qm, &ids_of(&payloads)) {
            fail_qm(self, ctx, qm, reason);
            return Ok(());
        }
        let QmState::I1Sent { dh } = &qm.state else {
            return Err(InputError::Unexpected("Quick Mode already complete"));
        };
        let g_qm_xy = match pfs_secret(dh.as_ref(), find(&payloads, ke_of)) {
            Pfs::Off => None,
            Pfs::On(s) => Some(s),
            Pfs::Invalid => {
                fail_qm(self, ctx, qm, Failure::InvalidKeyExchange);
                return Ok(());
            }
            Pfs::OneSided => {
                fail_qm(
                    self,
                    ctx,
                    qm,
                    no_esp_proposal(
                        &self.esp_proposals(ctx.cfg),
                        "answer without the KE payload PFS needs".into(),
                    ),
                );
                return Ok(());
            }
        };
        let spi_out = u32::from_be_bytes(
            spi.as_slice()
                .try_into()
                .map_err(|_| InputError::Unexpected("SPI size"))?,
        );
        if crate::spi::is_reserved(spi_out) {
            fail_qm(self, ctx, qm, Failure::Malformed(reserved_spi(spi_out)));
            return Ok(());
        }
        let agreed = Agreed {
            choice,
            spi_out,
            nr,
            g_qm_xy,
        };
        // With the commit bit QM3 is resent until CONNECTED arrives: a lost QM4 is recovered
        // by the responder answering the repeated QM3 from its reply cache.
        let commit = header.flags.contains(Flags::COMMIT);
        let hash = QmHash::Three { nr: &agreed.nr };
        self.seal_qm(ctx, keys, qm, "QM3", Vec::new(), hash, Flags(0), commit)
            .map_err(|_| InputError::Unexpected("seal"))?;
        if let (false, Some(sent)) = (commit, qm.replies.reply()) {
            let mut echo = Retransmit::new(ctx, sent.clone(), "QM3", &[], qm.message_id);
            echo.payloads =
                "[ HASH ] (planned copy, not a loss: QM3 goes twice at once and again a second later)"
                    .into();
            echo.resend(ctx, self.cookies);
            echo.next_at = later(ctx.now, QM3_ECHO_AFTER);
            qm.echo = Some(echo);
        }
        qm.replies.remember_request(datagram);
        let child = self.child_sa(ctx, keys, qm, &agreed);
        qm.expires = Some(later(ctx.now, LINGER));
        if commit {
            qm.state = QmState::AwaitConnected {
                pending: Box::new(child),
            };
        } else {
            qm.state = QmState::Done;
            self.install_child(ctx, qm, child);
        }
        Ok(())
    }

    /// CONNECTED after a commit-bit QM2: now the initiator may use the SA.
    pub(super) fn qm_connected_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
    ) -> Result<(), InputError> {
        let payloads =
            self.open_qm_answer(ctx, keys, header, datagram, qm, "QM4", |qm, rest| {
                keys.hash1(qm.message_id, rest)
            })?;
        let connected = payloads
            .iter()
            .any(|p| matches!(p, Payload::Notification(n) if n.notify_type == CONNECTED));
        if connected {
            if let QmState::AwaitConnected { pending } =
                std::mem::replace(&mut qm.state, QmState::Done)
            {
                qm.retransmit = None;
                self.install_child(ctx, qm, *pending);
            }
        }
        Ok(())
    }
}
