//! The shared state of a run: the job schedule (closed loop, or open loop
//! at a fixed rate), the measurement window, the counters, and the end.
//!
//! Everything runs on the reactor's one thread: the state is an
//! `Rc<Run>` with a `RefCell` inside, borrowed for a few instructions per
//! operation.
//!
//! Operations ("jobs") are claimed by workers ([`super::worker`]). In the
//! closed loop a job is available whenever a worker is free, and starts
//! now. In the open loop (`--rate R`) job `i` is scheduled at
//! `t0 + i / R`; worker `k` of `c` takes jobs `k`, `k + c`, `k + 2c`... (as
//! wrk2 does), and a job's latency counts from its scheduled time, so a
//! stalled server shows up as latency instead of silently lowering the
//! offered load (coordinated omission).

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use torsion_reactor::tls::ClientTlsConfig;
use torsion_reactor::{Address, ConnId, Context, Disconnect, Protocol, ReactorError};

use super::cpu;
use super::histogram::Histogram;

/// Longest the end of a timed run waits for operations still in flight.
pub const MAX_DRAIN: Duration = Duration::from_secs(2);

/// How often the end of a timed run looks whether the last operations
/// have finished.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// Why an operation failed, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The connection was refused (nothing listening).
    Refused,
    /// Connecting failed otherwise (unreachable, no socket).
    Connect,
    /// No answer within `--timeout` (connect, handshake or response).
    Timeout,
    /// The server reset the connection.
    Reset,
    /// The server closed the connection before the response was complete.
    Closed,
    /// The TLS handshake failed or a record was bad.
    Tls,
    /// The response could not be parsed, or an echo did not match.
    BadResponse,
    /// A response body differed from `--expect-body` / `--expect-bytes`
    /// (a byte, or its length).
    Body,
    /// A complete response with a status class not in `--expect`.
    Status,
    /// Any other socket error.
    Other,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Refused,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Closed,
        ErrorKind::Tls,
        ErrorKind::BadResponse,
        ErrorKind::Body,
        ErrorKind::Status,
        ErrorKind::Other,
    ];

    /// Its key in the JSON object.
    pub fn key(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed_early",
            ErrorKind::Tls => "tls",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Body => "body",
            ErrorKind::Status => "unexpected_status",
            ErrorKind::Other => "other",
        }
    }

    /// Its name in the table.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Refused => "connect refused",
            ErrorKind::Connect => "connect failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Closed => "closed early",
            ErrorKind::Tls => "TLS failure",
            ErrorKind::BadResponse => "bad response",
            ErrorKind::Body => "body mismatch",
            ErrorKind::Status => "unexpected status",
            ErrorKind::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Classifies how a connection ended while operations were in flight.
/// `handshaking` is true when a TLS connection never reached
/// `connection_made`.
pub fn classify(reason: &Disconnect, handshaking: bool) -> ErrorKind {
    use std::io::ErrorKind as Io;
    match reason {
        Disconnect::ConnectFailed(e) => match e.kind() {
            Io::ConnectionRefused => ErrorKind::Refused,
            Io::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Connect,
        },
        Disconnect::Io(e) => match e.kind() {
            Io::ConnectionReset | Io::BrokenPipe | Io::ConnectionAborted => ErrorKind::Reset,
            Io::UnexpectedEof if handshaking => ErrorKind::Tls,
            Io::UnexpectedEof => ErrorKind::Closed,
            Io::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Other,
        },
        Disconnect::Tls(_) => ErrorKind::Tls,
        Disconnect::HandshakeTimedOut => ErrorKind::Timeout,
        Disconnect::CloseTimedOut { .. } => ErrorKind::Timeout,
        _ => ErrorKind::Closed,
    }
}

/// The shape of the load: fixed for the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Workers (connections).
    pub connections: usize,
    /// Operations to measure (`-n`).
    pub limit: Option<u64>,
    /// Open-loop rate, operations per second.
    pub rate: Option<f64>,
    /// Unmeasured lead time.
    pub warmup: Duration,
    /// Measured duration (`None` with `-n`).
    pub duration: Option<Duration>,
    /// Per-operation timeout.
    pub timeout: Duration,
    /// Status classes that count as success, by first digit.
    pub expect: [bool; 10],
    /// Operations in flight per connection.
    pub pipeline: usize,
    /// Operations per connection (`Some(1)`: a fresh connection per
    /// operation).
    pub per_conn: Option<u64>,
}

