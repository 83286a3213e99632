//! Bad input on every listener: random bytes of random lengths on the
//! Gemini, HTTP and HTTPS/WSS ports; hand-built TLS ClientHellos with absurd
//! extensions and lying lengths on both TLS ports; WebSocket frames that
//! announce impossible lengths or break RFC 6455's framing rules. Each case
//! checks that the server answers per protocol (HTTP `4xx`, a TLS alert, a
//! WebSocket close `1009`/`1002`) or closes, never waits past the
//! protocol's deadline, counts what it refused, and that a well-behaved
//! client is served promptly all along.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server_support::TempDir;
use crate::support::{
    self, attacker_ip, connect_from, probe_rounds, raise_nofile, start_target, tls_session, Ports,
    Probe, Prober, Resources, Target,
};

/// The TLS handshake deadline these cases configure (`[tls]
/// handshake_timeout`): short so a case that waits for it stays short, long
/// enough that a prompt refusal ([`PROMPT`]) is clearly not the deadline.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(4);

/// The HTTP listener's head deadline (not configurable: `DEFAULT_HEAD_TIMEOUT`
/// in `protocols/src/http/config.rs`): a few random bytes that happen to be
/// a valid prefix of a request line are waited for this long.
const HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What "at once" means for a refusal: the server decides from the bytes
/// already sent, so only scheduling on a loaded 2-core machine (the debug
/// build, the prober and the attack threads) stands between the last byte
/// and the close.
const PROMPT: Duration = Duration::from_millis(1500);

/// Extra time over a server deadline before a connection still open counts
/// as hung: timers fire on the next loop turn, and the attack threads read
/// their sockets one after another.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// The configuration file every case here starts the server with.
const CONFIG: &str = "[tls]\nhandshake_timeout = \"4s\"\n";

/// Starts the target with [`CONFIG`] and `extra` flags, after raising the
/// descriptor limit so a few hundred attack sockets fit on both sides.
fn start(name: &str, extra: &[&str]) -> Target {
    raise_nofile();
    let mut args = vec!["--config", "torsion.toml"];
    args.extend_from_slice(extra);
    start_target(name, &args, |dir: &TempDir| {
        std::fs::write(dir.path().join("torsion.toml"), CONFIG).expect("write torsion.toml");
    })
}

/// A small seeded PRNG (xorshift64*), so the garbage is random but every
/// run sends the same bytes.
struct Rng(u64);

impl Rng {
    /// A generator for stream `seed` (any value; zero is remapped).
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// How a connection ended, as the attacker saw it.
#[derive(Debug, Default)]
struct Ending {
    /// The first bytes the server sent (at most [`KEPT_REPLY`]).
    reply: Vec<u8>,
    /// The server closed (EOF or reset) before the deadline.
    closed: bool,
    /// From the call until the close (or the deadline).
    after: Duration,
}

/// How much of a reply [`read_until_closed`] keeps.
const KEPT_REPLY: usize = 64;

/// Reads from `s` until the server closes it (EOF or reset) or `deadline`
/// passes, keeping the start of what it sent.
fn read_until_closed(s: &mut TcpStream, deadline: Instant) -> Ending {
    let start = Instant::now();
    let mut ending = Ending::default();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if s.set_read_timeout(Some(left)).is_err() {
            ending.closed = true;
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => {
                ending.closed = true;
                break;
            }
            Ok(n) => {
                let room = KEPT_REPLY.saturating_sub(ending.reply.len());
                ending.reply.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Reset, broken pipe...: the server is gone from this socket.
            Err(_) => {
                ending.closed = true;
                break;
            }
        }
    }
    ending.after = start.elapsed();
    ending
}

/// Writes all of `data`; `false` when the server closed while we wrote
/// (it refused before reading everything, which is allowed).
fn send(s: &mut TcpStream, data: &[u8]) -> bool {
    s.write_all(data).is_ok()
}

/// The start of a reply, for failure messages.
fn show(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(24)];
    format!("{:02x?} {:?}", head, String::from_utf8_lossy(head))
}

/// Which listener an attack connection goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Port {
    Gemini,
    Http,
    Https,
}

impl Port {
    /// The listener's address.
    fn addr(self, ports: &Ports) -> SocketAddr {
        match self {
            Port::Gemini => ports.gemini,
            Port::Http => ports.http,
            Port::Https => ports.https,
        }
    }

