//! The built `torsion` binary under signals and descriptor exhaustion:
//! SIGTERM during a slow transfer lets it finish and exits 0; a connection
//! flood with a low `RLIMIT_NOFILE` neither crashes nor spins the server,
//! which serves again afterwards.
//!
//! Contract relied on: `torsion --no-gemini --no-http --no-ws --echo
//! 127.0.0.1:0` runs only an echo listener and prints `torsion: echo
//! listening on 127.0.0.1:PORT` on stderr; SIGTERM starts a graceful
//! shutdown and the process exits 0. Generated state goes to a temporary
//! directory, never the user's.

mod server_support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use server_support::{Server, BIN};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments for an echo-only server on an ephemeral port.
fn echo_only_args() -> Vec<String> {
    let state = std::env::temp_dir().join(format!("torsion-binary-test-{}", std::process::id()));
    [
        "--no-gemini",
        "--no-http",
        "--no-ws",
        "--echo",
        "127.0.0.1:0",
        "--state-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([state.display().to_string()])
    .collect()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Byte `i` of the test stream: a pattern that shows lost or reordered
/// bytes at their offset.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8 ^ ((i >> 16) as u8)
}

/// Kernel clock ticks per second.
fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &text[text.rfind(')').expect("comm") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Waits until connecting to `addr` is refused. A probe that still gets
/// in is closed at once, so it cannot hold a shutting-down server open.
fn wait_refused(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
            Err(_) => {}
            Ok(probe) => drop(probe),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn sigterm_during_a_slow_transfer_lets_it_finish_and_exits_zero() {
    const TOTAL: usize = 4 << 20;
    const SIGNAL_AFTER: usize = 256 << 10;
    let mut cmd = Command::new(BIN);
    cmd.args(echo_only_args())
        .args(["--shutdown-timeout", "20s"]);
    let mut server = Server::start(cmd, 1);
    let addr = server.addr("echo");
    let mut client = connect(addr);
    let mut writer = client.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let data: Vec<u8> = (0..TOTAL).map(pattern).collect();
        for chunk in data.chunks(64 << 10) {
            writer.write_all(chunk).expect("send");
        }
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut received = 0usize;
    let mut signalled = false;
    let mut refused_seen = false;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match client.read(&mut buf) {
            Ok(n) => n,
            Err(e) => panic!(
                "read failed after {received} bytes: {e}; stderr: {:?}",
                server.lines()
            ),
        };
        if n == 0 {
            break;
        }
        for (k, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, pattern(received + k), "byte {}", received + k);
        }
        received += n;
        if !signalled && received >= SIGNAL_AFTER {
            server.signal(libc::SIGTERM);
            signalled = true;
        } else if signalled && !refused_seen {
            // Shutting down: the listener closes while this transfer goes on.
            refused_seen = wait_refused(addr, Duration::from_secs(3));
            assert!(refused_seen, "still accepting after SIGTERM");
        }
        // A slow reader: 64 KiB every 20 ms.
        std::thread::sleep(Duration::from_millis(20));
    }
    sender.join().expect("sender");
    assert!(signalled, "transfer ended before the signal");
    assert!(
        refused_seen,
        "transfer ended before the listener was checked"
    );
    assert_eq!(received, TOTAL, "bytes echoed before EOF");
    let status = server
        .wait_exit_within(Duration::from_secs(10))
        .expect("server did not exit after the transfer");
    assert!(
        status.success(),
        "exit status {status:?}; stderr: {:?}",
        server.lines()
    );
}

/// Starts the server with `RLIMIT_NOFILE` at 64 (through the shell, so the
/// limit applies to the server only), floods it with 500 connections that
/// sit there, and checks it neither spins nor dies, then serves again.
fn flood_with_low_nofile(extra: &[&str]) {
    const FLOOD: usize = 500;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -n 64 && exec "$@""#)
        .arg("sh")
        .arg(BIN)
        .args(echo_only_args())
        // No per-client cap: every flood connection comes from 127.0.0.1,
        // and the point is the descriptor limit, not the gate.
        .args(["--max-conns-per-ip", "0"])
        .args(extra);
    let mut server = Server::start(cmd, 1);
    let addr = server.addr("echo");
    let pid = server.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("64")),
        "the limit did not apply: {limits}"
    );
    // The flood: more clients than the server has descriptors for.
    let mut flood = Vec::with_capacity(FLOOD);
    // At the connection cap (or out of descriptors) the listener pauses and
    // the rest of the flood waits in the kernel's accept queue, which must
    // hold it (the reactor's DEFAULT_BACKLOG is 1024). A client the kernel
    // drops instead hangs in connect until its SYN is retransmitted.
    let started = Instant::now();
    for i in 0..FLOOD {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => flood.push(s),
            Err(e) => panic!(
                "flood connection {i} failed ({e}): the listen backlog is full; stderr: {:?}",
                server.lines()
            ),
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "only {} flood connections in {:?}: the kernel is dropping SYNs (listen backlog full)",
            flood.len(),
            started.elapsed()
        );
    }
    let window = Duration::from_secs(2);
    let before = cpu_ticks(pid);
    std::thread::sleep(window);
    let used = cpu_ticks(pid) - before;
    // Under 20% of one core over the window.
    let budget = clk_tck() * 2 / 5;
    assert!(
        used < budget,
        "server used {used} ticks in {window:?} during the flood (budget {budget}); stderr: {:?}",
        server.lines()
    );
    assert!(
        server.is_running(),
        "server died during the flood; stderr: {:?}",
        server.lines()
    );
    drop(flood);
    // After the flood the server serves again.
    let mut c = match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot connect after the flood: {e}; stderr: {:?}",
            server.lines()
        ),
    };
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(b"still alive?").unwrap();
    let mut back = [0u8; 12];
    if let Err(e) = c.read_exact(&mut back) {
        panic!("no echo after the flood: {e}; stderr: {:?}", server.lines());
    }
    assert_eq!(&back, b"still alive?");
    drop(c);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit_within(Duration::from_secs(10))
        .expect("server did not exit on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

/// The connection cap derived from the limit keeps the server below it:
/// the listener pauses and the flood waits in the kernel's backlog.
#[test]
fn connection_flood_with_low_nofile_at_the_default_cap() {
    flood_with_low_nofile(&[]);
}

/// A cap above the limit: accept really fails with EMFILE, and the server
/// must back off (spare descriptor, paused listener) instead of spinning.
#[test]
fn connection_flood_into_emfile_neither_crashes_nor_spins() {
    flood_with_low_nofile(&["--max-conns", "1000"]);
}
