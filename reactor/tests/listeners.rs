//! Listeners and what sits in front of protocols: dual-stack and Unix
//! listeners, pausing and resuming, accept gates, and writes addressed to
//! other connections (broadcast).

mod common;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::{no_data_within, Echo, Rng};
use torsion_reactor::{
    Address, Disconnect, Gate, ListenOptions, PeerAddr, PeerInfo, Protocol, ReactorConfig,
    Transport, Verdict,
};

const WAIT: Duration = Duration::from_secs(10);

/// Writes the peer address it sees, then closes.
struct TellPeer;

impl Protocol for TellPeer {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let peer = t.peer_addr().map(|p| p.to_string()).unwrap_or_default();
        t.write(peer.as_bytes());
        t.close();
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}
}

#[test]
fn dual_stack_listener_accepts_ipv4_and_reports_plain_ipv4() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this host has no IPv6");
        return;
    }
    let (port, running) = common::start(
        ReactorConfig::default(),
        |r| {
            let any: SocketAddr = "[::]:0".parse().unwrap();
            let id = r
                .listen(any, |_: &PeerInfo| Box::new(TellPeer) as Box<dyn Protocol>)
                .unwrap();
            common::tcp_addr(r, id).port()
        },
        |_, _| (),
    );
    let mut v4 = common::connect(SocketAddr::from(([127, 0, 0, 1], port)));
    let seen = String::from_utf8(common::read_to_eof(&mut v4).unwrap()).unwrap();
    assert_eq!(seen, v4.local_addr().unwrap().to_string());
    assert!(seen.starts_with("127.0.0.1:"), "IPv4 peer seen as {seen}");

    let mut v6 = common::connect(format!("[::1]:{port}").parse().unwrap());
    let seen = String::from_utf8(common::read_to_eof(&mut v6).unwrap()).unwrap();
    assert_eq!(seen, v6.local_addr().unwrap().to_string());
    running.stop();
}

