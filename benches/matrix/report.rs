//! The matrix as one markdown document: where and when it was measured,
//! how, and one table.

use std::fmt::Write as _;
use std::process::Command;

use crate::load::{Cell, Outcome};

/// Above this one-minute load average at the start (per core), the report
/// says the machine was busy: the figures are then noisy.
const BUSY_LOAD_PER_CORE: f64 = 0.25;

/// Facts about the run printed above the table.
pub struct Context {
    /// When the run started, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// `git rev-parse --short HEAD`, and whether the tree had changes.
    pub commit: String,
    /// CPU model, cores, kernel.
    pub machine: String,
    /// `/proc/loadavg`'s first three fields at the start.
    pub load_start: String,
    /// The same at the end.
    pub load_end: String,
    /// Cores used by the server thread and the load, when pinned.
    pub cores: Option<(usize, usize)>,
    /// Seconds of warm-up and of measurement per cell.
    pub warmup_s: f64,
    /// Seconds of measurement per cell.
    pub secs: f64,
}

/// The whole document.
pub fn markdown(ctx: &Context, rows: &[(Cell, Outcome)]) -> String {
    let mut s = String::new();
    s.push_str("# torsion: the in-process matrix\n\n");
    let _ = writeln!(
        s,
        "Written by `cargo bench --bench matrix` on {}, commit {}. Do not edit by hand: run it again.\n",
        ctx.date, ctx.commit
    );
    let _ = writeln!(
        s,
        "Machine: {}. Load average at the start: {}; at the end: {}.\n",
        ctx.machine, ctx.load_start, ctx.load_end
    );
    if busy(&ctx.load_start) {
        let _ = writeln!(
            s,
            "> **The machine was busy when this ran (load average {} at the start): the figures are noisy; compare them only with care.**\n",
            ctx.load_start
        );
    }
    let pinning = match ctx.cores {
        Some((server, load)) => {
            format!("the server's reactor thread pinned to core {server}, the load to core {load}")
        }
        None => "not pinned (fewer than two cores allowed): server and load share cores".into(),
    };
    let _ = writeln!(
        s,
        "Method: one process runs the server — a `torsion_reactor::Reactor` on its own thread with the real protocol factories of torsion-protocols (Gemini over TLS 1.3 with a generated ECDSA P-256 certificate, the HTTP→HTTPS redirect listener, WebSocket `/echo` over plain `ws://`, the TCP echo) — and starts the load, the release `torsion bench` client, as a subprocess with `--json`; {pinning}, traffic on 127.0.0.1. Each cell: {:.1} s of warm-up, then {:.1} s measured (`TORSION_MATRIX_WARMUP`, `TORSION_MATRIX_SECS`), one run (no medians: a quick map, not a comparison). No logger is installed, so no access log is written.\n",
        ctx.warmup_s, ctx.secs
    );
    s.push_str("Columns: **ops/s**, **p50/p99** latency and **client CPU µs/op** are the client's own report. **Server CPU µs/op** is the reactor thread's CPU time (its `pthread_getcpuclockid` clock) over the middle of the client's measured window, as a rate, divided by the client's rate of operations; **server busy** is that thread's share of its core and **load busy** the client's share of its core. Near 100% load busy, throughput is the client's limit and server CPU per operation is the figure to read (a TLS handshake costs the client about what it costs the server). An operation is a Gemini request on a fresh TLS connection (body read to the end), an HTTP request on a keep-alive connection, or one echoed message for ws and tcp (`--pipeline 1`: one message in flight per connection, so concurrency is the number in flight).\n\n");
    s.push_str("Payloads: Gemini serves a 1 KiB or a 1 MiB file. HTTP has one natural size (a redirect), so small is the target `/` and large a ~4 KiB request target (3,999 bytes of path), which the `Location` header echoes back (a ~4.2 KiB response). ws and tcp echo 64 B or 16 KiB messages.\n\n");
    s.push_str("| protocol | payload | conns | ops/s | p50 µs | p99 µs | server CPU µs/op | server busy | client CPU µs/op | load busy | errors |\n");
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    let mut failures = Vec::new();
    for (cell, o) in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell.protocol,
            cell.what,
            cell.conns,
            fmt(o.ops_per_s, 0),
            fmt(o.p50_us, 0),
            fmt(o.p99_us, 0),
            fmt(o.server_us, 2),
            pct(o.server_util),
            fmt(o.client_us, 2),
            pct(o.client_util),
            fmt(o.errors, 0),
        );
        if let Some(f) = &o.failure {
            failures.push(format!(
                "- {} {} -c {}: {f}",
                cell.protocol, cell.payload, cell.conns
            ));
        }
    }
    if !failures.is_empty() {
        s.push_str("\nCells where the client failed:\n\n");
        for f in failures {
            s.push_str(&f);
            s.push('\n');
        }
    }
    s
}

/// One line per cell for the terminal while the matrix runs.
pub fn progress_line(cell: &Cell, o: &Outcome) -> String {
    match &o.failure {
        Some(f) => format!(
            "{:6} {:5} -c {:3}: failed: {f}",
            cell.protocol, cell.payload, cell.conns
        ),
        None => format!(
            "{:6} {:5} -c {:3}: {:>9} ops/s  p50 {:>7} µs  p99 {:>7} µs  server {:>8} µs/op ({})  client {:>8} µs/op ({})  errors {}",
            cell.protocol,
            cell.payload,
            cell.conns,
            fmt(o.ops_per_s, 0),
            fmt(o.p50_us, 0),
            fmt(o.p99_us, 0),
            fmt(o.server_us, 2),
            pct(o.server_util),
            fmt(o.client_us, 2),
            pct(o.client_util),
            fmt(o.errors, 0),
        ),
    }
}

fn busy(loadavg: &str) -> bool {
    let cores = online_cores().max(1) as f64;
    loadavg
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|l| l / cores > BUSY_LOAD_PER_CORE)
}

/// A number with thousands separators, or `n/a`.
fn fmt(v: Option<f64>, decimals: usize) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return "n/a".into();
    };
    let text = format!("{v:.decimals$}");
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), format!(".{f}")),
        None => (text.clone(), String::new()),
    };
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d.to_string()),
        None => ("", int),
    };
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}{frac}")
}

fn pct(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map_or("n/a".into(), |v| format!("{:.0}%", v * 100.0))
}

/// `/proc/loadavg`'s first three fields.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU model, core count and kernel release.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let cores = online_cores();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, Linux {}, {}",
        kernel.trim(),
        std::env::consts::ARCH
    )
}

/// The machine's online cores (not this thread's affinity: the main
/// thread is pinned to the load core by the time the report is written).
fn online_cores() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(0)
}

/// The commit the bench was built from, as `git rev-parse --short HEAD`,
/// noting uncommitted changes to tracked files.
pub fn commit() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => {
            format!("`{head}` (with uncommitted changes)")
        }
        _ => format!("`{head}`"),
    }
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

/// Checks the date arithmetic and number formatting; run by `cargo test`.
pub fn self_check() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    assert_eq!(fmt(Some(1_234_567.891), 0), "1,234,568");
    assert_eq!(fmt(Some(999.5), 2), "999.50");
    assert_eq!(fmt(Some(-1234.0), 0), "-1,234");
    assert_eq!(fmt(None, 0), "n/a");
    assert_eq!(pct(Some(0.987)), "99%");
}
