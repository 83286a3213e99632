//! One cell of the matrix: the real `torsion bench` client as a
//! subprocess (pinned to the load core, which it inherits from the main
//! thread), its JSON report, and the server thread's CPU time over the
//! same stretch of the run.
//!
//! The client's measured window starts after `--warmup` and lasts `-d`;
//! this process cannot see exactly when (the client's start-up takes a few
//! milliseconds), so it reads the server's CPU clock over a slightly
//! shorter window inside it — from warm-up + margin to warm-up + duration
//! − margin after the spawn — and divides the server's CPU *rate* over
//! that window by the client's operation *rate*. Both are steady-state
//! rates, so the few milliseconds of offset do not bias the result.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::Server;

/// One cell's settings.
pub struct Cell {
    /// `gemini`, `http`, `ws` or `tcp`.
    pub protocol: &'static str,
    /// `small` or `large`.
    pub payload: &'static str,
    /// What the payload is, for the table.
    pub what: String,
    /// Concurrent connections (`-c`).
    pub conns: usize,
    /// The URL given to `torsion bench`.
    pub url: String,
    /// Extra options for `torsion bench`.
    pub args: Vec<String>,
}

/// What one cell measured.
pub struct Outcome {
    /// Operations per second in the client's window.
    pub ops_per_s: Option<f64>,
    /// Latency percentiles, µs.
    pub p50_us: Option<f64>,
    /// Latency percentiles, µs.
    pub p99_us: Option<f64>,
    /// Server thread CPU µs per operation.
    pub server_us: Option<f64>,
    /// Share of one core the server thread used.
    pub server_util: Option<f64>,
    /// The client's CPU µs per operation (its own report).
    pub client_us: Option<f64>,
    /// Share of one core the client used (its own report).
    pub client_util: Option<f64>,
    /// Errors the client counted.
    pub errors: Option<f64>,
    /// Why the client failed, when it did.
    pub failure: Option<String>,
}

/// Runs `torsion bench` for one cell and reads the server's CPU over the
/// middle of its measured window.
pub fn run(
    torsion: &str,
    server: &Server,
    cell: &Cell,
    warmup: Duration,
    window: Duration,
) -> Outcome {
    let margin = (window / 10).min(Duration::from_millis(200));
    let spawned = Instant::now();
    let child = Command::new(torsion)
        .arg("bench")
        .arg(&cell.url)
        .arg("-c")
        .arg(cell.conns.to_string())
        .arg("-d")
        .arg(format!("{}ms", window.as_millis()))
        .arg("--warmup")
        .arg(format!("{}ms", warmup.as_millis()))
        .arg("--json")
        // This process: the client then reads /proc/PID/stat for it, which
        // needs no search for the listening socket. Its own server figure
        // covers the whole process; the table uses the thread's clock.
        .arg("--server-pid")
        .arg(std::process::id().to_string())
        .args(&cell.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("cannot start {torsion}: {e}")),
    };
    sleep_until(spawned + warmup + margin);
    let (c0, t0) = (server.cpu(), Instant::now());
    sleep_until(spawned + warmup + window - margin);
    let (c1, t1) = (server.cpu(), Instant::now());
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return Outcome::failed(format!("waiting for torsion bench: {e}")),
    };
    let json = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !json.trim_start().starts_with('{') {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim().to_string();
        return Outcome::failed(format!("torsion bench exited with {}: {last}", out.status));
    }
    let ops_per_s = number(&json, &["ops_per_s"]);
    let wall = (t1 - t0).as_secs_f64();
    let util = (wall > 0.0).then(|| (c1 - c0).as_secs_f64() / wall);
    let server_us = match (util, ops_per_s) {
        (Some(u), Some(r)) if r > 0.0 => Some(u / r * 1e6),
        _ => None,
    };
    Outcome {
        ops_per_s,
        p50_us: number(&json, &["latency_us", "p50"]),
        p99_us: number(&json, &["latency_us", "p99"]),
        server_us,
        server_util: util,
        client_us: number(&json, &["cpu", "harness_us_per_op"]),
        client_util: number(&json, &["cpu", "harness_util"]),
        errors: number(&json, &["errors", "total"]),
        failure: None,
    }
}

impl Outcome {
    fn failed(why: String) -> Outcome {
        Outcome {
            ops_per_s: None,
            p50_us: None,
            p99_us: None,
            server_us: None,
            server_util: None,
            client_us: None,
            client_util: None,
            errors: None,
            failure: Some(why),
        }
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// A number in `torsion bench --json`'s one-line object, by its path of
/// keys (`["latency_us", "p50"]`); `None` for `null` or a missing key.
///
/// Not a JSON parser: the report is one flat object with a few nested
/// objects of numbers, written by torsion itself, and each key of a path is
/// looked for after the previous one — enough here, without a dependency.
pub fn number(json: &str, path: &[&str]) -> Option<f64> {
    let mut rest = json;
    for key in path {
        let pat = format!("\"{key}\":");
        let at = rest.find(&pat)?;
        rest = rest.get(at + pat.len()..)?;
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest.get(..end)?.parse().ok()
}

/// Checks [`number`] on a report of the shape `torsion bench --json`
/// writes; run by `cargo test` (which starts the bench without `--bench`).
pub fn self_check() {
    const SAMPLE: &str = r#"{"url":"ws://127.0.0.1:1/echo","ops":1200,"ops_per_s":600.5,"latency_us":{"count":1200,"p50":41.2,"p90":60,"p99":99.9},"errors":{"total":0,"refused":0},"cpu":{"harness_us_per_op":3.25,"harness_util":0.5,"server_us_per_op":null}}"#;
    assert_eq!(number(SAMPLE, &["ops"]), Some(1200.0));
    assert_eq!(number(SAMPLE, &["ops_per_s"]), Some(600.5));
    assert_eq!(number(SAMPLE, &["latency_us", "p50"]), Some(41.2));
    assert_eq!(number(SAMPLE, &["latency_us", "p99"]), Some(99.9));
    assert_eq!(number(SAMPLE, &["errors", "total"]), Some(0.0));
    assert_eq!(number(SAMPLE, &["cpu", "harness_us_per_op"]), Some(3.25));
    assert_eq!(number(SAMPLE, &["cpu", "server_us_per_op"]), None);
    assert_eq!(number(SAMPLE, &["nope"]), None);
}
