//! Duplicate IPsec SA pairs: when both peers negotiate or rekey one pair at nearly the same
//! moment, two pairs exist for the same selectors. As strongSwan does (its task manager's
//! `is_redundant`), the one that expires first is deleted at its rekey time instead of being
//! rekeyed, so duplicates never multiply. Two pairs that end within `SIMULTANEOUS` of each
//! other are ranked by their SPIs instead (both peers see the same four), so two ferrovpn
//! peers always agree on which one goes; each side only ever deletes a pair it initiated.

use std::time::{Duration, Instant};

use crate::sa::{IkeSa, InstalledChild};

const SIMULTANEOUS: Duration = Duration::from_secs(10);

impl IkeSa {
    /// True when another current pair for the same configured selectors outranks pair `i`:
    /// `i` is redundant and is deleted rather than rekeyed.
    pub(crate) fn has_newer_pair(&self, i: usize) -> bool {
        let Some(c) = self.children.get(i) else {
            return false;
        };
        self.children.iter().enumerate().any(|(j, o)| {
            j != i && o.child_index == c.child_index && o.retire_at.is_none() && outranks(o, c)
        })
    }
}

fn ends(c: &InstalledChild) -> Option<Instant> {
    c.established.checked_add(c.lifetime)
}

/// Same order on both peers: a pair's SPIs are one side's inbound and the other's outbound.
fn rank(c: &InstalledChild) -> (u32, u32) {
    (c.spi_in.max(c.spi_out), c.spi_in.min(c.spi_out))
}

fn outranks(o: &InstalledChild, c: &InstalledChild) -> bool {
    match (ends(o), ends(c)) {
        (Some(a), Some(b)) if a.max(b).saturating_duration_since(a.min(b)) > SIMULTANEOUS => a > b,
        _ => rank(o) > rank(c),
    }
}
