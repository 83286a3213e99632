//! What a protocol may do: [`Transport`] for its own connection, and
//! [`Context`] for reactor-wide operations.

use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::addr::{Address, PeerAddr};
use crate::child::ChildEntry;
use crate::conn::flag;
use crate::core::Core;
use crate::error::ReactorError;
use crate::ids::{ChildId, ChildStream, ConnId, ListenerId, TimerId};
use crate::protocol::Protocol;
use crate::reactor::RunState;
use crate::stats::ListenerStats;
use crate::timers::{TimerKind, NIL};

/// Reactor-wide operations, available in every callback: write to or close
/// other connections (the basis of broadcast), reactor-wide timers, outbound
/// connections, listeners, stopping.
pub struct Context<'a> {
    pub(crate) core: &'a mut Core,
}

impl<'a> Context<'a> {
    pub(crate) fn new(core: &'a mut Core) -> Self {
        Context { core }
    }

    /// The time at the start of this turn of the loop (monotonic). Cheaper
    /// than `Instant::now()` and the same for every callback of the turn.
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// Queues `data` for another connection. Returns false (and drops the
    /// data) if that connection has closed or is closing.
    ///
    /// This does not check the other connection's backpressure: look at
    /// [`Context::buffered_len_of`] first and decide (drop the message, or
    /// close the slow reader) — never let a queue grow without bound.
    pub fn write_to(&mut self, id: ConnId, data: &[u8]) -> bool {
        write_conn(self.core, id.key, id.gen, data)
    }

    /// Bytes queued for a connection, or `None` if it is gone.
    pub fn buffered_len_of(&self, id: ConnId) -> Option<usize> {
        self.core
            .conn(id.key, id.gen)
            .map(|_| self.core.buffered(id.key, id.gen))
    }

    /// Whether a connection is open (not closed, not closing).
    pub fn is_open(&self, id: ConnId) -> bool {
        self.core
            .conn(id.key, id.gen)
            .is_some_and(|c| !c.has(flag::CLOSING | flag::ABORT))
    }

    /// Closes another connection after flushing its output.
    pub fn close_conn(&mut self, id: ConnId) {
        close_conn(self.core, id.key, id.gen, None);
    }

    /// Closes another connection now, discarding its output.
    pub fn abort_conn(&mut self, id: ConnId) {
        if let Some(c) = self.core.conn_mut(id.key, id.gen) {
            c.flags |= flag::ABORT;
            self.core.mark_dirty(id.key, id.gen);
        }
    }

