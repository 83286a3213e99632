//! What every attack case needs: the real binary with all three listeners
//! on free ports ([`target`]), a well-behaved client that keeps measuring
//! how promptly it is served while the attack runs ([`probe`]), the
//! server's memory, descriptors and CPU as `/proc` shows them
//! ([`resources`]), attackers' sockets and what the server did to them
//! ([`wire`]), what the server says about itself ([`status`]), and one
//! lock so the cases run one at a time (each one loads the machine on its
//! own).

pub mod probe;
pub mod resources;
pub mod status;
pub mod target;
pub mod wire;

pub use probe::{
    assert_prompt_after, probe_once, probe_rounds, probe_waiting, Prober, ALL, PROBE_TIMEOUT,
};
pub use resources::{cpu_share, cpu_time, process_state, socket_count, Resources};
pub use status::{count_lines, wait_status, Status};
pub use target::{
    raise_nofile, start_target, start_warm, warm_up, Launch, Listener, Ports, Target,
};
pub use wire::{
    attacker_ip, client_hello, connect_from, read_until_closed, show, tls_from, wait_closed, Ending,
};

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Attacks run one at a time: each would distort the others' timings.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What "at once" means for a refusal: the server decides from the bytes
/// already sent, so only scheduling on a loaded 2-core machine (the debug
/// build, the prober and the attack threads) stands between the last byte
/// and the close.
pub const PROMPT: Duration = Duration::from_millis(1500);

/// Extra time over a server deadline before a connection still open counts
/// as hung (for attackers that each wait on their own socket): timers fire
/// on the next loop turn, and the attack threads read their sockets one
/// after another.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// Polls `value` every 100 ms until it has not changed for `quiet` (or
/// `within` passes); returns the last value. For "the server stopped making
/// progress" (stopped answering, stopped accepting) without a fixed sleep.
pub fn settled(mut value: impl FnMut() -> usize, quiet: Duration, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut last = value();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = value();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}
