//! Rate quotas in Jetforce's syntax (`60/5m`, `10/s`, `1000/1h`, `5/30s`,
//! `100/d`) and how they map onto governor's GCRA.
//!
//! # How a quota maps onto GCRA
//!
//! A quota `N/P` (N connections per period P) with burst B (B = N unless
//! the configuration sets `burst`) becomes a generic cell rate algorithm
//! with **one cell every P/N** and **room for B cells at once**
//! (governor's `Quota::with_period(P / N).allow_burst(B)`):
//!
//! - a client that has been quiet may open B connections at once;
//! - after that it may open one more every P/N;
//! - a client that stops regains one cell every P/N, so its full burst is
//!   back after B × P/N.
//!
//! Examples: `60/5m` = one connection per 5 s with a burst of 60 (60 at
//! once, then one every 5 s; the whole burst is back after 5 min quiet);
//! `10/s` = one per 100 ms, burst 10; `1000/1h` = one per 3.6 s, burst
//! 1000; `60/5m` with `burst = 10` = one per 5 s, at most 10 at once.
//! This differs from Jetforce's fixed window (which lets a client make 2N
//! requests across a window boundary): GCRA never lets more than B through
//! in any instant and never more than B + t·N/P in any interval t.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// The longest period a quota may name: a year. Longer ones are almost
/// certainly typos, and keeping periods small keeps arithmetic in range.
pub const MAX_QUOTA_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

/// The longest quota text accepted; real quotas are a dozen characters and
/// a bound keeps error messages short.
pub const MAX_QUOTA_TEXT: usize = 32;

/// A per-client rate: `count` connections per `period`, with a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateQuota {
    count: NonZeroU32,
    period: Duration,
    burst: NonZeroU32,
    interval: Duration,
}

/// Why a quota (or its burst) was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaError {
    /// The text was empty (or only whitespace).
    Empty,
    /// The text is longer than [`MAX_QUOTA_TEXT`].
    TooLong,
    /// There is no `/` between the count and the period.
    MissingSlash,
    /// The count before `/` is not a decimal number.
    BadCount,
    /// The count is zero: a quota must let something through.
    ZeroCount,
    /// The count does not fit in 32 bits.
    CountTooLarge,
    /// The number before the unit is not a decimal number.
    BadPeriod,
    /// The period is zero (`60/0s`).
    ZeroPeriod,
    /// The unit is missing or is not one of `s`, `m`, `h`, `d`.
    BadUnit,
    /// The period is longer than [`MAX_QUOTA_PERIOD`] (or overflows).
    PeriodTooLong,
    /// More than one connection per nanosecond: the interval between cells
    /// would be zero.
    TooFast,
    /// The burst is zero: no connection could ever pass.
    ZeroBurst,
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            QuotaError::Empty => "empty quota (expected e.g. 60/5m)",
            QuotaError::TooLong => "quota text too long",
            QuotaError::MissingSlash => "quota has no '/' (expected COUNT/PERIOD, e.g. 60/5m)",
            QuotaError::BadCount => "quota count is not a decimal number",
            QuotaError::ZeroCount => "quota count must be at least 1",
            QuotaError::CountTooLarge => "quota count is too large",
            QuotaError::BadPeriod => "quota period is not a decimal number",
            QuotaError::ZeroPeriod => "quota period must not be zero",
            QuotaError::BadUnit => "quota unit must be one of s, m, h, d",
            QuotaError::PeriodTooLong => "quota period is longer than a year",
            QuotaError::TooFast => "quota is faster than one per nanosecond",
            QuotaError::ZeroBurst => "quota burst must be at least 1",
        };
        f.write_str(s)
    }
}

impl std::error::Error for QuotaError {}

