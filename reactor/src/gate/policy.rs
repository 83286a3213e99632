//! What a client over its quota gets, and when politeness stops.
//!
//! # Refusal policy
//!
//! - `drop`: the socket is closed at once; no byte read, no TLS work. The
//!   cheapest answer, and the right one under attack.
//! - `reply` (the default for Gemini and HTTP): the protocol refuses in its
//!   own words (Gemini `44 <seconds>`, HTTP/WebSocket `429` with
//!   `Retry-After`), so well-behaved clients learn to slow down. A reply
//!   costs a TLS handshake, so it is rationed:
//!
//! # Flood escalation (precise definition)
//!
//! Let B be the quota's burst, W its window (`B × interval`, the time a
//! client needs to regain its whole burst: 5 min for `60/5m`, 1 s for
//! `10/s`) and F the flood factor (default [`DEFAULT_FLOOD_FACTOR`]).
//! For each client, refusals are counted in fixed windows of length W, the
//! first starting at its first refusal. A client is **flooding** once more
//! than F × B of its connections have been refused in the current window;
//! from then on every refusal is a `Drop` instead of a reply. A flooding
//! client stays flooding in the next window if its previous window ended
//! flooding, and stops when a window closes with at most F × B refusals or
//! when it stays away for a whole window.
//!
//! So a client gets at most F × B polite refusals per window, i.e. per
//! window at most B + F × B handshakes in all, however fast it comes: at
//! a steady rate r it is flooding when r exceeds (F + 1) times its quota.
//! F = 0 disables escalation (every refusal is replied to).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use governor::clock::Reference;

use super::key::ClientKey;
use super::limiter::elapsed;

/// Default flood factor: a client refused more than 4× its burst within
/// one window (coming at over 5× its quota) is dropped without replies.
pub const DEFAULT_FLOOD_FACTOR: u32 = 4;

/// What a listener does with a client that is over its quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefusalPolicy {
    /// Close at once, before any byte is read or TLS work is done.
    Drop,
    /// Let the protocol refuse politely, escalating to `Drop` for floods.
    #[default]
    Reply,
}

/// A refusal policy name that is neither `drop` nor `reply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyError;

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refusal policy must be \"drop\" or \"reply\"")
    }
}

impl std::error::Error for PolicyError {}

impl FromStr for RefusalPolicy {
    type Err = PolicyError;

    /// Parses `drop` or `reply` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("drop") {
            Ok(RefusalPolicy::Drop)
        } else if s.eq_ignore_ascii_case("reply") {
            Ok(RefusalPolicy::Reply)
        } else {
            Err(PolicyError)
        }
    }
}

impl fmt::Display for RefusalPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalPolicy::Drop => "drop",
            RefusalPolicy::Reply => "reply",
        })
    }
}

/// What to do with one refused connection under the `reply` policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodVerdict {
    /// Not a flood: refuse politely.
    Reply,
    /// A flood: drop. `started` is true for the refusal that tipped the
    /// client over (worth one log line).
    Drop {
        /// This refusal made the client a flood.
        started: bool,
    },
}

#[derive(Clone, Copy, Debug)]
struct Window<I> {
    start: I,
    refused: u32,
    flooding: bool,
}

/// Per-client refusal counts for flood escalation (see the module docs).
///
/// Only clients refused in the last two windows have an entry, and
/// [`FloodTracker::housekeeping`] removes the rest, so its size is bounded
/// by the clients actually being refused.
pub struct FloodTracker<I> {
    window: Duration,
    threshold: u32,
    clients: Mutex<HashMap<ClientKey, Window<I>>>,
}

