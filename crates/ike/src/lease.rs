//! Address leases of remote-access gateways (draft-dukes-ike-mode-cfg §3.3 INTERNAL_IP4_ADDRESS,
//! INTERNAL_IP6_ADDRESS)
//! and the per-source count of XAuth failures: state shared by all ISAKMP SAs of a gateway
//! connection. A leaf: it imports nothing of its users.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

/// One connection's pool of one address family.
#[derive(Debug, Clone)]
pub struct AddressPool {
    v6: bool,
    /// First and last leasable address as integers (IPv4: network and broadcast excluded;
    /// IPv6: the Subnet-Router anycast address, RFC 4291 §2.6.1, excluded).
    first: u128,
    last: u128,
    leases: BTreeMap<IpAddr, Lease>,
}

fn to_int(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl AddressPool {
    /// `network/prefix`; an IPv4 /31 or /32 and an IPv6 /127 or /128 lease their addresses as
    /// they are.
    pub fn new(network: IpAddr, prefix: u8) -> Self {
        let (v6, bits) = match network {
            IpAddr::V4(_) => (false, 32u32),
            IpAddr::V6(_) => (true, 128u32),
        };
        let prefix = u32::from(prefix).min(bits);
        let width_mask = if bits == 128 {
            u128::MAX
        } else {
            u128::MAX >> (128 - bits)
        };
        let host = u128::MAX
            .checked_shr(prefix.saturating_add(128 - bits))
            .unwrap_or(0);
        let mask = width_mask & !host;
        let base = to_int(network) & mask;
        let top = base | host;
        let (first, last) = if prefix + 1 >= bits {
            (base, top)
        } else if v6 {
            (base.saturating_add(1), top)
        } else {
            (base.saturating_add(1), top.saturating_sub(1))
        };
        AddressPool {
            v6,
            first,
            last,
            leases: BTreeMap::new(),
        }
    }

    fn addr(&self, n: u128) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(n))
        } else {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(0)))
        }
    }

    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv6() == self.v6 && (self.first..=self.last).contains(&to_int(a))
    }

    /// Leasable addresses in all (saturating: an IPv6 /64 has more than `u64` counts).
    pub fn size(&self) -> u64 {
        u64::try_from(self.last.saturating_sub(self.first).saturating_add(1)).unwrap_or(u64::MAX)
    }

    pub fn used(&self) -> u64 {
        self.leases.len() as u64
    }

    pub fn leases(&self) -> impl Iterator<Item = (&IpAddr, &Lease)> {
        self.leases.iter()
    }

    /// An address for `lease`: the one `owner` already holds, else the one the same user had
    /// from the same outer address (a client's new phase 1), else `wanted` when it is in the
    /// pool and free, else the lowest free one. None: the pool is exhausted.
    pub fn allocate(&mut self, lease: Lease, wanted: Option<IpAddr>) -> Option<IpAddr> {
        let again = self
            .leases
            .iter()
            .find(|(_, l)| {
                l.owner == lease.owner
                    || (lease.user.is_some() && l.user == lease.user && l.peer == lease.peer)
            })
            .map(|(a, _)| *a);
        let free = |pool: &Self, a: IpAddr| pool.contains(a) && !pool.leases.contains_key(&a);
        // The leases are sorted: the first gap after `first` is the lowest free address.
        let lowest = || {
            let mut next = self.first;
            for a in self.leases.keys() {
                if to_int(*a) != next {
                    break;
                }
                next = next.checked_add(1)?;
            }
            (next <= self.last).then(|| self.addr(next))
        };
        let address = again
            .or(wanted.filter(|w| free(self, *w)))
            .or_else(lowest)?;
        self.leases.insert(address, lease);
        Some(address)
    }

    /// Releases what `owner` holds; returns the addresses freed.
    pub fn release(&mut self, owner: &[u8; 8]) -> Vec<IpAddr> {
        let gone: Vec<IpAddr> = self
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
    /// Per connection, its IPv4 pool and its IPv6 pool (keyed by `is_ipv6`).
    pools: HashMap<(ConnId, bool), AddressPool>,
    failures: HashMap<IpAddr, Failures>,
}

/// At most this many sources are tracked; the oldest windows are dropped beyond it.
const MAX_FAILURE_SOURCES: usize = 4096;

impl Leases {
    pub fn pool_mut(&mut self, conn: ConnId, network: IpAddr, prefix: u8) -> &mut AddressPool {
        self.pools
            .entry((conn, network.is_ipv6()))
            .or_insert_with(|| AddressPool::new(network, prefix))
    }

