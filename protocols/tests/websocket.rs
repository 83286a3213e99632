//! The WebSocket listener over real sockets: tungstenite as the client for
//! framing and close cases (with raw frames written under it for what it
//! would never send), hand-written requests for the handshake refusals.
//! Every test binds port 0 and is bounded by socket timeouts.

mod websocket_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use torsion_protocols::websocket::{
    Endpoint, Message as WsMessage, OpCode, OriginPolicy, SlowReaderPolicy, WsConfig, WsContext,
};
use torsion_reactor::{Gate, ListenOptions, PeerAddr, Verdict};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};
use websocket_support::{expect_close, expect_eof, frame, read_frame, Server};

/// Reads until the server's Close, lets tungstenite answer it, and checks
/// the server then ends the TCP connection. Returns the close code.
fn close_code(ws: &mut WebSocket<TcpStream>) -> u16 {
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => break u16::from(f.code),
            Ok(Message::Close(None)) => break 0,
            Ok(_) => continue,
            Err(e) => panic!("no Close frame: {e}"),
        }
    };
    loop {
        match ws.read() {
            Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => return code,
            Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => return code,
            Err(WsError::Protocol(_)) => return code,
            Ok(_) => continue,
            Err(e) => panic!("after Close: {e}"),
        }
    }
}

/// A tungstenite client whose raw socket the test writes frames to.
fn write_raw(ws: &mut WebSocket<TcpStream>, bytes: &[u8]) {
    ws.get_mut().write_all(bytes).unwrap();
}

#[test]
fn echo_text_and_binary() {
    let server = Server::start(WsConfig::default());
    let mut ws = server.client("/echo");
    ws.send(Message::text("hello, wörld")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello, wörld"));
    let blob: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(blob.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(blob));
    ws.send(Message::text("")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text(""));
    ws.close(None).unwrap();
    assert_eq!(close_code(&mut ws), 0);
    let p = server.wait_for("counters", |p| p.stats.sockets_open == 0);
    assert_eq!(p.stats.messages_in, 3);
    assert_eq!(p.stats.messages_out, 3);
    assert_eq!(p.stats.upgrades, 1);
}

#[test]
fn sixteen_mib_message_with_a_raised_limit() {
    let config = WsConfig {
        max_message: 16 << 20,
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let client = WebSocketConfig::default()
        .max_message_size(Some(32 << 20))
        .max_frame_size(Some(32 << 20));
    let mut ws = server.client_with("/echo", Some(client));
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i * 7 % 253) as u8).collect();
    ws.send(Message::binary(big.clone())).unwrap();
    match ws.read().unwrap() {
        Message::Binary(b) => assert!(b[..] == big[..], "16 MiB echo differs"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fragmentation_at_every_byte_boundary() {
    let server = Server::start(WsConfig::default());
    let mut ws = server.client("/echo");
    let text = "héllo, wörld €"; // multi-byte characters get split too
    let bytes = text.as_bytes();
    for k in 0..=bytes.len() {
        let mut stream = frame(false, OpCode::Text, &bytes[..k]);
        stream.extend(frame(true, OpCode::Ping, b"mid"));
        stream.extend(frame(true, OpCode::Continuation, &bytes[k..]));
        write_raw(&mut ws, &stream);
        assert_eq!(ws.read().unwrap(), Message::Pong(b"mid".to_vec().into()));
        assert_eq!(ws.read().unwrap(), Message::text(text), "split at {k}");
    }
    // Three fragments at every pair of boundaries, the whole stream written
    // one byte per write: the server sees it split and merged every way.
    let mut stream = Vec::new();
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            stream.extend(frame(false, OpCode::Binary, &bytes[..i]));
            stream.extend(frame(false, OpCode::Continuation, &bytes[i..j]));
            stream.extend(frame(true, OpCode::Continuation, &bytes[j..]));
        }
    }
    let count = (bytes.len() + 1) * (bytes.len() + 2) / 2;
    let mut raw = ws.get_ref().try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for b in stream {
            raw.write_all(&[b]).unwrap();
        }
    });
    for _ in 0..count {
        assert_eq!(ws.read().unwrap(), Message::binary(bytes.to_vec()));
    }
    writer.join().unwrap();
}

