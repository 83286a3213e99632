//! The results: a human table, one JSON object, the notes that explain
//! them, and the progress line.

use std::fmt::Write as _;
use std::time::Duration;

use super::run::{ErrorKind, Measured};

/// Harness CPU per operation at or above this share of the server's means
/// one load core may not saturate one server core.
pub const CPU_CLOSE_RATIO: f64 = 0.7;

/// Harness CPU use (share of one core) above which the harness itself is
/// the bottleneck.
pub const HARNESS_BUSY: f64 = 0.9;

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The target URL.
    pub url: String,
    /// The scheme: gemini, http, https, ws, wss or tcp.
    pub mode: &'static str,
    /// What an operation is, in words ("fresh TLS connection per request").
    pub variant: &'static str,
    /// What is counted: requests, messages or connections.
    pub unit: &'static str,
    /// Digits in a status code (2 for Gemini, 3 for HTTP), 0 without
    /// statuses.
    pub status_digits: u8,
    /// Concurrent connections.
    pub connections: usize,
    /// Messages in flight per connection.
    pub pipeline: usize,
    /// Message size.
    pub size: Option<usize>,
    /// Open-loop rate.
    pub rate: Option<f64>,
    /// Warm-up time.
    pub warmup: Duration,
    /// Whether TLS sessions were resumed (`None` without TLS).
    pub tls_resume: Option<bool>,
    /// The server's pid, when known.
    pub server_pid: Option<u32>,
    /// The body check: the promised length, and whether every byte was
    /// compared (`--expect-body`) or only the length (`--expect-bytes`).
    pub expect_body: Option<(u64, bool)>,
    /// What was measured.
    pub m: Measured,
}

