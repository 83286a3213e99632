//! `torsion bench` against small servers started in this test process: each
//! a reactor on its own thread with a minimal protocol written here (an
//! HTTP responder, an echo, a TLS Gemini-ish responder, a WebSocket echo
//! built from torsion's codecs, and misbehaving ones), on port 0.
//!
//! Checked: with `-n` the harness reports exactly the operations the server
//! counted; errors (refused, closed early, garbage, silence) are counted,
//! not fatal; `--rate` issues its operations within 5% (and measures its
//! rate within 15%: the window's end can be late); the JSON output parses.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use torsion_protocols::websocket::{
    accept_key, frame::encode_frame, DecoderConfig, Event, MessageDecoder, OpCode, Role,
};
use torsion_reactor::tls::{CertSource, CertStore, ServerTlsConfig};
use torsion_reactor::{ListenOptions, PeerInfo, Protocol, Reactor, ReactorHandle, Transport};

const BIN: &str = env!("CARGO_BIN_EXE_torsion");

/// A reactor serving one listener on a thread; stopped on drop.
struct TestServer {
    port: u16,
    count: Arc<AtomicU64>,
    handle: ReactorHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a listener on 127.0.0.1:0 whose protocols `make` builds; each
    /// gets the shared counter.
    fn start<F>(tls: Option<ServerTlsConfig>, make: F) -> TestServer
    where
        F: Fn(Arc<AtomicU64>) -> Box<dyn Protocol> + Send + 'static,
    {
        let count = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let c = Arc::clone(&count);
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().unwrap();
            let options = ListenOptions {
                tls,
                ..ListenOptions::default()
            };
            let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
            let id = reactor
                .listen_with(addr, move |_: &PeerInfo| make(Arc::clone(&c)), options)
                .unwrap();
            let port = match reactor.local_addr(id) {
                Some(torsion_reactor::Address::Tcp(a)) => a.port(),
                other => panic!("unexpected address {other:?}"),
            };
            tx.send((port, reactor.handle())).unwrap();
            reactor.run().unwrap();
        });
        let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        TestServer {
            port,
            count,
            handle,
            thread: Some(thread),
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts request heads (`\r\n\r\n`) across reads and answers each with a
/// small 200.
struct HttpResponder {
    count: Arc<AtomicU64>,
    tail: u32,
}

impl Protocol for HttpResponder {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        let mut close = false;
        for &b in data.iter() {
            self.tail = (self.tail << 8) | u32::from(b);
            if self.tail == 0x0d0a_0d0a {
                self.count.fetch_add(1, Ordering::SeqCst);
                t.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
            }
        }
        // `--close` requests say so; answer by closing after the reply.
        if data
            .windows(17)
            .any(|w| w.eq_ignore_ascii_case(b"connection: close"))
        {
            close = true;
        }
        if close {
            t.close();
        }
    }
}

/// Echoes bytes, counting them.
struct Echo {
    count: Arc<AtomicU64>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, _t: &mut Transport<'_>) {}
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        self.count.fetch_add(data.len() as u64, Ordering::SeqCst);
        t.write(data);
    }
}

/// Counts connections, says nothing.
struct Silent {
    count: Arc<AtomicU64>,
}

impl Protocol for Silent {
    fn connection_made(&mut self, _t: &mut Transport<'_>) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}
}

/// Answers anything with garbage, then closes.
struct Garbage;

impl Protocol for Garbage {
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &mut [u8]) {
        t.write(b"\x00\x01 this is not a response\r\n\r\n");
        t.close();
    }
}

/// Closes as soon as a request arrives, without answering.
struct Hangup;

impl Protocol for Hangup {
    fn data_received(&mut self, t: &mut Transport<'_>, _data: &mut [u8]) {
        t.close();
    }
}

/// A Gemini-ish responder: after a request line, `20 text/gemini\r\nhello`
/// and close.
struct GeminiResponder {
    count: Arc<AtomicU64>,
    done: bool,
}

