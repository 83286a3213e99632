//! Counters, and the snapshot `/status` pushes: [`WsStats`] (what the
//! WebSocket module counts), [`StatusSnapshot`] (what the page shows, for
//! every protocol of the server) and [`StatusSource`] (where the server's
//! numbers come from).
//!
//! The JSON is written by hand (no serde): the shape is small and fixed, and
//! the page reads it as documented on [`StatusSnapshot::write_json`].

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use torsion_reactor::{Context, ListenerId, ListenerStats};

/// What the WebSocket module counts, across all its connections of one
/// factory. Plain numbers: read them through
/// [`WsHandle::stats`](super::WsHandle::stats) or from a [`StatusSource`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Listeners whose connections were counted here (the factory learns
    /// them from its first connection on each), for their byte and gate
    /// counters.
    pub listeners: Vec<ListenerId>,
    /// Connections accepted (handshake or not).
    pub connections: u64,
    /// Connections open now.
    pub open: u64,
    /// Handshakes that became WebSocket connections.
    pub upgrades: u64,
    /// WebSocket connections open now.
    pub sockets_open: u64,
    /// Handshakes refused (400, 403, 404, 405, 426, 429, 431).
    pub handshakes_refused: u64,
    /// Pages served (`GET /`).
    pub pages: u64,
    /// Data messages received.
    pub messages_in: u64,
    /// Data messages sent (echoes, broadcasts, status snapshots).
    pub messages_out: u64,
    /// Payload bytes of data messages received.
    pub payload_in: u64,
    /// Payload bytes of data messages sent.
    pub payload_out: u64,
    /// Connections failed for a protocol error (close 1002/1007/1009).
    pub protocol_errors: u64,
    /// Broadcast messages skipped for slow readers.
    pub broadcast_dropped: u64,
    /// Slow readers closed with 1008.
    pub slow_closed: u64,
    /// Connections closed because a ping went unanswered.
    pub ping_timeouts: u64,
    /// Round-trip time of the last answered ping, in microseconds.
    pub last_rtt_us: u64,
    /// Largest queue (bytes) seen on a broadcast recipient: how close the
    /// slowest reader came to the high water mark.
    pub max_recipient_backlog: u64,
}

impl WsStats {
    /// The WebSocket line of the status page: these counters plus the byte
    /// and gate counters of the listeners they came from.
    pub fn protocol_status(&self, ctx: &Context<'_>) -> ProtocolStatus {
        let mut p = ProtocolStatus {
            name: "websocket".to_owned(),
            open: self.open,
            connections: self.connections,
            requests: self.messages_in,
            ..ProtocolStatus::default()
        };
        for id in &self.listeners {
            if let Some(l) = ctx.listener_stats(*id) {
                p.add_listener(&l);
            }
        }
        p
    }
}

/// One protocol's line on the status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolStatus {
    /// Shown as the line's title: `gemini`, `http`, `websocket`, ...
    pub name: String,
    /// Connections open now.
    pub open: u64,
    /// Connections accepted since start (the page derives the rate).
    pub connections: u64,
    /// Requests (Gemini, HTTP) or messages received (WebSocket) since start.
    pub requests: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Connections the accept gate refused (dropped or answered 44/429).
    pub gate_refusals: u64,
    /// TLS handshakes that failed.
    pub tls_failures: u64,
}

impl ProtocolStatus {
    /// A line filled from one listener's counters (connections, bytes, gate
    /// refusals, TLS failures); the caller adds the requests it knows of.
    pub fn from_listener(name: &str, stats: &ListenerStats) -> ProtocolStatus {
        let mut p = ProtocolStatus {
            name: name.to_owned(),
            open: stats.active,
            connections: stats.accepted,
            ..ProtocolStatus::default()
        };
        p.bytes_in = stats.bytes_in;
        p.bytes_out = stats.bytes_out;
        p.gate_refusals = stats.refused.saturating_add(stats.refused_with_reply);
        p.tls_failures = stats.tls_failures;
        p
    }

