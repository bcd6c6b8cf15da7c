//! Longest-prefix match from inner addresses to their owners (on a shared tunnel device, the
//! connection whose remote prefixes hold the address: RFC 4301 §4.4.1 picks the SPD entry by
//! the packet's selectors). One hash map per prefix length in use, longest first: a lookup
//! costs one masked hash probe per distinct length (a gateway uses a handful), whatever the
//! number of prefixes, allocates nothing, and prefixes come and go at run time. Leaf module:
//! it knows `ipnet` only.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::ipnet::IpNet;

/// Prefixes of one address family: per length in use, network bits → owner.
#[derive(Debug, Clone)]
struct Family<T> {
    /// The lengths that have at least one prefix, longest first.
    lens: Vec<u8>,
    /// Index = prefix length (0..=32 or 0..=128).
    by_len: Vec<HashMap<u128, T>>,
    width: u8,
}

/// Two prefixes of different owners that share addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap<T> {
    pub existing: IpNet,
    pub owner: T,
}

fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `v` with all but its first `len` bits (of `width`) cleared.
fn masked(v: u128, len: u8, width: u8) -> u128 {
    let host = u32::from(width.saturating_sub(len));
    v.checked_shr(host)
        .and_then(|x| x.checked_shl(host))
        .unwrap_or(0)
}

impl<T: Copy + PartialEq> Family<T> {
    fn new(width: u8) -> Self {
        Family {
            lens: Vec::new(),
            by_len: (0..=width).map(|_| HashMap::new()).collect(),
            width,
        }
    }

    fn lookup(&self, v: u128) -> Option<(u8, T)> {
        self.lens.iter().find_map(|&l| {
            let m = self.by_len.get(usize::from(l))?;
            m.get(&masked(v, l, self.width)).map(|o| (l, *o))
        })
    }
}

/// Prefixes → owners, IPv4 and IPv6, with longest-prefix match.
#[derive(Debug, Clone)]
pub struct PrefixTable<T> {
    v4: Family<T>,
    v6: Family<T>,
    len: usize,
}

impl<T: Copy + PartialEq> Default for PrefixTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + PartialEq> PrefixTable<T> {
    pub fn new() -> Self {
        PrefixTable {
            v4: Family::new(32),
            v6: Family::new(128),
            len: 0,
        }
    }

    fn family(&self, v6: bool) -> &Family<T> {
        if v6 {
            &self.v6
        } else {
            &self.v4
        }
    }

