//! Backpressure: a producer that respects the high water mark never queues
//! more than it should while the client does not read, stalls, and resumes
//! on `write_drained` until the whole stream has arrived intact.

mod common;

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use torsion_reactor::{
    Disconnect, ReactorConfig, Transport, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER,
};

const TOTAL: u64 = 100 * 1024 * 1024;
const CHUNK: usize = 16 * 1024;

/// What the producer publishes for the test thread.
#[derive(Default)]
struct Shared {
    produced: AtomicU64,
    max_buffered: AtomicUsize,
    drained_calls: AtomicUsize,
    /// Largest queue seen on entry to `write_drained` (must be <= low water).
    max_at_drained: AtomicUsize,
    lost_clean: AtomicBool,
    lost: AtomicBool,
}

/// Writes a stream of little-endian u32 counters (word k is `k`), so a lost,
/// duplicated or reordered chunk shows up at its exact offset.
struct Producer {
    shared: Arc<Shared>,
    next_word: u32,
    produced: u64,
    chunk: Vec<u8>,
}

impl Producer {
    fn produce(&mut self, t: &mut Transport<'_>) {
        while !t.over_high_water() && self.produced < TOTAL {
            self.chunk.clear();
            for _ in 0..CHUNK / 4 {
                self.chunk.extend_from_slice(&self.next_word.to_le_bytes());
                self.next_word = self.next_word.wrapping_add(1);
            }
            t.write(&self.chunk);
            self.produced += CHUNK as u64;
            self.shared.produced.store(self.produced, Ordering::Release);
            self.shared
                .max_buffered
                .fetch_max(t.buffered_len(), Ordering::AcqRel);
        }
        if self.produced >= TOTAL {
            t.close();
        }
    }
}

impl torsion_reactor::Protocol for Producer {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.produce(t);
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}

    fn write_drained(&mut self, t: &mut Transport<'_>) {
        self.shared.drained_calls.fetch_add(1, Ordering::AcqRel);
        self.shared
            .max_at_drained
            .fetch_max(t.buffered_len(), Ordering::AcqRel);
        self.produce(t);
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        self.shared
            .lost_clean
            .store(reason.is_clean(), Ordering::Release);
        self.shared.lost.store(true, Ordering::Release);
    }
}

/// Waits until `produced` has not moved for `quiet`, bounded by `timeout`.
/// Returns the settled value, or `None` if it kept moving.
fn wait_for_stall(produced: &AtomicU64, quiet: Duration, timeout: Duration) -> Option<u64> {
    let deadline = Instant::now() + timeout;
    let mut last = produced.load(Ordering::Acquire);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        let now = produced.load(Ordering::Acquire);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet && now > 0 {
            return Some(now);
        }
    }
    None
}

#[test]
fn producer_stalls_while_client_does_not_read_then_delivers_100_mib() {
    let shared = Arc::new(Shared::default());
    let s2 = Arc::clone(&shared);
    let (addr, running) = common::start_tcp_with(ReactorConfig::default(), move |_| Producer {
        shared: Arc::clone(&s2),
        next_word: 0,
        produced: 0,
        chunk: Vec::with_capacity(CHUNK),
    });
    let mut client = common::connect(addr);

    // The client does not read: production must stop once the kernel's
    // buffers and the high water mark are full.
    let stalled = wait_for_stall(
        &shared.produced,
        Duration::from_millis(300),
        Duration::from_secs(10),
    )
    .expect("production never stalled while the client was not reading");
    assert!(
        stalled < TOTAL / 2,
        "{stalled} bytes produced for a client that reads nothing"
    );
    // Still stalled a moment later: nothing is produced without a reader.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(shared.produced.load(Ordering::Acquire), stalled);
    let bound = DEFAULT_HIGH_WATER + CHUNK;
    let max = shared.max_buffered.load(Ordering::Acquire);
    assert!(
        max <= bound,
        "queued output reached {max} bytes (bound {bound})"
    );

    // Now read everything and check every word.
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    let mut carry: Vec<u8> = Vec::with_capacity(4);
    let mut word: u32 = 0;
    loop {
        let n = client.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        total += n as u64;
        let mut data = &buf[..n];
        if !carry.is_empty() {
            let need = 4 - carry.len();
            let take = need.min(data.len());
            carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if carry.len() == 4 {
                let got = u32::from_le_bytes([carry[0], carry[1], carry[2], carry[3]]);
                assert_eq!(got, word, "wrong word at byte {}", u64::from(word) * 4);
                word = word.wrapping_add(1);
                carry.clear();
            }
        }
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            let got = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if got != word {
                panic!(
                    "wrong word at byte {}: {got} != {word}",
                    u64::from(word) * 4
                );
            }
            word = word.wrapping_add(1);
        }
        carry.extend_from_slice(words.remainder());
    }
    assert_eq!(total, TOTAL, "stream length");
    assert!(carry.is_empty());
    assert!(common::wait_until(Duration::from_secs(5), || shared
        .lost
        .load(Ordering::Acquire)));
    assert!(
        shared.lost_clean.load(Ordering::Acquire),
        "connection did not end cleanly"
    );
    assert!(
        shared.drained_calls.load(Ordering::Acquire) > 0,
        "write_drained was never called"
    );
    let max = shared.max_buffered.load(Ordering::Acquire);
    assert!(max <= bound, "queued output reached {max} bytes");
    let at_drained = shared.max_at_drained.load(Ordering::Acquire);
    assert!(
        at_drained <= DEFAULT_LOW_WATER,
        "write_drained called with {at_drained} bytes still queued"
    );
    running.stop();
}
