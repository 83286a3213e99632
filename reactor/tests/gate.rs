//! The accept gate and the PROXY protocol stage over real sockets, with an
//! in-process reactor: floods that cost no handshakes beyond the quota
//! while another address is served, the global cap's pause and resume,
//! IPv6 keying, and PROXY v1/v2 headers (valid, split, truncated, garbage,
//! absent, from an unlisted proxy) deciding who the gate and the protocol
//! see.
//!
//! Clients bind 127.0.0.2 (any 127/8 address is local on Linux) to act as a
//! second address. Every blocking call has a timeout; waits are on events,
//! except where the point is that nothing happens (bounded by a short
//! `no_data_within`).

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect, no_data_within, reads_eof, send, start, tcp_addr, Running, IO_TIMEOUT};
use socket2::{Domain, Socket, Type};
use torsion_reactor::gate::{AllowList, GateConfig, RateGate, RateQuota, RefusalPolicy};
use torsion_reactor::tls::TlsSession;
use torsion_reactor::tls::{CertSource, CertStore, ClientTlsConfig, ClientVerify, ServerTlsConfig};
use torsion_reactor::{
    ListenOptions, ListenerStats, PeerAddr, PeerInfo, Protocol, ProxyOptions, ReactorConfig,
    Transport, Verdict,
};

// ----- the server side ------------------------------------------------------

/// Says who it thinks the peer is — `ok <PeerInfo.addr> <Transport::peer_addr>`
/// — or, if the gate refused politely, `refused <seconds>` and closes;
/// then echoes.
struct Greeter {
    info: PeerInfo,
}

impl Protocol for Greeter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        match self.info.refused_for {
            Some(d) => {
                t.write(format!("refused {}\n", d.as_secs()).as_bytes());
                t.close();
            }
            None => {
                let seen = t.peer_addr().map(|p| p.to_string()).unwrap_or_default();
                t.write(format!("ok {} {seen}\n", self.info.addr).as_bytes());
            }
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        t.write(data);
    }
}

/// One listener's settings for [`serve`].
struct Listen {
    addr: SocketAddr,
    gate: Option<RateGate>,
    tls: Option<ServerTlsConfig>,
    proxy: Option<ProxyOptions>,
    config: ReactorConfig,
}

impl Listen {
    fn on(addr: SocketAddr) -> Listen {
        Listen {
            addr,
            gate: None,
            tls: None,
            proxy: None,
            config: ReactorConfig::default(),
        }
    }

    fn local() -> Listen {
        Listen::on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// A running reactor with one [`Greeter`] listener. `live` is refreshed
/// from the listener's counters every few milliseconds; `stop()` returns
/// the final counters.
struct Served {
    addr: SocketAddr,
    live: Arc<Mutex<ListenerStats>>,
    running: Running<ListenerStats>,
}

impl Served {
    fn stats(&self) -> ListenerStats {
        *self.live.lock().unwrap()
    }

    fn stop(self) -> ListenerStats {
        self.running.stop()
    }

    /// Waits (bounded) until the live counters satisfy `cond`.
    fn wait_stats(&self, what: &str, cond: impl Fn(&ListenerStats) -> bool) -> ListenerStats {
        let ok = common::wait_until(IO_TIMEOUT, || cond(&self.stats()));
        let s = self.stats();
        assert!(ok, "timed out waiting for {what}: {s:?}");
        s
    }
}

fn serve(l: Listen) -> Served {
    let live = Arc::new(Mutex::new(ListenerStats::default()));
    let publish = Arc::clone(&live);
    let Listen {
        addr,
        gate,
        tls,
        proxy,
        config,
    } = l;
    let ((bound, _), running) = start(
        config,
        move |r| {
            let options = ListenOptions {
                gate: gate.map(|g| Box::new(g) as Box<dyn torsion_reactor::Gate>),
                tls,
                proxy,
                ..ListenOptions::default()
            };
            let id = r
                .listen_with(
                    addr,
                    |info: &PeerInfo| Box::new(Greeter { info: *info }) as Box<dyn Protocol>,
                    options,
                )
                .expect("listen");
            r.schedule_every(Duration::from_millis(5), move |ctx, _| {
                if let Some(s) = ctx.listener_stats(id) {
                    *publish.lock().unwrap() = s;
                }
            });
            (tcp_addr(r, id), id)
        },
        |r, (_, id)| r.listener_stats(id).expect("listener stats"),
    );
    Served {
        addr: bound,
        live,
        running,
    }
}

fn gate(quota: &str, policy: RefusalPolicy) -> RateGate {
    RateGate::new(GateConfig {
        name: "test".into(),
        quota: Some(RateQuota::parse(quota).unwrap()),
        policy,
        ..GateConfig::default()
    })
}

fn allow(cidrs: &[&str]) -> AllowList {
    AllowList::parse(cidrs.iter().copied()).unwrap()
}

fn proxy_from(cidrs: &[&str], deadline: Duration) -> ProxyOptions {
    ProxyOptions {
        allowed_from: allow(cidrs),
        deadline,
    }
}

/// A temporary state directory for a generated certificate.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("torsion-gate-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server_tls(dir: &TempDir) -> ServerTlsConfig {
    let store = CertStore::new();
    store
        .add_default(
            &["localhost"],
            CertSource::Generated {
                state_dir: dir.0.join("cert"),
                hostnames: vec!["localhost".into()],
            },
        )
        .unwrap();
    ServerTlsConfig::builder(store).build().unwrap()
}

// ----- the client side ------------------------------------------------------

/// A blocking connection to `to` from source address `from`.
fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&to.into(), IO_TIMEOUT)?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn second_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
}

