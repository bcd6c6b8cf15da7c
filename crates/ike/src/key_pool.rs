//! Diffie-Hellman key pairs made ahead of time (RFC 2409 §5: each exchange needs a fresh
//! private value, not necessarily one made on the spot). The driver's worker threads make
//! them, so the endpoint's own thread only computes shared secrets and setups scale with
//! cores. Sans-IO: the endpoint says how many it wants per group (`wanted`), the driver hands
//! them in (`add`); with an empty pool, or a pool size of 0, keys are made inline as before.
//! The groups of the configured proposals are pooled from the start, others from first use.
//! Each key pair is used once: `take` moves it out.

use std::collections::HashMap;

use rand::rngs::StdRng;

use crate::algorithm::DhGroup;
use crate::crypto::DhPrivate;

#[derive(Default)]
pub(crate) struct KeyPool {
    /// Key pairs kept ready per group that has been asked for (0: no pool).
    size: usize,
    ready: HashMap<DhGroup, Vec<DhPrivate>>,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

impl KeyPool {
    pub(crate) fn new(size: usize) -> Self {
        KeyPool {
            size,
            ..KeyPool::default()
        }
    }

    /// A fresh key pair for `group`: from the pool if one is ready, else made now. A group is
    /// pooled from its first use on.
    pub(crate) fn take(&mut self, group: DhGroup, rng: &mut StdRng) -> DhPrivate {
        if self.size == 0 {
            return DhPrivate::generate(group, rng);
        }
        match self.ready.entry(group).or_default().pop() {
            Some(k) => {
                self.hits += 1;
                k
            }
            None => {
                self.misses += 1;
                DhPrivate::generate(group, rng)
            }
        }
    }

    /// Keeps key pairs of `group` ready from now on (a configured proposal's group: the pool
    /// is full before the first burst of peers, not after it).
    pub(crate) fn want(&mut self, group: DhGroup) {
        if self.size > 0 {
            self.ready.entry(group).or_default();
        }
    }

    /// How many key pairs of each group in use the pool lacks.
    pub(crate) fn wanted(&self) -> Vec<(DhGroup, usize)> {
        self.ready
            .iter()
            .filter(|(_, v)| v.len() < self.size)
            .map(|(g, v)| (*g, self.size - v.len()))
            .collect()
    }

    /// A key pair made by the driver; dropped (wiped) when its group's pool is full.
    pub(crate) fn add(&mut self, key: DhPrivate) {
        let v = self.ready.entry(key.group()).or_default();
        if v.len() < self.size {
            v.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_pool_serves_each_key_once_and_asks_only_for_groups_in_use() {
        let mut rng = StdRng::from_seed([3; 32]);
        let mut pool = KeyPool::new(2);
        assert!(pool.wanted().is_empty(), "no group used yet");
        pool.want(DhGroup::Ecp256);
        assert_eq!(
            pool.wanted(),
            vec![(DhGroup::Ecp256, 2)],
            "a configured group"
        );
        pool.ready.clear();
        let first = pool.take(DhGroup::Curve25519, &mut rng);
        assert_eq!((pool.hits, pool.misses), (0, 1));
        assert_eq!(pool.wanted(), vec![(DhGroup::Curve25519, 2)]);
        let made = DhPrivate::generate(DhGroup::Curve25519, &mut rng);
        let public = made.public_value();
        pool.add(made);
        pool.add(DhPrivate::generate(DhGroup::Curve25519, &mut rng));
        pool.add(DhPrivate::generate(DhGroup::Curve25519, &mut rng));
        assert!(pool.wanted().is_empty(), "full: the third was dropped");
        let a = pool.take(DhGroup::Curve25519, &mut rng);
        let b = pool.take(DhGroup::Curve25519, &mut rng);
        assert_eq!(pool.hits, 2);
        assert_ne!(a.public_value(), b.public_value());
        assert!([a.public_value(), b.public_value()].contains(&public));
        assert_ne!(first.public_value(), a.public_value());
    }

    #[test]
    fn size_zero_makes_every_key_inline() {
        let mut rng = StdRng::from_seed([3; 32]);
        let mut pool = KeyPool::new(0);
        pool.take(DhGroup::Ecp256, &mut rng);
        pool.add(DhPrivate::generate(DhGroup::Ecp256, &mut rng));
        assert!(pool.wanted().is_empty());
        assert_eq!((pool.hits, pool.misses), (0, 0));
    }
}
