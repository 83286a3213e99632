//! `torsion bench` command line: one flag table drives both the parser and
//! `--help`, as in `server/cli.rs`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Most concurrent connections: beyond this the descriptor limit and the
/// ephemeral port range run out long before the server does.
pub const MAX_CONNECTIONS: usize = 100_000;

/// Most messages in flight per WebSocket/TCP connection.
pub const MAX_PIPELINE: usize = 4096;

/// Largest WebSocket/TCP message: larger payloads measure memory bandwidth,
/// not the server.
pub const MAX_SIZE: usize = 16 * 1024 * 1024;

/// Default concurrency.
pub const DEFAULT_CONNECTIONS: usize = 64;

/// Default measured duration when neither `-d` nor `-n` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// Default message size for WebSocket and TCP echo.
pub const DEFAULT_SIZE: usize = 64;

/// Default time an operation may take before it counts as timed out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest duration accepted for any time option (a day).
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);

/// Everything a run needs to know from the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The target URL as given.
    pub url: String,
    /// Concurrent connections (workers).
    pub connections: usize,
    /// Measured duration (`None` with `-n`).
    pub duration: Option<Duration>,
    /// Operations to measure (`-n`).
    pub requests: Option<u64>,
    /// Unmeasured time before the measurement starts.
    pub warmup: Duration,
    /// Fixed arrival rate, operations per second (open loop).
    pub rate: Option<f64>,
    /// Message size (WebSocket, TCP echo); `None` when not given.
    pub size: Option<usize>,
    /// Messages in flight per connection (WebSocket, TCP echo).
    pub pipeline: usize,
    /// Measure connection setup only (WebSocket, TCP).
    pub connect_only: bool,
    /// One request per HTTP connection (`Connection: close`).
    pub close: bool,
    /// Resume TLS sessions instead of full handshakes.
    pub resume: bool,
    /// Verify server certificates (against `cafile`).
    pub verify: bool,
    /// CA bundle for `--verify`.
    pub cafile: PathBuf,
    /// How long an operation may take.
    pub timeout: Duration,
    /// Status classes (first digit) that count as success.
    pub expect: Option<[bool; 10]>,
    /// Print only the JSON object on stdout.
    pub json: bool,
    /// The server's pid, for its CPU per operation.
    pub server_pid: Option<u32>,
    /// Every successful response body must be this file's bytes.
    pub expect_body: Option<PathBuf>,
    /// Every successful response body must be this many bytes long.
    pub expect_bytes: Option<u64>,
}

/// What to do.
#[derive(Debug)]
pub enum Action {
    /// Run the benchmark.
    Run(Box<Options>),
    /// Print this text (help) and exit 0.
    Print(String),
}

use crate::flags::Flag;
pub use crate::flags::UsageError;