/// Reads one `\n`-terminated line (without it); `None` at EOF or reset
/// before a whole line.
fn read_line(s: &mut impl Read) -> Option<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(1) if b[0] == b'\n' => return Some(String::from_utf8(line).unwrap()),
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
}

/// The two addresses of an `ok A B` greeting, checked to agree.
fn greeted_as(line: Option<String>) -> String {
    let line = line.expect("a greeting, not a closed connection");
    let mut f = line.split(' ');
    assert_eq!(f.next(), Some("ok"), "{line}");
    let (info, transport) = (f.next().unwrap(), f.next().unwrap());
    assert_eq!(
        info, transport,
        "PeerInfo and Transport::peer_addr disagree"
    );
    info.to_string()
}

/// A blocking TLS client on the reactor's own sans-IO session.
struct TlsClient {
    stream: TcpStream,
    session: TlsSession,
    plain: Vec<u8>,
}

fn client_tls() -> ClientTlsConfig {
    ClientTlsConfig::builder(ClientVerify::NoVerify)
        .resumption(false)
        .build()
        .unwrap()
}

impl TlsClient {
    /// Sends `prefix` (e.g. a PROXY header) in the same write as the
    /// ClientHello, then completes the handshake.
    fn handshake(mut stream: TcpStream, prefix: &[u8]) -> io::Result<TlsClient> {
        let mut session =
            TlsSession::client(&client_tls(), "localhost").map_err(io::Error::other)?;
        let mut first = prefix.to_vec();
        session.write_ciphertext(&mut first)?;
        stream.write_all(&first)?;
        let mut c = TlsClient {
            stream,
            session,
            plain: Vec::new(),
        };
        while c.session.is_handshaking() {
            if !c.pump_in()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            c.pump_out()?;
        }
        Ok(c)
    }

    fn pump_out(&mut self) -> io::Result<()> {
        while self.session.has_pending_ciphertext() {
            self.session.write_ciphertext(&mut self.stream)?;
        }
        Ok(())
    }

    /// Reads once from the socket; false at EOF.
    fn pump_in(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 16 * 1024];
        let n = self.stream.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        let mut off = 0;
        let mut plain = [0u8; 16 * 1024];
        while off < n {
            let used = self
                .session
                .feed_ciphertext(&mut buf[off..n])
                .map_err(io::Error::other)?;
            off += used;
            let mut drained = 0;
            loop {
                let k = self.session.read_plaintext(&mut plain);
                if k == 0 {
                    break;
                }
                drained += k;
                self.plain.extend_from_slice(&plain[..k]);
            }
            if used == 0 && drained == 0 {
                break; // closed (close_notify): the rest is ignored
            }
        }
        Ok(true)
    }

    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.session.write_plaintext(data);
        self.pump_out()
    }

    /// The next plaintext line, or `None` if the server closed first.
    fn line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = self.plain.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.plain.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()));
            }
            if !self.pump_in()? {
                return Ok(None);
            }
        }
    }
}

/// A real ClientHello, captured once, for flood attempts that should cost
/// the server a handshake if it let them in.
fn canned_client_hello() -> Vec<u8> {
    let mut s = TlsSession::client(&client_tls(), "localhost").unwrap();
    let mut out = Vec::new();
    s.write_ciphertext(&mut out).unwrap();
    assert!(out.first() == Some(&0x16), "a TLS handshake record");
    out
}

