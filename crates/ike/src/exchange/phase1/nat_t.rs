//! What the peer announces in vendor IDs (DPD, NAT-T, fragmentation) and NAT traversal in
//! phase 1 (RFC 3947 §3–§4): NAT-D payloads, detecting a NAT, floating to UDP 4500, and the
//! UDP 4500 probe.

use std::net::SocketAddr;

use super::offer::offer;
use crate::algorithm::IkeHash;
use crate::config::Fragmentation;
use crate::context::{Ctx, Datagram};
use crate::crypto;
use crate::event::{Cookies, Direction, Event, MessageLog, NatStatus, PeerFeatures, Role};
use crate::sa::{IkeSa, Udp4500ProbeState};
use crate::wire::{self, vendor_id, ExchangeType, Flags, KnownVendor, Payload, PayloadType};

/// Vendor IDs we send: DPD, NAT-T (RFC and the drafts old peers know), FRAGMENTATION (with
/// its IKE flag word, as strongSwan) unless `fragmentation = "no"`.
pub(crate) fn our_vendor_ids(
    role: Role,
    features: &PeerFeatures,
    fragmentation: Fragmentation,
) -> Vec<Payload> {
    let mut v = vec![KnownVendor::Dpd];
    if fragmentation != Fragmentation::No {
        v.push(KnownVendor::Fragmentation);
    }
    match role {
        Role::Initiator => v.extend([
            KnownVendor::NatTRfc3947,
            KnownVendor::NatTDraft02,
            KnownVendor::NatTDraft02N,
        ]),
        Role::Responder if features.nat_t_rfc => v.push(KnownVendor::NatTRfc3947),
        Role::Responder if features.nat_t_draft => v.push(KnownVendor::NatTDraft02N),
        Role::Responder => {}
    }
    v.into_iter()
        .map(|k| Payload::VendorId(vendor_id::vid_bytes(k)))
        .collect()
}

/// Records what the peer announced and picks the NAT-D payload type.
pub(crate) fn learn_vendor_ids(sa: &mut IkeSa, payloads: &[Payload]) {
    for p in payloads {
        if let Payload::VendorId(v) = p {
            match vendor_id::recognise(v) {
                Some(KnownVendor::Dpd) => sa.features.dpd = true,
                Some(KnownVendor::NatTRfc3947) => sa.features.nat_t_rfc = true,
                Some(k) if k.is_nat_t_draft() => sa.features.nat_t_draft = true,
                Some(KnownVendor::Fragmentation) => sa.features.fragmentation = true,
                Some(KnownVendor::CiscoUnity) => sa.features.cisco_unity = true,
                Some(KnownVendor::XAuth) => sa.features.xauth = true,
                Some(KnownVendor::StrongSwan) => sa.features.strongswan = true,
                _ => {}
            }
        }
    }
    if sa.nat_d_type.is_none() {
        sa.nat_d_type = if sa.features.nat_t_rfc {
            Some(PayloadType::NAT_D)
        } else if sa.features.nat_t_draft {
            Some(PayloadType::NAT_D_DRAFT)
        } else {
            None
        };
    }
}

/// Our NAT-D payloads: the peer's address first, then ours (RFC 3947 §3.2). With forced
/// encapsulation our own hash is deliberately wrong so both sides float.
pub(crate) fn nat_d_payloads(ctx: &mut Ctx<'_>, sa: &IkeSa, hash: IkeHash) -> Vec<Payload> {
    let Some(ty) = sa.nat_d_type else {
        return Vec::new();
    };
    let draft = ty == PayloadType::NAT_D_DRAFT;
    let c = &sa.cookies;
    let remote = crypto::nat_d(
        hash,
        &c.initiator_spi,
        &c.responder_spi,
        sa.remote.ip(),
        sa.remote.port(),
    );
    let local = if ctx.cfg.nat_traversal == crate::config::NatTraversal::Force {
        ctx.random::<20>()[..hash.output_len().min(20)].to_vec()
    } else {
        crypto::nat_d(
            hash,
            &c.initiator_spi,
            &c.responder_spi,
            sa.local.ip(),
            sa.local.port(),
        )
    };
    vec![
        Payload::NatD {
            draft,
            hash: remote,
        },
        Payload::NatD { draft, hash: local },
    ]
}