    fn family_mut(&mut self, v6: bool) -> &mut Family<T> {
        if v6 {
            &mut self.v6
        } else {
            &mut self.v4
        }
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The owner of the longest prefix that holds `a`.
    pub fn lookup(&self, a: IpAddr) -> Option<T> {
        self.family(a.is_ipv6()).lookup(bits(a)).map(|(_, o)| o)
    }

    /// The owner of exactly `net`, if it is in the table.
    pub fn get(&self, net: &IpNet) -> Option<T> {
        let f = self.family(net.is_ipv6());
        f.by_len
            .get(usize::from(net.prefix_len()))?
            .get(&bits(net.addr()))
            .copied()
    }

    /// A prefix of another owner than `owner` that shares addresses with `net` (holds it or
    /// lies in it). Costs one probe per shorter length in use plus a scan of the longer ones.
    pub fn overlap(&self, net: &IpNet, owner: T) -> Option<Overlap<T>> {
        let f = self.family(net.is_ipv6());
        let v = bits(net.addr());
        for &l in &f.lens {
            let Some(m) = f.by_len.get(usize::from(l)) else {
                continue;
            };
            if l <= net.prefix_len() {
                if let Some(&o) = m.get(&masked(v, l, f.width)) {
                    if o != owner {
                        return Some(Overlap {
                            existing: IpNet::truncating(net.addr(), l),
                            owner: o,
                        });
                    }
                }
            } else if let Some((k, &o)) = m
                .iter()
                .find(|(k, o)| **o != owner && masked(**k, net.prefix_len(), f.width) == v)
            {
                let addr = if net.is_ipv6() {
                    IpAddr::V6((*k).into())
                } else {
                    IpAddr::V4(u32::try_from(*k).unwrap_or(0).into())
                };
                return Some(Overlap {
                    existing: IpNet::truncating(addr, l),
                    owner: o,
                });
            }
        }
        None
    }

    /// Adds `net` for `owner`. Refused when the very same prefix belongs to another owner
    /// (a longer or shorter one of another owner is allowed: the longest match wins; callers
    /// that want disjoint owners ask [`overlap`](Self::overlap) first). Adding a prefix again
    /// for its owner changes nothing.
    pub fn insert(&mut self, net: IpNet, owner: T) -> Result<(), Overlap<T>> {
        let f = self.family_mut(net.is_ipv6());
        let l = net.prefix_len();
        let Some(m) = f.by_len.get_mut(usize::from(l)) else {
            return Ok(());
        };
        match m.get(&bits(net.addr())) {
            Some(&o) if o == owner => return Ok(()),
            Some(&o) => {
                return Err(Overlap {
                    existing: net,
                    owner: o,
                })
            }
            None => {}
        }
        m.insert(bits(net.addr()), owner);
        if let Err(at) = f.lens.binary_search_by(|x| l.cmp(x)) {
            f.lens.insert(at, l);
        }
        self.len += 1;
        Ok(())
    }

    /// Removes `net` if `owner` holds it; true when it did.
    pub fn remove(&mut self, net: &IpNet, owner: T) -> bool {
        let f = self.family_mut(net.is_ipv6());
        let l = net.prefix_len();
        let Some(m) = f.by_len.get_mut(usize::from(l)) else {
            return false;
        };
        if m.get(&bits(net.addr())) != Some(&owner) {
            return false;
        }
        m.remove(&bits(net.addr()));
        if m.is_empty() {
            f.lens.retain(|&x| x != l);
        }
        self.len = self.len.saturating_sub(1);
        true
    }
}

/// The first pair of prefixes of different owners that share addresses, in `O(n log n)`:
/// sorted by first address (a holder before what it holds), a stack keeps the prefixes that
/// hold the current one. Prefixes nest or are disjoint, so the innermost holder decides.
pub fn first_overlap<T: Copy + PartialEq>(
    items: &[(IpNet, T)],
) -> Option<((IpNet, T), (IpNet, T))> {
    let range = |n: &IpNet| {
        let width: u8 = if n.is_ipv6() { 128 } else { 32 };
        let start = bits(n.addr());
        let host = u32::from(width.saturating_sub(n.prefix_len()));
        let span = 1u128.checked_shl(host).map_or(u128::MAX, |s| s - 1);
        (n.is_ipv6(), start, start.saturating_add(span))
    };
    let mut sorted: Vec<(bool, u128, u128, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            let (v6, s, e) = range(n);
            (v6, s, e, i)
        })
        .collect();
    // Same start: the wider (larger end) first.
    sorted.sort_by(|a, b| (a.0, a.1, b.2).cmp(&(b.0, b.1, a.2)));
    let mut stack: Vec<(bool, u128, usize)> = Vec::new();
    for &(v6, start, end, i) in &sorted {
        while stack
            .last()
            .is_some_and(|&(sv6, send, _)| sv6 != v6 || send < start)
        {
            stack.pop();
        }
        if let (Some(&(_, _, j)), Some(&cur)) = (stack.last(), items.get(i)) {
            if let Some(&outer) = items.get(j) {
                if outer.1 != cur.1 {
                    return Some((outer, cur));
                }
            }
        }
        stack.push((v6, end, i));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_wins_in_both_families() {
        let mut t = PrefixTable::new();
        t.insert(n("203.0.113.0/24"), 1).unwrap();
        t.insert(n("203.0.113.128/25"), 2).unwrap();
        t.insert(n("203.0.113.200/32"), 3).unwrap();
        t.insert(n("0.0.0.0/0"), 9).unwrap();
        t.insert(n("2001:db8::/32"), 4).unwrap();
        t.insert(n("2001:db8:1::/48"), 5).unwrap();
        assert_eq!(t.lookup(a("203.0.113.5")), Some(1));
        assert_eq!(t.lookup(a("203.0.113.129")), Some(2));
        assert_eq!(t.lookup(a("203.0.113.200")), Some(3));
        assert_eq!(t.lookup(a("198.51.100.1")), Some(9));
        assert_eq!(t.lookup(a("2001:db8:1::7")), Some(5));
        assert_eq!(t.lookup(a("2001:db8:2::7")), Some(4));
        assert_eq!(t.lookup(a("2001:db9::1")), None);
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn prefixes_come_and_go_at_run_time() {
        let mut t = PrefixTable::new();
        t.insert(n("198.51.100.0/24"), 1).unwrap();
        // A client's assigned address arrives, then leaves.
        t.insert(n("203.0.113.7/32"), 2).unwrap();
        assert_eq!(t.lookup(a("203.0.113.7")), Some(2));
        assert!(!t.remove(&n("203.0.113.7/32"), 1), "not the owner");
        assert!(t.remove(&n("203.0.113.7/32"), 2));
        assert!(!t.remove(&n("203.0.113.7/32"), 2));
        assert_eq!(t.lookup(a("203.0.113.7")), None);
        assert_eq!(t.lookup(a("198.51.100.9")), Some(1));
        assert_eq!(t.len(), 1);
        // The /32 length is no longer probed.
        assert_eq!(t.v4.lens, vec![24]);
    }

    #[test]
    fn the_same_prefix_for_another_owner_is_refused_and_overlaps_are_named() {
        let mut t = PrefixTable::new();
        t.insert(n("198.51.100.0/24"), 1).unwrap();
        t.insert(n("198.51.100.0/24"), 1).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.insert(n("198.51.100.0/24"), 2),
            Err(Overlap {
                existing: n("198.51.100.0/24"),
                owner: 1
            })
        );
        // Inside, around, beside.
        assert_eq!(
            t.overlap(&n("198.51.100.64/26"), 2),
            Some(Overlap {
                existing: n("198.51.100.0/24"),
                owner: 1
            })
        );
        assert_eq!(t.overlap(&n("198.51.0.0/16"), 2).map(|o| o.owner), Some(1));
        assert_eq!(t.overlap(&n("198.51.101.0/24"), 2), None);
        assert_eq!(t.overlap(&n("198.51.100.64/26"), 1), None, "own prefix");
        assert_eq!(t.overlap(&n("2001:db8::/32"), 2), None, "other family");
    }

    #[test]
    fn ten_thousand_host_prefixes_each_find_their_owner() {
        let mut t = PrefixTable::new();
        for i in 0..10_000u32 {
            let addr = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i));
            t.insert(IpNet::host(addr.into()), i).unwrap();
        }
        t.insert(n("2001:db8::/32"), u32::MAX).unwrap();
        for i in (0..10_000u32).step_by(97) {
            let addr = std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i));
            assert_eq!(t.lookup(addr.into()), Some(i));
        }
        assert_eq!(t.lookup(a("2001:db8::1:0:0")), Some(u32::MAX));
        assert_eq!(t.v6.lens, vec![128, 32]);
    }

    #[test]
    fn first_overlap_finds_nested_prefixes_of_different_owners_only() {
        let ok = [
            (n("203.0.113.0/25"), 1),
            (n("203.0.113.128/25"), 2),
            (n("198.51.100.0/24"), 3),
            (n("198.51.100.0/25"), 3),
            (n("2001:db8::/48"), 4),
            (n("0.0.0.0/1"), 5),
        ];
        assert_eq!(first_overlap(&ok), None);
        let mut bad = ok.to_vec();
        bad.push((n("198.51.100.200/32"), 6));
        assert_eq!(
            first_overlap(&bad),
            Some(((n("198.51.100.0/24"), 3), (n("198.51.100.200/32"), 6)))
        );
        let same = [(n("2001:db8::/48"), 1), (n("2001:db8::/48"), 2)];
        assert!(first_overlap(&same).is_some());
        let default = [(n("192.0.2.0/24"), 1), (n("0.0.0.0/0"), 2)];
        assert_eq!(
            first_overlap(&default),
            Some(((n("0.0.0.0/0"), 2), (n("192.0.2.0/24"), 1)))
        );
    }
}
