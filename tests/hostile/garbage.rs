//! Random bytes on every listener: 300 connections send seeded random
//! garbage of random lengths to Gemini, HTTP and HTTPS/WSS; half close at
//! once, half hold the connection. The server answers per protocol (HTTP
//! `4xx`, a TLS alert) or just closes, never holds a connection past the
//! protocol's deadline, and a well-behaved client is served promptly all
//! along.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    self, assert_prompt_after, attacker_ip, connect_from, read_until_closed, show, start_warm,
    Ending, Launch, Listener, Ports, Prober, Resources, ALL, DEADLINE_MARGIN,
};

/// The deadline this case gives both a TLS handshake (`[tls]
/// handshake_timeout`) and an HTTP request head (`[[http]] head_timeout`):
/// random bytes that happen to be a valid prefix (of a request line, of a
/// handshake record) are waited for this long. Short, so the held
/// connections do not keep the case waiting on the 10 s defaults.
const GARBAGE_DEADLINE: Duration = Duration::from_secs(3);

/// The configuration file with [`GARBAGE_DEADLINE`].
fn config() -> String {
    let ms = GARBAGE_DEADLINE.as_millis();
    format!("[tls]\nhandshake_timeout = \"{ms}ms\"\n\n[[http]]\nhead_timeout = \"{ms}ms\"\n")
}

/// The reactor tests' seeded PRNG (xorshift64*), so the garbage is random
/// but every run sends the same bytes.
#[path = "../../reactor/tests/common/rng.rs"]
mod rng;
use rng::Rng;

/// One garbage connection's result.
#[derive(Debug)]
struct Garbage {
    n: usize,
    to: Listener,
    len: usize,
    held: bool,
    ending: Ending,
}

/// Connection `n` of the attack: random bytes of a log-uniform random
/// length (1 byte to 16 KiB) in random chunks to listener `to`, then
/// either a close or a hold until the server closes (bounded by the
/// deadline).
fn garbage_connection(n: usize, to: Listener, ports: &Ports) -> Garbage {
    let mut rng = Rng::new(n as u64 + 1);
    let bits = rng.next_u64() % 15;
    let len = 1 + (rng.next_u64() % (1u64 << bits)) as usize;
    let held = n % 2 == 1;
    let data = rng.bytes(len);
    let mut s: TcpStream = connect_from(attacker_ip(n), ports.of(to))
        .unwrap_or_else(|e| panic!("garbage connection {n} to {to:?}: {e}"));
    let mut sent_all = true;
    let mut rest = &data[..];
    while !rest.is_empty() {
        let take = (1 + rng.range(0, 4095)).min(rest.len());
        // A failed write: the server refused before reading everything,
        // which is allowed.
        if s.write_all(&rest[..take]).is_err() {
            sent_all = false;
            break;
        }
        rest = &rest[take..];
    }
    let ending = if held || !sent_all {
        // Held (or already refused): wait for the server to close it. The
        // deadline counts from the connect, as the server's does.
        read_until_closed(&mut s, Instant::now() + GARBAGE_DEADLINE + DEADLINE_MARGIN)
    } else {
        let _ = s.shutdown(std::net::Shutdown::Write);
        Ending {
            closed: true,
            ..Ending::default()
        }
    };
    Garbage {
        n,
        to,
        len,
        held,
        ending,
    }
}

/// 300 connections (100 per listener, from 250 loopback addresses) send
/// random bytes; half close at once, half hold the connection. Every held
/// one is closed by the server within its protocol's deadline, with an HTTP
/// `4xx` or a TLS alert (or nothing) as the only answer; the well-behaved
/// client stays prompt and the footprint comes back.
#[test]
fn random_garbage_on_every_port_is_refused_and_closed_while_probes_stay_prompt() {
    let _one = support::serial();
    let config = config();
    let (target, baseline) = start_warm(
        "hostile-garbage",
        Launch {
            config: &config,
            ..Launch::default()
        },
    );
    let pid = target.server.pid();

    const CONNECTIONS: usize = 300;
    const THREADS: usize = 30;
    let started = Instant::now();
    let prober = Prober::start(&target.ports, &ALL);
    let ports = target.ports;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                (t..CONNECTIONS)
                    .step_by(THREADS)
                    .map(|n| garbage_connection(n, Listener::ALL[n % 3], &ports))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Garbage> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("garbage thread"))
        .collect();
    let during = prober.finish();
    let attack_took = started.elapsed();

    let hung: Vec<_> = results.iter().filter(|g| !g.ending.closed).collect();
    assert!(
        hung.is_empty(),
        "{} garbage connections still open past their deadline: {:#?}",
        hung.len(),
        &hung[..hung.len().min(5)]
    );
    let mut http_4xx = 0;
    let mut tls_alerts = 0;
    for g in &results {
        let reply = &g.ending.reply;
        match g.to {
            Listener::Http => {
                assert!(
                    reply.is_empty() || reply.starts_with(b"HTTP/1.1 4"),
                    "HTTP garbage #{} ({} bytes) answered {}",
                    g.n,
                    g.len,
                    show(reply)
                );
                http_4xx += usize::from(!reply.is_empty());
            }
            Listener::Gemini | Listener::Https => {
                // 21 = alert: garbage is never a ClientHello the server
                // could answer with a ServerHello (22).
                assert!(
                    reply.is_empty() || reply[0] == 21,
                    "{:?} garbage #{} ({} bytes) answered {}",
                    g.to,
                    g.n,
                    g.len,
                    show(reply)
                );
                tls_alerts += usize::from(!reply.is_empty());
            }
        }
    }
    let held = results.iter().filter(|g| g.held).count();
    let slowest = results.iter().map(|g| g.ending.after).max();
    eprintln!(
        "garbage: {} connections ({held} held, slowest close {slowest:?}) in {attack_took:?}; \
         HTTP 4xx answers {http_4xx}, TLS alerts {tls_alerts}",
        results.len(),
    );
    // The server answers per protocol, it does not just drop everything.
    assert!(
        http_4xx >= 10,
        "only {http_4xx} HTTP garbage connections got a 4xx"
    );
    assert!(
        tls_alerts >= 10,
        "only {tls_alerts} TLS garbage connections got an alert"
    );
    during.assert_prompt("during random garbage", 30);

    assert_prompt_after(&target.ports, "random garbage");
    // fds: every attack connection is closed, so back to the baseline
    // exactly, but for a probe connection the server may not have finished
    // closing when we look (2). RSS: 300 short-lived TLS/HTTP sessions grow
    // the allocator's arenas; what it keeps is bounded, not per-connection
    // (4 MiB, about 14 KiB per attack connection).
    Resources::assert_back_near(pid, baseline, 2, 4096, Duration::from_secs(10));
}
