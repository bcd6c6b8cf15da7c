//! What the state machine reports to its driver: log lines, SAs to install, failures.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::algorithm::{EspCipher, EspIntegrity};
use crate::config::{Phase1Mode, TrafficSelector};
use crate::crypto::Secret;
use crate::proposal::IkeProposal;
pub use crate::role::Role;
use crate::wire::NotifyType;

/// Index of a connection in the endpoint, in the order they were added.
pub type ConnId = usize;

/// Both ISAKMP cookies, printed as strongSwan does: `i_cookie_r_cookie` in 16 hex digits each.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cookies {
    pub initiator_spi: [u8; 8],
    pub responder_spi: [u8; 8],
}

impl From<&crate::wire::Header> for Cookies {
    /// The cookies a message carries in its ISAKMP header (RFC 2408 §3.1).
    fn from(h: &crate::wire::Header) -> Self {
        Cookies {
            initiator_spi: h.initiator_spi,
            responder_spi: h.responder_spi,
        }
    }
}

impl fmt::Display for Cookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One buffer, no allocation: this is written for every logged message.
        let mut out = *b"0123456789abcdef_i 0123456789abcdef_r";
        hex16(&self.initiator_spi, &mut out[..16]);
        hex16(&self.responder_spi, &mut out[19..35]);
        f.write_str(std::str::from_utf8(&out).unwrap_or_default())
    }
}

impl fmt::Debug for Cookies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Eight bytes as 16 lower-case hex digits into `out` (16 bytes long).
fn hex16(b: &[u8; 8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, x) in out.chunks_exact_mut(2).zip(b) {
        pair[0] = DIGITS[usize::from(x >> 4)];
        pair[1] = DIGITS[usize::from(x & 0xf)];
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// One line of the operator's log: a message by the name engineers use (MM1…QM3, INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageLog {
    pub direction: Direction,
    pub name: &'static str,
    pub cookies: Cookies,
    pub message_id: u32,
    /// strongSwan-style payload list, e.g. `[ SA V V V ]`.
    pub payloads: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub retransmission: bool,
}

impl fmt::Display for MessageLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (verb, prep) = match self.direction {
            Direction::Sent => ("sending", "to"),
            Direction::Received => ("received", "from"),
        };
        write!(
            f,
            "{verb} {}{} {} {} {prep} {} mid {:08x} {}",
            self.name,
            if self.retransmission {
                " (retransmit)"
            } else {
                ""
            },
            self.payloads,
            self.cookies,
            self.peer,
            self.message_id,
            if self.local.port() == 4500 {
                "[udp/4500]"
            } else {
                ""
            }
        )
    }
}