    /// The longest the server may keep a garbage connection the attacker
    /// holds open: its handshake (TLS) or head (HTTP) deadline.
    fn garbage_deadline(self) -> Duration {
        match self {
            Port::Http => HTTP_HEAD_TIMEOUT,
            Port::Gemini | Port::Https => HANDSHAKE_TIMEOUT,
        }
    }
}

/// A `/status` JSON snapshot (every listener's counters), read over WSS: the
/// history message is skipped, the first fresh snapshot returned.
fn status_json(https: SocketAddr) -> String {
    let tls = tls_session(https, &[b"http/1.1"]);
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("status read timeout");
    let url = format!("wss://localhost:{}/status", https.port());
    let (mut ws, _) = tungstenite::client(url, tls).expect("status WebSocket handshake");
    loop {
        let msg = ws.read().expect("status message");
        if let tungstenite::Message::Text(text) = msg {
            if !text.starts_with("{\"history\"") {
                let _ = ws.close(None);
                return text.to_string();
            }
        }
    }
}

/// A counter of the status JSON: `key` inside the object that starts with
/// `scope` (e.g. `{"name":"gemini"` or `"ws":{`). Hand-parsed: the shape is
/// fixed (`StatusSnapshot::write_json`) and no JSON crate is a dependency.
fn status_counter(json: &str, scope: &str, key: &str) -> u64 {
    let at = json
        .find(scope)
        .unwrap_or_else(|| panic!("no {scope} in status JSON {json}"));
    let object = &json[at..];
    let object = &object[..object.find('}').unwrap_or(object.len())];
    let field = format!("\"{key}\":");
    let start = object
        .find(&field)
        .unwrap_or_else(|| panic!("no {key} in {object}"))
        + field.len();
    object[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {object}"))
}

/// Polls the status page until `counter` of it reaches `want` (snapshots are
/// built when asked, but the hub's counters are flushed per event).
fn wait_status_counter(
    https: SocketAddr,
    what: &str,
    want: u64,
    counter: impl Fn(&str) -> u64,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let json = status_json(https);
        let got = counter(&json);
        if got >= want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: status page says {got}, want at least {want}; JSON: {json}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One garbage connection's result.
#[derive(Debug)]
struct Garbage {
    n: usize,
    port: Port,
    len: usize,
    held: bool,
    ending: Ending,
}

/// Connection `n` of the garbage attack: random bytes of a log-uniform
/// random length (1 byte to 16 KiB) in random chunks, then either a close
/// or a hold until the server closes (bounded by the port's deadline).
fn garbage_connection(n: usize, port: Port, ports: &Ports) -> Garbage {
    let mut rng = Rng::new(n as u64 + 1);
    let bits = rng.below(15);
    let len = 1 + rng.below(1u64 << bits) as usize;
    let held = n % 2 == 1;
    let mut data = vec![0u8; len];
    rng.fill(&mut data);
    let mut s = connect_from(attacker_ip(n), port.addr(ports))
        .unwrap_or_else(|e| panic!("garbage connection {n} to {port:?}: {e}"));
    let mut sent_all = true;
    let mut rest = &data[..];
    while !rest.is_empty() {
        let take = (1 + rng.below(4096) as usize).min(rest.len());
        if !send(&mut s, &rest[..take]) {
            sent_all = false;
            break;
        }
        rest = &rest[take..];
    }
    let ending = if held || !sent_all {
        // Held (or already refused): wait for the server to close it. The
        // deadline counts from the connect, as the server's does.
        read_until_closed(
            &mut s,
            Instant::now() + port.garbage_deadline() + DEADLINE_MARGIN,
        )
    } else {
        let _ = s.shutdown(std::net::Shutdown::Write);
        Ending {
            closed: true,
            ..Ending::default()
        }
    };
    Garbage {
        n,
        port,
        len,
        held,
        ending,
    }
}

/// 300 connections (100 per listener, from 250 loopback addresses) send
/// random bytes; half close at once, half hold the connection. Every held
/// one is closed by the server within its protocol's deadline, with an HTTP
/// `4xx` or a TLS alert (or nothing) as the only answer; the well-behaved
/// client stays prompt and the footprint comes back.
#[test]
fn random_garbage_on_every_port_is_refused_and_closed_while_probes_stay_prompt() {
    let _one = support::serial();
    let target = start("hostile-garbage", &[]);
    let kinds = [Probe::Gemini, Probe::Http, Probe::Wss];
    probe_rounds(&target.ports, &kinds, 3).assert_prompt("warm-up", 9);
    let pid = target.server.pid();
    let baseline = Resources::of(pid);

    const CONNECTIONS: usize = 300;
    const THREADS: usize = 30;
    let started = Instant::now();
    let prober = Prober::start(&target.ports, &kinds);
    let ports = Arc::new(Ports {
        gemini: target.ports.gemini,
        http: target.ports.http,
        https: target.ports.https,
    });
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let ports = Arc::clone(&ports);
            std::thread::spawn(move || {
                (t..CONNECTIONS)
                    .step_by(THREADS)
                    .map(|n| {
                        let port = [Port::Gemini, Port::Http, Port::Https][n % 3];
                        garbage_connection(n, port, &ports)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Garbage> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("garbage thread"))
        .collect();
    let during = prober.finish();
    let attack_took = started.elapsed();

    let hung: Vec<_> = results.iter().filter(|g| !g.ending.closed).collect();
    assert!(
        hung.is_empty(),
        "{} garbage connections still open past their deadline: {:#?}",
        hung.len(),
        &hung[..hung.len().min(5)]
    );
    let mut http_4xx = 0;
    let mut tls_alerts = 0;
    for g in &results {
        let reply = &g.ending.reply;
        match g.port {
            Port::Http => {
                assert!(
                    reply.is_empty() || reply.starts_with(b"HTTP/1.1 4"),
                    "HTTP garbage #{} ({} bytes) answered {}",
                    g.n,
                    g.len,
                    show(reply)
                );
                http_4xx += usize::from(!reply.is_empty());
            }
            Port::Gemini | Port::Https => {
                // 21 = alert: garbage is never a ClientHello the server
                // could answer with a ServerHello (22).
                assert!(
                    reply.is_empty() || reply[0] == 21,
                    "{:?} garbage #{} ({} bytes) answered {}",
                    g.port,
                    g.n,
                    g.len,
                    show(reply)
                );
                tls_alerts += usize::from(!reply.is_empty());
            }
        }
    }
    let held = results.iter().filter(|g| g.held).count();
    eprintln!(
        "garbage: {} connections ({held} held) in {attack_took:?}; HTTP 4xx answers {http_4xx}, \
         TLS alerts {tls_alerts}; probes during: n {} p50 {:?} p99 {:?} max {:?}",
        results.len(),
        during.latencies.len(),
        during.quantile(0.5),
        during.quantile(0.99),
        during.quantile(1.0)
    );
    // The server answers per protocol, it does not just drop everything.
    assert!(
        http_4xx >= 10,
        "only {http_4xx} HTTP garbage connections got a 4xx"
    );
    assert!(
        tls_alerts >= 10,
        "only {tls_alerts} TLS garbage connections got an alert"
    );
    during.assert_prompt("during random garbage", 30);

    let after = probe_rounds(&target.ports, &kinds, 5);
    after.assert_prompt("after random garbage", 15);
    // fds: every attack connection is closed, so back to the baseline
    // exactly, but for a probe connection the server may not have finished
    // closing when we look (2). RSS: 300 short-lived TLS/HTTP sessions grow
    // the allocator's arenas; what it keeps is bounded, not per-connection
    // (4 MiB, about 14 KiB per attack connection).
    let now = Resources::assert_back_near(pid, baseline, 2, 4096, Duration::from_secs(10));
    eprintln!("garbage: baseline {baseline:?}, after {now:?}");
}

/// A ClientHello taken apart, to be put back together with absurd parts.
#[derive(Clone, Debug)]
struct Hello {
    version: [u8; 2],
    random: [u8; 32],
    session_id: Vec<u8>,
    /// Cipher suites, two bytes each.
    suites: Vec<u8>,
    compression: Vec<u8>,
    extensions: Vec<(u16, Vec<u8>)>,
}

/// The `server_name` extension (RFC 6066).
const EXT_SERVER_NAME: u16 = 0;
/// The `supported_groups` extension (RFC 8446), duplicated below.
const EXT_SUPPORTED_GROUPS: u16 = 10;
/// An unassigned extension number (servers must ignore unknown ones).
const EXT_UNKNOWN: u16 = 0x7a7a;

/// Big-endian `u16` from two bytes.
fn be16(b: &[u8]) -> usize {
    usize::from(b[0]) << 8 | usize::from(b[1])
}

/// Appends `n` as a big-endian `u16` (panics if it does not fit: a bug in
/// the case, not in the server).
fn put16(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u16::try_from(n).expect("u16 length").to_be_bytes());
}

/// Appends `n` as a big-endian 24-bit length.
fn put24(out: &mut Vec<u8>, n: usize) {
    assert!(n < 1 << 24, "u24 length");
    out.extend_from_slice(&(n as u32).to_be_bytes()[1..]);
}

impl Hello {
    /// The ClientHello rustls sends to `localhost` (TLS 1.3 and 1.2, real
    /// key shares), parsed: the base the absurd variants change.
    fn real() -> Hello {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut conn = rustls::ClientConnection::new(crate::server_support::tls_client(&[]), name)
            .expect("client");
        let mut wire = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut wire).expect("ClientHello");
        }
        // One record: 5-byte header, then the handshake message (4-byte
        // header, then the body).
        assert_eq!(wire[0], 22, "record type");
        assert_eq!(be16(&wire[3..5]), wire.len() - 5, "one record");
        assert_eq!(wire[5], 1, "ClientHello");
        let body = &wire[9..];
        let mut at = 0;
        let version = [body[0], body[1]];
        at += 2;
        let random: [u8; 32] = body[at..at + 32].try_into().expect("random");
        at += 32;
        let sid_len = usize::from(body[at]);
        let session_id = body[at + 1..at + 1 + sid_len].to_vec();
        at += 1 + sid_len;
        let suites_len = be16(&body[at..]);
        let suites = body[at + 2..at + 2 + suites_len].to_vec();
        at += 2 + suites_len;
        let comp_len = usize::from(body[at]);
        let compression = body[at + 1..at + 1 + comp_len].to_vec();
        at += 1 + comp_len;
        let ext_len = be16(&body[at..]);
        at += 2;
        let end = at + ext_len;
        assert_eq!(end, body.len(), "extensions end the message");
        let mut extensions = Vec::new();
        while at < end {
            let kind = be16(&body[at..]) as u16;
            let len = be16(&body[at + 2..]);
            extensions.push((kind, body[at + 4..at + 4 + len].to_vec()));
            at += 4 + len;
        }
        Hello {
            version,
            random,
            session_id,
            suites,
            compression,
            extensions,
        }
    }

    /// The handshake message body, lengths computed honestly.
    fn body(&self) -> Vec<u8> {
        let mut exts = Vec::new();
        for (kind, data) in &self.extensions {
            put16(&mut exts, usize::from(*kind));
            put16(&mut exts, data.len());
            exts.extend_from_slice(data);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&self.version);
        b.extend_from_slice(&self.random);
        b.push(u8::try_from(self.session_id.len()).expect("sid"));
        b.extend_from_slice(&self.session_id);
        put16(&mut b, self.suites.len());
        b.extend_from_slice(&self.suites);
        b.push(u8::try_from(self.compression.len()).expect("compression"));
        b.extend_from_slice(&self.compression);
        put16(&mut b, exts.len());
        b.extend_from_slice(&exts);
        b
    }

    /// The ClientHello handshake message (type 1, 24-bit length).
    fn message(&self) -> Vec<u8> {
        handshake(&self.body())
    }

    /// Replaces (or adds) extension `kind`.
    fn with_extension(mut self, kind: u16, data: Vec<u8>) -> Hello {
        match self.extensions.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) => slot.1 = data,
            None => self.extensions.push((kind, data)),
        }
        self
    }
}