impl Protocol for GeminiResponder {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if !self.done && data.contains(&b'\n') {
            self.done = true;
            self.count.fetch_add(1, Ordering::SeqCst);
            t.write(b"20 text/gemini\r\nhello");
            t.close();
        }
    }
}

/// A WebSocket echo from torsion's codecs: upgrade, then echo binary
/// messages (counted), answer Close and close.
struct WsEcho {
    count: Arc<AtomicU64>,
    head: Vec<u8>,
    upgraded: bool,
    decoder: MessageDecoder,
    out: Vec<u8>,
}

impl Protocol for WsEcho {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        let mut input: &[u8] = data;
        if !self.upgraded {
            self.head.extend_from_slice(input);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.head[..end]).to_string();
            let key = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default();
            t.write(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept_key(&key)
                )
                .as_bytes(),
            );
            self.upgraded = true;
            let rest = self.head.split_off(end + 4);
            self.head.clear();
            let mut input: &[u8] = &rest;
            self.frames(t, &mut input);
            return;
        }
        self.frames(t, &mut input);
    }
}

impl WsEcho {
    fn frames(&mut self, t: &mut Transport<'_>, input: &mut &[u8]) {
        loop {
            match self.decoder.next(input) {
                Ok(Some(Event::Binary(p))) => {
                    self.count.fetch_add(1, Ordering::SeqCst);
                    self.out.clear();
                    encode_frame(true, OpCode::Binary, p, None, &mut self.out);
                    t.write(&self.out);
                }
                Ok(Some(Event::Close(_))) => {
                    self.count.fetch_add(1, Ordering::SeqCst);
                    self.out.clear();
                    encode_frame(
                        true,
                        OpCode::Close,
                        &1000u16.to_be_bytes(),
                        None,
                        &mut self.out,
                    );
                    t.write(&self.out);
                    t.close();
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) => {
                    t.abort();
                    return;
                }
            }
        }
    }
}

fn ws_echo(count: Arc<AtomicU64>) -> Box<dyn Protocol> {
    Box::new(WsEcho {
        count,
        head: Vec::new(),
        upgraded: false,
        decoder: MessageDecoder::new(DecoderConfig {
            role: Role::Server,
            ..DecoderConfig::default()
        }),
        out: Vec::new(),
    })
}

fn tls_config() -> ServerTlsConfig {
    // A directory per call: tests run in parallel, and two generating into
    // one directory would race on the same temporary file.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("torsion-bench-cli-{}-{n}", std::process::id()));
    let store = CertStore::new();
    store
        .add_default(
            &["localhost"],
            CertSource::Generated {
                state_dir: dir,
                hostnames: vec!["localhost".into()],
            },
        )
        .unwrap();
    ServerTlsConfig::builder(store).build().unwrap()
}

/// Runs `torsion bench ARGS`; fails the test if it takes over 15 s.
fn bench(args: &[&str]) -> Output {
    let start = Instant::now();
    let out = Command::new(BIN)
        .arg("bench")
        .args(args)
        .output()
        .expect("run torsion bench");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "bench took {:?}",
        start.elapsed()
    );
    out
}