    /// Runs `f` once after `delay`, on the reactor thread (Twisted's
    /// `reactor.callLater`). The timer is not tied to any connection.
    pub fn schedule(
        &mut self,
        delay: Duration,
        f: impl FnMut(&mut Context<'_>, TimerId) + 'static,
    ) -> TimerId {
        let at = self.core.now + delay;
        let mut dummy = NIL;
        self.core.timers.insert(
            at,
            None,
            NIL,
            0,
            TimerKind::Global(Some(Box::new(f))),
            &mut dummy,
        )
    }

    /// Runs `f` every `interval` until cancelled (Twisted's `LoopingCall`).
    /// Missed ticks are skipped, not fired in a burst.
    pub fn schedule_every(
        &mut self,
        interval: Duration,
        f: impl FnMut(&mut Context<'_>, TimerId) + 'static,
    ) -> TimerId {
        let interval = interval.max(Duration::from_millis(1));
        let at = self.core.now + interval;
        let mut dummy = NIL;
        self.core.timers.insert(
            at,
            Some(interval),
            NIL,
            0,
            TimerKind::Global(Some(Box::new(f))),
            &mut dummy,
        )
    }

    /// Cancels any timer (a connection's or a reactor-wide one). Returns
    /// false if it already fired or was cancelled. A cancelled timer never
    /// fires.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.core.cancel_timer(id)
    }

    /// Opens an outbound connection driven by `protocol`. The address must
    /// already be resolved (resolving would block). Failure — refused,
    /// unreachable, or no answer within the connect timeout — reaches the
    /// protocol as `connection_lost(Disconnect::ConnectFailed)`, from the
    /// loop, never from inside this call.
    pub fn connect(
        &mut self,
        addr: &Address,
        protocol: Box<dyn Protocol>,
    ) -> Result<ConnId, ReactorError> {
        crate::connect::connect(self.core, addr, protocol, None, None)
    }

    /// Opens an outbound TLS connection. `server_name` is sent as SNI (and
    /// verified, unless the config says not to); an IP literal sends no SNI.
    /// `connection_made` is called once the handshake has completed; the
    /// connect timeout covers the handshake too.
    pub fn connect_tls(
        &mut self,
        addr: &Address,
        server_name: &str,
        tls: &crate::tls::ClientTlsConfig,
        protocol: Box<dyn Protocol>,
    ) -> Result<ConnId, ReactorError> {
        let session =
            crate::tls::TlsSession::client(tls, server_name).map_err(ReactorError::Tls)?;
        crate::connect::connect(self.core, addr, protocol, None, Some(session))
    }

    /// Like [`Context::connect`] with a specific connect timeout.
    pub fn connect_timeout(
        &mut self,
        addr: &Address,
        protocol: Box<dyn Protocol>,
        timeout: Duration,
    ) -> Result<ConnId, ReactorError> {
        crate::connect::connect(self.core, addr, protocol, Some(timeout), None)
    }

    /// A snapshot of a listener's counters.
    pub fn listener_stats(&self, id: ListenerId) -> Option<ListenerStats> {
        self.core
            .listeners
            .get(id.index())
            .and_then(|l| l.as_ref())
            .map(|l| l.stats)
    }

    /// Counters of outbound connections.
    pub fn client_stats(&self) -> ListenerStats {
        self.core.client_stats
    }

    /// Number of open connections (accepted and outbound).
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// Stops accepting on a listener until [`Context::resume_listener`].
    pub fn pause_listener(&mut self, id: ListenerId) {
        if let Some(Some(l)) = self.core.listeners.get_mut(id.index()) {
            l.paused_user = true;
        }
        self.core.arm_listener(id.0);
    }

    /// Resumes a paused listener.
    pub fn resume_listener(&mut self, id: ListenerId) {
        if let Some(Some(l)) = self.core.listeners.get_mut(id.index()) {
            l.paused_user = false;
        }
        self.core.arm_listener(id.0);
    }

    /// Stops the reactor at the end of this turn: `run()` returns; open
    /// connections stay open (dropping the reactor closes them).
    pub fn stop(&mut self) {
        self.core.state = RunState::Stopped;
    }

    /// Starts a graceful shutdown: listeners close, every protocol's
    /// `shutting_down` is called, and `run()` returns when the last
    /// connection closes or after `timeout`, whichever comes first.
    pub fn shutdown(&mut self, timeout: Duration) {
        self.core.begin_shutdown(timeout);
    }

    /// Whether a graceful shutdown is under way.
    pub fn is_shutting_down(&self) -> bool {
        !matches!(self.core.state, RunState::Running)
    }
}

/// The handle a protocol gets in every callback: its own connection (write,
/// close, pause, timers, child processes) plus everything in [`Context`]
/// (through `Deref`).
pub struct Transport<'a> {
    ctx: Context<'a>,
    key: u32,
    gen: u32,
}

impl<'a> Deref for Transport<'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        &self.ctx
    }
}

impl DerefMut for Transport<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.ctx
    }
}

impl<'a> Transport<'a> {
    pub(crate) fn new(core: &'a mut Core, key: u32, gen: u32) -> Self {
        Transport {
            ctx: Context::new(core),
            key,
            gen,
        }
    }

    /// This connection's id, to give to others (e.g. a chat room's member
    /// list) for [`Context::write_to`].
    pub fn id(&self) -> ConnId {
        ConnId {
            key: self.key,
            gen: self.gen,
        }
    }