/// A handshake message: type 1 (ClientHello), 24-bit length, `body`.
fn handshake(body: &[u8]) -> Vec<u8> {
    let mut m = vec![1];
    put24(&mut m, body.len());
    m.extend_from_slice(body);
    m
}

/// `message` in handshake records of at most `max` payload bytes each.
fn records(message: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in message.chunks(max) {
        out.extend_from_slice(&[22, 3, 1]);
        put16(&mut out, chunk.len());
        out.extend_from_slice(chunk);
    }
    out
}

/// A `server_name` extension body listing `names` as `host_name` entries.
fn server_names<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.push(0); // host_name
        put16(&mut list, name.len());
        list.extend_from_slice(name);
    }
    let mut ext = Vec::new();
    put16(&mut ext, list.len());
    ext.extend_from_slice(&list);
    ext
}

/// What the server may do with a hand-built ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Malformed: refused at once (an alert or a close, never a
    /// ServerHello), well before the handshake deadline.
    Refused,
    /// Absurd but well-formed (or incomplete): the server may answer it;
    /// the attacker then goes silent, and the connection must be closed by
    /// the handshake deadline at the latest.
    Bounded,
}

/// The absurd ClientHellos: name, bytes, what the server must do.
fn absurd_hellos() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let base = Hello::real();
    let mut v = Vec::new();

    // A valid ClientHello split over one-byte records.
    v.push((
        "split over 1-byte records",
        records(&base.message(), 1),
        Expect::Bounded,
    ));

    // One record just under the 16 KiB limit, filled by an unknown
    // extension.
    let plain = base.message().len();
    let pad = 16_384 - plain - 4 - 1;
    let near_limit = base.clone().with_extension(EXT_UNKNOWN, vec![0x5a; pad]);
    let near = near_limit.message();
    assert!(near.len() < 16_384);
    v.push((
        "16 KiB record, huge unknown extension",
        records(&near, 16_384),
        Expect::Bounded,
    ));

    // Twelve thousand cipher suites (24 KB: two records), the real ones
    // last.
    let mut many = base.clone();
    let mut suites = Vec::new();
    for i in 0..12_000u16 {
        // 0xff00.. and up are unassigned / private use.
        suites.extend_from_slice(&(0xfe00u16.wrapping_sub(i) | 0x0101).to_be_bytes());
    }
    suites.extend_from_slice(&base.suites);
    many.suites = suites;
    v.push((
        "12,000 cipher suites",
        records(&many.message(), 16_384),
        Expect::Bounded,
    ));

    // A server_name list of about 64 KiB (one entry per 250 bytes, under
    // the 16-bit extension length), several records.
    let entry = [b'a'; 250];
    let entries = 60_000 / (entry.len() + 3);
    let huge_sni = base.clone().with_extension(
        EXT_SERVER_NAME,
        server_names((0..entries).map(|_| &entry[..])),
    );
    v.push((
        "64 KiB server_name list",
        records(&huge_sni.message(), 16_384),
        Expect::Refused,
    ));

    // A host name of 255-byte labels (DNS allows 63).
    let mut long_labels = Vec::new();
    for i in 0..3 {
        if i > 0 {
            long_labels.push(b'.');
        }
        long_labels.extend_from_slice(&[b'x'; 255]);
    }
    let labels = base
        .clone()
        .with_extension(EXT_SERVER_NAME, server_names([&long_labels[..]]));
    v.push((
        "SNI of 255-byte labels",
        records(&labels.message(), 16_384),
        Expect::Bounded,
    ));

    // Many host_name entries (RFC 6066 allows one per type).
    let names: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("h{i}.localhost").into_bytes())
        .collect();
    let many_sni = base.clone().with_extension(
        EXT_SERVER_NAME,
        server_names(names.iter().map(Vec::as_slice)),
    );
    v.push((
        "1,000 SNI entries",
        records(&many_sni.message(), 16_384),
        Expect::Refused,
    ));

    // The same extension twice.
    let mut dup = base.clone();
    let groups = dup
        .extensions
        .iter()
        .find(|(k, _)| *k == EXT_SUPPORTED_GROUPS)
        .expect("supported_groups")
        .clone();
    dup.extensions.push(groups);
    v.push((
        "duplicate extension",
        records(&dup.message(), 16_384),
        Expect::Refused,
    ));

    // Lengths that lie: an extension longer than the extension block.
    let mut body = base.body();
    let first_ext_len_at = body.len() - {
        let exts: usize = base.extensions.iter().map(|(_, d)| 4 + d.len()).sum();
        exts
    } + 2;
    body[first_ext_len_at..first_ext_len_at + 2].copy_from_slice(&0xfff0u16.to_be_bytes());
    v.push((
        "extension longer than its block",
        records(&handshake(&body), 16_384),
        Expect::Refused,
    ));

    // The cipher suite list says more than the whole message holds.
    let mut body = base.body();
    let suites_at = 2 + 32 + 1 + base.session_id.len();
    body[suites_at..suites_at + 2].copy_from_slice(&0xfffeu16.to_be_bytes());
    v.push((
        "cipher suites longer than the message",
        records(&handshake(&body), 16_384),
        Expect::Refused,
    ));

    // The extension block length says more than the message holds.
    let mut body = base.body();
    let ext_block_at = suites_at + 2 + base.suites.len() + 1 + base.compression.len();
    body[ext_block_at..ext_block_at + 2].copy_from_slice(&0xff00u16.to_be_bytes());
    v.push((
        "extension block longer than the message",
        records(&handshake(&body), 16_384),
        Expect::Refused,
    ));

    // A handshake header announcing 16 MiB (rustls takes at most 64 KiB).
    let mut huge = base.message();
    huge[1..4].copy_from_slice(&[0xff, 0xff, 0xff]);
    v.push((
        "handshake announcing 16 MiB",
        records(&huge, 16_384),
        Expect::Refused,
    ));

    // Zero-length everything: an empty record, an empty handshake message,
    // and a hello with no suites, no compression, no extensions.
    v.push(("empty record", vec![22, 3, 1, 0, 0], Expect::Refused));
    v.push((
        "empty ClientHello body",
        records(&[1, 0, 0, 0], 16_384),
        Expect::Refused,
    ));
    let empty = Hello {
        version: [3, 3],
        random: [0; 32],
        session_id: Vec::new(),
        suites: Vec::new(),
        compression: Vec::new(),
        extensions: Vec::new(),
    };
    v.push((
        "hello with every list empty",
        records(&empty.message(), 16_384),
        Expect::Refused,
    ));

    // An SSLv2-style ClientHello (2-byte header with the top bit set).
    let mut v2 = vec![
        0x80, 0x2e, 0x01, 0x00, 0x02, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ];
    v2.extend_from_slice(&[0x07, 0x00, 0xc0, 0x05, 0x00, 0x80, 0x03, 0x00, 0x80]);
    v2.extend_from_slice(&[
        0x01, 0x00, 0x80, 0x06, 0x00, 0x40, 0x04, 0x00, 0x80, 0x02, 0x00, 0x80,
    ]);
    v2.extend_from_slice(&[0x11; 16]);
    v.push(("SSLv2 hello", v2, Expect::Refused));

    // Record headers announcing more than 2^14 bytes, payload not sent.
    v.push((
        "record announcing 2^14+1 bytes",
        vec![22, 3, 1, 0x40, 0x01],
        Expect::Bounded,
    ));
    v.push((
        "record announcing 65535 bytes",
        vec![22, 3, 1, 0xff, 0xff],
        Expect::Refused,
    ));
    v
}

