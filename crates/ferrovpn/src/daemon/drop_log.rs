//! Drops the endpoint only counts, turned into log lines: at most one per interval per kind,
//! with the count since the last line. MM1/AM1 dropped at the half-open limit (`[daemon]
//! max_half_open`, also shown by `diagnose`) and IKEv1 fragments not taken.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::snapshot::HalfOpenSnapshot;

/// At most one log line per kind of drop per this interval.
pub(super) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Follows one of the endpoint's drop counters.
#[derive(Debug, Default)]
struct DropCounter {
    /// The counter as last observed.
    seen: u64,
    /// Dropped since the last log line.
    unlogged: u64,
    logged_at: Option<Instant>,
    last_drop: Option<Instant>,
}

impl DropCounter {
    /// Takes the counter's total; when a line is due (the first drop at once, then once per
    /// interval), the drops since the last line and how to say since when.
    fn observe(&mut self, now: Instant, total: u64) -> Option<(u64, String)> {
        let new = total.saturating_sub(self.seen);
        self.seen = total;
        if new > 0 {
            self.unlogged = self.unlogged.saturating_add(new);
            self.last_drop = Some(now);
        }
        if self.unlogged == 0
            || self
                .logged_at
                .is_some_and(|t| now.saturating_duration_since(t) < LOG_INTERVAL)
        {
            return None;
        }
        let n = std::mem::take(&mut self.unlogged);
        let since = match self.logged_at {
            Some(t) => format!(
                "in the last {}s",
                now.saturating_duration_since(t).as_secs()
            ),
            None => "since start".to_string(),
        };
        self.logged_at = Some(now);
        Some((n, since))
    }
}

/// Follows the endpoint's `half_open_dropped` counter.
#[derive(Debug)]
pub(super) struct HalfOpenDrops {
    limit: usize,
    counter: DropCounter,
}

impl HalfOpenDrops {
    pub(super) fn new(limit: usize) -> Self {
        HalfOpenDrops {
            limit,
            counter: DropCounter::default(),
        }
    }

    /// Takes the endpoint's counter; logs the drops since the last line when the interval has
    /// passed (the first drop at once). Returns the number logged, if a line was written.
    pub(super) fn observe(&mut self, now: Instant, dropped_total: u64) -> Option<u64> {
        let (n, since) = self.counter.observe(now, dropped_total)?;
        warn!(
            dropped = n,
            max_half_open = self.limit,
            "half-open limit reached: dropped {n} MM1/AM1 {since} ({total} in all) because {limit} responder negotiations were waiting to authenticate; those peers retransmit later. Raise [daemon] max_half_open for a burst of real peers, or look for a flood",
            total = dropped_total,
            limit = self.limit,
        );
        Some(n)
    }

    /// The figures of the snapshot; `ms` turns an instant into the snapshot's clock.
    pub(super) fn snapshot(&self, ms: impl Fn(Instant) -> u64) -> HalfOpenSnapshot {
        HalfOpenSnapshot {
            limit: u64::try_from(self.limit).unwrap_or(u64::MAX),
            dropped: self.counter.seen,
            last_drop_ms: self.counter.last_drop.map(ms),
        }
    }
}

/// Follows the endpoint's `fragments_dropped` counter (IKEv1 fragments not taken: unknown
/// SA, fragmentation off, duplicates, limits).
#[derive(Debug, Default)]
pub(super) struct FragmentDrops {
    counter: DropCounter,
}

impl FragmentDrops {
    /// As [`HalfOpenDrops::observe`]; `last` is the endpoint's latest drop, named in the line.
    pub(super) fn observe(
        &mut self,
        now: Instant,
        dropped_total: u64,
        last: Option<(IpAddr, String)>,
    ) -> Option<u64> {
        let (n, since) = self.counter.observe(now, dropped_total)?;
        let last = last.map_or_else(String::new, |(peer, why)| {
            format!("; the last one, from {peer}: {why}")
        });
        warn!(
            dropped = n,
            "dropped {n} IKEv1 fragments {since} ({dropped_total} in all){last}"
        );
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_logged_once_per_interval_with_their_count() {
        let t0 = Instant::now();
        let mut d = HalfOpenDrops::new(8);
        assert_eq!(d.observe(t0, 0), None, "nothing dropped, nothing logged");
        assert_eq!(
            d.observe(t0, 3),
            Some(3),
            "the first drop is logged at once"
        );
        assert_eq!(d.observe(t0 + Duration::from_secs(1), 10), None);
        assert_eq!(d.observe(t0 + Duration::from_secs(5), 50), None);
        assert_eq!(
            d.observe(t0 + LOG_INTERVAL, 50),
            Some(47),
            "one line for all drops of the interval"
        );
        assert_eq!(d.observe(t0 + LOG_INTERVAL * 3, 50), None, "quiet again");
        let s = d.snapshot(|t| t.saturating_duration_since(t0).as_millis() as u64);
        assert_eq!((s.limit, s.dropped, s.last_drop_ms), (8, 50, Some(5000)));
    }

    #[test]
    fn fragment_drops_follow_the_same_interval() {
        let t0 = Instant::now();
        let mut d = FragmentDrops::default();
        let why = || {
            Some((
                "192.0.2.9".parse().unwrap(),
                "fragment 2 seen already".into(),
            ))
        };
        assert_eq!(d.observe(t0, 2, why()), Some(2));
        assert_eq!(d.observe(t0 + Duration::from_secs(3), 9, why()), None);
        assert_eq!(d.observe(t0 + LOG_INTERVAL, 9, why()), Some(7));
    }
}
