//! Helpers for the TLS tests over real sockets: a reactor with one TLS
//! listener on a background thread (with a channel to run code on the
//! reactor thread), a blocking rustls client, generated certificates and
//! temporary directories.
//!
//! Every blocking socket call has a timeout, so a broken server fails a test
//! instead of hanging it.

#![allow(dead_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use sha2::{Digest, Sha256};
use torsion_reactor::tls::certs::generate_pem;
use torsion_reactor::tls::{
    ClientTlsConfig, ClientVerify, KeyAlgorithm, ServerTlsConfig, TlsInfo, TlsVersions,
};
use torsion_reactor::{
    Address, Context, Disconnect, ListenOptions, ListenerId, ListenerStats, PeerAddr, PeerInfo,
    Protocol, Reactor, ReactorConfig, ReactorHandle, Transport,
};

/// Longest any single blocking socket operation of a test may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the reactor thread looks for work sent by the test thread.
const COMMAND_POLL: Duration = Duration::from_millis(2);

/// A blocking TLS client stream.
pub type Client = StreamOwned<ClientConnection, TcpStream>;

/// Work for the reactor thread: gets the reactor's context and the TLS
/// listener's id.
type Command = Box<dyn FnOnce(&mut Context<'_>, ListenerId) + Send>;

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("torsion-tlstest-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `SHA256:` + upper-case hex of the SHA-256 of `der`, computed here (not
/// with the reactor's helper) so the tests check the reactor's format.
pub fn sha256_hex(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let mut s = String::from("SHA256:");
    for b in digest {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// The DER of the first certificate in a PEM string.
pub fn pem_cert_der(pem: &str) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A self-signed ECDSA P-256 certificate for `names`: (cert PEM, PKCS#8
/// key PEM, fingerprint of the cert).
pub fn generate(names: &[&str]) -> (String, String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let (cert, key) = generate_pem(&names, KeyAlgorithm::EcdsaP256, now_unix()).unwrap();
    let fp = sha256_hex(pem_cert_der(&cert).as_ref());
    (cert, key, fp)
}

/// Seconds since the epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What the test server's protocols report back to the test.
#[derive(Debug)]
pub enum Event {
    /// `connection_made` ran (after the handshake, for TLS).
    Made {
        /// The client's address (matches the client socket's local address).
        peer: Option<SocketAddr>,
        /// `t.is_tls()`.
        is_tls: bool,
        /// `t.tls_info()`.
        info: Option<Box<TlsInfo>>,
    },
    /// `connection_lost` ran.
    Lost {
        /// The client's address.
        peer: Option<SocketAddr>,
        /// `Display` of the reason.
        reason: String,
        /// Whether connection_made had been called before.
        made: bool,
    },
}

fn tcp_peer(p: Option<PeerAddr>) -> Option<SocketAddr> {
    match p {
        Some(PeerAddr::Tcp(sa)) => Some(sa),
        _ => None,
    }
}

/// An echo protocol that reports its TLS facts and its end to the test.
pub struct ReportingEcho {
    tx: Sender<Event>,
    peer: Option<SocketAddr>,
    made: bool,
}

impl ReportingEcho {
    /// A protocol for the connection from `peer`, reporting on `tx`.
    pub fn new(peer: &PeerInfo, tx: Sender<Event>) -> Self {
        ReportingEcho {
            tx,
            // Known from the factory: a connection that never completes its
            // handshake has no address left by `connection_lost`.
            peer: tcp_peer(Some(peer.addr)),
            made: false,
        }
    }
}

impl Protocol for ReportingEcho {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.made = true;
        assert_eq!(self.peer, tcp_peer(t.peer_addr()));
        let _ = self.tx.send(Event::Made {
            peer: self.peer,
            is_tls: t.is_tls(),
            info: t.tls_info().map(Box::new),
        });
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        t.write(data);
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let _ = self.tx.send(Event::Lost {
            peer: self.peer,
            reason: reason.to_string(),
            made: self.made,
        });
    }
}

/// A reactor with one TLS listener on 127.0.0.1:0, running on its own
/// thread. Stopped (and joined, bounded) on drop.
pub struct Server {
    /// The TLS listener's address.
    pub addr: SocketAddr,
    /// Stops the reactor.
    pub handle: ReactorHandle,
    events: Receiver<Event>,
    /// Events received while looking for another one.
    backlog: Vec<Event>,
    commands: Sender<Command>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// Builds a protocol for a connection, given the events channel. Runs on
/// the reactor thread.
pub type MakeProtocol = Box<dyn FnMut(&PeerInfo, &Sender<Event>) -> Box<dyn Protocol> + Send>;

impl Server {
    /// Serves [`ReportingEcho`] over TLS with `tls`.
    pub fn echo(config: ReactorConfig, tls: ServerTlsConfig) -> Server {
        Server::start(
            config,
            tls,
            Box::new(|peer, tx| Box::new(ReportingEcho::new(peer, tx.clone()))),
        )
    }

    /// Serves the protocols `make` builds over TLS with `tls`.
    pub fn start(config: ReactorConfig, tls: ServerTlsConfig, mut make: MakeProtocol) -> Server {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (events_tx, events_rx) = mpsc::channel::<Event>();
        let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tls-reactor".into())
            .spawn(move || {
                let mut reactor = Reactor::with_config(config).expect("reactor");
                let options = ListenOptions {
                    tls: Some(tls),
                    ..ListenOptions::default()
                };
                let id = reactor
                    .listen_with(
                        SocketAddr::from(([127, 0, 0, 1], 0)),
                        move |peer: &PeerInfo| make(peer, &events_tx),
                        options,
                    )
                    .expect("listen");
                let addr = match reactor.local_addr(id) {
                    Some(Address::Tcp(a)) => a,
                    other => panic!("not a TCP listener: {other:?}"),
                };
                reactor.schedule_every(COMMAND_POLL, move |ctx, _| {
                    while let Ok(cmd) = cmd_rx.try_recv() {
                        cmd(ctx, id);
                    }
                });
                ready_tx.send((addr, reactor.handle())).unwrap();
                reactor.run().expect("run");
                drop(reactor);
                let _ = done_tx.send(());
            })
            .unwrap();
        let (addr, handle) = ready_rx.recv_timeout(IO_TIMEOUT).expect("reactor setup");
        Server {
            addr,
            handle,
            events: events_rx,
            backlog: Vec::new(),
            commands: cmd_tx,
            done: done_rx,
            thread: Some(thread),
        }
    }

    /// Runs `f` on the reactor thread and returns its result.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Context<'_>, ListenerId) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Box::new(move |ctx, id| {
                let _ = tx.send(f(ctx, id));
            }))
            .expect("reactor thread gone");
        rx.recv_timeout(IO_TIMEOUT).expect("reactor did not answer")
    }

    /// The TLS listener's counters now.
    pub fn stats(&self) -> ListenerStats {
        self.call(|ctx, id| ctx.listener_stats(id).expect("listener"))
    }

    /// Waits (bounded) until `pred` holds for the listener's counters;
    /// returns the last counters seen.
    pub fn wait_stats(
        &self,
        within: Duration,
        pred: impl Fn(&ListenerStats) -> bool,
    ) -> ListenerStats {
        let deadline = Instant::now() + within;
        loop {
            let s = self.stats();
            if pred(&s) || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next event matching `pred` (others are kept for later calls).
    pub fn wait_event(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(e) => self.backlog.push(e),
                Err(e) => panic!("no matching event ({e:?}); seen: {:?}", self.backlog),
            }
        }
    }

    /// `connection_made`'s report for the client whose local address is
    /// `peer`: (is_tls, tls_info).
    pub fn made(&mut self, peer: SocketAddr) -> (bool, TlsInfo) {
        match self.wait_event(|e| matches!(e, Event::Made { peer: Some(p), .. } if *p == peer)) {
            Event::Made { is_tls, info, .. } => (is_tls, *info.expect("tls_info() is Some")),
            other => unreachable!("{other:?}"),
        }
    }

    /// `connection_lost`'s report for `peer`: (reason, whether made).
    pub fn lost(&mut self, peer: SocketAddr) -> (String, bool) {
        match self.wait_event(|e| matches!(e, Event::Lost { peer: Some(p), .. } if *p == peer)) {
            Event::Lost { reason, made, .. } => (reason, made),
            other => unreachable!("{other:?}"),
        }
    }

    /// Every event that arrived so far (including the backlog).
    pub fn drain_events(&mut self) -> Vec<Event> {
        let mut out = std::mem::take(&mut self.backlog);
        out.extend(self.events.try_iter());
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.stop();
        let stopped = self.done.recv_timeout(IO_TIMEOUT);
        if let Some(t) = self.thread.take() {
            match stopped {
                Ok(()) => {
                    if let Err(p) = t.join() {
                        if !std::thread::panicking() {
                            std::panic::resume_unwind(p);
                        }
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // The thread ended without reporting: it panicked.
                    if let Err(p) = t.join() {
                        if !std::thread::panicking() {
                            std::panic::resume_unwind(p);
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !std::thread::panicking() {
                        panic!("reactor did not stop");
                    }
                }
            }
        }
    }
}

/// A rustls client configuration that accepts any server certificate (the
/// reactor's own no-verify mode), restricted to `versions`, with session
/// resumption off so every handshake shows the server's certificate.
pub fn no_verify(versions: TlsVersions) -> Arc<ClientConfig> {
    ClientTlsConfig::builder(ClientVerify::NoVerify)
        .versions(versions)
        .resumption(false)
        .build()
        .unwrap()
        .rustls()
        .clone()
}

/// Like [`no_verify`], presenting a client certificate.
pub fn no_verify_with_cert(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    versions: TlsVersions,
) -> Arc<ClientConfig> {
    ClientTlsConfig::builder(ClientVerify::NoVerify)
        .versions(versions)
        .resumption(false)
        .client_cert(chain, key)
        .build()
        .unwrap()
        .rustls()
        .clone()
}

/// A plain TCP connection with timeouts.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Connects and completes a TLS handshake. `server_name` is sent as SNI
/// unless it is an IP literal.
pub fn connect(cfg: Arc<ClientConfig>, addr: SocketAddr, server_name: &str) -> io::Result<Client> {
    let sock = tcp(addr);
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The client socket's local address (the server's `peer_addr`).
pub fn local(c: &Client) -> SocketAddr {
    c.sock.local_addr().unwrap()
}

/// Fingerprint of the certificate the server presented.
pub fn server_fp(c: &Client) -> String {
    let chain = c.conn.peer_certificates().expect("server certificate");
    sha256_hex(chain.first().expect("end-entity").as_ref())
}

/// Writes `msg` and reads back exactly as many bytes (an echo round trip).
pub fn echo(c: &mut Client, msg: &[u8]) -> io::Result<Vec<u8>> {
    c.write_all(msg)?;
    c.flush()?;
    let mut back = vec![0; msg.len()];
    c.read_exact(&mut back)?;
    Ok(back)
}

/// The first bytes of a genuine ClientHello (what rustls sends first).
pub fn client_hello() -> Vec<u8> {
    let mut conn = ClientConnection::new(
        no_verify(TlsVersions::Tls12And13),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

#[path = "../common/rng.rs"]
mod rng;
pub use rng::Rng;

/// Waits (bounded by the socket's read timeout) for the peer to close:
/// returns everything read before EOF or a reset.
pub fn read_until_closed(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}
