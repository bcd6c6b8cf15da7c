//! The Transaction exchange (draft-dukes-ike-mode-cfg §3.2) of a remote-access client: after
//! phase 1 the gateway authenticates the user (XAuth, draft-beaulieu-ike-xauth) and assigns an
//! address, DNS and networks (Mode Config); only then does Quick Mode run, with the assigned
//! address as our selector. Every message is protected like an Informational one:
//! HASH = prf(SKEYID_a, M-ID | ATTR) (draft-dukes-ike-mode-cfg §3.2), IV from the message ID,
//! chained within one exchange (RFC 2409 App. B).

mod gateway;
mod mode_config;
pub mod state;
#[cfg(feature = "test-support")]
mod test_gateway;
mod xauth;

pub(crate) use state::{Step, Transaction};

use crate::config::ModeCfgMode;
use crate::context::Ctx;
use crate::crypto;
use crate::error::InputError;
use crate::event::{Failure, RemoteAccessFailure};
use crate::exchange::payloads::parse_protected;
use crate::keyed::Keyed;
use crate::retransmit::Sent;
use crate::sa::IkeSa;
use crate::wire::{
    self, vendor_id, AttributePayload, ExchangeType, Flags, Header, KnownVendor, NotifyType,
    Payload, PayloadType, ProtocolId,
};
use zeroize::Zeroize;

/// How long a client waits after phase 1 for the gateway's XAuth / Mode Config to finish.
const TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Vendor IDs a remote-access client adds to MM1/AM1: XAuth and Cisco Unity, which Cisco
/// gateways require before they offer XAuth and the Unity attributes.
pub(crate) fn client_vendor_ids(cfg: &crate::config::ConnectionConfig) -> Vec<Payload> {
    if cfg.remote_access.is_none() {
        return Vec::new();
    }
    [KnownVendor::XAuth, KnownVendor::CiscoUnity]
        .into_iter()
        .map(|v| Payload::VendorId(vendor_id::vid_bytes(v)))
        .collect()
}

impl IkeSa {
    /// Phase 1 of a remote-access client is up: wait for XAuth, or ask for our settings.
    pub(crate) fn remote_access_start(&mut self, ctx: &mut Ctx<'_>, keys: &Keyed) {
        let Some(ra) = ctx.cfg.remote_access.as_ref() else {
            return;
        };
        if ra.xauth.is_some() {
            self.transaction = Some(Transaction {
                step: Step::AwaitXauthRequest,
                pending: None,
            });
        } else {
            let mode = ra.mode_cfg;
            self.transaction = Some(Transaction {
                step: Step::AwaitModeCfg,
                pending: None,
            });
            if mode == ModeCfgMode::Pull {
                self.mode_cfg_request(ctx, keys);
            }
        }
    }

    /// Seals HDR*, HASH, ATTR under `message_id` with `iv` and sends it; returns what was sent
    /// and the last ciphertext block (the IV of the exchange's next message).
    pub(crate) fn send_attributes(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        message_id: u32,
        iv: &[u8],
        attributes: AttributePayload,
        retransmit: bool,
    ) -> Result<(Sent, Vec<u8>), Failure> {
        let rest = vec![Payload::Attributes(attributes)];
        let mut rest_bytes = Vec::new();
        wire::emit_payloads(&rest, &mut rest_bytes);
        let hash = keys.hash1(message_id, &rest_bytes);
        // An XAuth REPLY carries the password.
        rest_bytes.zeroize();
        let mut payloads = vec![Payload::Hash(hash.to_vec())];
        payloads.extend(rest);
        let header = self.header(ExchangeType::TRANSACTION, Flags(0), message_id);
        let (data, last) = keys.seal(header, &payloads, iv)?;
        let d = self.send(ctx, "TRANSACTION", &payloads, data, message_id, retransmit);
        Ok((d, last))
    }

    /// Answers a message of the peer's exchange in that exchange (IV chained from `last`), and
    /// keeps the answer for a retransmitted copy of `request`.
    pub(crate) fn answer_attributes(
        &mut self,
        ctx: &mut Ctx<'_>,
        keys: &Keyed,
        request: &[u8],
        message_id: u32,
        last: &[u8],
        attributes: AttributePayload,
    ) -> Result<(), Failure> {
        let (d, _) = self.send_attributes(ctx, keys, message_id, last, attributes, false)?;
        self.replies.remember(request, Some(d));
        Ok(())
    }

