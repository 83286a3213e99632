//! Child processes: output streams completely (also through backpressure to
//! a slow client), exit status arrives, children die with their connection
//! (even ones ignoring SIGTERM), and no zombie is left behind.
//!
//! The tests in this file run one at a time (`SERIAL`): each ends by
//! checking that this process has no zombie children, which another test's
//! child could otherwise briefly be.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use torsion_reactor::{
    ChildId, ChildStream, Protocol, ReactorConfig, Transport, DEFAULT_HIGH_WATER,
    DEFAULT_READ_BUFFER,
};

const WAIT: Duration = Duration::from_secs(10);
const TEN_MB: u64 = 10_000_000;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Asserts that this process has no zombie children (waiting briefly for
/// a reactor that is still reaping).
fn assert_no_zombies() {
    let clean = common::wait_until(Duration::from_secs(3), || common::our_zombies().is_empty());
    assert!(clean, "zombie children remain: {:?}", common::our_zombies());
}

/// Waits until `pid` no longer exists (exited and reaped).
fn wait_gone(pid: u32) -> bool {
    common::wait_until(Duration::from_secs(5), || {
        common::process_state(pid).is_none()
    })
}

/// What a child protocol saw, sent on `child_exited`.
#[derive(Debug, Default)]
struct ChildReport {
    stdout: Vec<u8>,
    stdout_len: u64,
    stdout_nonzero: bool,
    stderr: Vec<u8>,
    status: Option<ExitStatus>,
    output_after_exit: bool,
}

/// Spawns `command` on connect; collects (or, with `forward`, writes to the
/// client) the child's output and reports on exit.
struct Runner {
    command: Option<Command>,
    /// Keep stdout bytes (small outputs) rather than only counting them.
    keep: bool,
    /// Write stdout to the client and close after the child exits.
    forward: bool,
    /// Kill the child right after spawning it.
    kill_at_once: bool,
    report: ChildReport,
    exited: bool,
    max_buffered: Arc<AtomicUsize>,
    delivered: Arc<AtomicU64>,
    pid_tx: Option<Sender<u32>>,
    tx: Option<Sender<ChildReport>>,
}

impl Runner {
    fn new(command: Command, tx: Sender<ChildReport>) -> Runner {
        Runner {
            command: Some(command),
            keep: false,
            forward: false,
            kill_at_once: false,
            report: ChildReport::default(),
            exited: false,
            max_buffered: Arc::new(AtomicUsize::new(0)),
            delivered: Arc::new(AtomicU64::new(0)),
            pid_tx: None,
            tx: Some(tx),
        }
    }
}

impl Protocol for Runner {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let Some(cmd) = self.command.take() else {
            return;
        };
        let id = t.spawn(cmd).expect("spawn");
        if let (Some(tx), Some(pid)) = (self.pid_tx.as_ref(), t.child_pid(id)) {
            let _ = tx.send(pid);
        }
        if self.kill_at_once {
            assert!(t.kill_child(id));
        }
    }

    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}

    fn child_output(
        &mut self,
        t: &mut Transport<'_>,
        _child: ChildId,
        stream: ChildStream,
        data: &[u8],
    ) {
        if self.exited {
            self.report.output_after_exit = true;
        }
        match stream {
            ChildStream::Stdout => {
                self.report.stdout_len += data.len() as u64;
                self.delivered
                    .store(self.report.stdout_len, Ordering::Release);
                if data.iter().any(|&b| b != 0) {
                    self.report.stdout_nonzero = true;
                }
                if self.keep {
                    self.report.stdout.extend_from_slice(data);
                }
                if self.forward {
                    t.write(data);
                    self.max_buffered
                        .fetch_max(t.buffered_len(), Ordering::AcqRel);
                }
            }
            ChildStream::Stderr => self.report.stderr.extend_from_slice(data),
        }
    }

    fn child_exited(&mut self, t: &mut Transport<'_>, _child: ChildId, status: ExitStatus) {
        self.exited = true;
        self.report.status = Some(status);
        if self.forward {
            t.close();
        }
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(std::mem::take(&mut self.report));
        }
    }
}

