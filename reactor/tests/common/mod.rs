//! Helpers shared by the reactor's integration tests: run a reactor on a
//! background thread, talk to it with blocking std sockets, and read what
//! the kernel says about threads and processes from `/proc`.
//!
//! Every test file uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

mod rng;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use torsion_reactor::{
    Address, ListenerId, PeerInfo, Protocol, Reactor, ReactorConfig, ReactorError, ReactorHandle,
    Transport,
};

/// How long any single blocking socket operation of a test may take before
/// the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a reactor thread may take to return from `run()` once asked.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A reactor running on its own thread.
///
/// The reactor is not `Send`, so it is built inside the thread; `setup`
/// runs there before `run()` and its result comes back to the test, and
/// `after` runs there once `run()` has returned (to read counters), with a
/// copy of what `setup` returned.
pub struct Running<U> {
    /// Stops (or shuts down) the reactor from the test thread.
    pub handle: ReactorHandle,
    /// The reactor thread's kernel thread id (for `/proc/self/task/<tid>`).
    pub tid: i32,
    done: Receiver<(Result<(), ReactorError>, U)>,
    thread: Option<JoinHandle<()>>,
}

/// Starts a reactor with `config` on a new thread. Returns what `setup`
/// returned and the running reactor.
pub fn start<T, U, S, A>(config: ReactorConfig, setup: S, after: A) -> (T, Running<U>)
where
    T: Clone + Send + 'static,
    U: Send + 'static,
    S: FnOnce(&mut Reactor) -> T + Send + 'static,
    A: FnOnce(&mut Reactor, T) -> U + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("reactor".into())
        .spawn(move || {
            let mut reactor = Reactor::with_config(config).expect("reactor");
            let value = setup(&mut reactor);
            let kept = value.clone();
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            ready_tx
                .send((value, reactor.handle(), tid))
                .expect("test thread gone");
            let result = reactor.run();
            let u = after(&mut reactor, kept);
            drop(reactor);
            let _ = done_tx.send((result, u));
        })
        .expect("spawn reactor thread");
    let (value, handle, tid) = ready_rx
        .recv_timeout(JOIN_TIMEOUT)
        .expect("reactor setup did not finish");
    (
        value,
        Running {
            handle,
            tid,
            done: done_rx,
            thread: Some(thread),
        },
    )
}

/// Starts a reactor with default settings and one TCP listener on
/// 127.0.0.1:0 whose factory is `make` (called on the reactor thread).
/// Returns the listener's address.
pub fn start_tcp<P, M>(make: M) -> (SocketAddr, Running<()>)
where
    P: Protocol + 'static,
    M: FnMut(&PeerInfo) -> P + Send + 'static,
{
    start_tcp_with(ReactorConfig::default(), make)
}

/// Like [`start_tcp`] with a specific configuration.
pub fn start_tcp_with<P, M>(config: ReactorConfig, mut make: M) -> (SocketAddr, Running<()>)
where
    P: Protocol + 'static,
    M: FnMut(&PeerInfo) -> P + Send + 'static,
{
    start(
        config,
        move |r| {
            let id = r
                .listen(localhost0(), move |peer: &PeerInfo| {
                    Box::new(make(peer)) as Box<dyn Protocol>
                })
                .expect("listen");
            tcp_addr(r, id)
        },
        |_, _| (),
    )
}

impl<U> Running<U> {
    /// Stops the reactor and waits (bounded) for `run()` to return; returns
    /// what the `after` hook produced. Panics if `run()` failed or the
    /// reactor thread panicked.
    pub fn stop(self) -> U {
        self.handle.stop();
        self.join()
    }

    /// Waits (bounded) for `run()` to return by itself.
    pub fn join(self) -> U {
        self.join_within(JOIN_TIMEOUT)
            .expect("reactor did not stop")
    }

