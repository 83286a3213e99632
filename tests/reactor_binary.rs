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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_torsion");
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const READY_PREFIX: &str = "torsion: echo listening on ";

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

/// A running server process; killed (and reaped) if a test fails early.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `command` (which must run the binary with `--echo
    /// 127.0.0.1:0`) and waits for its listening line.
    fn start(mut command: Command) -> Server {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info");
        let mut child = command.spawn().expect("start torsion");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let keep = Arc::clone(&lines);
        // Keep draining stderr for the whole run so the server never blocks
        // on a full pipe; remember the lines for failure messages.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix(READY_PREFIX) {
                    let _ = tx.send(a.trim().to_string());
                }
                keep.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "torsion did not report its address; stderr: {:?}",
                    lines.lock().unwrap()
                );
            }
        };
        Server {
            child,
            addr,
            stderr: lines,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: i32) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid");
        // SAFETY: kill has no memory-safety preconditions; pid is our child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill failed");
    }

    /// Waits up to `timeout` for the process to exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
    let mut server = Server::start(cmd);
    let mut client = connect(server.addr);
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
                server.stderr()
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
            refused_seen = wait_refused(server.addr, Duration::from_secs(3));
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
        .wait_exit(Duration::from_secs(10))
        .expect("server did not exit after the transfer");
    assert!(
        status.success(),
        "exit status {status:?}; stderr: {:?}",
        server.stderr()
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
    let mut server = Server::start(cmd);
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
        match TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)) {
            Ok(s) => flood.push(s),
            Err(e) => panic!(
                "flood connection {i} failed ({e}): the listen backlog is full; stderr: {:?}",
                server.stderr()
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
        server.stderr()
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "server died during the flood; stderr: {:?}",
        server.stderr()
    );
    drop(flood);
    // After the flood the server serves again.
    let mut c = match TcpStream::connect_timeout(&server.addr, IO_TIMEOUT) {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot connect after the flood: {e}; stderr: {:?}",
            server.stderr()
        ),
    };
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(b"still alive?").unwrap();
    let mut back = [0u8; 12];
    if let Err(e) = c.read_exact(&mut back) {
        panic!(
            "no echo after the flood: {e}; stderr: {:?}",
            server.stderr()
        );
    }
    assert_eq!(&back, b"still alive?");
    drop(c);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(10))
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
