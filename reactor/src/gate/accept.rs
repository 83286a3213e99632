//! [`RateGate`]: the accept-time gate that puts quotas, caps, the
//! allow-list and flood escalation together behind [`crate::Gate`].

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};

use super::caps::{ConnCaps, DEFAULT_MAX_CONNS_PER_CLIENT};
use super::key::{AllowList, ClientKey, DEFAULT_IPV6_PREFIX};
use super::limiter::KeyedLimiter;
use super::policy::{FloodTracker, FloodVerdict, RefusalPolicy, DEFAULT_FLOOD_FACTOR};
use super::quota::RateQuota;
use super::stats::{GateCounters, GateStats, Outcome};
use crate::{Gate, PeerAddr, Verdict};

/// How often to call [`RateGate::housekeeping`] (e.g. from
/// `Context::schedule_every`): often enough that a scan from millions of
/// addresses cannot pile up (state is bounded by the accept rate times
/// this interval plus two quota intervals), rarely enough that the
/// sweep's brief lock (a few ms per 100,000 tracked clients) is noise.
pub const RECOMMENDED_HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);

/// How often to call [`RateGate::summary_line`] and log the result.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// One listener's gate settings, filled by the server from CLI and TOML.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// The listener's name, for log lines (`gemini`, `http`, ...).
    pub name: String,
    /// Per-client rate; `None` = no rate limit (caps still apply).
    pub quota: Option<RateQuota>,
    /// What a client over its quota gets.
    pub policy: RefusalPolicy,
    /// F in the flood definition (see [`super::policy`]); 0 = never
    /// escalate `reply` to `drop`.
    pub flood_factor: u32,
    /// Concurrent connections per client (`--max-conns-per-ip`); 0 = off.
    pub max_conns_per_client: u32,
    /// IPv6 clients are keyed by this many leading bits (64 = /64).
    pub ipv6_prefix: u8,
    /// Addresses exempt from the quota and the per-client cap.
    pub allow: AllowList,
}

impl Default for GateConfig {
    /// No rate limit, `reply` policy, flood factor 4, 256 connections per
    /// client, IPv6 by /64, nobody exempt.
    fn default() -> Self {
        GateConfig {
            name: String::from("listener"),
            quota: None,
            policy: RefusalPolicy::Reply,
            flood_factor: DEFAULT_FLOOD_FACTOR,
            max_conns_per_client: DEFAULT_MAX_CONNS_PER_CLIENT,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            allow: AllowList::new(),
        }
    }
}

/// How many clients each part of the gate remembers (for the status page
/// and memory measurements).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// Clients in the rate limiter.
    pub rate: usize,
    /// Clients in flood detection.
    pub floods: usize,
    /// Clients with at least one open connection.
    pub open: usize,
}

struct Shared<C: Clock> {
    name: String,
    policy: RefusalPolicy,
    ipv6_prefix: u8,
    allow: AllowList,
    limiter: Option<KeyedLimiter<C>>,
    floods: Option<FloodTracker<C::Instant>>,
    caps: ConnCaps,
    counters: Arc<GateCounters>,
    last_summary: Mutex<GateStats>,
}

/// The accept-time gate: per-client GCRA quota, refusal policy with flood
/// escalation, per-client connection cap, allow-list, counters.
///
/// Cheap to clone; clones share all state, so give each worker's listener
/// a clone and every worker enforces one quota per client.
///
/// For each accepted TCP connection, in order:
/// 1. allow-listed (or not TCP): admitted, counted `exempt`;
/// 2. one cell of the client's quota is spent; if there was one, the
///    client is admitted unless at its per-client cap (then dropped);
/// 3. over quota: `drop` policy drops; `reply` policy returns
///    [`Verdict::Refuse`] with the whole seconds until the next cell,
///    unless the client is flooding (dropped) or at its cap (dropped).
///
/// Connections admitted with `Admit` or `Refuse` hold a per-client slot
/// until [`Gate::released`].
pub struct RateGate<C: Clock = MonotonicClock> {
    shared: Arc<Shared<C>>,
}

