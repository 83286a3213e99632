//! The in-process matrix (issue 9): each protocol (Gemini over TLS, the
//! HTTP redirect, WebSocket echo, TCP echo) × a small and a large payload
//! × concurrency 1, 64 and 512, one short run per cell, as one markdown
//! table on stdout and in `benches/results/matrix.md`.
//!
//! The server runs in this process (a reactor thread with the real
//! factories, pinned to the first allowed core); the load is the release
//! `torsion bench` client as a subprocess on the second core. Per cell:
//! ops/s, latency p50/p99, the server thread's and the client's CPU per
//! operation, errors.
//!
//! ```text
//! cargo bench --bench matrix
//! TORSION_MATRIX_SECS=5 TORSION_MATRIX_WARMUP=1 cargo bench --bench matrix
//! TORSION_MATRIX_ONLY=ws,tcp TORSION_MATRIX_CONNS=64 cargo bench --bench matrix
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it checks its
//! own parsing and returns at once.

mod common;
#[path = "matrix/load.rs"]
mod load;
#[path = "matrix/report.rs"]
mod report;
#[path = "matrix/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::Duration;

use load::Cell;
use server::Server;

/// Concurrency levels measured unless `TORSION_MATRIX_CONNS` says otherwise.
const CONNS: [usize; 3] = [1, 64, 512];
/// The WebSocket and TCP echo message sizes.
const ECHO_SMALL: usize = 64;
/// The large echo message: bigger than one read buffer.
const ECHO_LARGE: usize = 16 * 1024;
/// Length of the large HTTP request target: just under the redirect
/// listener's limit (`MAX_TARGET`, 4096), so it is accepted and echoed.
const HTTP_LONG_TARGET: usize = 3_999;
/// Pause between cells, so one cell's closing connections are not in the
/// next one's warm-up.
const SETTLE: Duration = Duration::from_millis(300);

fn main() {
    load::self_check();
    report::self_check();
    if !std::env::args().any(|a| a == "--bench") {
        println!("matrix benchmark: run it with `cargo bench --bench matrix`");
        return;
    }
    let secs = env_secs("TORSION_MATRIX_SECS", 2.0);
    let warmup = env_secs("TORSION_MATRIX_WARMUP", 0.5);
    let conns = env_list("TORSION_MATRIX_CONNS").unwrap_or_else(|| CONNS.to_vec());
    let only = std::env::var("TORSION_MATRIX_ONLY").unwrap_or_else(|_| "gemini,http,ws,tcp".into());

    // 512 TLS clients and the server's side of them, in one process tree.
    common::raise_nofile();
    let cores = two_cores();
    if cores.is_none() {
        eprintln!("matrix: fewer than two cores allowed: server and load are not pinned");
    }
    let date = report::utc_now();
    let load_start = report::loadavg();
    let server = Server::start(cores.map(|(s, _)| s));
    // The client subprocesses inherit this thread's affinity.
    if let Some((_, load)) = cores {
        common::pin_to_core(load);
    }
    let torsion = env!("CARGO_BIN_EXE_torsion");
    eprintln!(
        "matrix: {} s + {} s warm-up per cell, load {torsion}",
        secs.as_secs_f64(),
        warmup.as_secs_f64()
    );

    let mut rows = Vec::new();
    for cell in cells(&server, &conns, &only) {
        let outcome = load::run(torsion, &server, &cell, warmup, secs);
        eprintln!("{}", report::progress_line(&cell, &outcome));
        rows.push((cell, outcome));
        std::thread::sleep(SETTLE);
    }
    drop(server);

    let ctx = report::Context {
        date,
        commit: report::commit(),
        machine: report::machine(),
        load_start,
        load_end: report::loadavg(),
        cores,
        warmup_s: warmup.as_secs_f64(),
        secs: secs.as_secs_f64(),
    };
    let md = report::markdown(&ctx, &rows);
    println!("{md}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results/matrix.md");
    match std::fs::create_dir_all(out.parent().unwrap_or(&out))
        .and_then(|()| std::fs::write(&out, &md))
    {
        Ok(()) => eprintln!("matrix: wrote {}", out.display()),
        Err(e) => eprintln!("matrix: could not write {}: {e}", out.display()),
    }
}

/// Every cell, protocol by protocol, small before large, by concurrency.
fn cells(server: &Server, conns: &[usize], only: &str) -> Vec<Cell> {
    let on = |p: &str| only.split(',').any(|o| o.trim() == p);
    let mut out = Vec::new();
    let mut add = |protocol, payload, what: String, url: String, args: Vec<String>| {
        for &c in conns {
            out.push(Cell {
                protocol,
                payload,
                what: what.clone(),
                conns: c,
                url: url.clone(),
                args: args.clone(),
            });
        }
    };
    if on("gemini") {
        let base = format!("gemini://{}/", server.gemini);
        add(
            "gemini",
            "small",
            "1 KiB file".into(),
            format!("{base}{}", server::SMALL_FILE),
            vec![],
        );
        add(
            "gemini",
            "large",
            "1 MiB file".into(),
            format!("{base}{}", server::LARGE_FILE),
            vec![],
        );
    }
    if on("http") {
        let base = format!("http://{}/", server.http);
        add("http", "small", "target `/`".into(), base.clone(), vec![]);
        let long = "x".repeat(HTTP_LONG_TARGET - 1);
        add(
            "http",
            "large",
            "~4 KiB target".into(),
            format!("{base}{long}"),
            vec![],
        );
    }
    let echo = |size: usize| {
        vec![
            "--size".to_string(),
            size.to_string(),
            "--pipeline".to_string(),
            "1".to_string(),
        ]
    };
    if on("ws") {
        let url = format!("ws://{}/echo", server.ws);
        add(
            "ws",
            "small",
            "64 B message".into(),
            url.clone(),
            echo(ECHO_SMALL),
        );
        add(
            "ws",
            "large",
            "16 KiB message".into(),
            url,
            echo(ECHO_LARGE),
        );
    }
    if on("tcp") {
        let url = format!("tcp://{}", server.tcp);
        add(
            "tcp",
            "small",
            "64 B message".into(),
            url.clone(),
            echo(ECHO_SMALL),
        );
        add(
            "tcp",
            "large",
            "16 KiB message".into(),
            url,
            echo(ECHO_LARGE),
        );
    }
    out
}

/// The first two cores this process may run on: (server, load).
fn two_cores() -> Option<(usize, usize)> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity writes within
    // it and CPU_ISSET reads within it.
    let allowed: Vec<usize> = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    };
    match allowed.as_slice() {
        [a, b, ..] => Some((*a, *b)),
        _ => None,
    }
}

/// A duration in (fractional) seconds from the environment.
fn env_secs(name: &str, default: f64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

/// A comma-separated list of numbers from the environment.
fn env_list(name: &str) -> Option<Vec<usize>> {
    let v = std::env::var(name).ok()?;
    let list: Vec<usize> = v
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    (!list.is_empty()).then_some(list)
}
