//! Shared pieces of the Gemini tests: a reactor on a background thread
//! serving a [`GeminiFactory`] over TLS on 127.0.0.1:0, a blocking rustls
//! client, temporary directories and client certificates.
//!
//! Every blocking socket call has a timeout, so a broken server fails a test
//! instead of hanging it.

#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use torsion_protocols::gemini::GeminiFactory;
use torsion_reactor::tls::certs::{generate_pem, parse_chain, parse_key};
use torsion_reactor::tls::{
    CertSource, CertStore, ClientTlsConfig, ClientVerify, KeyAlgorithm, ServerTlsConfig,
};
use torsion_reactor::{
    ChildId, ChildStream, Disconnect, Factory, Gate, ListenOptions, PeerAddr, PeerInfo, Protocol,
    Reactor, ReactorHandle, TimerId, Transport, Verdict,
};

/// Longest any blocking socket operation may take before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("torsion-gemini-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `content` to `rel` (creating parent directories).
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, content).unwrap();
        p
    }

    /// Writes an executable script to `rel`.
    pub fn script(&self, rel: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.write(rel, body);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A TLS configuration with one generated certificate for `names` (the
/// default), plus one per extra `(names)` entry, each chosen by SNI.
pub fn server_tls(state: &Path, default: &[&str], extra: &[&[&str]]) -> ServerTlsConfig {
    let store = CertStore::new();
    let source = |i: usize, names: &[&str]| CertSource::Generated {
        state_dir: state.join(format!("cert{i}")),
        hostnames: names.iter().map(|s| s.to_string()).collect(),
    };
    store.add_default(default, source(0, default)).unwrap();
    for (i, names) in extra.iter().enumerate() {
        store.add(names, source(i + 1, names)).unwrap();
    }
    ServerTlsConfig::builder(store).build().unwrap()
}

/// A gate that admits everyone only to have them refused politely.
struct RefuseAll(Duration);

impl Gate for RefuseAll {
    fn admit(&mut self, _peer: &PeerAddr) -> Verdict {
        Verdict::Refuse {
            retry_after: self.0,
        }
    }
}

/// Wraps a connection's protocol to record the largest output queue the
/// server ever had for it, so tests can prove streaming is bounded.
struct Probe {
    inner: Box<dyn Protocol>,
    max: Arc<AtomicUsize>,
}

impl Probe {
    fn record(&self, t: &Transport<'_>) {
        self.max.fetch_max(t.buffered_len(), Ordering::Relaxed);
    }
}

impl Protocol for Probe {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.inner.connection_made(t);
        self.record(t);
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        self.inner.data_received(t, data);
        self.record(t);
    }
    fn eof_received(&mut self, t: &mut Transport<'_>) {
        self.inner.eof_received(t);
    }
    fn write_drained(&mut self, t: &mut Transport<'_>) {
        self.inner.write_drained(t);
        self.record(t);
    }
    fn timer_fired(&mut self, t: &mut Transport<'_>, timer: TimerId) {
        self.inner.timer_fired(t, timer);
        self.record(t);
    }
    fn child_output(
        &mut self,
        t: &mut Transport<'_>,
        child: ChildId,
        stream: ChildStream,
        data: &[u8],
    ) {
        self.inner.child_output(t, child, stream, data);
        self.record(t);
    }
    fn child_exited(
        &mut self,
        t: &mut Transport<'_>,
        child: ChildId,
        status: std::process::ExitStatus,
    ) {
        self.inner.child_exited(t, child, status);
        self.record(t);
    }
    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &Disconnect) {
        self.inner.connection_lost(t, reason);
    }
}

/// A reactor serving one Gemini listener on a background thread.
pub struct Server {
    pub addr: SocketAddr,
    /// The largest output queue any connection had (bytes).
    pub max_buffered: Arc<AtomicUsize>,
    handle: ReactorHandle,
    thread: Option<JoinHandle<()>>,
}

/// How to start a test server.
pub struct Options {
    pub tls: ServerTlsConfig,
    /// Refuse every connection politely for this long (the gate's `44`).
    pub refuse: Option<Duration>,
}

impl Server {
    /// Serves the factory `make` builds (on the reactor's thread, since a
    /// factory holds `Rc`s) with `tls`.
    pub fn start(
        tls: ServerTlsConfig,
        make: impl FnOnce() -> GeminiFactory + Send + 'static,
    ) -> Server {
        Server::start_with(Options { tls, refuse: None }, make)
    }

