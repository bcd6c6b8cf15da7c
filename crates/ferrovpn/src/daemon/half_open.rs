//! MM1/AM1 the endpoint dropped at the half-open limit (`[daemon] max_half_open`): one log line
//! per interval with the count, and the figures `diagnose` shows.

use std::time::{Duration, Instant};

use tracing::warn;

use crate::snapshot::HalfOpenSnapshot;

/// At most one log line about dropped MM1/AM1 per this interval.
pub(super) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Follows the endpoint's `half_open_dropped` counter.
#[derive(Debug)]
pub(super) struct HalfOpenDrops {
    limit: usize,
    /// The counter as last observed.
    seen: u64,
    /// Dropped since the last log line.
    unlogged: u64,
    logged_at: Option<Instant>,
    last_drop: Option<Instant>,
}

impl HalfOpenDrops {
    pub(super) fn new(limit: usize) -> Self {
        HalfOpenDrops {
            limit,
            seen: 0,
            unlogged: 0,
            logged_at: None,
            last_drop: None,
        }
    }

    /// Takes the endpoint's counter; logs the drops since the last line when the interval has
    /// passed (the first drop at once). Returns the number logged, if a line was written.
    pub(super) fn observe(&mut self, now: Instant, dropped_total: u64) -> Option<u64> {
        let new = dropped_total.saturating_sub(self.seen);
        self.seen = dropped_total;
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
        warn!(
            dropped = n,
            max_half_open = self.limit,
            "half-open limit reached: dropped {n} MM1/AM1 {since} ({total} in all) because {limit} responder negotiations were waiting to authenticate; those peers retransmit later. Raise [daemon] max_half_open for a burst of real peers, or look for a flood",
            total = self.seen,
            limit = self.limit,
        );
        self.logged_at = Some(now);
        Some(n)
    }

    /// The figures of the snapshot; `ms` turns an instant into the snapshot's clock.
    pub(super) fn snapshot(&self, ms: impl Fn(Instant) -> u64) -> HalfOpenSnapshot {
        HalfOpenSnapshot {
            limit: u64::try_from(self.limit).unwrap_or(u64::MAX),
            dropped: self.seen,
            last_drop_ms: self.last_drop.map(ms),
        }
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
}
