//! Security associations: configuration and per-SA state (sequence counter, replay window,
//! counters, lifetimes). Processing of one packet with an SA is in `tunnel`.
// Parses network input: no arithmetic or indexing that can panic (issue 12 §8).
#![deny(clippy::arithmetic_side_effects, clippy::indexing_slicing)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam_channel::Sender;
use std::sync::{Arc, OnceLock};

use crate::cipher::{Cipher, SecretKey};
use crate::clock::Timestamp;
use crate::error::{EspError, SadError};
use crate::esp::EspCrypto;
use crate::replay::{ReplayWindow, DEFAULT_WINDOW, MAX_WINDOW, MIN_WINDOW};

/// Stable name of an SA in the SAD, kept across `replace` (e.g. an outbound rekey).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaHandle(pub(crate) u64);

impl SaHandle {
    pub fn id(self) -> u64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Outer transport; the daemon's raw (protocol 50) or UDP socket adds the outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encap {
    /// ESP directly in IP, protocol 50 (RFC 4303).
    #[default]
    Raw,
    /// ESP-in-UDP (RFC 3948), normally port 4500 on both sides.
    Udp { local_port: u16, remote_port: u16 },
}

/// Outer addresses of the tunnel (RFC 4301 §4.4.2: tunnel header source/destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelEndpoints {
    pub local: IpAddr,
    pub remote: IpAddr,
}

/// One set of lifetime limits; `None` = unlimited (RFC 4301 §4.4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    pub time: Option<Duration>,
}

/// Soft limits ask the control plane to rekey; hard limits stop the SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetimes {
    pub soft: Limits,
    pub hard: Limits,
}

/// Everything needed to install one (unidirectional) SA.
#[derive(Debug, Clone)]
pub struct SaConfig {
    pub spi: u32,
    pub direction: Direction,
    pub cipher: Cipher,
    /// AEAD: key || salt. CBC: the AES key.
    pub enc_key: SecretKey,
    /// CBC: the HMAC key. AEAD: empty.
    pub auth_key: SecretKey,
    /// Extended (64-bit) sequence numbers (RFC 4304).
    pub esn: bool,
    /// Replay window in packets (inbound only), 32..=65536.
    pub replay_window: u32,
    pub encap: Encap,
    pub tunnel: TunnelEndpoints,
    pub lifetimes: Lifetimes,
}

impl SaConfig {
    /// An SA with defaults: no ESN, window 1024, raw ESP, no lifetimes.
    pub fn new(
        spi: u32,
        direction: Direction,
        cipher: Cipher,
        enc_key: SecretKey,
        auth_key: SecretKey,
        tunnel: TunnelEndpoints,
    ) -> Self {
        SaConfig {
            spi,
            direction,
            cipher,
            enc_key,
            auth_key,
            esn: false,
            replay_window: DEFAULT_WINDOW,
            encap: Encap::Raw,
            tunnel,
            lifetimes: Lifetimes::default(),
        }
    }
}

/// Which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifetimeCause {
    Bytes,
    Packets,
    Time,
    /// The outbound sequence number is close to (soft) or at (hard) wrapping.
    Sequence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifetimeKind {
    Soft,
    Hard,
}

/// Lifetime notification for the control plane; each kind fires once per SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaEvent {
    pub handle: SaHandle,
    pub spi: u32,
    pub direction: Direction,
    pub kind: LifetimeKind,
    pub cause: LifetimeCause,
}

/// Counter snapshot of one SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaStats {
    /// Packets and bytes (inner packet bytes) protected (outbound) or accepted (inbound).
    pub packets: u64,
    pub bytes: u64,
    pub auth_failures: u64,
    pub replay_drops: u64,
    pub bad_padding: u64,
    pub bad_next_header: u64,
    /// Truncated, bad lengths, bad inner packets, no buffer room.
    pub malformed: u64,
    /// Dropped because the SA is hard-expired or its sequence space is exhausted.
    pub expired_drops: u64,
    /// Dummy packets (next header 59) discarded.
    pub dummy: u64,
    /// Time of the last accepted/protected packet.
    pub last_packet: Option<Timestamp>,
}

