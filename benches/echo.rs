//! Echo benchmark (issue 2): torsion's echo beside a tokio `current_thread`
//! echo server, in the same run, alternating.
//!
//! Each server runs pinned to core 0; the load generator (built on
//! torsion-reactor's client side) runs pinned to core 1 with 64 connections
//! doing 64-byte ping-pong. Reported: messages/s and the server's CPU time
//! per message (from /proc/<pid>/stat over the measured window), medians of
//! several rounds; then RSS per idle connection with 10,000 open.
//!
//! ```text
//! cargo bench --bench echo            # ~1 minute
//! ECHO_ROUNDS=5 ECHO_SECS=5 cargo bench --bench echo
//! ```

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{median, Server};
use torsion_reactor::{Address, Context, Disconnect, Protocol, Reactor, Transport};

const CONNECTIONS: usize = 64;
const MESSAGE: usize = 64;
const IDLE_CONNECTIONS: usize = 10_000;
/// Echo only, and no per-client cap: every benchmark connection comes from
/// 127.0.0.1, and the default cap (256) would refuse the idle ones.
const TORSION_ARGS: &[&str] = &[
    "--echo",
    "127.0.0.1:0",
    "--no-gemini",
    "--no-http",
    "--no-ws",
    "--max-conns-per-ip",
    "0",
];

/// Sends a 64-byte message, waits for all of it to come back, repeats.
struct PingPong {
    done: Rc<Cell<u64>>,
    stop: Rc<Cell<bool>>,
    got: usize,
}

impl Protocol for PingPong {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write(&[b'x'; MESSAGE]);
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        self.got += data.len();
        while self.got >= MESSAGE {
            self.got -= MESSAGE;
            self.done.set(self.done.get() + 1);
            if !self.stop.get() {
                t.write(&[b'x'; MESSAGE]);
            }
        }
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        if !self.stop.get() {
            eprintln!("load connection lost: {reason}");
        }
    }
}

struct Round {
    msgs_per_sec: f64,
    cpu_us_per_msg: f64,
}

fn measure(server: &Server, warmup: Duration, window: Duration) -> Round {
    let mut reactor = Reactor::new().expect("reactor");
    let done = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let addr = Address::Tcp(server.addr);
    for _ in 0..CONNECTIONS {
        let p = PingPong {
            done: Rc::clone(&done),
            stop: Rc::clone(&stop),
            got: 0,
        };
        reactor.connect(&addr, Box::new(p)).expect("connect");
    }
    let pid = server.pid();
    let start = Rc::new(Cell::new((0u64, 0f64, Instant::now())));
    let result = Rc::new(Cell::new((0u64, 0f64, Duration::ZERO)));
    {
        let (done, start) = (Rc::clone(&done), Rc::clone(&start));
        reactor.schedule(warmup, move |_: &mut Context<'_>, _| {
            start.set((done.get(), common::cpu_seconds(pid), Instant::now()));
        });
    }
    {
        let (done, start, result, stop) = (
            Rc::clone(&done),
            Rc::clone(&start),
            Rc::clone(&result),
            Rc::clone(&stop),
        );
        reactor.schedule(warmup + window, move |ctx: &mut Context<'_>, _| {
            let (d0, c0, t0) = start.get();
            result.set((done.get() - d0, common::cpu_seconds(pid) - c0, t0.elapsed()));
            stop.set(true);
            ctx.stop();
        });
    }
    reactor.run().expect("run");
    let (msgs, cpu, elapsed) = result.get();
    Round {
        msgs_per_sec: msgs as f64 / elapsed.as_secs_f64(),
        cpu_us_per_msg: cpu * 1e6 / msgs.max(1) as f64,
    }
}