    /// Waits up to `timeout` for `run()` to return by itself. `None` on
    /// timeout (the reactor is then stopped and joined).
    pub fn join_within(mut self, timeout: Duration) -> Option<U> {
        match self.done.recv_timeout(timeout) {
            Ok((result, u)) => {
                if let Some(t) = self.thread.take() {
                    t.join().expect("reactor thread panicked");
                }
                result.expect("run() failed");
                Some(u)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.handle.stop();
                let stopped = self.done.recv_timeout(JOIN_TIMEOUT).is_ok();
                if let Some(t) = self.thread.take() {
                    if stopped {
                        let _ = t.join();
                    }
                }
                None
            }
            Err(RecvTimeoutError::Disconnected) => {
                let t = self.thread.take().expect("thread");
                match t.join() {
                    Err(p) => std::panic::resume_unwind(p),
                    Ok(()) => panic!("reactor thread ended without reporting"),
                }
            }
        }
    }
}

impl<U> Drop for Running<U> {
    fn drop(&mut self) {
        // A test that fails early must not leave a reactor running.
        if self.thread.is_some() {
            self.handle.stop();
            let _ = self.done.recv_timeout(JOIN_TIMEOUT);
        }
    }
}

/// `127.0.0.1:0`.
pub fn localhost0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The TCP address a listener is bound to.
pub fn tcp_addr(r: &Reactor, id: ListenerId) -> SocketAddr {
    match r.local_addr(id) {
        Some(Address::Tcp(a)) => a,
        other => panic!("listener {id:?} has no TCP address: {other:?}"),
    }
}

/// A blocking client connection with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

/// Reads until EOF (bounded by the stream's read timeout).
pub fn read_to_eof(s: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Reads exactly `n` bytes.
pub fn read_n(s: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0; n];
    s.read_exact(&mut out)?;
    Ok(out)
}

/// True when the peer has closed: a read returns 0 (EOF) or a reset.
pub fn reads_eof(s: &mut impl Read) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
    }
}

/// True when nothing arrives on `s` within `d` (the read times out).
pub fn no_data_within(s: &mut TcpStream, d: Duration) -> bool {
    s.set_read_timeout(Some(d)).unwrap();
    let mut b = [0u8; 1];
    let r = s.read(&mut b);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    matches!(r, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Echo: every byte comes back; the default `eof_received` closes after
/// flushing.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        t.write(data);
    }
}

/// Writes `data` and flushes.
pub fn send(s: &mut impl Write, data: &[u8]) {
    s.write_all(data).expect("write");
    s.flush().expect("flush");
}

// Not every test file draws random numbers.
#[allow(unused_imports)]
pub use rng::Rng;

/// Polls `cond` every few milliseconds until it holds or `timeout` passes.
/// For state the reactor thread publishes through atomics, where there is
/// no event to wait on.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kernel clock ticks per second (`getconf CLK_TCK`).
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// The fields of a `/proc/.../stat` line after the command name, so that
/// `fields[0]` is the state (field 3 of proc(5)).
fn stat_fields(path: &str) -> Option<Vec<String>> {
    let text = fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime (clock ticks) from a stat file.
fn cpu_ticks_of(path: &str) -> Option<u64> {
    let f = stat_fields(path)?;
    // utime and stime are fields 14 and 15 of proc(5): 11 and 12 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time (clock ticks) used so far by one thread of this process.
pub fn thread_cpu_ticks(tid: i32) -> u64 {
    cpu_ticks_of(&format!("/proc/self/task/{tid}/stat")).expect("thread stat")
}

/// CPU time (clock ticks) used so far by a process.
pub fn process_cpu_ticks(pid: u32) -> Option<u64> {
    cpu_ticks_of(&format!("/proc/{pid}/stat"))
}

/// A process's state letter (`R`, `S`, `Z`, ...), or `None` if it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    stat_fields(&format!("/proc/{pid}/stat"))?
        .first()?
        .chars()
        .next()
}

/// Every process on the host as (pid, state, ppid, pgrp).
pub fn all_processes() -> Vec<(u32, char, u32, u32)> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(f) = stat_fields(&format!("/proc/{pid}/stat")) else {
            continue;
        };
        let state = f.first().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = f.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let pgrp = f.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((pid, state, ppid, pgrp));
    }
    out
}

/// Zombie children of this test process.
pub fn our_zombies() -> Vec<u32> {
    let me = std::process::id();
    all_processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == me && state == 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// Live (non-zombie) processes in process group `pgrp`.
pub fn live_in_group(pgrp: u32) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|&(_, state, _, g)| g == pgrp && state != 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}