/// The flag table: the single source for parsing and for `--help`.
const FLAGS: &[Flag] = &[
    Flag {
        long: "connections",
        short: Some('c'),
        value: Some("N"),
        group: "",
        help: "Concurrent connections [default: 64]. For gemini://, --close and --connect-only each does one operation at a time on a fresh connection.",
    },
    Flag {
        long: "duration",
        short: Some('d'),
        value: Some("TIME"),
        group: "",
        help: "Measure for TIME (10s, 500ms, 1m) [default: 10s unless -n is given].",
    },
    Flag {
        long: "requests",
        short: Some('n'),
        value: Some("N"),
        group: "",
        help: "Measure exactly N operations (requests, messages or connections), then stop.",
    },
    Flag {
        long: "warmup",
        short: None,
        value: Some("TIME"),
        group: "",
        help: "Run for TIME before measuring; nothing from it is counted [default: 0].",
    },
    Flag {
        long: "rate",
        short: None,
        value: Some("R"),
        group: "",
        help: "Open loop: start R operations per second on a fixed schedule (spread over the connections) and measure latency from the scheduled start, so stalls are not hidden (no coordinated omission).",
    },
    Flag {
        long: "size",
        short: None,
        value: Some("BYTES"),
        group: "",
        help: "Message size for ws://, wss:// and tcp:// echo [default: 64]. For tcp://, giving it selects echo instead of connect-only.",
    },
    Flag {
        long: "pipeline",
        short: None,
        value: Some("N"),
        group: "",
        help: "Messages kept in flight per connection for ws:// and tcp:// echo [default: 1].",
    },
    Flag {
        long: "connect-only",
        short: None,
        value: None,
        group: "",
        help: "ws://, wss://: connect, upgrade, close (new connections per second). tcp://: connect and close (the default for tcp:// without --size).",
    },
    Flag {
        long: "close",
        short: None,
        value: None,
        group: "",
        help: "http://, https://: one request per connection (Connection: close) instead of keep-alive.",
    },
    Flag {
        long: "resume",
        short: None,
        value: None,
        group: "",
        help: "Resume TLS sessions. By default every gemini:// request (and every TLS connection) does a full handshake.",
    },
    Flag {
        long: "insecure",
        short: None,
        value: None,
        group: "",
        help: "Do not verify server certificates (the default: benchmarks usually face self-signed certificates).",
    },
    Flag {
        long: "verify",
        short: None,
        value: None,
        group: "",
        help: "Verify server certificates against --cafile.",
    },
    Flag {
        long: "cafile",
        short: None,
        value: Some("FILE"),
        group: "",
        help: "CA bundle for --verify [default: /etc/ssl/certs/ca-certificates.crt].",
    },
    Flag {
        long: "timeout",
        short: None,
        value: Some("TIME"),
        group: "",
        help: "An operation (or connect + TLS handshake) taking longer counts as a timeout [default: 10s].",
    },
    Flag {
        long: "expect",
        short: None,
        value: Some("CLASSES"),
        group: "",
        help: "Status classes counted as success, as first digits: e.g. 2 or 23 [default: 23]. Others are counted as 'unexpected status' errors.",
    },
    Flag {
        long: "expect-body",
        short: None,
        value: Some("FILE"),
        group: "",
        help: "gemini://, http://, https://: the body of every response whose status class counts as success (--expect) must be exactly FILE's bytes; compared as it streams in, nothing kept. Mismatches (a byte, or the length) count as 'body' errors and make the exit code 3.",
    },
    Flag {
        long: "expect-bytes",
        short: None,
        value: Some("N"),
        group: "",
        help: "As --expect-body, checking only that each such body is N bytes long (with --expect-body too, N must be FILE's length).",
    },
    Flag {
        long: "json",
        short: None,
        value: None,
        group: "",
        help: "Print only one JSON object on stdout (the progress line, if any, stays on stderr).",
    },
    Flag {
        long: "server-pid",
        short: None,
        value: Some("PID"),
        group: "",
        help: "The server's pid, to report its CPU time per operation. Default: the process listening on the target's port, when the target is on this host.",
    },
    Flag {
        long: "help",
        short: Some('h'),
        value: None,
        group: "",
        help: "Print this help.",
    },
];

/// The default CA bundle for `--verify`.
pub const DEFAULT_CAFILE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn help_text() -> String {
    let mut s = String::from(
        "torsion bench — a connection-throughput load generator on torsion's reactor\n\n\
         USAGE: torsion bench [OPTIONS] URL\n\n\
         URL is one of:\n  \
         gemini://HOST[:PORT]/PATH   a fresh TLS connection per request, body read to EOF\n  \
         http://HOST[:PORT]/PATH     HTTP/1.1 GET, keep-alive (or --close); follows nothing\n  \
         https://HOST[:PORT]/PATH    the same over TLS\n  \
         ws://HOST[:PORT]/PATH       WebSocket echo endpoint: --pipeline binary messages of --size bytes\n  \
         wss://HOST[:PORT]/PATH      the same over TLS\n  \
         tcp://HOST:PORT             connect and close, or echo with --size\n\n\
         The host is resolved once, at start. Errors are counted, never fatal.\n\n\
         OPTIONS:\n",
    );
    crate::flags::write_help(FLAGS, &mut s);
    s.push_str(
        "\nOUTPUT:\n  A table (throughput, latency p50/p90/p99/p99.9/max, status classes, errors by kind,\n  \
         wire bytes, CPU per operation of the harness and of the server) or, with --json, one\n  \
         JSON object. Compare servers by their CPU per operation: one load core may not\n  \
         saturate one server core.\n\
         \nEXIT CODES:\n  0  the run finished (even with errors, except body mismatches)\n  1  could not start (resolution, TLS setup, --expect-body unreadable)\n  2  bad command line\n  3  the run finished, and some response body differed from --expect-body / --expect-bytes\n",
    );
    s
}

/// Parses `10s`, `500ms`, `1m`, `2h`, `1.5s` or a bare number of seconds
/// (the config file's syntax), up to [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    crate::config::parse_duration(s).filter(|d| *d <= MAX_DURATION)
}

/// Parses `--expect`: a list of status-class digits like `2`, `23`, `2,3`.
pub fn parse_expect(s: &str) -> Option<[bool; 10]> {
    let mut classes = [false; 10];
    let mut any = false;
    for c in s.chars() {
        match c {
            '0'..='9' => {
                let i = c as usize - '0' as usize;
                if let Some(slot) = classes.get_mut(i) {
                    *slot = true;
                }
                any = true;
            }
            ',' | ' ' | 'x' | 'X' => {}
            _ => return None,
        }
    }
    any.then_some(classes)
}

