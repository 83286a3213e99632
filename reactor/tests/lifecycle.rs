//! A connection's life from both ends: half-close, close/abort/linger,
//! outbound connects (success, refusal, timeout), stopping from another
//! thread and graceful shutdown.

mod common;

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Echo;
use torsion_reactor::{Address, Disconnect, PeerInfo, Protocol, ReactorConfig, Transport};

const WAIT: Duration = Duration::from_secs(10);

/// A summary of `Disconnect` that can cross threads and be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lost {
    Closed,
    Aborted(usize),
    Io(io::ErrorKind),
    ConnectFailed(io::ErrorKind),
    CloseTimedOut(usize),
    Shutdown(usize),
    Other(String),
}

impl From<&Disconnect> for Lost {
    fn from(d: &Disconnect) -> Lost {
        match d {
            Disconnect::Closed => Lost::Closed,
            Disconnect::Aborted { unsent } => Lost::Aborted(*unsent),
            Disconnect::Io(e) => Lost::Io(e.kind()),
            Disconnect::ConnectFailed(e) => Lost::ConnectFailed(e.kind()),
            Disconnect::CloseTimedOut { unsent } => Lost::CloseTimedOut(*unsent),
            Disconnect::Shutdown { unsent } => Lost::Shutdown(*unsent),
            other => Lost::Other(format!("{other:?}")),
        }
    }
}

// ----- half-close -----------------------------------------------------------

/// Collects the request; on the peer's EOF answers with a large response
/// (bigger than the high water mark) and closes.
struct AnswerOnEof {
    request: Vec<u8>,
    lost: Sender<Lost>,
}

fn response_for(request: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(300 * 1024);
    while out.len() < 300 * 1024 {
        out.extend_from_slice(request);
        out.push(b'\n');
    }
    out
}

impl Protocol for AnswerOnEof {
    fn data_received(&mut self, _t: &mut Transport<'_>, data: &mut [u8]) {
        self.request.extend_from_slice(data);
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) {
        let resp = response_for(&self.request);
        for part in resp.chunks(7 * 1024) {
            t.write(part);
        }
        t.close();
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let _ = self.lost.send(reason.into());
    }
}

#[test]
fn client_half_close_gets_the_whole_response_then_eof() {
    let (tx, rx) = mpsc::channel();
    let (addr, running) = common::start_tcp(move |_| AnswerOnEof {
        request: Vec::new(),
        lost: tx.clone(),
    });
    let mut c = common::connect(addr);
    common::send(&mut c, b"GET /half-closed");
    c.shutdown(Shutdown::Write).unwrap();
    let got = common::read_to_eof(&mut c).expect("read response");
    let want = response_for(b"GET /half-closed");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "response corrupted");
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), Lost::Closed);
    running.stop();
}

/// Says hello and shuts down its sending side at once; keeps receiving.
struct HelloThenShutWrite {
    got: Sender<Vec<u8>>,
    lost: Sender<Lost>,
    write_after_shutdown_dropped: Arc<AtomicBool>,
}

impl Protocol for HelloThenShutWrite {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write(b"hello");
        t.shutdown_write();
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        t.write(b"this must not be sent");
        if t.buffered_len() == 0 {
            self.write_after_shutdown_dropped
                .store(true, Ordering::Release);
        }
        let _ = self.got.send(data.to_vec());
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let _ = self.lost.send(reason.into());
    }
}

#[test]
fn server_shutdown_write_still_receives() {
    let (got_tx, got_rx) = mpsc::channel();
    let (lost_tx, lost_rx) = mpsc::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let d2 = Arc::clone(&dropped);
    let (addr, running) = common::start_tcp(move |_| HelloThenShutWrite {
        got: got_tx.clone(),
        lost: lost_tx.clone(),
        write_after_shutdown_dropped: Arc::clone(&d2),
    });
    let mut c = common::connect(addr);
    // EOF after the greeting, while the connection is still open.
    assert_eq!(common::read_to_eof(&mut c).unwrap(), b"hello");
    common::send(&mut c, b"still listening?");
    let mut received = Vec::new();
    while received.len() < 16 {
        received.extend(got_rx.recv_timeout(WAIT).expect("server received nothing"));
    }
    assert_eq!(received, b"still listening?");
    assert!(dropped.load(Ordering::Acquire));
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(lost_rx.recv_timeout(WAIT).unwrap(), Lost::Closed);
    running.stop();
}

