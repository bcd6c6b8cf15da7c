//! Address leases of remote-access gateways (draft-dukes-ike-mode-cfg §3.3 INTERNAL_IP4_ADDRESS)
//! and the per-source count of XAuth failures: state shared by all ISAKMP SAs of a gateway
//! connection. A leaf: it imports nothing of its users.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::event::ConnId;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Initiator cookie of the ISAKMP SA that holds it.
    pub owner: [u8; 8],
    pub user: Option<String>,
    pub peer: SocketAddr,
    pub since: Instant,
}

/// One connection's IPv4 pool.
#[derive(Debug, Clone)]
pub struct AddressPool {
    /// First and last leasable address (network and broadcast excluded).
    first: u32,
    last: u32,
    leases: BTreeMap<Ipv4Addr, Lease>,
}

impl AddressPool {
    /// `network/prefix`; a /31 or /32 leases its addresses as they are.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Self {
        let prefix = prefix.min(32);
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let base = u32::from(network) & mask;
        let top = base | !mask;
        let (first, last) = if prefix >= 31 {
            (base, top)
        } else {
            (base.saturating_add(1), top.saturating_sub(1))
        };
        AddressPool {
            first,
            last,
            leases: BTreeMap::new(),
        }
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(a))
    }

    /// Leasable addresses in all.
    pub fn size(&self) -> u64 {
        u64::from(self.last.saturating_sub(self.first)).saturating_add(1)
    }

    pub fn used(&self) -> u64 {
        self.leases.len() as u64
    }

    pub fn leases(&self) -> impl Iterator<Item = (&Ipv4Addr, &Lease)> {
        self.leases.iter()
    }

    /// An address for `lease`: the one `owner` already holds, else the one the same user had
    /// from the same outer address (a client's new phase 1), else `wanted` when it is in the
    /// pool and free, else the lowest free one. None: the pool is exhausted.
    pub fn allocate(&mut self, lease: Lease, wanted: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let again = self
            .leases
            .iter()
            .find(|(_, l)| {
                l.owner == lease.owner
                    || (lease.user.is_some() && l.user == lease.user && l.peer == lease.peer)
            })
            .map(|(a, _)| *a);
        let free = |pool: &Self, a: Ipv4Addr| pool.contains(a) && !pool.leases.contains_key(&a);
        let address = again.or(wanted.filter(|w| free(self, *w))).or_else(|| {
            (self.first..=self.last)
                .map(Ipv4Addr::from)
                .find(|a| !self.leases.contains_key(a))
        })?;
        self.leases.insert(address, lease);
        Some(address)
    }

    /// Releases what `owner` holds; returns the addresses freed.
    pub fn release(&mut self, owner: &[u8; 8]) -> Vec<Ipv4Addr> {
        let gone: Vec<Ipv4Addr> = self
            .leases
            .iter()
            .filter(|(_, l)| l.owner == *owner)
            .map(|(a, _)| *a)
            .collect();
        for a in &gone {
            self.leases.remove(a);
        }
        gone
    }

    /// Hands the leases of `from` to `to` (the client's IPsec SAs moved to its new ISAKMP SA).
    pub fn transfer(&mut self, from: &[u8; 8], to: [u8; 8]) {
        for l in self.leases.values_mut().filter(|l| l.owner == *from) {
            l.owner = to;
        }
    }
}

/// XAuth failures per source address in the current window.
#[derive(Debug, Default)]
struct Failures {
    count: u32,
    since: Option<Instant>,
}

/// The gateway state of all connections of one endpoint.
#[derive(Debug, Default)]
pub struct Leases {
    pools: HashMap<ConnId, AddressPool>,
    failures: HashMap<IpAddr, Failures>,
}

/// At most this many sources are tracked; the oldest windows are dropped beyond it.
const MAX_FAILURE_SOURCES: usize = 4096;

impl Leases {
    pub fn pool_mut(&mut self, conn: ConnId, network: Ipv4Addr, prefix: u8) -> &mut AddressPool {
        self.pools
            .entry(conn)
            .or_insert_with(|| AddressPool::new(network, prefix))
    }

    pub fn pool(&self, conn: ConnId) -> Option<&AddressPool> {
        self.pools.get(&conn)
    }

