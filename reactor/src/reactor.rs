//! The public face of the event loop: [`Reactor`] and [`ReactorHandle`].

use std::io;
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::addr::Address;
use crate::config::ReactorConfig;
use crate::core::{poll_key, Core, SignalCallback, KIND_LISTENER, KIND_SIGNAL};
use crate::error::ReactorError;
use crate::ids::{ConnId, ListenerId, TimerId};
use crate::listener::{bind, ListenOptions, ListenSocket, Listener};
use crate::poller::{Event, Events, Mode, Poller};
use crate::protocol::{Factory, Protocol};
use crate::signals::SignalPipe;
use crate::stats::ListenerStats;
use crate::transport::Context;

/// Where the loop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
    Running,
    ShuttingDown,
    Stopped,
}

const CMD_NONE: u8 = 0;
const CMD_SHUTDOWN: u8 = 1;
const CMD_STOP: u8 = 2;

/// A function sent from another thread to run on the reactor's.
type ForeignCall = Box<dyn FnOnce(&mut Context<'_>) + Send>;

/// State shared with [`ReactorHandle`]s on other threads.
pub(crate) struct Shared {
    command: AtomicU8,
    shutdown_ms: AtomicU64,
    /// Set when `calls` may hold something, so the loop takes the lock only
    /// then.
    has_calls: AtomicBool,
    calls: Mutex<Vec<ForeignCall>>,
}

/// Events fetched from the poller per wakeup.
const EVENTS_PER_WAKEUP: usize = 1024;

/// A single-threaded event loop (Twisted's reactor).
///
/// Add listeners, outbound connections, timers and signal handlers, then
/// call [`Reactor::run`]. Everything runs on the thread that calls `run`;
/// protocols get a [`Transport`](crate::Transport) in each callback.
/// To use more cores, run more reactors (one per thread, listeners with
/// [`ListenOptions::reuse_port`]).
pub struct Reactor {
    core: Core,
    events: Events,
}

impl Reactor {
    /// A reactor with default settings.
    pub fn new() -> Result<Reactor, ReactorError> {
        Reactor::with_config(ReactorConfig::default())
    }

    /// A reactor with the given settings.
    pub fn with_config(mut config: ReactorConfig) -> Result<Reactor, ReactorError> {
        config.low_water = config.low_water.min(config.high_water);
        let poller = Arc::new(Poller::new().map_err(ReactorError::Poller)?);
        let shared = Arc::new(Shared {
            command: AtomicU8::new(CMD_NONE),
            shutdown_ms: AtomicU64::new(0),
            has_calls: AtomicBool::new(false),
            calls: Mutex::new(Vec::new()),
        });
        Ok(Reactor {
            core: Core::new(poller, config, shared),
            events: Events::with_capacity(EVENTS_PER_WAKEUP),
        })
    }

    /// The settings this reactor runs with.
    pub fn config(&self) -> &ReactorConfig {
        &self.core.config
    }

    /// A handle to stop this reactor from another thread (or a signal
    /// handler of your own).
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle {
            shared: Arc::clone(&self.core.shared),
            poller: Arc::clone(&self.core.poller),
        }
    }

    /// Listens on `addr` and serves each accepted connection with a
    /// protocol from `factory`.
    pub fn listen(
        &mut self,
        addr: impl Into<Address>,
        factory: impl Factory + 'static,
    ) -> Result<ListenerId, ReactorError> {
        self.listen_with(addr, factory, ListenOptions::default())
    }

    /// Like [`Reactor::listen`], with options (gate, backlog, `SO_REUSEPORT`).
    pub fn listen_with(
        &mut self,
        addr: impl Into<Address>,
        factory: impl Factory + 'static,
        options: ListenOptions,
    ) -> Result<ListenerId, ReactorError> {
        let addr = addr.into();
        let (socket, local) = bind(&addr, &options)?;
        let unlink = matches!(addr, Address::Unix(_));
        self.add_listener(socket, local, Box::new(factory), options, unlink)
    }

    /// Serves an already-listening TCP socket (e.g. inherited from systemd
    /// socket activation). It is made non-blocking.
    pub fn adopt_tcp_listener(
        &mut self,
        listener: TcpListener,
        factory: impl Factory + 'static,
        options: ListenOptions,
    ) -> Result<ListenerId, ReactorError> {
        let local = listener.local_addr().map_err(ReactorError::Register)?;
        listener
            .set_nonblocking(true)
            .map_err(ReactorError::Register)?;
        // std binds with a backlog of 128; listen() again applies ours (it
        // may be called on a listening socket to change the backlog).
        let socket = socket2::SockRef::from(&listener);
        socket
            .listen(options.backlog)
            .map_err(ReactorError::Register)?;
        // Inherited by accepted sockets, as for listeners bound here.
        socket
            .set_tcp_nodelay(true)
            .map_err(ReactorError::Register)?;
        // Only ever turned on: an inherited socket may carry systemd's
        // `DeferAcceptSec=`, which the operator chose.
        if options.defer_accept {
            crate::sys::set_defer_accept(&listener).map_err(ReactorError::Register)?;
        }
        self.add_listener(
            ListenSocket::Tcp(listener),
            Address::Tcp(local),
            Box::new(factory),
            options,
            false,
        )
    }

    /// Serves an already-listening Unix socket.
    pub fn adopt_unix_listener(
        &mut self,
        listener: UnixListener,
        factory: impl Factory + 'static,
        options: ListenOptions,
    ) -> Result<ListenerId, ReactorError> {
        let local = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
            .unwrap_or_default();
        listener
            .set_nonblocking(true)
            .map_err(ReactorError::Register)?;
        self.add_listener(
            ListenSocket::Unix(listener),
            Address::Unix(local),
            Box::new(factory),
            options,
            false,
        )
    }

    fn add_listener(
        &mut self,
        socket: ListenSocket,
        local: Address,
        factory: Box<dyn Factory>,
        options: ListenOptions,
        unlink_on_close: bool,
    ) -> Result<ListenerId, ReactorError> {
        let index = u32::try_from(self.core.listeners.len())
            .map_err(|_| ReactorError::Register(io::Error::other("too many listeners")))?;
        let armed = !options.start_paused;
        let tls = options.tls.clone();
        let ev = if armed {
            Event::readable(poll_key(KIND_LISTENER, index))
        } else {
            Event::none(poll_key(KIND_LISTENER, index))
        };
        // Level-triggered: a listener with connections still queued after
        // a wakeup's batch is simply reported again, so it never needs
        // re-arming. Deleted from the poller in `close_listener` (or in
        // `Drop`) before the socket closes.
        self.core
            .poller
            .add(socket.as_fd(), ev, Mode::Level)
            .map_err(ReactorError::Register)?;
        self.core.listeners.push(Some(Listener {
            socket,
            factory,
            gate: options.gate,
            stats: ListenerStats::default(),
            local,
            paused_user: options.start_paused,
            paused_backoff: false,
            paused_cap: false,
            armed,
            unlink_on_close,
            tls,
            proxy: options.proxy,
        }));
        Ok(ListenerId(index))
    }

    /// The address a listener is bound to (with port 0 resolved to the
    /// port the OS chose).
    pub fn local_addr(&self, id: ListenerId) -> Option<Address> {
        self.core
            .listeners
            .get(id.index())
            .and_then(|l| l.as_ref())
            .map(|l| l.local.clone())
    }

    /// Closes a listener (its open connections carry on). Returns false if
    /// it was already closed.
    pub fn close_listener(&mut self, id: ListenerId) -> bool {
        self.core.close_listener(id.0)
    }

    /// Opens an outbound connection; see [`Context::connect`].
    pub fn connect(
        &mut self,
        addr: &Address,
        protocol: Box<dyn Protocol>,
    ) -> Result<ConnId, ReactorError> {
        self.context().connect(addr, protocol)
    }

    /// Reactor-wide operations outside any callback (write to a connection,
    /// timers, listener pause/resume, stats).
    pub fn context(&mut self) -> Context<'_> {
        // Outside `run` the loop's clock is stale: deadlines set from here
        // must count from now.
        self.core.now = Instant::now();
        Context::new(&mut self.core)
    }

    /// Pauses accepting on a listener.
    pub fn pause_listener(&mut self, id: ListenerId) {
        self.context().pause_listener(id);
    }

    /// Resumes accepting on a listener.
    pub fn resume_listener(&mut self, id: ListenerId) {
        self.context().resume_listener(id);
    }

    /// A snapshot of a listener's counters.
    pub fn listener_stats(&self, id: ListenerId) -> Option<ListenerStats> {
        self.core
            .listeners
            .get(id.index())
            .and_then(|l| l.as_ref())
            .map(|l| l.stats)
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.core.conns.len()
    }

    /// Number of scheduled timers (for tests and diagnostics).
    pub fn timer_count(&self) -> usize {
        self.core.timers.len()
    }

    /// Number of child processes not yet reaped.
    pub fn child_count(&self) -> usize {
        self.core.children.len()
    }

    /// Runs `f` once after `delay`; see [`Context::schedule`].
    pub fn schedule(
        &mut self,
        delay: Duration,
        f: impl FnMut(&mut Context<'_>, TimerId) + 'static,
    ) -> TimerId {
        self.core.now = Instant::now();
        self.context().schedule(delay, f)
    }

    /// Runs `f` every `interval`; see [`Context::schedule_every`].
    pub fn schedule_every(
        &mut self,
        interval: Duration,
        f: impl FnMut(&mut Context<'_>, TimerId) + 'static,
    ) -> TimerId {
        self.core.now = Instant::now();
        self.context().schedule_every(interval, f)
    }

    /// Makes SIGINT and SIGTERM start a graceful shutdown (stop accepting,
    /// let connections finish for up to `config.shutdown_timeout`, then
    /// close them; `run()` returns `Ok`). A second signal closes everything
    /// at once.
    pub fn stop_on_signals(&mut self) -> Result<(), ReactorError> {
        ensure_signal_pipe(&mut self.core, libc::SIGINT).map_err(ReactorError::Signal)?;
        ensure_signal_pipe(&mut self.core, libc::SIGTERM).map_err(ReactorError::Signal)?;
        self.core.graceful_signals = true;
        Ok(())
    }

    /// Calls `f` on the reactor thread each time `signal` arrives (e.g.
    /// SIGHUP to reload certificates). Signals are delivered through the
    /// poller, so `f` runs as an ordinary callback, not in a signal handler.
    pub fn on_signal(
        &mut self,
        signal: i32,
        f: impl FnMut(&mut Context<'_>) + 'static,
    ) -> Result<(), ReactorError> {
        if signal == libc::SIGCHLD {
            return Err(ReactorError::Signal(io::Error::new(
                io::ErrorKind::InvalidInput,
                "SIGCHLD is used by the reactor for child processes",
            )));
        }
        ensure_signal_pipe(&mut self.core, signal).map_err(ReactorError::Signal)?;
        let cb: SignalCallback = Box::new(f);
        self.core.signal_handlers.push((signal, Some(cb)));
        Ok(())
    }

    /// Runs the loop until stopped ([`Context::stop`], [`ReactorHandle`]) or
    /// until a graceful shutdown has finished.
    pub fn run(&mut self) -> Result<(), ReactorError> {
        let core = &mut self.core;
        if core.state == RunState::Stopped {
            core.state = RunState::Running;
        }
        loop {
            take_command(core);
            match core.state {
                RunState::Stopped => break,
                RunState::ShuttingDown if core.conns.is_empty() => {
                    core.state = RunState::Stopped;
                    break;
                }
                _ => {}
            }
            let timeout = if core.pending.is_empty() {
                core.timers
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            match core.poller.wait(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReactorError::Poller(e)),
            }
            core.now = Instant::now();
            for ev in self.events.iter() {
                core.dispatch(ev);
            }
            run_foreign_calls(core);
            core.run_pending();
            core.fire_timers();
        }
        Ok(())
    }
}

/// Runs what other threads sent with [`ReactorHandle::call_from_thread`],
/// in the order they sent it.
fn run_foreign_calls(core: &mut Core) {
    // A plain load first: this runs on every loop iteration, and a swap
    // would take the cache line for writing each time.
    if !core.shared.has_calls.load(Ordering::Acquire)
        || !core.shared.has_calls.swap(false, Ordering::AcqRel)
    {
        return;
    }
    let calls = match core.shared.calls.lock() {
        Ok(mut queue) => std::mem::take(&mut *queue),
        // A sender panicked while holding the lock (it only pushes): the
        // queue itself is intact.
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for call in calls {
        let mut ctx = Context::new(core);
        call(&mut ctx);
        core.settle();
    }
}

fn take_command(core: &mut Core) {
    match core.shared.command.swap(CMD_NONE, Ordering::AcqRel) {
        CMD_STOP => core.state = RunState::Stopped,
        CMD_SHUTDOWN => {
            let ms = core.shared.shutdown_ms.load(Ordering::Acquire);
            core.now = Instant::now();
            core.begin_shutdown(Duration::from_millis(ms));
        }
        _ => {}
    }
}

/// Watches `signal` through the reactor's self-pipe, creating the pipe on
/// first use.
pub(crate) fn ensure_signal_pipe(core: &mut Core, signal: i32) -> io::Result<()> {
    if core.signals.is_none() {
        let pipe = SignalPipe::new()?;
        // The pipe lives in `core.signals` until the reactor drops, and is
        // deleted from the poller in `Drop` before that.
        core.poller.add(
            &pipe.read,
            Event::readable(poll_key(KIND_SIGNAL, 0)),
            Mode::Oneshot,
        )?;
        core.signals = Some(pipe);
    }
    match core.signals.as_mut() {
        Some(pipe) => pipe.watch(signal),
        None => Err(io::Error::other("no signal pipe")),
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        let core = &mut self.core;
        for i in 0..core.listeners.len() as u32 {
            core.close_listener(i);
        }
        // Connections close silently (their protocols are dropped, not
        // called: the application is going away).
        let keys: Vec<usize> = core.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            if let Some(c) = core.conns.try_remove(k) {
                let _ = core.poller.delete(&c.stream);
            }
        }
        for (_, entry) in core.children.iter_mut() {
            if entry.status.is_none() {
                let _ = crate::sys::kill_group(entry.child.id(), libc::SIGKILL);
                let _ = entry.child.kill();
                // Blocking is fine here: the child was just SIGKILLed.
                let _ = entry.child.wait();
            }
            if let Some(p) = entry.stdout.take() {
                let _ = core.poller.delete(&p);
            }
            if let Some(p) = entry.stderr.take() {
                let _ = core.poller.delete(&p);
            }
        }
        if let Some(pipe) = core.signals.as_ref() {
            let _ = core.poller.delete(&pipe.read);
        }
    }
}

/// Stops a reactor from anywhere: another thread, a signal handler of your
/// own, a test. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct ReactorHandle {
    shared: Arc<Shared>,
    poller: Arc<Poller>,
}

impl ReactorHandle {
    /// Stops the loop as soon as it wakes (it is woken now): `run()`
    /// returns, connections stay open until the reactor is dropped.
    pub fn stop(&self) {
        self.shared.command.store(CMD_STOP, Ordering::Release);
        let _ = self.poller.notify();
    }

    /// Runs `f` on the reactor's thread, soon (Twisted's
    /// `callFromThread`): the loop is woken, and `f` runs after the events
    /// of that wakeup, with a [`Context`] to reach connections, timers and
    /// listeners. Calls run in the order they were sent. A call sent to a
    /// reactor that has stopped runs if it is run again, else is dropped
    /// with it.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use torsion_reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let handle = reactor.handle();
    /// let (tx, rx) = mpsc::channel();
    /// std::thread::spawn(move || {
    ///     // From another thread: count the reactor's connections, then stop it.
    ///     handle.call_from_thread(move |ctx| {
    ///         let _ = tx.send(ctx.connection_count());
    ///         ctx.stop();
    ///     });
    /// });
    /// reactor.run()?;
    /// assert_eq!(rx.recv().unwrap(), 0);
    /// # Ok::<(), torsion_reactor::ReactorError>(())
    /// ```
    pub fn call_from_thread(&self, f: impl FnOnce(&mut Context<'_>) + Send + 'static) {
        match self.shared.calls.lock() {
            Ok(mut queue) => queue.push(Box::new(f)),
            Err(poisoned) => poisoned.into_inner().push(Box::new(f)),
        }
        self.shared.has_calls.store(true, Ordering::Release);
        let _ = self.poller.notify();
    }

    /// Starts a graceful shutdown (see [`Reactor::stop_on_signals`]) with
    /// the given deadline.
    pub fn shutdown(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shared.shutdown_ms.store(ms, Ordering::Release);
        let _ = self.shared.command.compare_exchange(
            CMD_NONE,
            CMD_SHUTDOWN,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let _ = self.poller.notify();
    }
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReactorHandle")
    }
}