impl Summary {
    fn per_sec(&self) -> f64 {
        let secs = self.m.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.m.ops as f64 / secs
        } else {
            0.0
        }
    }

    /// Operations that CPU is divided by: completed and failed ones (a
    /// refused connect costs CPU too).
    fn cpu_ops(&self) -> u64 {
        self.m.ops + self.errors_without_status()
    }

    fn errors_without_status(&self) -> u64 {
        ErrorKind::ALL
            .iter()
            .zip(self.m.errors.iter())
            .filter(|(k, _)| **k != ErrorKind::Status)
            .map(|(_, n)| n)
            .sum()
    }

    fn errors_total(&self) -> u64 {
        self.m.errors.iter().sum()
    }

    fn per_op_us(&self, cpu: Option<Duration>) -> Option<f64> {
        let ops = self.cpu_ops();
        cpu.filter(|_| ops > 0)
            .map(|c| c.as_secs_f64() * 1e6 / ops as f64)
    }

    fn util(&self, cpu: Option<Duration>) -> Option<f64> {
        let secs = self.m.elapsed.as_secs_f64();
        cpu.filter(|_| secs > 0.0).map(|c| c.as_secs_f64() / secs)
    }

    /// Remarks that change how the figures should be read.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        let unit = self.unit_singular();
        let harness = self.per_op_us(self.m.harness_cpu);
        let server = self.per_op_us(self.m.server_cpu);
        if let (Some(h), Some(s)) = (harness, server) {
            if s > 0.0 && h >= CPU_CLOSE_RATIO * s {
                notes.push(format!(
                    "the harness spent {h:.1} µs of CPU per {unit}, {:.0}% of the server's {s:.1} µs: \
                     one load core may not saturate one server core, so compare servers by server CPU per {unit}",
                    h / s * 100.0
                ));
            }
        }
        if self
            .util(self.m.harness_cpu)
            .is_some_and(|u| u >= HARNESS_BUSY)
        {
            notes.push(format!(
                "the harness was CPU-bound; throughput may be the harness's limit, not the server's: \
                 compare server CPU per {unit}"
            ));
        }
        if self.server_pid.is_none() {
            notes.push("server CPU unknown: pass --server-pid PID".to_string());
        }
        if self.m.unfinished > 0 {
            notes.push(format!(
                "{} {} were still in flight at the end and are not counted",
                self.m.unfinished, self.unit
            ));
        }
        if self.m.interrupted {
            notes.push("interrupted: partial results".to_string());
        }
        if self.m.ops == 0 {
            notes.push(format!("no {} completed", self.unit));
        }
        notes
    }

    fn unit_singular(&self) -> &'static str {
        match self.unit {
            "requests" => "request",
            "messages" => "message",
            "connections" => "connection",
            other => other,
        }
    }

    fn load_line(&self) -> String {
        let mut s = format!("{} connections", self.connections);
        if self.pipeline > 1 {
            let _ = write!(s, " × {} in flight", self.pipeline);
        }
        if let Some(size) = self.size {
            let _ = write!(s, ", {size}-byte messages");
        }
        match self.rate {
            Some(r) => {
                let _ = write!(s, ", open loop at {r}/s");
            }
            None => s.push_str(", closed loop"),
        }
        if let Some(resume) = self.tls_resume {
            s.push_str(if resume {
                ", TLS resumption on"
            } else {
                ", full TLS handshakes"
            });
        }
        s
    }

    /// The human-readable table.
    pub fn human(&self) -> String {
        let m = &self.m;
        let mut s = String::new();
        let _ = writeln!(s, "torsion bench {}  ({})", self.url, self.variant);
        let _ = writeln!(s, "  {:<14}{}", "load", self.load_line());
        let mut window = format!("{:.2} s", m.elapsed.as_secs_f64());
        if !self.warmup.is_zero() {
            let _ = write!(
                window,
                " after {:.2} s of warm-up",
                self.warmup.as_secs_f64()
            );
        }
        let _ = writeln!(s, "  {:<14}{window}", "measured");
        let _ = writeln!(
            s,
            "  {:<14}{} {} completed, {} errors",
            "done",
            m.ops,
            self.unit,
            self.errors_total()
        );
        let _ = writeln!(
            s,
            "  {:<14}{:.1} {}/s",
            "throughput",
            self.per_sec(),
            self.unit
        );
        let h = &m.hist;
        let _ = writeln!(
            s,
            "  {:<14}p50 {}   p90 {}   p99 {}   p99.9 {}   max {}   mean {}",
            "latency",
            fmt_ns(h.quantile(0.5) as f64),
            fmt_ns(h.quantile(0.9) as f64),
            fmt_ns(h.quantile(0.99) as f64),
            fmt_ns(h.quantile(0.999) as f64),
            fmt_ns(h.max() as f64),
            fmt_ns(h.mean()),
        );
        if self.status_digits > 0 {
            let suffix = "x".repeat(usize::from(self.status_digits.saturating_sub(1)));
            let classes: Vec<String> = m
                .classes
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(c, n)| format!("{c}{suffix} {n}"))
                .collect();
            let text = if classes.is_empty() {
                "none".to_string()
            } else {
                classes.join("   ")
            };
            let _ = writeln!(s, "  {:<14}{text}", "status");
        }
        let kinds: Vec<String> = ErrorKind::ALL
            .iter()
            .zip(m.errors.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{} {n}", k.label()))
            .collect();
        let errors = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        };
        let _ = writeln!(s, "  {:<14}{errors}", "errors");
        if let Some((len, exact)) = self.expect_body {
            let what = if exact {
                "every byte compared"
            } else {
                "length only"
            };
            let _ = writeln!(
                s,
                "  {:<14}{len} bytes, {what}; {} mismatches",
                "body check",
                m.errors.get(ErrorKind::Body as usize).copied().unwrap_or(0)
            );
        }
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "  {:<14}in {} ({}/s)   out {} ({}/s)",
            "wire bytes",
            fmt_bytes(m.bytes.0 as f64),
            fmt_bytes(m.bytes.0 as f64 / secs),
            fmt_bytes(m.bytes.1 as f64),
            fmt_bytes(m.bytes.1 as f64 / secs),
        );
        let harness = match (self.per_op_us(m.harness_cpu), self.util(m.harness_cpu)) {
            (Some(us), Some(u)) => format!("harness {us:.2} µs ({:.0}% of a core)", u * 100.0),
            _ => "harness unknown".to_string(),
        };
        let server = match (
            self.server_pid,
            self.per_op_us(m.server_cpu),
            self.util(m.server_cpu),
        ) {
            (Some(pid), Some(us), Some(u)) => {
                format!("server {us:.2} µs (pid {pid}, {:.0}% of a core)", u * 100.0)
            }
            _ => "server unknown".to_string(),
        };
        let _ = writeln!(s, "  {:<14}{harness}   {server}", "CPU per op");
        for note in self.notes() {
            let _ = writeln!(s, "note: {note}");
        }
        s
    }

    /// The results as one JSON object (one line).
    pub fn json(&self) -> String {
        let m = &self.m;
        let h = &m.hist;
        let us = |ns: f64| num(ns / 1000.0);
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"url\":{},\"mode\":{},\"variant\":{},\"unit\":{},\"connections\":{},\"pipeline\":{},\"size\":{},\"rate\":{},",
            string(&self.url),
            string(self.mode),
            string(self.variant),
            string(self.unit),
            self.connections,
            self.pipeline,
            self.size.map_or("null".to_string(), |v| v.to_string()),
            self.rate.map_or("null".to_string(), num),
        );
        let _ = write!(
            s,
            "\"warmup_s\":{},\"elapsed_s\":{},\"ops\":{},\"ops_per_s\":{},\"unfinished\":{},\"interrupted\":{},",
            num(self.warmup.as_secs_f64()),
            num(m.elapsed.as_secs_f64()),
            m.ops,
            num(self.per_sec()),
            m.unfinished,
            m.interrupted,
        );
        let _ = write!(
            s,
            "\"latency_us\":{{\"count\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p99_9\":{},\"max\":{},\"mean\":{},\"min\":{}}},",
            h.count(),
            us(h.quantile(0.5) as f64),
            us(h.quantile(0.9) as f64),
            us(h.quantile(0.99) as f64),
            us(h.quantile(0.999) as f64),
            us(h.max() as f64),
            us(h.mean()),
            us(h.min() as f64),
        );
        s.push_str("\"status\":{");
        let mut first = true;
        for (c, n) in m.classes.iter().enumerate().filter(|(_, n)| **n > 0) {
            if !first {
                s.push(',');
            }
            first = false;
            let _ = write!(s, "\"{c}\":{n}");
        }
        let _ = write!(s, "}},\"errors\":{{\"total\":{}", self.errors_total());
        for (k, n) in ErrorKind::ALL.iter().zip(m.errors.iter()) {
            let _ = write!(s, ",\"{}\":{n}", k.key());
        }
        let _ = write!(
            s,
            "}},\"bytes\":{{\"in\":{},\"out\":{}}},",
            m.bytes.0, m.bytes.1
        );
        match self.expect_body {
            Some((len, exact)) => {
                let _ = write!(s, "\"expect_body\":{{\"bytes\":{len},\"exact\":{exact}}},");
            }
            None => s.push_str("\"expect_body\":null,"),
        }
        let opt = |v: Option<f64>| v.map_or("null".to_string(), num);
        let _ = write!(
            s,
            "\"cpu\":{{\"harness_s\":{},\"harness_us_per_op\":{},\"harness_util\":{},\"server_pid\":{},\"server_s\":{},\"server_us_per_op\":{},\"server_util\":{}}},",
            opt(m.harness_cpu.map(|d| d.as_secs_f64())),
            opt(self.per_op_us(m.harness_cpu)),
            opt(self.util(m.harness_cpu)),
            self.server_pid.map_or("null".to_string(), |p| p.to_string()),
            opt(m.server_cpu.map(|d| d.as_secs_f64())),
            opt(self.per_op_us(m.server_cpu)),
            opt(self.util(m.server_cpu)),
        );
        s.push_str("\"notes\":[");
        for (i, n) in self.notes().iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&string(n));
        }
        s.push_str("]}");
        s
    }
}

