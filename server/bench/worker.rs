//! A worker: one client connection at a time, driven by the schedule of
//! [`Run`], speaking one protocol ([`Mode`]).
//!
//! The worker claims operations, writes their requests (as many as
//! `--pipeline` allows in flight), matches responses to operations in
//! order, fails what is in flight when the connection breaks, and opens a
//! new connection when the old one ends (after one operation for Gemini,
//! `--close` and `--connect-only`; when the server closes a keep-alive
//! connection; after an error). An operation claimed before its
//! connection is open includes the connect (and handshake) in its latency.
//!
//! Nothing here allocates per operation: the in-flight queue has the
//! capacity of the pipeline, and each mode reuses its buffers across
//! connections ([`Mode::reset`]).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion_reactor::{Context, Disconnect, Protocol, TimerId, Transport};

use super::run::{classify, ErrorKind, Job, Run};

/// Shortest interval between checks for a stalled connection.
const MIN_CHECK: Duration = Duration::from_millis(10);

/// Longest interval between checks for a stalled connection.
const MAX_CHECK: Duration = Duration::from_secs(1);

/// Wait before retrying after the OS refused to even create a socket (out
/// of descriptors): retrying at once would spin.
const SOCKET_RETRY: Duration = Duration::from_millis(10);

/// What one protocol does on a connection.
pub trait Mode: 'static {
    /// The connection is open (after the TLS handshake): write any
    /// preamble (a WebSocket upgrade). May complete an operation
    /// (TCP connect-only). The default writes nothing.
    fn connected(&mut self, _t: &mut Transport<'_>, _ops: &mut Ops) {}
    /// Whether operation requests may be written now. The default: as
    /// soon as the connection is open.
    fn ready(&self) -> bool {
        true
    }
    /// Writes the request of one operation.
    fn send(&mut self, t: &mut Transport<'_>);
    /// Bytes arrived: complete operations in order with [`Ops::complete`];
    /// an error fails every operation in flight and drops the connection.
    fn received(
        &mut self,
        t: &mut Transport<'_>,
        ops: &mut Ops,
        data: &mut [u8],
    ) -> Result<(), ErrorKind>;
    /// The server closed its side: complete a close-delimited response.
    /// What is still in flight afterwards fails with the returned kind
    /// (`Err`) or as "closed early" (`Ok`).
    fn eof(&mut self, ops: &mut Ops) -> Result<(), ErrorKind>;
    /// A new connection starts: forget the old one's parse state (keep the
    /// buffers).
    fn reset(&mut self);
    /// Moves this state out for the worker's next connection, leaving an
    /// empty husk.
    fn take(&mut self) -> Self
    where
        Self: Sized;
}

/// The operations of one worker: claimed, in flight, completed.
pub struct Ops {
    run: Rc<Run>,
    /// Open-loop cursor: the index of this worker's next job.
    cursor: u64,
    /// Start instants of the operations in flight, oldest first.
    inflight: VecDeque<Instant>,
    /// How many at the back of `inflight` have not been written yet.
    unsent: usize,
    /// An open-loop job claimed but not yet due.
    pending: Option<Instant>,
    pending_timer: Option<TimerId>,
    /// Operations claimed on this connection.
    on_conn: u64,
    /// The mode asked for no more operations on this connection.
    close_after: bool,
    /// The schedule said there is no more work.
    exhausted: bool,
    connected: bool,
    /// Last progress (a write from idle, a read): the stall timeout counts
    /// from here.
    last_activity: Instant,
    now: Instant,
}

impl Ops {
    /// The oldest operation in flight got its complete response.
    pub fn complete(&mut self, class: Option<u8>) {
        if let Some(start) = self.inflight.pop_front() {
            self.unsent = self.unsent.min(self.inflight.len());
            self.run.complete(start, self.now, class);
        }
    }

    /// Whether a response of status class `class` (first digit) counts as
    /// success (`--expect`): only those bodies are checked against
    /// `--expect-body`, the others already count as errors.
    pub fn expects(&self, class: u8) -> bool {
        self.run
            .plan
            .expect
            .get(usize::from(class))
            .copied()
            .unwrap_or(false)
    }

    /// Whether an operation is in flight.
    pub fn busy(&self) -> bool {
        !self.inflight.is_empty()
    }

    /// No more operations on this connection once those in flight are done
    /// (the server said `Connection: close`).
    pub fn close_after_current(&mut self) {
        self.close_after = true;
    }

    fn fail_all(&mut self, kind: ErrorKind) {
        for start in self.inflight.drain(..) {
            self.run.fail(start, kind);
        }
        self.unsent = 0;
    }

    fn conn_allows(&self) -> bool {
        !self.close_after && self.run.plan.per_conn.is_none_or(|n| self.on_conn < n)
    }

    fn push(&mut self, start: Instant) {
        if self.inflight.is_empty() {
            self.last_activity = self.now;
        }
        self.inflight.push_back(start);
        self.unsent += 1;
        self.on_conn += 1;
    }

    fn take(&mut self) -> Ops {
        Ops {
            run: Rc::clone(&self.run),
            cursor: self.cursor,
            inflight: std::mem::take(&mut self.inflight),
            unsent: 0,
            pending: self.pending.take(),
            pending_timer: None,
            on_conn: 0,
            close_after: false,
            exhausted: self.exhausted,
            connected: false,
            last_activity: self.now,
            now: self.now,
        }
    }
}

/// A worker: its operations and its protocol, as the reactor's
/// [`Protocol`] for the current connection.
pub struct Worker<M: Mode> {
    ops: Ops,
    mode: M,
    check_timer: Option<TimerId>,
}

impl<M: Mode> Worker<M> {
    /// A worker with open-loop cursor `cursor`.
    pub fn new(run: Rc<Run>, cursor: u64, mode: M) -> Self {
        let pipeline = run.plan.pipeline.max(1);
        let now = Instant::now();
        Worker {
            ops: Ops {
                run,
                cursor,
                inflight: VecDeque::with_capacity(pipeline),
                unsent: 0,
                pending: None,
                pending_timer: None,
                on_conn: 0,
                close_after: false,
                exhausted: false,
                connected: false,
                last_activity: now,
                now,
            },
            mode,
            check_timer: None,
        }
    }

    /// Claims this worker's first job and connects for it (now, or when it
    /// is due).
    pub fn start(mut self: Box<Self>, ctx: &mut Context<'_>) {
        let run = Rc::clone(&self.ops.run);
        if run.finished() || self.ops.exhausted {
            return;
        }
        self.mode.reset();
        let now = Instant::now();
        self.ops.now = now;
        let job = match self.ops.pending.take() {
            Some(at) if at <= now => Job::Now(at),
            Some(at) => Job::At(at),
            None => run.take_job(&mut self.ops.cursor, now),
        };
        match job {
            Job::Now(start) => {
                self.ops.push(start);
                connect(ctx, self);
            }
            Job::At(at) => {
                self.ops.pending = Some(at);
                let mut slot = Some(self);
                ctx.schedule(at.saturating_duration_since(now), move |ctx, _| {
                    if let Some(mut w) = slot.take() {
                        if w.ops.run.finished() {
                            return;
                        }
                        w.ops.now = Instant::now();
                        if let Some(at) = w.ops.pending.take() {
                            w.ops.push(at);
                        }
                        connect(ctx, w);
                    }
                });
            }
            Job::Done => self.ops.exhausted = true,
        }
    }

    /// Claims jobs up to the pipeline, writes what can be written, and
    /// closes the connection when it has nothing more to do.
    fn pump(&mut self, t: &mut Transport<'_>) {
        let ops = &mut self.ops;
        let pipeline = ops.run.plan.pipeline.max(1);
        while !ops.exhausted
            && ops.pending.is_none()
            && ops.inflight.len() < pipeline
            && ops.conn_allows()
        {
            match ops.run.take_job(&mut ops.cursor, ops.now) {
                Job::Now(start) => ops.push(start),
                Job::At(at) => {
                    ops.pending = Some(at);
                    ops.pending_timer = Some(t.call_later(at.saturating_duration_since(ops.now)));
                }
                Job::Done => ops.exhausted = true,
            }
        }
        if ops.connected && self.mode.ready() {
            while ops.unsent > 0 {
                self.mode.send(t);
                ops.unsent -= 1;
            }
        }
        if ops.inflight.is_empty() && ops.pending.is_none() && (ops.exhausted || !ops.conn_allows())
        {
            t.close();
        }
    }

    fn fail_and_drop(&mut self, t: &mut Transport<'_>, kind: ErrorKind) {
        self.ops.fail_all(kind);
        t.abort();
    }
}

/// Opens the worker's connection; if no socket can be had at all, fails
/// its operations and has a fresh worker retry shortly.
fn connect<M: Mode>(ctx: &mut Context<'_>, w: Box<Worker<M>>) {
    let run = Rc::clone(&w.ops.run);
    let cursor = w.ops.cursor;
    let first = w.ops.inflight.front().copied();
    if run.connect(ctx, w).is_err() {
        if let Some(start) = first {
            run.fail(start, ErrorKind::Connect);
        }
        run.maybe_finish(ctx);
        run.respawns.set(run.respawns.get() + 1);
        let again = Rc::clone(&run);
        ctx.schedule(SOCKET_RETRY, move |ctx, _| again.spawn(ctx, cursor));
    }
}

impl<M: Mode> Protocol for Worker<M> {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let now = Instant::now();
        self.ops.now = now;
        self.ops.connected = true;
        self.ops.last_activity = now;
        let timeout = self.ops.run.plan.timeout;
        self.check_timer = Some(t.call_every((timeout / 4).clamp(MIN_CHECK, MAX_CHECK)));
        self.mode.connected(t, &mut self.ops);
        self.pump(t);
        self.ops.run.maybe_finish(t);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        let now = Instant::now();
        self.ops.now = now;
        self.ops.last_activity = now;
        match self.mode.received(t, &mut self.ops, data) {
            Ok(()) => self.pump(t),
            Err(kind) => self.fail_and_drop(t, kind),
        }
        self.ops.run.maybe_finish(t);
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) {
        self.ops.now = Instant::now();
        let kind = self
            .mode
            .eof(&mut self.ops)
            .err()
            .unwrap_or(ErrorKind::Closed);
        self.ops.fail_all(kind);
        t.close();
        self.ops.run.maybe_finish(t);
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, timer: TimerId) {
        let now = Instant::now();
        self.ops.now = now;
        if Some(timer) == self.ops.pending_timer {
            self.ops.pending_timer = None;
            if let Some(at) = self.ops.pending.take() {
                self.ops.push(at);
            }
            self.pump(t);
        } else if Some(timer) == self.check_timer {
            let stalled = now.saturating_duration_since(self.ops.last_activity);
            if self.ops.busy() && stalled > self.ops.run.plan.timeout {
                self.fail_and_drop(t, ErrorKind::Timeout);
            }
        }
        self.ops.run.maybe_finish(t);
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &Disconnect) {
        self.ops.now = Instant::now();
        let handshaking = !self.ops.connected && self.ops.run.link.tls.is_some();
        self.ops.connected = false;
        if self.ops.busy() {
            let kind = classify(reason, handshaking);
            self.ops.fail_all(kind);
        }
        let run = Rc::clone(&self.ops.run);
        run.maybe_finish(t);
        if run.finished() || self.ops.exhausted {
            return;
        }
        let next = Box::new(Worker {
            ops: self.ops.take(),
            mode: self.mode.take(),
            check_timer: None,
        });
        next.start(t);
    }
}
