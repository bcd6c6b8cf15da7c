//! What one call into an ISAKMP SA borrows: the time, its connection, the settings, the
//! randomness and the queues it writes datagrams and events to (the sans-IO boundary).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::RngCore;

use crate::algorithm::DhGroup;
use crate::config::{ConnectionConfig, Settings};
use crate::crypto::DhPrivate;
use crate::dh_job::DhJobs;
use crate::event::Event;
use crate::key_pool::KeyPool;
use crate::lease::Leases;
use crate::spi::SpiAllocator;

/// A datagram to or from the peer. `data` is the ISAKMP message; on port 4500 the driver adds
/// and strips the 4-byte non-ESP marker (RFC 3948 §2.2), except on a NAT-keepalive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

impl Datagram {
    /// A NAT-keepalive (RFC 3948 §2.3): the single byte 0xFF, sent without a non-ESP marker.
    pub fn nat_keepalive(local: SocketAddr, remote: SocketAddr) -> Self {
        Datagram {
            local,
            remote,
            data: vec![0xff],
        }
    }

    /// Whether this is a NAT-keepalive, which goes out as it is.
    pub fn is_nat_keepalive(&self) -> bool {
        self.data == [0xff]
    }
}

/// Where the state machine writes what it wants done.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub transmits: VecDeque<Datagram>,
    pub events: VecDeque<Event>,
}

/// Borrowed context for one call into an SA.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a ConnectionConfig,
    pub settings: &'a Settings,
    pub rng: &'a mut StdRng,
    pub keys: &'a mut KeyPool,
    pub jobs: &'a mut DhJobs,
    pub out: &'a mut Output,
    pub leases: &'a mut Leases,
    pub spis: &'a mut SpiAllocator,
}

impl Ctx<'_> {
    pub fn event(&mut self, e: Event) {
        self.out.events.push_back(e);
    }

    pub fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.rng.fill_bytes(&mut b);
        b
    }

    /// A fresh Diffie-Hellman key pair (from the pool when one is ready).
    pub fn new_dh(&mut self, group: DhGroup) -> DhPrivate {
        self.keys.take(group, self.rng)
    }

    /// A non-zero message ID (RFC 2408 §3.1: zero is phase 1).
    pub fn message_id(&mut self) -> u32 {
        loop {
            let id = self.rng.next_u32();
            if id != 0 {
                return id;
            }
        }
    }
}