// ----- close, abort, linger ---------------------------------------------------

/// Queues `size` bytes on connect, then closes or aborts.
struct FloodThen {
    size: usize,
    abort: bool,
    /// Abort in a later callback (when the client sends a byte).
    abort_later: bool,
    lost: Sender<(Lost, Instant)>,
}

impl Protocol for FloodThen {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write(&vec![b'x'; self.size]);
        if self.abort && !self.abort_later {
            t.abort();
        } else if !self.abort {
            t.close();
        }
    }

    fn data_received(&mut self, t: &mut Transport<'_>, _data: &mut [u8]) {
        if self.abort_later {
            t.abort();
        }
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let _ = self.lost.send((reason.into(), Instant::now()));
    }
}

#[test]
fn close_gives_up_on_a_peer_that_never_reads() {
    let (tx, rx) = mpsc::channel();
    let config = ReactorConfig {
        close_timeout: Duration::from_millis(300),
        ..ReactorConfig::default()
    };
    let (addr, running) = common::start_tcp_with(config, move |_| FloodThen {
        size: 64 << 20,
        abort: false,
        abort_later: false,
        lost: tx.clone(),
    });
    let started = Instant::now();
    let _c = common::connect(addr);
    let (lost, at) = rx.recv_timeout(WAIT).expect("connection never ended");
    match lost {
        Lost::CloseTimedOut(unsent) => assert!(unsent > 0),
        other => panic!("expected CloseTimedOut, got {other:?}"),
    }
    let took = at - started;
    assert!(took >= Duration::from_millis(250), "gave up after {took:?}");
    running.stop();
}

#[test]
fn abort_discards_queued_output() {
    let (tx, rx) = mpsc::channel();
    let (addr, running) = common::start_tcp(move |_| FloodThen {
        size: 64 << 20,
        abort: true,
        abort_later: true,
        lost: tx.clone(),
    });
    let mut c = common::connect(addr);
    common::send(&mut c, b"!");
    let (lost, _) = rx.recv_timeout(WAIT).expect("connection never ended");
    match lost {
        Lost::Aborted(unsent) => assert!(unsent > 0, "no bytes reported discarded"),
        other => panic!("expected Aborted, got {other:?}"),
    }
    // The client gets what the kernel already had, then the end.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(got < 64 << 20, "aborted connection delivered everything");
    running.stop();
}

/// `write` then `abort` in one callback: the bytes were queued (the
/// transport said so) and must be reported as discarded.
#[test]
fn abort_in_the_same_callback_reports_the_discarded_bytes() {
    let (tx, rx) = mpsc::channel();
    let (addr, running) = common::start_tcp(move |_| FloodThen {
        size: 1 << 20,
        abort: true,
        abort_later: false,
        lost: tx.clone(),
    });
    let mut c = common::connect(addr);
    let (lost, _) = rx.recv_timeout(WAIT).expect("connection never ended");
    // Nothing was sent: the client sees the end at once.
    let mut buf = Vec::new();
    match c.read_to_end(&mut buf) {
        Ok(_) => assert!(buf.is_empty(), "aborted output was sent"),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
    }
    assert_eq!(lost, Lost::Aborted(1 << 20));
    running.stop();
}

// ----- outbound connections ---------------------------------------------------

/// An outbound protocol: sends `hello`, waits for `world`, closes.
struct Outbound {
    made: Arc<AtomicBool>,
    got: Vec<u8>,
    done: Option<Sender<(bool, Vec<u8>, Lost)>>,
    stop_after: bool,
}

