//! The attack suite (issue 10): every case starts the real `torsion` with
//! all three listeners, measures a well-behaved client before, during and
//! after one kind of abuse, and checks the server's memory and descriptors
//! come back near where they started. Cases run one at a time
//! ([`support::serial`]); each is bounded in connections and time.

#[path = "../server_support/mod.rs"]
mod server_support;

mod support;

mod bad_input;
mod cgi_abuse;
mod exhaustion;
mod slow_clients;

use support::{probe_rounds, start_target, Probe, Prober, Resources};

/// The harness itself: with no attack, every probe kind succeeds promptly
/// and the footprint does not move. If this fails, the others mean nothing.
#[test]
fn without_an_attack_the_well_behaved_client_is_prompt_and_nothing_grows() {
    let _one = support::serial();
    let target = start_target("hostile-baseline", &[], |_| {});
    let kinds = [Probe::Gemini, Probe::Http, Probe::Wss];
    // Warm up: the first TLS handshake and page cache settle.
    probe_rounds(&target.ports, &kinds, 3).assert_prompt("warm-up", 9);
    let baseline = Resources::of(target.server.pid());
    let prober = Prober::start(&target.ports, &kinds);
    std::thread::sleep(std::time::Duration::from_secs(2));
    prober.finish().assert_prompt("idle", 10);
    Resources::assert_back_near(
        target.server.pid(),
        baseline,
        0,
        1024,
        std::time::Duration::from_secs(5),
    );
}
