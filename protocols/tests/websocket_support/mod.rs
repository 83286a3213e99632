//! Shared by the WebSocket integration tests: a real server on a reactor
//! thread (port 0), a probe of its internals, and raw-frame helpers for
//! what well-behaved clients refuse to send.

#![allow(dead_code)] // Each test file uses a different part.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use torsion_protocols::websocket::frame::encode_frame;
use torsion_protocols::websocket::{OpCode, WsConfig, WsFactory, WsStats, CHAT_GROUP};
use torsion_reactor::{ListenOptions, Reactor, ReactorHandle};

/// Every blocking socket call in a test gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What the test can see of the server's insides, refreshed every few
/// milliseconds on the reactor thread.
#[derive(Clone, Debug, Default)]
pub struct Probe {
    /// The WebSocket module's counters.
    pub stats: WsStats,
    /// Largest queue (bytes) seen on any `/chat` member, over the run.
    pub max_chat_backlog: usize,
    /// `/chat` members now.
    pub chat_members: usize,
    /// How many times the reactor has refreshed the probe: a probe taken
    /// before the first refresh is all zeros, which reads like "no sockets
    /// open" though nothing was counted yet.
    pub refreshes: u64,
}

/// A server on its own reactor thread, stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    handle: ReactorHandle,
    thread: Option<JoinHandle<()>>,
    probe: Arc<Mutex<Probe>>,
}

impl Server {
    /// Serves `config` with the built-in endpoints.
    pub fn start(config: WsConfig) -> Server {
        Server::start_with(config, |_| {}, ListenOptions::default)
    }

    /// Serves `config`, letting `setup` add routes and `options` supply the
    /// listen options (e.g. a gate).
    pub fn start_with(
        config: WsConfig,
        setup: impl FnOnce(&mut WsFactory) + Send + 'static,
        options: impl FnOnce() -> ListenOptions + Send + 'static,
    ) -> Server {
        let _ = env_logger::builder().is_test(true).try_init();
        let probe = Arc::new(Mutex::new(Probe::default()));
        let (tx, rx) = mpsc::channel();
        let shared_probe = Arc::clone(&probe);
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().unwrap();
            let mut factory = WsFactory::new(config);
            setup(&mut factory);
            let ws = factory.handle();
            let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let id = reactor.listen_with(addr, factory, options()).unwrap();
            let local = match reactor.local_addr(id).unwrap() {
                torsion_reactor::Address::Tcp(a) => a,
                other => panic!("not TCP: {other:?}"),
            };
            reactor.schedule_every(Duration::from_millis(2), move |ctx, _| {
                let mut p = shared_probe.lock().unwrap();
                p.stats = ws.stats();
                p.refreshes += 1;
                let members = ws.members(CHAT_GROUP);
                p.chat_members = members.len();
                for id in members {
                    let queued = ctx.buffered_len_of(id).unwrap_or(0);
                    p.max_chat_backlog = p.max_chat_backlog.max(queued);
                }
            });
            tx.send((local, reactor.handle())).unwrap();
            reactor.run().unwrap();
        });
        let (addr, handle) = rx.recv_timeout(IO_TIMEOUT).unwrap();
        Server {
            addr,
            handle,
            thread: Some(thread),
            probe,
        }
    }

    /// The latest probe.
    pub fn probe(&self) -> Probe {
        self.probe.lock().unwrap().clone()
    }

    /// Waits (bounded) until `cond` holds on a probe refreshed after this
    /// call began (so nothing the test did before is missing from it);
    /// returns it.
    pub fn wait_for(&self, what: &str, cond: impl Fn(&Probe) -> bool) -> Probe {
        let deadline = Instant::now() + IO_TIMEOUT;
        let since = self.probe().refreshes;
        loop {
            let p = self.probe();
            if p.refreshes > since && cond(&p) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {p:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// `ws://` URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// A TCP connection with timeouts.
    pub fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// A tungstenite client on `path`.
    pub fn client(&self, path: &str) -> tungstenite::WebSocket<TcpStream> {
        self.client_with(path, None)
    }

    /// A tungstenite client on `path` with a config.
    pub fn client_with(
        &self,
        path: &str,
        config: Option<tungstenite::protocol::WebSocketConfig>,
    ) -> tungstenite::WebSocket<TcpStream> {
        let (ws, resp) =
            tungstenite::client::client_with_config(self.url(path), self.tcp(), config).unwrap();
        assert_eq!(resp.status(), 101);
        ws
    }

    /// A raw socket after a hand-written handshake on `path`: for frames no
    /// client library would send.
    pub fn raw(&self, path: &str) -> TcpStream {
        let mut s = self.tcp();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.addr
        )
        .unwrap();
        let head = read_head(&mut s);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        s
    }

    /// Sends a raw request and returns the whole response (the server
    /// closes after a refusal or a page).
    pub fn http(&self, request: &str) -> String {
        let mut s = self.tcp();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out).into_owned()
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

/// Reads an HTTP response head byte by byte (so no frame byte is eaten).
pub fn read_head(s: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert_eq!(n, 1, "EOF inside a response head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// The masking key of the raw frames.
pub const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A masked client frame.
pub fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, opcode, payload, Some(KEY), &mut out);
    out
}

/// A server frame read back: opcode bits, payload.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code of a Close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Reads one unmasked server frame; `None` on EOF before its first byte.
pub fn read_frame(s: &mut impl Read) -> Option<ServerFrame> {
    let mut b = [0u8; 2];
    match s.read(&mut b[..1]) {
        Ok(0) => return None,
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("read: {e}"),
    }
    s.read_exact(&mut b[1..]).unwrap();
    assert_eq!(b[1] & 0x80, 0, "server frames are never masked");
    let len = match b[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u64::from(u16::from_be_bytes(l))
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; usize::try_from(len).unwrap()];
    s.read_exact(&mut payload).unwrap();
    Some(ServerFrame {
        fin: b[0] & 0x80 != 0,
        opcode: b[0] & 0x0f,
        payload,
    })
}

/// Reads until the server's Close frame, then asserts the server closes
/// the TCP connection; returns the close code.
pub fn expect_close(s: &mut TcpStream) -> Option<u16> {
    loop {
        let f = read_frame(s).expect("EOF before the Close frame");
        if f.opcode == 0x8 {
            expect_eof(s);
            return f.close_code();
        }
    }
}

/// Asserts the server ends the connection (EOF or reset) within the
/// socket timeout.
pub fn expect_eof(s: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("connection not closed: {e}"),
        }
    }
}

/// Runs a Python `websockets` client (`python3 ARGS...`) to the end,
/// bounded by `limit` (the script has its own timeouts; this is the
/// backstop), and returns its stdout. Panics with its output if it hangs,
/// fails, or reports (exit 3) that the `websockets` package is missing.
pub fn run_python_client(args: &[String], limit: Duration) -> String {
    let mut child = std::process::Command::new("python3")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python client hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "Python `websockets` is missing: pip install websockets\n{stderr}"
    );
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    stdout
}
