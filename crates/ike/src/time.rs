//! Saturating time arithmetic. Lifetimes and timeouts come from peers and configs, and
//! `Instant + Duration` panics on overflow: every deadline in this crate is built with
//! [`later`] (a 2^64-1 s lifetime once crashed the daemon).

use std::time::{Duration, Instant};

/// `t + d`, or the latest instant this platform can represent after `t` when the sum
/// overflows: a deadline that never comes instead of a panic.
pub fn later(t: Instant, d: Duration) -> Instant {
    if let Some(x) = t.checked_add(d) {
        return x;
    }
    // Largest addable duration below `d` by bisection; `t + 0` always exists.
    let (mut ok, mut too_big) = (Duration::ZERO, d);
    while too_big.saturating_sub(ok) > Duration::from_secs(1) {
        let mid = ok.saturating_add(too_big.saturating_sub(ok) / 2);
        if t.checked_add(mid).is_some() {
            ok = mid;
        } else {
            too_big = mid;
        }
    }
    t.checked_add(ok).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflowing_sum_saturates_far_in_the_future() {
        let now = Instant::now();
        let never = later(now, Duration::MAX);
        assert!(never > later(now, Duration::from_secs(100 * 365 * 86_400)));
        assert!(later(never, Duration::from_secs(u64::MAX)) >= never);
    }

    #[test]
    fn a_sum_that_fits_is_exact() {
        let now = Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
    }
}