    /// Queues `data` to be sent, in order, as the peer reads. Never blocks
    /// and never fails; if the connection has ended (or is closing) the data
    /// is dropped. Check [`Transport::over_high_water`] when producing a lot.
    pub fn write(&mut self, data: &[u8]) {
        write_conn(self.ctx.core, self.key, self.gen, data);
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn buffered_len(&self) -> usize {
        self.ctx.core.buffered(self.key, self.gen)
    }

    /// True when queued output is above the high water mark: stop producing
    /// until [`Protocol::write_drained`] is called.
    pub fn over_high_water(&self) -> bool {
        self.buffered_len() > self.ctx.core.config.high_water
    }

    /// Closes the connection once all queued output has been sent (Twisted's
    /// `loseConnection`). No more data is delivered. If the peer does not
    /// read the rest within the close timeout, the connection is aborted.
    pub fn close(&mut self) {
        close_conn(self.ctx.core, self.key, self.gen, None);
    }

    /// Closes the connection the way a server should after an answer the
    /// peer may still be sending into (an error response to a request
    /// whose rest is in flight, a WebSocket Close after a protocol error):
    /// sends what is queued, shuts down the write side (over TLS, after
    /// `close_notify`), then reads and discards input until the peer's EOF
    /// or until `drain` has passed, and only then closes.
    ///
    /// A plain [`Transport::close`] with unread input makes the kernel send
    /// a reset, which can destroy the answer before the peer reads it; this
    /// is the "lingering close" of Apache and nginx. No more data is
    /// delivered to the protocol; `connection_lost` says `Closed` unless the
    /// output could not be flushed within the close timeout.
    ///
    /// ```
    /// use torsion_reactor::{Protocol, Transport};
    /// use std::time::Duration;
    ///
    /// /// Answers every connection's first bytes with an error and goes.
    /// struct Refuse;
    ///
    /// impl Protocol for Refuse {
    ///     fn data_received(&mut self, t: &mut Transport<'_>, _data: &mut [u8]) {
    ///         t.write(b"59 bad request\r\n");
    ///         t.close_lingering(Duration::from_secs(2));
    ///     }
    /// }
    /// ```
    pub fn close_lingering(&mut self, drain: Duration) {
        close_conn(self.ctx.core, self.key, self.gen, Some(drain));
    }

    /// Closes the connection now, discarding queued output (Twisted's
    /// `abortConnection`).
    pub fn abort(&mut self) {
        let (key, gen) = (self.key, self.gen);
        self.ctx.abort_conn(ConnId { key, gen });
    }

    /// Half-close: once queued output is sent, shut down the sending side
    /// (the peer reads EOF) while still receiving.
    pub fn shutdown_write(&mut self) {
        let (key, gen) = (self.key, self.gen);
        if let Some(c) = self.ctx.core.conn_mut(key, gen) {
            c.flags |= flag::SHUT_WR_WANTED;
            self.ctx.core.mark_dirty(key, gen);
        }
    }

    /// Stops delivering data (the kernel's buffer fills and the peer is
    /// slowed down by TCP flow control) until [`Transport::resume_reading`].
    pub fn pause_reading(&mut self) {
        let (key, gen) = (self.key, self.gen);
        if let Some(c) = self.ctx.core.conn_mut(key, gen) {
            c.flags |= flag::READ_PAUSED;
            self.ctx.core.mark_dirty(key, gen);
        }
    }

    /// Resumes delivering data after [`Transport::pause_reading`].
    pub fn resume_reading(&mut self) {
        let (key, gen) = (self.key, self.gen);
        let core = &mut *self.ctx.core;
        let Some(c) = core.conns.get_mut(key as usize).filter(|c| c.gen == gen) else {
            return;
        };
        if !c.has(flag::READ_PAUSED) {
            return;
        }
        c.flags &= !flag::READ_PAUSED;
        // Re-armed read interest brings what the socket holds; this turn's
        // read also delivers what the kernel cannot report: TLS plaintext
        // and ciphertext held back while paused.
        if !c.has(flag::READ_PENDING) {
            c.flags |= flag::READ_PENDING;
            core.pending.push_back(crate::core::Pending::Read(key, gen));
        }
        core.mark_dirty(key, gen);
    }

    /// Whether reading is paused.
    pub fn is_reading_paused(&self) -> bool {
        self.ctx
            .core
            .conn(self.key, self.gen)
            .is_some_and(|c| c.has(flag::READ_PAUSED))
    }

    /// The peer's address (`None` only after the connection has ended).
    pub fn peer_addr(&self) -> Option<PeerAddr> {
        self.ctx.core.conn(self.key, self.gen).map(|c| c.peer)
    }

    /// This side's address (a system call: don't do it per message).
    pub fn local_addr(&self) -> Option<Address> {
        self.ctx
            .core
            .conn(self.key, self.gen)
            .and_then(|c| c.stream.local_addr().ok())
    }

    /// Whether this connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.ctx
            .core
            .conn(self.key, self.gen)
            .is_some_and(|c| c.tls.is_some())
    }