#[test]
fn unix_socket_echo() {
    let dir = std::env::temp_dir().join(format!("torsion-unix-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let p2 = path.clone();
    let (peer_tx, peer_rx) = mpsc::channel();
    let (bound, running) = common::start(
        ReactorConfig::default(),
        move |r| {
            let id = r
                .listen(p2, move |peer: &PeerInfo| {
                    let _ = peer_tx.send(peer.addr);
                    Box::new(Echo) as Box<dyn Protocol>
                })
                .unwrap();
            r.local_addr(id)
        },
        |_, _| (),
    );
    assert_eq!(bound, Some(Address::Unix(path.clone())));
    let mut c = UnixStream::connect(&path).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let data = Rng::new(3).bytes(200 * 1024);
    let mut back = Vec::new();
    for chunk in data.chunks(10_000) {
        c.write_all(chunk).unwrap();
        back.extend(common::read_n(&mut c, chunk.len()).unwrap());
    }
    c.shutdown(Shutdown::Write).unwrap();
    back.extend(common::read_to_eof(&mut c).unwrap());
    assert!(back == data, "unix echo corrupted");
    assert_eq!(peer_rx.recv_timeout(WAIT).unwrap(), PeerAddr::Unix);
    running.stop();
    // The reactor is gone: its socket file is removed.
    assert!(!path.exists(), "socket file left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Says hi.
struct Greeter;

impl Protocol for Greeter {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write(b"hi\n");
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}
}

/// Pauses or resumes a listener on command (`p` or `r`), answering `k`.
struct Control(torsion_reactor::ListenerId);

impl Protocol for Control {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        for &b in data.iter() {
            match b {
                b'p' => t.pause_listener(self.0),
                b'r' => t.resume_listener(self.0),
                _ => continue,
            }
            t.write(b"k");
        }
    }
}

#[test]
fn paused_listener_leaves_clients_in_the_backlog_until_resumed() {
    let ((greet, control), running) = common::start(
        ReactorConfig::default(),
        |r| {
            let opts = ListenOptions {
                start_paused: true,
                ..ListenOptions::default()
            };
            let g = r
                .listen_with(
                    common::localhost0(),
                    |_: &PeerInfo| Box::new(Greeter) as Box<dyn Protocol>,
                    opts,
                )
                .unwrap();
            let c = r
                .listen(common::localhost0(), move |_: &PeerInfo| {
                    Box::new(Control(g)) as Box<dyn Protocol>
                })
                .unwrap();
            (common::tcp_addr(r, g), common::tcp_addr(r, c))
        },
        |_, _| (),
    );
    let mut ctl = common::connect(control);
    let mut command = |cmd: &[u8]| {
        common::send(&mut ctl, cmd);
        assert_eq!(common::read_n(&mut ctl, 1).unwrap(), b"k");
    };
    // Started paused: the kernel completes the handshake, nobody greets.
    let mut first = common::connect(greet);
    assert!(no_data_within(&mut first, Duration::from_millis(300)));
    command(b"r");
    assert_eq!(common::read_n(&mut first, 3).unwrap(), b"hi\n");
    // Pause again: the next client waits until the listener resumes.
    command(b"p");
    let mut second = common::connect(greet);
    assert!(no_data_within(&mut second, Duration::from_millis(300)));
    command(b"r");
    assert_eq!(common::read_n(&mut second, 3).unwrap(), b"hi\n");
    running.stop();
}

// ----- gates ------------------------------------------------------------------

/// A gate with a fixed verdict that counts what it is asked.
struct FixedGate {
    verdict: Verdict,
    admits: Arc<AtomicUsize>,
    released: Arc<AtomicUsize>,
}

impl Gate for FixedGate {
    fn admit(&mut self, _peer: &PeerAddr) -> Verdict {
        self.admits.fetch_add(1, Ordering::AcqRel);
        self.verdict
    }

    fn released(&mut self, _peer: &PeerAddr) {
        self.released.fetch_add(1, Ordering::AcqRel);
    }
}

/// Replies `44 <seconds>` when refused, `20` otherwise; then closes.
struct Polite {
    refused_for: Option<Duration>,
}

impl Protocol for Polite {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        match self.refused_for {
            Some(d) => t.write(format!("44 {}\r\n", d.as_secs()).as_bytes()),
            None => t.write(b"20\r\n"),
        }
        t.close();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}
}

struct GateRun {
    addr: SocketAddr,
    admits: Arc<AtomicUsize>,
    released: Arc<AtomicUsize>,
    built: Arc<AtomicUsize>,
    running: common::Running<torsion_reactor::ListenerStats>,
}

fn start_gated(verdict: Verdict) -> GateRun {
    let admits = Arc::new(AtomicUsize::new(0));
    let released = Arc::new(AtomicUsize::new(0));
    let built = Arc::new(AtomicUsize::new(0));
    let (a2, r2, b2) = (
        Arc::clone(&admits),
        Arc::clone(&released),
        Arc::clone(&built),
    );
    let ((addr, _), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            let opts = ListenOptions {
                gate: Some(Box::new(FixedGate {
                    verdict,
                    admits: a2,
                    released: r2,
                })),
                ..ListenOptions::default()
            };
            let id = r
                .listen_with(
                    common::localhost0(),
                    move |peer: &PeerInfo| {
                        b2.fetch_add(1, Ordering::AcqRel);
                        Box::new(Polite {
                            refused_for: peer.refused_for,
                        }) as Box<dyn Protocol>
                    },
                    opts,
                )
                .unwrap();
            (common::tcp_addr(r, id), id)
        },
        |r, (_, id)| r.listener_stats(id).expect("stats"),
    );
    GateRun {
        addr,
        admits,
        released,
        built,
        running,
    }
}