/// How to reach the server: the address, resolved once, and TLS.
pub struct Link {
    /// The server's address.
    pub addr: Address,
    /// The TLS configuration (built once, shared) and server name.
    pub tls: Option<(ClientTlsConfig, String)>,
}

/// A job claimed from the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Start now; latency counts from this instant (the scheduled time in
    /// the open loop, which may be in the past).
    Now(Instant),
    /// Scheduled for later (open loop): start it then.
    At(Instant),
    /// No more work for this worker.
    Done,
}

/// The counters and window of a run.
struct State {
    t0: Instant,
    /// Operations starting at or after this are measured.
    measure_start: Option<Instant>,
    /// When the measured window closed (timed runs).
    window_end: Option<Instant>,
    /// Open loop: scheduled jobs at or after this are not issued.
    issue_until: Option<Instant>,
    /// Open loop with `-n`: jobs with an index at or above this are not
    /// issued.
    total_jobs: Option<u64>,
    stopping: bool,
    finished: bool,
    interrupted: bool,
    issued_measured: u64,
    done_measured: u64,
    in_flight: u64,
    ops: u64,
    hist: Histogram,
    errors: [u64; ErrorKind::ALL.len()],
    classes: [u64; 10],
    last_done: Option<Instant>,
    /// Progress counters, warm-up included.
    seen_ops: u64,
    seen_errors: u64,
    cpu0: Option<Duration>,
    server0: Option<Duration>,
    bytes0: (u64, u64),
    cpu1: Option<Duration>,
    server1: Option<Duration>,
    bytes1: (u64, u64),
    finished_at: Option<Instant>,
}

impl State {
    /// Whether an operation that started at `start` is measured (started
    /// after the warm-up).
    fn measures(&self, start: Instant) -> bool {
        self.measure_start.is_some_and(|m| start >= m)
    }
}

/// Builds and starts worker number `k` (its open-loop cursor) on a
/// connection.
pub type Spawner = Box<dyn Fn(&mut Context<'_>, u64)>;

/// A run: plan, link and state. Shared by every worker as `Rc<Run>`.
pub struct Run {
    /// The shape of the load.
    pub plan: Plan,
    /// How to reach the server.
    pub link: Link,
    /// The server's pid for its CPU time, when known.
    pub server_pid: Option<u32>,
    st: RefCell<State>,
    spawner: RefCell<Option<std::rc::Rc<Spawner>>>,
    /// Workers that could not even start a socket and were respawned.
    pub respawns: Cell<u64>,
}

/// What a finished run measured, for the report.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Operations completed in the measured window (with a response).
    pub ops: u64,
    /// Latency histogram of those operations, in nanoseconds.
    pub hist: Histogram,
    /// Failed operations by [`ErrorKind`] (in `ErrorKind::ALL` order).
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Responses by status class (first digit).
    pub classes: [u64; 10],
    /// The measured time.
    pub elapsed: Duration,
    /// Operations still in flight when the run ended (not counted).
    pub unfinished: u64,
    /// Stopped by SIGINT.
    pub interrupted: bool,
    /// Wire bytes received and sent over the window (TLS included).
    pub bytes: (u64, u64),
    /// This process's CPU time over the window.
    pub harness_cpu: Option<Duration>,
    /// The server's CPU time over the window.
    pub server_cpu: Option<Duration>,
}

impl Run {
    /// A run about to start at `t0`.
    pub fn new(plan: Plan, link: Link, server_pid: Option<u32>, t0: Instant) -> Run {
        let mut st = State {
            t0,
            measure_start: None,
            window_end: None,
            issue_until: None,
            total_jobs: None,
            stopping: false,
            finished: false,
            interrupted: false,
            issued_measured: 0,
            done_measured: 0,
            in_flight: 0,
            ops: 0,
            hist: Histogram::new(),
            errors: [0; ErrorKind::ALL.len()],
            classes: [0; 10],
            last_done: None,
            seen_ops: 0,
            seen_errors: 0,
            cpu0: None,
            server0: None,
            bytes0: (0, 0),
            cpu1: None,
            server1: None,
            bytes1: (0, 0),
            finished_at: None,
        };
        if let Some(rate) = plan.rate {
            let start = t0 + plan.warmup;
            st.measure_start = Some(start);
            st.issue_until = plan.duration.map(|d| start + d);
            st.total_jobs = plan.limit.map(|n| {
                let warm = (plan.warmup.as_secs_f64() * rate).ceil() as u64;
                warm.saturating_add(n)
            });
        }
        Run {
            plan,
            link,
            server_pid,
            st: RefCell::new(st),
            spawner: RefCell::new(None),
            respawns: Cell::new(0),
        }
    }

