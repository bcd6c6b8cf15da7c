//! Operator control of one connection, as swanctl's `--initiate`, `--terminate` and `--rekey`,
//! and the connection changes of a configuration reload. Deletes tell the peer (RFC 2408 §3.15,
//! RFC 2409 §5.5); a rekey is make-before-break, as the lifetime-driven one.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use super::Endpoint;
use crate::config::ConnectionConfig;
use crate::context::Ctx;
use crate::event::{ConnId, Cookies, Role};
use crate::sa::{IkeSa, Phase1State};

/// Why a control request could not be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no such connection")]
    UnknownConnection,
    #[error("not up: no established ISAKMP SA")]
    NotUp,
}

/// What `terminate` deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminated {
    /// ISAKMP SAs deleted (DELETE sent for the established ones) or abandoned (half-open).
    pub ike_sas: usize,
    /// IPsec SA pairs deleted (DELETE sent for each).
    pub ipsec_sas: usize,
}

/// A removed connection keeps its `ConnId` (the caller's per-connection state stays indexed
/// the same); its addresses become ones no datagram comes from, so nothing matches it again.
const REMOVED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl Endpoint {
    fn check(&self, conn: ConnId) -> Result<(), ControlError> {
        match self.env.conns.get(conn) {
            Some(c) if !is_tombstone(c) => Ok(()),
            _ => Err(ControlError::UnknownConnection),
        }
    }

    /// True when `remove_connection` took it out.
    pub fn is_removed(&self, conn: ConnId) -> bool {
        self.env.conns.get(conn).is_none_or(is_tombstone)
    }

    /// The connection of this name (removed ones excluded).
    pub fn find_connection(&self, name: &str) -> Option<ConnId> {
        self.env
            .conns
            .iter()
            .position(|c| c.name == name && !is_tombstone(c))
    }

    /// Starts phase 1 now unless the connection is up or a phase 1 of ours is already under
    /// way (then `Ok(None)`): what `swanctl --initiate` does for an operator.
    pub fn initiate_now(
        &mut self,
        now: Instant,
        conn: ConnId,
    ) -> Result<Option<Cookies>, ControlError> {
        self.check(conn)?;
        let busy = self
            .sas
            .of_conn(conn)
            .any(|(_, s)| s.is_established() || (s.role == Role::Initiator && !is_dead(s)));
        if busy {
            return Ok(None);
        }
        Ok(self.initiate(now, conn))
    }

    /// Deletes every ISAKMP and IPsec SA of the connection, telling the peer with DELETE
    /// payloads; half-open negotiations are abandoned. Nothing restarts it by itself here: the
    /// caller decides (the daemon holds an initiating connection down until `initiate`).
    pub fn terminate(&mut self, now: Instant, conn: ConnId) -> Result<Terminated, ControlError> {
        self.check(conn)?;
        Ok(self.delete_all_of(now, conn, "terminated by the operator"))
    }

    fn delete_all_of(&mut self, now: Instant, conn: ConnId, reason: &str) -> Terminated {
        let keys = self.sas.keys_of_conn(conn);
        let mut done = Terminated::default();
        for key in keys {
            let Some(sa) = self.sas.remove(&key) else {
                continue;
            };
            self.note_removed_cookie(key);
            self.replaces.remove(&key);
            self.fail_half_installed(&sa);
            done.ike_sas += 1;
            done.ipsec_sas += sa.children.len();
            self.retire(now, sa, reason);
        }
        let (mine, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retiring)
            .into_iter()
            .partition(|(_, s)| s.conn == conn);
        self.retiring = keep;
        for (_, sa) in mine {
            done.ipsec_sas += sa.children.len();
            self.retire(now, sa, reason);
        }
        let sas = &self.sas;
        self.replaces.retain(|new, _| sas.contains_key(new));
        done
    }

    /// New Quick Mode SAs for every IPsec SA pair of the connection (RFC 2409 §5.5); each old
    /// pair is deleted, peer told, a drain time after its successor is installed. With phase 1
    /// up but no pair (all failed), the configured pairs are negotiated. Returns how many
    /// Quick Modes were started.
    pub fn rekey(&mut self, now: Instant, conn: ConnId) -> Result<usize, ControlError> {
        self.check(conn)?;
        let pairs = self.env.conns.get(conn).map_or(0, |c| c.children.len());
        let mut started = 0;
        let mut any_up = false;
        for key in self.sas.keys_of_conn(conn) {
            let Some(sa) = self.sas.get_mut(&key).filter(|s| s.is_established()) else {
                continue;
            };
            any_up = true;
            let Some(mut ctx) = self.env.ctx(now, conn) else {
                return Err(ControlError::UnknownConnection);
            };
            started += rekey_children(sa, &mut ctx);
        }
        if !any_up {
            return Err(ControlError::NotUp);
        }
        if started == 0 && !self.has_children(conn) {
            let newest = self
                .sas
                .of_conn(conn)
                .filter(|(_, s)| s.is_established())
                .max_by_key(|(_, s)| s.established_at)
                .map(|(k, _)| *k);
            if let Some(sa) = newest.and_then(|k| self.sas.get_mut(&k)) {
                let pending = (0..pairs).any(|i| qm_in_flight(sa, i));
                if let (false, Some(mut ctx)) = (pending, self.env.ctx(now, conn)) {
                    sa.start_quick_modes(&mut ctx);
                    started = pairs;
                }
            }
        }
        Ok(started)
    }

    /// The configured pairs of the connection that have no live IPsec SA pair (none, or only
    /// retiring, peer-deleted or expired ones) and no Quick Mode under way, on its newest
    /// established ISAKMP SA; a remote-access client's pairs of a family the gateway assigned
    /// no address of are not counted (they are never negotiated).
    pub fn missing_pairs(&self, conn: ConnId) -> Vec<usize> {
        let Some(cfg) = self.env.conns.get(conn) else {
            return Vec::new();
        };
        let Some((_, newest)) = self
            .sas
            .of_conn(conn)
            .filter(|(_, s)| s.is_established())
            .max_by_key(|(_, s)| s.established_at)
        else {
            return Vec::new();
        };
        (0..cfg.children.len())
            .filter(|&i| {
                let live = self.sas.of_conn(conn).any(|(_, s)| {
                    s.children.iter().any(|c| {
                        c.child_index == i && c.retire_at.is_none() && !c.peer_deleted && !c.expired
                    })
                });
                let v6 = cfg.children[i].local_ts.addr.is_ipv6();
                let addressable = cfg.remote_access.is_none()
                    || newest.assigned_local.iter().any(|t| t.addr.is_ipv6() == v6);
                !live && !qm_in_flight(newest, i) && addressable
            })
            .collect()
    }

    /// Quick Mode for each of `missing_pairs` on the newest established ISAKMP SA (RFC 2409
    /// §5.5): the pairs the peer deleted without a successor come back. Returns how many
    /// Quick Modes were started.
    pub fn negotiate_missing(&mut self, now: Instant, conn: ConnId) -> Result<usize, ControlError> {
        self.check(conn)?;
        let missing = self.missing_pairs(conn);
        let newest = self
            .sas
            .of_conn(conn)
            .filter(|(_, s)| s.is_established())
            .max_by_key(|(_, s)| s.established_at)
            .map(|(k, _)| *k)
            .ok_or(ControlError::NotUp)?;
        let Some(mut ctx) = self.env.ctx(now, conn) else {
            return Err(ControlError::UnknownConnection);
        };
        let Some(sa) = self.sas.get_mut(&newest) else {
            return Err(ControlError::NotUp);
        };
        let Some(keys) = sa.established_keys() else {
            return Err(ControlError::NotUp);
        };
        let mut started = 0;
        for i in missing {
            started += usize::from(sa.quick_mode_initiate(&mut ctx, &keys, i, None));
        }
        Ok(started)
    }

    /// Deletes the IPsec SA pair with our `inbound_spi`, peer told (RFC 2408 §3.15), as the
    /// daemon does with a pair its data plane could not install: neither side then counts a
    /// pair that carries nothing, and an initiating connection negotiates it again. False when
    /// no ISAKMP SA of the connection holds such a pair.
    pub fn delete_child_sa(
        &mut self,
        now: Instant,
        conn: ConnId,
        inbound_spi: u32,
        reason: &str,
    ) -> bool {
        let holder = self
            .sas
            .of_conn(conn)
            .find(|(_, s)| s.children.iter().any(|c| c.spi_in == inbound_spi))
            .map(|(k, _)| *k);
        let (Some(key), Some(mut ctx)) = (holder, self.env.ctx(now, conn)) else {
            return false;
        };
        let Some(sa) = self.sas.get_mut(&key) else {
            return false;
        };
        let Some(i) = sa.children.iter().position(|c| c.spi_in == inbound_spi) else {
            return false;
        };
        sa.delete_child(&mut ctx, i, reason);
        true
    }

    /// Authenticated ESP arrived on our inbound SPI `inbound_spi` of `conn`: the peer is alive.
    /// Traffic is proof of liveness (RFC 3706 §5.5, §6), so the ISAKMP SA holding that pair
    /// sends no R-U-THERE while it flows, and one outstanding counts as answered. Without this,
    /// lost R-U-THERE/ACKs on a lossy path declared a peer dead that was carrying traffic.
    /// False when no established ISAKMP SA of the connection holds that pair.
    pub fn esp_received(&mut self, now: Instant, conn: ConnId, inbound_spi: u32) -> bool {
        let holder = self
            .sas
            .of_conn(conn)
            .find(|(_, s)| s.is_established() && s.children.iter().any(|c| c.spi_in == inbound_spi))
            .map(|(k, _)| *k);
        let Some(sa) = holder.and_then(|k| self.sas.get_mut(&k)) else {
            return false;
        };
        sa.last_heard = sa.last_heard.max(now);
        sa.dpd.outstanding = None;
        true
    }

    fn has_children(&self, conn: ConnId) -> bool {
        self.sas.of_conn(conn).any(|(_, s)| !s.children.is_empty())
    }

    /// Puts a changed configuration in place of the connection's: its SAs are deleted first
    /// (peer told), since they were negotiated under the old settings.
    pub fn replace_connection(
        &mut self,
        now: Instant,
        conn: ConnId,
        cfg: ConnectionConfig,
    ) -> Result<Terminated, ControlError> {
        self.check(conn)?;
        let done = self.delete_all_of(now, conn, "configuration changed");
        if let Some(slot) = self.env.conns.get_mut(conn) {
            *slot = cfg;
        }
        self.env.reindex_conns();
        self.recovery_at.remove(&conn);
        Ok(done)
    }

    /// Deletes the connection's SAs (peer told) and takes it out: no datagram or `initiate`
    /// reaches it again. Its `ConnId` is not reused.
    pub fn remove_connection(
        &mut self,
        now: Instant,
        conn: ConnId,
    ) -> Result<Terminated, ControlError> {
        self.check(conn)?;
        let done = self.delete_all_of(now, conn, "connection removed from the configuration");
        if let Some(slot) = self.env.conns.get_mut(conn) {
            slot.name.clear();
            slot.local_addr = REMOVED;
            slot.remote_addr = REMOVED;
            slot.children.clear();
            slot.invalid_spi_recovery = false;
        }
        self.env.reindex_conns();
        self.recovery_at.remove(&conn);
        Ok(done)
    }
}

