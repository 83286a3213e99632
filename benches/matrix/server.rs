//! The server under test, in this process: one `torsion_reactor::Reactor`
//! on its own thread, pinned to the server core, serving the four listeners
//! the matrix measures with the real factories from torsion-protocols —
//! built the way `server/wiring.rs` builds them (the binary crate cannot be
//! imported, so this repeats the few lines that matter).
//!
//! Its CPU time is read from the thread's own CPU clock
//! (`pthread_getcpuclockid`), so nothing else in this process (the main
//! thread waiting for the load generator) is counted.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use torsion_protocols::echo::{Echo, EchoConfig};
use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};
use torsion_protocols::http::{HttpConfig, HttpFactory};
use torsion_protocols::websocket::{WsConfig, WsFactory};
use torsion_reactor::tls::{CertSource, CertStore, ClientAuth, ServerTlsConfig};
use torsion_reactor::{ListenOptions, Reactor, ReactorHandle};

/// Size of the small Gemini file: a typical gemtext page.
pub const GEMINI_SMALL: usize = 1024;
/// Size of the large Gemini file: a picture or a long document.
pub const GEMINI_LARGE: usize = 1 << 20;
/// Name of the small file in the capsule.
pub const SMALL_FILE: &str = "small.gmi";
/// Name of the large file in the capsule.
pub const LARGE_FILE: &str = "large.gmi";

/// The running server: where each listener is, and its thread's CPU clock.
pub struct Server {
    /// Gemini over TLS (the capsule in `dir`).
    pub gemini: SocketAddr,
    /// The HTTP → HTTPS redirect listener.
    pub http: SocketAddr,
    /// WebSocket over plain TCP (`/echo`).
    pub ws: SocketAddr,
    /// The reactor's TCP echo.
    pub tcp: SocketAddr,
    clock: libc::clockid_t,
    handle: ReactorHandle,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

/// What the server thread sends back once its listeners are open.
struct Ready {
    gemini: SocketAddr,
    http: SocketAddr,
    ws: SocketAddr,
    tcp: SocketAddr,
    clock: libc::clockid_t,
    handle: ReactorHandle,
}

impl Server {
    /// Writes the capsule and a certificate into a fresh temporary
    /// directory, then starts the reactor thread pinned to `core` (when
    /// given) and waits until every listener is open.
    pub fn start(core: Option<usize>) -> Server {
        let dir = temp_dir();
        let capsule = dir.join("capsule");
        std::fs::create_dir_all(&capsule).expect("create the capsule directory");
        std::fs::write(capsule.join(SMALL_FILE), gemtext(GEMINI_SMALL)).expect("write small file");
        std::fs::write(capsule.join(LARGE_FILE), gemtext(GEMINI_LARGE)).expect("write large file");
        std::fs::write(capsule.join("index.gmi"), gemtext(GEMINI_SMALL)).expect("write index");
        let state = dir.join("state");
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("matrix-server".into())
            .spawn(move || serve(core, &capsule, &state, tx))
            .expect("spawn the server thread");
        let ready = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server thread did not start");
        Server {
            gemini: ready.gemini,
            http: ready.http,
            ws: ready.ws,
            tcp: ready.tcp,
            clock: ready.clock,
            handle: ready.handle,
            thread: Some(thread),
            dir,
        }
    }

    /// CPU time the reactor thread has used so far (user + system).
    pub fn cpu(&self) -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `clock` is the CPU clock of a thread that lives as long as
        // `self` (it is joined in Drop); clock_gettime writes `ts` only.
        let rc = unsafe { libc::clock_gettime(self.clock, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime on the server thread's clock");
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server thread: pin, open the listeners, report, run until stopped.
fn serve(core: Option<usize>, capsule: &Path, state: &Path, tx: mpsc::Sender<Ready>) {
    if let Some(core) = core {
        crate::common::pin_to_core(core);
    }
    let mut clock: libc::clockid_t = 0;
    // SAFETY: pthread_self is always valid for the calling thread;
    // pthread_getcpuclockid writes `clock` only.
    let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
    assert_eq!(rc, 0, "pthread_getcpuclockid");

    // Built after the descriptor limit was raised: its connection cap is
    // derived from it.
    let mut reactor = Reactor::new().expect("reactor");
    let loopback = |l: &TcpListener| l.local_addr().expect("local address");

    // Gemini over TLS, as wiring.rs: one virtual host, client certificates
    // optional; a generated ECDSA P-256 certificate (the binary's default).
    let store = CertStore::new();
    store
        .add_default(
            &["localhost"],
            CertSource::Generated {
                state_dir: state.to_path_buf(),
                hostnames: vec!["localhost".into()],
            },
        )
        .expect("generate a certificate");
    let gemini_tls = ServerTlsConfig::builder(store)
        .client_auth(ClientAuth::Optional)
        .build()
        .expect("gemini TLS config");
    let gemini = TcpListener::bind("127.0.0.1:0").expect("bind gemini");
    let gemini_addr = loopback(&gemini);
    let mut host = VirtualHost::new("localhost", Root::Dir(capsule.to_path_buf()));
    // The load connects to 127.0.0.1 (no name resolution to go wrong).
    host.hostnames.push("127.0.0.1".into());
    host.cgi_dir = None;
    let factory =
        GeminiFactory::new(GeminiConfig::single(host), gemini_addr.port()).expect("gemini factory");
    reactor
        .adopt_tcp_listener(
            gemini,
            factory,
            ListenOptions {
                tls: Some(gemini_tls),
                ..ListenOptions::default()
            },
        )
        .expect("listen gemini");

    // The HTTP redirect listener (to https on 443, the default).
    let http = TcpListener::bind("127.0.0.1:0").expect("bind http");
    let http_addr = loopback(&http);
    reactor
        .adopt_tcp_listener(
            http,
            HttpFactory::new(HttpConfig::default()),
            ListenOptions::default(),
        )
        .expect("listen http");

    // WebSocket over plain TCP: the built-in /echo endpoint.
    let ws = TcpListener::bind("127.0.0.1:0").expect("bind ws");
    let ws_addr = loopback(&ws);
    reactor
        .adopt_tcp_listener(
            ws,
            WsFactory::new(WsConfig::default()),
            ListenOptions::default(),
        )
        .expect("listen ws");

    // The reactor's TCP echo (the binary's --echo listener).
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let tcp_addr = loopback(&tcp);
    reactor
        .adopt_tcp_listener(
            tcp,
            Echo::factory(EchoConfig::default()),
            ListenOptions::default(),
        )
        .expect("listen tcp");

    let ready = Ready {
        gemini: gemini_addr,
        http: http_addr,
        ws: ws_addr,
        tcp: tcp_addr,
        clock,
        handle: reactor.handle(),
    };
    if tx.send(ready).is_err() {
        return;
    }
    reactor.run().expect("reactor run");
}

/// A gemtext document of exactly `len` bytes.
fn gemtext(len: usize) -> Vec<u8> {
    const LINE: &[u8] = b"A line of gemtext to give the page its size: the quick brown fox.\n";
    let mut out = b"# torsion matrix benchmark\n\n".to_vec();
    while out.len() < len {
        out.extend_from_slice(LINE);
    }
    out.truncate(len.saturating_sub(1));
    out.push(b'\n');
    out
}

/// A new directory under the system's temporary directory.
fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("torsion-matrix-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}