impl Protocol for Outbound {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.made.store(true, Ordering::Release);
        t.write(b"hello");
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        self.got.extend_from_slice(data);
        if self.got.ends_with(b"world") {
            t.close();
        }
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &Disconnect) {
        let made = self.made.load(Ordering::Acquire);
        if let Some(tx) = self.done.take() {
            let _ = tx.send((made, std::mem::take(&mut self.got), reason.into()));
        }
        if self.stop_after {
            t.stop();
        }
    }
}

fn outbound(tx: Sender<(bool, Vec<u8>, Lost)>) -> Outbound {
    Outbound {
        made: Arc::new(AtomicBool::new(false)),
        got: Vec::new(),
        done: Some(tx),
        stop_after: false,
    }
}

/// A port on 127.0.0.1 that refuses connections for as long as the
/// returned socket lives: bound but never listening (a connection to it is
/// reset), and bound, so no other test's `bind(0)` can take it meanwhile.
fn refusing_port() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    (s, addr)
}

#[test]
fn connect_to_a_closed_port_reports_connect_failed() {
    let (_bound, closed) = refusing_port();
    let (tx, rx) = mpsc::channel();
    let ((), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            r.connect(&Address::Tcp(closed), Box::new(outbound(tx)))
                .expect("connect must start");
        },
        |r, ()| (r.connection_count(), r.context().client_stats()),
    );
    let (made, got, lost) = rx.recv_timeout(WAIT).expect("failure not reported");
    assert!(!made, "connection_made called for a failed connect");
    assert!(got.is_empty());
    assert_eq!(lost, Lost::ConnectFailed(io::ErrorKind::ConnectionRefused));
    let (open, stats) = running.stop();
    assert_eq!(open, 0);
    assert_eq!(stats.active, 0);
}

/// A listener whose accept queue is full: the kernel drops further SYNs,
/// so a connect to it gets no answer at all. (A "blackhole" address is no
/// good in sandboxes with a transparent proxy that answers everything.)
fn full_listener() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => return (l, held, addr),
        }
    }
    panic!("could not fill the accept queue of a backlog-0 listener");
}

#[test]
fn connect_timeout_reports_connect_failed() {
    let (_listener, _held, target) = full_listener();
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    let ((), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            r.context()
                .connect_timeout(
                    &Address::Tcp(target),
                    Box::new(outbound(tx)),
                    Duration::from_millis(300),
                )
                .expect("connect must start");
        },
        |r, ()| r.timer_count(),
    );
    let (made, _, lost) = rx.recv_timeout(WAIT).expect("failure not reported");
    let took = started.elapsed();
    assert!(!made, "connection_made called for a connect that timed out");
    assert_eq!(lost, Lost::ConnectFailed(io::ErrorKind::TimedOut));
    assert!(
        took >= Duration::from_millis(250),
        "timed out after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "timed out after {took:?}");
    assert_eq!(running.stop(), 0, "connect timer left behind");
}

/// Accepts one connection within `WAIT`.
fn accept_within(l: &TcpListener) -> TcpStream {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                return s;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn connect_to_a_live_listener_exchanges_data() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let ((), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            r.connect(&Address::Tcp(target), Box::new(outbound(tx)))
                .expect("connect");
        },
        |r, ()| r.context().client_stats(),
    );
    let mut server_side = accept_within(&listener);
    assert_eq!(common::read_n(&mut server_side, 5).unwrap(), b"hello");
    common::send(&mut server_side, b"world");
    // The reactor's client closes after "world".
    assert!(common::read_to_eof(&mut server_side).unwrap().is_empty());
    let (made, got, lost) = rx.recv_timeout(WAIT).unwrap();
    assert!(made);
    assert_eq!(got, b"world");
    assert_eq!(lost, Lost::Closed);
    let stats = running.stop();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.closed, 1);
    assert_eq!(stats.bytes_out, 5);
    assert_eq!(stats.bytes_in, 5);
}