/// Why a negotiation did not complete; the daemon and `diagnose` print these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Retransmissions exhausted without any answer to the named message.
    NoResponse { message: &'static str, tries: u32 },
    /// The peer sent an error notify (unauthenticated before phase 1 completes).
    PeerNotify(NotifyType),
    /// None of the peer's proposals matched ours (or ours, theirs).
    NoProposalChosen { ours: String, theirs: String },
    /// The peer's HASH did not verify, or its encrypted message did not decrypt: PSKs differ.
    AuthenticationFailed { detail: String },
    /// The peer authenticated with an identity other than the configured one.
    IdentityMismatch { expected: String, received: String },
    /// Quick Mode traffic selectors did not match a configured pair exactly.
    InvalidSelectors { ours: String, theirs: String },
    /// Aggressive Mode PSK as responder without the opt-in.
    AggressiveModeRefused,
    /// A message was malformed or out of place.
    Malformed(String),
    /// The peer's DH public value was invalid.
    InvalidKeyExchange,
    /// The half-open responder SA timed out.
    Timeout,
    /// A responder SA that sent MM2/AM2 and never heard back: unauthenticated, possibly a
    /// spoofed MM1/AM1, not a failure of the connection.
    Abandoned { after: &'static str },
    /// MM5, our first encrypted message, was never answered. On UDP 4500 a fresh MM1 sent there
    /// tells why (RFC 3947 §4): answered, the path passes and the peer could not decrypt or
    /// verify MM5 (pre-shared keys or identities differ); unanswered, UDP 4500 is blocked.
    SilentAfterMm5 { tries: u32, probe: Udp4500Probe },
    /// Main Mode initiator: the peer answered MM1, but `message` was still unanswered when
    /// its retransmission fell due `after` our first MM1, past the time a responder keeps an
    /// unfinished exchange (strongSwan's `half_open_timeout`: 30 s). Retransmitting to a peer
    /// that has likely forgotten it is futile: this attempt ends and the next starts afresh.
    Overdue {
        message: &'static str,
        after: Duration,
    },
    /// The peer deleted the ISAKMP SA `after` phase 1 completed, before any IPsec SA, with no
    /// other negotiation of the connection under way: most likely it refused what phase 1
    /// showed it (our identity or credentials) and said so only in its own log.
    DeletedByPeerAtOnce { after: Duration },
    /// The ISAKMP SA ended (deleted, expired or superseded) while this Quick Mode still
    /// waited for QM3: its half-installed inbound SA goes with it.
    Phase1Ended,
    /// Retransmissions exhausted; the only answer was a plain (unauthenticated, forgeable)
    /// error notify, recorded but not acted on (RFC 2408 §5: before phase 1 authenticates).
    NoResponseButPlainNotify {
        message: &'static str,
        tries: u32,
        notify: NotifyType,
    },
    /// Signature authentication failed on the peer's certificate or SIG (RFC 2409 §5.1).
    Certificate(crate::cert::CertFailure),
    /// XAuth or Mode Config of a remote-access client failed (issue 14).
    RemoteAccess(RemoteAccessFailure),
}

/// Why a remote-access client could not finish XAuth or Mode Config (draft-beaulieu-ike-xauth,
/// draft-dukes-ike-mode-cfg). None of these is retried on the same ISAKMP SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAccessFailure {
    /// XAUTH_STATUS = FAIL, or the gateway asked again after our answer: user name or
    /// password not accepted. `message` is the gateway's XAUTH_MESSAGE, if any.
    XauthRejected { message: Option<String> },
    /// The gateway asked for XAuth but no credentials are configured.
    XauthNotConfigured,
    /// The gateway asked for an XAuth type or field we do not answer (tokens, challenges).
    XauthUnsupported { what: String },
    /// The gateway's Mode Config was unusable (malformed, duplicate, no address).
    ModeConfig(String),
    /// Phase 1 is up but the gateway sent nothing of XAuth / Mode Config in time.
    GatewaySilent {
        waiting_for: &'static str,
        after: Duration,
    },
    /// A Transaction message was malformed.
    Malformed(String),
    /// Gateway: the client's user name or password was wrong (never the password itself).
    XauthFailed { user: String },
    /// Gateway: the client's source sent too many wrong passwords lately.
    SourceLockedOut,
    /// Gateway: no free address left in the pool.
    PoolExhausted { pool: String },
    /// Gateway: the client asked only for an address of a family without a pool.
    NoPool { family: &'static str },
}

impl RemoteAccessFailure {
    /// Short name for metrics and status.
    pub fn name(&self) -> &'static str {
        match self {
            RemoteAccessFailure::XauthRejected { .. } => "xauth_rejected",
            RemoteAccessFailure::XauthNotConfigured => "xauth_not_configured",
            RemoteAccessFailure::XauthUnsupported { .. } => "xauth_unsupported",
            RemoteAccessFailure::ModeConfig(_) => "mode_config",
            RemoteAccessFailure::GatewaySilent { .. } => "gateway_silent",
            RemoteAccessFailure::Malformed(_) => "transaction_malformed",
            RemoteAccessFailure::XauthFailed { .. } => "xauth_failed",
            RemoteAccessFailure::SourceLockedOut => "xauth_source_locked_out",
            RemoteAccessFailure::PoolExhausted { .. } => "pool_exhausted",
            RemoteAccessFailure::NoPool { .. } => "no_pool",
        }
    }
}