#[test]
fn invalid_utf8_split_across_fragments_is_1007() {
    let server = Server::start(WsConfig::default());
    let mut ws = server.client("/echo");
    // "€" is E2 82 AC: the first fragment ends inside it, the second
    // continues with a byte that cannot follow.
    let mut stream = frame(false, OpCode::Text, b"price: \xe2\x82");
    stream.extend(frame(true, OpCode::Continuation, b"\x41 rest"));
    write_raw(&mut ws, &stream);
    assert_eq!(close_code(&mut ws), 1007);
    let p = server.wait_for("error count", |p| p.stats.protocol_errors == 1);
    assert_eq!(p.stats.messages_in, 0);
}

#[test]
fn invalid_close_codes_are_1002() {
    let server = Server::start(WsConfig::default());
    for code in [
        0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let mut ws = server.client("/echo");
        write_raw(
            &mut ws,
            &frame(true, OpCode::Close, &[(code >> 8) as u8, code as u8]),
        );
        assert_eq!(close_code(&mut ws), 1002, "code {code}");
    }
    // A one-byte close payload has no room for a code.
    let mut ws = server.client("/echo");
    write_raw(&mut ws, &frame(true, OpCode::Close, &[0x03]));
    assert_eq!(close_code(&mut ws), 1002);
    // A reason that is not UTF-8.
    let mut ws = server.client("/echo");
    write_raw(&mut ws, &frame(true, OpCode::Close, b"\x03\xe8bad \xff"));
    assert_eq!(close_code(&mut ws), 1007);
}

#[test]
fn valid_close_codes_are_echoed_then_tcp_closed() {
    let server = Server::start(WsConfig::default());
    for code in [
        1000u16, 1001, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
    ] {
        let mut ws = server.client("/echo");
        ws.close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "bye".into(),
        }))
        .unwrap();
        assert_eq!(close_code(&mut ws), code);
    }
    // 1012-1014 are valid too (tungstenite won't send them): raw.
    for code in [1012u16, 1013, 1014] {
        let mut s = server.raw("/echo");
        s.write_all(&frame(true, OpCode::Close, &code.to_be_bytes()))
            .unwrap();
        assert_eq!(expect_close(&mut s), Some(code));
    }
    // An empty Close is answered with an empty Close.
    let mut s = server.raw("/echo");
    s.write_all(&frame(true, OpCode::Close, b"")).unwrap();
    let f = read_frame(&mut s).unwrap();
    assert_eq!((f.opcode, f.payload.len()), (0x8, 0));
    expect_eof(&mut s);
}

#[test]
fn data_after_close_is_ignored() {
    let server = Server::start(WsConfig::default());
    let mut s = server.raw("/echo");
    let mut stream = frame(true, OpCode::Close, &1000u16.to_be_bytes());
    stream.extend(frame(true, OpCode::Text, b"too late"));
    stream.extend(frame(true, OpCode::Ping, b"too late"));
    s.write_all(&stream).unwrap();
    let f = read_frame(&mut s).unwrap();
    assert_eq!(f.close_code(), Some(1000));
    assert!(read_frame(&mut s).is_none(), "nothing after the Close");
}

#[test]
fn unmasked_frame_is_1002() {
    let server = Server::start(WsConfig::default());
    let mut ws = server.client("/echo");
    write_raw(&mut ws, b"\x81\x05hello");
    assert_eq!(close_code(&mut ws), 1002);
}

