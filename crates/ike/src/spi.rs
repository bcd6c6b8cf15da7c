//! Our inbound ESP SPIs (RFC 4303 §2.1, RFC 4301 §4.1: an SPI names one SA of the receiver).
//!
//! Drawn at random, SPIs collide: among 10,000 live SAs a new random SPI hits one of them with
//! a chance of 1 in 430,000, so setting up 10,000 tunnels at once collides once in about 85
//! tries and a gateway of that size rekeying hourly meets a collision every other day; the
//! data plane then refuses the second SA with that SPI and the tunnel is dead. Ours are a counter
//! through a keyed permutation of the 32-bit space instead: distinct for the endpoint's life
//! (2^32 SAs) and as unpredictable to a peer as random ones.

use sha2::{Digest, Sha256};

/// SPIs 1–255 are reserved (RFC 4303 §2.1), 0 means none.
const RESERVED: u32 = 255;

/// True for an SPI no SA may have (0–255, RFC 4303 §2.1): a peer that chooses one for its
/// inbound SA gets a pair the data plane refuses to install.
pub(crate) fn is_reserved(spi: u32) -> bool {
    spi <= RESERVED
}

/// Hands out distinct SPIs: `next` runs a counter through a four-round Feistel network over
/// two 16-bit halves, a bijection whatever its round keys.
pub(crate) struct SpiAllocator {
    keys: [u32; 4],
    counter: u32,
}

impl SpiAllocator {
    /// The permutation's keys and the counter's start come from `seed` (the endpoint's),
    /// through a hash of their own so the SPIs reveal nothing of the endpoint's other random
    /// values.
    pub(crate) fn new(seed: &[u8; 32]) -> Self {
        let h = Sha256::new()
            .chain_update(b"ferrovpn inbound SPI permutation")
            .chain_update(seed)
            .finalize();
        let word = |i: usize| {
            let mut w = [0u8; 4];
            if let Some(b) = h.get(4 * i..4 * i + 4) {
                w.copy_from_slice(b);
            }
            u32::from_be_bytes(w)
        };
        SpiAllocator {
            keys: [word(0), word(1), word(2), word(3)],
            counter: word(4),
        }
    }

    /// An SPI this allocator has not handed out before (until 2^32 calls), never a reserved
    /// one.
    pub(crate) fn next(&mut self) -> u32 {
        loop {
            let spi = self.permute(self.counter);
            self.counter = self.counter.wrapping_add(1);
            if !is_reserved(spi) {
                return spi;
            }
        }
    }

    fn permute(&self, x: u32) -> u32 {
        let (mut left, mut right) = (x >> 16, x & 0xffff);
        for k in self.keys {
            let mixed = (right ^ k).wrapping_mul(0x9e37_79b1);
            let f = (mixed >> 16) ^ (mixed & 0xffff);
            (left, right) = (right, left ^ f);
        }
        (left << 16) | right
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_million_spis_are_distinct_and_never_reserved() {
        let mut a = SpiAllocator::new(&[7; 32]);
        let mut seen = HashSet::new();
        for _ in 0..1_000_000 {
            let spi = a.next();
            assert!(spi > RESERVED);
            assert!(seen.insert(spi), "SPI {spi:#010x} handed out twice");
        }
    }

    #[test]
    fn the_permutation_is_a_bijection_across_the_counter_wrap() {
        let a = SpiAllocator::new(&[1; 32]);
        let mut seen = HashSet::new();
        for x in (u32::MAX - 100_000..=u32::MAX).chain(0..100_000) {
            assert!(seen.insert(a.permute(x)));
        }
    }

    #[test]
    fn endpoints_with_other_seeds_hand_out_other_spis_in_no_visible_order() {
        let mut a = SpiAllocator::new(&[1; 32]);
        let mut b = SpiAllocator::new(&[2; 32]);
        let xs: Vec<u32> = (0..64).map(|_| a.next()).collect();
        let ys: Vec<u32> = (0..64).map(|_| b.next()).collect();
        assert_ne!(xs, ys);
        // Consecutive SPIs are not neighbours: no counter shows through.
        let close = xs
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) < 1 << 16)
            .count();
        assert!(close < 4, "{close} of 63 consecutive pairs within 2^16");
    }
}
