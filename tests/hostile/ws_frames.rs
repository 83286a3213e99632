//! WebSocket frames that break the rules: headers announcing impossible
//! lengths (2^63 and up, past `--ws-max-message`, in a longer form than
//! needed), control frames too big or fragmented, unmasked client frames,
//! reserved opcodes and bits, a continuation with no message; and a 1 GiB
//! message announced a header byte at a time. Each is answered with a
//! Close carrying 1009 (too big) or 1002 (protocol error) as soon as the
//! header is whole, without the announced payload being sent (so it was
//! neither read nor buffered), then the connection ends; the status page
//! counts every one, memory stays flat, and a well-behaved client is
//! served promptly all along.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::wire::{read_step, ReadStep};
use crate::support::{
    self, assert_prompt_after, attacker_ip, show, start_warm, tls_from, wait_status, Launch,
    Prober, Resources, Status, ALL, PROBE_TIMEOUT, PROMPT,
};

/// The message limit these cases run with (`--ws-max-message`): under
/// 65,535 so the 16-bit length form can exceed it too.
const WS_MAX_MESSAGE: u64 = 60_000;

/// Starts the target with [`WS_MAX_MESSAGE`], warmed up, with its
/// footprint baseline.
fn start(name: &str) -> (support::Target, Resources) {
    let max = WS_MAX_MESSAGE.to_string();
    start_warm(
        name,
        Launch {
            args: &["--ws-max-message", &max],
            ..Launch::default()
        },
    )
}

/// A raw WebSocket over TLS: the upgrade done by hand, frames written and
/// read as bytes, so the attacker can send what no library would.
struct RawWs {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    /// Bytes read past the handshake (or past the last frame).
    pending: Vec<u8>,
}

/// Why reading a frame from the server stopped.
#[derive(Debug)]
enum FrameRead {
    /// A frame: its first byte (FIN, RSV, opcode) and payload.
    Frame(u8, Vec<u8>),
    /// A masked frame, which a server must never send (RFC 6455 5.1).
    Masked,
    /// The server closed the connection.
    Closed,
    /// Nothing within the time allowed.
    TimedOut,
}

/// A whole Close frame from the server (FIN set, no RSV bit).
const SERVER_CLOSE: u8 = 0x88;

impl FrameRead {
    /// The status code when this is a Close frame that carries one.
    fn close_code(&self) -> Option<u16> {
        match self {
            FrameRead::Frame(SERVER_CLOSE, payload) => {
                payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]))
            }
            _ => None,
        }
    }
}

impl RawWs {
    /// TLS to `https` from `from`, then an upgrade to `path`; panics unless
    /// the server answers `101`.
    fn open(https: SocketAddr, from: IpAddr, path: &str) -> RawWs {
        let (sock, conn) = tls_from(from, https, &[b"http/1.1"]);
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            https.port()
        );
        tls.write_all(request.as_bytes()).expect("upgrade request");
        tls.flush().expect("flush");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = tls.read(&mut buf).expect("upgrade response");
            assert!(n > 0, "closed during the upgrade: {}", show(&got));
            got.extend_from_slice(&buf[..n]);
        };
        assert!(
            got.starts_with(b"HTTP/1.1 101 "),
            "upgrade to {path} answered {}",
            show(&got)
        );
        RawWs {
            tls,
            pending: got[end..].to_vec(),
        }
    }

    /// Writes raw bytes (frame headers, maybe payloads). The server may
    /// already have closed; callers for whom that is allowed ignore the
    /// error, and the reply tells.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tls.write_all(bytes).and_then(|()| self.tls.flush())
    }

    /// Reads the next whole server frame, or the close.
    fn read_frame(&mut self, within: Duration) -> FrameRead {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some((b0, masked, payload, used)) = parse_server_frame(&self.pending) {
                self.pending.drain(..used);
                return if masked {
                    FrameRead::Masked
                } else {
                    FrameRead::Frame(b0, payload)
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return FrameRead::TimedOut;
            }
            let _ = self.tls.sock.set_read_timeout(Some(left));
            match read_step(&mut self.tls, &mut buf) {
                ReadStep::Data(n) => self.pending.extend_from_slice(&buf[..n]),
                ReadStep::Nothing => {}
                ReadStep::Closed => return FrameRead::Closed,
            }
        }
    }
}