impl fmt::Display for RemoteAccessFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteAccessFailure::XauthRejected { message: Some(m) } => write!(
                f,
                "XAuth failed: the gateway rejected the user name or password ({m:?})"
            ),
            RemoteAccessFailure::XauthRejected { message: None } => {
                f.write_str("XAuth failed: the gateway rejected the user name or password")
            }
            RemoteAccessFailure::XauthNotConfigured => f.write_str(
                "the gateway asks for XAuth, but no xauth_user/xauth_password_file is configured",
            ),
            RemoteAccessFailure::XauthUnsupported { what } => {
                write!(f, "the gateway asks for XAuth with {what}, which ferrovpn does not answer (only user name and password)")
            }
            RemoteAccessFailure::ModeConfig(m) => write!(f, "Mode Config failed: {m}"),
            RemoteAccessFailure::GatewaySilent { waiting_for, after } => write!(
                f,
                "phase 1 is up, but the gateway sent no {waiting_for} within {}s: is it configured for XAuth/Mode Config with this group (and modeconfig = push/pull as it expects)?",
                after.as_secs()
            ),
            RemoteAccessFailure::Malformed(m) => write!(f, "malformed Transaction message: {m}"),
            RemoteAccessFailure::XauthFailed { user } => write!(
                f,
                "XAuth failed: wrong user name or password for user {user:?}"
            ),
            RemoteAccessFailure::SourceLockedOut => write!(
                f,
                "XAuth refused: too many wrong passwords from this source lately"
            ),
            RemoteAccessFailure::PoolExhausted { pool } => {
                write!(f, "Mode Config: no free address left in pool {pool}")
            }
            RemoteAccessFailure::NoPool { family } => write!(
                f,
                "Mode Config: the client asks for an {family} address only, and this gateway has no {family} pool"
            ),
        }
    }
}

/// What the UDP 4500 probe (a fresh MM1 to the peer's port 4500) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500Probe {
    /// MM5 went on UDP 500, which carried MM1–MM4: no probe needed.
    NotNeeded,
    Answered,
    Unanswered,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoResponse { message, tries } => write!(
                f,
                "no response to {message} after {tries} retransmissions: peer unreachable, not running, or UDP blocked on the path"
            ),
            Failure::Overdue { message, after } => write!(
                f,
                "{message} still unanswered {}s after MM1, though the peer answered MM1: a responder drops an unfinished phase 1 after its half-open timeout (strongSwan: 30 s), so this attempt ends and the next starts afresh; packets lost on the path?",
                after.as_secs()
            ),
            Failure::PeerNotify(n) => write!(f, "peer sent notify {}", n.name()),
            Failure::Certificate(c) => write!(f, "certificate authentication failed: {c}"),
            Failure::RemoteAccess(r) => write!(f, "{r}"),
            Failure::NoProposalChosen { ours, theirs } => {
                write!(f, "no proposal chosen: ours [{ours}], peer's [{theirs}]")
            }
            Failure::AuthenticationFailed { detail } => {
                write!(f, "authentication failed ({detail}): pre-shared keys differ?")
            }
            Failure::IdentityMismatch { expected, received } => {
                write!(f, "peer identity {received} does not match the configured {expected}")
            }
            Failure::InvalidSelectors { ours, theirs } => {
                write!(f, "traffic selectors refused: ours [{ours}], peer's [{theirs}] (narrowing is not done)")
            }
            Failure::AggressiveModeRefused => write!(
                f,
                "Aggressive Mode with PSK refused as responder: its hash can be cracked offline (set allow_aggressive_psk to accept)"
            ),
            Failure::Malformed(e) => write!(f, "malformed message: {e}"),
            Failure::InvalidKeyExchange => write!(f, "invalid Diffie-Hellman public value from peer"),
            Failure::Timeout => write!(f, "negotiation timed out"),
            Failure::DeletedByPeerAtOnce { after } => write!(
                f,
                "the peer deleted the ISAKMP SA {} ms after phase 1 completed, before any IPsec SA: it most likely refused our identity or credentials (see its log; compare local_id here with its remote id)",
                after.as_millis()
            ),
            Failure::Phase1Ended => write!(
                f,
                "the ISAKMP SA ended before QM3 came, so the IPsec SA pair was never completed"
            ),
            Failure::Abandoned { after } => write!(
                f,
                "the peer never continued after our {after} (half-open and unauthenticated: possibly a spoofed request)"
            ),
            Failure::NoResponseButPlainNotify { message, tries, notify } => write!(
                f,
                "no response to {message} after {tries} retransmissions; the only answer was an unauthenticated {} (a plain notify, which could be forged): most likely the peer refused {message} for that reason",
                notify.name()
            ),
            Failure::SilentAfterMm5 { tries, probe } => match probe {
                Udp4500Probe::Answered => write!(
                    f,
                    "no response to MM5 after {tries} retransmissions, but a fresh MM1 to the peer's UDP 4500 was answered: UDP 4500 passes, so the peer could not decrypt or verify MM5: pre-shared keys (or identities) differ"
                ),
                Udp4500Probe::Unanswered => write!(
                    f,
                    "no response to MM5 after {tries} retransmissions, and a fresh MM1 to the peer's UDP 4500 got no answer either: UDP 4500 is blocked on the path"
                ),
                Udp4500Probe::NotNeeded => write!(
                    f,
                    "no response to MM5 after {tries} retransmissions on the UDP port that carried MM1-MM4: the peer could not decrypt or verify MM5: pre-shared keys (or identities) differ"
                ),
            },
        }
    }
}