/// PROXY v1 for a TCP4 client.
fn v1(src: &str, sport: u16) -> Vec<u8> {
    format!("PROXY TCP4 {src} 192.0.2.1 {sport} 1965\r\n").into_bytes()
}

/// PROXY v2 `PROXY` command for `src` (v4 or v6) to a matching destination.
fn v2(src: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    match src {
        SocketAddr::V4(a) => {
            h.push(0x11); // AF_INET, STREAM
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&a.ip().octets());
            h.extend_from_slice(&[192, 0, 2, 1]);
            h.extend_from_slice(&a.port().to_be_bytes());
            h.extend_from_slice(&1965u16.to_be_bytes());
        }
        SocketAddr::V6(a) => {
            h.push(0x21); // AF_INET6, STREAM
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&a.ip().octets());
            h.extend_from_slice(
                &"2001:db8::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
            h.extend_from_slice(&a.port().to_be_bytes());
            h.extend_from_slice(&1965u16.to_be_bytes());
        }
    }
    h
}

/// PROXY v2 `LOCAL` command (a health check by the proxy itself).
fn v2_local() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    h
}

// ----- floods -----------------------------------------------------------------

/// Flood attempts from one address.
const FLOOD: usize = 5_000;
/// Client threads sharing the flood.
const FLOOD_THREADS: usize = 4;
/// Real handshakes the second address completes during the flood.
const SECOND_CLIENT_VISITS: usize = 3;

/// What a flood run saw.
struct FloodReport {
    /// Flood attempts the server answered (TLS work done for them).
    answered: usize,
    stats: ListenerStats,
    gate: torsion_reactor::gate::GateStats,
}

/// Floods a TLS listener guarded by `gate` with [`FLOOD`] connection
/// attempts from 127.0.0.1, each sending a real ClientHello, while a
/// second client from 127.0.0.2 completes [`SECOND_CLIENT_VISITS`] real
/// handshakes and echoes (the flood keeps going until it is done).
fn flood(gate: RateGate) -> FloodReport {
    let dir = TempDir::new("flood");
    let counters = gate.clone();
    let served = serve(Listen {
        gate: Some(gate),
        tls: Some(server_tls(&dir)),
        ..Listen::local()
    });
    let addr = served.addr;
    let hello = Arc::new(canned_client_hello());
    let attempts = Arc::new(AtomicUsize::new(0));
    let second_done = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..FLOOD_THREADS {
        let (hello, attempts, second_done) = (hello.clone(), attempts.clone(), second_done.clone());
        flooders.push(std::thread::spawn(move || {
            let mut answered = 0;
            while attempts.fetch_add(1, Ordering::Relaxed) < FLOOD
                || !second_done.load(Ordering::Relaxed)
            {
                let mut s = connect(addr);
                let _ = s.write_all(&hello);
                let mut b = [0u8; 1];
                if matches!(s.read(&mut b), Ok(n) if n > 0) {
                    answered += 1;
                }
            }
            answered
        }));
    }
    // The second address arrives once the flood is well under way.
    assert!(common::wait_until(IO_TIMEOUT, || attempts
        .load(Ordering::Relaxed)
        > FLOOD / 5));
    for visit in 0..SECOND_CLIENT_VISITS {
        let stream = connect_from(second_address(), addr).expect("connect from 127.0.0.2");
        let mut c = TlsClient::handshake(stream, b"")
            .unwrap_or_else(|e| panic!("visit {visit}: handshake during the flood failed: {e}"));
        let hello_line = c.line().unwrap();
        assert!(
            greeted_as(hello_line).starts_with("127.0.0.2:"),
            "visit {visit}"
        );
        c.send(b"still here\n").unwrap();
        assert_eq!(c.line().unwrap().as_deref(), Some("still here"));
    }
    assert!(
        attempts.load(Ordering::Relaxed) < FLOOD + 100 * FLOOD_THREADS,
        "the second client must have been served during the flood, not after"
    );
    second_done.store(true, Ordering::Relaxed);
    let answered = flooders.into_iter().map(|t| t.join().unwrap()).sum();
    let stats = served.stop();
    let gate = counters.stats();
    eprintln!("flood: {answered} attempts answered; listener {stats:?}; gate {gate:?}");
    FloodReport {
        answered,
        stats,
        gate,
    }
}