/// Answers `hello` with `world`.
struct World;

impl Protocol for World {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if data.ends_with(b"hello") {
            t.write(b"world");
        }
    }
}

#[test]
fn reactor_talks_to_itself_and_stops_from_a_callback() {
    let (tx, rx) = mpsc::channel();
    let ((), running) = common::start(
        ReactorConfig::default(),
        move |r| {
            let id = r
                .listen(common::localhost0(), |_: &PeerInfo| {
                    Box::new(World) as Box<dyn Protocol>
                })
                .unwrap();
            let addr = r.local_addr(id).unwrap();
            let mut client = outbound(tx);
            client.stop_after = true;
            r.connect(&addr, Box::new(client)).unwrap();
        },
        |_, ()| (),
    );
    // The client protocol stops the loop from its connection_lost.
    running.join();
    let (made, got, lost) = rx.recv_timeout(WAIT).unwrap();
    assert!(made);
    assert_eq!(got, b"world");
    assert_eq!(lost, Lost::Closed);
}

// ----- stopping and shutting down ---------------------------------------------

/// Waits until the reactor thread is blocked in the kernel (state `S`).
fn wait_idle(tid: i32) {
    let path = format!("/proc/self/task/{tid}/stat");
    let idle = common::wait_until(WAIT, || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| {
                s.rfind(')')
                    .map(|i| s[i + 1..].trim_start().starts_with('S'))
            })
            .unwrap_or(false)
    });
    assert!(idle, "reactor thread never went idle");
}

