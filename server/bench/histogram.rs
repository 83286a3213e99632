//! A compact log-linear latency histogram (HdrHistogram's layout, fixed
//! precision): values below 256 are counted exactly, larger ones in
//! buckets 1/128 of their power of two wide, so a reported percentile is
//! within 0.4% of the true value (the midpoint of a bucket at most 1/256
//! away) from 1 ns to the full `u64` range, in 7,424 counters (58 KiB).
//! Recording is a shift, an add and an increment: no allocation.

/// Bits of sub-bucket resolution per power of two: 2^7 = 128 buckets per
/// octave bound the relative bucket width to 1/128 (< 1%).
pub const SUB_BITS: u32 = 7;

/// Buckets per power of two.
const SUB: usize = 1 << SUB_BITS;

/// Number of counters: exact values up to `2 * SUB`, then `SUB` per octave
/// up to bit 63.
pub const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB + SUB;

/// A histogram of `u64` values (the harness records nanoseconds).
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

/// The counter for `v`.
fn index_of(v: u64) -> usize {
    if v < (2 * SUB) as u64 {
        return v as usize;
    }
    // v >= 256, so the top bit is at 8 or above and `shift` >= 1.
    let top = 63 - v.leading_zeros();
    let shift = top - SUB_BITS;
    let mantissa = (v >> shift) as usize; // in SUB..2*SUB
    shift as usize * SUB + mantissa
}

/// The lowest value and the width of counter `i`.
fn bucket_of(i: usize) -> (u64, u64) {
    if i < 2 * SUB {
        return (i as u64, 1);
    }
    let shift = (i / SUB - 1) as u32;
    let mantissa = (i - (shift as usize) * SUB) as u64;
    (mantissa << shift, 1u64 << shift)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0u64; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(index_of(v)) {
            *c += 1;
        }
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value recorded (exact), 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The mean of the values recorded (exact), 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.0 to 1.0): the midpoint of the bucket
    /// holding the `ceil(q * count)`-th smallest value, clamped to the
    /// exact min and max; the top rank is the exact max. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = if q.is_finite() {
            q.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max;
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_of(i);
                let mid = low.saturating_add(width / 2);
                return mid.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_continuous_and_monotonic() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX - 1, u64::MAX]) {
            let i = index_of(v);
            assert!(i >= last, "index went back at {v}");
            assert!(i < BUCKETS);
            let (low, width) = bucket_of(i);
            assert!(low <= v && v - low < width, "{v} not in bucket {i}");
            last = i;
        }
        assert_eq!(index_of(u64::MAX), BUCKETS - 1);
        assert_eq!(index_of(255), 255);
        assert_eq!(index_of(256), 256);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..200 {
            h.record(v);
        }
        assert_eq!(h.count(), 200);
        assert_eq!(h.quantile(0.5), 99);
        assert_eq!(h.quantile(1.0), 199);
        assert_eq!(h.quantile(0.0), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.max(), 199);
    }

    #[test]
    fn error_is_below_one_percent_everywhere() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            let mut h = Histogram::new();
            h.record(v);
            h.record(v.saturating_mul(3)); // so min/max clamping does not hide the error
            let got = h.quantile(0.5) as f64;
            let err = (got - v as f64).abs() / v as f64;
            assert!(err <= 0.004, "{v}: got {got}, error {err}");
            v = v.saturating_mul(3).saturating_add(7);
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut h = Histogram::new();
        for v in 1..=1_000_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.01, "q{q}: {got}");
        }
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
        assert!((h.mean() - 500_000.5).abs() < 1e-6);
    }

    #[test]
    fn empty_and_extremes() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0);
        assert_eq!(h.min(), 0);
        assert_eq!(h.mean(), 0.0);
        h.record(12345);
        h.record(u64::MAX);
        assert_eq!(h.quantile(1.0), u64::MAX);
        assert_eq!(h.quantile(0.0), h.min());
        assert_eq!(h.count(), 2);
    }

    #[test]
    fn a_tail_is_visible() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(100_000);
        }
        h.record(50_000_000);
        assert!((h.quantile(0.99) as f64 - 100_000.0).abs() < 500.0);
        assert_eq!(h.quantile(0.9999), 50_000_000);
    }
}
