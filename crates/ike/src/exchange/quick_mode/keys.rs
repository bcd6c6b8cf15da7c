//! The keys of an IPsec SA pair (RFC 2409 §5.5): our SPI, the optional PFS exchange and
//! KEYMAT for each direction.

use super::proposal::is_udp_mode;
use super::state::{Agreed, QuickMode};

use crate::context::Ctx;
use crate::crypto::{self, DhPrivate, Secret};
use crate::event::{ChildSa, EspEncapsulation, EspKeys};
use crate::keyed::Keyed;
use crate::sa::IkeSa;
use crate::wire::ProtocolId;

/// Our inbound SPI for a new SA: one no other SA of ours has (see `crate::spi`).
pub(super) fn new_spi(ctx: &mut Ctx<'_>) -> u32 {
    ctx.spis.next()
}

/// The PFS exchange of a Quick Mode (RFC 2409 §5.5): our DH pair against the peer's KE.
pub(super) enum Pfs {
    /// Neither side sent KE.
    Off,
    /// g^xy of the Quick Mode, hashed into KEYMAT.
    On(Secret),
    /// The peer's public value is not a valid one of the group.
    Invalid,
    /// Only one side has a KE.
    OneSided,
}

pub(super) fn pfs_secret(dh: Option<&DhPrivate>, ke: Option<&Vec<u8>>) -> Pfs {
    match (dh, ke) {
        (Some(dh), Some(ke)) => dh.shared_secret(ke).map_or(Pfs::Invalid, Pfs::On),
        (None, None) => Pfs::Off,
        _ => Pfs::OneSided,
    }
}

impl IkeSa {
    /// KEYMAT for both directions (RFC 2409 §5.5): each keyed by the SPI its receiver chose.
    pub(super) fn child_sa(
        &self,
        ctx: &Ctx<'_>,
        keys: &Keyed,
        qm: &QuickMode,
        agreed: &Agreed,
    ) -> ChildSa {
        let choice = agreed.choice;
        let cipher_len = choice.proposal.cipher.keymat_len();
        let len = cipher_len + choice.proposal.integrity.map_or(0, |i| i.key_len());
        let (ni, nr) = (&qm.ni, &agreed.nr);
        let g = agreed.g_qm_xy.as_ref().map(|s| s.as_slice());
        let direction = |spi: u32| {
            let km = crypto::keymat(
                keys.hash(),
                &keys.keys.skeyid_d,
                g,
                ProtocolId::ESP.0,
                &spi.to_be_bytes(),
                ni,
                nr,
                len,
            );
            let (e, a) = km.split_at(cipher_len.min(km.len()));
            EspKeys {
                spi,
                enc_key: Secret::new(e.to_vec()),
                auth_key: Secret::new(a.to_vec()),
            }
        };
        let encapsulation = if is_udp_mode(choice.encap_mode) || self.nat.floated {
            EspEncapsulation::Udp {
                local_port: self.local.port(),
                remote_port: self.remote.port(),
            }
        } else {
            EspEncapsulation::Raw
        };
        ChildSa {
            conn: self.conn,
            ike: self.cookies,
            message_id: qm.message_id,
            local: self.local,
            remote: self.remote,
            local_ts: qm.local_ts,
            remote_ts: qm.remote_ts,
            cipher: choice.proposal.cipher,
            integrity: choice.proposal.integrity,
            esn: choice.proposal.esn,
            pfs: choice.proposal.pfs_group,
            encapsulation,
            inbound: direction(qm.spi_in),
            outbound: direction(agreed.spi_out),
            lifetime: choice.lifetime,
            lifetime_kb: choice.lifetime_kb.or(ctx.cfg.esp_lifetime_kb),
            role: qm.role,
        }
    }
}