#[test]
fn stop_from_another_thread_wakes_an_idle_loop() {
    let ((), running) = common::start(ReactorConfig::default(), |_| (), |r, ()| r.timer_count());
    wait_idle(running.tid);
    // Idle with no timers: poll has no timeout; only the notify wakes it.
    std::thread::sleep(Duration::from_millis(50));
    wait_idle(running.tid);
    // Promptly, not at some deadline: with no timers the loop would
    // otherwise sleep forever. (Generous: a loaded machine.)
    let started = Instant::now();
    running.handle.stop();
    let left = running
        .join_within(Duration::from_secs(5))
        .expect("run() did not return within 5 s of stop()");
    assert_eq!(left, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn shutdown_with_nothing_open_returns_at_once() {
    let ((), running) = common::start(
        ReactorConfig::default(),
        |r| {
            r.listen(common::localhost0(), |_: &PeerInfo| {
                Box::new(Echo) as Box<dyn Protocol>
            })
            .unwrap();
        },
        |_, ()| (),
    );
    wait_idle(running.tid);
    running.handle.shutdown(Duration::from_secs(30));
    assert!(
        running.join_within(Duration::from_secs(1)).is_some(),
        "shutdown with no connections did not return promptly"
    );
}

/// What a `Finisher` reports: (polite, event name, how it ended).
type FinisherEvent = (bool, &'static str, Option<Lost>);

/// Greets; on `shutting_down` says bye and closes (if polite) or carries on.
struct Finisher {
    polite: bool,
    events: Sender<FinisherEvent>,
}

impl Protocol for Finisher {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.write(b"hi\n");
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}

    fn eof_received(&mut self, t: &mut Transport<'_>) {
        // Polite ones finish when the client does; stubborn ones ignore
        // even that (only the deadline ends them).
        if self.polite {
            t.close();
        }
    }

    fn shutting_down(&mut self, t: &mut Transport<'_>) {
        let _ = self.events.send((self.polite, "shutting_down", None));
        if self.polite {
            t.write(b"bye\n");
            t.close();
        }
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let _ = self.events.send((self.polite, "lost", Some(reason.into())));
    }
}

fn start_finishers(
    polite: bool,
) -> (
    SocketAddr,
    mpsc::Receiver<FinisherEvent>,
    common::Running<()>,
) {
    let (tx, rx) = mpsc::channel();
    let (addr, running) = common::start_tcp(move |_| Finisher {
        polite,
        events: tx.clone(),
    });
    (addr, rx, running)
}

#[test]
fn graceful_shutdown_closes_listeners_and_waits_for_connections() {
    let (addr, events, running) = start_finishers(true);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| common::connect(addr)).collect();
    for c in &mut clients {
        assert_eq!(common::read_n(c, 3).unwrap(), b"hi\n");
    }
    let started = Instant::now();
    running.handle.shutdown(Duration::from_secs(20));
    // The first notification means the listener is already closed.
    let (_, what, _) = events.recv_timeout(WAIT).expect("shutting_down");
    assert_eq!(what, "shutting_down");
    // Listeners closed before protocols were told: new clients are refused.
    let refused = TcpStream::connect_timeout(&addr, WAIT);
    assert!(
        matches!(&refused, Err(e) if e.kind() == io::ErrorKind::ConnectionRefused),
        "a new client was not refused during shutdown: {refused:?}"
    );
    for c in &mut clients {
        assert_eq!(common::read_to_eof(c).unwrap(), b"bye\n");
    }
    let (mut told, mut lost) = (1, Vec::new());
    while told < 3 || lost.len() < 3 {
        match events.recv_timeout(WAIT).expect("missing events") {
            (_, "shutting_down", _) => told += 1,
            (_, _, Some(l)) => lost.push(l),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(told, 3);
    assert_eq!(lost, vec![Lost::Closed; 3]);
    // run() returns once the last connection closed, long before the deadline.
    assert!(running.join_within(Duration::from_secs(3)).is_some());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn shutdown_deadline_closes_connections_that_do_not_finish() {
    let (addr, events, running) = start_finishers(false);
    let mut c = common::connect(addr);
    assert_eq!(common::read_n(&mut c, 3).unwrap(), b"hi\n");
    // Half-closing does not end a stubborn connection either.
    c.shutdown(Shutdown::Write).unwrap();
    let started = Instant::now();
    running.handle.shutdown(Duration::from_millis(300));
    let (_, what, _) = events.recv_timeout(WAIT).unwrap();
    assert_eq!(what, "shutting_down");
    let (_, what, lost) = events.recv_timeout(WAIT).unwrap();
    assert_eq!((what, lost), ("lost", Some(Lost::Shutdown(0))));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert!(running.join_within(Duration::from_secs(3)).is_some());
    assert!(common::reads_eof(&mut c));
}

// ----- lingering close --------------------------------------------------------

/// Answers the first bytes with `answer` and closes lingering for `drain`;
/// counts what it was given after that (nothing, if the reactor keeps its
/// word) and reports how the connection ended and when.
struct RefuseLingering {
    answer: Vec<u8>,
    drain: Duration,
    answered: bool,
    delivered_after: usize,
    lost: Sender<(Lost, usize, Instant)>,
}

impl Protocol for RefuseLingering {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if self.answered {
            self.delivered_after += data.len();
            return;
        }
        self.answered = true;
        t.write(&self.answer);
        t.close_lingering(self.drain);
    }

    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let _ = self
            .lost
            .send((Lost::from(reason), self.delivered_after, Instant::now()));
    }
}

fn refuse_lingering(
    answer: &[u8],
    drain: Duration,
) -> (
    SocketAddr,
    common::Running<()>,
    mpsc::Receiver<(Lost, usize, Instant)>,
) {
    let (tx, rx) = mpsc::channel();
    let answer = answer.to_vec();
    let (addr, running) = common::start_tcp(move |_| RefuseLingering {
        answer: answer.clone(),
        drain,
        answered: false,
        delivered_after: 0,
        lost: tx.clone(),
    });
    (addr, running, rx)
}

/// The case a plain close gets wrong: the peer is still sending when the
/// server answers and closes. Unread input at close makes the kernel send a
/// reset, which can discard the answer before the client reads it; a
/// lingering close keeps reading (and discarding) until the client's EOF.
#[test]
fn close_lingering_delivers_the_answer_to_a_peer_still_sending() {
    let answer = vec![b'A'; 200_000];
    let (addr, running, rx) = refuse_lingering(&answer, Duration::from_secs(5));
    let mut c = common::connect(addr);
    let mut sender = c.try_clone().unwrap();
    // Keep sending 2 MiB in a thread while the answer comes back.
    let pusher = std::thread::spawn(move || {
        let chunk = vec![b'x'; 16 * 1024];
        let mut sent = 0;
        while sent < 2 << 20 {
            match io::Write::write_all(&mut sender, &chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => break,
            }
        }
        let _ = sender.shutdown(Shutdown::Write);
        sent
    });
    let mut got = Vec::new();
    c.read_to_end(&mut got)
        .expect("the answer, then EOF (no reset)");
    assert_eq!(got.len(), answer.len(), "the whole answer arrived");
    assert!(got == answer);
    let sent = pusher.join().unwrap();
    assert_eq!(sent, 2 << 20, "the server kept reading until our EOF");
    let (lost, delivered_after, _) = rx.recv_timeout(WAIT).expect("connection never ended");
    assert_eq!(lost, Lost::Closed);
    assert_eq!(delivered_after, 0, "nothing was delivered after the close");
    running.stop();
}

/// A peer that neither closes nor stops sending is let go at the drain
/// deadline, cleanly (everything was sent).
#[test]
fn close_lingering_ends_at_the_drain_deadline() {
    let (addr, running, rx) = refuse_lingering(b"bye\n", Duration::from_millis(300));
    let mut c = common::connect(addr);
    // Before sending: the server's drain clock starts once it has read
    // the request, later.
    let answered_at = Instant::now();
    common::send(&mut c, b"hello");
    let got = common::read_n(&mut c, 4).unwrap();
    assert_eq!(got, b"bye\n");
    // The server shut its write side: EOF after the answer.
    assert!(common::reads_eof(&mut c));
    // Still sending: the server drains, then gives up at the deadline.
    let (lost, delivered_after, at) = loop {
        let _ = io::Write::write_all(&mut c, b"more");
        if let Ok(done) = rx.recv_timeout(Duration::from_millis(50)) {
            break done;
        }
        assert!(answered_at.elapsed() < WAIT, "connection never ended");
    };
    assert_eq!(lost, Lost::Closed);
    assert_eq!(delivered_after, 0);
    let took = at - answered_at;
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "ended after {took:?}"
    );
    running.stop();
}

/// A peer that has already sent its EOF has nothing to drain: the
/// connection closes as soon as the answer is out.
#[test]
fn close_lingering_after_the_peers_eof_closes_at_once() {
    let (addr, running, rx) = refuse_lingering(b"late\n", Duration::from_secs(30));
    let mut c = common::connect(addr);
    common::send(&mut c, b"request");
    c.shutdown(Shutdown::Write).unwrap();
    let got = common::read_to_eof(&mut c).unwrap();
    assert_eq!(got, b"late\n");
    let (lost, _, _) = rx.recv_timeout(Duration::from_secs(5)).expect("closed");
    assert_eq!(lost, Lost::Closed);
    running.stop();
}

// ----- calls from other threads ----------------------------------------------

/// Sends its connection id out on connect, so another thread can reach it.
struct Announce(Sender<torsion_reactor::ConnId>);

impl Protocol for Announce {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let _ = self.0.send(t.id());
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}
}