    /// Sets how workers are built (once, before the loop starts).
    pub fn set_spawner(&self, spawner: Spawner) {
        *self.spawner.borrow_mut() = Some(std::rc::Rc::new(spawner));
    }

    /// Starts worker `k` (cursor `k`) on a new connection.
    pub fn spawn(&self, ctx: &mut Context<'_>, cursor: u64) {
        let spawner = self.spawner.borrow().clone();
        if let Some(f) = spawner {
            f(ctx, cursor);
        }
    }

    /// Opens a connection (TLS when the target uses it) for `protocol`.
    pub fn connect(
        &self,
        ctx: &mut Context<'_>,
        protocol: Box<dyn Protocol>,
    ) -> Result<ConnId, ReactorError> {
        match &self.link.tls {
            Some((config, name)) => ctx.connect_tls(&self.link.addr, name, config, protocol),
            None => ctx.connect(&self.link.addr, protocol),
        }
    }

    /// Whether the run has ended: workers stop at once.
    pub fn finished(&self) -> bool {
        self.st.borrow().finished
    }

    /// Claims the next job for a worker whose open-loop cursor is `cursor`.
    pub fn take_job(&self, cursor: &mut u64, now: Instant) -> Job {
        let mut st = self.st.borrow_mut();
        if st.finished || st.stopping {
            return Job::Done;
        }
        match self.plan.rate {
            None => {
                if st.measure_start.is_some() {
                    if let Some(n) = self.plan.limit {
                        if st.issued_measured >= n {
                            return Job::Done;
                        }
                    }
                    st.issued_measured += 1;
                }
                st.in_flight += 1;
                Job::Now(now)
            }
            Some(rate) => {
                let i = *cursor;
                if st.total_jobs.is_some_and(|total| i >= total) {
                    return Job::Done;
                }
                let at = st.t0 + Duration::from_secs_f64(i as f64 / rate);
                if st.issue_until.is_some_and(|end| at >= end) {
                    return Job::Done;
                }
                *cursor = i.saturating_add(self.plan.connections as u64);
                if st.measure_start.is_some_and(|m| at >= m) {
                    st.issued_measured += 1;
                }
                st.in_flight += 1;
                if at <= now {
                    Job::Now(at)
                } else {
                    Job::At(at)
                }
            }
        }
    }

    /// An operation that started at `start` got its complete response at
    /// `now`, with this status class (first digit), if the protocol has
    /// statuses.
    pub fn complete(&self, start: Instant, now: Instant, class: Option<u8>) {
        let mut st = self.st.borrow_mut();
        if st.finished {
            return;
        }
        st.in_flight = st.in_flight.saturating_sub(1);
        st.seen_ops += 1;
        if !st.measures(start) {
            return;
        }
        st.done_measured += 1;
        st.ops += 1;
        let ns = u64::try_from(now.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX);
        st.hist.record(ns);
        st.last_done = Some(now);
        if let Some(c) = class {
            let c = usize::from(c);
            if let Some(n) = st.classes.get_mut(c) {
                *n += 1;
            }
            if !self.plan.expect.get(c).copied().unwrap_or(false) {
                st.errors[ErrorKind::Status.index()] += 1;
                st.seen_errors += 1;
            }
        }
    }

    /// An operation that started at `start` failed.
    pub fn fail(&self, start: Instant, kind: ErrorKind) {
        let mut st = self.st.borrow_mut();
        if st.finished {
            return;
        }
        st.in_flight = st.in_flight.saturating_sub(1);
        st.seen_errors += 1;
        if !st.measures(start) {
            return;
        }
        st.done_measured += 1;
        if let Some(n) = st.errors.get_mut(kind.index()) {
            *n += 1;
        }
    }

    /// Ends the run if it is complete: `-n` operations done, or a timed
    /// run's window closed with nothing left in flight.
    pub fn maybe_finish(&self, ctx: &mut Context<'_>) {
        let done = {
            let st = self.st.borrow();
            !st.finished
                && (self.plan.limit.is_some_and(|n| st.done_measured >= n)
                    || (st.stopping && st.in_flight == 0))
        };
        if done {
            self.finish(ctx);
        }
    }

