//! The per-client rate limiter: governor's keyed GCRA on a monotonic clock.
//!
//! governor is built with `default-features = false, features = ["std"]`:
//! that drops `quanta` (whose TSC clock is not guaranteed monotonic across
//! cores and suspend) and `dashmap`, so the state store is a
//! `parking_lot::Mutex<HashMap>` with std's SipHash `RandomState` (keys are
//! chosen by the network, so the hash must resist flooding). One limiter is
//! shared by all workers through an `Arc`; the lock is held only for one
//! hash lookup per accept.

use std::time::Duration;

use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::RateLimiter;

use super::key::ClientKey;
use super::quota::RateQuota;

/// The governor type behind [`KeyedLimiter`].
type Inner<C> =
    RateLimiter<ClientKey, HashMapStateStore<ClientKey>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A keyed GCRA rate limiter over [`ClientKey`]s.
///
/// `C` is the clock: [`MonotonicClock`] in production,
/// `governor::clock::FakeRelativeClock` in tests.
pub struct KeyedLimiter<C: Clock = MonotonicClock> {
    inner: Inner<C>,
    quota: RateQuota,
}

impl KeyedLimiter<MonotonicClock> {
    /// A limiter for `quota` on the monotonic clock.
    pub fn new(quota: RateQuota) -> Self {
        KeyedLimiter::with_clock(quota, MonotonicClock)
    }
}

impl<C: Clock> KeyedLimiter<C> {
    /// A limiter for `quota` on `clock`.
    pub fn with_clock(quota: RateQuota, clock: C) -> Self {
        KeyedLimiter {
            inner: RateLimiter::hashmap_with_clock(quota.to_governor(), clock),
            quota,
        }
    }

    /// Spends one cell of `key`'s quota. `Err` carries how long until the
    /// client may come back, in whole seconds rounded up (at least 1 s),
    /// as Gemini's `44 <seconds>` and HTTP's `Retry-After` want.
    pub fn check(&self, key: &ClientKey) -> Result<(), Duration> {
        match self.inner.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.inner.clock().now());
                Err(whole_seconds_at_least_one(wait))
            }
        }
    }

    /// Forgets clients whose state is indistinguishable from a fresh one
    /// (quiet long enough to have regained their whole burst) and returns
    /// the freed table memory to the allocator.
    pub fn housekeeping(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// Clients currently tracked.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True if no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The quota this limiter enforces.
    pub fn quota(&self) -> &RateQuota {
        &self.quota
    }

    /// The limiter's clock (shared with flood detection, so that tests can
    /// drive both with one fake clock).
    pub fn clock(&self) -> &C {
        self.inner.clock()
    }
}

/// Rounds up to whole seconds, at least one: "retry after 0" would invite
/// an immediate retry that is refused again.
pub fn whole_seconds_at_least_one(wait: Duration) -> Duration {
    let secs = wait.as_secs();
    let secs = if wait.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    Duration::from_secs(secs.max(1))
}

/// The time between two readings of a governor clock, zero if `later` is
/// not later.
pub(crate) fn elapsed<I: Reference>(later: I, earlier: I) -> Duration {
    later.duration_since(earlier).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn key(n: u8) -> ClientKey {
        ClientKey::V4([192, 0, 2, n])
    }

    fn limiter(q: &str) -> (KeyedLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock(RateQuota::parse(q).unwrap(), clock.clone());
        (l, clock)
    }

    #[test]
    fn rounding() {
        let s = Duration::from_secs;
        assert_eq!(whole_seconds_at_least_one(Duration::ZERO), s(1));
        assert_eq!(whole_seconds_at_least_one(Duration::from_nanos(1)), s(1));
        assert_eq!(whole_seconds_at_least_one(s(1)), s(1));
        assert_eq!(
            whole_seconds_at_least_one(Duration::from_millis(1001)),
            s(2)
        );
        assert_eq!(whole_seconds_at_least_one(s(300)), s(300));
        assert_eq!(whole_seconds_at_least_one(Duration::MAX), s(u64::MAX));
    }

    #[test]
    fn gcra_burst_then_one_per_interval() {
        // 60/5m: 60 at once, then one every 5 s.
        let (l, clock) = limiter("60/5m");
        for i in 0..60 {
            assert_eq!(l.check(&key(1)), Ok(()), "cell {i}");
        }
        assert_eq!(l.check(&key(1)), Err(Duration::from_secs(5)));
        clock.advance(Duration::from_millis(2500));
        assert_eq!(l.check(&key(1)), Err(Duration::from_secs(3)));
        clock.advance(Duration::from_millis(2500));
        assert_eq!(l.check(&key(1)), Ok(()));
        assert_eq!(l.check(&key(1)), Err(Duration::from_secs(5)));
        // A refused attempt costs nothing: 5 s later one more passes.
        clock.advance(Duration::from_secs(5));
        assert_eq!(l.check(&key(1)), Ok(()));
        // Another client is unaffected.
        assert_eq!(l.check(&key(2)), Ok(()));
    }

    #[test]
    fn whole_burst_is_back_after_the_window() {
        let (l, clock) = limiter("10/s");
        for _ in 0..10 {
            assert!(l.check(&key(1)).is_ok());
        }
        assert!(l.check(&key(1)).is_err());
        clock.advance(l.quota().window());
        for _ in 0..10 {
            assert!(l.check(&key(1)).is_ok());
        }
        assert!(l.check(&key(1)).is_err());
    }

    #[test]
    fn configured_burst() {
        let clock = FakeRelativeClock::default();
        let q = RateQuota::parse("60/5m").unwrap().with_burst(3).unwrap();
        let l = KeyedLimiter::with_clock(q, clock.clone());
        for _ in 0..3 {
            assert!(l.check(&key(1)).is_ok());
        }
        assert_eq!(l.check(&key(1)), Err(Duration::from_secs(5)));
    }

    #[test]
    fn retry_after_rounds_up_sub_second_waits() {
        let (l, _clock) = limiter("10/s");
        for _ in 0..10 {
            assert!(l.check(&key(1)).is_ok());
        }
        // The next cell is 100 ms away: still "come back in 1 s".
        assert_eq!(l.check(&key(1)), Err(Duration::from_secs(1)));
    }

    #[test]
    fn housekeeping_forgets_quiet_clients() {
        let (l, clock) = limiter("60/5m");
        for n in 0..100 {
            assert!(l.check(&key(n)).is_ok());
        }
        for _ in 0..59 {
            assert!(l.check(&key(200)).is_ok());
        }
        assert_eq!(l.len(), 101);
        // Keys that spent one cell are fresh again after about two cells.
        clock.advance(Duration::from_secs(11));
        l.housekeeping();
        assert_eq!(l.len(), 1, "only the heavy client is still remembered");
        clock.advance(Duration::from_secs(300));
        l.housekeeping();
        assert!(l.is_empty());
        // Forgetting is invisible: a forgotten key gets a full burst.
        for _ in 0..60 {
            assert!(l.check(&key(200)).is_ok());
        }
    }

    #[test]
    fn real_monotonic_clock_works() {
        let l = KeyedLimiter::new(RateQuota::parse("2/h").unwrap());
        assert!(l.check(&key(1)).is_ok());
        assert!(l.check(&key(1)).is_ok());
        assert_eq!(l.check(&key(1)), Err(Duration::from_secs(1800)));
    }
}
