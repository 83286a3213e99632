//! Shared by the `server_*` tests: start the built `torsion` binary in a
//! temporary working directory (its generated state kept there, never in
//! the user's home), read its stderr for the `torsion: SCHEME listening on
//! ADDR` lines, and talk to it with real clients (rustls for Gemini and
//! HTTPS, tungstenite for WebSocket, curl).
//!
//! Every wait is bounded by [`TIMEOUT`]; a failing test kills its server.

#![allow(dead_code)] // Each test file uses a different part.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_torsion");

/// Bound on every wait: start-up, a request, an exit.
pub const TIMEOUT: Duration = Duration::from_secs(20);

const READY_PREFIX: &str = "torsion: ";
const READY_INFIX: &str = " listening on ";

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory; `name` shows in its path.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "torsion-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `torsion ARGS` run in `dir`, with its state (certificates) in
/// `dir/state` and no systemd variables from the test's environment.
pub fn command(dir: &TempDir, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    configure(&mut c, dir);
    c
}

/// Applies [`command`]'s working directory and environment to `c`.
pub fn configure(c: &mut Command, dir: &TempDir) {
    c.current_dir(dir.path())
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("RUST_LOG", "info")
        .env_remove("STATE_DIRECTORY")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_FDNAMES");
}

#[derive(Default)]
struct Log {
    lines: Vec<String>,
    closed: bool,
}

/// A running `torsion`; killed and reaped on drop.
pub struct Server {
    child: Child,
    log: Arc<(Mutex<Log>, Condvar)>,
}

impl Server {
    /// Spawns `command` with stderr captured (and drained all along, so
    /// the server never blocks on a full pipe).
    pub fn spawn(mut command: Command) -> Server {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start torsion");
        let stderr = child.stderr.take().expect("stderr");
        let log: Arc<(Mutex<Log>, Condvar)> = Arc::default();
        let keep = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                keep.0.lock().unwrap().lines.push(line);
                keep.1.notify_all();
            }
            keep.0.lock().unwrap().closed = true;
            keep.1.notify_all();
        });
        Server { child, log }
    }

    /// Spawns and waits until `listeners` listening lines were printed.
    pub fn start(command: Command, listeners: usize) -> Server {
        let server = Server::spawn(command);
        server.wait_for(
            |lines| listening(lines).len() >= listeners,
            "listening lines",
        );
        server
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `ready` holds for the stderr lines so far; panics with
    /// the log after [`TIMEOUT`] or if stderr closes first.
    pub fn wait_for(&self, ready: impl Fn(&[String]) -> bool, what: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let (lock, cv) = &*self.log;
        let mut log = lock.lock().unwrap();
        loop {
            if ready(&log.lines) {
                return;
            }
            let now = Instant::now();
            if log.closed || now >= deadline {
                panic!("waiting for {what}; torsion's stderr: {:#?}", log.lines);
            }
            log = cv.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_line(&self, needle: &str) {
        self.wait_for(|l| l.iter().any(|x| x.contains(needle)), needle);
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.log.0.lock().unwrap().lines.clone()
    }

    /// The address of the first listener of `scheme`.
    pub fn addr(&self, scheme: &str) -> SocketAddr {
        let lines = self.lines();
        let found = listening(&lines);
        *found
            .iter()
            .find(|(s, _)| s == scheme)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("no {scheme} listener; stderr: {lines:#?}"))
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: i32) {
        let pid = libc::pid_t::try_from(self.pid()).unwrap();
        // SAFETY: kill(2) with our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {signal}");
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits (bounded by [`TIMEOUT`]) for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        match self.wait_exit_within(TIMEOUT) {
            Some(status) => status,
            None => panic!("torsion did not exit; stderr: {:#?}", self.lines()),
        }
    }

    /// Waits up to `limit` for the process to exit; `None` if it did not.
    pub fn wait_exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Thread ids of the process with their names (`comm`).
    pub fn threads(&self) -> Vec<(String, String)> {
        let dir = format!("/proc/{}/task", self.pid());
        let mut out = Vec::new();
        for t in std::fs::read_dir(dir).unwrap().flatten() {
            let tid = t.file_name().to_string_lossy().into_owned();
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            out.push((tid, comm.trim().to_string()));
        }
        out
    }

    /// A line of `/proc/PID/task/TID/status` (`Uid`, `voluntary_ctxt_switches`).
    pub fn task_status(&self, tid: &str, key: &str) -> String {
        let text =
            std::fs::read_to_string(format!("/proc/{}/task/{tid}/status", self.pid())).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} missing in status of {tid}"))
            .trim()
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `(scheme, address)` of every listening line.
pub fn listening(lines: &[String]) -> Vec<(String, SocketAddr)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix(READY_PREFIX)?;
            let (scheme, addr) = rest.split_once(READY_INFIX)?;
            Some((scheme.to_string(), addr.trim().parse().ok()?))
        })
        .collect()
}

/// A port that was free a moment ago (for `--workers`, where each worker
/// binding port 0 would not share one port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Accepts any server certificate (torsion's is self-signed) but still
/// checks the handshake signatures.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client config that trusts any certificate, with `alpn`.
pub fn tls_client(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A TLS stream to `addr` with SNI `host`, handshake done.
pub fn tls_connect(
    addr: SocketAddr,
    host: &str,
    alpn: &[&[u8]],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(TIMEOUT)).unwrap();
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(tls_client(alpn), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

/// A Gemini response: its header line, its body, and the server's
/// certificate (DER).
pub struct GeminiResponse {
    pub header: String,
    pub body: String,
    pub cert: Vec<u8>,
}

/// Sends `url` to the Gemini server at `addr` and reads the whole reply.
pub fn gemini(addr: SocketAddr, url: &str) -> GeminiResponse {
    let mut tls = tls_connect(addr, "localhost", &[]);
    let cert = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    tls.write_all(format!("{url}\r\n").as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Some servers close without close_notify; what arrived counts.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the Gemini response: {e}"),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (header, body) = text.split_once("\r\n").unwrap_or((&text, ""));
    GeminiResponse {
        header: header.to_string(),
        body: body.to_string(),
        cert,
    }
}

/// Sends one line to an echo listener and reads it back.
pub fn echo_once(addr: SocketAddr, line: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut buf = vec![0; line.len()];
    s.read_exact(&mut buf).expect("echo");
    String::from_utf8(buf).unwrap()
}