    /// Adds one more listener's bytes, gate refusals and TLS failures (a
    /// protocol served on several listeners).
    pub fn add_listener(&mut self, stats: &ListenerStats) {
        self.tls_failures = self.tls_failures.saturating_add(stats.tls_failures);
        self.bytes_in = self.bytes_in.saturating_add(stats.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(stats.bytes_out);
        self.gate_refusals = self
            .gate_refusals
            .saturating_add(stats.refused)
            .saturating_add(stats.refused_with_reply);
    }
}

/// Everything `/status` pushes once a second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusSnapshot {
    /// Time since the server started.
    pub uptime: Duration,
    /// Resident memory of the process, when known ([`process_rss_bytes`]).
    pub rss_bytes: Option<u64>,
    /// One line per protocol, in display order.
    pub protocols: Vec<ProtocolStatus>,
    /// The WebSocket module's own counters (drops, errors, ping RTT).
    pub ws: WsStats,
}

impl StatusSnapshot {
    /// Appends the snapshot as one JSON object:
    ///
    /// ```text
    /// {"time_ms":1700000000000,"uptime_s":12.5,"rss_bytes":3211264,
    ///  "protocols":[{"name":"websocket","open":2,"connections":9,
    ///    "requests":40,"bytes_in":1234,"bytes_out":5678,
    ///    "gate_refusals":0,"tls_failures":0}],
    ///  "ws":{"sockets_open":2,"upgrades":8,"handshakes_refused":1,
    ///    "messages_in":40,"messages_out":52,"protocol_errors":0,
    ///    "broadcast_dropped":0,"slow_closed":0,"ping_timeouts":0,
    ///    "last_rtt_us":120,"max_recipient_backlog":0}}
    /// ```
    ///
    /// `rss_bytes` is `null` when unknown. Counters are totals since start:
    /// the page derives rates from consecutive snapshots.
    pub fn write_json(&self, out: &mut String) {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let _ = write!(
            out,
            "{{\"time_ms\":{time_ms},\"uptime_s\":{:.1},\"rss_bytes\":",
            self.uptime.as_secs_f64()
        );
        match self.rss_bytes {
            Some(rss) => {
                let _ = write!(out, "{rss}");
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"protocols\":[");
        for (i, p) in self.protocols.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            push_json_string(&p.name, out);
            let _ = write!(
                out,
                ",\"open\":{},\"connections\":{},\"requests\":{},\"bytes_in\":{},\
                 \"bytes_out\":{},\"gate_refusals\":{},\"tls_failures\":{}}}",
                p.open,
                p.connections,
                p.requests,
                p.bytes_in,
                p.bytes_out,
                p.gate_refusals,
                p.tls_failures
            );
        }
        let w = &self.ws;
        let _ = write!(
            out,
            "],\"ws\":{{\"sockets_open\":{},\"upgrades\":{},\"handshakes_refused\":{},\
             \"messages_in\":{},\"messages_out\":{},\"protocol_errors\":{},\
             \"broadcast_dropped\":{},\"slow_closed\":{},\"ping_timeouts\":{},\
             \"last_rtt_us\":{},\"max_recipient_backlog\":{}}}}}",
            w.sockets_open,
            w.upgrades,
            w.handshakes_refused,
            w.messages_in,
            w.messages_out,
            w.protocol_errors,
            w.broadcast_dropped,
            w.slow_closed,
            w.ping_timeouts,
            w.last_rtt_us,
            w.max_recipient_backlog
        );
    }
}

/// Where `/status` gets its numbers. The server implements it to report
/// every protocol it runs; [`ProcessStatus`] is the standalone default.
///
/// Called once per status interval (not per client) on the reactor thread:
/// it must not block.
pub trait StatusSource {
    /// The snapshot to push now. `ws` holds the WebSocket module's own
    /// counters ([`WsStats::protocol_status`] turns them into its line).
    fn snapshot(&mut self, ctx: &Context<'_>, ws: &WsStats) -> StatusSnapshot;
}

/// The default [`StatusSource`]: the WebSocket line, uptime since this
/// value was made, and the process's resident memory.
#[derive(Clone, Debug)]
pub struct ProcessStatus {
    started: Instant,
}

impl ProcessStatus {
    /// A source whose uptime counts from now.
    pub fn new() -> ProcessStatus {
        ProcessStatus {
            started: Instant::now(),
        }
    }

