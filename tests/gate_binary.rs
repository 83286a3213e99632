//! The accept gate through the built `torsion` binary, over real sockets:
//! Gemini `44 <seconds>` and HTTP `429` + `Retry-After` for a client over
//! its quota, let in again once the advertised wait has passed; the
//! per-client connection cap; the allow-list; an IPv6 client; the PROXY
//! protocol flags; and end to end behind a real HAProxy (Debian's, in TCP
//! mode with `send-proxy-v2`), where two clients through the same proxy
//! are limited separately and logged under their own addresses.
//!
//! Contract relied on: the binary prints `torsion: <scheme> listening on
//! <addr>` on stderr for each listener; `--port 0`, `--http-port 0` pick
//! free ports; access-log lines start with the client's IP followed by the
//! quoted URL. Clients bind 127.0.0.2 / 127.0.0.3 (local on Linux) to be
//! different addresses. Gemini runs over TLS: the client is the reactor's
//! own sans-IO rustls session driven over a blocking socket.

mod server_support;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use server_support::{free_port, listening, Server as Process, TempDir, BIN};

use torsion_reactor::tls::{ClientTlsConfig, ClientVerify, TlsSession};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

// ----- processes and files -------------------------------------------------------

/// A running `torsion` with a private state directory; killed and reaped
/// on drop.
struct Server {
    process: Process,
    _state: TempDir,
}

impl Server {
    /// Starts the binary with `args` (plus a private `--state-dir`) and
    /// waits until every scheme in `schemes` reports its address.
    fn start(args: &[&str], schemes: &[&str]) -> Server {
        let state = TempDir::new("gate-state");
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--state-dir")
            .arg(state.path())
            .env("RUST_LOG", "info");
        let process = Process::spawn(cmd);
        process.wait_for(
            |lines| {
                let found = listening(lines);
                schemes.iter().all(|s| found.iter().any(|(f, _)| f == s))
            },
            &format!("{schemes:?} listening"),
        );
        Server {
            process,
            _state: state,
        }
    }

    fn addr(&self, scheme: &str) -> SocketAddr {
        self.process.addr(scheme)
    }

    fn stderr(&self) -> Vec<String> {
        self.process.lines()
    }