/// Compares the peer's NAT-D payloads with our view of the addresses (RFC 3947 §3.2).
pub(crate) fn detect_nat(ctx: &Ctx<'_>, sa: &mut IkeSa, hash: IkeHash, payloads: &[Payload]) {
    let hashes: Vec<&Vec<u8>> = payloads
        .iter()
        .filter_map(|x| match x {
            Payload::NatD { hash, .. } => Some(hash),
            _ => None,
        })
        .collect();
    let force = ctx.cfg.nat_traversal == crate::config::NatTraversal::Force;
    let Some((dest, sources)) = hashes.split_first() else {
        sa.nat = NatStatus {
            local_behind_nat: force,
            remote_behind_nat: false,
            floated: false,
        };
        return;
    };
    let c = &sa.cookies;
    let mine = crypto::nat_d(
        hash,
        &c.initiator_spi,
        &c.responder_spi,
        sa.local.ip(),
        sa.local.port(),
    );
    let theirs = crypto::nat_d(
        hash,
        &c.initiator_spi,
        &c.responder_spi,
        sa.remote.ip(),
        sa.remote.port(),
    );
    sa.nat.local_behind_nat = force || !crypto::ct_eq(dest, &mine);
    sa.nat.remote_behind_nat = !sources.iter().any(|s| crypto::ct_eq(s, &theirs));
}

/// Moves IKE to UDP 4500 when a NAT was detected (RFC 3947 §4).
pub(crate) fn float_if_needed(sa: &mut IkeSa) {
    if (sa.nat.local_behind_nat || sa.nat.remote_behind_nat)
        && sa.nat_d_type.is_some()
        && !sa.nat.floated
    {
        sa.nat.floated = true;
        if sa.local.port() == 500 {
            sa.local = SocketAddr::new(sa.local.ip(), 4500);
        }
        if sa.remote.port() == 500 {
            sa.remote = SocketAddr::new(sa.remote.ip(), 4500);
        }
    }
}

impl IkeSa {
    /// Sends (or resends) the UDP 4500 probe: a fresh MM1 with a cookie of its own, from our
    /// port 4500 to the peer's, offering our proposals. Any answer with that cookie proves
    /// the path passes UDP 4500; the peer's half-open state for it simply times out.
    pub fn send_udp4500_probe(&mut self, ctx: &mut Ctx<'_>) {
        if self.probe.as_ref().is_some_and(|p| p.answered) {
            return;
        }
        let probe = match self.probe.take() {
            Some(p) => p,
            None => {
                let mut cookie = ctx.random::<8>();
                if cookie == [0; 8] || cookie == self.cookies.initiator_spi {
                    cookie[0] ^= 0x5a;
                }
                let offer = offer(
                    &ctx.cfg.ike_proposals,
                    ctx.cfg.ike_lifetime,
                    ctx.cfg.auth_method(),
                );
                let mut payloads = vec![Payload::Sa(offer)];
                payloads.extend(our_vendor_ids(
                    Role::Initiator,
                    &PeerFeatures::default(),
                    ctx.cfg.fragmentation,
                ));
                let mut header = self.header(ExchangeType::IDENTITY_PROTECTION, Flags(0), 0);
                header.initiator_spi = cookie;
                header.responder_spi = [0; 8];
                let data = wire::Message { header, payloads }.emit();
                Udp4500ProbeState {
                    cookie,
                    datagram: Datagram {
                        local: SocketAddr::new(self.local.ip(), 4500),
                        remote: SocketAddr::new(self.remote.ip(), self.remote.port()),
                        data,
                    },
                    answered: false,
                }
            }
        };
        ctx.event(Event::Message(MessageLog {
            direction: Direction::Sent,
            name: "PROBE",
            cookies: Cookies {
                initiator_spi: probe.cookie,
                responder_spi: [0; 8],
            },
            message_id: 0,
            payloads: "[ SA V ] (fresh MM1 to UDP 4500: does the path pass it?)".into(),
            peer: probe.datagram.remote,
            local: probe.datagram.local,
            retransmission: false,
        }));
        ctx.out.transmits.push_back(probe.datagram.clone());
        self.probe = Some(probe);
    }
}