/// How ESP is carried to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspEncapsulation {
    /// IP protocol 50.
    Raw,
    /// ESP-in-UDP (RFC 3948) between these ports (4500 unless a NAT rewrote the peer's).
    Udp { local_port: u16, remote_port: u16 },
}

impl fmt::Display for EspEncapsulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EspEncapsulation::Raw => write!(f, "raw ESP (IP protocol 50)"),
            EspEncapsulation::Udp {
                local_port,
                remote_port,
            } => write!(f, "ESP-in-UDP {local_port} -> {remote_port}"),
        }
    }
}

/// One direction of an IPsec SA as the data plane needs it.
#[derive(Clone)]
pub struct EspKeys {
    pub spi: u32,
    /// Cipher key, followed by the 4-byte salt for AEADs (RFC 4106 §8.1, RFC 7634 §4).
    pub enc_key: Secret,
    /// Integrity key for CBC + HMAC transforms, empty for AEADs.
    pub auth_key: Secret,
}

impl fmt::Debug for EspKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EspKeys {{ spi: {:08x}, keys: <redacted> }}", self.spi)
    }
}

/// A negotiated IPsec SA pair, to be installed in the data plane (RFC 2409 §5.5).
#[derive(Debug, Clone)]
pub struct ChildSa {
    pub conn: ConnId,
    pub ike: Cookies,
    pub message_id: u32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub local_ts: TrafficSelector,
    pub remote_ts: TrafficSelector,
    pub cipher: EspCipher,
    pub integrity: Option<EspIntegrity>,
    pub esn: bool,
    pub pfs: Option<crate::algorithm::DhGroup>,
    pub encapsulation: EspEncapsulation,
    pub inbound: EspKeys,
    pub outbound: EspKeys,
    pub lifetime: Duration,
    pub lifetime_kb: Option<u64>,
    /// Who began the Quick Mode. `Initiator`: QM3 was ours, and the peer takes the pair into
    /// use only once QM3 has arrived (RFC 2409 §5.5).
    pub role: Role,
}

/// Capabilities the peer announced by vendor ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerFeatures {
    pub dpd: bool,
    pub nat_t_rfc: bool,
    pub nat_t_draft: bool,
    pub fragmentation: bool,
    pub cisco_unity: bool,
    pub xauth: bool,
    pub strongswan: bool,
}

/// What NAT-D found (RFC 3947 §3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStatus {
    pub local_behind_nat: bool,
    pub remote_behind_nat: bool,
    /// IKE moved to UDP 4500 and ESP is UDP-encapsulated.
    pub floated: bool,
}

