//! TLS certificates of the built `torsion` binary: the generated
//! certificate is the same after a restart, and SIGHUP reloads certificate
//! files for new connections without dropping an open one (a bad new file
//! keeps the old certificate and logs an error).
//!
//! Contract relied on: `torsion --port 0 --no-http --no-ws --state-dir DIR`
//! runs only Gemini over TLS and prints `torsion: gemini listening on
//! 127.0.0.1:PORT` on stderr; `--tls-certfile F --tls-keyfile K` load the
//! certificate from files; SIGHUP reloads them; SIGTERM exits 0.
//!
//! The TLS client is the reactor's own (`Context::connect_tls` in no-verify
//! mode), run on a background thread.

mod server_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use torsion_reactor::tls::certs::{fingerprint, generate_pem, parse_chain};
use torsion_reactor::tls::{ClientTlsConfig, ClientVerify, KeyAlgorithm};
use torsion_reactor::{
    Address, ConnId, Context, Disconnect, Protocol, Reactor, ReactorHandle, Transport,
};

use server_support::{Server, TempDir, BIN};

const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// What a Gemini request for the built-in capsule's home page looks like.
const REQUEST: &[u8] = b"gemini://localhost/\r\n";

/// A running `torsion` serving only Gemini, and its Gemini address.
struct Torsion {
    server: Server,
    addr: SocketAddr,
}

impl Torsion {
    /// Starts the binary serving only Gemini on an ephemeral port.
    fn start(state: &Path, extra: &[&str]) -> Torsion {
        let mut cmd = Command::new(BIN);
        cmd.args(["--port", "0", "--no-http", "--no-ws", "--state-dir"])
            .arg(state)
            .args(extra)
            .env("RUST_LOG", "info");
        let server = Server::start(cmd, 1);
        let addr = server.addr("gemini");
        Torsion { server, addr }
    }

    fn signal(&self, sig: i32) {
        self.server.signal(sig);
    }

    fn stderr(&self) -> Vec<String> {
        self.server.lines()
    }

    /// Waits (bounded) for a stderr line containing all of `parts`, seen
    /// after the first `skip` lines.
    fn wait_log(&self, skip: usize, parts: &[&str]) -> String {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let lines = self.stderr();
            if let Some(l) = lines
                .iter()
                .skip(skip)
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}; stderr: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.server
            .wait_exit_within(IO_TIMEOUT)
            .expect("torsion did not exit on SIGTERM")
    }
}

/// What a client connection saw.
#[derive(Debug)]
enum Seen {
    /// Handshake done: the server certificate's fingerprint.
    Made(String),
    Data(Vec<u8>),
    Lost(String),
}

/// A client protocol that reports its server certificate and what it reads.
struct Probe(Sender<Seen>);

impl Protocol for Probe {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let fp = t
            .tls_info()
            .and_then(|i| i.peer_cert)
            .map(|p| p.hash)
            .unwrap_or_default();
        let _ = self.0.send(Seen::Made(fp));
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, data: &mut [u8]) {
        let _ = self.0.send(Seen::Data(data.to_vec()));
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let _ = self.0.send(Seen::Lost(reason.to_string()));
    }
}

