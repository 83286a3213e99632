//! The WebSocket listener behind TLS (`wss://`, `https://`), over real
//! sockets: tungstenite on a rustls stream, hand-written requests and frames
//! on the same stream for what tungstenite would never send, and Python's
//! `websockets` with its own TLS stack (OpenSSL) as an independent client.
//! The listener is set up as the server sets up its wss listener (no client
//! certificates, ALPN `http/1.1`). Every test binds port 0 and is bounded by
//! socket timeouts.

mod websocket_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use torsion_protocols::websocket::{OpCode, OriginPolicy, WsConfig};
use tungstenite::protocol::frame::coding::{Data, OpCode as TOpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error as WsError, Message, WebSocket};
use websocket_support::{frame, read_frame, read_head, run_python_client, ServerFrame};
use wss::{read_all, Server, Tls};

/// A wss server on a reactor thread and a rustls client for it.
mod wss {
    use std::io::{self, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::path::Path;
    use std::sync::{mpsc, Arc, Mutex, OnceLock};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::sign::CertifiedKey;
    use rustls::{ClientConnection, StreamOwned};
    use torsion_protocols::websocket::{WsConfig, WsFactory, WsStats};
    use torsion_reactor::tls::certs::{certified_key, generate_pem, parse_chain, parse_key};
    use torsion_reactor::tls::provider::provider;
    use torsion_reactor::tls::{
        CertSource, CertStore, ClientAuth, ClientTlsConfig, ClientVerify, KeyAlgorithm,
        ServerTlsConfig,
    };
    use torsion_reactor::{Address, ListenOptions, Reactor, ReactorHandle};

    /// Every blocking socket call in a test gives up after this long.
    pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

    /// A client TLS stream over a TCP socket.
    pub type Tls = StreamOwned<ClientConnection, TcpStream>;

    /// One self-signed certificate for `localhost`, made once per test
    /// binary (in memory: nothing written to disk).
    fn certificate() -> Arc<CertifiedKey> {
        static KEY: OnceLock<Arc<CertifiedKey>> = OnceLock::new();
        KEY.get_or_init(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let (cert, key) =
                generate_pem(&["localhost".to_string()], KeyAlgorithm::EcdsaP256, now).unwrap();
            let path = Path::new("generated");
            let chain = parse_chain(cert.as_bytes(), path).unwrap();
            let key = parse_key(key.as_bytes(), path).unwrap();
            certified_key(chain, key, &provider(), path, path).unwrap()
        })
        .clone()
    }

