//! What the endpoint counts (IKE events per connection) and what one scrape sees (a snapshot
//! the event loop fills).

use std::collections::BTreeMap;

use ferrovpn_esp::SaStats;
use ferrovpn_ike::{Direction, Event, Failure};

/// IKE events of one connection since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IkeEvents {
    pub messages_in: u64,
    pub messages_out: u64,
    pub retransmissions: u64,
    pub ike_established: u64,
    pub ike_rekeys: u64,
    /// Phase 1 failures by reason label (see [`failure_label`]).
    pub ike_failed: BTreeMap<&'static str, u64>,
    pub child_established: u64,
    pub child_rekeys: u64,
    pub child_failed: BTreeMap<&'static str, u64>,
    pub dpd_dead: u64,
}

/// A Prometheus label value for why a negotiation failed.
pub fn failure_label(f: &Failure) -> &'static str {
    match f {
        Failure::NoResponse { .. } => "no_response",
        Failure::Overdue { .. } => "overdue",
        Failure::PeerNotify(_) => "peer_notify",
        Failure::NoProposalChosen { .. } => "no_proposal_chosen",
        Failure::AuthenticationFailed { .. } => "authentication_failed",
        Failure::IdentityMismatch { .. } => "identity_mismatch",
        Failure::InvalidSelectors { .. } => "invalid_selectors",
        Failure::AggressiveModeRefused => "aggressive_mode_refused",
        Failure::Malformed(_) => "malformed",
        Failure::InvalidKeyExchange => "invalid_key_exchange",
        Failure::Timeout => "timeout",
        Failure::Phase1Ended => "phase1_ended",
        Failure::DeletedByPeerAtOnce { .. } => "deleted_by_peer_at_once",
        Failure::Abandoned { .. } => "abandoned",
        Failure::SilentAfterMm5 { .. } => "silent_after_mm5",
        Failure::NoResponseButPlainNotify { .. } => "no_response_plain_notify",
        Failure::Certificate(c) => c.name(),
        Failure::RemoteAccess(r) => r.name(),
    }
}

/// Event counters per connection, plus those no connection can be named for (e.g. messages of
/// a negotiation that never matched one).
#[derive(Debug, Clone, Default)]
pub struct EventCounters {
    pub conns: Vec<IkeEvents>,
    pub unassigned: IkeEvents,
}

impl EventCounters {
    /// A connection a reload added (the next id).
    pub fn add_connection(&mut self) {
        self.conns.push(IkeEvents::default());
    }

    pub fn new(conns: usize) -> Self {
        EventCounters {
            conns: vec![IkeEvents::default(); conns],
            unassigned: IkeEvents::default(),
        }
    }

    fn of(&mut self, conn: Option<usize>) -> &mut IkeEvents {
        match conn.and_then(|c| self.conns.get_mut(c)) {
            Some(e) => e,
            None => &mut self.unassigned,
        }
    }

    /// Counts one state machine event. `conn_of` names the connection of an initiator cookie,
    /// `rekey` says whether an SA established for the connection replaces one still up.
    pub fn count(
        &mut self,
        e: &Event,
        conn_of: impl Fn(&[u8; 8]) -> Option<usize>,
        rekey: impl Fn(&Event) -> bool,
    ) {
        match e {
            Event::Message(m) => {
                let c = self.of(conn_of(&m.cookies.initiator_spi));
                match m.direction {
                    Direction::Received => c.messages_in += 1,
                    Direction::Sent => c.messages_out += 1,
                }
                if m.retransmission && m.direction == Direction::Sent {
                    c.retransmissions += 1;
                }
            }
            Event::IkeSaEstablished { conn, .. } => {
                let is_rekey = rekey(e);
                let c = self.of(Some(*conn));
                c.ike_established += 1;
                c.ike_rekeys += u64::from(is_rekey);
            }
            Event::IkeSaFailed { conn, reason, .. } => {
                *self
                    .of(*conn)
                    .ike_failed
                    .entry(failure_label(reason))
                    .or_default() += 1;
            }
            Event::ChildSaEstablished(child) => {
                let is_rekey = rekey(e);
                let c = self.of(Some(child.conn));
                c.child_established += 1;
                c.child_rekeys += u64::from(is_rekey);
            }
            Event::ChildSaFailed { conn, reason, .. } => {
                *self
                    .of(Some(*conn))
                    .child_failed
                    .entry(failure_label(reason))
                    .or_default() += 1;
            }
            Event::PeerDead { conn, .. } => self.of(Some(*conn)).dpd_dead += 1,
            _ => {}
        }
    }
}

/// One installed IPsec SA pair.
#[derive(Debug, Clone, Default)]
pub struct SaPair {
    pub spi_in: u32,
    pub spi_out: u32,
    pub inbound: SaStats,
    pub outbound: SaStats,
}

/// One configured connection.
#[derive(Debug, Clone, Default)]
pub struct ConnSnapshot {
    pub name: String,
    pub up: bool,
    pub ike_sas: usize,
    /// A gateway's pool: (leases used, leases free); None for other connections.
    pub pool: Option<(u64, u64)>,
    /// Its IPv6 pool (`pool6`), the same way.
    pub pool6: Option<(u64, u64)>,
    pub pairs: Vec<SaPair>,
    pub events: IkeEvents,
}

/// What `/metrics` shows, collected on the event loop.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub uptime_s: u64,
    pub conns: Vec<ConnSnapshot>,
    pub unassigned: IkeEvents,
    /// Process-wide counters: (metric name without prefix, help, value).
    pub process: Vec<(&'static str, &'static str, u64)>,
}