type ClientJob = Box<dyn FnOnce(&mut Context<'_>) + Send>;

/// A reactor on a background thread used as a TLS client.
struct Clients {
    handle: ReactorHandle,
    commands: Sender<ClientJob>,
    thread: Option<JoinHandle<()>>,
}

impl Clients {
    fn start() -> Clients {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel::<ClientJob>();
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().expect("reactor");
            reactor.schedule_every(Duration::from_millis(2), move |ctx, _| {
                while let Ok(cmd) = cmd_rx.try_recv() {
                    cmd(ctx);
                }
            });
            ready_tx.send(reactor.handle()).unwrap();
            reactor.run().expect("run");
        });
        let handle = ready_rx.recv_timeout(IO_TIMEOUT).expect("client reactor");
        Clients {
            handle,
            commands: cmd_tx,
            thread: Some(thread),
        }
    }

    fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Context<'_>) -> R + Send + 'static) -> R {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Box::new(move |ctx| {
                let _ = tx.send(f(ctx));
            }))
            .unwrap();
        rx.recv_timeout(IO_TIMEOUT).expect("client reactor answers")
    }

    /// Opens a TLS connection (SNI `localhost`, no verification) and waits
    /// for the handshake: returns the connection, its events and the server
    /// certificate's fingerprint.
    fn open(&self, addr: SocketAddr) -> (ConnId, Receiver<Seen>, String) {
        let (tx, rx) = mpsc::channel();
        let id = self
            .call(move |ctx| {
                let tls = ClientTlsConfig::builder(ClientVerify::NoVerify)
                    .resumption(false)
                    .build()
                    .map_err(|e| e.to_string())?;
                ctx.connect_tls(&Address::Tcp(addr), "localhost", &tls, Box::new(Probe(tx)))
                    .map_err(|e| e.to_string())
            })
            .expect("connect_tls");
        match rx.recv_timeout(IO_TIMEOUT).expect("handshake") {
            Seen::Made(fp) => (id, rx, fp),
            other => panic!("handshake failed: {other:?}"),
        }
    }

    /// Sends a Gemini request on `id` and collects the response until the
    /// server closes.
    fn request(&self, id: ConnId, rx: &Receiver<Seen>) -> String {
        assert!(
            self.call(move |ctx| ctx.write_to(id, REQUEST)),
            "connection gone"
        );
        let mut body = Vec::new();
        loop {
            match rx.recv_timeout(IO_TIMEOUT).expect("response") {
                Seen::Data(d) => body.extend_from_slice(&d),
                Seen::Lost(reason) => {
                    // The server ends each response with close_notify.
                    assert_eq!(reason, "closed", "response so far: {body:?}");
                    return String::from_utf8_lossy(&body).into_owned();
                }
                Seen::Made(_) => unreachable!(),
            }
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Fingerprint of the first certificate in a PEM file.
fn file_fingerprint(path: &Path) -> String {
    let pem = std::fs::read(path).unwrap();
    let chain = parse_chain(&pem, path).unwrap();
    fingerprint(&chain[0])
}

#[test]
fn generated_certificate_is_the_same_after_a_restart() {
    let state = TempDir::new("persist");
    let clients = Clients::start();
    let mut seen = Vec::new();
    for start in 0..2 {
        let server = Torsion::start(state.path(), &[]);
        let (id, rx, fp) = clients.open(server.addr);
        let response = clients.request(id, &rx);
        assert!(response.starts_with("20 "), "start {start}: {response:?}");
        // The start-up log names the certificate it serves.
        server.wait_log(0, &["fingerprint", &fp]);
        let status = server.stop();
        assert!(status.success(), "exit status {status:?}");
        seen.push(fp);
    }
    assert_eq!(seen[0], seen[1], "the certificate changed across restarts");
    assert_eq!(file_fingerprint(&state.path().join("cert.pem")), seen[0]);
}

#[test]
fn sighup_reloads_certificate_files_and_keeps_old_connections() {
    let dir = TempDir::new("sighup");
    let cert = dir.path().join("site.crt");
    let key = dir.path().join("site.key");
    let names = vec!["localhost".to_string()];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (ca, ka) = generate_pem(&names, KeyAlgorithm::EcdsaP256, now).unwrap();
    let (cb, kb) = generate_pem(&names, KeyAlgorithm::EcdsaP256, now).unwrap();
    std::fs::write(&cert, &ca).unwrap();
    std::fs::write(&key, &ka).unwrap();
    let fa = file_fingerprint(&cert);

    let state = dir.path().join("state");
    let server = Torsion::start(
        &state,
        &[
            "--tls-certfile",
            cert.to_str().unwrap(),
            "--tls-keyfile",
            key.to_str().unwrap(),
        ],
    );
    let clients = Clients::start();
    // The handshake also proves the loop runs, so the SIGHUP handler is in
    // place before the signal is sent.
    let (old, old_rx, fp) = clients.open(server.addr);
    assert_eq!(fp, fa);

    std::fs::write(&cert, &cb).unwrap();
    std::fs::write(&key, &kb).unwrap();
    let fb = file_fingerprint(&cert);
    assert_ne!(fa, fb);
    let mark = server.stderr().len();
    server.signal(libc::SIGHUP);
    server.wait_log(mark, &["SIGHUP", "reloaded 1"]);

    let (new, new_rx, fp) = clients.open(server.addr);
    assert_eq!(
        fp, fb,
        "a new connection after SIGHUP gets the new certificate"
    );
    let response = clients.request(new, &new_rx);
    assert!(response.starts_with("20 "), "{response:?}");
    // The connection opened before the reload still works.
    let response = clients.request(old, &old_rx);
    assert!(response.starts_with("20 "), "old connection: {response:?}");

    // A bad key file: an error in the log, and the current certificate stays.
    let (keep, keep_rx, _) = clients.open(server.addr);
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let mark = server.stderr().len();
    server.signal(libc::SIGHUP);
    let line = server.wait_log(mark, &["SIGHUP", "old certificates stay in use"]);
    assert!(line.contains("ERROR"), "logged as an error: {line}");
    assert!(line.contains("site.key"), "names the file: {line}");
    let (id, rx, fp) = clients.open(server.addr);
    assert_eq!(fp, fb, "the last good certificate is still served");
    assert!(clients.request(id, &rx).starts_with("20 "));
    assert!(clients.request(keep, &keep_rx).starts_with("20 "));

    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
}
