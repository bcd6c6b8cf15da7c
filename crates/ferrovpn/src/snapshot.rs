//! The records `diagnose` and `history` read, as the daemon serves them (`snapshot` request on
//! the control socket): per connection its configuration, live SAs, IKE events and ESP counter
//! samples. A leaf module: the daemon's history fills these, `diagnose` reasons over them.

use ferrovpn_ike::{Failure, Udp4500Probe};
use serde::{Deserialize, Serialize};

/// Everything `diagnose` and `history` read, as the daemon serves it (`snapshot` request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Milliseconds since the daemon started (the clock of every `t_ms`).
    pub now_ms: u64,
    /// Wall clock at `now_ms`, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub connections: Vec<ConnSnapshot>,
    /// Events from peers that match no connection.
    #[serde(default)]
    pub unclaimed: Vec<Record>,
    /// The endpoint-wide half-open limit and the MM1/AM1 it dropped.
    #[serde(default)]
    pub half_open: HalfOpenSnapshot,
}

/// `[daemon] max_half_open` and the MM1/AM1 dropped because that many responder negotiations
/// were waiting to authenticate (since the daemon started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalfOpenSnapshot {
    pub limit: u64,
    pub dropped: u64,
    /// When the last one was dropped (the clock of `t_ms`).
    pub last_drop_ms: Option<u64>,
}

/// One connection: what is configured, what is live, what happened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnSnapshot {
    pub name: String,
    pub local_addr: String,
    pub remote_addr: String,
    /// True when this side starts phase 1 (`start = "initiate"`).
    pub initiator: bool,
    pub aggressive: bool,
    /// `nat_traversal = "force"`.
    pub nat_force: bool,
    pub local_id: String,
    pub remote_id: String,
    /// Our phase 1 and Quick Mode offers, as in the configuration.
    pub ike_proposals: String,
    pub esp_proposals: String,
    /// Configured selector pairs, `local <=> remote`.
    pub selectors: Vec<String>,
    pub esp_lifetime_s: u64,
    /// How long an unanswered message is retransmitted before the exchange fails.
    pub give_up_ms: u64,
    pub ike_sas: Vec<IkeSaSnapshot>,
    pub ipsec_sas: Vec<IpsecSaSnapshot>,
    pub history: Vec<Record>,
    pub samples: Vec<Sample>,
    /// MM1/AM1 from the peer's address that never authenticated (since the daemon started).
    #[serde(default)]
    pub unauthenticated_requests: u64,
    /// Phase 1 authenticates with certificates (`auth = "certificate"`), not a PSK.
    #[serde(default)]
    pub certificate: bool,
    /// Held down by `ferrovpn terminate`: no attempt until `initiate` (or the peer's).
    #[serde(default)]
    pub held: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeSaSnapshot {
    pub cookies: String,
    pub initiator: bool,
    /// `MM1 sent` … `established`, `dead`.
    pub state: String,
    pub age_s: u64,
    pub nat_floated: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecSaSnapshot {
    pub spi_in: u32,
    pub spi_out: u32,
    pub udp_encapsulated: bool,
    pub age_s: u64,
    pub in_packets: u64,
    pub out_packets: u64,
}

/// One IKE event as `history` prints it and `diagnose` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Milliseconds since the daemon started (monotonic clock).
    pub t_ms: u64,
    /// Wall clock, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Both cookies as `<initiator>_i <responder>_r`.
    pub cookies: String,
    pub message_id: u32,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// An ISAKMP message by its operator name: MM1…MM6, AM1…AM3, QM1…QM3, INFO.
    Message {
        name: String,
        sent: bool,
        payloads: String,
        retransmission: bool,
        /// Carried on UDP 4500 (after the NAT-T float, RFC 3947 §4).
        udp4500: bool,
        peer: String,
    },
    IkeEstablished {
        initiator: bool,
        nat_floated: bool,
        proposal: String,
    },
    IkeFailed {
        failure: FailureRecord,
    },
    IkeDeleted {
        reason: String,
    },
    ChildEstablished {
        spi_in: u32,
        spi_out: u32,
        selectors: String,
        udp_encapsulated: bool,
    },
    ChildFailed {
        failure: FailureRecord,
    },
    ChildDeleted {
        spi_in: u32,
        spi_out: u32,
        reason: String,
    },
    PeerDead,
    Notify {
        notify: String,
        /// Protected under an established ISAKMP SA; unauthenticated notifies may be forged.
        #[serde(default)]
        authenticated: bool,
    },
    InitialContact,
    /// The peer's CR payloads asked for CAs none of our certificates chains to; we sent the
    /// default certificate.
    CertRequestUnmatched {
        requested: Vec<String>,
    },
    /// A message from the peer we could not act on (answered with `notify` where one applies).
    Unprocessable {
        message: String,
        reason: String,
        notify: Option<String>,
        remote_access: bool,
    },
}