#[test]
fn gate_drop_closes_at_once_and_counts() {
    let g = start_gated(Verdict::Drop);
    for _ in 0..3 {
        let mut c = common::connect(g.addr);
        let mut buf = Vec::new();
        match c.read_to_end(&mut buf) {
            Ok(_) => assert!(buf.is_empty(), "a dropped client received {buf:?}"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        }
    }
    assert_eq!(g.admits.load(Ordering::Acquire), 3);
    let stats = g.running.stop();
    assert_eq!(stats.refused, 3);
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.bytes_in, 0);
    assert_eq!(
        g.built.load(Ordering::Acquire),
        0,
        "protocol built for a dropped peer"
    );
    assert_eq!(g.released.load(Ordering::Acquire), 0);
}

#[test]
fn gate_refuse_builds_the_protocol_with_refused_for() {
    let g = start_gated(Verdict::Refuse {
        retry_after: Duration::from_secs(7),
    });
    let mut c = common::connect(g.addr);
    assert_eq!(common::read_to_eof(&mut c).unwrap(), b"44 7\r\n");
    assert!(common::wait_until(WAIT, || g
        .released
        .load(Ordering::Acquire)
        == 1));
    let stats = g.running.stop();
    assert_eq!(stats.refused_with_reply, 1);
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.refused, 0);
    assert_eq!(g.built.load(Ordering::Acquire), 1);
    assert_eq!(
        g.released.load(Ordering::Acquire),
        1,
        "released not exactly once"
    );
}

#[test]
fn gate_admit_serves_and_releases_once_per_connection() {
    let g = start_gated(Verdict::Admit);
    for _ in 0..4 {
        let mut c = common::connect(g.addr);
        assert_eq!(common::read_to_eof(&mut c).unwrap(), b"20\r\n");
    }
    assert!(common::wait_until(WAIT, || g
        .released
        .load(Ordering::Acquire)
        == 4));
    let stats = g.running.stop();
    assert_eq!(stats.accepted, 4);
    assert_eq!(stats.closed, 4);
    assert_eq!(g.admits.load(Ordering::Acquire), 4);
}

// ----- broadcast --------------------------------------------------------------

/// A room: each member's bytes go to every other member via `write_to`.
struct Member {
    room: Rc<RefCell<Vec<torsion_reactor::ConnId>>>,
}

impl Protocol for Member {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.room.borrow_mut().push(t.id());
        t.write(b"+");
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        let me = t.id();
        let members = self.room.borrow().clone();
        for m in members.into_iter().filter(|&m| m != me) {
            assert!(t.write_to(m, data));
        }
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, _reason: &Disconnect) {
        let me = t.id();
        self.room.borrow_mut().retain(|&m| m != me);
        // Writing to a connection that has ended is refused, not misdirected.
        assert!(!t.write_to(me, b"late"));
    }
}

#[test]
fn write_to_other_connections_broadcasts() {
    let (addr, running) = common::start(
        ReactorConfig::default(),
        |r| {
            let room = Rc::new(RefCell::new(Vec::new()));
            let id = r
                .listen(common::localhost0(), move |_: &PeerInfo| {
                    Box::new(Member {
                        room: Rc::clone(&room),
                    }) as Box<dyn Protocol>
                })
                .unwrap();
            common::tcp_addr(r, id)
        },
        |r, _| r.connection_count(),
    );
    let mut members: Vec<TcpStream> = (0..3).map(|_| common::connect(addr)).collect();
    for m in &mut members {
        assert_eq!(common::read_n(m, 1).unwrap(), b"+");
    }
    common::send(&mut members[0], b"hello all");
    assert_eq!(common::read_n(&mut members[1], 9).unwrap(), b"hello all");
    assert_eq!(common::read_n(&mut members[2], 9).unwrap(), b"hello all");
    assert!(no_data_within(&mut members[0], Duration::from_millis(50)));
    assert_eq!(running.stop(), 3);
}
