//! The attack suite (issue 10): every case starts the real `torsion` with
//! all three listeners, measures a well-behaved client before, during and
//! after one kind of abuse, and checks the server's memory and descriptors
//! come back near where they started. Cases run one at a time
//! ([`support::serial`]); each is bounded in connections and time.
//!
//! One file per kind of abuse: `garbage` (random bytes on every listener),
//! `client_hellos` (hand-built TLS ClientHellos), `ws_frames` (WebSocket
//! frames that break the rules), `slow_clients` (slowloris, stalled
//! handshakes, clients that never read), `exhaustion` (a full descriptor
//! table, a connection storm), `cgi_abuse` (scripts that fork, ignore
//! SIGTERM or never stop writing). What they share is in `support`.

#[path = "../server_support/mod.rs"]
mod server_support;

mod support;

mod cgi_abuse;
mod client_hellos;
mod exhaustion;
mod garbage;
mod slow_clients;
mod ws_frames;

use std::time::Duration;

use support::{start_warm, Launch, Prober, Resources, ALL};

/// The harness itself: with no attack, every probe kind succeeds promptly
/// and the footprint does not move. If this fails, the others mean nothing.
#[test]
fn without_an_attack_the_well_behaved_client_is_prompt_and_nothing_grows() {
    let _one = support::serial();
    let (target, baseline) = start_warm("hostile-baseline", Launch::default());
    Prober::run_for(&target.ports, &ALL, Duration::from_secs(2)).assert_prompt("idle", 10);
    Resources::assert_back_near(
        target.server.pid(),
        baseline,
        0,
        1024,
        Duration::from_secs(5),
    );
}