/// A JSON number (finite; non-finite values become 0).
fn num(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".to_string()
        } else {
            s.to_string()
        }
    } else {
        "0".to_string()
    }
}

/// A JSON string literal.
fn string(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A latency in nanoseconds, in the unit that reads best.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A byte count in binary units.
pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{v:.0} {name}")
    } else {
        format!("{v:.1} {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::histogram::Histogram;
    use super::*;

    fn summary() -> Summary {
        let mut hist = Histogram::new();
        for v in [100_000u64, 200_000, 300_000] {
            hist.record(v);
        }
        let mut errors = [0; ErrorKind::ALL.len()];
        errors[0] = 2; // refused
        Summary {
            url: "gemini://h/\"q\"".into(),
            mode: "gemini",
            variant: "fresh TLS connection per request",
            unit: "requests",
            status_digits: 2,
            connections: 4,
            pipeline: 1,
            size: None,
            rate: Some(500.0),
            warmup: Duration::ZERO,
            tls_resume: Some(false),
            server_pid: Some(77),
            expect_body: None,
            m: Measured {
                ops: 3,
                hist,
                errors,
                classes: [0, 0, 3, 0, 0, 0, 0, 0, 0, 0],
                elapsed: Duration::from_secs(2),
                unfinished: 0,
                interrupted: false,
                bytes: (4096, 1024),
                harness_cpu: Some(Duration::from_micros(900)),
                server_cpu: Some(Duration::from_micros(1000)),
            },
        }
    }

    #[test]
    fn human_table_has_the_figures() {
        let h = summary().human();
        assert!(h.contains("3 requests completed, 2 errors"), "{h}");
        assert!(h.contains("1.5 requests/s"), "{h}");
        assert!(h.contains("p50 200."), "{h}");
        assert!(h.contains("2x 3"), "{h}");
        assert!(h.contains("connect refused 2"), "{h}");
        assert!(h.contains("harness 180.00 µs"), "{h}");
        assert!(h.contains("server 200.00 µs (pid 77"), "{h}");
        assert!(h.contains("one load core may not saturate"), "{h}");
    }

    #[test]
    fn json_is_well_formed_enough() {
        let j = summary().json();
        assert!(j.starts_with('{') && j.ends_with('}'));
        assert!(j.contains("\"url\":\"gemini://h/\\\"q\\\"\""), "{j}");
        assert!(j.contains("\"ops\":3,"), "{j}");
        assert!(j.contains("\"status\":{\"2\":3}"), "{j}");
        assert!(j.contains("\"refused\":2"), "{j}");
        assert!(j.contains("\"server_pid\":77"), "{j}");
        assert!(j.contains("\"rate\":500,"), "{j}");
        let opens = j.matches('{').count();
        assert_eq!(opens, j.matches('}').count());
        assert!(!j.contains('\n'));
    }

    #[test]
    fn body_check_in_table_and_json() {
        let mut s = summary();
        assert!(s.json().contains("\"expect_body\":null,"));
        assert!(!s.human().contains("body check"));
        s.expect_body = Some((8192, true));
        s.m.errors[ErrorKind::Body as usize] = 4;
        let j = s.json();
        assert!(
            j.contains("\"expect_body\":{\"bytes\":8192,\"exact\":true},"),
            "{j}"
        );
        assert!(j.contains("\"body\":4"), "{j}");
        let h = s.human();
        assert!(
            h.contains("8192 bytes, every byte compared; 4 mismatches"),
            "{h}"
        );
        assert!(h.contains("body mismatch 4"), "{h}");
        s.expect_body = Some((10, false));
        assert!(s.human().contains("10 bytes, length only"));
    }

    #[test]
    fn no_note_when_the_server_is_dearer() {
        let mut s = summary();
        s.m.server_cpu = Some(Duration::from_micros(5000));
        assert!(s.notes().is_empty(), "{:?}", s.notes());
        s.server_pid = None;
        s.m.server_cpu = None;
        assert_eq!(s.notes().len(), 1);
    }

    #[test]
    fn formatting() {
        assert_eq!(num(1.5), "1.5");
        assert_eq!(num(2.0), "2");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(string("a\u{1}\n"), "\"a\\u0001\\n\"");
        assert_eq!(fmt_ns(500.0), "500 ns");
        assert_eq!(fmt_ns(1500.0), "1.5 µs");
        assert_eq!(fmt_ns(2_500_000.0), "2.50 ms");
        assert_eq!(fmt_bytes(100.0), "100 B");
        assert_eq!(fmt_bytes(2048.0), "2.0 KiB");
    }
}