    pub fn start_with(
        options: Options,
        make: impl FnOnce() -> GeminiFactory + Send + 'static,
    ) -> Server {
        let (tx, rx) = mpsc::channel();
        let max_buffered = Arc::new(AtomicUsize::new(0));
        let max = max_buffered.clone();
        let thread = thread::spawn(move || {
            let mut reactor = Reactor::new().unwrap();
            let mut factory = make();
            let wrapped = move |peer: &PeerInfo| {
                Box::new(Probe {
                    inner: factory.build(peer),
                    max: max.clone(),
                }) as Box<dyn Protocol>
            };
            let gate = options
                .refuse
                .map(|d| Box::new(RefuseAll(d)) as Box<dyn Gate>);
            let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let id = reactor
                .listen_with(
                    addr,
                    wrapped,
                    ListenOptions {
                        tls: Some(options.tls),
                        gate,
                        ..Default::default()
                    },
                )
                .unwrap();
            let local = match reactor.local_addr(id).unwrap() {
                torsion_reactor::Address::Tcp(a) => a,
                other => panic!("unexpected address {other}"),
            };
            tx.send((local, reactor.handle())).unwrap();
            reactor.run().unwrap();
        });
        let (addr, handle) = rx.recv_timeout(IO_TIMEOUT).expect("server started");
        Server {
            addr,
            max_buffered,
            handle,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `gemini://localhost:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("gemini://localhost:{}{path}", self.port())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client identity: chain and key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// A fresh self-signed client certificate whose CN is `cn`.
    pub fn generate(cn: &str) -> Identity {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let (cert, key) = generate_pem(&[cn.to_string()], KeyAlgorithm::EcdsaP256, now).unwrap();
        let path = Path::new("generated");
        Identity {
            chain: parse_chain(cert.as_bytes(), path).unwrap(),
            key: parse_key(key.as_bytes(), path).unwrap(),
        }
    }
}

/// A rustls client configuration that accepts any server certificate, with
/// an optional client certificate.
pub fn client_config(identity: Option<&Identity>) -> Arc<ClientConfig> {
    let mut builder = ClientTlsConfig::builder(ClientVerify::NoVerify).resumption(false);
    if let Some(id) = identity {
        builder = builder.client_cert(id.chain.clone(), id.key.clone_key());
    }
    builder.build().unwrap().rustls().clone()
}

/// An open TLS connection to the server.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake, sending `sni` as the server name.
pub fn connect(addr: SocketAddr, sni: &str, config: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// Reads until the server closes (close_notify or EOF), up to the timeout.
/// Returns what arrived, and whether the close was clean (close_notify).
pub fn read_all(tls: &mut Tls) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (out, false),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (out, false),
            Err(e) => panic!("read failed after {} bytes: {e}", out.len()),
        }
    }
}

/// Sends `line` (bytes exactly as given) and returns the whole answer.
pub fn request_raw_with(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
    line: &[u8],
) -> Vec<u8> {
    let mut tls = connect(addr, sni, config);
    tls.write_all(line).unwrap();
    tls.flush().unwrap();
    read_all(&mut tls).0
}

/// Sends `line` from a client without a certificate, SNI `localhost`.
pub fn request_raw(addr: SocketAddr, line: &[u8]) -> Vec<u8> {
    request_raw_with(addr, "localhost", client_config(None), line)
}

/// Requests `url` (CR LF added) and splits the answer.
pub fn get(addr: SocketAddr, url: &str) -> Answer {
    Answer::parse(request_raw(addr, format!("{url}\r\n").as_bytes()))
}

/// Requests `url` with a client certificate.
pub fn get_with(addr: SocketAddr, url: &str, identity: Option<&Identity>) -> Answer {
    Answer::parse(request_raw_with(
        addr,
        "localhost",
        client_config(identity),
        format!("{url}\r\n").as_bytes(),
    ))
}

/// A response: the header line (without CR LF) split into status and meta,
/// and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u8,
    pub meta: String,
    pub body: Vec<u8>,
    pub raw: Vec<u8>,
}

impl Answer {
    pub fn parse(raw: Vec<u8>) -> Answer {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("no header in {:?}", String::from_utf8_lossy(&raw)));
        let line = std::str::from_utf8(&raw[..end]).unwrap();
        let (code, meta) = line.split_at(2);
        Answer {
            status: code.parse().unwrap(),
            meta: meta.strip_prefix(' ').unwrap_or(meta).to_string(),
            body: raw[end + 2..].to_vec(),
            raw: raw.clone(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}
