//! Protecting Quick Mode messages (RFC 2409 §5.5, App. B): HASH(1)/(2)/(3) in front of the
//! payloads, encryption on the exchange's own IV chain, and the reverse on receipt.

use super::state::QuickMode;

use crate::context::Ctx;
use crate::crypto::{self, Secret};
use crate::error::InputError;
use crate::event::Failure;
use crate::exchange::payloads::parse_protected;
use crate::keyed::Keyed;
use crate::retransmit::Retransmit;
use crate::sa::IkeSa;
use crate::wire::{emit_payloads, ExchangeType, Flags, Header, Payload, PayloadType};

/// A decrypted Quick Mode message: its payloads, the bytes after HASH, and the HASH.
pub(super) struct Opened {
    pub payloads: Vec<Payload>,
    pub rest: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Which Quick Mode HASH leads a message (RFC 2409 §5.5): HASH(1) over the payloads (QM1,
/// CONNECTED), HASH(2) with the initiator's nonce (QM2), HASH(3) over both nonces (QM3).
pub(super) enum QmHash<'a> {
    One,
    Two { ni: &'a [u8] },
    Three { nr: &'a [u8] },
}

impl IkeSa {
    /// Builds HASH + `rest`, encrypts with the exchange's IV chain and sends it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn seal_qm(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        qm: &mut QuickMode,
        name: &'static str,
        rest: Vec<Payload>,
        hash: QmHash<'_>,
        flags: Flags,
        retransmit: bool,
    ) -> Result<(), Failure> {
        let mut rest = rest;
        self.tamper(ctx, name, qm.message_id, &mut rest);
        let (h, skeyid_a) = (keys.hash(), keys.skeyid_a());
        let mut rest_bytes = Vec::new();
        emit_payloads(&rest, &mut rest_bytes);
        let hash = match hash {
            QmHash::One => keys.hash1(qm.message_id, &rest_bytes),
            QmHash::Two { ni } => crypto::qm_hash2(h, skeyid_a, qm.message_id, ni, &rest_bytes),
            QmHash::Three { nr } => crypto::qm_hash3(h, skeyid_a, qm.message_id, &qm.ni, nr),
        };
        let mut payloads = vec![Payload::Hash(hash.to_vec())];
        payloads.extend(rest);
        let header = self.header(ExchangeType::QUICK_MODE, flags, qm.message_id);
        let (data, last) = keys.seal(header, &payloads, &qm.iv)?;
        qm.iv = last;
        let sent = self.send(ctx, name, &payloads, data, qm.message_id, false);
        if retransmit {
            qm.retransmit = Some(Retransmit::new(
                ctx,
                sent.clone(),
                name,
                &payloads,
                qm.message_id,
            ));
        }
        qm.replies.set_reply(Some(sent));
        Ok(())
    }

    /// Decrypts a QM message with the exchange's IV and checks it starts with HASH.
    pub(super) fn open_qm(
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        iv: &mut Vec<u8>,
    ) -> Result<Opened, InputError> {
        let (body, last) = keys.open(datagram, iv)?;
        let (payloads, rest) = parse_protected(header.next_payload, &body)?;
        let Some(Payload::Hash(h)) = payloads.first() else {
            return Err(InputError::Missing(PayloadType::HASH));
        };
        let hash = h.clone();
        *iv = last;
        Ok(Opened {
            payloads,
            rest,
            hash,
        })
    }

    /// Opens the next message of a Quick Mode in flight (QM2, QM3, CONNECTED) on its IV chain
    /// and checks its HASH against `expected` of the bytes after it (RFC 2409 §5.5); the chain
    /// advances only for a message that verifies.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_qm_answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        header: &Header,
        datagram: &[u8],
        qm: &mut QuickMode,
        name: &'static str,
        expected: impl FnOnce(&QuickMode, &[u8]) -> Secret,
    ) -> Result<Vec<Payload>, InputError> {
        let mut iv = qm.iv.clone();
        let Opened {
            payloads,
            rest,
            hash,
        } = Self::open_qm(keys, header, datagram, &mut iv)?;
        if !crypto::ct_eq(&expected(qm, &rest), &hash) {
            return Err(InputError::BadHash(name));
        }
        qm.iv = iv;
        self.log_received(ctx, name, header, &payloads);
        self.last_heard = ctx.now;
        Ok(payloads)
    }
}