    /// A source whose uptime counts from `started` (the server's start).
    pub fn since(started: Instant) -> ProcessStatus {
        ProcessStatus { started }
    }
}

impl Default for ProcessStatus {
    fn default() -> Self {
        ProcessStatus::new()
    }
}

impl StatusSource for ProcessStatus {
    fn snapshot(&mut self, ctx: &Context<'_>, ws: &WsStats) -> StatusSnapshot {
        StatusSnapshot {
            uptime: ctx.now().saturating_duration_since(self.started),
            rss_bytes: process_rss_bytes(),
            protocols: vec![ws.protocol_status(ctx)],
            ws: ws.clone(),
        }
    }
}

/// The process's resident set size, from `VmRSS` in `/proc/self/status`
/// (in kB there, so no page-size lookup is needed); `None` off Linux.
/// A small read of a kernel file: fine once a second, not per message.
pub fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// `VmRSS:     1234 kB` → bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed_in_bytes() {
        let status = "Name:\ttorsion\nVmPeak:\t  9999 kB\nVmRSS:\t    1234 kB\nThreads: 1\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: lots kB\n"), None);
    }

    #[test]
    fn rss_of_this_process_is_plausible() {
        let rss = process_rss_bytes().unwrap();
        assert!(rss > 100 * 1024, "{rss}");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_string("a\"b\\c\nd\u{1}é", &mut out);
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn listener_counters_add_up_across_listeners() {
        let one = ListenerStats {
            accepted: 10,
            active: 2,
            bytes_in: 100,
            bytes_out: 200,
            refused: 1,
            refused_with_reply: 2,
            tls_failures: 3,
            ..ListenerStats::default()
        };
        let mut line = ProtocolStatus::from_listener("gemini", &one);
        assert_eq!(
            (
                line.open,
                line.connections,
                line.gate_refusals,
                line.tls_failures
            ),
            (2, 10, 3, 3)
        );
        line.add_listener(&one);
        assert_eq!(
            (
                line.bytes_in,
                line.bytes_out,
                line.gate_refusals,
                line.tls_failures
            ),
            (200, 400, 6, 6)
        );
    }

    #[test]
    fn snapshot_json_has_every_field() {
        let snap = StatusSnapshot {
            uptime: Duration::from_millis(12_500),
            rss_bytes: None,
            protocols: vec![
                ProtocolStatus {
                    name: "gemini".into(),
                    open: 1,
                    connections: 2,
                    requests: 3,
                    bytes_in: 4,
                    bytes_out: 5,
                    gate_refusals: 6,
                    tls_failures: 7,
                },
                ProtocolStatus {
                    name: "web\"socket".into(),
                    ..ProtocolStatus::default()
                },
            ],
            ws: WsStats {
                broadcast_dropped: 9,
                ..WsStats::default()
            },
        };
        let mut out = String::new();
        snap.write_json(&mut out);
        assert!(out.starts_with("{\"time_ms\":"), "{out}");
        assert!(
            out.contains("\"uptime_s\":12.5,\"rss_bytes\":null,"),
            "{out}"
        );
        assert!(out.contains(
            "{\"name\":\"gemini\",\"open\":1,\"connections\":2,\"requests\":3,\
             \"bytes_in\":4,\"bytes_out\":5,\"gate_refusals\":6,\"tls_failures\":7}"
        ));
        assert!(out.contains("\"name\":\"web\\\"socket\""), "{out}");
        assert!(out.contains("\"broadcast_dropped\":9"), "{out}");
        assert!(out.ends_with("}}"), "{out}");
        // Balanced braces and brackets: a cheap well-formedness check.
        let depth = out.chars().fold(0i32, |d, c| match c {
            '{' | '[' => d + 1,
            '}' | ']' => d - 1,
            _ => d,
        });
        assert_eq!(depth, 0);
    }

    #[test]
    fn listener_stats_fill_a_line() {
        let l = ListenerStats {
            accepted: 10,
            refused: 2,
            refused_with_reply: 1,
            active: 3,
            bytes_in: 100,
            bytes_out: 200,
            ..ListenerStats::default()
        };
        let mut p = ProtocolStatus::from_listener("http", &l);
        assert_eq!((p.open, p.connections, p.gate_refusals), (3, 10, 3));
        p.add_listener(&l);
        assert_eq!((p.bytes_in, p.bytes_out, p.gate_refusals), (200, 400, 6));
    }
}