/// Another thread writes to a connection and closes it through
/// `call_from_thread`; calls from one thread run in the order sent, and an
/// idle loop is woken for them (nothing else happens on it meanwhile).
#[test]
fn calls_from_another_thread_run_on_the_reactor_in_order() {
    let (id_tx, id_rx) = mpsc::channel();
    let (addr, running) = common::start_tcp(move |_| Announce(id_tx.clone()));
    let handle = running.handle.clone();
    let mut c = common::connect(addr);
    let id = id_rx.recv_timeout(WAIT).expect("connection_made");
    let sender = std::thread::spawn(move || {
        for i in 0..100 {
            handle.call_from_thread(move |ctx| {
                assert!(ctx.write_to(id, format!("{i:03}").as_bytes()));
            });
        }
        handle.call_from_thread(move |ctx| ctx.close_conn(id));
    });
    sender.join().unwrap();
    let got = common::read_to_eof(&mut c).unwrap();
    let expected: String = (0..100).map(|i| format!("{i:03}")).collect();
    assert_eq!(String::from_utf8(got).unwrap(), expected);
    running.stop();
}

/// The wake-up eventfd is edge-triggered and never read by the loop, so
/// every notify must make a new edge: 10,000 calls sent at once from four
/// threads all run, and afterwards an idle loop still wakes for each of 50
/// single calls.
#[test]
fn wakeups_from_other_threads_are_never_lost() {
    use std::sync::atomic::AtomicUsize;
    let ((), running) = common::start(ReactorConfig::default(), |_| (), |_, ()| ());
    let ran = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let handle = running.handle.clone();
            let ran = Arc::clone(&ran);
            std::thread::spawn(move || {
                for _ in 0..2500 {
                    let ran = Arc::clone(&ran);
                    handle.call_from_thread(move |_| {
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    assert!(
        common::wait_until(WAIT, || ran.load(Ordering::SeqCst) == 10_000),
        "ran {} of 10000 calls",
        ran.load(Ordering::SeqCst)
    );
    for i in 1..=50 {
        wait_idle(running.tid);
        let counter = Arc::clone(&ran);
        running.handle.call_from_thread(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert!(
            common::wait_until(Duration::from_secs(2), || ran.load(Ordering::SeqCst)
                == 10_000 + i),
            "idle loop not woken for call {i}"
        );
    }
    running.stop();
}

/// Echoes; told to shut down while it has received nothing, it closes at
/// once (as an HTTP server closes an idle keep-alive connection).
struct EchoUnlessIdle {
    received: bool,
}

impl Protocol for EchoUnlessIdle {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        self.received = true;
        t.write(data);
    }

    fn shutting_down(&mut self, t: &mut Transport<'_>) {
        if !self.received {
            t.close();
        }
    }
}

/// Clients the kernel has already accepted into a listener's queue when a
/// graceful shutdown begins are served, not reset when the listener closes,
/// and what they already sent is delivered before `shutting_down`, so a
/// protocol that closes idle connections does not mistake them for idle.
/// The listener is paused so that they are certainly still queued.
#[test]
fn graceful_shutdown_serves_connections_waiting_in_the_accept_queue() {
    let (addr, running) = common::start(
        ReactorConfig::default(),
        |r| {
            let id = r
                .listen(common::localhost0(), |_: &PeerInfo| {
                    Box::new(EchoUnlessIdle { received: false }) as Box<dyn Protocol>
                })
                .unwrap();
            r.pause_listener(id);
            common::tcp_addr(r, id)
        },
        |_, _| (),
    );
    let mut clients: Vec<TcpStream> = (0..5)
        .map(|i| {
            let mut c = common::connect(addr);
            common::send(&mut c, format!("queued {i}\n").as_bytes());
            c.shutdown(Shutdown::Write).unwrap();
            c
        })
        .collect();
    // Paused: nobody is served yet.
    assert!(common::no_data_within(
        &mut clients[0],
        Duration::from_millis(100)
    ));
    running.handle.shutdown(Duration::from_secs(10));
    for (i, c) in clients.iter_mut().enumerate() {
        let got = common::read_to_eof(c).expect("an answer, not a reset");
        assert_eq!(got, format!("queued {i}\n").as_bytes());
    }
    running
        .join_within(WAIT)
        .expect("run() returned once the queued clients were served");
}