#[test]
fn flood_with_drop_costs_no_handshakes_beyond_the_quota_while_a_second_address_is_served() {
    const BURST: usize = 5;
    let r = flood(gate("5/h", RefusalPolicy::Drop));
    assert!(
        r.answered <= BURST,
        "answered {} flood attempts",
        r.answered
    );
    // Every accepted connection of a TLS listener gets a TLS session: only
    // the quota's worth from the flood, plus the second client.
    assert_eq!(
        r.stats.accepted as usize,
        r.answered + SECOND_CLIENT_VISITS,
        "{:?}",
        r.stats
    );
    assert_eq!(
        r.stats.tls_handshakes as usize, SECOND_CLIENT_VISITS,
        "{:?}",
        r.stats
    );
    assert!(r.stats.refused as usize >= FLOOD - BURST, "{:?}", r.stats);
    assert_eq!(r.stats.refused_with_reply, 0);
    assert!(
        r.gate.refused_rate as usize >= FLOOD - BURST,
        "{:?}",
        r.gate
    );
}

#[test]
fn flood_with_reply_costs_at_most_f_plus_one_bursts_of_handshakes() {
    const BURST: usize = 5;
    const F: usize = torsion_reactor::gate::DEFAULT_FLOOD_FACTOR as usize;
    let r = flood(gate("5/h", RefusalPolicy::Reply));
    let bound = (F + 1) * BURST;
    assert!(r.answered <= bound, "answered {} > {bound}", r.answered);
    let flood_sessions = r.stats.accepted as usize - SECOND_CLIENT_VISITS;
    assert!(
        flood_sessions <= bound,
        "{flood_sessions} TLS sessions for the flood: {:?}",
        r.stats
    );
    assert!(
        r.stats.refused_with_reply as usize <= F * BURST,
        "{:?}",
        r.stats
    );
    assert_eq!(r.stats.tls_handshakes as usize, SECOND_CLIENT_VISITS);
    assert!(
        r.gate.dropped_flood as usize >= FLOOD - bound,
        "{:?}",
        r.gate
    );
}

// ----- caps and keys ------------------------------------------------------------

#[test]
fn global_cap_pauses_accepting_and_resumes_below_it() {
    let served = serve(Listen {
        gate: Some(gate("1000/s", RefusalPolicy::Drop)),
        config: ReactorConfig {
            max_connections: 3,
            ..ReactorConfig::default()
        },
        ..Listen::local()
    });
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = connect(served.addr);
            greeted_as(read_line(&mut s));
            s
        })
        .collect();
    // The kernel completes the fourth connection, but the reactor does not
    // accept it: no greeting, and it is not closed either.
    let mut fourth = connect(served.addr);
    assert!(no_data_within(&mut fourth, Duration::from_millis(300)));
    let s = served.wait_stats("the pause", |s| s.accept_pauses >= 1);
    assert_eq!(s.accepted, 3, "{s:?}");
    assert_eq!(s.refused, 0, "a cap pause is not a refusal");
    // One leaves: the listener resumes and the waiting client is served.
    drop(open.remove(0));
    greeted_as(read_line(&mut fourth));
    send(&mut fourth, b"echo\n");
    assert_eq!(read_line(&mut fourth).as_deref(), Some("echo"));
    let s = served.stop();
    assert_eq!(s.accepted, 4, "{s:?}");
}

#[test]
fn ipv6_clients_are_keyed_by_their_64_and_served_over_loopback() {
    // Keying, at the gate: loopback has one IPv6 address, so sources in the
    // same /64 are synthetic here.
    let g = gate("2/m", RefusalPolicy::Drop);
    let p = |s: &str| PeerAddr::Tcp(s.parse().unwrap());
    assert_eq!(g.decide(&p("[2001:db8:1:2::1]:1000")), Verdict::Admit);
    assert_eq!(
        g.decide(&p("[2001:db8:1:2:ffff:ffff:ffff:ffff]:1001")),
        Verdict::Admit
    );
    assert_eq!(
        g.decide(&p("[2001:db8:1:2:abcd::9]:1002")),
        Verdict::Drop,
        "same /64: same quota"
    );
    assert_eq!(
        g.decide(&p("[2001:db8:1:3::1]:1003")),
        Verdict::Admit,
        "next /64"
    );
    // IPv4-mapped IPv6 counts as the IPv4 client.
    assert_eq!(g.decide(&p("192.0.2.5:1")), Verdict::Admit);
    assert_eq!(g.decide(&p("[::ffff:192.0.2.5]:2")), Verdict::Admit);
    assert_eq!(g.decide(&p("192.0.2.5:3")), Verdict::Drop);

    // A real IPv6 connection.
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    if std::net::TcpListener::bind(v6).is_err() {
        eprintln!("no IPv6 loopback here: skipping the socket half");
        return;
    }
    let served = serve(Listen {
        gate: Some(gate("1/m", RefusalPolicy::Reply)),
        ..Listen::on(v6)
    });
    let mut first = connect(served.addr);
    assert!(greeted_as(read_line(&mut first)).starts_with("[::1]:"));
    let mut second = connect(served.addr);
    let line = read_line(&mut second).unwrap();
    assert!(line.starts_with("refused "), "{line}");
    assert!(reads_eof(&mut second));
    let s = served.stop();
    assert_eq!((s.accepted, s.refused_with_reply), (2, 1), "{s:?}");
}