impl<I: Reference> FloodTracker<I> {
    /// Tracks floods for a quota with `burst` and `window`; `factor` is F
    /// (0 disables escalation).
    pub fn new(window: Duration, burst: u32, factor: u32) -> Self {
        FloodTracker {
            window,
            threshold: factor.saturating_mul(burst),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, Window<I>>> {
        // The map stays consistent even if a holder panicked mid-update
        // (every update is a plain field store), so poisoning is ignored.
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one refusal of `key` at `now` and says whether to reply.
    pub fn refused(&self, key: &ClientKey, now: I) -> FloodVerdict {
        if self.threshold == 0 {
            return FloodVerdict::Reply;
        }
        let mut clients = self.lock();
        let w = clients.entry(*key).or_insert(Window {
            start: now,
            refused: 0,
            flooding: false,
        });
        let since = elapsed(now, w.start);
        if since >= self.window {
            // A flood carries over only into the window right after it.
            let next = since < self.window.saturating_mul(2);
            *w = Window {
                start: now,
                refused: 0,
                flooding: next && w.refused > self.threshold,
            };
        }
        w.refused = w.refused.saturating_add(1);
        let was = w.flooding;
        if w.refused > self.threshold {
            w.flooding = true;
        }
        if w.flooding {
            FloodVerdict::Drop { started: !was }
        } else {
            FloodVerdict::Reply
        }
    }

    /// True if `key` is flooding now (for tests and status pages).
    pub fn is_flooding(&self, key: &ClientKey) -> bool {
        self.lock().get(key).is_some_and(|w| w.flooding)
    }

    /// Forgets clients whose last window ended more than a window ago (a
    /// new refusal would start them afresh anyway) and shrinks the table.
    pub fn housekeeping(&self, now: I) {
        let keep_for = self.window.saturating_mul(2);
        let mut clients = self.lock();
        clients.retain(|_, w| elapsed(now, w.start) < keep_for);
        clients.shrink_to_fit();
    }

    /// Clients currently tracked.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The flood threshold, F × B refusals per window.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::nanos::Nanos;

    const K: ClientKey = ClientKey::V4([203, 0, 113, 1]);
    const OTHER: ClientKey = ClientKey::V4([203, 0, 113, 2]);

    fn t(ms: u64) -> Nanos {
        Nanos::from(Duration::from_millis(ms))
    }

    #[test]
    fn policy_parse() {
        assert_eq!("drop".parse(), Ok(RefusalPolicy::Drop));
        assert_eq!(" Reply ".parse(), Ok(RefusalPolicy::Reply));
        assert_eq!("close".parse::<RefusalPolicy>(), Err(PolicyError));
        assert_eq!("".parse::<RefusalPolicy>(), Err(PolicyError));
        assert_eq!(RefusalPolicy::default(), RefusalPolicy::Reply);
        assert_eq!(RefusalPolicy::Drop.to_string(), "drop");
    }

    #[test]
    fn escalates_after_f_times_burst_refusals_in_a_window() {
        // burst 2, F 3, window 1 s: the 7th refusal in a window is a flood.
        let f = FloodTracker::new(Duration::from_secs(1), 2, 3);
        assert_eq!(f.threshold(), 6);
        for i in 0..6 {
            assert_eq!(f.refused(&K, t(i * 10)), FloodVerdict::Reply, "refusal {i}");
        }
        assert_eq!(f.refused(&K, t(100)), FloodVerdict::Drop { started: true });
        assert_eq!(f.refused(&K, t(110)), FloodVerdict::Drop { started: false });
        assert!(f.is_flooding(&K));
        // Another client is judged on its own.
        assert_eq!(f.refused(&OTHER, t(120)), FloodVerdict::Reply);
        assert!(!f.is_flooding(&OTHER));
    }

    #[test]
    fn a_flood_that_keeps_coming_stays_dropped() {
        let f = FloodTracker::new(Duration::from_secs(1), 1, 2);
        for i in 0..3 {
            f.refused(&K, t(i));
        }
        assert!(f.is_flooding(&K));
        // Next window: still flooding from the first refusal on.
        assert_eq!(
            f.refused(&K, t(1000)),
            FloodVerdict::Drop { started: false }
        );
        for i in 1..10 {
            assert!(matches!(
                f.refused(&K, t(1000 + i)),
                FloodVerdict::Drop { .. }
            ));
        }
        // Window after that: it flooded again, so still dropped.
        assert!(matches!(f.refused(&K, t(2000)), FloodVerdict::Drop { .. }));
    }

    #[test]
    fn a_flood_that_calms_down_gets_replies_again() {
        let f = FloodTracker::new(Duration::from_secs(1), 1, 2);
        for i in 0..5 {
            f.refused(&K, t(i));
        }
        assert!(f.is_flooding(&K));
        // One refusal in the next window: still flooding (carried over) ...
        assert!(matches!(f.refused(&K, t(1000)), FloodVerdict::Drop { .. }));
        // ... but that window ended with 1 ≤ 2 refusals: polite again.
        assert_eq!(f.refused(&K, t(2000)), FloodVerdict::Reply);
        assert!(!f.is_flooding(&K));
    }

    #[test]
    fn a_flood_that_goes_away_is_forgiven() {
        let f = FloodTracker::new(Duration::from_secs(1), 1, 2);
        for i in 0..5 {
            f.refused(&K, t(i));
        }
        assert!(f.is_flooding(&K));
        // Away for more than a whole window.
        assert_eq!(f.refused(&K, t(2500)), FloodVerdict::Reply);
    }

    #[test]
    fn factor_zero_never_escalates() {
        let f = FloodTracker::new(Duration::from_secs(1), 5, 0);
        for i in 0..1000 {
            assert_eq!(f.refused(&K, t(i)), FloodVerdict::Reply);
        }
        assert!(f.is_empty(), "nothing is tracked when escalation is off");
    }

    #[test]
    fn housekeeping_drops_stale_windows() {
        let f = FloodTracker::new(Duration::from_secs(1), 1, 1);
        f.refused(&K, t(0));
        f.refused(&OTHER, t(1500));
        assert_eq!(f.len(), 2);
        f.housekeeping(t(1999));
        assert_eq!(f.len(), 2, "K's window may still carry a flood over");
        f.housekeeping(t(2000));
        assert_eq!(f.len(), 1);
        f.housekeeping(t(3500));
        assert!(f.is_empty());
    }
}
