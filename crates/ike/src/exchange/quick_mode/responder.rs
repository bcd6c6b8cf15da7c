//! Quick Mode as responder (RFC 2409 §5.5): QM1 in, QM2 out, QM3 in (and CONNECTED out when
//! the initiator asked with the commit bit, RFC 2408 §4.6).

use std::time::Duration;

use super::keys::{new_spi, pfs_secret, Pfs};
use super::proposal::{choose_esp, describe_esp, no_esp_proposal, reserved_spi, transport_only};
use super::seal::QmHash;
use super::selectors::{ids_of, requested_pair};
use super::state::{Agreed, QmState, QuickMode, CONNECTED, LINGER};

use crate::context::Ctx;
use crate::crypto;
use crate::error::InputError;
use crate::event::{Event, Failure, Role};
use crate::exchange::payloads::{find, ke_of, nonce_of, nonce_ok, sa_of};
use crate::keyed::Keyed;
use crate::sa::IkeSa;
use crate::time::later;
use crate::wire::{
    Flags, Header, Notification, NotifyType, Payload, PayloadType, Proposal, ProtocolId, SaPayload,
    IPSEC_DOI,
};

impl IkeSa {
    /// QM1, authenticated from the generic payload headers first: a QM1 whose payloads do
    /// not decode (strongSwan's proposal without transforms for an ESP cipher IKEv1 cannot
    /// name) is still the peer's, and gets a protected answer instead of silence. A bad HASH(1)
    /// is answered with INVALID-HASH-INFORMATION, at most once a second (RFC 2409 §5.5; the
    /// cookies are public).
    fn qm1_open(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        iv: &mut Vec<u8>,
    ) -> Result<Vec<Payload>, InputError> {
        if !keys.hash1_verifies(header, datagram, iv)? {
            if self
                .hash_notify_at
                .is_none_or(|t| ctx.now >= later(t, Duration::from_secs(1)))
            {
                self.hash_notify_at = Some(ctx.now);
                let n = esp_notify(NotifyType::INVALID_HASH_INFORMATION, Vec::new());
                let _ = self.send_informational(ctx, keys, vec![n]);
            }
            return Err(InputError::BadHash("QM1"));
        }
        let payloads = match Self::open_qm(keys, header, datagram, iv) {
            Ok(o) => o.payloads,
            Err(InputError::Wire(e)) => {
                self.log_received(ctx, "QM1", header, &[]);
                let reason = format!("QM1 cannot be processed: {e}");
                self.refuse(
                    ctx,
                    "QM1",
                    header.message_id,
                    reason,
                    Some((ProtocolId::ESP, e.notify())),
                    false,
                );
                return Err(InputError::Wire(e));
            }
            Err(e) => return Err(e),
        };
        self.log_received(ctx, "QM1", header, &payloads);
        self.last_heard = ctx.now;
        Ok(payloads)
    }

    /// Refuses QM1 `message_id` with `notify` (protected; naming the SPI `spi`, or none) and
    /// reports why.
    fn qm1_refused(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        message_id: u32,
        reason: Failure,
        (notify, spi): (NotifyType, Vec<u8>),
    ) {
        let _ = self.send_informational(ctx, keys, vec![esp_notify(notify, spi)]);
        self.child_failed(ctx, message_id, reason);
    }