    /// Waits (bounded) for a stderr line matching `pred`.
    fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + IO_TIMEOUT;
        while Instant::now() < deadline {
            if self.stderr().iter().any(|l| pred(l)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no log line {what}; stderr: {:?}", self.stderr());
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

// ----- clients ----------------------------------------------------------------------

fn connect(to: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&to, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

/// A blocking connection to `to` from the local address `from`.
fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stream = rt.block_on(async {
        let socket = match to {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(from, 0))?;
        let s = tokio::time::timeout(IO_TIMEOUT, socket.connect(to))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        s.into_std()
    })?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

fn local(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A blocking TLS client on the reactor's sans-IO session.
struct TlsClient {
    stream: TcpStream,
    session: TlsSession,
    plain: Vec<u8>,
}

impl TlsClient {
    /// Writes `prefix` (e.g. a PROXY header) with the ClientHello, then
    /// completes the handshake. An error means the server closed first.
    fn handshake(mut stream: TcpStream, prefix: &[u8]) -> io::Result<TlsClient> {
        let config = ClientTlsConfig::builder(ClientVerify::NoVerify)
            .resumption(false)
            .build()
            .map_err(io::Error::other)?;
        let mut session = TlsSession::client(&config, "localhost").map_err(io::Error::other)?;
        let mut first = prefix.to_vec();
        session.write_ciphertext(&mut first)?;
        stream.write_all(&first)?;
        let mut c = TlsClient {
            stream,
            session,
            plain: Vec::new(),
        };
        while c.session.is_handshaking() {
            if !c.pump_in()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            c.pump_out()?;
        }
        Ok(c)
    }

    fn pump_out(&mut self) -> io::Result<()> {
        while self.session.has_pending_ciphertext() {
            self.session.write_ciphertext(&mut self.stream)?;
        }
        Ok(())
    }

    /// One socket read fed to the session; false at EOF.
    fn pump_in(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        let mut plain = [0u8; 16 * 1024];
        let mut off = 0;
        while off < n {
            let used = self
                .session
                .feed_ciphertext(&mut buf[off..n])
                .map_err(io::Error::other)?;
            off += used;
            let mut drained = 0;
            loop {
                let k = self.session.read_plaintext(&mut plain);
                if k == 0 {
                    break;
                }
                drained += k;
                self.plain.extend_from_slice(&plain[..k]);
            }
            if used == 0 && drained == 0 {
                break; // after close_notify the rest is ignored
            }
        }
        Ok(true)
    }

    /// Sends a request and reads the response until the server closes.
    fn request(mut self, request: &str) -> io::Result<String> {
        self.session.write_plaintext(request.as_bytes());
        self.pump_out()?;
        while self.pump_in()? {}
        Ok(String::from_utf8_lossy(&self.plain).into_owned())
    }
}

/// A Gemini request for `/` of the capsule on `port` over `stream`,
/// behind `prefix`; returns the response's header line (`20 text/gemini`),
/// or an error if the connection was closed before a response.
fn gemini(stream: TcpStream, prefix: &[u8], port: u16) -> io::Result<String> {
    let client = TlsClient::handshake(stream, prefix)?;
    let response = client.request(&format!("gemini://localhost:{port}/\r\n"))?;
    match response.split_once("\r\n") {
        Some((header, _)) => Ok(header.to_string()),
        None => Err(io::Error::other(format!("no header in {response:?}"))),
    }
}

/// Asserts `header` is a `44` whose meta is only a whole number of
/// seconds in `1..=max` (the Gemini specification's meaning, not prose);
/// returns it.
fn slow_down_seconds(header: &str, max: u64) -> u64 {
    let meta = header
        .strip_prefix("44 ")
        .unwrap_or_else(|| panic!("expected 44, got {header:?}"));
    let secs: u64 = meta
        .parse()
        .unwrap_or_else(|_| panic!("44 meta {meta:?} is not an integer"));
    assert!((1..=max).contains(&secs), "44 {secs}: outside 1..={max}");
    secs
}

fn port_of(server: &Server) -> u16 {
    server.addr("gemini").port()
}

/// PROXY v1 for a TCP4 client.
fn proxy_v1(src: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {src} 127.0.0.1 {port} 1965\r\n").into_bytes()
}

// ----- quotas ---------------------------------------------------------------------

#[test]
fn gemini_over_quota_gets_44_with_whole_seconds_and_is_let_in_again_after_it() {
    // 3 per 20 s: a burst of 3, then one every 6.67 s (the four requests
    // must come faster than that for the fourth to be refused: a debug
    // build's TLS handshakes on a loaded machine are not instant).
    let server = Server::start(
        &[
            "--port",
            "0",
            "--no-http",
            "--no-ws",
            "--rate-limit",
            "3/20s",
        ],
        &["gemini"],
    );
    let (addr, port) = (server.addr("gemini"), port_of(&server));
    for i in 0..3 {
        let h = gemini(connect(addr).unwrap(), b"", port).unwrap();
        assert!(h.starts_with("20 "), "request {i}: {h}");
    }
    let h = gemini(connect(addr).unwrap(), b"", port).unwrap();
    // At most one refill away: 6.67 s, rounded up.
    let wait = slow_down_seconds(&h, 7);
    // Coming back after the advertised wait is enough.
    std::thread::sleep(Duration::from_secs(wait));
    let h = gemini(connect(addr).unwrap(), b"", port).unwrap();
    assert!(h.starts_with("20 "), "after waiting {wait} s: {h}");
}

#[test]
fn http_over_quota_gets_429_with_retry_after_and_is_let_in_again_after_it() {
    let dir = TempDir::new("http");
    let config = dir.path().join("torsion.toml");
    std::fs::write(
        &config,
        "[[http]]\nhost = \"127.0.0.1\"\nport = 0\nrate_limit = \"3/20s\"\n",
    )
    .unwrap();
    let server = Server::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--no-gemini",
            "--no-ws",
        ],
        &["http"],
    );
    let addr = server.addr("http");
    let get = || {
        let mut s = connect(addr).unwrap();
        s.write_all(b"GET /page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    for i in 0..3 {
        let r = get();
        assert!(r.starts_with("HTTP/1.1 301"), "request {i}: {r}");
    }
    let r = get();
    assert!(r.starts_with("HTTP/1.1 429"), "{r}");
    let retry: u64 = r
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no Retry-After in {r}"))
        .parse()
        .expect("Retry-After is whole seconds");
    // At most one refill (6.67 s of a 3/20s quota) away, rounded up.
    assert!((1..=7).contains(&retry), "Retry-After: {retry}");
    std::thread::sleep(Duration::from_secs(retry));
    let r = get();
    assert!(r.starts_with("HTTP/1.1 301"), "after {retry} s: {r}");
}

#[test]
fn allow_listed_clients_are_never_limited_and_others_are() {
    let server = Server::start(
        &[
            "--port",
            "0",
            "--no-http",
            "--no-ws",
            "--rate-limit",
            "1/m",
            "--gate-allow",
            "127.0.0.1/32",
        ],
        &["gemini"],
    );
    let (addr, port) = (server.addr("gemini"), port_of(&server));
    for i in 0..4 {
        let h = gemini(connect(addr).unwrap(), b"", port).unwrap();
        assert!(h.starts_with("20 "), "allow-listed request {i}: {h}");
    }
    // 127.0.0.2 is not on the list: one per minute.
    let h = gemini(connect_from(local(2), addr).unwrap(), b"", port).unwrap();
    assert!(h.starts_with("20 "), "{h}");
    let h = gemini(connect_from(local(2), addr).unwrap(), b"", port).unwrap();
    slow_down_seconds(&h, 60);
}

// ----- caps ---------------------------------------------------------------------------

#[test]
fn the_connection_over_the_per_client_cap_is_dropped_and_one_is_admitted_after_a_close() {
    let server = Server::start(
        &[
            "--port",
            "0",
            "--no-http",
            "--no-ws",
            "--max-conns-per-ip",
            "3",
        ],
        &["gemini"],
    );
    let (addr, port) = (server.addr("gemini"), port_of(&server));
    // Three connections, handshaken and idle: the client's whole allowance.
    let mut held: Vec<TlsClient> = (0..3)
        .map(|i| {
            TlsClient::handshake(connect(addr).unwrap(), b"")
                .unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    let fourth = TlsClient::handshake(connect(addr).unwrap(), b"");
    assert!(
        fourth.is_err(),
        "the fourth concurrent connection must be dropped"
    );
    // Another address is not affected.
    let h = gemini(connect_from(local(2), addr).unwrap(), b"", port).unwrap();
    assert!(h.starts_with("20 "), "{h}");
    // One closes; once the server has seen it, a new one gets in.
    drop(held.remove(0));
    let deadline = Instant::now() + IO_TIMEOUT;
    let header = loop {
        match gemini(connect(addr).unwrap(), b"", port) {
            Ok(h) => break h,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("never admitted again after a close: {e}"),
        }
    };
    assert!(header.starts_with("20 "), "{header}");
    drop(held);
}

// ----- IPv6 -----------------------------------------------------------------------------

#[test]
fn an_ipv6_client_is_served_and_gated() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this host: nothing to test");
        return;
    }
    let server = Server::start(
        &[
            "--host",
            "::1",
            "--port",
            "0",
            "--no-http",
            "--no-ws",
            "--rate-limit",
            "1/m",
        ],
        &["gemini"],
    );
    let addr = server.addr("gemini");
    assert!(addr.is_ipv6(), "{addr}");
    let port = addr.port();
    let h = gemini(connect(addr).unwrap(), b"", port).unwrap();
    assert!(h.starts_with("20 "), "{h}");
    let h = gemini(connect(addr).unwrap(), b"", port).unwrap();
    slow_down_seconds(&h, 60);
    server.wait_log("for the IPv6 client", |l| l.contains("::1 \"gemini://"));
}

// ----- PROXY protocol -----------------------------------------------------------------

#[test]
fn proxy_protocol_flags_key_the_gate_on_the_header_and_refuse_bare_clients() {
    let server = Server::start(
        &[
            "--port",
            "0",
            "--no-http",
            "--no-ws",
            "--rate-limit",
            "2/m",
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.1/32",
        ],
        &["gemini"],
    );
    let (addr, port) = (server.addr("gemini"), port_of(&server));
    let visit = |src: &str, sport: u16| gemini(connect(addr).unwrap(), &proxy_v1(src, sport), port);
    for i in 0..2 {
        let h = visit("203.0.113.1", 1000 + i).unwrap();
        assert!(h.starts_with("20 "), "{h}");
    }
    slow_down_seconds(&visit("203.0.113.1", 1002).unwrap(), 60);
    let h = visit("203.0.113.2", 2000).unwrap();
    assert!(
        h.starts_with("20 "),
        "another client behind the same proxy: {h}"
    );
    // A client that skips the proxy (no header), or a proxy not on the
    // list, is closed without a handshake.
    assert!(gemini(connect(addr).unwrap(), b"", port).is_err());
    let unlisted = connect_from(local(2), addr).unwrap();
    assert!(gemini(unlisted, &proxy_v1("203.0.113.3", 3000), port).is_err());
    server.wait_log("naming the proxied client", |l| {
        l.contains("203.0.113.2 \"gemini://")
    });
}

#[test]
fn proxy_protocol_without_a_proxy_list_is_a_configuration_error() {
    let state = TempDir::new("noproxyfrom");
    let out = Command::new(BIN)
        .args([
            "--port",
            "0",
            "--no-http",
            "--no-ws",
            "--proxy-protocol",
            "--check-config",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .expect("run torsion");
    assert!(
        !out.status.success(),
        "accepted --proxy-protocol without --proxy-from"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--proxy-from"), "{err}");
    let out = Command::new(BIN)
        .args(["--port", "0", "--no-http", "--no-ws", "--proxy-protocol"])
        .args(["--proxy-from", "10.0.0.1/8", "--check-config"])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .expect("run torsion");
    assert!(!out.status.success(), "accepted a CIDR with host bits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.0.0.1/8"), "{err}");
}

/// HAProxy in the foreground; killed and reaped on drop.
struct Haproxy {
    child: Child,
    _dir: TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// HAProxy in TCP mode on a free 127.0.0.1 port, relaying to `backend`
    /// with a PROXY v2 header; waits until it accepts connections.
    fn start(backend: SocketAddr) -> (Haproxy, SocketAddr) {
        assert!(
            have("haproxy"),
            "haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
        );
        let dir = TempDir::new("haproxy");
        let port = free_port();
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n    maxconn 200\n\n\
                 defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n\
                 frontend gemini\n    bind 127.0.0.1:{port}\n    default_backend torsion\n\n\
                 backend torsion\n    server torsion {backend} send-proxy-v2\n"
            ),
        )
        .unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let mut h = Haproxy { child, _dir: dir };
        let front = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited at start: {status}");
            }
            if TcpStream::connect_timeout(&front, Duration::from_secs(1)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "haproxy never listened on {front}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (h, front)
    }
}

#[test]
fn behind_haproxy_send_proxy_v2_two_clients_are_limited_separately() {
    let server = Server::start(
        &[
            "--port",
            "0",
            "--no-http",
            "--no-ws",
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.1/32",
            "--rate-limit",
            "2/m",
        ],
        &["gemini"],
    );
    let torsion = server.addr("gemini");
    let (_haproxy, front) = Haproxy::start(torsion);
    let port = torsion.port();
    let through = |from: u8| gemini(connect_from(local(from), front).unwrap(), b"", port);
    // Each client has its own quota of 2, though both arrive from HAProxy's
    // one address; the third request of each is told to slow down.
    for from in [2, 3] {
        for i in 0..2 {
            let h = through(from).unwrap();
            assert!(h.starts_with("20 "), "127.0.0.{from}, request {i}: {h}");
        }
    }
    for from in [2, 3] {
        slow_down_seconds(&through(from).unwrap(), 60);
    }
    // The access log names the clients, not the proxy.
    for ip in ["127.0.0.2", "127.0.0.3"] {
        server.wait_log(&format!("for {ip}"), |l| {
            l.contains(&format!(" {ip} \"gemini://"))
        });
    }
    assert!(
        !server
            .stderr()
            .iter()
            .any(|l| l.contains(" 127.0.0.1 \"gemini://")),
        "a request was logged under the proxy's address: {:?}",
        server.stderr()
    );
    // Straight to torsion, around the proxy: closed.
    assert!(gemini(connect(torsion).unwrap(), b"", port).is_err());
}