/// Starts a reactor whose listener builds a `Runner` from `make` for each
/// connection; the `after` hook reports the reactor's child count.
fn start_runner<M>(make: M) -> (std::net::SocketAddr, common::Running<usize>)
where
    M: FnMut() -> Runner + Send + 'static,
{
    let mut make = make;
    common::start(
        ReactorConfig::default(),
        move |r| {
            let id = r
                .listen(
                    common::localhost0(),
                    move |_: &torsion_reactor::PeerInfo| Box::new(make()) as Box<dyn Protocol>,
                )
                .unwrap();
            common::tcp_addr(r, id)
        },
        |r, _| r.child_count(),
    )
}

#[test]
fn ten_megabytes_of_child_output_arrive_whole_then_exit() {
    let _g = serial();
    let (tx, rx) = mpsc::channel();
    let (addr, running) =
        start_runner(move || Runner::new(sh("head -c 10000000 /dev/zero"), tx.clone()));
    let _client = common::connect(addr);
    let r = rx.recv_timeout(WAIT).expect("child_exited not delivered");
    assert_eq!(r.stdout_len, TEN_MB, "child output length");
    assert!(!r.stdout_nonzero, "child output corrupted");
    assert!(r.stderr.is_empty(), "stderr: {:?}", r.stderr);
    assert!(r.status.expect("status").success());
    assert!(!r.output_after_exit);
    assert_eq!(running.stop(), 0, "children left in the reactor");
    assert_no_zombies();
}

#[test]
fn args_env_cwd_stderr_and_exit_code() {
    let _g = serial();
    let (tx, rx) = mpsc::channel();
    let dir = std::env::temp_dir();
    let d2 = dir.clone();
    let (addr, running) = start_runner(move || {
        let mut c = sh("echo out; echo err >&2; pwd; echo \"$TORSION_TEST_VAR\" \"$1\"; exit 3");
        c.arg("sh").arg("first-arg");
        c.env("TORSION_TEST_VAR", "from-env").current_dir(&d2);
        let mut r = Runner::new(c, tx.clone());
        r.keep = true;
        r
    });
    let _client = common::connect(addr);
    let r = rx.recv_timeout(WAIT).expect("child_exited not delivered");
    let cwd = dir.canonicalize().unwrap();
    let expected = format!("out\n{}\nfrom-env first-arg\n", cwd.display());
    assert_eq!(String::from_utf8_lossy(&r.stdout), expected);
    assert_eq!(r.stderr, b"err\n");
    assert_eq!(r.status.expect("status").code(), Some(3));
    assert_eq!(running.stop(), 0);
    assert_no_zombies();
}

#[test]
fn kill_on_demand_reports_the_signal() {
    let _g = serial();
    let (tx, rx) = mpsc::channel();
    let (addr, running) = start_runner(move || {
        let mut r = Runner::new(sh("sleep 30"), tx.clone());
        r.kill_at_once = true;
        r
    });
    let _client = common::connect(addr);
    let r = rx.recv_timeout(WAIT).expect("child_exited not delivered");
    let status = r.status.expect("status");
    assert!(!status.success());
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert_eq!(running.stop(), 0);
    assert_no_zombies();
}

#[test]
fn child_output_reaches_a_slow_client_through_backpressure() {
    let _g = serial();
    let (tx, rx) = mpsc::channel();
    let max_buffered = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let (m2, d2) = (Arc::clone(&max_buffered), Arc::clone(&delivered));
    let (addr, running) = start_runner(move || {
        let mut r = Runner::new(sh("head -c 10000000 /dev/zero"), tx.clone());
        r.forward = true;
        r.max_buffered = Arc::clone(&m2);
        r.delivered = Arc::clone(&d2);
        r
    });
    let mut client = common::connect(addr);
    // Not reading: the child's pipe must be paused, so delivery stalls
    // well short of the whole output.
    let mut last = u64::MAX;
    let stalled = common::wait_until(WAIT, || {
        let now = delivered.load(Ordering::Acquire);
        let same = now == last && now > 0;
        last = now;
        if !same {
            std::thread::sleep(Duration::from_millis(100));
        }
        same
    });
    assert!(stalled, "child output never stalled");
    assert!(
        last < TEN_MB,
        "all child output was read while the client read nothing"
    );
    // Now read slowly at first, then everything.
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    let mut reads = 0;
    loop {
        let n = client.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == 0), "corrupted output");
        total += n as u64;
        reads += 1;
        if reads < 20 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert_eq!(total, TEN_MB, "bytes received by the client");
    let r = rx.recv_timeout(WAIT).expect("child_exited not delivered");
    assert!(r.status.expect("status").success());
    assert_eq!(r.stdout_len, TEN_MB);
    let max = max_buffered.load(Ordering::Acquire);
    let bound = DEFAULT_HIGH_WATER + DEFAULT_READ_BUFFER;
    assert!(max <= bound, "queued {max} bytes (bound {bound})");
    assert_eq!(running.stop(), 0);
    assert_no_zombies();
}