    /// Releases every lease held by `owner` on `conn`.
    pub fn release(&mut self, conn: ConnId, owner: &[u8; 8]) -> Vec<Ipv4Addr> {
        self.pools
            .get_mut(&conn)
            .map(|p| p.release(owner))
            .unwrap_or_default()
    }

    pub fn transfer(&mut self, conn: ConnId, from: &[u8; 8], to: [u8; 8]) {
        if let Some(p) = self.pools.get_mut(&conn) {
            p.transfer(from, to);
        }
    }

    /// Counts one XAuth failure from `source`.
    pub fn failed(&mut self, source: IpAddr, now: Instant, window: Duration) {
        if self.failures.len() >= MAX_FAILURE_SOURCES && !self.failures.contains_key(&source) {
            self.failures.retain(|_, f| {
                f.since
                    .is_some_and(|s| now.saturating_duration_since(s) < window)
            });
            if self.failures.len() >= MAX_FAILURE_SOURCES {
                return;
            }
        }
        let f = self.failures.entry(source).or_default();
        if f.since
            .is_none_or(|s| now.saturating_duration_since(s) >= window)
        {
            *f = Failures {
                count: 0,
                since: Some(now),
            };
        }
        f.count = f.count.saturating_add(1);
    }

    /// True while `source` has `max` or more failures in its current window.
    pub fn locked_out(&self, source: IpAddr, now: Instant, max: u32, window: Duration) -> bool {
        self.failures.get(&source).is_some_and(|f| {
            f.count >= max
                && f.since
                    .is_some_and(|s| now.saturating_duration_since(s) < window)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(owner: u8, user: &str, port: u16) -> Lease {
        Lease {
            owner: [owner; 8],
            user: Some(user.into()),
            peer: SocketAddr::from(([192, 0, 2, 9], port)),
            since: Instant::now(),
        }
    }

    #[test]
    fn a_slash_30_leases_its_two_hosts_then_is_exhausted_and_release_frees() {
        let mut p = AddressPool::new(Ipv4Addr::new(198, 51, 100, 128), 30);
        assert_eq!(p.size(), 2);
        let a = p.allocate(lease(1, "a", 1), None).unwrap();
        let b = p.allocate(lease(2, "b", 2), None).unwrap();
        assert_eq!(a, Ipv4Addr::new(198, 51, 100, 129));
        assert_eq!(b, Ipv4Addr::new(198, 51, 100, 130));
        assert_eq!(p.allocate(lease(3, "c", 3), None), None);
        assert_eq!(p.release(&[1; 8]), vec![a]);
        assert_eq!(p.allocate(lease(3, "c", 3), None), Some(a));
    }

    #[test]
    fn a_wish_outside_the_pool_or_taken_is_ignored_and_one_inside_is_honoured() {
        let mut p = AddressPool::new(Ipv4Addr::new(198, 51, 100, 128), 25);
        let outside = Some(Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(
            p.allocate(lease(1, "a", 1), outside),
            Some(Ipv4Addr::new(198, 51, 100, 129))
        );
        let inside = Some(Ipv4Addr::new(198, 51, 100, 200));
        assert_eq!(p.allocate(lease(2, "b", 2), inside), inside);
        assert_eq!(
            p.allocate(lease(3, "c", 3), inside),
            Some(Ipv4Addr::new(198, 51, 100, 130))
        );
    }

    #[test]
    fn the_same_client_again_keeps_its_address() {
        let mut p = AddressPool::new(Ipv4Addr::new(198, 51, 100, 128), 25);
        let a = p.allocate(lease(1, "a", 1), None);
        assert_eq!(p.allocate(lease(9, "a", 1), None), a);
        assert_eq!(p.used(), 1);
        // Same user from another port (a second device behind the NAT): its own address.
        assert_ne!(p.allocate(lease(8, "a", 2), None), a);
    }

    #[test]
    fn failures_lock_a_source_out_for_the_window() {
        let mut l = Leases::default();
        let src: IpAddr = [192, 0, 2, 9].into();
        let t = Instant::now();
        let w = Duration::from_secs(60);
        for _ in 0..3 {
            assert!(!l.locked_out(src, t, 3, w));
            l.failed(src, t, w);
        }
        assert!(l.locked_out(src, t, 3, w));
        assert!(!l.locked_out([192, 0, 2, 8].into(), t, 3, w));
        assert!(!l.locked_out(src, t + w, 3, w));
    }
}
