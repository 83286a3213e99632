//! The accept-time gate: per-client rate limits, refusal policy with flood
//! escalation, per-client connection caps and an allow-list, decided right
//! after `accept` and before any byte is read or any TLS work is done.
//!
//! - [`quota`]: Jetforce's quota syntax (`60/5m`) and its GCRA mapping;
//! - [`key`]: who counts as one client (IPv6 by /64), CIDR allow-lists;
//! - [`limiter`]: governor's keyed GCRA on a monotonic clock;
//! - [`policy`]: `drop` vs `reply`, and the precise definition of a flood;
//! - [`caps`]: concurrent connections per client;
//! - [`stats`]: counters shared by all workers;
//! - [`RateGate`]: all of it behind [`crate::Gate`].
//!
//! # Memory
//!
//! All per-client state is forgotten once it is indistinguishable from a
//! fresh client's, by [`RateGate::housekeeping`] (call it every
//! [`RECOMMENDED_HOUSEKEEPING_INTERVAL`]). A client that opened one
//! connection is forgotten two quota intervals later; one that used its
//! whole burst, one window later. So the state is bounded by the clients
//! seen in the last housekeeping interval plus two quota intervals (plus
//! clients still within their window after spending a burst).
//!
//! Each remembered client costs one table slot of 33 bytes (17-byte key,
//! 8-byte GCRA state, padding, a control byte); the table holds 1.14 to
//! 2.3 slots per client, so 38–75 bytes per client. Measured (test
//! `gate_memory_after_a_million_ipv6_clients`): 1,000,000 distinct IPv6
//! /64s grow RSS by 66 MiB; after housekeeping RSS is back to baseline.

pub mod caps;
pub mod key;
pub mod limiter;
pub mod policy;
pub mod quota;
pub mod stats;

mod accept;

pub use accept::{
    GateConfig, RateGate, Tracked, RECOMMENDED_HOUSEKEEPING_INTERVAL, SUMMARY_INTERVAL,
};
pub use caps::DEFAULT_MAX_CONNS_PER_CLIENT;
pub use key::{AllowList, Cidr, CidrError, ClientKey, DEFAULT_IPV6_PREFIX};
pub use policy::{PolicyError, RefusalPolicy, DEFAULT_FLOOD_FACTOR};
pub use quota::{QuotaError, RateQuota};
pub use stats::{GateCounters, GateStats};
