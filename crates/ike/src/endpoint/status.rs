//! What `status` shows of the ISAKMP SAs and their IPsec SA pairs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Endpoint;
use crate::config::Phase1Mode;
use crate::event::{ConnId, Cookies, NatStatus, PeerFeatures, Role};
use crate::proposal::IkeProposal;

/// One IPsec SA pair as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildStatus {
    /// Message ID of the Quick Mode that made it.
    pub message_id: u32,
    pub spi_in: u32,
    pub spi_out: u32,
    pub age: Duration,
    pub lifetime: Duration,
}

/// One ISAKMP SA as `status` shows it.
#[derive(Debug, Clone)]
pub struct IkeSaStatus {
    pub conn: ConnId,
    pub name: String,
    pub cookies: Cookies,
    pub role: Role,
    pub mode: Phase1Mode,
    pub state: &'static str,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub proposal: Option<IkeProposal>,
    pub age: Duration,
    pub lifetime: Duration,
    pub nat: NatStatus,
    pub features: PeerFeatures,
    pub quick_modes_in_flight: usize,
    pub children: Vec<ChildStatus>,
}

impl Endpoint {
    /// Every ISAKMP SA, for `status`.
    pub fn ike_sas(&self, now: Instant) -> Vec<IkeSaStatus> {
        let mut v: Vec<IkeSaStatus> = self
            .sas
            .values()
            .map(|sa| IkeSaStatus {
                conn: sa.conn,
                name: self
                    .env
                    .conns
                    .get(sa.conn)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                cookies: sa.cookies,
                role: sa.role,
                mode: sa.mode,
                state: sa.state().name(),
                local: sa.local,
                remote: sa.remote,
                proposal: sa.proposal(),
                age: now.saturating_duration_since(sa.created),
                lifetime: sa.lifetime,
                nat: sa.nat,
                features: sa.features,
                quick_modes_in_flight: sa
                    .quick_modes
                    .iter()
                    .filter(|q| q.retransmit.is_some())
                    .count(),
                children: sa
                    .children
                    .iter()
                    .map(|c| ChildStatus {
                        message_id: c.message_id,
                        spi_in: c.spi_in,
                        spi_out: c.spi_out,
                        age: now.saturating_duration_since(c.established),
                        lifetime: c.lifetime,
                    })
                    .collect(),
            })
            .collect();
        v.sort_by_key(|s| (s.conn, s.age));
        v
    }
}