/// Spawns `script`, closes the client, and checks that the child's whole
/// process group is gone and reaped.
fn child_dies_with_connection(script: &str) {
    let (tx, _rx) = mpsc::channel();
    let (pid_tx, pid_rx) = mpsc::channel();
    let script = script.to_string();
    let (addr, running) = start_runner(move || {
        let mut r = Runner::new(sh(&script), tx.clone());
        r.pid_tx = Some(pid_tx.clone());
        r
    });
    let client = common::connect(addr);
    let pid = pid_rx.recv_timeout(WAIT).expect("child pid");
    // The group leader is `sh`; give it a moment to start its own child
    // so that the kill has a group to kill.
    assert!(common::wait_until(WAIT, || common::live_in_group(pid)
        .len()
        >= 2
        || script_is_exec(&common::live_in_group(pid))));
    assert_eq!(common::process_state(pid).map(|s| s != 'Z'), Some(true));
    let started = Instant::now();
    drop(client);
    assert!(
        wait_gone(pid),
        "child {pid} still exists after its connection closed"
    );
    assert!(
        common::wait_until(Duration::from_secs(5), || common::live_in_group(pid)
            .is_empty()),
        "processes of the child's group survive: {:?}",
        common::live_in_group(pid)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(running.stop(), 0, "children left in the reactor");
    assert_no_zombies();
}

/// A shell may exec its last command: then the group has one process.
fn script_is_exec(group: &[u32]) -> bool {
    group.len() == 1
        && std::fs::read_to_string(format!("/proc/{}/comm", group[0]))
            .is_ok_and(|c| c.trim() == "sleep")
}

#[test]
fn running_child_is_killed_when_its_connection_closes() {
    let _g = serial();
    child_dies_with_connection("sleep 30");
}

#[test]
fn child_ignoring_sigterm_is_killed_with_its_group() {
    let _g = serial();
    child_dies_with_connection("trap '' TERM; sleep 30; echo done");
}

/// A child that starts background processes and exits: they hold its
/// stdout open and would keep running forever; the reactor kills what is
/// left of the group as soon as the child is reaped, so the output ends
/// (EOF), `child_exited` arrives promptly and nothing survives.
#[test]
fn background_processes_do_not_outlive_the_child() {
    let _g = serial();
    let (tx, rx) = mpsc::channel();
    let (pid_tx, pid_rx) = mpsc::channel();
    let (addr, running) = start_runner(move || {
        // Three sleepers inherit stdout and would outlive the shell.
        let mut r = Runner::new(
            sh("echo start; sleep 60 & sleep 60 & sleep 60 & exit 0"),
            tx.clone(),
        );
        r.keep = true;
        r.pid_tx = Some(pid_tx.clone());
        r
    });
    let _client = common::connect(addr);
    let pid = pid_rx.recv_timeout(WAIT).expect("child pid");
    let started = Instant::now();
    let report = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("child_exited was never delivered: its sleepers kept stdout open");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "child_exited took {:?}",
        started.elapsed()
    );
    assert_eq!(report.stdout, b"start\n");
    assert_eq!(report.status.and_then(|s| s.code()), Some(0));
    assert!(
        common::wait_until(Duration::from_secs(5), || common::live_in_group(pid)
            .is_empty()),
        "the child's background processes survive: {:?}",
        common::live_in_group(pid)
    );
    assert_eq!(running.stop(), 0, "children left in the reactor");
    assert_no_zombies();
}
