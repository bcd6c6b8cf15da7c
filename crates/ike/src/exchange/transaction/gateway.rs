//! The remote-access gateway (issue 14): after phase 1 (XAUTHInitPreShared, draft-beaulieu-ike-
//! xauth §5.1) it asks the client for user name and password (§4.2), checks them with the
//! configured [`crate::config::XauthVerifier`], tells the verdict (STATUS), then hands out an
//! address from the connection's pool by Mode Config, pulled (REQUEST/REPLY) or pushed
//! (SET/ACK, draft-dukes-ike-mode-cfg §3.2). The client's Quick Modes must then use exactly
//! that address, and for an IPv6 pair the IPv6 address leased from `pool6` (see
//! `quick_mode::selectors`). Wrong passwords are counted per source address.

use super::state::ServeStep;
use super::{xauth, Flow, Input, Step};
use crate::config::{RemoteAccessGateway, XauthVerdict};
use crate::context::Ctx;
use crate::event::{Event, Failure, RemoteAccessFailure};
use crate::lease::Lease;
use crate::sa::IkeSa;
use crate::wire::mode_cfg::{xauth_status, xauth_type};
use crate::wire::{AttributePayload, CfgAttrType, CfgAttribute, CfgType};

fn ra(f: RemoteAccessFailure) -> Flow {
    Flow::Fail(Failure::RemoteAccess(f))
}

impl IkeSa {
    /// Phase 1 with a client is up: XAuth REQUEST, or straight to Mode Config.
    pub(crate) fn gateway_start(&mut self, ctx: &mut Ctx<'_>) {
        let Some(gw) = ctx.cfg.gateway.clone() else {
            return;
        };
        if gw.users.is_some() {
            let identifier = u16::from_be_bytes(ctx.random::<2>());
            let request = AttributePayload::new(
                CfgType::REQUEST,
                identifier,
                vec![
                    CfgAttribute::basic(CfgAttrType::XAUTH_TYPE, xauth_type::GENERIC),
                    CfgAttribute::empty(CfgAttrType::XAUTH_USER_NAME),
                    CfgAttribute::empty(CfgAttrType::XAUTH_USER_PASSWORD),
                ],
            );
            self.serve_send(ctx, request, ServeStep::AwaitXauthReply);
        } else {
            self.serve_mode_cfg(ctx, &gw);
        }
    }

    /// Starts an exchange of ours (retransmitted until answered).
    fn serve_send(&mut self, ctx: &mut Ctx<'_>, attrs: AttributePayload, next: ServeStep) {
        let Some(keys) = self.established_keys() else {
            return;
        };
        let message_id = ctx.message_id();
        let iv = keys.phase2_iv(message_id);
        match self.send_attributes(ctx, &keys, message_id, &iv, attrs, true) {
            Ok((_, last)) => self.set_step(Step::Serve(next), Some((message_id, last))),
            Err(f) => self.fail(ctx, f, None),
        }
    }

    /// After XAuth: push the settings, or wait for the client to pull them.
    fn serve_mode_cfg(&mut self, ctx: &mut Ctx<'_>, gw: &RemoteAccessGateway) {
        if !gw.push {
            self.set_step(Step::Serve(ServeStep::AwaitRequest), None);
            return;
        }
        match self.lease(ctx, gw, None) {
            Ok(attrs) => {
                let identifier = u16::from_be_bytes(ctx.random::<2>());
                let set = AttributePayload::new(CfgType::SET, identifier, attrs);
                self.serve_send(ctx, set, ServeStep::AwaitSetAck);
            }
            Err(f) => self.serve_refuse(ctx, f),
        }
    }

    /// Ends the client's ISAKMP SA with `reason`, telling it (a protected DELETE), so that it
    /// does not wait for an answer that never comes.
    fn serve_refuse(&mut self, ctx: &mut Ctx<'_>, reason: Failure) {
        ctx.event(Event::IkeSaFailed {
            conn: Some(self.conn),
            cookies: self.cookies,
            peer: self.remote,
            reason: reason.clone(),
            renewal: false,
        });
        self.set_step(Step::Serve(ServeStep::Done), None);
        self.delete(ctx, &reason.to_string());
    }