impl RateQuota {
    /// Parses Jetforce's quota syntax: `COUNT/[N]UNIT` where UNIT is `s`,
    /// `m`, `h` or `d` and N defaults to 1 (`10/s`, `60/5m`, `5/30s`).
    /// Surrounding whitespace is ignored; nothing else is. The burst is
    /// the count; change it with [`RateQuota::with_burst`].
    pub fn parse(text: &str) -> Result<RateQuota, QuotaError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(QuotaError::Empty);
        }
        if text.len() > MAX_QUOTA_TEXT {
            return Err(QuotaError::TooLong);
        }
        let (count, period) = text.split_once('/').ok_or(QuotaError::MissingSlash)?;
        let count = parse_decimal(count, QuotaError::BadCount, QuotaError::CountTooLarge)?;
        let count = u32::try_from(count).map_err(|_| QuotaError::CountTooLarge)?;
        let count = NonZeroU32::new(count).ok_or(QuotaError::ZeroCount)?;

        let (number, unit_secs) = [('s', 1u64), ('m', 60), ('h', 3600), ('d', 86_400)]
            .into_iter()
            .find_map(|(unit, secs)| period.strip_suffix(unit).map(|n| (n, secs)))
            .ok_or(QuotaError::BadUnit)?;
        let number = if number.is_empty() {
            1
        } else {
            parse_decimal(number, QuotaError::BadPeriod, QuotaError::PeriodTooLong)?
        };
        if number == 0 {
            return Err(QuotaError::ZeroPeriod);
        }
        let secs = number
            .checked_mul(unit_secs)
            .ok_or(QuotaError::PeriodTooLong)?;
        let period = Duration::from_secs(secs);
        if period > MAX_QUOTA_PERIOD {
            return Err(QuotaError::PeriodTooLong);
        }
        RateQuota::new(count, period)
    }

    /// A quota of `count` per `period` with a burst of `count`.
    pub fn new(count: NonZeroU32, period: Duration) -> Result<RateQuota, QuotaError> {
        if period.is_zero() {
            return Err(QuotaError::ZeroPeriod);
        }
        if period > MAX_QUOTA_PERIOD {
            return Err(QuotaError::PeriodTooLong);
        }
        let interval = period / count.get();
        if interval.is_zero() {
            return Err(QuotaError::TooFast);
        }
        Ok(RateQuota {
            count,
            period,
            burst: count,
            interval,
        })
    }

    /// The same rate with another burst (the config file's `burst`): how
    /// many connections a quiet client may open at once.
    pub fn with_burst(self, burst: u32) -> Result<RateQuota, QuotaError> {
        let burst = NonZeroU32::new(burst).ok_or(QuotaError::ZeroBurst)?;
        Ok(RateQuota { burst, ..self })
    }

    /// Connections per period, as written.
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// The period, as written.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How many connections a quiet client may open at once.
    pub fn burst(&self) -> u32 {
        self.burst.get()
    }

    /// The GCRA emission interval: one cell every `period / count`.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a client must stay quiet to regain its whole burst
    /// (`burst × interval`); also the flood-detection window.
    pub fn window(&self) -> Duration {
        self.interval.saturating_mul(self.burst.get())
    }

    /// The governor quota this maps onto (see the module docs).
    pub fn to_governor(&self) -> governor::Quota {
        // `interval` is checked non-zero in `new`, so `with_period` cannot
        // fail; fall back to the fastest legal quota rather than panic.
        governor::Quota::with_period(self.interval)
            .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
            .allow_burst(self.burst)
    }
}

impl FromStr for RateQuota {
    type Err = QuotaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RateQuota::parse(s)
    }
}

impl fmt::Display for RateQuota {
    /// Writes the quota back in the syntax it was parsed from, with the
    /// burst in parentheses when it differs from the count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        let (n, unit) = if secs % 86_400 == 0 {
            (secs / 86_400, "d")
        } else if secs % 3600 == 0 {
            (secs / 3600, "h")
        } else if secs % 60 == 0 {
            (secs / 60, "m")
        } else {
            (secs, "s")
        };
        if n == 1 {
            write!(f, "{}/{unit}", self.count)?;
        } else {
            write!(f, "{}/{n}{unit}", self.count)?;
        }
        if self.burst != self.count {
            write!(f, " (burst {})", self.burst)?;
        }
        Ok(())
    }
}