impl<C: Clock> Clone for RateGate<C> {
    fn clone(&self) -> Self {
        RateGate {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl RateGate<MonotonicClock> {
    /// A gate on the monotonic clock.
    pub fn new(config: GateConfig) -> Self {
        RateGate::with_clock(config, MonotonicClock)
    }
}

impl<C: Clock> RateGate<C> {
    /// A gate on `clock` (tests use `governor::clock::FakeRelativeClock`).
    pub fn with_clock(config: GateConfig, clock: C) -> Self {
        let limiter = config.quota.map(|q| KeyedLimiter::with_clock(q, clock));
        let floods =
            match (&config.quota, config.policy) {
                (Some(q), RefusalPolicy::Reply) if config.flood_factor > 0 => Some(
                    FloodTracker::new(q.window(), q.burst(), config.flood_factor),
                ),
                _ => None,
            };
        RateGate {
            shared: Arc::new(Shared {
                name: config.name,
                policy: config.policy,
                ipv6_prefix: config.ipv6_prefix,
                allow: config.allow,
                limiter,
                floods,
                caps: ConnCaps::new(config.max_conns_per_client),
                counters: Arc::new(GateCounters::default()),
                last_summary: Mutex::new(GateStats::default()),
            }),
        }
    }

    /// The key for `peer`, or `None` if it is exempt (not TCP, or
    /// allow-listed).
    fn key(&self, peer: &PeerAddr) -> Option<ClientKey> {
        let ip = peer.ip()?;
        let s = &self.shared;
        if s.allow.contains(ip) {
            return None;
        }
        Some(ClientKey::from_ip(ip, s.ipv6_prefix))
    }

    /// Decides about a connection from `peer` (what [`Gate::admit`] does,
    /// through a shared reference).
    pub fn decide(&self, peer: &PeerAddr) -> Verdict {
        let s = &*self.shared;
        let Some(key) = self.key(peer) else {
            s.counters.count(Outcome::Exempt);
            return Verdict::Admit;
        };
        let refused = match &s.limiter {
            Some(l) => l.check(&key).err().map(|wait| (l, wait)),
            None => None,
        };
        let (outcome, verdict) = match refused {
            None => self.take_slot(&key, Outcome::Allowed, Verdict::Admit),
            Some(_) if s.policy == RefusalPolicy::Drop => (Outcome::RefusedRate, Verdict::Drop),
            Some((limiter, retry_after)) => {
                let flood = match &s.floods {
                    Some(f) => f.refused(&key, limiter.clock().now()),
                    None => FloodVerdict::Reply,
                };
                match flood {
                    FloodVerdict::Drop { started } => {
                        if started {
                            log::debug!("gate {}: {key} is flooding; dropping", s.name);
                        }
                        (Outcome::DroppedFlood, Verdict::Drop)
                    }
                    FloodVerdict::Reply => {
                        self.take_slot(&key, Outcome::RefusedRate, Verdict::Refuse { retry_after })
                    }
                }
            }
        };
        s.counters.count(outcome);
        verdict
    }

    /// Takes a per-client slot for a connection that will be built, or
    /// turns the decision into a cap drop.
    fn take_slot(&self, key: &ClientKey, outcome: Outcome, verdict: Verdict) -> (Outcome, Verdict) {
        if self.shared.caps.try_acquire(key) {
            (outcome, verdict)
        } else {
            (Outcome::RefusedCap, Verdict::Drop)
        }
    }

    /// A connection from `peer` that this gate admitted has closed (what
    /// [`Gate::released`] does, through a shared reference).
    pub fn release(&self, peer: &PeerAddr) {
        if let Some(key) = self.key(peer) {
            self.shared.caps.release(&key);
        }
    }

    /// Forgets clients that no longer need remembering and returns table
    /// memory. Call every [`RECOMMENDED_HOUSEKEEPING_INTERVAL`] from one
    /// worker (the state is shared, so one sweep serves all).
    pub fn housekeeping(&self) {
        let s = &*self.shared;
        if let Some(l) = &s.limiter {
            l.housekeeping();
            if let Some(f) = &s.floods {
                f.housekeeping(l.clock().now());
            }
        }
        s.caps.housekeeping();
    }

    /// The counters since the gate was built.
    pub fn stats(&self) -> GateStats {
        self.shared.counters.snapshot()
    }

    /// The live counters, to hand to a status page on another thread.
    pub fn counters(&self) -> Arc<GateCounters> {
        Arc::clone(&self.shared.counters)
    }

    /// How many clients the gate remembers now.
    pub fn tracked(&self) -> Tracked {
        let s = &*self.shared;
        Tracked {
            rate: s.limiter.as_ref().map_or(0, |l| l.len()),
            floods: s.floods.as_ref().map_or(0, |f| f.len()),
            open: s.caps.clients(),
        }
    }

    /// The listener's name from the config.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// One info line about the connections refused since the previous
    /// call, or `None` if nothing was refused. Call every
    /// [`SUMMARY_INTERVAL`] from one place only: each call starts a new
    /// interval for all clones.
    pub fn summary_line(&self) -> Option<String> {
        let s = &*self.shared;
        let now = s.counters.snapshot();
        let delta = {
            let mut last = s
                .last_summary
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let d = now.since(&last);
            *last = now;
            d
        };
        if delta.refused_total() == 0 {
            return None;
        }
        let mut line = String::with_capacity(160);
        let _ = write!(
            line,
            "gate {}: {} refused since last summary ({} over quota, {} at per-client cap, {} dropped as floods), {} allowed",
            s.name,
            delta.refused_total(),
            delta.refused_rate,
            delta.refused_cap,
            delta.dropped_flood,
            delta.allowed,
        );
        let t = self.tracked();
        let _ = write!(line, "; tracking {} clients", t.rate);
        Some(line)
    }
}

impl<C: Clock + 'static> Gate for RateGate<C> {
    fn admit(&mut self, peer: &PeerAddr) -> Verdict {
        self.decide(peer)
    }

    fn released(&mut self, peer: &PeerAddr) {
        self.release(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::SocketAddr;

    fn peer(s: &str) -> PeerAddr {
        PeerAddr::Tcp(s.parse::<SocketAddr>().unwrap())
    }

    fn gate(
        quota: &str,
        tweak: impl FnOnce(&mut GateConfig),
    ) -> (RateGate<FakeRelativeClock>, FakeRelativeClock) {
        let mut config = GateConfig {
            name: "test".into(),
            quota: Some(RateQuota::parse(quota).unwrap()),
            ..GateConfig::default()
        };
        tweak(&mut config);
        let clock = FakeRelativeClock::default();
        (RateGate::with_clock(config, clock.clone()), clock)
    }

    fn refuse(secs: u64) -> Verdict {
        Verdict::Refuse {
            retry_after: Duration::from_secs(secs),
        }
    }

    #[test]
    fn rate_gate_is_shareable_across_workers() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RateGate>();
        assert_send_sync::<GateCounters>();
    }

    #[test]
    fn admits_the_burst_then_refuses_with_whole_seconds() {
        let (mut g, clock) = gate("3/30s", |_| {});
        let p = peer("192.0.2.1:1000");
        for _ in 0..3 {
            assert_eq!(g.admit(&p), Verdict::Admit);
        }
        assert_eq!(g.admit(&p), refuse(10));
        clock.advance(Duration::from_millis(9_500));
        assert_eq!(g.admit(&p), refuse(1));
        clock.advance(Duration::from_millis(500));
        assert_eq!(g.admit(&p), Verdict::Admit);
        let s = g.stats();
        assert_eq!((s.allowed, s.refused_rate), (4, 2));
    }

    #[test]
    fn drop_policy_drops() {
        let (mut g, _) = gate("1/m", |c| c.policy = RefusalPolicy::Drop);
        let p = peer("192.0.2.1:1");
        assert_eq!(g.admit(&p), Verdict::Admit);
        assert_eq!(g.admit(&p), Verdict::Drop);
        assert_eq!(g.stats().refused_rate, 1);
        assert_eq!(g.tracked().floods, 0);
    }

    #[test]
    fn ports_do_not_matter_and_ipv6_is_keyed_by_prefix() {
        let (mut g, _) = gate("1/m", |_| {});
        assert_eq!(g.admit(&peer("192.0.2.1:1")), Verdict::Admit);
        assert!(matches!(
            g.admit(&peer("192.0.2.1:2")),
            Verdict::Refuse { .. }
        ));
        assert_eq!(g.admit(&peer("[2001:db8:0:1::1]:1")), Verdict::Admit);
        assert!(matches!(
            g.admit(&peer("[2001:db8:0:1:ffff::9]:1")),
            Verdict::Refuse { .. }
        ));
        assert_eq!(g.admit(&peer("[2001:db8:0:2::1]:1")), Verdict::Admit);

        let (mut g48, _) = gate("1/m", |c| c.ipv6_prefix = 48);
        assert_eq!(g48.admit(&peer("[2001:db8:0:1::1]:1")), Verdict::Admit);
        assert!(matches!(
            g48.admit(&peer("[2001:db8:0:2::1]:1")),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn mapped_ipv4_shares_the_ipv4_quota() {
        let (mut g, _) = gate("1/m", |_| {});
        assert_eq!(g.admit(&peer("198.51.100.7:1")), Verdict::Admit);
        assert!(matches!(
            g.admit(&peer("[::ffff:198.51.100.7]:1")),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn allow_list_is_exempt_from_rate_and_cap() {
        let (mut g, _) = gate("1/h", |c| {
            c.allow = AllowList::parse(["127.0.0.0/8", "2001:db8::/32"]).unwrap();
            c.max_conns_per_client = 1;
        });
        for _ in 0..100 {
            assert_eq!(g.admit(&peer("127.0.0.1:5")), Verdict::Admit);
            assert_eq!(g.admit(&peer("[::ffff:127.0.0.2]:5")), Verdict::Admit);
            assert_eq!(g.admit(&peer("[2001:db8::1]:5")), Verdict::Admit);
        }
        for _ in 0..100 {
            g.released(&peer("127.0.0.1:5"));
        }
        assert_eq!(
            g.tracked(),
            Tracked::default(),
            "exempt clients cost no state"
        );
        assert_eq!(g.admit(&peer("192.0.2.1:5")), Verdict::Admit);
        assert_eq!(g.admit(&peer("192.0.2.1:5")), Verdict::Drop, "cap of 1");
        let s = g.stats();
        assert_eq!((s.allowed, s.exempt, s.refused_cap), (301, 300, 1));
    }

    #[test]
    fn unix_peers_are_exempt() {
        let (mut g, _) = gate("1/h", |_| {});
        for _ in 0..10 {
            assert_eq!(g.admit(&PeerAddr::Unix), Verdict::Admit);
            g.released(&PeerAddr::Unix);
        }
        assert_eq!(g.stats().exempt, 10);
    }

    #[test]
    fn per_client_cap_counts_admit_and_released() {
        let mut g = RateGate::new(GateConfig {
            max_conns_per_client: 3,
            ..GateConfig::default()
        });
        let a = peer("203.0.113.1:1");
        let b = peer("203.0.113.2:1");
        for _ in 0..3 {
            assert_eq!(g.admit(&a), Verdict::Admit);
        }
        assert_eq!(g.admit(&a), Verdict::Drop);
        assert_eq!(g.admit(&b), Verdict::Admit);
        assert_eq!(g.tracked().open, 2);
        g.released(&a);
        assert_eq!(g.admit(&a), Verdict::Admit);
        assert_eq!(g.admit(&a), Verdict::Drop);
        for _ in 0..3 {
            g.released(&a);
        }
        g.released(&b);
        assert_eq!(g.tracked().open, 0);
        let s = g.stats();
        assert_eq!((s.allowed, s.refused_cap), (5, 2));
        assert_eq!(s.total(), 7);
    }

    #[test]
    fn polite_refusals_hold_a_slot_too() {
        // A refused-with-reply connection is built, and released later.
        let (mut g, _) = gate("1/h", |c| c.max_conns_per_client = 2);
        let p = peer("203.0.113.1:1");
        assert_eq!(g.admit(&p), Verdict::Admit);
        assert!(matches!(g.admit(&p), Verdict::Refuse { .. }));
        assert_eq!(g.admit(&p), Verdict::Drop, "at the cap, even for a reply");
        assert_eq!(g.stats().refused_cap, 1);
        g.released(&p);
        assert!(matches!(g.admit(&p), Verdict::Refuse { .. }));
    }

    #[test]
    fn flood_escalates_from_refuse_to_drop_and_calms_down() {
        // Burst 2, F 2: at most 4 replies per window (2 × 10 s = 20 s).
        let (mut g, clock) = gate("2/20s", |c| c.flood_factor = 2);
        let p = peer("192.0.2.66:1");
        let other = peer("192.0.2.67:1");
        let mut verdicts = Vec::new();
        for _ in 0..20 {
            let v = g.admit(&p);
            if !matches!(v, Verdict::Drop) {
                g.released(&p);
            }
            verdicts.push(v);
        }
        let admitted = verdicts.iter().filter(|v| **v == Verdict::Admit).count();
        let replied = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Refuse { .. }))
            .count();
        let dropped = verdicts.iter().filter(|v| **v == Verdict::Drop).count();
        assert_eq!((admitted, replied, dropped), (2, 4, 14));
        assert!(verdicts[6..].iter().all(|v| *v == Verdict::Drop));
        // A well-behaved neighbour is unaffected during the flood.
        assert_eq!(g.admit(&other), Verdict::Admit);
        let s = g.stats();
        assert_eq!((s.refused_rate, s.dropped_flood), (4, 14));
        assert!(g.summary_line().unwrap().contains("14 dropped as floods"));

        // Still flooding in the next window: one cell passes, the rest drop.
        clock.advance(Duration::from_secs(20));
        assert_eq!(g.admit(&p), Verdict::Admit);
        assert_eq!(g.admit(&p), Verdict::Admit);
        assert_eq!(g.admit(&p), Verdict::Drop);
        // A window later, having calmed down, it is refused politely again.
        clock.advance(Duration::from_secs(20));
        g.admit(&p);
        g.admit(&p);
        assert!(matches!(g.admit(&p), Verdict::Refuse { .. }));
    }

    #[test]
    fn no_quota_means_caps_only() {
        let mut g = RateGate::new(GateConfig::default());
        let p = peer("192.0.2.1:1");
        for _ in 0..DEFAULT_MAX_CONNS_PER_CLIENT {
            assert_eq!(g.admit(&p), Verdict::Admit);
        }
        assert_eq!(g.admit(&p), Verdict::Drop);
        assert_eq!(g.tracked().rate, 0);
    }

    #[test]
    fn housekeeping_shrinks_state() {
        let (g, clock) = gate("60/5m", |c| c.flood_factor = 1);
        for i in 0..1000u32 {
            let [_, _, a, b] = i.to_be_bytes();
            let p = PeerAddr::Tcp(SocketAddr::from(([10, 1, a, b], 1)));
            assert_eq!(g.decide(&p), Verdict::Admit);
            g.release(&p);
        }
        let heavy = peer("192.0.2.1:1");
        for _ in 0..200 {
            let v = g.decide(&heavy);
            if v != Verdict::Drop {
                g.release(&heavy);
            }
        }
        assert_eq!(
            g.tracked(),
            Tracked {
                rate: 1001,
                floods: 1,
                open: 0
            }
        );
        clock.advance(Duration::from_secs(11));
        g.housekeeping();
        assert_eq!(g.tracked().rate, 1, "one-off clients forgotten");
        clock.advance(Duration::from_secs(600));
        g.housekeeping();
        assert_eq!(g.tracked(), Tracked::default());
    }

    #[test]
    fn summary_line_only_when_something_was_refused() {
        let (g, _) = gate("1/h", |c| c.name = "gemini".into());
        let p = peer("192.0.2.1:1");
        assert_eq!(g.summary_line(), None);
        g.decide(&p);
        g.release(&p);
        assert_eq!(g.summary_line(), None, "allowed only");
        g.decide(&p);
        let line = g.summary_line().unwrap();
        assert_eq!(
            line,
            "gate gemini: 1 refused since last summary (1 over quota, 0 at per-client cap, \
             0 dropped as floods), 0 allowed; tracking 1 clients"
        );
        assert_eq!(g.summary_line(), None, "each call starts a new interval");
        assert_eq!(g.stats().refused_rate, 1, "totals are not reset");
    }

    #[test]
    fn workers_share_one_quota() {
        let g = RateGate::new(GateConfig {
            quota: Some(RateQuota::parse("100/h").unwrap()),
            policy: RefusalPolicy::Drop,
            ..GateConfig::default()
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let mut g = g.clone();
                std::thread::spawn(move || {
                    let p = peer("192.0.2.1:1");
                    (0..100)
                        .filter(|_| {
                            let v = g.admit(&p);
                            g.released(&p);
                            v == Verdict::Admit
                        })
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 100, "one quota across four workers");
        assert_eq!(g.stats().refused_rate, 300);
    }

    /// Memory after a scan from 1,000,000 distinct IPv6 /64s. Run alone:
    /// `cargo test -p torsion-reactor --release gate_memory -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement; prints RSS figures"]
    fn gate_memory_after_a_million_ipv6_clients() {
        fn rss_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        }
        let (g, clock) = gate("60/5m", |_| {});
        let before = rss_kib();
        let started = std::time::Instant::now();
        for i in 0..1_000_000u64 {
            let addr =
                std::net::Ipv6Addr::from_bits((0x2001_0db8_u128 << 96) | (u128::from(i) << 64) | 1);
            let p = PeerAddr::Tcp(SocketAddr::from((addr, 1965)));
            assert_eq!(g.decide(&p), Verdict::Admit);
            g.release(&p);
        }
        let fed = started.elapsed();
        let full = rss_kib();
        let tracked = g.tracked();
        clock.advance(Duration::from_secs(11));
        let swept = std::time::Instant::now();
        g.housekeeping();
        let sweep = swept.elapsed();
        let after = rss_kib();
        println!(
            "gate memory: before {before} KiB, after 1e6 /64 keys {full} KiB (+{} KiB, {} tracked), \
             after housekeeping {after} KiB ({} tracked); feeding took {fed:?}, sweep {sweep:?}",
            full.saturating_sub(before),
            tracked.rate,
            g.tracked().rate,
        );
        assert_eq!(tracked.rate, 1_000_000);
        assert_eq!(g.tracked(), Tracked::default());
        assert!(after < full);
    }
}
