//! Where a Transaction conversation stands on an ISAKMP SA: a leaf the SA holds, importing
//! nothing of its users.

/// The Transaction state of one ISAKMP SA.
#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub step: Step,
    /// An exchange we started (its message ID and the IV its answer is opened with).
    pub pending: Option<(u32, Vec<u8>)>,
}

/// The client's steps; the test gateway has its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Waiting for the gateway's XAuth REQUEST.
    AwaitXauthRequest,
    /// Our XAuth REPLY is out; waiting for its SET with XAUTH_STATUS.
    AwaitXauthStatus,
    /// Waiting for the Mode Config REPLY to our REQUEST (pull) or the gateway's SET (push).
    AwaitModeCfg,
    /// Settings taken; Quick Mode runs.
    Done,
    /// The gateway role (issue 14).
    Serve(ServeStep),
    #[cfg(feature = "test-support")]
    Gateway(GatewayStep),
}

/// The gateway's steps (draft-beaulieu-ike-xauth §4, draft-dukes-ike-mode-cfg §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServeStep {
    /// Our XAuth REQUEST is out.
    AwaitXauthReply,
    /// Our SET with XAUTH_STATUS is out.
    AwaitStatusAck { ok: bool },
    /// XAuth done (or none): waiting for the client's Mode Config REQUEST (pull).
    AwaitRequest,
    /// Our Mode Config SET is out (push).
    AwaitSetAck,
    /// Address assigned: Quick Mode may run.
    Done,
}

/// TEST ONLY: what the test gateway (feature `test-support`) asks and assigns. Not the gateway
/// role of issue 14: one user, one fixed set of settings, no pools or leases, no rate limits.
#[cfg(feature = "test-support")]
#[derive(Debug, Clone)]
pub struct TestGateway {
    /// (user, password) it accepts; None: no XAuth, Mode Config only.
    pub xauth: Option<(String, Vec<u8>)>,
    pub settings: crate::wire::ModeCfgSettings,
    /// Push the settings (SET) instead of waiting for the client's REQUEST.
    pub push: bool,
    /// Say nothing after phase 1 (a gateway not configured for XAuth / Mode Config).
    pub silent: bool,
    /// Attributes sent after the settings' own (duplicates, malformed values).
    pub extra: Vec<crate::wire::CfgAttribute>,
}

#[cfg(feature = "test-support")]
impl TestGateway {
    /// What its REPLY or SET carries: the settings, then `extra`.
    pub(crate) fn attributes(&self) -> Vec<crate::wire::CfgAttribute> {
        let mut v = self.settings.to_attributes();
        v.extend(self.extra.iter().cloned());
        v
    }
}

/// The test gateway's steps.
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatewayStep {
    AwaitXauthReply,
    AwaitStatusAck { ok: bool },
    AwaitRequest,
    AwaitSetAck,
    Done,
}