/// Parses ASCII digits only (no sign, no spaces, no `_`), so `+5` and
/// `5 ` are rejected rather than quietly accepted by `u64::from_str`.
/// Returns `garbage` for a non-number and `overflow` for a number too big.
fn parse_decimal(s: &str, garbage: QuotaError, overflow: QuotaError) -> Result<u64, QuotaError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(garbage);
    }
    s.parse().map_err(|_| overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> RateQuota {
        RateQuota::parse(s).unwrap()
    }

    #[test]
    fn jetforce_examples() {
        let a = q("60/5m");
        assert_eq!(a.count(), 60);
        assert_eq!(a.period(), Duration::from_secs(300));
        assert_eq!(a.burst(), 60);
        assert_eq!(a.interval(), Duration::from_secs(5));
        assert_eq!(a.window(), Duration::from_secs(300));

        let b = q("10/s");
        assert_eq!(b.interval(), Duration::from_millis(100));
        assert_eq!(b.burst(), 10);

        let c = q("1000/1h");
        assert_eq!(c.interval(), Duration::from_millis(3600));

        assert_eq!(q("5/30s").interval(), Duration::from_secs(6));
        assert_eq!(q("100/m").period(), Duration::from_secs(60));
        assert_eq!(q("24/d").interval(), Duration::from_secs(3600));
        assert_eq!(q("  7/2h \n").period(), Duration::from_secs(7200));
        assert_eq!(q("007/01s").count(), 7);
    }

    #[test]
    fn maps_onto_governor() {
        let g = q("60/5m").to_governor();
        assert_eq!(g.replenish_interval(), Duration::from_secs(5));
        assert_eq!(g.burst_size().get(), 60);
        let g = q("60/5m").with_burst(10).unwrap().to_governor();
        assert_eq!(g.replenish_interval(), Duration::from_secs(5));
        assert_eq!(g.burst_size().get(), 10);
        assert_eq!(g.burst_size_replenished_in(), Duration::from_secs(50));
    }

    #[test]
    fn burst() {
        let b = q("60/5m").with_burst(5).unwrap();
        assert_eq!(b.burst(), 5);
        assert_eq!(b.window(), Duration::from_secs(25));
        assert_eq!(q("60/5m").with_burst(0), Err(QuotaError::ZeroBurst));
    }

    #[test]
    fn display_round_trips() {
        for s in ["60/5m", "10/s", "1000/h", "5/30s", "3/2d", "1/90s"] {
            assert_eq!(q(s).to_string(), s);
            assert_eq!(q(&q(s).to_string()), q(s));
        }
        assert_eq!(
            q("60/5m").with_burst(9).unwrap().to_string(),
            "60/5m (burst 9)"
        );
    }

    #[test]
    fn rejects_garbage_with_the_right_error() {
        let cases: &[(&str, QuotaError)] = &[
            ("", QuotaError::Empty),
            ("   ", QuotaError::Empty),
            ("60", QuotaError::MissingSlash),
            ("60-5m", QuotaError::MissingSlash),
            ("/5m", QuotaError::BadCount),
            ("x/5m", QuotaError::BadCount),
            ("+6/5m", QuotaError::BadCount),
            ("-6/5m", QuotaError::BadCount),
            ("6 /5m", QuotaError::BadCount),
            ("1.5/s", QuotaError::BadCount),
            ("0/5m", QuotaError::ZeroCount),
            ("4294967296/d", QuotaError::CountTooLarge),
            ("99999999999999999999/s", QuotaError::CountTooLarge),
            ("1/99999999999999999999s", QuotaError::PeriodTooLong),
            ("60/", QuotaError::BadUnit),
            ("60/5", QuotaError::BadUnit),
            ("60/5w", QuotaError::BadUnit),
            ("60/5ms", QuotaError::BadPeriod),
            ("60/5M", QuotaError::BadUnit),
            ("60/é", QuotaError::BadUnit),
            ("60/ém", QuotaError::BadPeriod),
            ("60/x5m", QuotaError::BadPeriod),
            ("60/ 5m", QuotaError::BadPeriod),
            ("60/5/m", QuotaError::BadPeriod),
            ("60/0s", QuotaError::ZeroPeriod),
            ("60/367d", QuotaError::PeriodTooLong),
            ("60/99999999999999999d", QuotaError::PeriodTooLong),
            ("4000000000/s", QuotaError::TooFast),
            ("1/111111111111111111111111111111s", QuotaError::TooLong),
        ];
        for (text, want) in cases {
            assert_eq!(RateQuota::parse(text), Err(*want), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(QuotaError::BadUnit.to_string().contains("s, m, h, d"));
        assert!(QuotaError::ZeroCount.to_string().contains("at least 1"));
    }

    #[test]
    fn limits() {
        assert!(RateQuota::parse("1/366d").is_ok());
        assert!(RateQuota::parse("1000000000/s").is_ok());
        assert_eq!(
            RateQuota::new(NonZeroU32::MIN, Duration::ZERO),
            Err(QuotaError::ZeroPeriod)
        );
    }
}