    /// Starts the measured window (end of the warm-up): snapshots CPU and
    /// bytes.
    pub fn begin_measure(&self, ctx: &mut Context<'_>) {
        let stats = ctx.client_stats();
        let mut st = self.st.borrow_mut();
        if st.measure_start.is_none() {
            st.measure_start = Some(Instant::now());
        }
        st.cpu0 = cpu::self_cpu();
        st.server0 = self.server_pid.and_then(cpu::process_cpu);
        st.bytes0 = (stats.bytes_in, stats.bytes_out);
    }

    /// Closes a timed run's window: no new operations; the run ends when
    /// the ones in flight finish, or after [`MAX_DRAIN`].
    pub fn end_window(self: &std::rc::Rc<Self>, ctx: &mut Context<'_>) {
        {
            let mut st = self.st.borrow_mut();
            st.stopping = true;
            st.window_end = Some(Instant::now());
        }
        self.maybe_finish(ctx);
        if self.finished() {
            return;
        }
        let drain_until = Instant::now() + self.plan.timeout.min(MAX_DRAIN);
        let run = std::rc::Rc::clone(self);
        ctx.schedule_every(DRAIN_POLL, move |ctx, id| {
            if run.finished() {
                ctx.cancel(id);
                return;
            }
            run.maybe_finish(ctx);
            if !run.finished() && Instant::now() >= drain_until {
                run.finish(ctx);
            }
            if run.finished() {
                ctx.cancel(id);
            }
        });
    }

    /// Ends the run now (SIGINT).
    pub fn interrupt(&self, ctx: &mut Context<'_>) {
        self.st.borrow_mut().interrupted = true;
        self.finish(ctx);
    }

    /// Ends the run: takes the closing snapshots and stops the reactor.
    pub fn finish(&self, ctx: &mut Context<'_>) {
        let stats = ctx.client_stats();
        let mut st = self.st.borrow_mut();
        if st.finished {
            return;
        }
        st.finished = true;
        st.finished_at = Some(Instant::now());
        st.cpu1 = cpu::self_cpu();
        st.server1 = self.server_pid.and_then(cpu::process_cpu);
        st.bytes1 = (stats.bytes_in, stats.bytes_out);
        ctx.stop();
    }

    /// One line of progress: seconds since start, operations, rate over
    /// the last interval (from `last_ops`), errors. Returns the line and
    /// the operation count to pass next time.
    pub fn progress(&self, last_ops: u64, interval: Duration) -> (String, u64) {
        let st = self.st.borrow();
        let secs = st.t0.elapsed().as_secs_f64();
        let delta = st.seen_ops.saturating_sub(last_ops);
        let rate = delta as f64 / interval.as_secs_f64().max(1e-9);
        let phase = if st.measure_start.is_some_and(|m| Instant::now() >= m) {
            ""
        } else {
            " (warm-up)"
        };
        (
            format!(
                "{secs:6.1}s  {:>10} done  {rate:>11.0}/s  {:>8} errors{phase}",
                st.seen_ops, st.seen_errors
            ),
            st.seen_ops,
        )
    }

