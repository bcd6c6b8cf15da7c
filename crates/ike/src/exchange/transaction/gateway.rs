//! The remote-access gateway (issue 14): after phase 1 (XAUTHInitPreShared, draft-beaulieu-ike-
//! xauth §5.1) it asks the client for user name and password (§4.2), checks them with the
//! configured [`crate::config::XauthVerifier`], tells the verdict (STATUS), then hands out an
//! address from the connection's pool by Mode Config, pulled (REQUEST/REPLY) or pushed
//! (SET/ACK, draft-dukes-ike-mode-cfg §3.2). The client's Quick Modes must then use exactly
//! that address (see `quick_mode::selectors`). Wrong passwords are counted per source address.

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
        });
        self.set_step(Step::Serve(ServeStep::Done), None);
        self.delete(ctx, &reason.to_string());
    }

    /// An address for this client (its earlier one, its wish when free in the pool, or the
    /// lowest free one) and the attributes that carry it with the configured settings.
    fn lease(
        &mut self,
        ctx: &mut Ctx<'_>,
        gw: &RemoteAccessGateway,
        wanted: Option<std::net::Ipv4Addr>,
    ) -> Result<Vec<CfgAttribute>, Failure> {
        let (net, prefix) = gw.pool;
        let lease = Lease {
            owner: self.cookies.initiator_spi,
            user: self.xauth_user.clone(),
            peer: self.remote,
            since: ctx.now,
        };
        let address = ctx
            .leases
            .pool_mut(self.conn, net, prefix)
            .allocate(lease, wanted)
            .ok_or_else(|| {
                Failure::RemoteAccess(RemoteAccessFailure::PoolExhausted {
                    pool: format!("{net}/{prefix}"),
                })
            })?;
        self.assigned_remote = Some(address);
        let mut settings = gw.settings.clone();
        settings.ip4_address = Some(address);
        Ok(settings.to_attributes())
    }

    /// Mode Config done: Quick Mode may run with `assigned_remote`.
    fn serve_done(&mut self, ctx: &mut Ctx<'_>) {
        self.set_step(Step::Serve(ServeStep::Done), None);
        if let Some(address) = self.assigned_remote {
            ctx.event(Event::RemoteAccessClientUp {
                conn: self.conn,
                cookies: self.cookies,
                user: self.xauth_user.clone(),
                address,
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
                    (Some(u), false) => u.verify(ctx.now, &user, &password),
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
                let wanted = a
                    .single(CfgAttrType::INTERNAL_IP4_ADDRESS)
                    .ok()
                    .flatten()
                    .and_then(|x| x.ipv4().ok());
                let attrs = match self.lease(ctx, &gw, wanted) {
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