#[test]
fn length_of_2_pow_63_is_1002() {
    let server = Server::start(WsConfig::default());
    let mut ws = server.client("/echo");
    write_raw(
        &mut ws,
        &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
    );
    assert_eq!(close_code(&mut ws), 1002);
    // Reserved bits, reserved opcodes, long or fragmented control frames.
    for bad in [
        &[0xc1u8, 0x80, 1, 2, 3, 4][..],
        &[0x83, 0x80, 1, 2, 3, 4],
        &[0x89, 0xfe, 0, 126],
        &[0x09, 0x80, 1, 2, 3, 4],
        &[0x82, 0xfe, 0, 10],
    ] {
        let mut ws = server.client("/echo");
        write_raw(&mut ws, bad);
        assert_eq!(close_code(&mut ws), 1002, "{bad:02x?}");
    }
}

#[test]
fn over_the_limit_is_1009_before_it_is_buffered() {
    let config = WsConfig {
        max_message: 1024,
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let mut ws = server.client("/echo");
    ws.send(Message::binary(vec![7u8; 1024])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![7u8; 1024]));
    ws.send(Message::binary(vec![7u8; 1025])).unwrap();
    assert_eq!(close_code(&mut ws), 1009);
    // Fragments that add up past the limit.
    let mut ws = server.client("/echo");
    let mut stream = frame(false, OpCode::Text, &[b'a'; 600]);
    stream.extend(frame(true, OpCode::Continuation, &[b'b'; 600]));
    write_raw(&mut ws, &stream);
    assert_eq!(close_code(&mut ws), 1009);
    // A header announcing a huge frame is refused from the header alone.
    let mut ws = server.client("/echo");
    write_raw(&mut ws, &[0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert_eq!(close_code(&mut ws), 1009);
}

#[test]
fn ping_is_answered_with_pong() {
    let server = Server::start(WsConfig::default());
    let mut ws = server.client("/echo");
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(b"are you there".to_vec().into())
    );
    ws.send(Message::Ping(Vec::new().into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(Vec::new().into()));
}

#[test]
fn close_from_the_endpoint_waits_for_the_peer() {
    /// Closes with 4000 on the first message.
    struct Closer;
    impl Endpoint for Closer {
        fn on_message(&mut self, cx: &mut WsContext<'_, '_>, _msg: WsMessage<'_>) {
            cx.close(4000, "done");
            cx.send_text("never sent");
        }
    }
    let server = Server::start_with(
        WsConfig::default(),
        |f| {
            f.route("/closer", &[], |_| Box::new(Closer));
        },
        ListenOptions::default,
    );
    let mut ws = server.client("/closer");
    ws.send(Message::text("x")).unwrap();
    match ws.read().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4000);
            assert_eq!(f.reason.as_str(), "done");
        }
        other => panic!("{other:?}"),
    }
    // tungstenite answers the Close; the server then closes TCP.
    assert!(matches!(ws.read(), Err(WsError::ConnectionClosed)));
}

#[test]
fn origin_allow_list_and_same_origin() {
    let config = WsConfig {
        origins: OriginPolicy::new(["https://good.example"]).unwrap(),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let request = |origin: &str| {
        format!(
            "GET /echo HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n",
            server.addr
        )
    };
    let refused = server.http(&request("Origin: https://evil.example\r\n"));
    assert!(
        refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{refused}"
    );
    let mut s = server.tcp();
    s.write_all(request("Origin: https://GOOD.example:443\r\n").as_bytes())
        .unwrap();
    assert!(websocket_support::read_head(&mut s).starts_with("HTTP/1.1 101 "));
    let same = format!("Origin: http://{}\r\n", server.addr);
    let mut s = server.tcp();
    s.write_all(request(&same).as_bytes()).unwrap();
    assert!(websocket_support::read_head(&mut s).starts_with("HTTP/1.1 101 "));
    // No Origin: not a browser, allowed.
    let mut s = server.tcp();
    s.write_all(request("").as_bytes()).unwrap();
    assert!(websocket_support::read_head(&mut s).starts_with("HTTP/1.1 101 "));
    server.wait_for("refusal count", |p| p.stats.handshakes_refused == 1);
}

#[test]
fn handshake_refusals() {
    let server = Server::start(WsConfig::default());
    let upgrade = |path: &str, version: &str, key: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
        )
    };
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let r = server.http(&upgrade("/echo", "8", key));
    assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{r}");
    assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"), "{r}");
    let r = server.http(&upgrade("/echo", "13", "c2hvcnQ="));
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    let r = server.http(&upgrade("/nowhere", "13", key));
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    let r = server.http("GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    let r = server.http("POST /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");
    let r = server.http("garbage\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");
}

