//! The end of an IPsec SA pair when peers act at nearly the same moment: duplicates, and the
//! drain of pairs the peer deleted or let expire.
//!
//! Duplicates: when both peers negotiate or rekey one pair at once, two pairs exist for the
//! same selectors. As strongSwan does (its task manager's
//! `is_redundant`), the one that expires first is deleted at its rekey time instead of being
//! rekeyed, so duplicates never multiply. Two pairs that end within `SIMULTANEOUS` of each
//! other are ranked by their SPIs instead (both peers see the same four), so two ferrovpn
//! peers always agree on which one goes; each side only ever deletes a pair it initiated.

use std::time::{Duration, Instant};

use crate::context::Ctx;
use crate::event::Event;
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

impl IkeSa {
    /// The peer deleted the pair with this SPI (RFC 2409 §5.7; strongSwan sends it right after
    /// the Quick Mode that replaced it): we stop sending on it at once, but its inbound half
    /// stays `rekeyed_drain`, since ESP the peer encrypted just before may arrive after the
    /// delete and would otherwise be dropped as of an unknown SPI.
    pub(crate) fn peer_deleted_child(&mut self, ctx: &mut Ctx<'_>, spi: u32) {
        let drained = ctx
            .now
            .checked_add(ctx.settings.rekeyed_drain)
            .unwrap_or(ctx.now);
        let Some(c) = self
            .children
            .iter_mut()
            .find(|c| (c.spi_out == spi || c.spi_in == spi) && !c.peer_deleted)
        else {
            return;
        };
        c.peer_deleted = true;
        c.rekey_started = true;
        c.retire_at = Some(c.retire_at.map_or(drained, |t| t.min(drained)));
        ctx.event(Event::ChildSaDraining {
            conn: self.conn,
            inbound_spi: c.spi_in,
            outbound_spi: c.spi_out,
        });
    }

    /// A pair the peer negotiated reached its lifetime: we stop sending on it, but its inbound
    /// half stays `rekeyed_drain` longer. The peer counts the lifetime from its own clock and
    /// may send on the pair until then (strongSwan's libipsec keeps using the oldest pair of a
    /// policy until it expires), so packets in flight arrive just after our expiry. False
    /// when the pair is ours or already drains: it is deleted now.
    pub(crate) fn drain_expired(&mut self, ctx: &mut Ctx<'_>, i: usize) -> bool {
        let Some(c) = self.children.get_mut(i) else {
            return false;
        };
        if c.initiated_by_us || c.expired || c.peer_deleted {
            return false;
        }
        c.expired = true;
        c.rekey_started = true;
        c.lifetime = c.lifetime.saturating_add(ctx.settings.rekeyed_drain);
        ctx.event(Event::ChildSaDraining {
            conn: self.conn,
            inbound_spi: c.spi_in,
            outbound_spi: c.spi_out,
        });
        true
    }

    /// Removes pair `i` from the data plane without telling the peer.
    pub(crate) fn drop_child(&mut self, ctx: &mut Ctx<'_>, i: usize, reason: &str) {
        if i >= self.children.len() {
            return;
        }
        let c = self.children.swap_remove(i);
        ctx.event(Event::ChildSaDeleted {
            conn: self.conn,
            inbound_spi: c.spi_in,
            outbound_spi: c.spi_out,
            reason: reason.to_string(),
        });
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