#[derive(Default)]
struct Counters {
    packets: AtomicU64,
    bytes: AtomicU64,
    auth_failures: AtomicU64,
    replay_drops: AtomicU64,
    bad_padding: AtomicU64,
    bad_next_header: AtomicU64,
    malformed: AtomicU64,
    expired_drops: AtomicU64,
    dummy: AtomicU64,
    /// Milliseconds + 1 of the last packet; 0 = none yet.
    last_packet: AtomicU64,
}

/// An installed SA.
/// Wakes the thread that reads the lifetime events (the daemon's event loop).
pub type Wake = Box<dyn Fn() + Send + Sync>;

/// Where an SA's lifetime events go: the SAD's channel, and a wake-up for its reader, so a
/// soft limit is acted on at once rather than at the reader's next timer (a byte lifetime's
/// last 10 % can pass in well under a second).
#[derive(Clone)]
pub(crate) struct EventSink {
    pub tx: Sender<SaEvent>,
    pub wake: Arc<OnceLock<Wake>>,
}

impl EventSink {
    fn send(&self, e: SaEvent) {
        // A closed receiver only means nobody listens any more.
        let _ = self.tx.send(e);
        if let Some(w) = self.wake.get() {
            w();
        }
    }
}

pub(crate) struct Sa {
    pub(crate) handle: SaHandle,
    /// Unique per installation, so a sequence number reserved before a `replace` is not reused.
    pub(crate) instance: u64,
    pub(crate) spi: u32,
    pub(crate) direction: Direction,
    pub(crate) esn: bool,
    pub(crate) encap: Encap,
    pub(crate) tunnel: TunnelEndpoints,
    pub(crate) crypto: EspCrypto,
    lifetimes: Lifetimes,
    created: Timestamp,
    next_seq: AtomicU64,
    pub(crate) replay: Mutex<ReplayWindow>,
    counters: Counters,
    soft_fired: AtomicBool,
    hard_fired: AtomicBool,
    events: EventSink,
}

/// Non-ESN sequence space ends at 2^32 - 1 (RFC 4303 §3.3.3); ESN at 2^64 - 1.
fn seq_max(esn: bool) -> u64 {
    if esn {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    }
}

impl Limits {
    fn reached(&self, packets: u64, bytes: u64, age: Duration) -> Option<LifetimeCause> {
        if self.packets.is_some_and(|l| packets >= l) {
            Some(LifetimeCause::Packets)
        } else if self.bytes.is_some_and(|l| bytes >= l) {
            Some(LifetimeCause::Bytes)
        } else if self.time.is_some_and(|l| age >= l) {
            Some(LifetimeCause::Time)
        } else {
            None
        }
    }
}

impl Sa {
    pub(crate) fn new(
        cfg: &SaConfig,
        handle: SaHandle,
        instance: u64,
        now: Timestamp,
        events: EventSink,
    ) -> Result<Sa, SadError> {
        if cfg.spi < 256 {
            return Err(SadError::ReservedSpi(cfg.spi));
        }
        if !(MIN_WINDOW..=MAX_WINDOW).contains(&cfg.replay_window) {
            return Err(SadError::ReplayWindow(cfg.replay_window));
        }
        Ok(Sa {
            handle,
            instance,
            spi: cfg.spi,
            direction: cfg.direction,
            esn: cfg.esn,
            encap: cfg.encap,
            tunnel: cfg.tunnel,
            crypto: EspCrypto::new(cfg.cipher, &cfg.enc_key, &cfg.auth_key)?,
            lifetimes: cfg.lifetimes,
            created: now,
            next_seq: AtomicU64::new(1),
            replay: Mutex::new(ReplayWindow::new(cfg.replay_window)),
            counters: Counters::default(),
            soft_fired: AtomicBool::new(false),
            hard_fired: AtomicBool::new(false),
            events,
        })
    }

