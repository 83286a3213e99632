//! The gate's counters, shared by every worker's copy of the gate.
//!
//! Every call to `admit` lands in exactly one of `allowed`, `refused_rate`,
//! `refused_cap` or `dropped_flood`, so they add up to the connections the
//! gate has seen. (Refusals at the global cap happen in the reactor before
//! the gate is asked; they are in the reactor's `ListenerStats`.)

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics (each is an independent
/// tally; no ordering between them is promised). Share with
/// `Arc<GateCounters>`.
#[derive(Debug, Default)]
pub struct GateCounters {
    allowed: AtomicU64,
    exempt: AtomicU64,
    refused_rate: AtomicU64,
    refused_cap: AtomicU64,
    dropped_flood: AtomicU64,
}

/// What a counter tallies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Let in under the quota and cap.
    Allowed,
    /// Let in unchecked: allow-listed (or not an IP peer).
    Exempt,
    /// Over the rate quota: refused by the listener's policy (a polite
    /// reply, or a drop under the `drop` policy).
    RefusedRate,
    /// At the per-client connection cap: dropped.
    RefusedCap,
    /// Over the quota and flooding: dropped instead of a reply.
    DroppedFlood,
}

impl GateCounters {
    /// Counts one decision.
    pub fn count(&self, outcome: Outcome) {
        let c = match outcome {
            Outcome::Allowed => &self.allowed,
            Outcome::Exempt => &self.exempt,
            Outcome::RefusedRate => &self.refused_rate,
            Outcome::RefusedCap => &self.refused_cap,
            Outcome::DroppedFlood => &self.dropped_flood,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> GateStats {
        let exempt = self.exempt.load(Ordering::Relaxed);
        GateStats {
            allowed: self.allowed.load(Ordering::Relaxed).saturating_add(exempt),
            exempt,
            refused_rate: self.refused_rate.load(Ordering::Relaxed),
            refused_cap: self.refused_cap.load(Ordering::Relaxed),
            dropped_flood: self.dropped_flood.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one gate's counters since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateStats {
    /// Connections let in (including `exempt`).
    pub allowed: u64,
    /// Of `allowed`, those let in without checks (allow-list, Unix peers).
    pub exempt: u64,
    /// Connections over the rate quota, refused per the policy.
    pub refused_rate: u64,
    /// Connections dropped at the per-client connection cap.
    pub refused_cap: u64,
    /// Connections over the quota dropped as part of a flood.
    pub dropped_flood: u64,
}

impl GateStats {
    /// Every connection not let in.
    pub fn refused_total(&self) -> u64 {
        self.refused_rate
            .saturating_add(self.refused_cap)
            .saturating_add(self.dropped_flood)
    }

    /// Every connection the gate was asked about.
    pub fn total(&self) -> u64 {
        self.allowed.saturating_add(self.refused_total())
    }

    /// The counts since `earlier` (a previous snapshot of the same gate).
    pub fn since(&self, earlier: &GateStats) -> GateStats {
        GateStats {
            allowed: self.allowed.saturating_sub(earlier.allowed),
            exempt: self.exempt.saturating_sub(earlier.exempt),
            refused_rate: self.refused_rate.saturating_sub(earlier.refused_rate),
            refused_cap: self.refused_cap.saturating_sub(earlier.refused_cap),
            dropped_flood: self.dropped_flood.saturating_sub(earlier.dropped_flood),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let c = GateCounters::default();
        for o in [
            Outcome::Allowed,
            Outcome::Allowed,
            Outcome::Exempt,
            Outcome::RefusedRate,
            Outcome::RefusedCap,
            Outcome::DroppedFlood,
            Outcome::DroppedFlood,
        ] {
            c.count(o);
        }
        let s = c.snapshot();
        assert_eq!(
            s,
            GateStats {
                allowed: 3,
                exempt: 1,
                refused_rate: 1,
                refused_cap: 1,
                dropped_flood: 2,
            }
        );
        assert_eq!(s.refused_total(), 4);
        assert_eq!(s.total(), 7);
    }

    #[test]
    fn since_is_a_delta() {
        let c = GateCounters::default();
        c.count(Outcome::RefusedRate);
        let before = c.snapshot();
        c.count(Outcome::RefusedRate);
        c.count(Outcome::Allowed);
        let d = c.snapshot().since(&before);
        assert_eq!(d.refused_rate, 1);
        assert_eq!(d.allowed, 1);
        assert_eq!(d.refused_total(), 1);
        assert_eq!(before.since(&c.snapshot()), GateStats::default());
    }
}