    /// The end-entity certificate the server presents.
    pub fn server_certificate() -> CertificateDer<'static> {
        certificate().cert[0].clone()
    }

    /// The TLS configuration of the server's wss listener.
    fn server_tls() -> ServerTlsConfig {
        let store = CertStore::new();
        store
            .add_default(&["localhost"], CertSource::Static(certificate()))
            .unwrap();
        ServerTlsConfig::builder(store)
            .client_auth(ClientAuth::None)
            .alpn(&[b"http/1.1"])
            .build()
            .unwrap()
    }

    /// A wss server on its own reactor thread, stopped when dropped.
    pub struct Server {
        pub addr: SocketAddr,
        handle: ReactorHandle,
        thread: Option<JoinHandle<()>>,
        stats: Arc<Mutex<WsStats>>,
    }

    impl Server {
        /// Serves `config` (built-in endpoints) over TLS on 127.0.0.1:0.
        pub fn start(config: WsConfig) -> Server {
            let _ = env_logger::builder().is_test(true).try_init();
            let stats = Arc::new(Mutex::new(WsStats::default()));
            let shared = Arc::clone(&stats);
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::spawn(move || {
                let mut reactor = Reactor::new().unwrap();
                let factory = WsFactory::new(config);
                let ws = factory.handle();
                let options = ListenOptions {
                    tls: Some(server_tls()),
                    ..ListenOptions::default()
                };
                let id = reactor
                    .listen_with(
                        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
                        factory,
                        options,
                    )
                    .unwrap();
                let local = match reactor.local_addr(id).unwrap() {
                    Address::Tcp(a) => a,
                    other => panic!("not TCP: {other:?}"),
                };
                reactor.schedule_every(Duration::from_millis(2), move |_, _| {
                    *shared.lock().unwrap() = ws.stats();
                });
                tx.send((local, reactor.handle())).unwrap();
                reactor.run().unwrap();
            });
            let (addr, handle) = rx.recv_timeout(IO_TIMEOUT).unwrap();
            Server {
                addr,
                handle,
                thread: Some(thread),
                stats,
            }
        }

        /// Waits (bounded) until `cond` holds on the WebSocket counters.
        /// The snapshot is refreshed every few milliseconds, so `cond` must
        /// name every counter the test expects, not one then read others.
        pub fn wait_for(&self, what: &str, cond: impl Fn(&WsStats) -> bool) {
            let deadline = Instant::now() + IO_TIMEOUT;
            loop {
                let s = self.stats.lock().unwrap().clone();
                if cond(&s) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {s:?}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }

        /// `localhost:PORT`, the authority clients put in URLs and `Host`.
        pub fn authority(&self) -> String {
            format!("localhost:{}", self.addr.port())
        }

        /// `wss://localhost:PORT/path`.
        pub fn url(&self, path: &str) -> String {
            format!("wss://{}{path}", self.authority())
        }

        /// A completed TLS handshake (SNI `localhost`, ALPN `http/1.1`,
        /// any certificate accepted: the tests pin it instead).
        pub fn tls(&self) -> Tls {
            static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
            let config = CONFIG
                .get_or_init(|| {
                    ClientTlsConfig::builder(ClientVerify::NoVerify)
                        .alpn(&[b"http/1.1"])
                        .resumption(false)
                        .build()
                        .unwrap()
                        .rustls()
                        .clone()
                })
                .clone();
            let tcp = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT).unwrap();
            tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).unwrap();
            }
            tls
        }

        /// A tungstenite client on `path` over TLS.
        pub fn client(&self, path: &str) -> tungstenite::WebSocket<Tls> {
            let (ws, resp) = tungstenite::client(self.url(path), self.tls()).unwrap();
            assert_eq!(resp.status(), 101);
            ws
        }

        /// Sends a raw request over TLS and returns the whole answer, and
        /// whether the server ended TLS cleanly (close_notify before EOF).
        pub fn https(&self, request: &str) -> (String, bool) {
            let mut tls = self.tls();
            tls.write_all(request.as_bytes()).unwrap();
            tls.flush().unwrap();
            let (bytes, clean) = read_all(&mut tls);
            (String::from_utf8_lossy(&bytes).into_owned(), clean)
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

    /// Reads until the server ends the connection. Returns what arrived and
    /// whether the end was clean: rustls reports `Ok(0)` only after a
    /// close_notify, and `UnexpectedEof` for a TCP EOF without one.
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
}

/// The upgrade request for `path` with extra header lines.
fn upgrade(server: &Server, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
        server.authority()
    )
}

/// Reads until the server's Close, lets tungstenite answer it, and checks
/// the server then ends TLS with a close_notify: tungstenite sees a clean
/// end (`ConnectionClosed`), where a bare TCP EOF would be an I/O error
/// (`UnexpectedEof` from rustls). Returns the close code.
fn close_code(ws: &mut WebSocket<Tls>) -> u16 {
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => break u16::from(f.code),
            Ok(Message::Close(None)) => break 0,
            Ok(_) => continue,
            Err(e) => panic!("no Close frame: {e}"),
        }
    };
    match ws.read() {
        Err(WsError::ConnectionClosed) => code,
        Ok(m) => panic!("after Close: {m:?}"),
        Err(e) => panic!("not a clean TLS end after Close: {e}"),
    }
}

