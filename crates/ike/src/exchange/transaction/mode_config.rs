//! Mode Config as a client (draft-dukes-ike-mode-cfg §3.1): pull (our REQUEST, the gateway's
//! REPLY) or push (its SET, our ACK). The assigned IPv4 and IPv6 addresses become our Quick Mode
//! selectors of their family; the settings go out in one event for the daemon (addresses,
//! DNS, routes, banner).

use super::{Flow, Input, Step};
use crate::config::TrafficSelector;
use crate::context::Ctx;
use crate::event::{Event, Failure, RemoteAccessFailure};
use crate::keyed::Keyed;
use crate::sa::IkeSa;
use crate::wire::mode_cfg::mode_cfg_request_attributes;
use crate::wire::{AttributePayload, CfgAttribute, CfgType, ModeCfgSettings};

impl IkeSa {
    /// Pull: REQUEST with the attributes we can use, zero-length (§3.2); retransmitted until
    /// the REPLY comes.
    pub(super) fn mode_cfg_request(&mut self, ctx: &mut Ctx<'_>, keys: &Keyed) {
        let message_id = ctx.message_id();
        let identifier = u16::from_be_bytes(ctx.random::<2>());
        let iv = keys.phase2_iv(message_id);
        let family = |v6: bool| {
            ctx.cfg
                .children
                .iter()
                .any(|c| c.local_ts.addr.is_ipv6() == v6)
        };
        let (v4, v6) = (family(false), family(true));
        let attrs = mode_cfg_request_attributes(v4 || !v6, v6);
        let request = AttributePayload::new(CfgType::REQUEST, identifier, attrs);
        match self.send_attributes(ctx, keys, message_id, &iv, request, true) {
            Ok((_, last)) => self.set_step(Step::AwaitModeCfg, Some((message_id, last))),
            Err(f) => self.fail(ctx, f, None),
        }
    }

    /// The gateway's REPLY (pull) or SET (push, acknowledged): settings taken, Quick Mode next.
    pub(super) fn mode_cfg_settings(
        &mut self,
        ctx: &mut Ctx<'_>,
        input: &Input<'_>,
        push: bool,
    ) -> Result<(), Flow> {
        let fail =
            |what: String| Flow::Fail(Failure::RemoteAccess(RemoteAccessFailure::ModeConfig(what)));
        let settings =
            ModeCfgSettings::from_payload(input.attrs).map_err(|e| fail(e.to_string()))?;
        // An address of a family we tunnel; a pair of a family without one is not negotiated.
        let wants = |v6: bool| {
            ctx.cfg
                .children
                .iter()
                .any(|c| c.local_ts.addr.is_ipv6() == v6)
        };
        let mut assigned: Vec<TrafficSelector> = Vec::new();
        if let Some(a) = settings.ip4_address.filter(|_| wants(false)) {
            assigned.push(TrafficSelector::host(a.into()));
        }
        if let Some((a, _)) = settings.ip6_address.filter(|_| wants(true)) {
            assigned.push(TrafficSelector::host(a.into()));
        }
        if assigned.is_empty() {
            let which = match (wants(false), wants(true)) {
                (true, true) => "INTERNAL_IP4_ADDRESS nor INTERNAL_IP6_ADDRESS",
                (false, true) => "INTERNAL_IP6_ADDRESS",
                _ => "INTERNAL_IP4_ADDRESS",
            };
            return Err(fail(format!(
                "the gateway assigned no {which} (is an address pool of that family configured for this group?)"
            )));
        }
        if push {
            let acked = input
                .attrs
                .attributes
                .iter()
                .map(|a| CfgAttribute::empty(a.attr_type))
                .collect();
            let ack = AttributePayload::new(CfgType::ACK, input.attrs.identifier, acked);
            self.answer_attributes(
                ctx,
                input.keys,
                input.datagram,
                input.header.message_id,
                input.last,
                ack,
            )?;
        }
        self.set_step(Step::Done, None);
        self.assigned_local = assigned;
        // Cisco UNITY_PFS (non-zero): the gateway wants PFS, in phase 1's group.
        self.unity_pfs = settings
            .pfs
            .filter(|v| *v != 0)
            .map(|_| input.keys.proposal.group);
        ctx.event(Event::RemoteAccessConfigured {
            conn: self.conn,
            cookies: self.cookies,
            settings,
        });
        // A rekey's IPsec SAs are those it took over from the ISAKMP SA it replaces.
        if !self.is_rekey {
            self.start_quick_modes(ctx);
        }
        Ok(())
    }
}
