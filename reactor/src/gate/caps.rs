//! Concurrent connections per client (`--max-conns-per-ip`): the slowloris
//! defence. The global cap is the reactor's own (`max_connections`).
//!
//! Counted with the gate's `admit` (+1 for every connection it lets in,
//! including those admitted only to be refused politely) and `released`
//! (−1 when that connection closes). A client with no open connection has
//! no entry, so the table holds at most one entry per open connection.
//! Shared by all workers: a client's connections may land on any of them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::key::ClientKey;

/// Default per-client cap: high enough for a CGNAT address with many users
/// behind it, low enough that one host cannot hold every descriptor.
pub const DEFAULT_MAX_CONNS_PER_CLIENT: u32 = 256;

/// Open-connection counts per client, with a cap.
pub struct ConnCaps {
    max: u32,
    open: Mutex<HashMap<ClientKey, u32>>,
}

impl ConnCaps {
    /// A cap of `max` open connections per client; 0 turns it off.
    pub fn new(max: u32) -> Self {
        ConnCaps {
            max,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, u32>> {
        // Each update is a single integer store: a panic elsewhere cannot
        // leave the map half-changed, so poisoning is ignored.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True if the cap is on.
    pub fn is_enabled(&self) -> bool {
        self.max > 0
    }

    /// The cap (0 = off).
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Counts one more connection for `key` unless it is at the cap.
    /// Returns false (and counts nothing) at the cap. Always true when the
    /// cap is off (and nothing is counted).
    pub fn try_acquire(&self, key: &ClientKey) -> bool {
        if self.max == 0 {
            return true;
        }
        let mut open = self.lock();
        let n = open.entry(*key).or_insert(0);
        if *n >= self.max {
            return false;
        }
        *n += 1;
        true
    }

    /// One of `key`'s connections closed. Unknown keys are ignored (the
    /// cap may have been off when it was admitted).
    pub fn release(&self, key: &ClientKey) {
        if self.max == 0 {
            return;
        }
        let mut open = self.lock();
        if let Some(n) = open.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(key);
            }
        }
    }

    /// Open connections counted for `key`.
    pub fn open(&self, key: &ClientKey) -> u32 {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// Clients with at least one open connection.
    pub fn clients(&self) -> usize {
        self.lock().len()
    }

    /// Returns table memory left over from a past peak.
    pub fn housekeeping(&self) {
        self.lock().shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ClientKey = ClientKey::V4([198, 51, 100, 1]);
    const B: ClientKey = ClientKey::V4([198, 51, 100, 2]);

    #[test]
    fn caps_per_client() {
        let c = ConnCaps::new(2);
        assert!(c.try_acquire(&A));
        assert!(c.try_acquire(&A));
        assert!(!c.try_acquire(&A), "third concurrent connection refused");
        assert_eq!(c.open(&A), 2, "a refusal counts nothing");
        assert!(c.try_acquire(&B), "other clients are unaffected");
        c.release(&A);
        assert!(c.try_acquire(&A), "room again after a close");
        c.release(&A);
        c.release(&A);
        assert_eq!(c.open(&A), 0);
        assert_eq!(c.clients(), 1, "a client with nothing open has no entry");
        c.release(&B);
        assert_eq!(c.clients(), 0);
    }

    #[test]
    fn release_of_unknown_is_harmless() {
        let c = ConnCaps::new(1);
        c.release(&A);
        assert_eq!(c.open(&A), 0);
        assert!(c.try_acquire(&A));
        assert!(!c.try_acquire(&A));
    }

    #[test]
    fn zero_is_off() {
        let c = ConnCaps::new(0);
        assert!(!c.is_enabled());
        for _ in 0..10_000 {
            assert!(c.try_acquire(&A));
        }
        assert_eq!(c.clients(), 0, "nothing is counted when off");
        c.release(&A);
    }

    #[test]
    fn housekeeping_keeps_counts() {
        let c = ConnCaps::new(DEFAULT_MAX_CONNS_PER_CLIENT);
        for i in 0..=255u8 {
            assert!(c.try_acquire(&ClientKey::V4([10, 0, 0, i])));
        }
        for i in 1..=255u8 {
            c.release(&ClientKey::V4([10, 0, 0, i]));
        }
        c.housekeeping();
        assert_eq!(c.clients(), 1);
        assert_eq!(c.open(&ClientKey::V4([10, 0, 0, 0])), 1);
    }
}