/// One hand-built ClientHello's result.
#[derive(Debug)]
struct HelloResult {
    name: &'static str,
    port: Port,
    expect: Expect,
    ending: Ending,
}

/// Every absurd ClientHello, three times on each TLS port (from distinct
/// loopback addresses), all at once while the prober runs: malformed ones
/// are refused at once (an alert or a close, never a ServerHello), absurd
/// well-formed ones are answered or refused but never outlive the handshake
/// deadline; both TLS listeners count the failures on the status page.
#[test]
fn absurd_client_hellos_are_refused_or_cut_at_the_handshake_deadline() {
    let _one = support::serial();
    let target = start("hostile-hellos", &[]);
    let kinds = [Probe::Gemini, Probe::Http, Probe::Wss];
    probe_rounds(&target.ports, &kinds, 3).assert_prompt("warm-up", 9);
    let pid = target.server.pid();
    let baseline = Resources::of(pid);
    let before = status_json(target.ports.https);
    let failures_before = |json: &str| {
        (
            status_counter(json, "{\"name\":\"gemini\"", "tls_failures"),
            status_counter(json, "{\"name\":\"websocket\"", "tls_failures"),
        )
    };
    let (gemini_before, https_before) = failures_before(&before);

    const COPIES: usize = 3;
    let hellos = Arc::new(absurd_hellos());
    let prober = Prober::start(&target.ports, &kinds);
    let mut threads = Vec::new();
    let mut n = 0;
    for i in 0..hellos.len() {
        for port in [Port::Gemini, Port::Https] {
            for _ in 0..COPIES {
                let hellos = Arc::clone(&hellos);
                let addr = port.addr(&target.ports);
                let from = attacker_ip(n);
                n += 1;
                threads.push(std::thread::spawn(move || {
                    let (name, bytes, expect) = &hellos[i];
                    let mut s = connect_from(from, addr)
                        .unwrap_or_else(|e| panic!("{name} to {port:?}: {e}"));
                    let _ = s.set_nodelay(true);
                    // One write per record for the split hello, so the
                    // records really arrive in pieces.
                    if name.starts_with("split") {
                        for record in bytes.chunks(6) {
                            if !send(&mut s, record) {
                                break;
                            }
                        }
                    } else {
                        send(&mut s, bytes);
                    }
                    let ending = read_until_closed(
                        &mut s,
                        Instant::now() + HANDSHAKE_TIMEOUT + DEADLINE_MARGIN,
                    );
                    HelloResult {
                        name,
                        port,
                        expect: *expect,
                        ending,
                    }
                }));
            }
        }
    }
    let results: Vec<HelloResult> = threads
        .into_iter()
        .map(|t| t.join().expect("hello thread"))
        .collect();
    let during = prober.finish();

    for r in &results {
        let first = r.ending.reply.first().copied();
        eprintln!(
            "hello {:<40} {:?}: closed {} after {:?}, first record type {first:?}",
            r.name, r.port, r.ending.closed, r.ending.after
        );
    }
    for r in &results {
        assert!(
            r.ending.closed,
            "{:?}: \"{}\" still open {:?} after it was sent (handshake deadline {HANDSHAKE_TIMEOUT:?})",
            r.port, r.name, r.ending.after
        );
        if r.expect == Expect::Refused {
            assert!(
                r.ending.after <= PROMPT,
                "{:?}: malformed \"{}\" closed only after {:?} (want ≤ {PROMPT:?}: refused, not timed out)",
                r.port,
                r.name,
                r.ending.after
            );
            assert!(
                r.ending.reply.is_empty() || r.ending.reply[0] == 21,
                "{:?}: malformed \"{}\" answered {}, not an alert",
                r.port,
                r.name,
                show(&r.ending.reply)
            );
        } else {
            let reply = &r.ending.reply;
            assert!(
                reply.is_empty() || reply[0] == 21 || reply[0] == 22,
                "{:?}: \"{}\" answered {}, neither an alert nor a handshake",
                r.port,
                r.name,
                show(reply)
            );
        }
    }
    eprintln!(
        "hellos: {} connections; probes during: n {} p50 {:?} p99 {:?} max {:?}",
        results.len(),
        during.latencies.len(),
        during.quantile(0.5),
        during.quantile(0.99),
        during.quantile(1.0)
    );
    during.assert_prompt("during absurd ClientHellos", 20);

    let after = probe_rounds(&target.ports, &kinds, 5);
    after.assert_prompt("after absurd ClientHellos", 15);
    // fds: every attack connection is closed (2 for a probe connection
    // still closing). RSS: a 64 KiB ClientHello is buffered whole by rustls
    // before it is refused, 90 of them at once; the allocator may keep
    // those arenas (4 MiB).
    let now = Resources::assert_back_near(pid, baseline, 2, 4096, Duration::from_secs(10));
    eprintln!("hellos: baseline {baseline:?}, after {now:?}");

    // Every malformed hello is a failed handshake on its listener, and so
    // is every absurd one the attacker abandoned.
    let refused = results
        .iter()
        .filter(|r| r.expect == Expect::Refused && r.port == Port::Gemini)
        .count() as u64;
    wait_status_counter(
        target.ports.https,
        "gemini tls_failures after the absurd hellos",
        gemini_before + refused,
        |json| failures_before(json).0,
    );
    wait_status_counter(
        target.ports.https,
        "websocket (HTTPS) tls_failures after the absurd hellos",
        https_before + refused,
        |json| failures_before(json).1,
    );
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
    /// A frame: opcode and payload.
    Frame(u8, Vec<u8>),
    /// The server closed the connection.
    Closed,
    /// Nothing within the time allowed.
    TimedOut,
}