#[test]
fn status_page_on_plain_get() {
    let server = Server::start(WsConfig::default());
    let r = server.http("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Content-Type: text/html; charset=utf-8\r\n"));
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(body.starts_with("<!doctype html>"));
    let r = server.http("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = r.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(body.is_empty());
}

/// Refuses everyone politely for 3.5 s.
struct RefuseAll;
impl Gate for RefuseAll {
    fn admit(&mut self, _peer: &PeerAddr) -> Verdict {
        Verdict::Refuse {
            retry_after: Duration::from_millis(3500),
        }
    }
}

#[test]
fn gate_refusal_is_429_with_retry_after() {
    let server = Server::start_with(
        WsConfig::default(),
        |_| {},
        || ListenOptions {
            gate: Some(Box::new(RefuseAll)),
            ..ListenOptions::default()
        },
    );
    let r = server.http(
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{r}");
    assert!(r.contains("\r\nRetry-After: 4\r\n"), "{r}");
}

#[test]
fn subprotocol_negotiation_per_endpoint() {
    struct Named;
    impl Endpoint for Named {
        fn on_message(&mut self, cx: &mut WsContext<'_, '_>, _msg: WsMessage<'_>) {
            let name = cx.subprotocol().unwrap_or("none").to_owned();
            cx.send_text(&name);
        }
    }
    let server = Server::start_with(
        WsConfig::default(),
        |f| {
            f.route("/named", &["v2.torsion", "v1.torsion"], |_| Box::new(Named));
        },
        ListenOptions::default,
    );
    let ask = |offer: &str| {
        let mut s = server.tcp();
        write!(
            s,
            "GET /named HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        )
        .unwrap();
        let head = websocket_support::read_head(&mut s);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        s.write_all(&frame(true, OpCode::Text, b"?")).unwrap();
        let answer = read_frame(&mut s).unwrap();
        (head, String::from_utf8(answer.payload).unwrap())
    };
    // The server's preference wins among what the client offers.
    let (head, name) = ask("Sec-WebSocket-Protocol: v1.torsion, v2.torsion\r\n");
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: v2.torsion\r\n"),
        "{head}"
    );
    assert_eq!(name, "v2.torsion");
    let (head, name) =
        ask("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: v1.torsion\r\n");
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: v1.torsion\r\n"),
        "{head}"
    );
    assert_eq!(name, "v1.torsion");
    let (head, name) = ask("Sec-WebSocket-Protocol: other\r\n");
    assert!(!head.contains("Sec-WebSocket-Protocol"), "{head}");
    assert_eq!(name, "none");
}

#[test]
fn ping_timeout_closes_a_silent_client() {
    let config = WsConfig {
        ping_interval: Duration::from_millis(100),
        pong_deadline: Duration::from_millis(150),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    // Before connecting: the server's clocks start later, so the close
    // comes no sooner than the ping interval plus the pong deadline
    // (250 ms) after this, less a little timer slack.
    let start = Instant::now();
    let mut s = server.raw("/echo");
    let ping = read_frame(&mut s).unwrap();
    assert_eq!(ping.opcode, 0x9, "{ping:?}");
    // Not answered: the server gives up after the pong deadline.
    assert_eq!(expect_close(&mut s), Some(1011));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(240), "closed after {took:?}");
    server.wait_for("timeout count", |p| p.stats.ping_timeouts == 1);
}

