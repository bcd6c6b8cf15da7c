//! Security Association Database (RFC 4301 §4.4.2): inbound lookup by SPI, outbound by handle.
//!
//! The tables are an immutable snapshot behind an `Arc`. Changes copy the snapshot under a
//! mutex and bump a generation counter; each [`SadReader`] (one per worker thread) re-reads the
//! snapshot only when the generation moved, so the hot path takes no lock for lookups. Each
//! table is split into `SHARDS` maps behind their own `Arc`s, so a change copies one shard
//! (1/64 of the SAs) instead of the whole table: installing N SAs one by one stays near O(N)
//! for a gateway with thousands of tunnels. A snapshot (or shard) no reader has picked up yet
//! is changed in place: a burst of setups while the workers are idle copies nothing.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crossbeam_channel::Receiver;

use crate::clock::Timestamp;
use crate::error::{EspError, SadError};
use crate::packet::{EspPacket, PacketBuf, Verdict};
use crate::sa::{Direction, EventSink, Sa, SaConfig, SaEvent, SaHandle, SaStats, Wake};

/// Multiplicative hash for integer keys (SPIs are random, handles sequential).
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n))
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Shards per table: a change copies one.
const SHARDS: usize = 64;

/// A table of SAs by integer key, in `SHARDS` copy-on-write shards (by key modulo `SHARDS`).
#[derive(Clone)]
struct Sharded<K> {
    shards: Vec<Arc<IdMap<K, Arc<Sa>>>>,
}

impl<K: Copy + Eq + std::hash::Hash + Into<u64>> Default for Sharded<K> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Arc::new(IdMap::default())).collect(),
        }
    }
}

impl<K: Copy + Eq + std::hash::Hash + Into<u64>> Sharded<K> {
    fn index(k: K) -> usize {
        // Lossless: the remainder is below SHARDS.
        (k.into() % SHARDS as u64) as usize
    }

    fn get(&self, k: &K) -> Option<&Arc<Sa>> {
        self.shards.get(Self::index(*k))?.get(k)
    }

    fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// Copies the key's shard if a reader still holds it (the usual case), then inserts.
    fn insert(&mut self, k: K, sa: Arc<Sa>) {
        if let Some(shard) = self.shards.get_mut(Self::index(k)) {
            Arc::make_mut(shard).insert(k, sa);
        }
    }

    fn remove(&mut self, k: &K) -> Option<Arc<Sa>> {
        let shard = self.shards.get_mut(Self::index(*k))?;
        if !shard.contains_key(k) {
            return None;
        }
        Arc::make_mut(shard).remove(k)
    }

    fn values(&self) -> impl Iterator<Item = &Arc<Sa>> {
        self.shards.iter().flat_map(|s| s.values())
    }
}

#[derive(Default, Clone)]
struct Snapshot {
    inbound: Sharded<u32>,
    by_handle: Sharded<u64>,
}

struct Inner {
    generation: u64,
    next_handle: u64,
    next_instance: u64,
    snapshot: Arc<Snapshot>,
}

/// Global (not per-SA) drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalStats {
    /// Inbound packets whose SPI matched no SA (RFC 4303 §3.4.2).
    pub unknown_spi: u64,
    /// Outbound packets naming no installed SA.
    pub unknown_sa: u64,
    /// Inbound packets too short to carry an SPI.
    pub malformed: u64,
}

/// The SAD. Share it as `Arc<Sad>`; control plane calls `add`/`replace`/`remove`, workers use
/// a [`SadReader`] each.
pub struct Sad {
    inner: Mutex<Inner>,
    generation: AtomicU64,
    unknown_spi: AtomicU64,
    unknown_sa: AtomicU64,
    malformed: AtomicU64,
    events: EventSink,
    events_rx: Receiver<SaEvent>,
}

impl Default for Sad {
    fn default() -> Self {
        Self::new()
    }
}