/// `ferrovpn_ike::Failure` with the detail `diagnose` needs, in a form that survives JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FailureRecord {
    NoResponse {
        message: String,
        tries: u32,
    },
    PeerNotify {
        notify: String,
    },
    NoProposalChosen {
        ours: String,
        theirs: String,
    },
    AuthenticationFailed {
        detail: String,
    },
    IdentityMismatch {
        expected: String,
        received: String,
    },
    InvalidSelectors {
        ours: String,
        theirs: String,
    },
    /// MM5 unanswered; `probe` is what a fresh MM1 to the peer's UDP 4500 found:
    /// `answered`, `unanswered` or `not-needed` (MM5 went on UDP 500).
    SilentAfterMm5 {
        tries: u32,
        probe: String,
    },
    /// A half-open responder SA that never heard back after `after` (MM2/AM2).
    Abandoned {
        after: String,
    },
    /// Signature authentication refused the peer's certificate or SIG; `reason` is the
    /// stable name (`untrusted_ca`, `certificate_expired`, ...), `detail` the evidence.
    Certificate {
        reason: String,
        detail: String,
    },
    Other {
        detail: String,
    },
}

impl From<&Failure> for FailureRecord {
    fn from(f: &Failure) -> Self {
        match f {
            Failure::NoResponse { message, tries } => FailureRecord::NoResponse {
                message: (*message).to_string(),
                tries: *tries,
            },
            Failure::PeerNotify(n) => FailureRecord::PeerNotify {
                notify: n.name().to_string(),
            },
            Failure::NoProposalChosen { ours, theirs } => FailureRecord::NoProposalChosen {
                ours: ours.clone(),
                theirs: theirs.clone(),
            },
            Failure::AuthenticationFailed { detail } => FailureRecord::AuthenticationFailed {
                detail: detail.clone(),
            },
            Failure::IdentityMismatch { expected, received } => FailureRecord::IdentityMismatch {
                expected: expected.clone(),
                received: received.clone(),
            },
            Failure::InvalidSelectors { ours, theirs } => FailureRecord::InvalidSelectors {
                ours: ours.clone(),
                theirs: theirs.clone(),
            },
            Failure::SilentAfterMm5 { tries, probe } => FailureRecord::SilentAfterMm5 {
                tries: *tries,
                probe: match probe {
                    Udp4500Probe::Answered => "answered",
                    Udp4500Probe::Unanswered => "unanswered",
                    Udp4500Probe::NotNeeded => "not-needed",
                }
                .into(),
            },
            // The notify itself is a record of its own (`What::Notify`, unauthenticated).
            Failure::NoResponseButPlainNotify { message, tries, .. } => FailureRecord::NoResponse {
                message: (*message).to_string(),
                tries: *tries,
            },
            Failure::Abandoned { after } => FailureRecord::Abandoned {
                after: (*after).to_string(),
            },
            Failure::Certificate(c) => FailureRecord::Certificate {
                reason: c.name().to_string(),
                detail: c.to_string(),
            },
            other => FailureRecord::Other {
                detail: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for FailureRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureRecord::NoResponse { message, tries } => {
                write!(f, "no response to {message} after {tries} retransmissions")
            }
            FailureRecord::PeerNotify { notify } => write!(f, "peer sent notify {notify}"),
            FailureRecord::NoProposalChosen { ours, theirs } => {
                write!(f, "no proposal chosen: ours [{ours}], peer's [{theirs}]")
            }
            FailureRecord::AuthenticationFailed { detail } => {
                write!(f, "authentication failed ({detail})")
            }
            FailureRecord::IdentityMismatch { expected, received } => {
                write!(f, "peer identity {received}, expected {expected}")
            }
            FailureRecord::InvalidSelectors { ours, theirs } => {
                write!(
                    f,
                    "traffic selectors refused: ours [{ours}], peer's [{theirs}]"
                )
            }
            FailureRecord::SilentAfterMm5 { tries, probe } => match probe.as_str() {
                "answered" => write!(f, "no response to MM5 after {tries} retransmissions; a fresh MM1 to the peer's UDP 4500 was answered: UDP 4500 passes, the peer could not decrypt or verify MM5 (pre-shared keys or identities differ)"),
                "unanswered" => write!(f, "no response to MM5 after {tries} retransmissions; a fresh MM1 to the peer's UDP 4500 got no answer either: UDP 4500 blocked"),
                _ => write!(f, "no response to MM5 after {tries} retransmissions on the port that carried MM1-MM4: the peer could not decrypt or verify MM5 (pre-shared keys or identities differ)"),
            },
            FailureRecord::Abandoned { after } => write!(
                f,
                "half-open: nothing came back after our {after} (unauthenticated, possibly spoofed)"
            ),
            FailureRecord::Certificate { detail, .. } => {
                write!(f, "certificate authentication failed: {detail}")
            }
            FailureRecord::Other { detail } => f.write_str(detail),
        }
    }
}

/// ESP packet counters of one connection (all its SA pairs) at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: u64,
    /// Packets encapsulated (sent to the peer) since the daemon started.
    pub encaps: u64,
    /// Packets decapsulated (received from the peer and authenticated).
    pub decaps: u64,
}
