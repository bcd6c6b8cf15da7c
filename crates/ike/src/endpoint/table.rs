//! The endpoint's ISAKMP SAs, keyed by initiator cookie, with the indexes that keep the work
//! per datagram and per timer independent of the number of peers: SAs by connection, each
//! SA's next timer, the half-open responder SAs by peer address, and UDP 4500 probes by
//! their cookie.
//!
//! Reads go through `Deref` to the map. Every mutable access marks the SA dirty, and
//! `settle` brings the indexes up to date for the dirty ones only, so no index can miss a
//! change: an SA can only be changed through `get_mut`. (The connections' configuration, the
//! other input of a timer, changes only after their SAs are deleted: `replace_connection`.)

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Deref;
use std::time::Instant;

use crate::config::{ConnectionConfig, Settings};
use crate::event::ConnId;
use crate::sa::IkeSa;

type Key = [u8; 8];

#[derive(Default)]
pub(crate) struct SaTable {
    map: HashMap<Key, IkeSa>,
    by_conn: HashMap<ConnId, Vec<Key>>,
    /// Changed since the last `settle`: their entries below may be stale.
    dirty: HashSet<Key>,
    timers: BTreeSet<(Instant, Key)>,
    timer_of: HashMap<Key, Instant>,
    /// Half-open responder SAs and the peer address each counts against.
    half_open: HashMap<Key, IpAddr>,
    half_open_by_peer: HashMap<IpAddr, Vec<Key>>,
    /// UDP 4500 probe cookie → the SA that sent the probe.
    probes: HashMap<Key, Key>,
}

impl Deref for SaTable {
    type Target = HashMap<Key, IkeSa>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl SaTable {
    pub(crate) fn insert(&mut self, key: Key, sa: IkeSa) {
        let conn = sa.conn;
        if let Some(old) = self.map.insert(key, sa) {
            self.unindex(key, &old);
        }
        self.by_conn.entry(conn).or_default().push(key);
        self.dirty.insert(key);
    }

    pub(crate) fn remove(&mut self, key: &Key) -> Option<IkeSa> {
        let sa = self.map.remove(key)?;
        self.unindex(*key, &sa);
        Some(sa)
    }

    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut IkeSa> {
        let sa = self.map.get_mut(key)?;
        self.dirty.insert(*key);
        Some(sa)
    }

    /// Removes every SA.
    pub(crate) fn drain(&mut self) -> Vec<IkeSa> {
        let sas = self.map.drain().map(|(_, sa)| sa).collect();
        *self = SaTable::default();
        sas
    }

    /// The SAs of one connection.
    pub(crate) fn of_conn(&self, conn: ConnId) -> impl Iterator<Item = (&Key, &IkeSa)> {
        self.by_conn
            .get(&conn)
            .into_iter()
            .flatten()
            .filter_map(|k| self.map.get_key_value(k))
    }

    /// The cookies of the SAs of one connection.
    pub(crate) fn keys_of_conn(&self, conn: ConnId) -> Vec<Key> {
        self.by_conn.get(&conn).cloned().unwrap_or_default()
    }

    /// Brings the indexes up to date for the SAs changed since the last call.
    pub(crate) fn settle(&mut self, conns: &[ConnectionConfig], settings: &Settings) {
        for key in std::mem::take(&mut self.dirty) {
            self.drop_timer(key);
            self.drop_half_open(key);
            let Some(sa) = self.map.get(&key) else {
                continue;
            };
            if let Some(t) = conns
                .get(sa.conn)
                .and_then(|cfg| sa.next_timer(cfg, settings))
            {
                self.timers.insert((t, key));
                self.timer_of.insert(key, t);
            }
            if sa.is_half_open() {
                let peer = sa.remote.ip();
                self.half_open.insert(key, peer);
                self.half_open_by_peer.entry(peer).or_default().push(key);
            }
            if let Some(p) = &sa.probe {
                self.probes.insert(p.cookie, key);
            }
        }
    }

    /// The earliest timer of any SA (after `settle`).
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The SAs whose timer is due at `now` (after `settle`).
    pub(crate) fn due(&self, now: Instant) -> Vec<Key> {
        self.timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| *k)
            .collect()
    }

    /// Half-open responder SAs in all (after `settle`).
    pub(crate) fn half_open_count(&self) -> usize {
        self.half_open.len()
    }

    /// The half-open responder SAs from one peer address (after `settle`).
    pub(crate) fn half_open_from(&self, peer: IpAddr) -> &[Key] {
        self.half_open_by_peer.get(&peer).map_or(&[], Vec::as_slice)
    }

    /// The SA whose UDP 4500 probe used this cookie (after `settle`).
    pub(crate) fn prober(&self, probe_cookie: &Key) -> Option<Key> {
        let key = *self.probes.get(probe_cookie)?;
        let sa = self.map.get(&key)?;
        sa.probe
            .as_ref()
            .is_some_and(|p| p.cookie == *probe_cookie)
            .then_some(key)
    }

    /// Test builds: every index agrees with a full scan (after `settle`).
    #[cfg(all(feature = "test-support", debug_assertions))]
    pub(crate) fn assert_consistent(&self, conns: &[ConnectionConfig], settings: &Settings) {
        for (key, sa) in &self.map {
            let t = conns.get(sa.conn).and_then(|c| sa.next_timer(c, settings));
            assert_eq!(self.timer_of.get(key).copied(), t, "stale timer index");
            assert_eq!(
                self.half_open.contains_key(key),
                sa.is_half_open(),
                "stale half-open index"
            );
            assert!(self.by_conn.get(&sa.conn).is_some_and(|v| v.contains(key)));
        }
        assert_eq!(self.timers.len(), self.timer_of.len());
    }

    fn unindex(&mut self, key: Key, sa: &IkeSa) {
        if let Some(keys) = self.by_conn.get_mut(&sa.conn) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.by_conn.remove(&sa.conn);
            }
        }
        self.drop_timer(key);
        self.drop_half_open(key);
        if let Some(p) = &sa.probe {
            if self.probes.get(&p.cookie) == Some(&key) {
                self.probes.remove(&p.cookie);
            }
        }
        self.dirty.remove(&key);
    }

    fn drop_timer(&mut self, key: Key) {
        if let Some(t) = self.timer_of.remove(&key) {
            self.timers.remove(&(t, key));
        }
    }

    fn drop_half_open(&mut self, key: Key) {
        let Some(peer) = self.half_open.remove(&key) else {
            return;
        };
        if let Some(keys) = self.half_open_by_peer.get_mut(&peer) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.half_open_by_peer.remove(&peer);
            }
        }
    }
}
