//! Nothing lost (issue 10, point 4): every byte a client was promised
//! arrives, against the built binary over real sockets.
//!
//! - Large static files and CGI output arrive whole and byte-identical
//!   while 16 clients download at once and slow readers stall the server's
//!   output (backpressure pauses the file and the CGI pipe, then resumes).
//! - SIGTERM in the middle of large Gemini downloads (static and CGI), of
//!   a WebSocket echo and of an HTTP request: every response already
//!   started or owed completes byte-identical, new connections are refused
//!   at once, and the process exits 0 when the last one is done.
//! - SIGHUP, several times, while clients loop over new and persistent
//!   connections (Gemini, HTTP keep-alive, WebSocket over TLS, a long
//!   download): no connection is dropped, every response is complete.
//!
//! The reference bytes are a deterministic pattern (not text: every byte
//! value occurs), so a lost, repeated or reordered chunk shows as a
//! mismatch at a precise offset.

mod server_support;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use server_support::{command, tls_connect, Server, TempDir, TIMEOUT};

/// The large static file: several times the socket buffers and the
/// server's high water mark, so it is streamed in many paused steps.
const BIG: usize = 8 << 20;

/// The CGI script's output (after its header): the pipe is paused and
/// resumed many times.
const CGI: usize = 3 << 20;

/// A medium static file, for request loops.
const MID: usize = 1 << 20;

/// What a slow reader takes per read before sleeping.
const SLOW_READ: usize = 16 * 1024;

/// `len` bytes of a xorshift stream from `seed`: every byte value occurs,
/// and no two offsets of a shifted copy line up by chance.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Asserts `got == want`; on failure says where they first differ instead
/// of printing megabytes.
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    panic!(
        "{what}: got {} bytes, expected {}; first difference at offset {first}",
        got.len(),
        want.len()
    );
}

/// A capsule with known content, the server's working directory.
struct Site {
    dir: TempDir,
    big: Arc<Vec<u8>>,
    cgi: Arc<Vec<u8>>,
    mid: Arc<Vec<u8>>,
    small: Arc<Vec<u8>>,
}

impl Site {
    fn new(name: &str) -> Site {
        let dir = TempDir::new(name);
        let capsule = dir.path().join("capsule");
        let cgi_bin = capsule.join("cgi-bin");
        std::fs::create_dir_all(&cgi_bin).unwrap();
        let big = pattern(BIG, 0x5eed_0001);
        let cgi = pattern(CGI, 0x5eed_0002);
        let mid = pattern(MID, 0x5eed_0003);
        let small = b"# nothing lost\n\nA small page.\n".to_vec();
        std::fs::write(capsule.join("big.bin"), &big).unwrap();
        std::fs::write(capsule.join("mid.bin"), &mid).unwrap();
        std::fs::write(capsule.join("index.gmi"), &small).unwrap();
        // The CGI's output lives outside the capsule and is copied to
        // stdout by cat: the server sees a pipe, not a file.
        let out = dir.path().join("cgi-output.bin");
        std::fs::write(&out, &cgi).unwrap();
        let script = cgi_bin.join("big.cgi");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '20 application/octet-stream\\r\\n'\nexec cat '{}'\n",
                out.display()
            ),
        )
        .unwrap();
        make_executable(&script);
        Site {
            dir,
            big: Arc::new(big),
            cgi: Arc::new(cgi),
            mid: Arc::new(mid),
            small: Arc::new(small),
        }
    }

    /// Starts torsion serving the capsule on Gemini, HTTP and WebSocket
    /// (all on port 0, less those `extra` turns off with `--no-*`).
    fn start(&self, extra: &[&str]) -> Server {
        let capsule = self.dir.path().join("capsule");
        let mut args = vec![
            "--dir",
            capsule.to_str().unwrap(),
            "--cgi-dir",
            "cgi-bin",
            "--port",
            "0",
            "--http-port",
            "0",
            "--ws-port",
            "0",
        ];
        args.extend_from_slice(extra);
        let mut c = command(&self.dir, &args);
        // Access-log lines for hundreds of requests are noise here.
        c.env("RUST_LOG", "warn,torsion=info,torsion_reactor=info");
        let off = extra.iter().filter(|a| a.starts_with("--no-")).count();
        Server::start(c, 3 - off)
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path).unwrap().permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(path, perm).unwrap();
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Sends a Gemini request for `path` on a new TLS connection.
fn gemini_request(addr: SocketAddr, path: &str) -> Tls {
    let mut tls = tls_connect(addr, "localhost", &[]);
    tls.write_all(format!("gemini://localhost:{}{path}\r\n", addr.port()).as_bytes())
        .unwrap();
    tls.flush().unwrap();
    tls
}