#[derive(Debug, Clone)]
pub enum Event {
    Message(MessageLog),
    IkeSaEstablished {
        conn: ConnId,
        cookies: Cookies,
        role: Role,
        mode: Phase1Mode,
        proposal: IkeProposal,
        lifetime: Duration,
        peer: SocketAddr,
        features: PeerFeatures,
        nat: NatStatus,
    },
    /// A remote-access client got its settings by Mode Config (draft-dukes-ike-mode-cfg); Quick
    /// Mode follows with the assigned address as local selector.
    RemoteAccessConfigured {
        conn: ConnId,
        cookies: Cookies,
        settings: crate::wire::ModeCfgSettings,
    },
    /// Gateway: a client passed XAuth and Mode Config and holds `address` (issue 14); the
    /// daemon routes it to the client's IPsec SAs.
    RemoteAccessClientUp {
        conn: ConnId,
        cookies: Cookies,
        user: Option<String>,
        /// Its IPv4 and/or IPv6 address (IPv4 first).
        addresses: Vec<std::net::IpAddr>,
        peer: SocketAddr,
    },
    /// Gateway: a client's lease ended (its ISAKMP SA deleted, dead or expired).
    LeaseReleased {
        conn: ConnId,
        cookies: Cookies,
        address: std::net::IpAddr,
    },
    IkeSaFailed {
        conn: Option<ConnId>,
        cookies: Cookies,
        peer: SocketAddr,
        reason: Failure,
        /// It was to renew an ISAKMP SA of the connection (our rekey before its end), which
        /// stays in use until it ends.
        renewal: bool,
    },
    IkeSaDeleted {
        conn: ConnId,
        cookies: Cookies,
        reason: String,
    },
    /// Responder, QM2 sent: the inbound half may be installed now, so ESP the initiator sends
    /// right after QM3 is not dropped while QM3 is still on its way; `ChildSaEstablished` (or
    /// `ChildSaFailed` with the same message ID) follows.
    ChildSaInboundReady(ChildSa),
    ChildSaEstablished(ChildSa),
    ChildSaFailed {
        conn: ConnId,
        cookies: Cookies,
        message_id: u32,
        reason: Failure,
    },
    /// The peer deleted this pair: stop sending on it now; its inbound half stays for the
    /// drain time (packets the peer encrypted before its delete may still arrive), then
    /// `ChildSaDeleted` follows.
    ChildSaDraining {
        conn: ConnId,
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// Remove this SA pair from the data plane.
    ChildSaDeleted {
        conn: ConnId,
        inbound_spi: u32,
        outbound_spi: u32,
        reason: String,
    },
    /// The peer sent INITIAL-CONTACT: any older SAs with it are stale.
    InitialContact {
        conn: ConnId,
        cookies: Cookies,
    },
    PeerDead {
        conn: ConnId,
        cookies: Cookies,
    },
    /// Invalid-SPI recovery acted on ESP or IKE from `peer` that no SA of ours knows.
    Recovery {
        conn: ConnId,
        peer: std::net::IpAddr,
        /// What arrived and what we did, for the log.
        action: String,
    },
    /// The peer proposed or answered a lifetime above ours; ours was kept (RFC 2409 §4.5).
    LifetimeCapped {
        conn: ConnId,
        cookies: Cookies,
        /// "ISAKMP SA" or "IPsec SA".
        sa: &'static str,
        /// "s" or "KB".
        unit: &'static str,
        theirs: u64,
        ours: u64,
    },
    /// A notify the state machine only reports (e.g. an unauthenticated error after phase 1).
    NotifyReceived {
        conn: Option<ConnId>,
        cookies: Cookies,
        notify: NotifyType,
        /// Arrived protected under an established ISAKMP SA (HASH verified).
        authenticated: bool,
    },
    /// The peer's CR payloads named CAs that none of our certificates chains to: we send the
    /// default one (RFC 2408 §3.10), which the peer will likely refuse. `requested`: the DNs.
    CertificateRequestUnmatched {
        conn: ConnId,
        cookies: Cookies,
        requested: Vec<String>,
    },
    /// A message from the peer that we cannot act on (RFC 2408 §5: answered with `notify`
    /// where one applies), or one that shows the peer waits for something we never send.
    Unprocessable {
        conn: ConnId,
        cookies: Cookies,
        message_id: u32,
        /// The message by its operator name (QM1, TRANSACTION, AM3, ...).
        message: &'static str,
        reason: String,
        notify: Option<NotifyType>,
        /// The peer expects XAuth / Mode Config: a remote-access client or server.
        remote_access: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::Cookies;

    #[test]
    fn cookies_print_as_strongswan_does() {
        let c = Cookies {
            initiator_spi: [0x68, 0x8c, 0x69, 0xa8, 0x15, 0x00, 0x9e, 0x0e],
            responder_spi: [0x09, 0x8f, 0x5b, 0x33, 0xf9, 0x40, 0x89, 0xff],
        };
        assert_eq!(c.to_string(), "688c69a815009e0e_i 098f5b33f94089ff_r");
        assert_eq!(
            Cookies::default().to_string(),
            "0000000000000000_i 0000000000000000_r"
        );
    }
}