/// Runs `torsion bench --json ARGS`, checks it exited 0 and printed one
/// JSON object, and returns it.
fn bench_json(args: &[&str]) -> Json {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = bench(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim().lines().count(), 1, "one line: {stdout}");
    Json::parse(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

// --- A small JSON parser, enough to check the output and read fields. ---

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(s: &str) -> Result<Json, String> {
        let b = s.as_bytes();
        let mut i = 0;
        let v = value(b, &mut i)?;
        skip_ws(b, &mut i);
        if i != b.len() {
            return Err(format!("trailing bytes at {i}"));
        }
        Ok(v)
    }

    fn get(&self, path: &str) -> &Json {
        let mut v = self;
        for key in path.split('.') {
            v = match v {
                Json::Obj(fields) => fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .unwrap_or_else(|| panic!("no {key} in {v:?}")),
                other => panic!("{key}: not an object: {other:?}"),
            };
        }
        v
    }

    fn num(&self, path: &str) -> f64 {
        match self.get(path) {
            Json::Num(n) => *n,
            other => panic!("{path}: not a number: {other:?}"),
        }
    }

    fn int(&self, path: &str) -> u64 {
        self.num(path) as u64
    }
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while b.get(*i).is_some_and(|c| c.is_ascii_whitespace()) {
        *i += 1;
    }
}

fn value(b: &[u8], i: &mut usize) -> Result<Json, String> {
    skip_ws(b, i);
    let lit = |i: &mut usize, word: &str, v: Json| {
        if b[*i..].starts_with(word.as_bytes()) {
            *i += word.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {i}"))
        }
    };
    match b.get(*i) {
        Some(b'{') => {
            *i += 1;
            let mut fields = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(Json::Obj(fields));
            }
            loop {
                skip_ws(b, i);
                let Json::Str(k) = value(b, i)? else {
                    return Err(format!("key expected at {i}"));
                };
                skip_ws(b, i);
                if b.get(*i) != Some(&b':') {
                    return Err(format!(": expected at {i}"));
                }
                *i += 1;
                fields.push((k, value(b, i)?));
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(Json::Obj(fields));
                    }
                    _ => return Err(format!(", or }} expected at {i}")),
                }
            }
        }
        Some(b'[') => {
            *i += 1;
            let mut items = Vec::new();
            skip_ws(b, i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Json::Arr(items));
            }
            loop {
                items.push(value(b, i)?);
                skip_ws(b, i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Json::Arr(items));
                    }
                    _ => return Err(format!(", or ] expected at {i}")),
                }
            }
        }
        Some(b'"') => {
            *i += 1;
            let mut s = String::new();
            loop {
                match b.get(*i) {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => {
                        *i += 1;
                        return Ok(Json::Str(s));
                    }
                    Some(b'\\') => {
                        let esc = b.get(*i + 1).copied().ok_or("bad escape")?;
                        *i += 2;
                        match esc {
                            b'"' => s.push('"'),
                            b'\\' => s.push('\\'),
                            b'/' => s.push('/'),
                            b'n' => s.push('\n'),
                            b'r' => s.push('\r'),
                            b't' => s.push('\t'),
                            b'b' => s.push('\u{8}'),
                            b'f' => s.push('\u{c}'),
                            b'u' => {
                                let hex =
                                    std::str::from_utf8(b.get(*i..*i + 4).ok_or("short \\u")?)
                                        .map_err(|e| e.to_string())?;
                                let c = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                s.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                *i += 4;
                            }
                            _ => return Err(format!("bad escape at {i}")),
                        }
                    }
                    Some(&c) if c < 0x20 => return Err(format!("control byte in string at {i}")),
                    Some(_) => {
                        let rest = std::str::from_utf8(&b[*i..]).map_err(|e| e.to_string())?;
                        let c = rest.chars().next().ok_or("eof")?;
                        s.push(c);
                        *i += c.len_utf8();
                    }
                }
            }
        }
        Some(b't') => lit(i, "true", Json::Bool(true)),
        Some(b'f') => lit(i, "false", Json::Bool(false)),
        Some(b'n') => lit(i, "null", Json::Null),
        Some(c) if *c == b'-' || c.is_ascii_digit() => {
            let start = *i;
            while b
                .get(*i)
                .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
            {
                *i += 1;
            }
            let text = std::str::from_utf8(&b[start..*i]).map_err(|e| e.to_string())?;
            text.parse()
                .map(Json::Num)
                .map_err(|_| format!("bad number {text:?}"))
        }
        _ => Err(format!("value expected at {i}")),
    }
}

fn url(scheme: &str, port: u16, path: &str) -> String {
    format!("{scheme}://127.0.0.1:{port}{path}")
}

// --- The tests. ---

