//! Duplicate IPsec SA pairs: when both peers rekey one pair at nearly the same moment, two new
//! pairs exist for the same selectors. As strongSwan does (task_manager `is_redundant`), the
//! older one is deleted at its rekey time instead of being rekeyed again, so duplicates never
//! multiply and both peers converge on the newest pair.

use crate::sa::IkeSa;

impl IkeSa {
    /// True when another current pair for the same configured selectors expires later than
    /// pair `i`: `i` is redundant and is deleted rather than rekeyed.
    pub(crate) fn has_newer_pair(&self, i: usize) -> bool {
        let Some(c) = self.children.get(i) else {
            return false;
        };
        let ends = |x: &crate::sa::InstalledChild| x.established.checked_add(x.lifetime);
        let mine = ends(c);
        self.children.iter().enumerate().any(|(j, o)| {
            j != i
                && o.child_index == c.child_index
                && o.retire_at.is_none()
                && match (ends(o), mine) {
                    (Some(theirs), Some(mine)) => theirs > mine,
                    (None, Some(_)) => true,
                    _ => false,
                }
        })
    }
}