/// A server frame at the start of `b`: first byte, whether the mask bit
/// is set, payload (as sent), bytes used; `None` while incomplete.
fn parse_server_frame(b: &[u8]) -> Option<(u8, bool, Vec<u8>, usize)> {
    let b0 = *b.first()?;
    let b1 = *b.get(1)?;
    let (len, at) = match b1 & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes(b.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (
            usize::try_from(u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (usize::from(n), 2),
    };
    let masked = b1 & 0x80 != 0;
    let at = if masked { at + 4 } else { at };
    let payload = b.get(at..at + len)?;
    Some((b0, masked, payload.to_vec(), at + len))
}

/// Which length encoding a frame header uses.
#[derive(Clone, Copy, Debug)]
enum LenForm {
    Short,
    U16,
    U64,
}

impl LenForm {
    /// The shortest form that holds `len`, as RFC 6455 requires.
    fn shortest(len: u64) -> LenForm {
        if len < 126 {
            LenForm::Short
        } else if len <= 0xffff {
            LenForm::U16
        } else {
            LenForm::U64
        }
    }
}

/// The mask key of every attacker frame.
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// A client frame header: `b0` (FIN, RSV, opcode), the announced length in
/// its 7-bit, 16-bit or 64-bit form as `form` says, and [`MASK`] unless
/// `masked` is false. No payload.
fn frame_header(b0: u8, len: u64, form: LenForm, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut h = vec![b0];
    match form {
        LenForm::Short => h.push(mask_bit | u8::try_from(len).expect("7-bit length")),
        LenForm::U16 => {
            h.push(mask_bit | 126);
            h.extend_from_slice(&u16::try_from(len).expect("16-bit length").to_be_bytes());
        }
        LenForm::U64 => {
            h.push(mask_bit | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        h.extend_from_slice(&MASK);
    }
    h
}

/// A masked client frame header in the shortest form: what a client that
/// follows the rules (but for the length) sends.
fn masked_header(b0: u8, len: u64) -> Vec<u8> {
    frame_header(b0, len, LenForm::shortest(len), true)
}

/// A masked client frame with its whole payload (`len` zeros, masked).
fn whole_frame(b0: u8, len: usize) -> Vec<u8> {
    let mut f = masked_header(b0, len as u64);
    f.extend((0..len).map(|i| MASK[i % 4]));
    f
}

/// A frame attack: what to send before the bad header (a legal first
/// fragment, or nothing), the bad header, and the close code it must get.
struct FrameAttack {
    name: &'static str,
    /// Whole frames sent first (payload included).
    prelude: Vec<u8>,
    /// The offending header; its announced payload is never sent.
    header: Vec<u8>,
    code: u16,
}

/// Every frame attack with the close code RFC 6455 (and the message
/// limit) calls for.
fn frame_attacks() -> Vec<FrameAttack> {
    use LenForm::{Short, U16, U64};
    const FIN_TEXT: u8 = 0x81;
    const FIN_BINARY: u8 = 0x82;
    const PING: u8 = 0x89;
    let attack = |name, header, code| FrameAttack {
        name,
        prelude: Vec::new(),
        header,
        code,
    };
    vec![
        attack(
            "2^63 bytes (top bit set)",
            frame_header(FIN_BINARY, 1 << 63, U64, true),
            1002,
        ),
        attack(
            "2^64-1 bytes (top bit set)",
            frame_header(FIN_BINARY, u64::MAX, U64, true),
            1002,
        ),
        attack(
            "2^63-1 bytes",
            frame_header(FIN_BINARY, (1 << 63) - 1, U64, true),
            1009,
        ),
        attack(
            "65,536 bytes (64-bit form)",
            frame_header(FIN_TEXT, 65_536, U64, true),
            1009,
        ),
        attack(
            "65,535 bytes (16-bit form)",
            frame_header(FIN_BINARY, 65_535, U16, true),
            1009,
        ),
        attack(
            "5 bytes in the 16-bit form",
            frame_header(FIN_BINARY, 5, U16, true),
            1002,
        ),
        attack(
            "5 bytes in the 64-bit form",
            frame_header(FIN_BINARY, 5, U64, true),
            1002,
        ),
        FrameAttack {
            name: "second fragment past the limit",
            // 40,000 bytes of a message, then a continuation announcing
            // 40,000 more: 80,000 > 60,000.
            prelude: whole_frame(0x02, 40_000),
            header: frame_header(0x80, 40_000, U16, true),
            code: 1009,
        },
        attack(
            "ping of 126 bytes",
            frame_header(PING, 126, U16, true),
            1002,
        ),
        attack(
            "ping of 2^63-1 bytes",
            frame_header(PING, (1 << 63) - 1, U64, true),
            1002,
        ),
        attack("fragmented ping", frame_header(0x09, 4, Short, true), 1002),
        attack(
            "unmasked text frame",
            frame_header(FIN_TEXT, 5, Short, false),
            1002,
        ),
        attack(
            "reserved opcode 0x3",
            frame_header(0x83, 0, Short, true),
            1002,
        ),
        attack(
            "reserved opcode 0xB",
            frame_header(0x8b, 0, Short, true),
            1002,
        ),
        attack("RSV1", frame_header(0xc1, 5, Short, true), 1002),
        attack("RSV2", frame_header(0xa1, 5, Short, true), 1002),
        attack("RSV3", frame_header(0x91, 5, Short, true), 1002),
        attack(
            "continuation with no message",
            frame_header(0x80, 5, Short, true),
            1002,
        ),
    ]
}

/// One frame attack's result.
#[derive(Debug)]
struct FrameResult {
    name: &'static str,
    path: &'static str,
    want: u16,
    /// The close code the server sent, if it sent a Close.
    code: Option<u16>,
    /// From the bad header to the Close frame.
    close_after: Duration,
    /// The server ended the connection after its Close (we sent nothing).
    eof_after_close: bool,
}

/// How long the frame attackers keep coming back.
const WS_ATTACK_FOR: Duration = Duration::from_secs(4);

/// Pause between two connections of one frame attacker: about 20 rounds
/// of 18 attackers, a few hundred TLS handshakes in all (the debug build's
/// handshakes are the costly part, not the frames).
const WS_ATTACK_PAUSE: Duration = Duration::from_millis(200);

/// One round of `a`: a WebSocket to `path` from `from`, the prelude, the
/// bad header; then the server's Close (skipping `/chat` relays) and the
/// end of the connection are awaited.
fn frame_attack(
    https: SocketAddr,
    from: IpAddr,
    path: &'static str,
    a: &FrameAttack,
) -> FrameResult {
    let mut ws = RawWs::open(https, from, path);
    // The server may refuse before the last byte: the reply tells.
    let _ = ws.send(&a.prelude);
    let sent = Instant::now();
    let _ = ws.send(&a.header);
    let code = loop {
        match ws.read_frame(Duration::from_secs(5)) {
            close @ FrameRead::Frame(SERVER_CLOSE, _) => break close.close_code(),
            FrameRead::Frame(..) => {}
            FrameRead::Masked | FrameRead::Closed | FrameRead::TimedOut => break None,
        }
    };
    let close_after = sent.elapsed();
    let eof_after_close =
        code.is_some() && matches!(ws.read_frame(Duration::from_secs(2)), FrameRead::Closed);
    FrameResult {
        name: a.name,
        path,
        want: a.code,
        code,
        close_after,
        eof_after_close,
    }
}

/// Every frame attack, one attacker per kind coming back for a few seconds
/// on `/echo` and `/chat` in turn (from distinct addresses), while the
/// prober runs: each is answered with
/// a Close carrying 1009 (too big) or 1002 (protocol error) at once,
/// without the announced payload having been sent (so it was neither read
/// nor buffered), then the server ends the connection; the status page
/// counts every one as a protocol error.
#[test]
fn websocket_frames_announcing_impossible_lengths_get_1009_or_1002_at_once() {
    let _one = support::serial();
    let (target, baseline) = start("hostile-frames");
    let pid = target.server.pid();
    let errors_before = Status::read(target.ports.https).ws("protocol_errors");

    let attacks = Arc::new(frame_attacks());
    let https = target.ports.https;
    let prober = Prober::start(&target.ports, &ALL);
    let until = Instant::now() + WS_ATTACK_FOR;
    let threads: Vec<_> = (0..attacks.len())
        .map(|i| {
            let attacks = Arc::clone(&attacks);
            std::thread::spawn(move || {
                let mut results = Vec::new();
                let mut round = 0;
                while Instant::now() < until {
                    let path = ["/echo", "/chat"][round % 2];
                    let from = attacker_ip(i * 50 + round);
                    results.push(frame_attack(https, from, path, &attacks[i]));
                    round += 1;
                    std::thread::sleep(WS_ATTACK_PAUSE);
                }
                results
            })
        })
        .collect();
    let results: Vec<FrameResult> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("frame thread"))
        .collect();
    let during = prober.finish();
    for a in attacks.iter() {
        let mine: Vec<_> = results.iter().filter(|r| r.name == a.name).collect();
        let slowest = mine.iter().map(|r| r.close_after).max().unwrap_or_default();
        eprintln!(
            "frame {:<32}: {} connections, codes {:?}, slowest close {slowest:?}",
            a.name,
            mine.len(),
            mine.iter()
                .map(|r| r.code)
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
    for r in &results {
        assert_eq!(
            r.code,
            Some(r.want),
            "{} on {}: want close {}, got {:?} after {:?}",
            r.name,
            r.path,
            r.want,
            r.code,
            r.close_after
        );
        assert!(
            r.close_after <= PROMPT,
            "{} on {}: close came only after {:?}",
            r.name,
            r.path,
            r.close_after
        );
        assert!(
            r.eof_after_close,
            "{} on {}: the server did not end the connection after its Close",
            r.name, r.path
        );
    }
    eprintln!("frames: {} connections", results.len());
    during.assert_prompt("during bad WebSocket frames", 20);

    assert_prompt_after(&target.ports, "bad WebSocket frames");
    // fds: the attackers are gone, so the server's sockets are too (2 for
    // a probe connection still closing). RSS: had any announced payload
    // been reserved, RSS would jump by gigabytes (or the process die); the
    // 40,000-byte first fragments (about 20 connections, one at a time)
    // were buffered for real, and the allocator may keep that (4 MiB).
    Resources::assert_back_near(pid, baseline, 2, 4096, Duration::from_secs(10));

    wait_status(
        https,
        "ws protocol_errors after the bad frames",
        errors_before + results.len() as u64,
        |status| status.ws("protocol_errors"),
    );
}

/// Sends `header` a byte at a time (a trickled announcement): the server
/// must say nothing before the header is whole, and close with 1009 as
/// soon as it is, before any of the announced payload arrives. Returns how
/// long the Close took after the header's last byte.
fn announce_too_much(ws: &mut RawWs, header: &[u8], what: &str) -> Duration {
    let (last, first) = header.split_last().expect("a header");
    for &b in first {
        ws.send(&[b]).expect("a header byte");
        std::thread::sleep(Duration::from_millis(5));
    }
    let early = ws.read_frame(Duration::from_millis(50));
    assert!(
        matches!(early, FrameRead::TimedOut),
        "{what}: the server answered a partial frame header: {early:?}"
    );
    ws.send(&[*last]).expect("the header's last byte");
    let sent = Instant::now();
    let answer = ws.read_frame(PROBE_TIMEOUT);
    let took = sent.elapsed();
    assert_eq!(
        answer.close_code(),
        Some(1009),
        "{what}: answer to a header passing --ws-max-message {WS_MAX_MESSAGE}: {answer:?}"
    );
    took
}

/// A WebSocket message of 1 GiB announced to `/echo` with
/// `--ws-max-message 60000`, two ways, trickled a header byte at a time:
/// as fragments that reach the limit exactly and one more fragment header
/// that would pass it, and as a single frame header announcing 1 GiB (and
/// as a first fragment announcing 1 GiB). Each time the server closes with
/// 1009 as soon as the header passing the limit is whole, without waiting
/// for (or buffering) its payload; the connections are counted as protocol
/// errors, memory stays flat, and the probes stay prompt.
#[test]
fn websocket_message_announced_past_the_limit_is_closed_with_1009_at_the_header() {
    let _one = support::serial();
    let (target, baseline) = start("ws-too-big");
    let https = target.ports.https;
    let before = Status::read(https);
    let prober = Prober::start(&target.ports, &ALL);
    let fragment = WS_MAX_MESSAGE / 4;
    let gib: u64 = 1 << 30;
    let mut attacks = 0u64;
    let mut slowest = Duration::ZERO;
    let start = Instant::now();
    let mut n = 0;
    // Keep attacking for a few seconds while the probes run.
    while start.elapsed() < Duration::from_secs(4) {
        // Fragments up to the limit exactly (accepted), then one more
        // fragment header.
        let mut ws = RawWs::open(https, attacker_ip(n), "/echo");
        let mut fragments = whole_frame(0x02, fragment as usize);
        for _ in 1..4 {
            fragments.extend(whole_frame(0x00, fragment as usize));
        }
        ws.send(&fragments).expect("fragments up to the limit");
        let answer = ws.read_frame(Duration::from_millis(100));
        assert!(
            matches!(answer, FrameRead::TimedOut),
            "fragments totalling exactly --ws-max-message were refused: {answer:?}"
        );
        let header = masked_header(0x00, fragment);
        slowest = slowest.max(announce_too_much(
            &mut ws,
            &header,
            "fragment past the limit",
        ));
        // One frame announcing 1 GiB, and a first fragment announcing 1 GiB.
        for b0 in [0x82, 0x02] {
            let mut ws = RawWs::open(https, attacker_ip(n + 1), "/echo");
            let header = masked_header(b0, gib);
            slowest = slowest.max(announce_too_much(&mut ws, &header, "1 GiB frame header"));
        }
        attacks += 3;
        n += 2;
    }
    let during = prober.finish();
    during.assert_prompt("during oversized WebSocket messages", 30);
    assert!(
        slowest < Duration::from_millis(500),
        "a Close 1009 took {slowest:?} after the header that passed the limit"
    );
    assert_prompt_after(&target.ports, "oversized WebSocket messages");
    let now = Status::read(https);
    let counted = now.ws("protocol_errors") - before.ws("protocol_errors");
    assert_eq!(
        counted, attacks,
        "protocol errors counted on the status page for {attacks} connections closed with \
         1009: {now}"
    );
    // Nothing past the limit was ever held per connection, and the
    // connections came one at a time: 1 MiB covers allocator noise.
    Resources::assert_back_near(
        target.server.pid(),
        baseline,
        0,
        1024,
        Duration::from_secs(5),
    );
    eprintln!(
        "oversized WebSocket: {attacks} connections closed with 1009, slowest {slowest:?} \
         after the header"
    );
}