/// Sends one byte on each of `n` connections and keeps them open until all
/// got their echo; returns the server's RSS growth per connection in bytes.
fn idle_memory(server: &Server, n: usize) -> f64 {
    struct Idle {
        echoed: Rc<Cell<usize>>,
    }
    impl Protocol for Idle {
        fn connection_made(&mut self, t: &mut Transport<'_>) {
            t.write(b"x");
        }
        fn data_received(&mut self, _t: &mut Transport<'_>, _d: &mut [u8]) {
            self.echoed.set(self.echoed.get() + 1);
        }
    }
    common::settle(200);
    let before = server.rss_kib();
    let mut reactor = Reactor::new().expect("reactor");
    let echoed = Rc::new(Cell::new(0usize));
    let addr = Address::Tcp(server.addr);
    // Connect in waves so the server's accept backlog never overflows.
    let wave = 500;
    let opened = Rc::new(Cell::new(0usize));
    {
        let (echoed, opened) = (Rc::clone(&echoed), Rc::clone(&opened));
        reactor.schedule_every(Duration::from_millis(5), move |ctx, id| {
            if echoed.get() >= n {
                ctx.cancel(id);
                ctx.stop();
                return;
            }
            if opened.get() < n && opened.get() - echoed.get() < wave {
                for _ in 0..wave.min(n - opened.get()) {
                    let p = Idle {
                        echoed: Rc::clone(&echoed),
                    };
                    ctx.connect(&addr, Box::new(p)).expect("connect");
                    opened.set(opened.get() + 1);
                }
            }
        });
    }
    reactor.run().expect("run");
    common::settle(300);
    let after = server.rss_kib();
    (after.saturating_sub(before) as f64 * 1024.0) / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, and a test run must not start a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("echo benchmark: run it with `cargo bench --bench echo`");
        return;
    }
    let rounds: usize = std::env::var("ECHO_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let secs: u64 = std::env::var("ECHO_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    common::build_release(&["--bin", "torsion", "--example", "tokio_echo"]);
    common::raise_nofile();
    common::pin_to_core(1);
    let dir = common::release_dir();
    let torsion = dir.join("torsion");
    let tokio = dir.join("examples").join("tokio_echo");

    let mut results: Vec<(&str, Vec<f64>, Vec<f64>)> =
        vec![("torsion", vec![], vec![]), ("tokio", vec![], vec![])];
    for round in 0..rounds {
        for (i, (name, path, args)) in [
            ("torsion", &torsion, TORSION_ARGS.to_vec()),
            ("tokio", &tokio, vec!["127.0.0.1:0"]),
        ]
        .into_iter()
        .enumerate()
        {
            let server = Server::start(name, path, &args, 0);
            let r = measure(&server, Duration::from_secs(1), Duration::from_secs(secs));
            eprintln!(
                "round {round} {name:8} {:>10.0} msg/s  {:>6.2} µs CPU/msg",
                r.msgs_per_sec, r.cpu_us_per_msg
            );
            results[i].1.push(r.msgs_per_sec);
            results[i].2.push(r.cpu_us_per_msg);
        }
    }
    let mut mem = Vec::new();
    for (name, path, args) in [
        ("torsion", &torsion, TORSION_ARGS.to_vec()),
        ("tokio", &tokio, vec!["127.0.0.1:0"]),
    ] {
        let server = Server::start(name, path, &args, 0);
        let per_conn = idle_memory(&server, IDLE_CONNECTIONS);
        eprintln!("{name:8} {:.0} bytes RSS per idle connection", per_conn);
        mem.push(per_conn);
    }
    let t_rate = median(results[0].1.clone());
    let t_cpu = median(results[0].2.clone());
    let k_rate = median(results[1].1.clone());
    let k_cpu = median(results[1].2.clone());
    println!();
    println!("| echo, 64 conns, 64 B ping-pong, server on 1 core | msg/s (median of {rounds}) | server CPU µs/msg | RSS per idle conn (10k) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| torsion | {t_rate:.0} | {t_cpu:.2} | {:.2} KiB |",
        mem[0] / 1024.0
    );
    println!(
        "| tokio current_thread | {k_rate:.0} | {k_cpu:.2} | {:.2} KiB |",
        mem[1] / 1024.0
    );
    println!(
        "| ratio (tokio / torsion) | {:.2}x | {:.2}x less CPU | {:.2}x less memory |",
        t_rate / k_rate,
        k_cpu / t_cpu,
        mem[1] / mem[0].max(1.0)
    );
}