/// Parses the arguments after `torsion bench`.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action, UsageError> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut o = Options {
        url: String::new(),
        connections: DEFAULT_CONNECTIONS,
        duration: None,
        requests: None,
        warmup: Duration::ZERO,
        rate: None,
        size: None,
        pipeline: 1,
        connect_only: false,
        close: false,
        resume: false,
        verify: false,
        cafile: PathBuf::from(DEFAULT_CAFILE),
        timeout: DEFAULT_TIMEOUT,
        expect: None,
        json: false,
        server_pid: None,
        expect_body: None,
        expect_bytes: None,
    };
    let err = |e: lexopt::Error| UsageError(e.to_string());
    let mut url: Option<String> = None;
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Short('c') | Long("connections") => {
                o.connections = number(
                    &value(&mut parser, "connections")?,
                    "connections",
                    1,
                    MAX_CONNECTIONS,
                )?;
            }
            Short('d') | Long("duration") => {
                o.duration = Some(time(&value(&mut parser, "duration")?, "duration")?)
                    .filter(|d| !d.is_zero())
                    .or(Some(Duration::from_millis(1)));
            }
            Short('n') | Long("requests") => {
                let n = number(&value(&mut parser, "requests")?, "requests", 1, usize::MAX)?;
                o.requests = Some(n as u64);
            }
            Long("warmup") => o.warmup = time(&value(&mut parser, "warmup")?, "warmup")?,
            Long("rate") => {
                let v = value(&mut parser, "rate")?;
                let r: f64 = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| r.is_finite() && *r > 0.0 && *r <= 1e9)
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--rate: {v:?} is not a rate per second (0 < R ≤ 1e9)"
                        ))
                    })?;
                o.rate = Some(r);
            }
            Long("size") => {
                o.size = Some(number(&value(&mut parser, "size")?, "size", 1, MAX_SIZE)?)
            }
            Long("pipeline") => {
                o.pipeline = number(
                    &value(&mut parser, "pipeline")?,
                    "pipeline",
                    1,
                    MAX_PIPELINE,
                )?
            }
            Long("connect-only") => o.connect_only = true,
            Long("close") => o.close = true,
            Long("resume") => o.resume = true,
            Long("insecure") => o.verify = false,
            Long("verify") => o.verify = true,
            Long("cafile") => o.cafile = PathBuf::from(value(&mut parser, "cafile")?),
            Long("timeout") => {
                o.timeout =
                    time(&value(&mut parser, "timeout")?, "timeout")?.max(Duration::from_millis(1));
            }
            Long("expect") => {
                let v = value(&mut parser, "expect")?;
                o.expect = Some(parse_expect(&v).ok_or_else(|| {
                    UsageError(format!(
                        "--expect: {v:?} is not a list of status classes like 23"
                    ))
                })?);
            }
            Long("expect-body") => {
                o.expect_body = Some(PathBuf::from(parser.value().map_err(err)?));
            }
            Long("expect-bytes") => {
                let v = value(&mut parser, "expect-bytes")?;
                o.expect_bytes = Some(v.trim().parse::<u64>().map_err(|_| {
                    UsageError(format!("--expect-bytes: {v:?} is not a byte count"))
                })?);
            }
            Long("json") => o.json = true,
            Long("server-pid") => {
                let pid = number(
                    &value(&mut parser, "server-pid")?,
                    "server-pid",
                    1,
                    u32::MAX as usize,
                )?;
                o.server_pid = u32::try_from(pid).ok();
            }
            Short('h') | Long("help") => return Ok(Action::Print(help_text())),
            Value(v) if url.is_none() => {
                url = Some(
                    v.into_string()
                        .map_err(|_| UsageError("the URL is not valid UTF-8".into()))?,
                );
            }
            other => return Err(UsageError(other.unexpected().to_string())),
        }
    }
    o.url = url.ok_or_else(|| UsageError("missing URL (e.g. gemini://localhost/)".into()))?;
    if o.requests.is_some() && o.duration.is_some() {
        return Err(UsageError("give -d or -n, not both".into()));
    }
    if o.requests.is_none() && o.duration.is_none() {
        o.duration = Some(DEFAULT_DURATION);
    }
    Ok(Action::Run(Box::new(o)))
}

/// The value of the current flag, as UTF-8.
fn value(parser: &mut lexopt::Parser, name: &str) -> Result<String, UsageError> {
    parser
        .value()
        .map_err(|e| UsageError(e.to_string()))?
        .into_string()
        .map_err(|_| UsageError(format!("--{name}: not valid UTF-8")))
}