/// Reads from `tls` into `buf` (up to `max` more bytes); 0 at the end. A
/// close without close_notify ends the stream too (what arrived is
/// compared anyway).
fn read_some(tls: &mut Tls, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let mut chunk = [0u8; 64 * 1024];
    let want = max.min(chunk.len());
    match tls.read(&mut chunk[..want]) {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(e),
    }
}

/// Reads until the header line is complete and `body_min` body bytes have
/// arrived (or the stream ends); returns the header and the body so far.
fn read_head(tls: &mut Tls, body_min: usize) -> (String, Vec<u8>) {
    let mut raw = Vec::new();
    loop {
        if let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
            if raw.len() >= end + 2 + body_min {
                let body = raw.split_off(end + 2);
                raw.truncate(end);
                return (String::from_utf8_lossy(&raw).into_owned(), body);
            }
        }
        let n = read_some(tls, &mut raw, usize::MAX).expect("reading the response");
        if n == 0 {
            let text = String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
            panic!("the response ended after {} bytes: {text:?}", raw.len());
        }
    }
}

/// Reads the rest of a body to the end of the stream.
fn read_rest(tls: &mut Tls, body: &mut Vec<u8>) {
    while read_some(tls, body, usize::MAX).expect("reading the body") > 0 {}
}

/// Fetches `path` over Gemini; with `stalls`, reads [`SLOW_READ`] bytes and
/// sleeps `pause` that many times before reading the rest at full speed.
fn fetch(addr: SocketAddr, path: &str, stalls: usize, pause: Duration) -> (String, Vec<u8>) {
    let mut tls = gemini_request(addr, path);
    let (header, mut body) = read_head(&mut tls, 0);
    for _ in 0..stalls {
        std::thread::sleep(pause);
        if read_some(&mut tls, &mut body, SLOW_READ).expect("slow read") == 0 {
            break;
        }
    }
    read_rest(&mut tls, &mut body);
    (header, body)
}

/// Fetches `path` and asserts a `20` with exactly `want`.
fn fetch_and_check(addr: SocketAddr, path: &str, want: &[u8], stalls: usize, pause: Duration) {
    let (header, body) = fetch(addr, path, stalls, pause);
    assert!(header.starts_with("20 "), "{path}: header {header:?}");
    assert_same(path, &body, want);
}

/// Joins every thread, failing the test with the first panic's message.
fn join_all<T>(threads: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(v) => out.push(v),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a client thread panicked".into());
                failure.get_or_insert(msg);
            }
        }
    }
    if let Some(msg) = failure {
        panic!("{msg}");
    }
    out
}

/// Waits (bounded) until the server has read everything `client` sent:
/// the server's end of the connection, in `/proc/net/tcp`, has an empty
/// receive queue. (Bytes queued on a connection not yet accepted, or not
/// yet read, are not a request the server knows of.)
fn wait_read_by_server(client: &TcpStream) {
    let server_port = client.peer_addr().unwrap().port();
    let client_port = client.local_addr().unwrap().port();
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let queued = table.lines().skip(1).find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, queues) = (f.get(1)?, f.get(2)?, f.get(4)?);
            if port_of(local)? != server_port || port_of(remote)? != client_port {
                return None;
            }
            let rx = queues.split(':').nth(1)?;
            u64::from_str_radix(rx, 16).ok()
        });
        if queued == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never read the request"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (bounded) until connecting to `addr` is refused.
fn wait_refused(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "{what} still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn large_files_and_cgi_output_arrive_whole_under_load_and_slow_readers() {
    let site = Site::new("lost-load");
    let mut server = site.start(&["--no-http", "--no-ws", "--max-conns-per-ip", "0"]);
    let addr = server.addr("gemini");
    let mut threads = Vec::new();
    // Slow readers first, so they are stalled while the load runs.
    for i in 0..4 {
        let (path, want) = if i % 2 == 0 {
            ("/big.bin", Arc::clone(&site.big))
        } else {
            ("/cgi-bin/big.cgi", Arc::clone(&site.cgi))
        };
        threads.push(std::thread::spawn(move || {
            fetch_and_check(addr, path, &want, 12, Duration::from_millis(100));
        }));
    }
    for t in 0..16 {
        let (big, cgi) = (Arc::clone(&site.big), Arc::clone(&site.cgi));
        threads.push(std::thread::spawn(move || {
            for round in 0..3 {
                if (t + round) % 2 == 0 {
                    fetch_and_check(addr, "/big.bin", &big, 0, Duration::ZERO);
                } else {
                    fetch_and_check(addr, "/cgi-bin/big.cgi", &cgi, 0, Duration::ZERO);
                }
            }
        }));
    }
    join_all(threads);
    assert!(server.is_running());
    let lines = server.lines();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("killed") || l.contains("panick")),
        "{lines:#?}"
    );
}

