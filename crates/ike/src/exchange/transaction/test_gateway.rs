//! TEST ONLY (feature `test-support`): a minimal XAuth + Mode Config gateway, so that the
//! client can be tested with two in-memory endpoints. It is not the gateway role of issue 14:
//! one user, one fixed set of settings, no pools or leases, no rate limits.

use super::state::{GatewayStep, TestGateway};
use super::{Flow, Input, Step};
use crate::context::Ctx;
use crate::sa::IkeSa;
use crate::wire::mode_cfg::xauth_status;
use crate::wire::{AttributePayload, CfgAttrType, CfgAttribute, CfgType};

impl IkeSa {
    pub(crate) fn test_gateway_start(&mut self, ctx: &mut Ctx<'_>) {
        let Some(gw) = ctx.cfg.test_gateway.clone().filter(|g| !g.silent) else {
            return;
        };
        if gw.xauth.is_some() {
            let request = AttributePayload::new(
                CfgType::REQUEST,
                7,
                vec![
                    CfgAttribute::basic(CfgAttrType::XAUTH_TYPE, 0),
                    CfgAttribute::empty(CfgAttrType::XAUTH_USER_NAME),
                    CfgAttribute::empty(CfgAttrType::XAUTH_USER_PASSWORD),
                ],
            );
            self.gateway_send(ctx, request, GatewayStep::AwaitXauthReply);
        } else {
            self.after_xauth(ctx, &gw);
        }
    }

    fn gateway_send(&mut self, ctx: &mut Ctx<'_>, attrs: AttributePayload, next: GatewayStep) {
        let Some(keys) = self.established_keys() else {
            return;
        };
        let message_id = ctx.message_id();
        let iv = keys.phase2_iv(message_id);
        match self.send_attributes(ctx, &keys, message_id, &iv, attrs, false) {
            Ok((_, last)) => self.set_step(Step::Gateway(next), Some((message_id, last))),
            Err(f) => self.fail(ctx, f, None),
        }
    }

    fn after_xauth(&mut self, ctx: &mut Ctx<'_>, gw: &TestGateway) {
        if gw.push {
            let set = AttributePayload::new(CfgType::SET, 9, gw.attributes());
            self.gateway_send(ctx, set, GatewayStep::AwaitSetAck);
        } else {
            self.set_step(Step::Gateway(GatewayStep::AwaitRequest), None);
        }
    }

    pub(super) fn gateway_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        step: GatewayStep,
        input: &Input<'_>,
    ) -> Result<(), Flow> {
        let gw = ctx
            .cfg
            .test_gateway
            .clone()
            .ok_or(Flow::Ignore("no test gateway"))?;
        let a = input.attrs;
        match (step, a.cfg_type) {
            (GatewayStep::AwaitXauthReply, CfgType::REPLY) => {
                let text = |t| {
                    a.single(t)
                        .ok()
                        .flatten()
                        .and_then(|x| x.bytes().ok().map(<[u8]>::to_vec))
                };
                let given = (
                    text(CfgAttrType::XAUTH_USER_NAME),
                    text(CfgAttrType::XAUTH_USER_PASSWORD),
                );
                let ok = gw.xauth.as_ref().is_some_and(|(u, p)| {
                    given.0.as_deref() == Some(u.as_bytes())
                        && given.1.as_deref() == Some(p.as_slice())
                });
                let status = if ok {
                    xauth_status::OK
                } else {
                    xauth_status::FAIL
                };
                let mut attrs = vec![CfgAttribute::basic(CfgAttrType::XAUTH_STATUS, status)];
                if !ok {
                    attrs.push(CfgAttribute::variable(
                        CfgAttrType::XAUTH_MESSAGE,
                        b"Authentication failed".to_vec(),
                    ));
                }
                let set = AttributePayload::new(CfgType::SET, 8, attrs);
                self.gateway_send(ctx, set, GatewayStep::AwaitStatusAck { ok });
                Ok(())
            }
            (GatewayStep::AwaitStatusAck { ok }, CfgType::ACK) => {
                if ok {
                    self.after_xauth(ctx, &gw);
                    Ok(())
                } else {
                    self.set_step(Step::Gateway(GatewayStep::Done), None);
                    self.delete(ctx, "XAuth failed");
                    Ok(())
                }
            }
            (GatewayStep::AwaitRequest, CfgType::REQUEST) => {
                let reply = AttributePayload::new(CfgType::REPLY, a.identifier, gw.attributes());
                self.answer_attributes(
                    ctx,
                    input.keys,
                    input.datagram,
                    input.header.message_id,
                    input.last,
                    reply,
                )
                .map_err(Flow::Fail)?;
                self.set_step(Step::Gateway(GatewayStep::Done), None);
                Ok(())
            }
            (GatewayStep::AwaitSetAck, CfgType::ACK) => {
                self.set_step(Step::Gateway(GatewayStep::Done), None);
                Ok(())
            }
            _ => Err(Flow::Ignore(
                "test gateway: Transaction message out of place",
            )),
        }
    }
}