#[test]
fn answered_pings_keep_the_connection_and_measure_rtt() {
    let config = WsConfig {
        ping_interval: Duration::from_millis(50),
        pong_deadline: Duration::from_millis(500),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let mut ws = server.client("/echo");
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pings = 0;
    // tungstenite answers each ping on its next read.
    while pings < 4 {
        assert!(Instant::now() < deadline, "only {pings} pings");
        match ws.read() {
            Ok(Message::Ping(p)) => {
                assert_eq!(p.len(), 8);
                pings += 1;
            }
            Ok(other) => panic!("{other:?}"),
            Err(WsError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let p = server.wait_for("an RTT", |p| p.stats.last_rtt_us > 0);
    assert_eq!(p.stats.ping_timeouts, 0);
    // Still open: an echo works.
    ws.send(Message::text("alive")).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                assert_eq!(t.as_str(), "alive");
                break;
            }
            Ok(Message::Ping(_)) => {}
            Ok(other) => panic!("{other:?}"),
            Err(WsError::Io(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn handshake_deadline_closes_a_trickling_client() {
    let config = WsConfig {
        handshake_deadline: Duration::from_millis(200),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    // Before connecting: the server's deadline starts at the accept, later.
    let start = Instant::now();
    let mut s = server.tcp();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n").unwrap();
    expect_eof(&mut s);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
}

#[test]
fn chat_reaches_every_other_client() {
    let server = Server::start(WsConfig::default());
    let mut a = server.client("/chat");
    let mut b = server.client("/chat");
    let mut c = server.client("/chat");
    server.wait_for("three members", |p| p.chat_members == 3);
    a.send(Message::text("hi from a")).unwrap();
    assert_eq!(b.read().unwrap(), Message::text("hi from a"));
    assert_eq!(c.read().unwrap(), Message::text("hi from a"));
    b.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(a.read().unwrap(), Message::binary(vec![1, 2, 3]));
    // a never got its own message: the next thing it reads is b's.
    assert_eq!(c.read().unwrap(), Message::binary(vec![1, 2, 3]));
    drop(c);
    server.wait_for("two members", |p| p.chat_members == 2);
}

/// Sends `count` 4 KiB messages to `/chat` from one client while another
/// member never reads; returns the server, the slow client and the
/// flooder (still connected).
fn flood_chat(policy: SlowReaderPolicy, count: usize) -> (Server, TcpStream, WebSocket<TcpStream>) {
    let config = WsConfig {
        slow_reader: policy,
        broadcast_high_water: 64 * 1024,
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let slow = server.raw("/chat");
    let mut flooder = server.client("/chat");
    server.wait_for("two members", |p| p.chat_members == 2);
    let msg = vec![b'x'; 4096];
    for _ in 0..count {
        flooder.send(Message::binary(msg.clone())).unwrap();
    }
    (server, slow, flooder)
}

#[test]
fn slow_reader_on_chat_misses_messages_but_memory_stays_bounded() {
    // 8192 x 4 KiB = 32 MiB: far more than the kernel's socket buffers.
    let (server, _slow, _flooder) = flood_chat(SlowReaderPolicy::Drop, 8192);
    let p = server.wait_for("all messages handled", |p| p.stats.messages_in == 8192);
    assert!(p.stats.broadcast_dropped > 0, "{p:?}");
    assert_eq!(
        p.stats.broadcast_dropped + p.stats.messages_out,
        8192,
        "each message was either queued or dropped: {p:?}"
    );
    // The slow client's queue never passed the mark by more than a frame.
    assert!(p.max_chat_backlog <= 64 * 1024 + 4100, "{p:?}");
    assert!(p.max_chat_backlog > 0, "{p:?}");
    assert_eq!(p.chat_members, 2, "Drop keeps the slow client");
    assert_eq!(p.stats.slow_closed, 0);
}

#[test]
fn slow_reader_on_chat_is_closed_with_1008_when_configured() {
    let (server, mut slow, _flooder) = flood_chat(SlowReaderPolicy::Close, 8192);
    let p = server.wait_for("slow reader closed", |p| p.stats.slow_closed == 1);
    assert!(p.max_chat_backlog <= 64 * 1024 + 4100, "{p:?}");
    // Reading now, the slow client finds what was queued, then the Close.
    assert_eq!(expect_close(&mut slow), Some(1008));
    server.wait_for("one member left", |p| p.chat_members == 1);
}

#[test]
fn status_pushes_json_snapshots() {
    let config = WsConfig {
        status_interval: Duration::from_millis(100),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let mut ws = server.client("/status");
    let first = match ws.read().unwrap() {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    assert!(first.starts_with("{\"time_ms\":"), "{first}");
    assert!(first.contains("\"name\":\"websocket\""), "{first}");
    assert!(first.contains("\"rss_bytes\":"), "{first}");
    let second = match ws.read().unwrap() {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    assert_ne!(first, second, "the numbers move");
    assert!(second.contains("\"sockets_open\":1"), "{second}");
}

#[test]
fn status_sends_recorded_history_first() {
    let config = WsConfig {
        status_interval: Duration::from_millis(20),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let mut first = server.client("/echo");
    first.send(Message::text("count me")).unwrap();
    first.read().unwrap();
    // Let the ticker record a few samples.
    server.wait_for("messages counted", |p| p.stats.messages_in == 1);
    std::thread::sleep(Duration::from_millis(100));
    let mut ws = server.client("/status");
    let history = match ws.read().unwrap() {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    assert!(
        history.starts_with("{\"history\":{\"names\":[\"websocket\"],\"samples\":[["),
        "{history}"
    );
    assert!(history.ends_with("]]}}"), "{history}");
    let snapshot = match ws.read().unwrap() {
        Message::Text(t) => t.as_str().to_owned(),
        other => panic!("{other:?}"),
    };
    assert!(snapshot.starts_with("{\"time_ms\":"), "{snapshot}");
}

#[test]
fn broadcast_file_is_pushed_to_chat_clients() {
    let path = std::env::temp_dir().join(format!(
        "torsion-broadcast-{}-{:?}.txt",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, "old").unwrap();
    let config = WsConfig {
        broadcast_file: Some(path.clone()),
        broadcast_poll: Duration::from_millis(20),
        ..WsConfig::default()
    };
    let server = Server::start(config);
    let mut a = server.client("/chat");
    let mut b = server.client("/chat");
    server.wait_for("two members", |p| p.chat_members == 2);
    std::fs::write(&path, "maintenance at noon\n").unwrap();
    assert_eq!(a.read().unwrap(), Message::text("maintenance at noon"));
    assert_eq!(b.read().unwrap(), Message::text("maintenance at noon"));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn flooding_echo_without_reading_pauses_the_reader() {
    let server = Server::start(WsConfig::default());
    let mut s = server.raw("/echo");
    s.set_nonblocking(true).unwrap();
    // Write until the socket refuses more: the server stopped reading
    // because its replies to us are not being read.
    let chunk: Vec<u8> = (0..64)
        .flat_map(|_| frame(true, OpCode::Binary, &[0u8; 1000]))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = 0usize;
    let mut blocked_since: Option<Instant> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "never blocked after {sent} bytes"
        );
        match s.write(&chunk[sent % chunk.len()..]) {
            Ok(n) => {
                sent += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(300) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Flow control held us back long before the 5 s were up; the server
    // never buffered all of it.
    assert!(sent < 96 << 20, "{sent}");
    // Reading drains the echoes and lets the server go on.
    s.set_nonblocking(false).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0);
}