fn is_tombstone(c: &ConnectionConfig) -> bool {
    c.name.is_empty() && c.remote_addr == REMOVED
}

/// Starts a rekeying Quick Mode for each live pair of `sa` that has none under way.
fn rekey_children(sa: &mut IkeSa, ctx: &mut Ctx<'_>) -> usize {
    let todo: Vec<(usize, u32)> = sa
        .children
        .iter()
        .filter(|c| c.retire_at.is_none() && !c.peer_deleted && !c.expired)
        .map(|c| (c.child_index, c.spi_in))
        .collect();
    let mut started = 0;
    for (index, spi) in todo {
        if qm_in_flight(sa, index) {
            continue;
        }
        if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == spi) {
            c.rekey_started = true;
        }
        if start_rekey(sa, ctx, index, spi) {
            started += 1;
        }
    }
    started
}

// The IkeSa internals this file relies on, in one place.

/// The ISAKMP SA failed or was deleted and waits to be reaped.
fn is_dead(s: &IkeSa) -> bool {
    s.state() == Phase1State::Dead
}

/// A Quick Mode for configured pair `index` is under way on `sa`.
fn qm_in_flight(sa: &IkeSa, index: usize) -> bool {
    sa.quick_mode_pending(index)
}

/// Starts a Quick Mode replacing the pair whose inbound SPI is `spi`; true when QM1 went out
/// (or waits its turn).
fn start_rekey(sa: &mut IkeSa, ctx: &mut Ctx<'_>, index: usize, spi: u32) -> bool {
    let Some(keys) = sa.keyed() else {
        return false;
    };
    sa.quick_mode_initiate(ctx, &keys, index, Some(spi))
}