impl Sad {
    pub fn new() -> Self {
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        Sad {
            inner: Mutex::new(Inner {
                generation: 0,
                next_handle: 1,
                next_instance: 1,
                snapshot: Arc::new(Snapshot::default()),
            }),
            generation: AtomicU64::new(0),
            unknown_spi: AtomicU64::new(0),
            unknown_sa: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            events: EventSink {
                tx: events_tx,
                wake: Arc::new(OnceLock::new()),
            },
            events_rx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Changes are single map inserts and removes, which do not panic (allocation failure
        // aborts), so a poisoned lock still guards a whole snapshot and is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The snapshot to change: the current one in place when no reader holds it (readers only
    /// take it under the lock), else a copy that `publish` makes current.
    fn edit(inner: &mut Inner) -> &mut Snapshot {
        Arc::make_mut(&mut inner.snapshot)
    }

    /// Readers pick up the changed snapshot at their next batch.
    fn publish(&self, inner: &mut Inner) {
        inner.generation += 1;
        self.generation.store(inner.generation, Ordering::Release);
    }

    /// Installs a new SA; key lengths, SPI and window are checked here, never per packet.
    pub fn add(&self, cfg: &SaConfig, now: Timestamp) -> Result<SaHandle, SadError> {
        let mut inner = self.lock();
        let handle = SaHandle(inner.next_handle);
        self.put(&mut inner, handle, cfg, now, None)?;
        inner.next_handle += 1;
        Ok(handle)
    }

    /// Replaces the SA behind `handle` with fresh state (new keys, counters, window); traffic
    /// switches atomically. The direction must stay the same.
    pub fn replace(
        &self,
        handle: SaHandle,
        cfg: &SaConfig,
        now: Timestamp,
    ) -> Result<(), SadError> {
        let mut inner = self.lock();
        let old = inner
            .snapshot
            .by_handle
            .get(&handle.0)
            .cloned()
            .ok_or(SadError::NotFound)?;
        if old.direction != cfg.direction {
            return Err(SadError::Direction);
        }
        self.put(&mut inner, handle, cfg, now, Some(old.spi))
    }

    /// Builds the SA behind `handle` and makes it current; an inbound one takes the place of
    /// the SPI it `replaces`.
    fn put(
        &self,
        inner: &mut Inner,
        handle: SaHandle,
        cfg: &SaConfig,
        now: Timestamp,
        replaces: Option<u32>,
    ) -> Result<(), SadError> {
        let sa = Arc::new(Sa::new(
            cfg,
            handle,
            inner.next_instance,
            now,
            self.events.clone(),
        )?);
        let inbound = cfg.direction == Direction::Inbound;
        if inbound && replaces != Some(cfg.spi) && inner.snapshot.inbound.contains_key(&cfg.spi) {
            return Err(SadError::DuplicateSpi(cfg.spi));
        }
        inner.next_instance += 1;
        let snap = Self::edit(inner);
        if inbound {
            if let Some(old) = replaces {
                snap.inbound.remove(&old);
            }
            snap.inbound.insert(cfg.spi, sa.clone());
        }
        snap.by_handle.insert(handle.0, sa);
        self.publish(inner);
        Ok(())
    }

    /// Removes an SA; packets already in flight finish on their snapshot.
    pub fn remove(&self, handle: SaHandle) -> Result<(), SadError> {
        let mut inner = self.lock();
        if !inner.snapshot.by_handle.contains_key(&handle.0) {
            return Err(SadError::NotFound);
        }
        let snap = Self::edit(&mut inner);
        let old = snap.by_handle.remove(&handle.0).ok_or(SadError::NotFound)?;
        if old.direction == Direction::Inbound {
            snap.inbound.remove(&old.spi);
        }
        self.publish(&mut inner);
        Ok(())
    }

    fn get(&self, handle: SaHandle) -> Option<Arc<Sa>> {
        self.lock().snapshot.by_handle.get(&handle.0).cloned()
    }

    /// Counter snapshot of one SA.
    pub fn stats(&self, handle: SaHandle) -> Option<SaStats> {
        self.get(handle).map(|sa| sa.stats())
    }

    /// All installed SAs: handle, SPI, direction.
    pub fn list(&self) -> Vec<(SaHandle, u32, Direction)> {
        let inner = self.lock();
        let mut v: Vec<_> = inner
            .snapshot
            .by_handle
            .values()
            .map(|sa| (sa.handle, sa.spi, sa.direction))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    pub fn global_stats(&self) -> GlobalStats {
        GlobalStats {
            unknown_spi: self.unknown_spi.load(Ordering::Relaxed),
            unknown_sa: self.unknown_sa.load(Ordering::Relaxed),
            malformed: self.malformed.load(Ordering::Relaxed),
        }
    }

    /// Calls `wake` after each lifetime event (once; later calls are ignored).
    pub fn set_wake(&self, wake: Wake) {
        let _ = self.events.wake.set(wake);
    }

    /// Lifetime events (soft: rekey now; hard: SA stopped). Drain with `try_iter()`.
    pub fn events(&self) -> Receiver<SaEvent> {
        self.events_rx.clone()
    }

    /// Checks time-based lifetimes of every SA; call from the daemon's timer.
    pub fn poll_lifetimes(&self, now: Timestamp) {
        let snap = self.lock().snapshot.clone();
        for sa in snap.by_handle.values() {
            sa.check_lifetimes(now);
        }
    }

    /// Test support: sets the next outbound sequence number. Not in shipped builds: a
    /// sequence number used twice reuses an AEAD nonce (RFC 4106 §3).
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn set_next_seq(&self, handle: SaHandle, seq: u64) -> Result<(), SadError> {
        self.get(handle)
            .ok_or(SadError::NotFound)?
            .set_next_seq(seq);
        Ok(())
    }

    /// A lookup handle for one worker thread.
    pub fn reader(self: &Arc<Self>) -> SadReader {
        let (generation, snapshot) = {
            let inner = self.lock();
            (inner.generation, inner.snapshot.clone())
        };
        SadReader {
            sad: self.clone(),
            generation,
            snapshot,
        }
    }
}

/// Per-thread view of the SAD with batch encap/decap. Refreshes its snapshot when the SAD
/// changed (one atomic load per batch).
pub struct SadReader {
    sad: Arc<Sad>,
    generation: u64,
    snapshot: Arc<Snapshot>,
}

impl SadReader {
    fn refresh(&mut self) {
        if self.sad.generation.load(Ordering::Acquire) != self.generation {
            let inner = self.sad.lock();
            self.generation = inner.generation;
            self.snapshot = inner.snapshot.clone();
        }
    }

    fn outbound(&self, pkt: &PacketBuf) -> Option<&Arc<Sa>> {
        let sa = self.snapshot.by_handle.get(&pkt.sa()?.0)?;
        (sa.direction == Direction::Outbound).then_some(sa)
    }

    /// Assigns outbound sequence numbers in arrival order (the pipeline's first stage), so
    /// that parallel encryption cannot reorder them.
    pub fn assign_seq(&mut self, batch: &mut [PacketBuf]) {
        self.refresh();
        for pkt in batch.iter_mut() {
            if pkt.verdict() != Verdict::Pending {
                continue;
            }
            let Some(sa) = self.outbound(pkt) else {
                continue; // reported by encap
            };
            match sa.reserve_seq() {
                Ok(s) => {
                    pkt.seq = s;
                    pkt.seq_owner = sa.instance;
                }
                Err(e) => pkt.set_verdict(Verdict::Dropped(sa.count(e))),
            }
        }
    }

    /// Tunnel-mode encapsulation of each pending packet with the SA named by `pkt.sa`.
    pub fn encap_batch(&mut self, batch: &mut [PacketBuf], now: Timestamp) {
        self.refresh();
        for pkt in batch.iter_mut() {
            if pkt.verdict() != Verdict::Pending {
                continue;
            }
            let verdict = match self.outbound(pkt) {
                None => {
                    self.sad.unknown_sa.fetch_add(1, Ordering::Relaxed);
                    Verdict::Dropped(EspError::UnknownSa)
                }
                Some(sa) => match sa.encap(pkt, now) {
                    Ok(()) => Verdict::Ok,
                    Err(e) => Verdict::Dropped(e),
                },
            };
            pkt.set_verdict(verdict);
        }
    }

    /// Tunnel-mode decapsulation of each pending packet (ESP packet in, inner IP packet out):
    /// [`SadReader::decap_open_batch`] then [`SadReader::decap_commit_batch`].
    pub fn decap_batch(&mut self, batch: &mut [PacketBuf], now: Timestamp) {
        self.decap_open_batch(batch, now);
        Self::decap_commit_batch(batch, now);
    }

    /// Decap phase 1 (any thread, any order): SA lookup, replay pre-check, ICV, decryption,
    /// trailer and inner checks. Packets that pass stay `Pending` until committed.
    pub fn decap_open_batch(&mut self, batch: &mut [PacketBuf], now: Timestamp) {
        self.refresh();
        for pkt in batch.iter_mut() {
            if pkt.verdict() != Verdict::Pending {
                continue;
            }
            // Only decap names the SA of an inbound packet.
            pkt.clear_sa();
            match self.decap_open(pkt, now) {
                Ok(sa) => pkt.pending = Some(sa),
                Err(e) => pkt.set_verdict(Verdict::Dropped(e)),
            }
        }
    }

    /// Decap phase 2, called in arrival order (the pipeline's ordered stage): replay window
    /// update (RFC 4303 §3.4.3), counters, lifetimes. Sets the final verdict.
    pub fn decap_commit_batch(batch: &mut [PacketBuf], now: Timestamp) {
        for pkt in batch.iter_mut() {
            if let Some(sa) = pkt.pending.take() {
                let verdict = match sa.decap_commit(pkt, now) {
                    Ok(()) => Verdict::Ok,
                    Err(e) => Verdict::Dropped(e),
                };
                pkt.set_verdict(verdict);
            }
        }
    }

    fn decap_open(&self, pkt: &mut PacketBuf, now: Timestamp) -> Result<Arc<Sa>, EspError> {
        let spi = match EspPacket::new_checked(pkt.data()) {
            Ok(p) => p.spi(),
            Err(e) => {
                self.sad.malformed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        match self.snapshot.inbound.get(&spi) {
            Some(sa) => sa.decap_open(pkt, now).map(|()| sa.clone()),
            None => {
                self.sad.unknown_spi.fetch_add(1, Ordering::Relaxed);
                Err(EspError::UnknownSpi)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::cipher::{Cipher, SecretKey};
    use crate::sa::TunnelEndpoints;

    fn cfg(spi: u32, direction: Direction) -> SaConfig {
        let tunnel = TunnelEndpoints {
            local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            remote: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        };
        let key = SecretKey::new(&[7; 36]);
        SaConfig::new(
            spi,
            direction,
            Cipher::ChaCha20Poly1305,
            key,
            SecretKey::empty(),
            tunnel,
        )
    }

    fn current(sad: &Sad) -> Arc<Snapshot> {
        sad.lock().snapshot.clone()
    }

    #[test]
    fn a_snapshot_a_reader_holds_is_copied_and_one_nobody_holds_is_changed_in_place() {
        let sad = Arc::new(Sad::new());
        let reader = sad.reader();
        let held = Arc::as_ptr(&reader.snapshot);
        let a = sad
            .add(&cfg(0x100, Direction::Inbound), Timestamp::ZERO)
            .unwrap();
        let after_a = Arc::as_ptr(&sad.lock().snapshot);
        assert_ne!(
            after_a, held,
            "the reader's snapshot was copied, not changed"
        );
        assert!(reader.snapshot.inbound.get(&0x100).is_none());
        assert!(reader.snapshot.by_handle.get(&a.0).is_none());

        // Nobody picked up the new snapshot yet: the next changes go into it.
        let b = sad
            .add(&cfg(0x200, Direction::Outbound), Timestamp::ZERO)
            .unwrap();
        sad.remove(a).unwrap();
        assert_eq!(Arc::as_ptr(&sad.lock().snapshot), after_a);
        assert!(reader.snapshot.by_handle.get(&b.0).is_none());

        // Held again (as a refreshed reader would), it is copied again.
        let held = current(&sad);
        sad.replace(b, &cfg(0x300, Direction::Outbound), Timestamp::ZERO)
            .unwrap();
        assert_ne!(Arc::as_ptr(&sad.lock().snapshot), Arc::as_ptr(&held));
        assert_eq!(held.by_handle.get(&b.0).map(|sa| sa.spi), Some(0x200));
        let now = current(&sad);
        assert_eq!(now.by_handle.get(&b.0).map(|sa| sa.spi), Some(0x300));
        assert!(now.inbound.get(&0x100).is_none() && now.by_handle.get(&a.0).is_none());
        assert_eq!(sad.generation.load(Ordering::Acquire), 4);
    }

    #[test]
    fn refused_changes_change_nothing() {
        let sad = Sad::new();
        sad.add(&cfg(0x100, Direction::Inbound), Timestamp::ZERO)
            .unwrap();
        let before = current(&sad);
        assert!(matches!(
            sad.add(&cfg(0x100, Direction::Inbound), Timestamp::ZERO),
            Err(SadError::DuplicateSpi(0x100))
        ));
        assert!(matches!(sad.remove(SaHandle(99)), Err(SadError::NotFound)));
        assert!(Arc::ptr_eq(&before, &current(&sad)));
        assert_eq!(sad.generation.load(Ordering::Acquire), 1);
    }
}