    /// Facts about this connection's TLS session (version, cipher, SNI,
    /// ALPN, the client certificate): `None` for plain TCP. This parses the
    /// peer certificate: call it once per request, not per byte.
    pub fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        self.ctx
            .core
            .conn(self.key, self.gen)
            .and_then(|c| c.tls.as_ref())
            .and_then(|t| t.session.info())
    }

    /// The listener that accepted this connection (`None` for outbound).
    pub fn listener(&self) -> Option<ListenerId> {
        self.ctx
            .core
            .conn(self.key, self.gen)
            .filter(|c| c.listener != NIL)
            .map(|c| ListenerId(c.listener))
    }

    /// Calls [`Protocol::timer_fired`] once after `delay`. The timer is
    /// cancelled automatically when the connection closes.
    pub fn call_later(&mut self, delay: Duration) -> TimerId {
        self.conn_timer(delay, None)
    }

    /// Calls [`Protocol::timer_fired`] every `interval` (same id each time)
    /// until cancelled or the connection closes.
    pub fn call_every(&mut self, interval: Duration) -> TimerId {
        let interval = interval.max(Duration::from_millis(1));
        self.conn_timer(interval, Some(interval))
    }

    fn conn_timer(&mut self, delay: Duration, interval: Option<Duration>) -> TimerId {
        let core = &mut *self.ctx.core;
        let at = core.now + delay;
        let (key, gen) = (self.key, self.gen);
        match core.conns.get_mut(key as usize).filter(|c| c.gen == gen) {
            Some(c) => {
                core.timers
                    .insert(at, interval, key, gen, TimerKind::User, &mut c.timers_head)
            }
            // The connection has ended: hand back an id that names nothing.
            None => TimerId { key: NIL, gen: 0 },
        }
    }

    /// Starts a child process owned by this connection (Twisted's
    /// `spawnProcess`). Its stdout and stderr arrive through
    /// [`Protocol::child_output`], its exit through
    /// [`Protocol::child_exited`]. Its stdin is `/dev/null`. It runs in its
    /// own process group; when the child exits or the connection closes,
    /// whatever is left of the group (background processes it started) is
    /// killed. It is always reaped: no zombies.
    pub fn spawn(&mut self, mut command: Command) -> Result<ChildId, ReactorError> {
        let (key, gen) = (self.key, self.gen);
        let core = &mut *self.ctx.core;
        if core.conn(key, gen).is_none() {
            return Err(ReactorError::UnknownId);
        }
        crate::reactor::ensure_signal_pipe(core, libc::SIGCHLD).map_err(ReactorError::Signal)?;
        use std::os::unix::process::CommandExt;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(ReactorError::Spawn)?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        core.child_gen = core.child_gen.wrapping_add(1);
        let cgen = core.child_gen;
        let ckey = core.children.insert(ChildEntry {
            child,
            gen: cgen,
            owner: key,
            owner_gen: gen,
            stdout: None,
            stderr: None,
            status: None,
            paused: false,
        }) as u32;
        use std::os::fd::AsFd;
        let mut failed = None;
        if let Some(out) = stdout {
            match core.register_pipe(ckey, ChildStream::Stdout, out.as_fd()) {
                Ok(()) => {
                    if let Some(e) = core.children.get_mut(ckey as usize) {
                        e.stdout = Some(out);
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(err) = stderr {
            match core.register_pipe(ckey, ChildStream::Stderr, err.as_fd()) {
                Ok(()) => {
                    if let Some(e) = core.children.get_mut(ckey as usize) {
                        e.stderr = Some(err);
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(c) = core.conn_mut(key, gen) {
            c.children = c.children.saturating_add(1);
        }
        let id = ChildId {
            key: ckey,
            gen: cgen,
        };
        if let Some(e) = failed {
            self.kill_child(id);
            return Err(ReactorError::Register(e));
        }
        Ok(id)
    }

    /// Kills a child process of this connection (and its process group)
    /// with SIGKILL. Its exit is still delivered through `child_exited`.
    pub fn kill_child(&mut self, id: ChildId) -> bool {
        self.signal_child(id, libc::SIGKILL)
    }

    /// Sends `signal` to a child's process group.
    pub fn signal_child(&mut self, id: ChildId, signal: i32) -> bool {
        let core = &mut *self.ctx.core;
        match core
            .children
            .get(id.key as usize)
            .filter(|e| e.gen == id.gen && e.status.is_none())
        {
            Some(e) => crate::sys::kill_group(e.child.id(), signal).is_ok(),
            None => false,
        }
    }

    /// The process id of a live child.
    pub fn child_pid(&self, id: ChildId) -> Option<u32> {
        self.ctx
            .core
            .children
            .get(id.key as usize)
            .filter(|e| e.gen == id.gen)
            .map(|e| e.child.id())
    }
}

fn write_conn(core: &mut Core, key: u32, gen: u32, data: &[u8]) -> bool {
    if data.is_empty() {
        return core.conn(key, gen).is_some();
    }
    let high = core.config.high_water;
    let staging_free = core.staging_owner.0 == NIL || core.staging_owner == (key, gen);
    let Some(conn) = core.conn_mut(key, gen) else {
        log::trace!(
            "write to closed connection {key}: {} bytes dropped",
            data.len()
        );
        return false;
    };
    if conn.has(flag::CLOSING | flag::ABORT | flag::SHUT_WR_WANTED) {
        log::debug!(
            "write after close on connection {key}: {} bytes dropped",
            data.len()
        );
        return false;
    }
    let queued = if let Some(tc) = conn.tls.as_mut() {
        // The session encrypts into its own output, counted by `unsent`.
        tc.session.write_plaintext(data);
        let q = conn.unsent();
        core.mark_dirty(key, gen);
        q
    } else if conn.unsent() == 0 && staging_free && !conn.has(flag::CONNECTING) {
        core.staging.extend_from_slice(data);
        core.staging_owner = (key, gen);
        core.staging.len()
    } else {
        conn.out.extend_from_slice(data);
        let q = conn.unsent();
        core.mark_dirty(key, gen);
        q
    };
    if queued > high {
        if let Some(c) = core.conn_mut(key, gen) {
            c.flags |= flag::OVER_HIGH;
        }
    }
    true
}

fn close_conn(core: &mut Core, key: u32, gen: u32, linger: Option<Duration>) {
    let timeout = core.config.close_timeout;
    let at = core.now + timeout;
    let Some(c) = core.conns.get_mut(key as usize).filter(|c| c.gen == gen) else {
        return;
    };
    if c.has(flag::CLOSING | flag::ABORT) {
        return;
    }
    c.flags |= flag::CLOSING;
    if linger.is_some() {
        c.flags |= flag::LINGER;
    }
    // The flush deadline: a peer that never reads cannot keep us forever.
    if c.aux_timer.is_none() {
        let id = core.timers.insert(
            at,
            None,
            key,
            gen,
            TimerKind::CloseLinger(linger),
            &mut c.timers_head,
        );
        c.aux_timer = Some(id);
    }
    core.mark_dirty(key, gen);
}