#[test]
fn json_parser_self_check() {
    let v = Json::parse(r#"{"a":[1,2.5,-3e2],"b":{"c":"x\"\u0041"},"d":null,"e":true}"#).unwrap();
    assert_eq!(
        v.get("a"),
        &Json::Arr(vec![Json::Num(1.0), Json::Num(2.5), Json::Num(-300.0)])
    );
    assert_eq!(v.get("b.c"), &Json::Str("x\"A".into()));
    assert_eq!(v.get("d"), &Json::Null);
    assert_eq!(v.get("e"), &Json::Bool(true));
    for bad in ["{", "[1,]", "{\"a\"}", "\"x", "tru", "{} x", "{\"a\":1,}"] {
        assert!(Json::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn http_keep_alive_reports_exactly_what_the_server_counted() {
    let server = TestServer::start(None, |count| Box::new(HttpResponder { count, tail: 0 }));
    let j = bench_json(&["-n", "500", "-c", "8", &url("http", server.port, "/")]);
    assert_eq!(j.int("ops"), 500);
    assert_eq!(server.count(), 500);
    assert_eq!(j.int("status.2"), 500);
    assert_eq!(j.int("errors.total"), 0);
    assert_eq!(j.int("latency_us.count"), 500);
    assert!(j.num("latency_us.p50") > 0.0);
    assert!(j.num("latency_us.p99") >= j.num("latency_us.p50"));
    assert!(j.int("bytes.in") >= 500 * 43);
    assert!(j.num("cpu.harness_s") >= 0.0);
}

#[test]
fn http_close_opens_a_connection_per_request() {
    let server = TestServer::start(None, |count| Box::new(HttpResponder { count, tail: 0 }));
    let j = bench_json(&[
        "-n",
        "200",
        "-c",
        "4",
        "--close",
        &url("http", server.port, "/x"),
    ]);
    assert_eq!(j.int("ops"), 200);
    assert_eq!(server.count(), 200);
    assert_eq!(j.int("errors.total"), 0);
}

#[test]
fn gemini_over_tls_reports_exactly_what_the_server_counted() {
    let server = TestServer::start(Some(tls_config()), |count| {
        Box::new(GeminiResponder { count, done: false })
    });
    let j = bench_json(&["-n", "100", "-c", "4", &url("gemini", server.port, "/")]);
    assert_eq!(j.int("ops"), 100, "{j:?}");
    assert_eq!(server.count(), 100);
    assert_eq!(j.int("status.2"), 100);
    assert_eq!(j.int("errors.total"), 0);
}

#[test]
fn websocket_echo_with_pipeline() {
    let server = TestServer::start(None, ws_echo);
    let j = bench_json(&[
        "-n",
        "2000",
        "-c",
        "4",
        "--pipeline",
        "8",
        "--size",
        "64",
        &url("ws", server.port, "/echo"),
    ]);
    assert_eq!(j.int("ops"), 2000, "{j:?}");
    assert_eq!(j.int("errors.total"), 0);
    // The server counted every message, and nothing else (no close).
    assert_eq!(server.count(), 2000);
}

#[test]
fn websocket_connect_only() {
    let server = TestServer::start(None, ws_echo);
    let j = bench_json(&[
        "-n",
        "100",
        "-c",
        "4",
        "--connect-only",
        &url("ws", server.port, "/echo"),
    ]);
    assert_eq!(j.int("ops"), 100, "{j:?}");
    // Each connection's close was counted by the server.
    assert_eq!(server.count(), 100);
    assert_eq!(j.int("errors.total"), 0);
}

#[test]
fn tcp_echo_and_connect_only() {
    let server = TestServer::start(None, |count| Box::new(Echo { count }));
    let j = bench_json(&[
        "-n",
        "1000",
        "-c",
        "4",
        "--size",
        "100",
        &url("tcp", server.port, ""),
    ]);
    assert_eq!(j.int("ops"), 1000);
    assert_eq!(server.count(), 1000 * 100);
    let silent = TestServer::start(None, |count| Box::new(Silent { count }));
    let j = bench_json(&["-n", "300", "-c", "8", &url("tcp", silent.port, "")]);
    assert_eq!(j.int("ops"), 300);
    assert_eq!(j.get("unit"), &Json::Str("connections".into()));
    // Accepts may trail the client's connects by a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while silent.count() < 300 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(silent.count(), 300);
}

#[test]
fn a_refused_port_is_counted_not_fatal() {
    // Bound but never listening, for the whole run: connections to it are
    // refused (reset), and no other test's bind(0) can take the port.
    let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    bound
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let port = bound.local_addr().unwrap().as_socket().unwrap().port();
    let j = bench_json(&["-n", "50", "-c", "4", &url("http", port, "/")]);
    assert_eq!(j.int("ops"), 0);
    assert_eq!(j.int("errors.refused"), 50);
    assert_eq!(j.int("errors.total"), 50);
}

#[test]
fn garbage_and_early_close_are_counted_not_fatal() {
    let garbage = TestServer::start(None, |_| Box::new(Garbage));
    let j = bench_json(&["-n", "20", "-c", "2", &url("http", garbage.port, "/")]);
    assert_eq!(j.int("ops"), 0);
    assert_eq!(j.int("errors.bad_response"), 20, "{j:?}");

    let hangup = TestServer::start(None, |_| Box::new(Hangup));
    let j = bench_json(&["-n", "20", "-c", "2", &url("http", hangup.port, "/")]);
    assert_eq!(j.int("ops"), 0);
    assert_eq!(j.int("errors.closed_early"), 20, "{j:?}");

    let tls_garbage = TestServer::start(None, |_| Box::new(Garbage));
    let j = bench_json(&["-n", "10", "-c", "2", &url("gemini", tls_garbage.port, "/")]);
    assert_eq!(j.int("errors.tls"), 10, "{j:?}");

    let ws_hangup = TestServer::start(None, |_| Box::new(Hangup));
    let j = bench_json(&["-n", "10", "-c", "2", &url("ws", ws_hangup.port, "/echo")]);
    assert_eq!(j.int("errors.closed_early"), 10, "{j:?}");
}

#[test]
fn a_silent_server_times_out() {
    let silent = TestServer::start(None, |count| Box::new(Silent { count }));
    let start = Instant::now();
    let j = bench_json(&[
        "-n",
        "4",
        "-c",
        "2",
        "--timeout",
        "300ms",
        &url("http", silent.port, "/"),
    ]);
    assert_eq!(j.int("errors.timeout"), 4, "{j:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn rate_holds_within_five_percent() {
    let server = TestServer::start(None, |count| Box::new(HttpResponder { count, tail: 0 }));
    let j = bench_json(&[
        "--rate",
        "500",
        "-d",
        "2s",
        "-c",
        "16",
        &url("http", server.port, "/"),
    ]);
    let ops = j.int("ops");
    assert!((950..=1050).contains(&ops), "ops {ops}");
    assert!(
        (950..=1050).contains(&server.count()),
        "server {}",
        server.count()
    );
    // The offered load above is exact (jobs are scheduled at i / rate); the
    // measured rate divides by the window, which ends when a reactor timer
    // fires and so can run late (never early) on a loaded machine: the
    // rate can only come out low, within 15% allows 0.35 s of lateness.
    let rate = j.num("ops_per_s");
    assert!((425.0..=525.0).contains(&rate), "rate {rate}");
    assert_eq!(j.num("rate"), 500.0);
}

#[test]
fn human_output_and_usage_errors() {
    let server = TestServer::start(None, |count| Box::new(HttpResponder { count, tail: 0 }));
    let out = bench(&["-n", "50", "-c", "2", &url("http", server.port, "/")]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "throughput",
        "latency",
        "p99.9",
        "2xx 50",
        "errors",
        "CPU per op",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }

    let help = bench(&["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--connections",
        "--duration",
        "--rate",
        "--pipeline",
        "--json",
        "--warmup",
    ] {
        assert!(help.contains(flag), "{flag} missing from help");
    }

    for bad in [
        &[][..],
        &["ftp://127.0.0.1/"],
        &["-c", "0", "http://127.0.0.1:1/"],
        &["--close", "gemini://127.0.0.1/"],
        &["--pipeline", "4", "http://127.0.0.1:1/"],
    ] {
        let out = bench(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
}

/// A file holding `bytes`, for `--expect-body`; removed on drop.
struct RefFile(std::path::PathBuf);

impl RefFile {
    fn new(name: &str, bytes: &[u8]) -> RefFile {
        let path =
            std::env::temp_dir().join(format!("torsion-bench-cli-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        RefFile(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for RefFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `torsion bench --json ARGS` expecting exit code `code`; returns
/// the JSON object it printed.
fn bench_json_exit(args: &[&str], code: i32) -> Json {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = bench(&all);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Json::parse(stdout.trim()).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

#[test]
fn expect_body_passes_matching_bodies_and_fails_others_with_exit_3() {
    let right = RefFile::new("right", b"hello");
    let wrong = RefFile::new("wrong", b"hellO");
    let longer = RefFile::new("longer", b"hello!");

    let http = TestServer::start(None, |count| Box::new(HttpResponder { count, tail: 0 }));
    let target = url("http", http.port, "/");
    let j = bench_json(&[
        "-n",
        "300",
        "-c",
        "4",
        "--expect-body",
        right.arg(),
        &target,
    ]);
    assert_eq!(j.int("ops"), 300, "{j:?}");
    assert_eq!(j.int("errors.body"), 0);
    assert_eq!(j.int("expect_body.bytes"), 5);
    assert_eq!(j.get("expect_body.exact"), &Json::Bool(true));
    for bad in [&wrong, &longer] {
        let j = bench_json_exit(
            &["-n", "40", "-c", "2", "--expect-body", bad.arg(), &target],
            3,
        );
        assert_eq!(j.int("errors.body"), 40, "{j:?}");
        assert_eq!(
            j.int("ops"),
            0,
            "a mismatched body is not a completed request"
        );
    }

    let gemini = TestServer::start(Some(tls_config()), |count| {
        Box::new(GeminiResponder { count, done: false })
    });
    let target = url("gemini", gemini.port, "/");
    let j = bench_json(&["-n", "30", "-c", "3", "--expect-body", right.arg(), &target]);
    assert_eq!(j.int("ops"), 30, "{j:?}");
    assert_eq!(j.int("errors.total"), 0);
    let j = bench_json_exit(
        &["-n", "10", "-c", "2", "--expect-body", wrong.arg(), &target],
        3,
    );
    assert_eq!(j.int("errors.body"), 10, "{j:?}");
}

#[test]
fn expect_bytes_checks_the_length_only() {
    let http = TestServer::start(None, |count| Box::new(HttpResponder { count, tail: 0 }));
    let target = url("http", http.port, "/");
    let j = bench_json(&["-n", "50", "-c", "2", "--expect-bytes", "5", &target]);
    assert_eq!(j.int("ops"), 50, "{j:?}");
    assert_eq!(j.get("expect_body.exact"), &Json::Bool(false));
    let j = bench_json_exit(&["-n", "20", "-c", "2", "--expect-bytes", "4", &target], 3);
    assert_eq!(j.int("errors.body"), 20, "{j:?}");
    // The human table says what was checked.
    let out = bench(&["-n", "5", "-c", "1", "--expect-bytes", "5", &target]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("body check"), "{text}");
}

#[test]
fn expect_body_usage_errors() {
    let file = RefFile::new("usage", b"hello");
    // Not for echoes.
    for bad in [
        &["--expect-body", file.arg(), "ws://127.0.0.1:1/echo"][..],
        &["--expect-bytes", "5", "tcp://127.0.0.1:1"],
        &["--expect-bytes", "five", "http://127.0.0.1:1/"],
    ] {
        let out = bench(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    // An unreadable file, or a length that disagrees with it: cannot start.
    let missing = format!("{}.missing", file.arg());
    for bad in [
        &["--expect-body", missing.as_str(), "http://127.0.0.1:1/"][..],
        &[
            "--expect-body",
            file.arg(),
            "--expect-bytes",
            "6",
            "http://127.0.0.1:1/",
        ],
    ] {
        let out = bench(bad);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--expect-"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
