//! XAuth as a client (draft-beaulieu-ike-xauth §4–§6): the gateway's REQUEST answered with
//! user name and password, its STATUS acknowledged. A rejected password ends the SA with a
//! typed failure; it is never sent twice on one ISAKMP SA.

use super::{Flow, Input, Step};
use crate::config::ModeCfgMode;
use crate::context::Ctx;
use crate::event::{Failure, RemoteAccessFailure};
use crate::sa::IkeSa;
use crate::wire::mode_cfg::{xauth_status, xauth_type};
use crate::wire::{AttributePayload, CfgAttrType, CfgAttribute, CfgType};

/// XAuth attribute types (16520–16529).
pub(super) fn is_xauth(t: CfgAttrType) -> bool {
    (CfgAttrType::XAUTH_TYPE.0..=CfgAttrType::XAUTH_ANSWER.0).contains(&t.0)
}

/// The gateway's XAUTH_MESSAGE, if it sent readable text.
pub(super) fn message(a: &AttributePayload) -> Option<String> {
    a.single(CfgAttrType::XAUTH_MESSAGE)
        .ok()
        .flatten()
        .and_then(|m| m.text().ok())
        .filter(|m| !m.is_empty())
}

fn refused(f: RemoteAccessFailure) -> Flow {
    Flow::Fail(Failure::RemoteAccess(f))
}

/// Our REPLY to a REQUEST: the same identifier, XAUTH_TYPE echoed, the user name and password
/// (§4.2). Only Generic authentication with exactly these two fields is answered.
pub(super) fn reply(
    request: &AttributePayload,
    user: &str,
    password: &[u8],
) -> Result<AttributePayload, RemoteAccessFailure> {
    let kind = request
        .single(CfgAttrType::XAUTH_TYPE)
        .and_then(|t| t.map(CfgAttribute::u16).transpose())
        .map_err(|e| RemoteAccessFailure::Malformed(e.to_string()))?;
    if kind.is_some_and(|k| k != xauth_type::GENERIC) {
        return Err(RemoteAccessFailure::XauthUnsupported {
            what: format!("XAUTH_TYPE {}", kind.unwrap_or_default()),
        });
    }
    for t in [
        CfgAttrType::XAUTH_PASSCODE,
        CfgAttrType::XAUTH_NEXT_PIN,
        CfgAttrType::XAUTH_ANSWER,
    ] {
        if request.has(t) {
            return Err(RemoteAccessFailure::XauthUnsupported {
                what: t.to_string(),
            });
        }
    }
    let mut attributes = Vec::new();
    if let Some(k) = kind {
        attributes.push(CfgAttribute::basic(CfgAttrType::XAUTH_TYPE, k));
    }
    attributes.push(CfgAttribute::variable(
        CfgAttrType::XAUTH_USER_NAME,
        user.as_bytes().to_vec(),
    ));
    attributes.push(CfgAttribute::variable(
        CfgAttrType::XAUTH_USER_PASSWORD,
        password.to_vec(),
    ));
    Ok(AttributePayload::new(
        CfgType::REPLY,
        request.identifier,
        attributes,
    ))
}

impl IkeSa {
    /// The gateway asks for credentials: answer once.
    pub(super) fn xauth_request(
        &mut self,
        ctx: &mut Ctx<'_>,
        input: &Input<'_>,
    ) -> Result<(), Flow> {
        let Some(creds) = ctx.cfg.remote_access.as_ref().and_then(|r| r.xauth.clone()) else {
            return Err(refused(RemoteAccessFailure::XauthNotConfigured));
        };
        let answer = reply(input.attrs, &creds.user, creds.password.as_ref()).map_err(refused)?;
        self.answer_attributes(
            ctx,
            input.keys,
            input.datagram,
            input.header.message_id,
            input.last,
            answer,
        )?;
        self.set_step(Step::AwaitXauthStatus, None);
        Ok(())
    }

    /// The gateway's verdict (§4.2 XAUTH_STATUS): acknowledged either way, then Mode Config or a
    /// typed failure.
    pub(super) fn xauth_status(
        &mut self,
        ctx: &mut Ctx<'_>,
        input: &Input<'_>,
    ) -> Result<(), Flow> {
        let status = input
            .attrs
            .single(CfgAttrType::XAUTH_STATUS)
            .and_then(|s| s.map(CfgAttribute::u16).transpose())
            .map_err(|e| refused(RemoteAccessFailure::Malformed(e.to_string())))?
            .ok_or(Flow::Ignore("XAuth SET without XAUTH_STATUS"))?;
        let ack = AttributePayload::new(
            CfgType::ACK,
            input.attrs.identifier,
            vec![CfgAttribute::basic(CfgAttrType::XAUTH_STATUS, status)],
        );
        self.answer_attributes(
            ctx,
            input.keys,
            input.datagram,
            input.header.message_id,
            input.last,
            ack,
        )?;
        if status != xauth_status::OK {
            return Err(refused(RemoteAccessFailure::XauthRejected {
                message: message(input.attrs),
            }));
        }
        self.set_step(Step::AwaitModeCfg, None);
        if ctx.cfg.remote_access.as_ref().map(|r| r.mode_cfg) == Some(ModeCfgMode::Pull) {
            self.mode_cfg_request(ctx, input.keys);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(attrs: Vec<CfgAttribute>) -> AttributePayload {
        AttributePayload::new(CfgType::REQUEST, 0x4242, attrs)
    }

    #[test]
    fn generic_request_is_answered_with_user_and_password_under_its_identifier() {
        let req = request(vec![
            CfgAttribute::basic(CfgAttrType::XAUTH_TYPE, 0),
            CfgAttribute::empty(CfgAttrType::XAUTH_USER_NAME),
            CfgAttribute::empty(CfgAttrType::XAUTH_USER_PASSWORD),
        ]);
        let r = reply(&req, "alice", b"s3cret").unwrap();
        assert_eq!(r.cfg_type, CfgType::REPLY);
        assert_eq!(r.identifier, 0x4242);
        let user = r.single(CfgAttrType::XAUTH_USER_NAME).unwrap().unwrap();
        assert_eq!(user.text().unwrap(), "alice");
        let pw = r.single(CfgAttrType::XAUTH_USER_PASSWORD).unwrap().unwrap();
        assert_eq!(pw.bytes().unwrap(), b"s3cret");
        assert_eq!(
            r.single(CfgAttrType::XAUTH_TYPE).unwrap().unwrap().u16(),
            Ok(0)
        );
    }

    #[test]
    fn token_and_challenge_types_are_refused_by_name() {
        let otp = request(vec![CfgAttribute::basic(CfgAttrType::XAUTH_TYPE, 3)]);
        assert!(matches!(
            reply(&otp, "a", b"b"),
            Err(RemoteAccessFailure::XauthUnsupported { .. })
        ));
        let passcode = request(vec![CfgAttribute::empty(CfgAttrType::XAUTH_PASSCODE)]);
        assert_eq!(
            reply(&passcode, "a", b"b"),
            Err(RemoteAccessFailure::XauthUnsupported {
                what: "XAUTH_PASSCODE".into()
            })
        );
        let twice = request(vec![
            CfgAttribute::basic(CfgAttrType::XAUTH_TYPE, 0),
            CfgAttribute::basic(CfgAttrType::XAUTH_TYPE, 0),
        ]);
        assert!(matches!(
            reply(&twice, "a", b"b"),
            Err(RemoteAccessFailure::Malformed(_))
        ));
    }
}