// ----- PROXY protocol -------------------------------------------------------------

#[test]
fn proxy_v1_and_v2_headers_name_the_peer_and_the_bytes_after_them_reach_the_protocol() {
    let served = serve(Listen {
        proxy: Some(proxy_from(&["127.0.0.1/32"], Duration::from_secs(5))),
        ..Listen::local()
    });
    let addr = served.addr;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (v1("203.0.113.7", 56324), "203.0.113.7:56324"),
        (
            v2("198.51.100.9:4000".parse().unwrap()),
            "198.51.100.9:4000",
        ),
        (
            v2("[2001:db8::7]:4001".parse().unwrap()),
            "[2001:db8::7]:4001",
        ),
        // An IPv4-mapped source is the IPv4 client.
        (
            v2("[::ffff:198.51.100.10]:4002".parse().unwrap()),
            "198.51.100.10:4002",
        ),
    ];
    for (header, want) in &cases {
        let mut s = connect(addr);
        let mut first = header.clone();
        first.extend_from_slice(b"after the header\n");
        send(&mut s, &first);
        assert_eq!(greeted_as(read_line(&mut s)), *want);
        assert_eq!(read_line(&mut s).as_deref(), Some("after the header"));
    }
    // LOCAL (a health check) and v1 UNKNOWN keep the proxy's own address.
    for header in [v2_local(), b"PROXY UNKNOWN\r\n".to_vec()] {
        let mut s = connect(addr);
        let me = s.local_addr().unwrap().to_string();
        send(&mut s, &header);
        assert_eq!(greeted_as(read_line(&mut s)), me);
    }
    // A header split into single bytes is reassembled.
    let mut s = connect(addr);
    for b in v1("203.0.113.8", 1) {
        send(&mut s, &[b]);
    }
    assert_eq!(greeted_as(read_line(&mut s)), "203.0.113.8:1");
    send(&mut s, b"x\n");
    assert_eq!(read_line(&mut s).as_deref(), Some("x"));
    let s = served.stop();
    assert_eq!(s.accepted, 7, "{s:?}");
    assert_eq!(s.proxy_failures, 0, "{s:?}");
}

#[test]
fn proxy_header_truncated_garbage_absent_or_from_an_unlisted_proxy_closes_the_connection() {
    // Long enough that "at once" (under nine tenths of it) holds on a
    // loaded machine, short enough for a test.
    const DEADLINE: Duration = Duration::from_secs(2);
    let served = serve(Listen {
        proxy: Some(proxy_from(&["127.0.0.1/32"], DEADLINE)),
        ..Listen::local()
    });
    let addr = served.addr;

    // Truncated, or nothing at all: closed at the deadline, not before.
    let slow: Vec<_> = [b"PROXY TCP4 203.0.113.7 ".to_vec(), Vec::new()]
        .into_iter()
        .map(|bytes| {
            std::thread::spawn(move || {
                // Before connecting: the server's deadline starts at the
                // accept, later, so the close cannot come sooner after t0.
                let t0 = Instant::now();
                let mut s = connect(addr);
                send(&mut s, &bytes);
                assert!(reads_eof(&mut s), "closed");
                t0.elapsed()
            })
        })
        .collect();

    // Garbage, or no header (a client talking TLS or HTTP straight to the
    // listener): closed at once.
    let mut bad_v2 = v2("198.51.100.9:4000".parse().unwrap());
    bad_v2[12] = 0x31; // version 3
    let fast = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        canned_client_hello(),
        b"PROXY TCP4 203.0.113.7 192.0.2.1 99999 1965\r\n".to_vec(),
        bad_v2,
        vec![b'P'; 40],
        [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat(),
    ];
    for bytes in &fast {
        let mut s = connect(addr);
        let t0 = Instant::now();
        send(&mut s, bytes);
        assert!(reads_eof(&mut s), "closed");
        assert!(
            t0.elapsed() < DEADLINE * 9 / 10,
            "{:?} was not closed at once",
            String::from_utf8_lossy(bytes)
        );
    }
    for t in slow {
        let took = t.join().unwrap();
        assert!(
            took >= DEADLINE * 9 / 10,
            "closed after {took:?}, before the deadline"
        );
    }
    let s = served.wait_stats("the failures", |s| s.proxy_failures >= 8);
    assert_eq!(s.proxy_failures, 8, "{s:?}");
    assert_eq!(s.accepted, 0, "no protocol was ever built: {s:?}");
    let s = served.stop();
    assert_eq!((s.active, s.accepted), (0, 0), "{s:?}");
}