impl RawWs {
    /// TLS to `https` from `from`, then an upgrade to `path`; panics unless
    /// the server answers `101`.
    fn open(https: SocketAddr, from: std::net::IpAddr, path: &str) -> RawWs {
        let tcp = connect_from(from, https).expect("connect for WebSocket");
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        tcp.set_write_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn =
            rustls::ClientConnection::new(crate::server_support::tls_client(&[b"http/1.1"]), name)
                .expect("client");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
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

    /// Writes raw bytes (a frame header, maybe a payload). The server may
    /// already have closed: errors are ignored, the reply tells.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.tls.write_all(bytes).and_then(|()| self.tls.flush());
    }

    /// Reads the next whole server frame (unmasked), or the close.
    fn read_frame(&mut self, within: Duration) -> FrameRead {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some((opcode, payload, used)) = parse_server_frame(&self.pending) {
                self.pending.drain(..used);
                return FrameRead::Frame(opcode, payload);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return FrameRead::TimedOut;
            }
            let _ = self.tls.sock.set_read_timeout(Some(left));
            match self.tls.read(&mut buf) {
                Ok(0) => return FrameRead::Closed,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return FrameRead::Closed,
            }
        }
    }
}

/// An unmasked server frame at the start of `b`: opcode, payload, bytes
/// used; `None` while incomplete.
fn parse_server_frame(b: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let b0 = *b.first()?;
    let b1 = *b.get(1)?;
    let (len, at) = match b1 & 0x7f {
        126 => (be16(b.get(2..4)?), 4),
        127 => (
            usize::try_from(u64::from_be_bytes(b.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (usize::from(n), 2),
    };
    let payload = b.get(at..at + len)?;
    Some((b0 & 0x0f, payload.to_vec(), at + len))
}

/// A client frame header: `b0` (FIN, RSV, opcode), the announced length in
/// its 7-bit, 16-bit or 64-bit form as `form` says, and a mask key unless
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
        h.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    }
    h
}

/// Which length encoding a frame header uses.
#[derive(Clone, Copy, Debug)]
enum LenForm {
    Short,
    U16,
    U64,
}

/// The message limit the WebSocket case runs with (`--ws-max-message`):
/// under 65,535 so the 16-bit length form can exceed it too.
const WS_MAX_MESSAGE: u64 = 60_000;

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

/// A masked client frame with its whole payload (zeros, masked).
fn whole_frame(b0: u8, len: usize) -> Vec<u8> {
    let form = if len < 126 {
        LenForm::Short
    } else if len <= 0xffff {
        LenForm::U16
    } else {
        LenForm::U64
    };
    let mut f = frame_header(b0, len as u64, form, true);
    let key = [0x12, 0x34, 0x56, 0x78];
    f.extend((0..len).map(|i| key[i % 4]));
    f
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
    from: std::net::IpAddr,
    path: &'static str,
    a: &FrameAttack,
) -> FrameResult {
    let mut ws = RawWs::open(https, from, path);
    ws.send(&a.prelude);
    let sent = Instant::now();
    ws.send(&a.header);
    let mut code = None;
    loop {
        match ws.read_frame(Duration::from_secs(5)) {
            FrameRead::Frame(0x8, payload) => {
                code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                break;
            }
            FrameRead::Frame(..) => {}
            FrameRead::Closed | FrameRead::TimedOut => break,
        }
    }
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
    let max = WS_MAX_MESSAGE.to_string();
    let target = start("hostile-frames", &["--ws-max-message", &max]);
    let kinds = [Probe::Gemini, Probe::Http, Probe::Wss];
    probe_rounds(&target.ports, &kinds, 3).assert_prompt("warm-up", 9);
    let pid = target.server.pid();
    let baseline = Resources::of(pid);
    let errors_before = status_counter(
        &status_json(target.ports.https),
        "\"ws\":{",
        "protocol_errors",
    );

    let attacks = Arc::new(frame_attacks());
    let https = target.ports.https;
    let prober = Prober::start(&target.ports, &kinds);
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
    eprintln!(
        "frames: {} connections; probes during: n {} p50 {:?} p99 {:?} max {:?}",
        results.len(),
        during.latencies.len(),
        during.quantile(0.5),
        during.quantile(0.99),
        during.quantile(1.0)
    );
    during.assert_prompt("during bad WebSocket frames", 20);

    let after = probe_rounds(&target.ports, &kinds, 5);
    after.assert_prompt("after bad WebSocket frames", 15);
    // fds: the attackers are gone, so the server's sockets are too (2 for
    // a probe connection still closing). RSS: had any announced payload
    // been reserved, RSS would jump by gigabytes (or the process die); the
    // 40,000-byte first fragments (about 20 connections, one at a time) were buffered for real,
    // and the allocator may keep that (4 MiB).
    let now = Resources::assert_back_near(pid, baseline, 2, 4096, Duration::from_secs(10));
    eprintln!("frames: baseline {baseline:?}, after {now:?}");

    wait_status_counter(
        https,
        "ws protocol_errors after the bad frames",
        errors_before + results.len() as u64,
        |json| status_counter(json, "\"ws\":{", "protocol_errors"),
    );
}