fn number(v: &str, name: &str, min: usize, max: usize) -> Result<usize, UsageError> {
    v.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            UsageError(format!(
                "--{name}: {v:?} is not a number from {min} to {max}"
            ))
        })
}

fn time(v: &str, name: &str) -> Result<Duration, UsageError> {
    parse_duration(v).ok_or_else(|| {
        UsageError(format!(
            "--{name}: {v:?} is not a duration like 10s, 500ms or 1m"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn run(a: &[&str]) -> Options {
        match parse(args(a)) {
            Ok(Action::Run(o)) => *o,
            other => panic!("expected options, got {other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "-1s", "abc", "1x", "NaNs", "inf", "2d", "100000h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn expect_classes() {
        let e = parse_expect("23").unwrap();
        assert!(e[2] && e[3] && !e[4]);
        let e = parse_expect("2xx,3xx").unwrap();
        assert!(e[2] && e[3] && !e[5]);
        assert_eq!(parse_expect(""), None);
        assert_eq!(parse_expect("ok"), None);
    }

    #[test]
    fn defaults() {
        let o = run(&["gemini://localhost/"]);
        assert_eq!(o.url, "gemini://localhost/");
        assert_eq!(o.connections, 64);
        assert_eq!(o.duration, Some(DEFAULT_DURATION));
        assert_eq!(o.requests, None);
        assert_eq!(o.pipeline, 1);
        assert!(!o.verify && !o.json && !o.resume);
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        assert_eq!(o.expect_body, None);
        assert_eq!(o.expect_bytes, None);
    }

    #[test]
    fn expect_body_and_bytes() {
        let o = run(&[
            "--expect-body",
            "/srv/big.bin",
            "--expect-bytes",
            "8388608",
            "gemini://h/big.bin",
        ]);
        assert_eq!(o.expect_body, Some(PathBuf::from("/srv/big.bin")));
        assert_eq!(o.expect_bytes, Some(8_388_608));
        assert_eq!(run(&["--expect-bytes", "0", "x"]).expect_bytes, Some(0));
        for bad in [
            &["--expect-bytes", "-1", "x"][..],
            &["--expect-bytes", "lots", "x"],
            &["--expect-bytes", "", "x"],
            &["--expect-bytes"],
            &["--expect-body"],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?}");
        }
        let Ok(Action::Print(h)) = parse(args(&["--help"])) else {
            panic!("expected help")
        };
        assert!(h.contains("  3  "), "exit code 3 documented: {h}");
    }

    #[test]
    fn every_flag() {
        let o = run(&[
            "-c",
            "8",
            "-n",
            "1000",
            "--warmup",
            "1s",
            "--rate",
            "250.5",
            "--size",
            "128",
            "--pipeline",
            "8",
            "--connect-only",
            "--close",
            "--resume",
            "--verify",
            "--cafile",
            "/x.pem",
            "--timeout",
            "2s",
            "--expect",
            "2",
            "--json",
            "--server-pid",
            "42",
            "--expect-body",
            "/ref",
            "--expect-bytes",
            "7",
            "ws://h/echo",
        ]);
        assert_eq!(o.connections, 8);
        assert_eq!(o.requests, Some(1000));
        assert_eq!(o.duration, None);
        assert_eq!(o.warmup, Duration::from_secs(1));
        assert_eq!(o.rate, Some(250.5));
        assert_eq!(o.size, Some(128));
        assert_eq!(o.pipeline, 8);
        assert!(o.connect_only && o.close && o.resume && o.verify && o.json);
        assert_eq!(o.cafile, PathBuf::from("/x.pem"));
        assert_eq!(o.timeout, Duration::from_secs(2));
        assert!(o.expect.unwrap()[2]);
        assert_eq!(o.server_pid, Some(42));
        assert_eq!(o.expect_body, Some(PathBuf::from("/ref")));
        assert_eq!(o.expect_bytes, Some(7));
        assert_eq!(o.url, "ws://h/echo");
        assert!(!run(&["--verify", "--insecure", "x"]).verify);
    }

    #[test]
    fn rejects_bad_lines() {
        for bad in [
            &[][..],
            &["-c", "0", "x"],
            &["-c", "lots", "x"],
            &["-d", "forever", "x"],
            &["-n", "0", "x"],
            &["-n", "5", "-d", "1s", "x"],
            &["--rate", "0", "x"],
            &["--rate", "-3", "x"],
            &["--pipeline", "0", "x"],
            &["--size", "0", "x"],
            &["--expect", "ok", "x"],
            &["--bogus", "x"],
            &["x", "y"],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_lists_every_flag() {
        let Ok(Action::Print(h)) = parse(args(&["--help"])) else {
            panic!("expected help")
        };
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{} missing", f.long);
        }
    }
}