#[test]
fn wss_echo_with_tungstenite_over_rustls() {
    let server = Server::start(WsConfig::default());
    let mut ws = server.client("/echo");
    {
        // Really TLS, with the listener's certificate and ALPN.
        let conn = &ws.get_ref().conn;
        assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        let certs = conn.peer_certificates().unwrap();
        assert_eq!(certs[0], wss::server_certificate());
    }
    ws.send(Message::text("hello over TLS, wörld")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello over TLS, wörld"));
    let blob: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(blob.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(blob));

    // 1 MiB, the default limit: many TLS records each way.
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 253) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    match ws.read().unwrap() {
        Message::Binary(b) => assert!(b[..] == big[..], "1 MiB echo differs"),
        other => panic!("{other:?}"),
    }

    // A text message in three fragments with a ping between them: the pong
    // comes first, then the reassembled message.
    let text = "fragmented, héllo €";
    let (a, rest) = text.as_bytes().split_at(12); // inside "é"
    let (b, c) = rest.split_at(5); // inside "€"
    ws.write(Message::Frame(Frame::message(
        a.to_vec(),
        TOpCode::Data(Data::Text),
        false,
    )))
    .unwrap();
    ws.write(Message::Ping(b"mid".to_vec().into())).unwrap();
    ws.write(Message::Frame(Frame::message(
        b.to_vec(),
        TOpCode::Data(Data::Continue),
        false,
    )))
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        c.to_vec(),
        TOpCode::Data(Data::Continue),
        true,
    )))
    .unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(b"mid".to_vec().into()));
    assert_eq!(ws.read().unwrap(), Message::text(text));

    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(b"are you there".to_vec().into())
    );

    ws.close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    }))
    .unwrap();
    assert_eq!(close_code(&mut ws), 1000);
    // Text, binary, 1 MiB and the fragmented one, each echoed once.
    server.wait_for("the socket closed, four echoes", |s| {
        (s.sockets_open, s.upgrades, s.messages_in, s.messages_out) == (0, 1, 4, 4)
            && s.protocol_errors == 0
    });
}

#[test]
fn status_page_over_https_and_status_over_wss() {
    let config = WsConfig {
        status_interval: Duration::from_millis(50),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let (r, clean) = server.https(&format!(
        "GET / HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.authority()
    ));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(
        r.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
        "{r}"
    );
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
        "{head}"
    );
    assert!(body.starts_with("<!doctype html>"), "{body}");
    assert!(clean, "the page is followed by close_notify");

    let mut ws = server.client("/status");
    let mut snapshots = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while snapshots < 2 {
        assert!(Instant::now() < deadline, "only {snapshots} snapshots");
        let text = match ws.read().unwrap() {
            Message::Text(t) => t.as_str().to_owned(),
            other => panic!("{other:?}"),
        };
        // A recorded history may come first; then the live snapshots.
        if text.starts_with("{\"history\":") {
            continue;
        }
        assert!(text.starts_with("{\"time_ms\":"), "{text}");
        assert!(text.ends_with('}'), "{text}");
        assert!(text.contains("\"name\":\"websocket\""), "{text}");
        assert!(text.contains("\"sockets_open\":1"), "{text}");
        snapshots += 1;
    }
    ws.close(None).unwrap();
    assert_eq!(close_code(&mut ws), 0);
    server.wait_for("one page, one upgrade, closed", |s| {
        (s.pages, s.upgrades, s.sockets_open) == (1, 1, 0)
    });
}

#[test]
fn unmasked_frame_over_tls_is_1002_then_close_notify_then_eof() {
    let server = Server::start(WsConfig::default());
    let mut tls = server.tls();
    tls.write_all(upgrade(&server, "/echo", "").as_bytes())
        .unwrap();
    let head = read_head(&mut tls);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{head}"
    );
    // A masked echo first, to show the connection works; then a frame
    // without a mask, which clients must never send.
    tls.write_all(&frame(true, OpCode::Text, b"fine")).unwrap();
    assert_eq!(
        read_frame(&mut tls),
        Some(ServerFrame {
            fin: true,
            opcode: 0x1,
            payload: b"fine".to_vec()
        })
    );
    tls.write_all(b"\x81\x05hello").unwrap();
    tls.flush().unwrap();
    let ServerFrame {
        fin,
        opcode,
        payload,
    } = read_frame(&mut tls).expect("a Close frame");
    assert!(fin);
    assert_eq!(opcode, 0x8, "{payload:?}");
    assert_eq!(payload.get(..2), Some(&1002u16.to_be_bytes()[..]));
    // Nothing after the Close, and TLS ends with a close_notify (Ok(0);
    // a bare EOF would be UnexpectedEof).
    let (after, clean) = read_all(&mut tls);
    assert!(after.is_empty(), "{after:?}");
    assert!(clean, "no close_notify after the Close");
    // Then the TCP connection itself ends: EOF, with no byte after the
    // close_notify.
    let mut rest = [0u8; 64];
    match tls.sock.read(&mut rest) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes after close_notify"),
        Err(e) => panic!("no TCP EOF after close_notify: {e}"),
    }
    // Our side ends too; the server lets go of the connection.
    tls.conn.send_close_notify();
    let _ = tls.conn.complete_io(&mut tls.sock);
    drop(tls);
    server.wait_for("one protocol error, the socket closed", |s| {
        (s.sockets_open, s.upgrades, s.protocol_errors, s.messages_in) == (0, 1, 1, 1)
    });
}