    /// Addresses for this client and the attributes that carry them with the configured
    /// settings: IPv4 from `pool`, IPv6 from `pool6` (draft-dukes-ike-mode-cfg §3.3). Pushed
    /// (`request` None): both the gateway has. Pulled: the families the REQUEST names (IPv4
    /// when it names neither). Each is the client's earlier one, its wish when free in the
    /// pool, or the lowest free one.
    fn lease(
        &mut self,
        ctx: &mut Ctx<'_>,
        gw: &RemoteAccessGateway,
        request: Option<&AttributePayload>,
    ) -> Result<Vec<CfgAttribute>, Failure> {
        // (named in the REQUEST, the address it wishes for).
        let asked = |t| {
            request.map(|r| {
                let a = r.single(t).ok().flatten();
                (r.has(t), a.cloned())
            })
        };
        let (asks4, wanted4) = match asked(CfgAttrType::INTERNAL_IP4_ADDRESS) {
            None => (true, None),
            Some((asks, w)) => (asks, w.and_then(|x| x.ipv4().ok())),
        };
        let (asks6, wanted6) = match asked(CfgAttrType::INTERNAL_IP6_ADDRESS) {
            None => (gw.pool6.is_some(), None),
            Some((asks, w)) => (asks, w.and_then(|x| x.ipv6().ok()).map(|(a, _)| a)),
        };
        let asks4 = asks4 || !asks6;
        if asks6 && !asks4 && gw.pool6.is_none() {
            return Err(Failure::RemoteAccess(RemoteAccessFailure::NoPool {
                family: "IPv6",
            }));
        }
        let lease = Lease {
            owner: self.cookies.initiator_spi,
            user: self.xauth_user.clone(),
            peer: self.remote,
            since: ctx.now,
        };
        let mut pools: Vec<(std::net::IpAddr, u8, Option<std::net::IpAddr>)> = Vec::new();
        if asks4 {
            pools.push((gw.pool.0.into(), gw.pool.1, wanted4.map(Into::into)));
        }
        if let (true, Some((net, prefix))) = (asks6, gw.pool6) {
            pools.push((net.into(), prefix, wanted6.map(Into::into)));
        }
        let mut settings = gw.settings.clone();
        let mut assigned = Vec::new();
        for (net, prefix, wanted) in pools {
            let Some(address) = ctx
                .leases
                .pool_mut(self.conn, net, prefix)
                .allocate(lease.clone(), wanted)
            else {
                // Nothing half-assigned stays leased.
                ctx.leases.release(self.conn, &self.cookies.initiator_spi);
                return Err(Failure::RemoteAccess(RemoteAccessFailure::PoolExhausted {
                    pool: format!("{net}/{prefix}"),
                }));
            };
            match address {
                std::net::IpAddr::V4(a) => settings.ip4_address = Some(a),
                // 17 bytes, prefix 128: strongSwan drops the last byte of any it receives.
                std::net::IpAddr::V6(a) => settings.ip6_address = Some((a, Some(128))),
            }
            assigned.push(address);
        }
        self.assigned_remote = assigned;
        Ok(settings.to_attributes())
    }

    /// Mode Config done: Quick Mode may run with `assigned_remote`.
    fn serve_done(&mut self, ctx: &mut Ctx<'_>) {
        self.set_step(Step::Serve(ServeStep::Done), None);
        if !self.assigned_remote.is_empty() {
            ctx.event(Event::RemoteAccessClientUp {
                conn: self.conn,
                cookies: self.cookies,
                user: self.xauth_user.clone(),
                addresses: self.assigned_remote.clone(),
                peer: self.remote,
            });
        }
    }

