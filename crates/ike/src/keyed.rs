//! An ISAKMP SA once SKEYID is derived (RFC 2409 §5, App. B): the chosen proposal, its keys
//! and the phase 1 IV chain. A value of this type exists only from MM3/MM4 (AM1/AM2) on, and
//! whatever encrypts, decrypts or hashes a protected message (MM5–MM6, AM3, Quick Mode,
//! Informational, Transaction) takes one: none of them can be built without keys.

use crate::algorithm::IkeHash;
use crate::crypto::{self, Phase1Keys, Secret};
use crate::error::InputError;
use crate::event::Cookies;
use crate::exchange::payloads::split_protected;
use crate::proposal::IkeProposal;
use crate::role::Role;
use crate::wire::{emit_payloads, Flags, Header, Payload, WireError};

/// The keys of an ISAKMP SA and what its authentication hashes cover.
#[derive(Clone)]
pub(crate) struct Keyed {
    pub proposal: IkeProposal,
    pub keys: Phase1Keys,
    /// CBC chain of phase 1 (RFC 2409 App. B): updated after every encrypted phase 1 message,
    /// final once phase 1 is established (the phase 2 IVs start from it).
    pub p1_iv: Vec<u8>,
    /// The public values and the initiator's SA body, hashed into HASH_I/HASH_R (RFC 2409 §5).
    pub g_xi: Vec<u8>,
    pub g_xr: Vec<u8>,
    pub sai_b: Vec<u8>,
    /// Body of the peer's ID payload as received in AM1 (hashed into HASH_I in AM3).
    pub peer_id_b: Vec<u8>,
}

impl Keyed {
    pub fn hash(&self) -> IkeHash {
        self.proposal.hash
    }

    pub fn skeyid_a(&self) -> &Secret {
        &self.keys.skeyid_a
    }

    /// The phase 2 / Informational IV of `message_id` (RFC 2409 App. B).
    pub fn phase2_iv(&self, message_id: u32) -> Vec<u8> {
        crypto::phase2_iv(
            self.proposal.hash,
            &self.p1_iv,
            message_id,
            self.proposal.cipher.block_len(),
        )
    }

    /// HASH(1) of Quick Mode and Informational (RFC 2409 §5.5, §5.7) over `rest`.
    pub fn hash1(&self, message_id: u32, rest: &[u8]) -> Secret {
        crypto::qm_hash1(self.hash(), self.skeyid_a(), message_id, rest)
    }

    /// Encrypts `payloads` behind `header` with `iv`; returns the message and the last
    /// ciphertext block, the next IV of the chain (RFC 2409 App. B). Padding is zeros.
    pub fn seal(
        &self,
        mut header: Header,
        payloads: &[Payload],
        iv: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), crate::event::Failure> {
        let mut body = Vec::with_capacity(256);
        let first = emit_payloads(payloads, &mut body);
        let block = self.proposal.cipher.block_len();
        let padded = body.len().div_ceil(block) * block;
        body.resize(padded, 0);
        crypto::cipher::encrypt(self.proposal.cipher, &self.keys.enc_key, iv, &mut body)
            .map_err(|e| crate::event::Failure::Malformed(format!("encryption failed: {e}")))?;
        let last = body
            .get(body.len().saturating_sub(block)..)
            .unwrap_or_default()
            .to_vec();
        header.flags = Flags(header.flags.0 | Flags::ENCRYPTION);
        header.next_payload = first;
        header.length = u32::try_from(Header::LEN + body.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(Header::LEN + body.len());
        header.emit(&mut out);
        out.extend_from_slice(&body);
        Ok((out, last))
    }

    /// Decrypts the body of an encrypted message with `iv`; returns the plaintext (with its
    /// padding) and the last ciphertext block. Errors mean the keys differ or the message is bad.
    pub fn open(&self, datagram: &[u8], iv: &[u8]) -> Result<(Vec<u8>, Vec<u8>), WireError> {
        let mut body = datagram
            .get(Header::LEN..)
            .ok_or(WireError::Truncated)?
            .to_vec();
        let block = self.proposal.cipher.block_len();
        if body.is_empty() || body.len() % block != 0 {
            return Err(WireError::Truncated);
        }
        let last = body
            .get(body.len() - block..)
            .ok_or(WireError::Truncated)?
            .to_vec();
        crypto::cipher::decrypt(self.proposal.cipher, &self.keys.enc_key, iv, &mut body)
            .map_err(|_| WireError::Truncated)?;
        Ok((body, last))
    }

    /// Decrypts a protected message with `iv` and checks its HASH(1) (RFC 2409 §5.5, §5.7) from
    /// the generic payload headers alone, so a message whose payloads do not decode can still be
    /// told to be the peer's. `Ok(false)`: it decrypted, but the HASH does not verify.
    pub fn hash1_verifies(
        &self,
        header: &Header,
        datagram: &[u8],
        iv: &[u8],
    ) -> Result<bool, InputError> {
        let (body, _) = self.open(datagram, iv)?;
        let (received, rest) = split_protected(header.next_payload, &body)?;
        let expected = self.hash1(header.message_id, &rest);
        Ok(crypto::ct_eq(&expected, &received))
    }

    /// HASH_I when `of` is the initiator, HASH_R when it is the responder (RFC 2409 §5), over
    /// `id_b`, the body of the ID payload that travels with it.
    pub fn auth_hash(&self, cookies: &Cookies, of: Role, id_b: &[u8]) -> Secret {
        let (ci, cr) = (&cookies.initiator_spi, &cookies.responder_spi);
        let (h, skeyid) = (self.proposal.hash, &self.keys.skeyid);
        match of {
            Role::Initiator => {
                crypto::hash_i(h, skeyid, &self.g_xi, &self.g_xr, ci, cr, &self.sai_b, id_b)
            }
            Role::Responder => {
                crypto::hash_r(h, skeyid, &self.g_xr, &self.g_xi, cr, ci, &self.sai_b, id_b)
            }
        }
    }
}