    /// The pool of one family of `conn`, once it leased something.
    pub fn pool(&self, conn: ConnId, v6: bool) -> Option<&AddressPool> {
        self.pools.get(&(conn, v6))
    }

    /// Releases every lease held by `owner` on `conn`, IPv4 and IPv6.
    pub fn release(&mut self, conn: ConnId, owner: &[u8; 8]) -> Vec<IpAddr> {
        let mut gone = Vec::new();
        for v6 in [false, true] {
            if let Some(p) = self.pools.get_mut(&(conn, v6)) {
                gone.extend(p.release(owner));
            }
        }
        gone
    }

    pub fn transfer(&mut self, conn: ConnId, from: &[u8; 8], to: [u8; 8]) {
        for v6 in [false, true] {
            if let Some(p) = self.pools.get_mut(&(conn, v6)) {
                p.transfer(from, to);
            }
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
        let mut p = AddressPool::new(Ipv4Addr::new(198, 51, 100, 128).into(), 30);
        assert_eq!(p.size(), 2);
        let a = p.allocate(lease(1, "a", 1), None).unwrap();
        let b = p.allocate(lease(2, "b", 2), None).unwrap();
        assert_eq!(a, IpAddr::from([198, 51, 100, 129]));
        assert_eq!(b, IpAddr::from([198, 51, 100, 130]));
        assert_eq!(p.allocate(lease(3, "c", 3), None), None);
        assert_eq!(p.release(&[1; 8]), vec![a]);
        assert_eq!(p.allocate(lease(3, "c", 3), None), Some(a));
    }

    #[test]
    fn a_wish_outside_the_pool_or_taken_is_ignored_and_one_inside_is_honoured() {
        let mut p = AddressPool::new(Ipv4Addr::new(198, 51, 100, 128).into(), 25);
        let outside = Some(IpAddr::from([203, 0, 113, 1]));
        assert_eq!(
            p.allocate(lease(1, "a", 1), outside),
            Some(IpAddr::from([198, 51, 100, 129]))
        );
        let inside = Some(IpAddr::from([198, 51, 100, 200]));
        assert_eq!(p.allocate(lease(2, "b", 2), inside), inside);
        assert_eq!(
            p.allocate(lease(3, "c", 3), inside),
            Some(IpAddr::from([198, 51, 100, 130]))
        );
        // An address of the other family is never leased from this pool.
        let v6 = Some("2001:db8::5".parse().unwrap());
        assert_eq!(
            p.allocate(lease(4, "d", 4), v6),
            Some(IpAddr::from([198, 51, 100, 131]))
        );
    }

    #[test]
    fn the_same_client_again_keeps_its_address() {
        let mut p = AddressPool::new(Ipv4Addr::new(198, 51, 100, 128).into(), 25);
        let a = p.allocate(lease(1, "a", 1), None);
        assert_eq!(p.allocate(lease(9, "a", 1), None), a);
        assert_eq!(p.used(), 1);
        // Same user from another port (a second device behind the NAT): its own address.
        assert_ne!(p.allocate(lease(8, "a", 2), None), a);
    }

    #[test]
    fn an_ipv6_pool_skips_the_anycast_address_honours_wishes_and_is_exhausted() {
        let net: IpAddr = "2001:db8:1::".parse().unwrap();
        let mut p = AddressPool::new(net, 126);
        assert_eq!(p.size(), 3);
        let a = p.allocate(lease(1, "a", 1), None).unwrap();
        assert_eq!(a, "2001:db8:1::1".parse::<IpAddr>().unwrap());
        let wish: IpAddr = "2001:db8:1::3".parse().unwrap();
        assert_eq!(p.allocate(lease(2, "b", 2), Some(wish)), Some(wish));
        // Outside the pool: the lowest free one instead.
        let outside: IpAddr = "2001:db8:2::1".parse().unwrap();
        assert_eq!(
            p.allocate(lease(3, "c", 3), Some(outside)),
            Some("2001:db8:1::2".parse().unwrap())
        );
        assert_eq!(p.allocate(lease(4, "d", 4), None), None);
        assert_eq!(p.release(&[2; 8]), vec![wish]);
        // A /64 counts saturated, its first address leased at once.
        let big = AddressPool::new(net, 64);
        assert_eq!(big.size(), u64::MAX);
        let mut l = Leases::default();
        l.pool_mut(0, net, 112).allocate(lease(1, "a", 1), None);
        l.pool_mut(0, [198, 51, 100, 128].into(), 25)
            .allocate(lease(1, "a", 1), None);
        assert_eq!(l.release(0, &[1; 8]).len(), 2, "both families released");
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