    /// QM1 → QM2 as responder: the pair its IDs ask for, our first matching transform, PFS.
    pub(super) fn qm1_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        mut iv: Vec<u8>,
    ) -> Result<(), InputError> {
        let payloads = self.qm1_open(ctx, keys, header, datagram, &mut iv)?;
        let message_id = header.message_id;
        let offer = find(&payloads, sa_of).ok_or(InputError::Missing(PayloadType::SA))?;
        let ni = find(&payloads, nonce_of)
            .ok_or(InputError::Missing(PayloadType::NONCE))?
            .clone();
        if !nonce_ok(&ni) {
            return Err(InputError::Unexpected("nonce length out of range"));
        }
        let ours = self.esp_proposals(ctx.cfg).into_owned();
        if transport_only(offer) {
            let reason = no_esp_proposal(
                &ours,
                format!(
                    "{}: the peer asks for transport mode, ferrovpn negotiates tunnel mode only",
                    describe_esp(offer)
                ),
            );
            self.qm1_refused(
                ctx,
                keys,
                message_id,
                reason,
                (NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()),
            );
            return Ok(());
        }
        let ids = ids_of(&payloads);
        let child_index = match requested_pair(
            ctx.cfg,
            &ids,
            self.local.ip(),
            self.remote.ip(),
            &self.assigned_remote,
        )? {
            Ok(i) => i,
            Err(reason) => {
                self.qm1_refused(
                    ctx,
                    keys,
                    message_id,
                    reason,
                    (NotifyType::INVALID_ID_INFORMATION, Vec::new()),
                );
                return Ok(());
            }
        };
        let chosen = choose_esp(&ours, offer);
        let Some((prop, transform, mut choice)) = chosen else {
            let reason = no_esp_proposal(&ours, describe_esp(offer));
            self.qm1_refused(
                ctx,
                keys,
                message_id,
                reason,
                (NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()),
            );
            return Ok(());
        };
        let spi_out = u32::from_be_bytes(
            prop.spi
                .as_slice()
                .try_into()
                .map_err(|_| InputError::Unexpected("SPI size"))?,
        );
        if crate::spi::is_reserved(spi_out) {
            let reason = Failure::Malformed(reserved_spi(spi_out));
            // Named, so the initiator matches it to its Quick Mode (its SPI is in the offer).
            let spi = (NotifyType::INVALID_SPI, prop.spi.clone());
            self.qm1_refused(ctx, keys, message_id, reason, spi);
            return Ok(());
        }
        let peer_ke = find(&payloads, ke_of);
        let dh = match (choice.proposal.pfs_group, peer_ke) {
            (Some(g), Some(ke)) if ke.len() == g.public_len() => Some(ctx.new_dh(g)),
            (None, None) => None,
            _ => {
                let theirs = format!(
                    "{} (KE payload inconsistent with PFS group)",
                    describe_esp(offer)
                );
                let reason = no_esp_proposal(&ours, theirs);
                self.qm1_refused(
                    ctx,
                    keys,
                    message_id,
                    reason,
                    (NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()),
                );
                return Ok(());
            }
        };
        let g_qm_xy = match pfs_secret(dh.as_ref(), peer_ke) {
            Pfs::On(s) => Some(s),
            Pfs::Invalid => {
                self.qm1_refused(
                    ctx,
                    keys,
                    message_id,
                    Failure::InvalidKeyExchange,
                    (NotifyType::INVALID_KEY_INFORMATION, Vec::new()),
                );
                return Ok(());
            }
            Pfs::Off | Pfs::OneSided => None,
        };
        let spi_in = new_spi(ctx);
        let nr = ctx.random::<32>().to_vec();
        let mut rest = vec![
            Payload::Sa(SaPayload {
                doi: offer.doi,
                situation: offer.situation,
                proposals: vec![Proposal {
                    number: prop.number,
                    protocol: ProtocolId::ESP,
                    spi: spi_in.to_be_bytes().to_vec(),
                    transforms: vec![transform.clone()],
                }],
            }),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(dh) = &dh {
            rest.push(Payload::KeyExchange(dh.public_value()));
        }
        for id in &ids {
            rest.push(Payload::Identification((*id).clone()));
        }
        rest.extend(self.cap_offered_lifetimes(ctx, &mut choice, spi_in));
        let commit = header.flags.contains(Flags::COMMIT);
        let child = ctx
            .cfg
            .children
            .get(child_index)
            .copied()
            .ok_or(InputError::Unexpected("child"))?;
        let agreed = Box::new(Agreed {
            choice,
            spi_out,
            nr,
            g_qm_xy,
        });
        let mut qm = QuickMode::new(
            message_id,
            Role::Responder,
            QmState::R2Sent { agreed, commit },
            iv,
            child_index,
            &child,
            spi_in,
            ni.clone(),
        );
        if ctx.cfg.gateway.is_some() {
            // The pair is the client's own address, not the whole pool.
            let v6 = qm.remote_ts.addr.is_ipv6();
            if let Some(a) = self.assigned_remote.iter().find(|a| a.is_ipv6() == v6) {
                qm.remote_ts = crate::config::TrafficSelector::host(*a);
            }
        }
        let flags = if commit {
            Flags(Flags::COMMIT)
        } else {
            Flags(0)
        };
        let hash = QmHash::Two { ni: &ni };
        self.seal_qm(ctx, keys, &mut qm, "QM2", rest, hash, flags, true)
            .map_err(|_| InputError::Unexpected("seal"))?;
        qm.replies.remember_request(datagram);
        if let QmState::R2Sent { agreed, .. } = &qm.state {
            let child = self.child_sa(ctx, keys, &qm, agreed);
            ctx.event(Event::ChildSaInboundReady(child));
        }
        self.quick_modes.push(qm);
        Ok(())
    }

    /// QM3 as responder: install; answer the commit bit with CONNECTED.
    pub(super) fn qm3_received(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
    ) -> Result<(), InputError> {
        let QmState::R2Sent { agreed, .. } = &qm.state else {
            return Err(InputError::Unexpected("Quick Mode already complete"));
        };
        let nr = agreed.nr.clone();
        self.open_qm_answer(ctx, keys, header, datagram, qm, "QM3", |qm, _| {
            crypto::qm_hash3(keys.hash(), keys.skeyid_a(), qm.message_id, &qm.ni, &nr)
        })?;
        qm.retransmit = None;
        qm.replies.remember_request(datagram);
        qm.replies.set_reply(None);
        let (agreed, commit) = match std::mem::replace(&mut qm.state, QmState::Done) {
            QmState::R2Sent { agreed, commit } => (agreed, commit),
            other => {
                qm.state = other;
                return Err(InputError::Unexpected("Quick Mode already complete"));
            }
        };
        let child = self.child_sa(ctx, keys, qm, &agreed);
        if commit {
            let n = esp_notify(CONNECTED, agreed.spi_out.to_be_bytes().to_vec());
            let _ = self.seal_qm(
                ctx,
                keys,
                qm,
                "QM4",
                vec![n],
                QmHash::One,
                Flags(Flags::COMMIT),
                false,
            );
        }
        qm.expires = Some(later(ctx.now, LINGER));
        self.install_child(ctx, qm, child);
        Ok(())
    }
}

/// A notify about an ESP SA (RFC 2408 §3.14).
fn esp_notify(notify_type: NotifyType, spi: Vec<u8>) -> Payload {
    Payload::Notification(Notification {
        doi: IPSEC_DOI,
        protocol: ProtocolId::ESP,
        notify_type,
        spi,
        data: Vec::new(),
    })
}