    /// The gateway's reaction to an authenticated Transaction message of the client.
    pub(super) fn serve_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        step: ServeStep,
        input: &Input<'_>,
    ) -> Result<(), Flow> {
        let gw = ctx
            .cfg
            .gateway
            .clone()
            .ok_or(Flow::Ignore("not a gateway connection"))?;
        let a = input.attrs;
        let ours = self
            .transaction
            .as_ref()
            .and_then(|t| t.pending.as_ref())
            .is_some_and(|(mid, _)| *mid == input.header.message_id);
        match (step, a.cfg_type) {
            (ServeStep::AwaitXauthReply, CfgType::REPLY) if ours => {
                let text = |t| {
                    a.single(t)
                        .map_err(|e| ra(RemoteAccessFailure::Malformed(e.to_string())))
                        .map(|x| x.and_then(|x| x.bytes().ok().map(<[u8]>::to_vec)))
                };
                let user = text(CfgAttrType::XAUTH_USER_NAME)?.unwrap_or_default();
                let mut password = text(CfgAttrType::XAUTH_USER_PASSWORD)?.unwrap_or_default();
                let user = String::from_utf8_lossy(&user)
                    .trim_end_matches('\0')
                    .to_string();
                let source = self.remote.ip();
                let locked =
                    ctx.leases
                        .locked_out(source, ctx.now, gw.max_failures, gw.failure_window);
                let verdict = match (&gw.users, locked) {
                    (Some(u), false) => u.verify(ctx.now, source, &user, &password),
                    _ => XauthVerdict::Reject,
                };
                zeroize::Zeroize::zeroize(&mut password);
                if verdict == XauthVerdict::Busy {
                    // Our REQUEST stays pending: its retransmission brings the REPLY again.
                    return Err(Flow::Ignore(
                        "XAuth: verifier busy, checked on retransmission",
                    ));
                }
                self.retransmit = None;
                let ok = verdict == XauthVerdict::Accept;
                if ok {
                    self.xauth_user = Some(user);
                } else {
                    ctx.leases.failed(source, ctx.now, gw.failure_window);
                    self.xauth_user = None;
                    let why = if locked {
                        RemoteAccessFailure::SourceLockedOut
                    } else {
                        RemoteAccessFailure::XauthFailed { user }
                    };
                    ctx.event(Event::IkeSaFailed {
                        conn: Some(self.conn),
                        cookies: self.cookies,
                        peer: self.remote,
                        reason: Failure::RemoteAccess(why),
                        renewal: false,
                    });
                }
                let mut attrs = vec![CfgAttribute::basic(
                    CfgAttrType::XAUTH_STATUS,
                    if ok {
                        xauth_status::OK
                    } else {
                        xauth_status::FAIL
                    },
                )];
                if !ok {
                    attrs.push(CfgAttribute::variable(
                        CfgAttrType::XAUTH_MESSAGE,
                        b"Authentication failed".to_vec(),
                    ));
                }
                let identifier = u16::from_be_bytes(ctx.random::<2>());
                let set = AttributePayload::new(CfgType::SET, identifier, attrs);
                self.serve_send(ctx, set, ServeStep::AwaitStatusAck { ok });
                Ok(())
            }
            (ServeStep::AwaitStatusAck { ok }, CfgType::ACK) if ours => {
                self.retransmit = None;
                if ok {
                    self.serve_mode_cfg(ctx, &gw);
                } else {
                    // §4.2: after FAIL the gateway deletes phase 1.
                    self.set_step(Step::Serve(ServeStep::Done), None);
                    self.delete(ctx, "XAuth failed");
                }
                Ok(())
            }
            (ServeStep::AwaitRequest, CfgType::REQUEST)
                if !a.attributes.iter().any(|x| xauth::is_xauth(x.attr_type)) =>
            {
                let attrs = match self.lease(ctx, &gw, Some(a)) {
                    Ok(a) => a,
                    Err(f) => {
                        self.serve_refuse(ctx, f);
                        return Ok(());
                    }
                };
                let reply = AttributePayload::new(CfgType::REPLY, a.identifier, attrs);
                self.answer_attributes(
                    ctx,
                    input.keys,
                    input.datagram,
                    input.header.message_id,
                    input.last,
                    reply,
                )
                .map_err(Flow::Fail)?;
                self.serve_done(ctx);
                Ok(())
            }
            (ServeStep::AwaitSetAck, CfgType::ACK) if ours => {
                self.retransmit = None;
                self.serve_done(ctx);
                Ok(())
            }
            _ => Err(Flow::Ignore("gateway: Transaction message out of place")),
        }
    }
}