    fn fire(&self, kind: LifetimeKind, cause: LifetimeCause) {
        let flag = match kind {
            LifetimeKind::Soft => &self.soft_fired,
            LifetimeKind::Hard => &self.hard_fired,
        };
        if !flag.swap(true, Relaxed) {
            self.events.send(SaEvent {
                handle: self.handle,
                spi: self.spi,
                direction: self.direction,
                kind,
                cause,
            });
        }
    }

    /// Checks the limits against the counters and the SA's age; fires events once.
    pub(crate) fn check_lifetimes(&self, now: Timestamp) {
        let p = self.counters.packets.load(Relaxed);
        let b = self.counters.bytes.load(Relaxed);
        let age = now.saturating_since(self.created);
        if !self.hard_fired.load(Relaxed) {
            if let Some(c) = self.lifetimes.hard.reached(p, b, age) {
                self.fire(LifetimeKind::Hard, c);
                return;
            }
        }
        if !self.soft_fired.load(Relaxed) {
            if let Some(c) = self.lifetimes.soft.reached(p, b, age) {
                self.fire(LifetimeKind::Soft, c);
            }
        }
    }

    pub(crate) fn refuse_if_expired(&self, now: Timestamp) -> Result<(), EspError> {
        if let Some(t) = self.lifetimes.hard.time {
            if now.saturating_since(self.created) >= t {
                self.fire(LifetimeKind::Hard, LifetimeCause::Time);
            }
        }
        if self.hard_fired.load(Relaxed) {
            return Err(EspError::SaExpired);
        }
        Ok(())
    }

    pub(crate) fn account(&self, bytes: usize, now: Timestamp) {
        self.counters.packets.fetch_add(1, Relaxed);
        self.counters.bytes.fetch_add(bytes as u64, Relaxed);
        self.counters
            .last_packet
            .store(now.as_millis().saturating_add(1), Relaxed);
        self.check_lifetimes(now);
    }

    pub(crate) fn count(&self, e: EspError) -> EspError {
        let c = &self.counters;
        let ctr = match e {
            EspError::AuthFailed => &c.auth_failures,
            EspError::Replay => &c.replay_drops,
            EspError::BadPadding => &c.bad_padding,
            EspError::BadNextHeader => &c.bad_next_header,
            EspError::Dummy => &c.dummy,
            EspError::SaExpired | EspError::SequenceExhausted => &c.expired_drops,
            EspError::Truncated
            | EspError::BadLength
            | EspError::BadInnerPacket
            | EspError::NoRoom
            | EspError::UnknownSpi
            | EspError::UnknownSa => &c.malformed,
        };
        ctr.fetch_add(1, Relaxed);
        e
    }

    /// Reserves the next outbound sequence number; never wraps (RFC 4303 §3.3.3).
    pub(crate) fn reserve_seq(&self) -> Result<u64, EspError> {
        let max = seq_max(self.esn);
        let s = self.next_seq.fetch_add(1, Relaxed);
        if s == 0 || s > max {
            self.fire(LifetimeKind::Hard, LifetimeCause::Sequence);
            return Err(EspError::SequenceExhausted);
        }
        if s >= max.saturating_sub(max / 16) {
            self.fire(LifetimeKind::Soft, LifetimeCause::Sequence);
        }
        Ok(s)
    }

    #[cfg(feature = "test-support")]
    pub(crate) fn set_next_seq(&self, seq: u64) {
        self.next_seq.store(seq, Relaxed);
    }

    pub(crate) fn stats(&self) -> SaStats {
        let c = &self.counters;
        let last = c.last_packet.load(Relaxed);
        SaStats {
            packets: c.packets.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            auth_failures: c.auth_failures.load(Relaxed),
            replay_drops: c.replay_drops.load(Relaxed),
            bad_padding: c.bad_padding.load(Relaxed),
            bad_next_header: c.bad_next_header.load(Relaxed),
            malformed: c.malformed.load(Relaxed),
            expired_drops: c.expired_drops.load(Relaxed),
            dummy: c.dummy.load(Relaxed),
            last_packet: last.checked_sub(1).map(Timestamp::from_millis),
        }
    }
}