#[test]
fn sigterm_under_load_completes_every_response_in_flight_and_exits_0() {
    let site = Site::new("lost-term");
    let mut server = site.start(&["--ws-plain", "--shutdown-timeout", "30s"]);
    let (gemini, ws_addr, http) = (
        server.addr("gemini"),
        server.addr("ws"),
        server.addr("http"),
    );

    // Gemini downloads: each reads its header and 64 KiB of body, reports
    // in, and waits; the rest of its body is still on the server's side
    // (the file or the CGI pipe is paused) when SIGTERM arrives.
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let mut go = Vec::new();
    let mut downloads = Vec::new();
    for i in 0..6 {
        let (path, want) = if i % 2 == 0 {
            ("/big.bin", Arc::clone(&site.big))
        } else {
            ("/cgi-bin/big.cgi", Arc::clone(&site.cgi))
        };
        let ready = ready_tx.clone();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        go.push(go_tx);
        downloads.push(std::thread::spawn(move || {
            let mut tls = gemini_request(gemini, path);
            let (header, mut body) = read_head(&mut tls, 64 * 1024);
            assert!(header.starts_with("20 "), "{path}: {header:?}");
            ready.send(()).unwrap();
            go_rx.recv_timeout(TIMEOUT).expect("go");
            read_rest(&mut tls, &mut body);
            assert_same(&format!("{path} across SIGTERM"), &body, &want);
        }));
    }

    // A WebSocket conversation: two echoes before, and one large echo
    // that the server has started sending when SIGTERM arrives.
    let stream = TcpStream::connect(ws_addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let url = format!("ws://127.0.0.1:{}/echo", ws_addr.port());
    let (mut ws, response) = tungstenite::client(url.as_str(), stream).expect("upgrade");
    assert_eq!(response.status(), 101);
    let first = pattern(256 * 1024, 7);
    ws.send(tungstenite::Message::text("before")).unwrap();
    assert_eq!(ws.read().unwrap(), tungstenite::Message::text("before"));
    ws.send(tungstenite::Message::binary(first.clone()))
        .unwrap();
    assert_same("echo before", &ws.read().unwrap().into_data(), &first);
    let last = pattern(768 * 1024, 8);
    ws.send(tungstenite::Message::binary(last.clone())).unwrap();
    // The echo is one frame written after the whole message was read: once
    // its first byte is here, all of it is queued on the server's side.
    let deadline = Instant::now() + TIMEOUT;
    let mut peek = [0u8; 1];
    while ws.get_ref().peek(&mut peek).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "no echo started");
        std::thread::sleep(Duration::from_millis(5));
    }

    // An HTTP request whose head is half sent: the server owes it an
    // answer (with `Connection: close`).
    let mut half = TcpStream::connect(http).unwrap();
    half.set_read_timeout(Some(TIMEOUT)).unwrap();
    half.write_all(b"GET /half/sent HTTP/1.1\r\nHost: loc")
        .unwrap();
    wait_read_by_server(&half);

    for _ in 0..6 {
        ready_rx.recv_timeout(TIMEOUT).expect("downloads started");
    }
    server.signal(libc::SIGTERM);
    server.wait_line("stop signal: no new connections");
    wait_refused(gemini, "gemini");
    wait_refused(ws_addr, "ws");
    wait_refused(http, "http");
    assert!(server.is_running(), "exited with responses in flight");

    for g in &go {
        g.send(()).unwrap();
    }
    half.write_all(b"alhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    half.read_to_string(&mut answer)
        .expect("the half-sent request's answer");
    assert!(
        answer.starts_with("HTTP/1.1 301 ") && answer.contains("/half/sent"),
        "{answer}"
    );
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // The large echo arrives whole, then the server's close (going away).
    assert_same(
        "echo across SIGTERM",
        &ws.read().unwrap().into_data(),
        &last,
    );
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 1001, "{frame:?}")
        }
        other => panic!("expected the server's close frame, got {other:?}"),
    }
    // tungstenite answered the close; the server then ends the connection
    // cleanly (no reset).
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        Ok(m) => panic!("after the close: {m:?}"),
        Err(e) => panic!("ending the WebSocket: {e}"),
    }
    join_all(downloads);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{:#?}", server.lines());
}

