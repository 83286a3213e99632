//! TLS handshake benchmark (issue 3): full TLS 1.3 handshakes per second
//! through the reactor (connect, handshake, close) for an ECDSA P-256 and an
//! Ed25519 certificate, and the server's CPU time per handshake.
//!
//! The server (`examples/tls_sink.rs`) runs pinned to core 0; the load
//! (the reactor's TLS client, 64 connections, reconnecting as each closes)
//! on core 1. A TLS handshake costs the client about what it costs the
//! server, so one load core rarely saturates the server: compare server CPU
//! per handshake with `cargo bench --bench tls_inmemory` (the in-memory
//! ceiling).
//!
//! ```text
//! cargo bench --bench tls
//! TLS_ROUNDS=5 TLS_SECS=5 cargo bench --bench tls
//! ```

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{median, Server};
use torsion_reactor::tls::{ClientTlsConfig, ClientVerify};
use torsion_reactor::{Address, Context, Disconnect, Protocol, Reactor, Transport};

const CONNECTIONS: usize = 64;

/// Counts a completed handshake, waits for the server's close, reconnects.
struct Handshaker {
    done: Rc<Cell<u64>>,
    failed: Rc<Cell<u64>>,
    stop: Rc<Cell<bool>>,
    addr: Address,
    tls: Arc<ClientTlsConfig>,
}

impl Handshaker {
    fn again(&self, ctx: &mut Context<'_>) {
        if self.stop.get() {
            return;
        }
        let next = Handshaker {
            done: Rc::clone(&self.done),
            failed: Rc::clone(&self.failed),
            stop: Rc::clone(&self.stop),
            addr: self.addr.clone(),
            tls: Arc::clone(&self.tls),
        };
        if ctx
            .connect_tls(&self.addr, "bench.test", &self.tls, Box::new(next))
            .is_err()
        {
            self.failed.set(self.failed.get() + 1);
        }
    }
}

impl Protocol for Handshaker {
    fn connection_made(&mut self, _t: &mut Transport<'_>) {
        self.done.set(self.done.get() + 1);
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _d: &mut [u8]) {}
    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &Disconnect) {
        if !matches!(reason, Disconnect::Closed) {
            self.failed.set(self.failed.get() + 1);
        }
        self.again(t);
    }
}

struct Round {
    per_sec: f64,
    server_us: f64,
    client_us: f64,
    failed: u64,
}

fn measure(server: &Server, warmup: Duration, window: Duration) -> Round {
    let mut reactor = Reactor::new().expect("reactor");
    let done = Rc::new(Cell::new(0u64));
    let failed = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let tls = Arc::new(
        ClientTlsConfig::builder(ClientVerify::NoVerify)
            .resumption(false)
            .build()
            .expect("client config"),
    );
    let addr = Address::Tcp(server.addr);
    for _ in 0..CONNECTIONS {
        let h = Handshaker {
            done: Rc::clone(&done),
            failed: Rc::clone(&failed),
            stop: Rc::clone(&stop),
            addr: addr.clone(),
            tls: Arc::clone(&tls),
        };
        h.again(&mut reactor.context());
    }
    let pid = server.pid();
    let me = std::process::id();
    let start = Rc::new(Cell::new((0u64, 0f64, 0f64, Instant::now())));
    let result = Rc::new(Cell::new((0u64, 0f64, 0f64, Duration::ZERO)));
    {
        let (done, start) = (Rc::clone(&done), Rc::clone(&start));
        reactor.schedule(warmup, move |_: &mut Context<'_>, _| {
            start.set((
                done.get(),
                common::cpu_seconds(pid),
                common::cpu_seconds(me),
                Instant::now(),
            ));
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
            let (d0, s0, c0, t0) = start.get();
            result.set((
                done.get() - d0,
                common::cpu_seconds(pid) - s0,
                common::cpu_seconds(me) - c0,
                t0.elapsed(),
            ));
            stop.set(true);
            ctx.stop();
        });
    }
    reactor.run().expect("run");
    let (n, server_cpu, client_cpu, elapsed) = result.get();
    Round {
        per_sec: n as f64 / elapsed.as_secs_f64(),
        server_us: server_cpu * 1e6 / n.max(1) as f64,
        client_us: client_cpu * 1e6 / n.max(1) as f64,
        failed: failed.get(),
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("TLS benchmark: run it with `cargo bench --bench tls`");
        return;
    }
    let rounds: usize = std::env::var("TLS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let secs: u64 = std::env::var("TLS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    common::build_release(&["--example", "tls_sink"]);
    common::raise_nofile();
    common::pin_to_core(1);
    let sink = common::release_dir().join("examples").join("tls_sink");
    println!();
    println!("| full TLS 1.3 handshakes, 64 conns, server on 1 core | handshakes/s (median of {rounds}) | server CPU µs/handshake | client CPU µs/handshake |");
    println!("|---|---:|---:|---:|");
    for alg in ["ecdsa", "ed25519"] {
        let (mut rate, mut server, mut client) = (vec![], vec![], vec![]);
        for round in 0..rounds {
            let s = Server::start("tls_sink", &sink, &["127.0.0.1:0", alg], 0);
            let r = measure(&s, Duration::from_secs(1), Duration::from_secs(secs));
            eprintln!(
                "round {round} {alg:8} {:>8.0}/s server {:>6.1} µs client {:>6.1} µs ({} failed)",
                r.per_sec, r.server_us, r.client_us, r.failed
            );
            rate.push(r.per_sec);
            server.push(r.server_us);
            client.push(r.client_us);
        }
        println!(
            "| {alg} | {:.0} | {:.1} | {:.1} |",
            median(rate),
            median(server),
            median(client)
        );
    }
}