#[test]
fn proxy_headers_are_accepted_only_from_listed_proxies() {
    let served = serve(Listen {
        proxy: Some(proxy_from(&["127.0.0.2/32"], Duration::from_secs(5))),
        ..Listen::local()
    });
    // From 127.0.0.1, not listed: closed at once, whatever it would send.
    let mut s = connect(served.addr);
    assert!(reads_eof(&mut s), "closed without a byte read");
    let s = served.wait_stats("the refusal", |s| s.proxy_failures == 1);
    assert_eq!((s.accepted, s.active), (0, 0), "{s:?}");
    // From 127.0.0.2, listed: served as the client it names.
    let mut s = connect_from(second_address(), served.addr).expect("bind 127.0.0.2");
    send(&mut s, &v1("203.0.113.50", 5050));
    assert_eq!(greeted_as(read_line(&mut s)), "203.0.113.50:5050");
    let s = served.stop();
    assert_eq!((s.accepted, s.proxy_failures), (1, 1), "{s:?}");
}

#[test]
fn the_gate_keys_on_the_proxied_source_not_the_proxy() {
    let served = serve(Listen {
        gate: Some(gate("2/m", RefusalPolicy::Reply)),
        proxy: Some(proxy_from(&["127.0.0.1/32"], Duration::from_secs(5))),
        ..Listen::local()
    });
    let visit = |header: Vec<u8>| {
        let mut s = connect(served.addr);
        send(&mut s, &header);
        read_line(&mut s).expect("an answer")
    };
    // Two clients behind one proxy address each get their own quota.
    for i in 0..2 {
        assert!(visit(v1("203.0.113.1", 1000 + i)).starts_with("ok 203.0.113.1:"));
    }
    let third = visit(v2("203.0.113.1:1002".parse().unwrap()));
    assert!(third.starts_with("refused "), "{third}");
    for i in 0..2 {
        let line = visit(v2(SocketAddr::from(([203, 0, 113, 2], 2000 + i))));
        assert!(line.starts_with("ok 203.0.113.2:"), "{line}");
    }
    let s = served.stop();
    assert_eq!((s.accepted, s.refused_with_reply), (5, 1), "{s:?}");
}

#[test]
fn a_proxy_header_and_a_client_hello_in_one_write_complete_a_tls_handshake() {
    let dir = TempDir::new("proxy-tls");
    let served = serve(Listen {
        tls: Some(server_tls(&dir)),
        proxy: Some(proxy_from(&["127.0.0.1/32"], Duration::from_secs(5))),
        ..Listen::local()
    });
    for header in [
        v1("203.0.113.9", 1234),
        v2("[2001:db8::9]:4321".parse().unwrap()),
    ] {
        let mut c = TlsClient::handshake(connect(served.addr), &header).expect("handshake");
        let who = greeted_as(c.line().unwrap());
        assert!(
            who == "203.0.113.9:1234" || who == "[2001:db8::9]:4321",
            "{who}"
        );
        c.send(b"over tls\n").unwrap();
        assert_eq!(c.line().unwrap().as_deref(), Some("over tls"));
    }
    // Straight TLS without a header: closed, no handshake.
    let e = TlsClient::handshake(connect(served.addr), b"");
    assert!(e.is_err(), "a ClientHello is not a PROXY header");
    let s = served.stop();
    assert_eq!((s.tls_handshakes, s.proxy_failures), (2, 1), "{s:?}");
}