#[test]
fn origin_refused_over_tls_is_403() {
    let config = WsConfig {
        origins: OriginPolicy::new(["https://good.example"]).unwrap(),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let (r, clean) = server.https(&upgrade(
        &server,
        "/echo",
        "Origin: https://evil.example\r\n",
    ));
    assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
    assert!(!r.contains("Sec-WebSocket-Accept"), "{r}");
    assert!(clean, "the refusal is followed by close_notify");
    // A page served over https from a different port is another origin.
    let (r, _) = server.https(&upgrade(
        &server,
        "/echo",
        &format!("Origin: https://localhost:{}\r\n", server.addr.port() ^ 1),
    ));
    assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
    // The allow-listed origin and the listener's own https origin (the
    // status page's script) are let in.
    let same = format!("Origin: https://{}\r\n", server.authority());
    for origin in ["Origin: https://good.example\r\n", same.as_str()] {
        let mut tls = server.tls();
        tls.write_all(upgrade(&server, "/echo", origin).as_bytes())
            .unwrap();
        let head = read_head(&mut tls);
        assert!(head.starts_with("HTTP/1.1 101 "), "{origin}: {head}");
    }
    server.wait_for("two refusals, two upgrades", |s| {
        (s.handshakes_refused, s.upgrades) == (2, 2)
    });
}

/// The Python client: echo of text and binary, a ping, the close handshake
/// with 1000, over wss:// with a context that verifies nothing (the
/// certificate is self-signed). Exit code 3: `websockets` is missing.
const PYTHON_CLIENT: &str = r#"
import asyncio, ssl, sys
try:
    import websockets
    from websockets.asyncio.client import connect
except ImportError as e:
    print(f"python websockets is not installed: {e}", file=sys.stderr)
    sys.exit(3)

async def main(url):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with connect(url, ssl=ctx, open_timeout=5, close_timeout=5) as ws:
        tls = ws.transport.get_extra_info("ssl_object")
        assert tls is not None, "not TLS"
        await ws.send("hello from python over TLS, ünïcödé")
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert reply == "hello from python over TLS, ünïcödé", reply
        blob = bytes(range(256)) * 1000
        await ws.send(blob)
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert reply == blob, len(reply)
        await asyncio.wait_for(await ws.ping(b"py"), 5)
        await ws.close(code=1000, reason="done")
        assert ws.close_code == 1000, ws.close_code
    print(f"ok {tls.version()} (websockets {websockets.__version__})")

asyncio.run(main(sys.argv[1]))
"#;

#[test]
fn python_websockets_over_wss() {
    let server = Server::start(WsConfig::default());
    let stdout = run_python_client(
        &[
            "-c".to_string(),
            PYTHON_CLIENT.to_string(),
            format!("wss://127.0.0.1:{}/echo", server.addr.port()),
        ],
        Duration::from_secs(9),
    );
    assert!(stdout.starts_with("ok TLSv1."), "{stdout}");
    server.wait_for("python's connection closed, two echoes", |s| {
        (s.sockets_open, s.upgrades, s.messages_in, s.protocol_errors) == (0, 1, 2, 0)
    });
}