    /// A Transaction message: decrypted, its HASH verified, then handed to the client (or the
    /// test gateway); a peer that is neither is named and refused (site to site).
    pub(crate) fn transaction_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        header: &Header,
        datagram: &[u8],
    ) -> Result<(), InputError> {
        if !header.flags.contains(Flags::ENCRYPTION) {
            return Err(InputError::Unexpected("unprotected Transaction exchange"));
        }
        let keys = self
            .established_keys()
            .ok_or(InputError::Unexpected("Transaction before keys"))?;
        let iv = match self.transaction.as_ref().and_then(|t| t.pending.as_ref()) {
            Some((mid, iv)) if *mid == header.message_id => iv.clone(),
            _ => keys.phase2_iv(header.message_id),
        };
        let Some(transaction) = self.transaction.clone() else {
            if !keys.hash1_verifies(header, datagram, &iv)? {
                return Err(InputError::BadHash("TRANSACTION"));
            }
            self.log_received(ctx, "TRANSACTION", header, &[]);
            self.refuse(
                ctx,
                "TRANSACTION",
                header.message_id,
                "the peer expects XAuth/Mode Config (Transaction exchange) — remote access, which this connection is not configured for (remote_access = \"client\")".into(),
                Some((ProtocolId::ISAKMP, NotifyType::UNSUPPORTED_EXCHANGE_TYPE)),
                true,
            );
            return Ok(());
        };
        let (body, last) = keys.open(datagram, &iv)?;
        let (payloads, rest) = parse_protected(header.next_payload, &body)?;
        let Some(Payload::Hash(h)) = payloads.first() else {
            return Err(InputError::Missing(PayloadType::HASH));
        };
        if !crypto::ct_eq(&keys.hash1(header.message_id, &rest), h) {
            return Err(InputError::BadHash("TRANSACTION"));
        }
        self.log_received(ctx, "TRANSACTION", header, &payloads);
        let Some(attrs) = payloads.iter().find_map(|p| match p {
            Payload::Attributes(a) => Some(a),
            _ => None,
        }) else {
            return Err(InputError::Missing(PayloadType::ATTR));
        };
        let input = Input {
            keys: &keys,
            header,
            datagram,
            last: &last,
            attrs,
        };
        let result = match transaction.step {
            Step::Serve(step) => self.serve_input(ctx, step, &input),
            #[cfg(feature = "test-support")]
            Step::Gateway(step) => self.gateway_input(ctx, step, &input),
            step => self.client_input(ctx, step, &input),
        };
        match result {
            Ok(()) => Ok(()),
            Err(Flow::Ignore(why)) => Err(InputError::Unexpected(why)),
            Err(Flow::Fail(f)) => {
                self.fail(ctx, f, None);
                Ok(())
            }
        }
    }

    /// The client's reaction to an authenticated Transaction message.
    fn client_input(
        &mut self,
        ctx: &mut Ctx<'_>,
        step: Step,
        input: &Input<'_>,
    ) -> Result<(), Flow> {
        use crate::wire::CfgType;
        let a = input.attrs;
        let is_xauth = a.attributes.iter().any(|x| xauth::is_xauth(x.attr_type));
        match (step, a.cfg_type) {
            (Step::AwaitXauthRequest, CfgType::REQUEST) if is_xauth => {
                self.xauth_request(ctx, input)
            }
            // A second REQUEST after our answer: the gateway did not take the password. Never
            // answered again with the same credentials (no retry storm).
            (Step::AwaitXauthStatus, CfgType::REQUEST) if is_xauth => Err(Flow::Fail(
                Failure::RemoteAccess(RemoteAccessFailure::XauthRejected {
                    message: xauth::message(a),
                }),
            )),
            (Step::AwaitXauthStatus, CfgType::SET) if is_xauth => self.xauth_status(ctx, input),
            (Step::AwaitModeCfg, CfgType::REPLY)
                if self
                    .transaction
                    .as_ref()
                    .and_then(|t| t.pending.as_ref())
                    .is_some_and(|(mid, _)| *mid == input.header.message_id) =>
            {
                self.retransmit = None;
                self.mode_cfg_settings(ctx, input, false)
            }
            (Step::AwaitModeCfg, CfgType::SET) => self.mode_cfg_settings(ctx, input, true),
            _ => Err(Flow::Ignore("Transaction message out of place")),
        }
    }

    /// When a client still waiting for XAuth / Mode Config gives up (first phase 1 only: a
    /// rekey's IPsec SAs run on, and a gateway may skip XAuth on it).
    pub(crate) fn transaction_deadline(&self) -> Option<std::time::Instant> {
        let t = self.transaction.as_ref()?;
        let waiting = matches!(
            t.step,
            Step::AwaitXauthRequest | Step::AwaitXauthStatus | Step::AwaitModeCfg
        );
        if !waiting || self.is_rekey || self.role != crate::event::Role::Initiator {
            return None;
        }
        Some(crate::time::later(
            self.established_at?,
            TRANSACTION_TIMEOUT,
        ))
    }

    /// Fails a client whose gateway stayed silent past [`IkeSa::transaction_deadline`].
    pub(crate) fn transaction_timer(&mut self, ctx: &mut Ctx<'_>) {
        if self.transaction_deadline().is_none_or(|d| ctx.now < d) {
            return;
        }
        let waiting_for = match self.transaction.as_ref().map(|t| &t.step) {
            Some(Step::AwaitXauthRequest) => "XAuth REQUEST",
            Some(Step::AwaitXauthStatus) => "XAuth STATUS",
            _ => "Mode Config",
        };
        self.fail(
            ctx,
            Failure::RemoteAccess(RemoteAccessFailure::GatewaySilent {
                waiting_for,
                after: TRANSACTION_TIMEOUT,
            }),
            None,
        );
    }

    pub(crate) fn set_step(&mut self, step: Step, pending: Option<(u32, Vec<u8>)>) {
        self.transaction = Some(Transaction { step, pending });
    }
}

/// An authenticated Transaction message, decrypted.
pub(crate) struct Input<'a> {
    pub keys: &'a Keyed,
    pub header: &'a Header,
    pub datagram: &'a [u8],
    /// Its last ciphertext block: the IV of an answer in the same exchange.
    pub last: &'a [u8],
    pub attrs: &'a AttributePayload,
}

/// What an input that is not simply taken leads to.
pub(crate) enum Flow {
    /// Counted and dropped; the SA stays.
    Ignore(&'static str),
    /// The SA fails with this reason.
    Fail(Failure),
}

impl From<Failure> for Flow {
    fn from(f: Failure) -> Flow {
        Flow::Fail(f)
    }
}