/// One HTTP/1.1 request on a kept-alive connection: the status and whether
/// the server announced it will close.
fn http_get(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    s.write_all(b"GET /some/page?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = resp.parse(buf).map_err(io::Error::other)? {
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let len: usize = header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| io::Error::other("no Content-Length"))?;
            let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let status = resp.code.unwrap_or(0);
            while buf.len() < head + len {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            if buf.len() != head + len {
                return Err(io::Error::other("bytes after the response"));
            }
            return Ok((status, close));
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn sighup_under_load_drops_no_connection_and_loses_no_byte() {
    let site = Site::new("lost-hup");
    let mut server = site.start(&["--max-conns-per-ip", "0"]);
    let (gemini, https, http) = (
        server.addr("gemini"),
        server.addr("https"),
        server.addr("http"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops: Vec<JoinHandle<(&'static str, u64)>> = Vec::new();

    // New Gemini connections, one per request.
    for i in 0..2 {
        let (stop, mid, small) = (
            Arc::clone(&stop),
            Arc::clone(&site.mid),
            Arc::clone(&site.small),
        );
        loops.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                if (n + i) % 2 == 0 {
                    fetch_and_check(gemini, "/mid.bin", &mid, 0, Duration::ZERO);
                } else {
                    fetch_and_check(gemini, "/", &small, 0, Duration::ZERO);
                }
                n += 1;
            }
            ("gemini requests", n)
        }));
    }

    // One HTTP connection kept alive; only a close the server announced
    // (its per-connection request cap) may end it.
    {
        let stop = Arc::clone(&stop);
        loops.push(std::thread::spawn(move || {
            let connect = || {
                let s = TcpStream::connect(http).unwrap();
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                s
            };
            let mut s = connect();
            let mut buf = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (status, close) = http_get(&mut s, &mut buf)
                    .unwrap_or_else(|e| panic!("HTTP keep-alive after {n} requests: {e}"));
                assert_eq!(status, 301, "request {n}");
                n += 1;
                if close {
                    s = connect();
                }
            }
            ("HTTP keep-alive requests", n)
        }));
    }

    // One WebSocket over TLS, echoing for the whole run.
    {
        let stop = Arc::clone(&stop);
        loops.push(std::thread::spawn(move || {
            let tls = tls_connect(https, "localhost", &[b"http/1.1"]);
            let url = format!("wss://localhost:{}/echo", https.port());
            let (mut ws, _) = tungstenite::client(url.as_str(), tls).expect("wss upgrade");
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let msg = pattern(16 * 1024 + (n as usize % 1000), n);
                ws.send(tungstenite::Message::binary(msg.clone()))
                    .unwrap_or_else(|e| panic!("wss send after {n} echoes: {e}"));
                let back = ws
                    .read()
                    .unwrap_or_else(|e| panic!("wss read after {n} echoes: {e}"));
                assert_same(&format!("wss echo {n}"), &back.into_data(), &msg);
                n += 1;
            }
            ws.close(None).unwrap();
            while ws.read().is_ok() {}
            ("wss echoes", n)
        }));
    }

    // One long download spanning every reload.
    {
        let big = Arc::clone(&site.big);
        loops.push(std::thread::spawn(move || {
            fetch_and_check(gemini, "/big.bin", &big, 40, Duration::from_millis(50));
            ("long downloads", 1)
        }));
    }

    std::thread::sleep(Duration::from_millis(300));
    for i in 1..=5 {
        server.signal(libc::SIGHUP);
        server.wait_for(
            |lines| {
                lines
                    .iter()
                    .filter(|l| l.contains("SIGHUP: reloaded"))
                    .count()
                    >= i
            },
            "SIGHUP reloads",
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::SeqCst);
    for (what, n) in join_all(loops) {
        eprintln!("across 5 reloads: {n} {what}");
        assert!(n > 0, "no {what} completed");
    }
    assert!(server.is_running());
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0), "{:#?}", server.lines());
}

/// A client whose `connect` returned before the stop signal has, as far as
/// it can tell, a connection: the kernel completed it into the listener's
/// backlog, and its request is sent. Closing the listener with such
/// connections still queued resets them, and their requests are lost; they
/// are in flight as much as any accepted one and must be answered within
/// the shutdown deadline.
#[test]
fn sigterm_answers_connections_already_in_the_accept_queue() {
    let site = Site::new("lost-backlog");
    let mut server = site.start(&["--no-gemini", "--no-ws"]);
    let http = server.addr("http");
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let request =
            format!("GET /queued/{i} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).unwrap();
        clients.push(s);
    }
    server.signal(libc::SIGTERM);
    let mut lost = Vec::new();
    for (i, mut s) in clients.into_iter().enumerate() {
        let mut answer = Vec::new();
        match s.read_to_end(&mut answer) {
            Ok(_) if answer.starts_with(b"HTTP/1.1 301 ") => {}
            Ok(_) => lost.push(format!(
                "client {i}: {:?}",
                String::from_utf8_lossy(&answer)
            )),
            Err(e) => lost.push(format!("client {i}: {e}")),
        }
    }
    assert!(
        lost.is_empty(),
        "requests sent on connections completed before SIGTERM got no answer: {lost:#?}"
    );
    assert_eq!(server.wait_exit().code(), Some(0), "{:#?}", server.lines());
}
