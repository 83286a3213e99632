//! Hand-built TLS ClientHellos on both TLS listeners (Gemini and
//! HTTPS/WSS): a real ClientHello taken apart and put back together with
//! absurd parts (thousands of cipher suites, a 64 KiB server_name list,
//! duplicate extensions), lengths that lie, empty and SSLv2-style hellos,
//! records announcing more than TLS allows. Malformed ones are refused at
//! once with an alert or a close; absurd well-formed ones never outlive the
//! handshake deadline; both listeners count the failures on the status
//! page, and a well-behaved client is served promptly all along.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{
    self, assert_prompt_after, attacker_ip, client_hello, connect_from, read_until_closed, show,
    start_warm, wait_status, Ending, Launch, Listener, Prober, Resources, Status, ALL,
    DEADLINE_MARGIN, PROMPT,
};

/// The TLS handshake deadline this case configures (`[tls]
/// handshake_timeout`): short so the absurd hellos that wait for it keep
/// the case short, long enough that a prompt refusal ([`PROMPT`]) is
/// clearly not the deadline.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(4);

/// The configuration file with [`HANDSHAKE_TIMEOUT`].
fn config() -> String {
    format!(
        "[tls]\nhandshake_timeout = \"{}ms\"\n",
        HANDSHAKE_TIMEOUT.as_millis()
    )
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
        let wire = client_hello(&[]);
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
    to: Listener,
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
    let config = config();
    let (target, baseline) = start_warm(
        "hostile-hellos",
        Launch {
            config: &config,
            ..Launch::default()
        },
    );
    let pid = target.server.pid();
    let failures = |status: &Status, listener: &str| status.protocol(listener, "tls_failures");
    let before = Status::read(target.ports.https);
    let (gemini_before, https_before) =
        (failures(&before, "gemini"), failures(&before, "websocket"));

    const COPIES: usize = 3;
    let hellos = Arc::new(absurd_hellos());
    let prober = Prober::start(&target.ports, &ALL);
    let mut threads = Vec::new();
    let mut n = 0;
    for i in 0..hellos.len() {
        for to in [Listener::Gemini, Listener::Https] {
            for _ in 0..COPIES {
                let hellos = Arc::clone(&hellos);
                let addr = target.ports.of(to);
                let from = attacker_ip(n);
                n += 1;
                threads.push(std::thread::spawn(move || {
                    let (name, bytes, expect) = &hellos[i];
                    let mut s = connect_from(from, addr)
                        .unwrap_or_else(|e| panic!("{name} to {to:?}: {e}"));
                    let _ = s.set_nodelay(true);
                    // One write per record for the split hello, so the
                    // records really arrive in pieces. A failed write: the
                    // server refused before reading everything, which is
                    // allowed (the reply tells).
                    if name.starts_with("split") {
                        for record in bytes.chunks(6) {
                            if s.write_all(record).is_err() {
                                break;
                            }
                        }
                    } else {
                        let _ = s.write_all(bytes);
                    }
                    let ending = read_until_closed(
                        &mut s,
                        Instant::now() + HANDSHAKE_TIMEOUT + DEADLINE_MARGIN,
                    );
                    HelloResult {
                        name,
                        to,
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
            r.name, r.to, r.ending.closed, r.ending.after
        );
    }
    for r in &results {
        assert!(
            r.ending.closed,
            "{:?}: \"{}\" still open {:?} after it was sent (handshake deadline {HANDSHAKE_TIMEOUT:?})",
            r.to, r.name, r.ending.after
        );
        if r.expect == Expect::Refused {
            assert!(
                r.ending.after <= PROMPT,
                "{:?}: malformed \"{}\" closed only after {:?} (want ≤ {PROMPT:?}: refused, not timed out)",
                r.to,
                r.name,
                r.ending.after
            );
            assert!(
                r.ending.reply.is_empty() || r.ending.reply[0] == 21,
                "{:?}: malformed \"{}\" answered {}, not an alert",
                r.to,
                r.name,
                show(&r.ending.reply)
            );
        } else {
            let reply = &r.ending.reply;
            assert!(
                reply.is_empty() || reply[0] == 21 || reply[0] == 22,
                "{:?}: \"{}\" answered {}, neither an alert nor a handshake",
                r.to,
                r.name,
                show(reply)
            );
        }
    }
    eprintln!("hellos: {} connections", results.len());
    during.assert_prompt("during absurd ClientHellos", 20);

    assert_prompt_after(&target.ports, "absurd ClientHellos");
    // fds: every attack connection is closed (2 for a probe connection
    // still closing). RSS: a 64 KiB ClientHello is buffered whole by rustls
    // before it is refused, 90 of them at once; the allocator may keep
    // those arenas (4 MiB).
    Resources::assert_back_near(pid, baseline, 2, 4096, Duration::from_secs(10));

    // Every malformed hello is a failed handshake on its listener, and so
    // is every absurd one the attacker abandoned.
    let refused = results
        .iter()
        .filter(|r| r.expect == Expect::Refused && r.to == Listener::Gemini)
        .count() as u64;
    wait_status(
        target.ports.https,
        "gemini tls_failures after the absurd hellos",
        gemini_before + refused,
        |status| failures(status, "gemini"),
    );
    wait_status(
        target.ports.https,
        "websocket (HTTPS) tls_failures after the absurd hellos",
        https_before + refused,
        |status| failures(status, "websocket"),
    );
}