    /// What the run measured. Call after the loop has stopped.
    pub fn measured(&self) -> Measured {
        let st = self.st.borrow();
        let start = st.measure_start.unwrap_or(st.t0);
        let end = match (st.window_end, self.plan.limit) {
            // A counted run lasts until its last operation finished.
            (_, Some(_)) => st.last_done.or(st.finished_at),
            (Some(w), None) => Some(w),
            (None, None) => st.finished_at,
        }
        .unwrap_or_else(Instant::now);
        let sub = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        Measured {
            ops: st.ops,
            hist: st.hist.clone(),
            errors: st.errors,
            classes: st.classes,
            elapsed: end.saturating_duration_since(start),
            unfinished: st.in_flight,
            interrupted: st.interrupted,
            bytes: (
                st.bytes1.0.saturating_sub(st.bytes0.0),
                st.bytes1.1.saturating_sub(st.bytes0.1),
            ),
            harness_cpu: sub(st.cpu0, st.cpu1),
            server_cpu: sub(st.server0, st.server1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn plan() -> Plan {
        Plan {
            connections: 4,
            limit: None,
            rate: None,
            warmup: Duration::ZERO,
            duration: Some(Duration::from_secs(1)),
            timeout: Duration::from_secs(1),
            expect: [
                false, false, true, true, false, false, false, false, false, false,
            ],
            pipeline: 1,
            per_conn: None,
        }
    }

    fn run(plan: Plan, t0: Instant) -> Run {
        let link = Link {
            addr: Address::Tcp("127.0.0.1:1".parse().unwrap()),
            tls: None,
        };
        Run::new(plan, link, None, t0)
    }

    fn measure_now(r: &Run, at: Instant) {
        r.st.borrow_mut().measure_start = Some(at);
    }

    #[test]
    fn closed_loop_counts_exactly_n_measured_jobs() {
        let t0 = Instant::now();
        let r = run(
            Plan {
                limit: Some(3),
                duration: None,
                ..plan()
            },
            t0,
        );
        let mut cursor = 0;
        // Warm-up jobs do not count toward -n.
        let warm = r.take_job(&mut cursor, t0);
        assert_eq!(warm, Job::Now(t0));
        measure_now(&r, t0 + Duration::from_millis(1));
        let now = t0 + Duration::from_millis(2);
        for _ in 0..3 {
            assert_eq!(r.take_job(&mut cursor, now), Job::Now(now));
        }
        assert_eq!(r.take_job(&mut cursor, now), Job::Done);
        r.complete(t0, now, Some(2)); // the warm-up one: not measured
        r.complete(now, now + Duration::from_micros(100), Some(2));
        r.complete(now, now + Duration::from_micros(200), Some(5));
        r.fail(now, ErrorKind::Reset);
        let m = r.measured();
        assert_eq!(m.ops, 2);
        assert_eq!(m.classes[2], 1);
        assert_eq!(m.classes[5], 1);
        assert_eq!(m.errors[ErrorKind::Status.index()], 1);
        assert_eq!(m.errors[ErrorKind::Reset.index()], 1);
        assert_eq!(m.unfinished, 0);
        assert_eq!(m.hist.count(), 2);
        assert!(r.st.borrow().done_measured >= 3);
    }

    #[test]
    fn open_loop_schedules_each_worker_every_c_jobs() {
        let t0 = Instant::now();
        let r = run(
            Plan {
                rate: Some(1000.0),
                duration: Some(Duration::from_millis(10)),
                ..plan()
            },
            t0,
        );
        // Worker 1 of 4 at 1000/s: jobs 1, 5, 9 at 1 ms, 5 ms, 9 ms.
        let mut cursor = 1;
        assert_eq!(
            r.take_job(&mut cursor, t0),
            Job::At(t0 + Duration::from_millis(1))
        );
        let late = t0 + Duration::from_millis(7);
        assert_eq!(
            r.take_job(&mut cursor, late),
            Job::Now(t0 + Duration::from_millis(5))
        );
        assert_eq!(
            r.take_job(&mut cursor, late),
            Job::At(t0 + Duration::from_millis(9))
        );
        // Job 13 would be at 13 ms, after the 10 ms window.
        assert_eq!(r.take_job(&mut cursor, late), Job::Done);
        // Across all workers (fresh cursors) exactly rate * duration jobs
        // are scheduled.
        let mut total = 0;
        for k in 0..4 {
            let mut c = k;
            while r.take_job(&mut c, t0) != Job::Done {
                total += 1;
            }
        }
        assert_eq!(total, 10);
    }

    #[test]
    fn open_loop_with_count_and_warmup() {
        let t0 = Instant::now();
        let r = run(
            Plan {
                rate: Some(100.0),
                limit: Some(5),
                duration: None,
                warmup: Duration::from_millis(30),
                connections: 1,
                ..plan()
            },
            t0,
        );
        let mut cursor = 0;
        let mut jobs = 0;
        while r.take_job(&mut cursor, t0) != Job::Done {
            jobs += 1;
        }
        // 3 warm-up jobs (0, 10, 20 ms) and 5 measured.
        assert_eq!(jobs, 8);
        assert_eq!(r.st.borrow().issued_measured, 5);
    }

    #[test]
    fn classifies_disconnects() {
        let refused = Disconnect::ConnectFailed(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused, false), ErrorKind::Refused);
        let timeout = Disconnect::ConnectFailed(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(classify(&timeout, true), ErrorKind::Timeout);
        let reset = Disconnect::Io(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&reset, false), ErrorKind::Reset);
        let eof = Disconnect::Io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(classify(&eof, true), ErrorKind::Tls);
        assert_eq!(classify(&eof, false), ErrorKind::Closed);
        assert_eq!(
            classify(&Disconnect::HandshakeTimedOut, true),
            ErrorKind::Timeout
        );
        assert_eq!(classify(&Disconnect::Closed, false), ErrorKind::Closed);
        let keys: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.key()).collect();
        assert_eq!(keys.len(), ErrorKind::ALL.len());
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
