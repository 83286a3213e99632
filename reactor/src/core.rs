//! The reactor's state and the mechanics every event goes through: calling
//! a protocol, flushing output, arming interest, closing connections.
//!
//! Rules that keep this sound:
//! - A protocol method never closes a connection directly; it sets flags and
//!   marks the connection dirty. Connections are torn down only from the
//!   loop (`settle`, event handlers, timers), never while one of their own
//!   methods is running.
//! - Output written during a callback goes to one shared staging buffer
//!   when the connection has nothing queued (the common case), and is sent
//!   with one `write` when the callback returns: no per-message allocation,
//!   and several small writes become one syscall. Only bytes the socket did
//!   not take are copied into the connection's own queue.
//! - Connection sockets are registered level-triggered. Reads stop at a
//!   short read (the socket is drained), `WouldBlock` or the per-wakeup
//!   batch; anything left is reported again by the next wait. Read interest
//!   is off whenever the loop would not read (paused, closing, after EOF)
//!   and writable interest is armed only while output is queued, so nothing
//!   is reported that the loop would ignore. The `pending` list carries
//!   `write_drained` calls, resumed reads and immediate connect results.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::addr::{canonical_peer, PeerAddr};
use crate::child::ChildEntry;
use crate::config::ReactorConfig;
use crate::conn::{flag, Conn, Stream, StreamIo, TlsConn};
use crate::ids::{ChildId, ChildStream, ListenerId};
use crate::listener::{ListenSocket, Listener};
use crate::poller::{Event, Mode, Poller};
use crate::protocol::{Disconnect, PeerInfo, Protocol, Verdict};
use crate::reactor::{RunState, Shared};
use crate::signals::SignalPipe;
use crate::stats::ListenerStats;
use crate::sys;
use crate::timers::{TimerKind, Timers, NIL};
use crate::tls::{TlsError, TlsSession};
use crate::transport::{Context, Transport};

/// Poller keys: the low two bits say what the key names, the rest is an index.
pub(crate) const KIND_CONN: usize = 0;
pub(crate) const KIND_LISTENER: usize = 1;
pub(crate) const KIND_PIPE: usize = 2;
pub(crate) const KIND_SIGNAL: usize = 3;

pub(crate) fn poll_key(kind: usize, index: u32) -> usize {
    ((index as usize) << 2) | kind
}

fn pipe_index(child: u32, stream: ChildStream) -> u32 {
    (child << 1) | matches!(stream, ChildStream::Stderr) as u32
}

/// A reactor-wide signal callback.
pub(crate) type SignalCallback = Box<dyn FnMut(&mut Context<'_>)>;

/// Work left for the next turn of the loop.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Pending {
    /// The connection may have more to read (its read batch ran out).
    Read(u32, u32),
    /// Output fell below the low water mark: call `write_drained`.
    Drained(u32, u32),
    /// An outbound connection completed immediately: call `connection_made`.
    Connected(u32, u32),
    /// An outbound connection failed immediately: report it.
    Failed(u32, u32),
}

/// A connection the gate let through, ready to start (see
/// `Core::gate_and_build`).
pub(crate) struct Admitted {
    /// Its protocol, until installed in the connection.
    pub protocol: Option<Box<dyn Protocol>>,
    /// Its TLS layer, for TLS listeners.
    pub tls: Option<Box<TlsConn>>,
    /// A gate admitted it: `released` is owed when it closes.
    pub gated: bool,
}

/// Everything a reactor owns except the event list.
pub(crate) struct Core {
    pub poller: Arc<Poller>,
    pub conns: Slab<Conn>,
    /// Indexed by `ListenerId`; `None` once closed (ids are never reused).
    pub listeners: Vec<Option<Listener>>,
    pub timers: Timers,
    pub children: Slab<ChildEntry>,
    pub config: ReactorConfig,
    pub pending: VecDeque<Pending>,
    /// Connections whose output or interest must be settled; each appears
    /// at most once (guarded by `flag::DIRTY`).
    pub dirty: Vec<(u32, u32)>,
    /// Output of `staging_owner` written during the current callback.
    pub staging: Vec<u8>,
    pub staging_owner: (u32, u32),
    /// The one read buffer shared by all connections (taken while in use).
    pub read_buf: Vec<u8>,
    /// Decrypted TLS plaintext on its way to a protocol (the read buffer
    /// still holds the ciphertext it came from). Allocated on first use.
    pub plain_buf: Vec<u8>,
    /// The time at the start of the current turn of the loop.
    pub now: Instant,
    pub next_gen: u32,
    pub client_stats: ListenerStats,
    pub shared: Arc<Shared>,
    pub state: RunState,
    pub signals: Option<SignalPipe>,
    pub signal_handlers: Vec<(i32, Option<SignalCallback>)>,
    /// SIGINT/SIGTERM start a graceful shutdown.
    pub graceful_signals: bool,
    /// Kept open so that, out of descriptors, we can free one to accept
    /// and close a pending connection instead of leaving it hanging.
    pub spare_fd: Option<File>,
    /// Listeners are paused because the connection cap is reached.
    pub cap_paused: bool,
    /// `settle` is running (it is not re-entered).
    pub settling: bool,
    pub child_gen: u32,
}

impl Core {
    pub fn new(poller: Arc<Poller>, config: ReactorConfig, shared: Arc<Shared>) -> Core {
        let read_buf = vec![0; config.read_buffer.max(1)];
        Core {
            poller,
            conns: Slab::new(),
            listeners: Vec::new(),
            timers: Timers::default(),
            children: Slab::new(),
            config,
            pending: VecDeque::new(),
            dirty: Vec::new(),
            staging: Vec::new(),
            staging_owner: (NIL, 0),
            read_buf,
            plain_buf: Vec::new(),
            now: Instant::now(),
            next_gen: 0,
            client_stats: ListenerStats::default(),
            shared,
            state: RunState::Running,
            signals: None,
            signal_handlers: Vec::new(),
            graceful_signals: false,
            spare_fd: File::open("/dev/null").ok(),
            cap_paused: false,
            settling: false,
            child_gen: 0,
        }
    }

    // ----- lookup helpers -------------------------------------------------

    pub fn conn(&self, key: u32, gen: u32) -> Option<&Conn> {
        self.conns.get(key as usize).filter(|c| c.gen == gen)
    }

    pub fn conn_mut(&mut self, key: u32, gen: u32) -> Option<&mut Conn> {
        self.conns.get_mut(key as usize).filter(|c| c.gen == gen)
    }

    pub fn stats_mut(&mut self, listener: u32) -> &mut ListenerStats {
        match self
            .listeners
            .get_mut(listener as usize)
            .and_then(|l| l.as_mut())
        {
            Some(l) => &mut l.stats,
            None => &mut self.client_stats,
        }
    }

    pub fn mark_dirty(&mut self, key: u32, gen: u32) {
        if let Some(c) = self.conn_mut(key, gen) {
            if !c.has(flag::DIRTY) {
                c.flags |= flag::DIRTY;
                self.dirty.push((key, gen));
            }
        }
    }

    /// Bytes queued for a connection, including what sits in staging.
    pub fn buffered(&self, key: u32, gen: u32) -> usize {
        let Some(c) = self.conn(key, gen) else {
            return 0;
        };
        let staged = if self.staging_owner == (key, gen) {
            self.staging.len()
        } else {
            0
        };
        c.unsent() + staged
    }

    fn take_read_buf(&mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.read_buf);
        if buf.is_empty() {
            // Only if a callback somehow re-entered a read: never read into
            // an empty buffer (that would look like EOF).
            vec![0; self.config.read_buffer.max(1)]
        } else {
            buf
        }
    }

    // ----- calling protocols ---------------------------------------------

    /// Runs `f` with a connection's protocol and a transport for it, then
    /// settles whatever the callback changed.
    pub fn call<F>(&mut self, key: u32, gen: u32, f: F)
    where
        F: FnOnce(&mut dyn Protocol, &mut Transport<'_>),
    {
        let Some(conn) = self.conn_mut(key, gen) else {
            return;
        };
        let Some(mut proto) = conn.protocol.take() else {
            return;
        };
        {
            let mut t = Transport::new(self, key, gen);
            f(proto.as_mut(), &mut t);
        }
        if let Some(conn) = self.conn_mut(key, gen) {
            conn.protocol = Some(proto);
        }
        self.settle();
    }

    // ----- output ---------------------------------------------------------

    /// Flushes staging and every dirty connection, closing those that asked
    /// to be closed. Not re-entrant: a nested call returns at once and the
    /// outer loop picks up the work.
    pub fn settle(&mut self) {
        if self.settling {
            return;
        }
        self.settling = true;
        loop {
            self.flush_staging();
            let Some((key, gen)) = self.dirty.pop() else {
                break;
            };
            match self.conn_mut(key, gen) {
                Some(c) => c.flags &= !flag::DIRTY,
                None => continue,
            }
            self.flush(key, gen);
        }
        self.settling = false;
    }

    fn flush_staging(&mut self) {
        let (key, gen) = self.staging_owner;
        if key == NIL {
            return;
        }
        self.staging_owner = (NIL, 0);
        let staging = std::mem::take(&mut self.staging);
        let mut sent = 0;
        let mut error = None;
        if let Some(conn) = self.conn_mut(key, gen) {
            if !conn.has(flag::ABORT | flag::CONNECTING) {
                sent = write_all_nonblocking(&conn.stream, &staging, &mut error);
            }
            // What the socket did not take is queued — on an abort too, so
            // that `Disconnect::Aborted` reports every discarded byte.
            if let Some(rest) = staging.get(sent..).filter(|r| !r.is_empty()) {
                conn.out.extend_from_slice(rest);
            }
            if let Some(e) = error {
                conn.error = Some(e);
            }
            let listener = conn.listener;
            self.stats_mut(listener).bytes_out += sent as u64;
            self.mark_dirty(key, gen);
        }
        self.staging = staging;
        self.staging.clear();
    }

    /// Sends queued output and applies the connection's state changes.
    fn flush(&mut self, key: u32, gen: u32) {
        let (high, low) = (self.config.high_water, self.config.low_water);
        let Some(conn) = self.conns.get_mut(key as usize).filter(|c| c.gen == gen) else {
            return;
        };
        if conn.has(flag::ABORT) {
            let unsent = conn.unsent();
            return self.finalize(key, Disconnect::Aborted { unsent });
        }
        if let Some(e) = conn.error.take() {
            return self.finalize(key, Disconnect::Io(e));
        }
        if conn.has(flag::CONNECTING) {
            return self.update_interest(key, gen);
        }
        let mut sent = 0;
        if conn.unsent() > 0 {
            let mut error = None;
            let rest = conn.out.get(conn.out_sent..).unwrap_or(&[]);
            sent = write_all_nonblocking(&conn.stream, rest, &mut error);
            conn.out_sent += sent;
            if let Some(e) = error {
                let listener = conn.listener;
                self.stats_mut(listener).bytes_out += sent as u64;
                return self.finalize(key, Disconnect::Io(e));
            }
        }
        if let Some(tc) = conn.tls.as_mut() {
            let session = &mut tc.session;
            if conn.flags & (flag::CLOSING | flag::SHUT_WR_WANTED) != 0 && !session.is_handshaking()
            {
                // All plaintext is with rustls by now: say goodbye properly.
                session.send_close_notify();
            }
            if session.has_pending_ciphertext() {
                match session.write_ciphertext(&mut StreamIo(&conn.stream)) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let listener = conn.listener;
                        self.stats_mut(listener).bytes_out += sent as u64;
                        return self.finalize(key, Disconnect::Io(e));
                    }
                }
            }
            if conn.flags & flag::CLOSING != 0 && session.is_handshaking() {
                // Closed before the handshake finished (shutdown, a gate
                // refusal): there is nothing to say over TLS.
                return self.finalize(key, Disconnect::Closed);
            }
        }
        let unsent = conn.unsent();
        if unsent == 0 {
            // Release the buffer: an idle connection owns no output memory.
            if conn.out.capacity() > 0 {
                conn.out = Vec::new();
            }
            conn.out_sent = 0;
            if conn.has(flag::SHUT_WR_WANTED) && !conn.has(flag::WRITE_SHUT) {
                conn.flags |= flag::WRITE_SHUT;
                if let Err(e) = conn.stream.shutdown_write() {
                    log::debug!("shutdown(write) failed: {e}");
                }
            }
            if conn.has(flag::CLOSING) {
                let listener = conn.listener;
                if conn.has(flag::LINGER) && !conn.has(flag::PEER_EOF) {
                    // Everything is sent: say so with a FIN and drain the
                    // peer's input until its EOF (see `close_lingering`).
                    if !conn.has(flag::WRITE_SHUT) {
                        conn.flags |= flag::WRITE_SHUT;
                        if let Err(e) = conn.stream.shutdown_write() {
                            log::debug!("shutdown(write) failed: {e}");
                        }
                        let drain = conn
                            .aux_timer
                            .take()
                            .and_then(|id| self.timers.remove(id, &mut conn.timers_head))
                            .and_then(|entry| match entry.kind {
                                TimerKind::CloseLinger(drain) => drain,
                                _ => None,
                            })
                            .unwrap_or(self.config.close_timeout);
                        let at = self.now + drain;
                        let id = self.timers.insert(
                            at,
                            None,
                            key,
                            gen,
                            TimerKind::LingerDrain,
                            &mut conn.timers_head,
                        );
                        conn.aux_timer = Some(id);
                    }
                    self.stats_mut(listener).bytes_out += sent as u64;
                    return self.update_interest(key, gen);
                }
                self.stats_mut(listener).bytes_out += sent as u64;
                return self.finalize(key, Disconnect::Closed);
            }
        } else if conn.out_sent >= conn.out.len() / 2 {
            // Compact so a long-lived queue does not grow without bound.
            let sent_so_far = conn.out_sent;
            conn.out.drain(..sent_so_far);
            conn.out_sent = 0;
        }
        if conn.has(flag::OVER_HIGH) && unsent <= low {
            conn.flags &= !flag::OVER_HIGH;
            self.pending.push_back(Pending::Drained(key, gen));
        } else if unsent > high {
            conn.flags |= flag::OVER_HIGH;
        }
        let listener = conn.listener;
        self.stats_mut(listener).bytes_out += sent as u64;
        self.update_interest(key, gen);
    }

    /// Registers exactly the interest the connection needs now.
    pub fn update_interest(&mut self, key: u32, gen: u32) {
        let Some(conn) = self.conns.get_mut(key as usize).filter(|c| c.gen == gen) else {
            return;
        };
        let want_read = !conn.has(
            flag::READ_PAUSED | flag::PEER_EOF | flag::CLOSING | flag::ABORT | flag::CONNECTING,
        ) || lingering(conn);
        let want_write = conn.unsent() > 0 || conn.has(flag::CONNECTING);
        let have_read = conn.has(flag::READ_ARMED);
        let have_write = conn.has(flag::WRITE_ARMED);
        if want_read == have_read && want_write == have_write {
            return;
        }
        let ev = Event::new(poll_key(KIND_CONN, key), want_read, want_write);
        match self.poller.modify(&conn.stream, ev, Mode::Level) {
            Ok(()) => {
                conn.flags &= !(flag::READ_ARMED | flag::WRITE_ARMED);
                if want_read {
                    conn.flags |= flag::READ_ARMED;
                }
                if want_write {
                    conn.flags |= flag::WRITE_ARMED;
                }
            }
            Err(e) => {
                log::warn!("poller modify failed: {e}");
                conn.error = Some(e);
                if !conn.has(flag::DIRTY) {
                    conn.flags |= flag::DIRTY;
                    self.dirty.push((key, gen));
                }
            }
        }
    }

    // ----- closing --------------------------------------------------------

    /// Removes a connection and tells its protocol. Safe to call for a key
    /// that is already gone.
    pub fn finalize(&mut self, key: u32, reason: Disconnect) {
        let Some(mut conn) = self.conns.try_remove(key as usize) else {
            return;
        };
        let gen = conn.gen;
        // Delete before the fd closes (when `conn.stream` drops below):
        // epoll would otherwise keep a registration for a reused fd number.
        if let Err(e) = self.poller.delete(&conn.stream) {
            log::debug!("poller delete failed: {e}");
        }
        self.timers.remove_all(&mut conn.timers_head);
        if self.staging_owner == (key, gen) {
            self.staging.clear();
            self.staging_owner = (NIL, 0);
        }
        if conn.children > 0 {
            self.orphan_children(key, gen);
        }
        let listener = conn.listener;
        let stats = self.stats_mut(listener);
        stats.active = stats.active.saturating_sub(1);
        stats.closed += 1;
        if conn.has(flag::GATED) {
            if let Some(Some(l)) = self.listeners.get_mut(listener as usize) {
                if let Some(gate) = l.gate.as_mut() {
                    gate.released(&conn.peer);
                }
            }
        }
        if reason.unsent() > 0 {
            log::debug!(
                "connection {} to {}: {} ({} bytes discarded)",
                key,
                conn.peer,
                reason,
                reason.unsent()
            );
        } else {
            log::trace!("connection {} to {}: {}", key, conn.peer, reason);
        }
        let Conn {
            stream, protocol, ..
        } = conn;
        drop(stream);
        if let Some(mut proto) = protocol {
            let mut t = Transport::new(self, key, gen);
            proto.connection_lost(&mut t, &reason);
        }
        self.maybe_resume_after_cap();
    }

    /// Closes every connection now (shutdown deadline, or stop).
    pub fn close_all(&mut self) {
        let keys: Vec<u32> = self.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            let unsent = self.conns.get(key as usize).map_or(0, |c| c.unsent());
            self.finalize(key, Disconnect::Shutdown { unsent });
        }
        self.settle();
    }

    // ----- events ---------------------------------------------------------

    pub fn dispatch(&mut self, ev: Event) {
        let index = (ev.key >> 2) as u32;
        match ev.key & 3 {
            KIND_CONN => self.on_conn_event(index, ev),
            KIND_LISTENER => self.on_listener_event(index),
            KIND_PIPE => {
                let stream = if index & 1 == 1 {
                    ChildStream::Stderr
                } else {
                    ChildStream::Stdout
                };
                self.on_pipe_event(index >> 1, stream);
            }
            _ => self.on_signals(),
        }
        self.settle();
    }

    fn on_conn_event(&mut self, key: u32, ev: Event) {
        let Some(conn) = self.conns.get(key as usize) else {
            return;
        };
        let (gen, flags, unsent) = (conn.gen, conn.flags, conn.unsent());
        if flags & flag::CONNECTING != 0 {
            return self.finish_connect(key, gen);
        }
        // Level-triggered: HUP and ERR are reported whatever the interest,
        // on every wait, until the connection goes. Each case below either
        // makes progress or ends the connection, so nothing can spin.
        if ev.is_err() {
            let e = conn
                .stream
                .take_error()
                .ok()
                .flatten()
                .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
            return self.finalize(key, Disconnect::Io(e));
        }
        // Hang-ups are reported as readable too.
        if flags & flag::LINGER != 0 && flags & flag::WRITE_SHUT != 0 && ev.readable {
            // A lingering close drains to the peer's EOF even once both
            // directions are shut (HUP): closing with input still unread
            // would reset the connection and could destroy the answer in
            // the peer's receive queue.
            return self.drain_lingering(key, gen);
        }
        if ev.is_hup() && flags & (flag::PEER_EOF | flag::READ_PAUSED | flag::CLOSING) != 0 {
            // Both directions are shut (HUP) and we will not read: nothing
            // more can be sent, and ignoring it would mean hearing it again
            // on every wait.
            let reason = if unsent == 0 {
                Disconnect::Closed
            } else {
                Disconnect::Io(io::Error::from(io::ErrorKind::BrokenPipe))
            };
            return self.finalize(key, reason);
        }
        if ev.writable && unsent > 0 {
            self.mark_dirty(key, gen);
        }
        if ev.readable {
            if flags & (flag::CLOSING | flag::PEER_EOF) != 0 {
                // Not reading any more; a HUP/ERR still has to end the
                // connection, which a write attempt will discover.
                self.mark_dirty(key, gen);
            } else {
                self.read_conn(key, gen);
            }
        }
    }

    /// Reads and discards what a lingering connection's peer still sends;
    /// its EOF (or a reset) ends the connection.
    fn drain_lingering(&mut self, key: u32, gen: u32) {
        for _ in 0..self.config.read_batch.max(1) {
            let Some(conn) = self.conn(key, gen) else {
                return;
            };
            let listener = conn.listener;
            let mut buf = self.take_read_buf();
            let result = match self.conns.get(key as usize) {
                Some(c) => c.stream.read(&mut buf),
                None => Ok(0),
            };
            let full = buf.len();
            self.read_buf = buf;
            match result {
                Ok(0) => return self.finalize(key, Disconnect::Closed),
                Ok(n) => {
                    self.stats_mut(listener).bytes_in += n as u64;
                    if n < full {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Everything was sent before the drain began: a peer that
                // resets now has had its answer.
                Err(_) => return self.finalize(key, Disconnect::Closed),
            }
        }
    }

    pub fn read_conn(&mut self, key: u32, gen: u32) {
        if self.conn(key, gen).is_some_and(|c| c.tls.is_some()) {
            // Deliver what rustls and the backlog hold before reading more
            // (after a pause, this is where delivery resumes).
            let mut backlog = self
                .conn_mut(key, gen)
                .and_then(|c| c.tls.as_mut())
                .map(|t| std::mem::take(&mut t.backlog))
                .unwrap_or_default();
            self.tls_input(key, gen, &mut backlog);
            if self
                .conn(key, gen)
                .and_then(|c| c.tls.as_ref())
                .is_some_and(|t| !t.backlog.is_empty())
            {
                return; // paused again with ciphertext left: don't read more
            }
        }
        for _ in 0..self.config.read_batch.max(1) {
            let Some(conn) = self.conn(key, gen) else {
                return;
            };
            if conn.has(
                flag::READ_PAUSED | flag::PEER_EOF | flag::CLOSING | flag::ABORT | flag::CONNECTING,
            ) {
                return;
            }
            let listener = conn.listener;
            let staged = conn.proxy.is_some();
            let mut buf = self.take_read_buf();
            // Before its PROXY header is complete, a connection reads no
            // more than the header's bound allows.
            let conn = self.conns.get(key as usize);
            let stage = conn.and_then(|c| c.proxy.as_ref());
            let want = stage.map_or(buf.len(), |p| p.read_limit(buf.len()));
            let result = match (conn, buf.get_mut(..want)) {
                (Some(c), Some(into)) => c.stream.read(into),
                _ => Ok(0),
            };
            match result {
                Ok(0) => {
                    self.read_buf = buf;
                    if staged {
                        return self.proxy_eof(key, gen);
                    }
                    let handshaking = self.conn(key, gen).is_some_and(|c| c.handshaking());
                    if handshaking {
                        // A peer that hangs up mid-handshake: a failed
                        // handshake, never seen by the protocol.
                        let e =
                            io::Error::new(io::ErrorKind::UnexpectedEof, "EOF during handshake");
                        self.stats_mut(listener).tls_failures += 1;
                        return self.finalize(key, Disconnect::Io(e));
                    }
                    if let Some(c) = self.conn_mut(key, gen) {
                        c.flags |= flag::PEER_EOF;
                    }
                    self.mark_dirty(key, gen);
                    self.call(key, gen, |p, t| p.eof_received(t));
                    return;
                }
                Ok(n) => {
                    self.stats_mut(listener).bytes_in += n as u64;
                    let full = n == want;
                    // Behind a proxy the header comes first; what follows
                    // it (if the connection is admitted) is the protocol's.
                    let start = match buf.get(..n) {
                        Some(data) if staged => self.proxy_input(key, gen, data),
                        _ => Some(0),
                    };
                    let is_tls = self.conn(key, gen).is_some_and(|c| c.tls.is_some());
                    let data = start.and_then(|start| buf.get_mut(start..n));
                    if let Some(data) = data.filter(|d| !d.is_empty()) {
                        if is_tls {
                            self.tls_input(key, gen, data);
                        } else {
                            self.call(key, gen, |p, t| p.data_received(t, data));
                        }
                    }
                    self.read_buf = buf;
                    // A short read drained the socket. Sockets are
                    // level-triggered, so anything that arrived since (more
                    // data, or the FIN) is reported by the next wait: no
                    // extra read ending in EAGAIN per message.
                    if !full {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.read_buf = buf;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.read_buf = buf;
                }
                Err(e) => {
                    self.read_buf = buf;
                    return self.finalize(key, Disconnect::Io(e));
                }
            }
        }
        // Batch used up with data still waiting: the level-triggered
        // registration reports it again on the next turn, after the others.
    }

    /// Feeds ciphertext to a connection's TLS session and delivers the
    /// plaintext, in order, until the protocol pauses; ciphertext left over
    /// then is kept in the session's backlog. The session decrypts records
    /// in place, overwriting `data` (the shared read buffer or the backlog).
    fn tls_input(&mut self, key: u32, gen: u32, data: &mut [u8]) {
        let mut off = 0;
        let mut stalled = 0;
        loop {
            if !self.tls_deliver(key, gen) {
                break; // paused, closing or gone
            }
            let Some(rest) = data.get_mut(off..).filter(|r| !r.is_empty()) else {
                break;
            };
            let Some(tc) = self.conn_mut(key, gen).and_then(|c| c.tls.as_mut()) else {
                return;
            };
            let used = match tc.session.feed_ciphertext(rest) {
                Ok(n) => n,
                Err(e) => return self.tls_failed(key, gen, e),
            };
            off += used;
            if tc.session.take_handshake_completed() {
                self.handshake_done(key, gen);
            }
            // The session takes nothing only while a record's plaintext
            // waits, which delivery empties: twice in a row means something
            // else.
            stalled = if used == 0 { stalled + 1 } else { 0 };
            if stalled > 1 {
                break;
            }
        }
        let rest = data.get(off..).unwrap_or(&[]);
        let Some(c) = self.conn_mut(key, gen) else {
            return;
        };
        let mut peer_closed = false;
        if let Some(tc) = c.tls.as_mut() {
            if !rest.is_empty() {
                tc.backlog.extend_from_slice(rest);
            }
            peer_closed = tc.backlog.is_empty() && tc.session.peer_closed();
        }
        let eof_due = peer_closed && !c.has(flag::PEER_EOF | flag::READ_PAUSED);
        if eof_due {
            c.flags |= flag::PEER_EOF;
        }
        // Handshake replies, alerts or key updates may be waiting.
        self.mark_dirty(key, gen);
        if eof_due {
            self.call(key, gen, |p, t| p.eof_received(t));
        }
    }

    /// Hands the plaintext rustls holds to the protocol. Returns false when
    /// delivery must stop (paused, closing or gone).
    fn tls_deliver(&mut self, key: u32, gen: u32) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(key as usize).filter(|c| c.gen == gen) else {
                return false;
            };
            if c.has(flag::READ_PAUSED | flag::CLOSING | flag::ABORT) {
                return false;
            }
            let Some(tc) = c.tls.as_mut() else {
                return false;
            };
            if tc.session.is_handshaking() {
                return true;
            }
            if self.plain_buf.is_empty() {
                self.plain_buf = vec![0; self.config.read_buffer.max(1)];
            }
            let mut plain = std::mem::take(&mut self.plain_buf);
            let n = tc.session.read_plaintext(&mut plain);
            if n == 0 {
                self.plain_buf = plain;
                return true;
            }
            if let Some(data) = plain.get_mut(..n) {
                self.call(key, gen, |p, t| p.data_received(t, data));
            }
            if self.plain_buf.is_empty() {
                self.plain_buf = plain;
            }
        }
    }

    /// The handshake just completed: stop its deadline, count it, start the
    /// protocol.
    fn handshake_done(&mut self, key: u32, gen: u32) {
        let Some(c) = self.conn_mut(key, gen) else {
            return;
        };
        let aux = c.aux_timer.take();
        let listener = c.listener;
        if let Some(id) = aux {
            self.cancel_timer(id);
        }
        self.stats_mut(listener).tls_handshakes += 1;
        self.mark_dirty(key, gen);
        self.call(key, gen, |p, t| p.connection_made(t));
    }

    /// A TLS error ends the connection: flush the alert rustls queued (best
    /// effort), count handshake failures, close.
    fn tls_failed(&mut self, key: u32, gen: u32, e: TlsError) {
        let Some(c) = self.conns.get_mut(key as usize).filter(|c| c.gen == gen) else {
            return;
        };
        let handshaking = c.handshaking();
        if let Some(tc) = c.tls.as_mut() {
            let _ = tc.session.write_ciphertext(&mut StreamIo(&c.stream));
        }
        let (listener, peer) = (c.listener, c.peer);
        if e.is_handshake_failure() || handshaking {
            self.stats_mut(listener).tls_failures += 1;
        }
        log::debug!("TLS with {peer}: {e}");
        self.finalize(key, Disconnect::Tls(e));
    }

    fn finish_connect(&mut self, key: u32, gen: u32) {
        let Some(conn) = self.conn_mut(key, gen) else {
            return;
        };
        let failure = match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) if conn.stream.is_connected() => None,
            // A wakeup before the connect completed: keep waiting.
            Ok(None) => return,
        };
        if let Some(e) = failure {
            return self.finalize(key, Disconnect::ConnectFailed(e));
        }
        conn.flags &= !flag::CONNECTING;
        if conn.tls.is_some() {
            // The ClientHello is queued; the protocol starts once the
            // handshake completes (the connect timer runs until then).
            self.mark_dirty(key, gen);
            return;
        }
        let aux = conn.aux_timer.take();
        if let Some(id) = aux {
            self.cancel_timer(id);
        }
        self.mark_dirty(key, gen);
        self.call(key, gen, |p, t| p.connection_made(t));
    }

    pub fn cancel_timer(&mut self, id: crate::ids::TimerId) -> bool {
        let Some(entry) = self.timers.get(id) else {
            return false;
        };
        let (owner, owner_gen) = (entry.owner, entry.owner_gen);
        if owner == NIL {
            let mut dummy = NIL;
            return self.timers.remove(id, &mut dummy).is_some();
        }
        let (conns, timers) = (&mut self.conns, &mut self.timers);
        match conns.get_mut(owner as usize).filter(|c| c.gen == owner_gen) {
            Some(c) => timers.remove(id, &mut c.timers_head).is_some(),
            None => false,
        }
    }

    // ----- accepting ------------------------------------------------------

    fn on_listener_event(&mut self, index: u32) {
        let batch = self.config.accept_batch.max(1);
        self.accept_batch(index, batch);
        // Level-triggered: a listener that still wants to accept stays
        // armed with no system call; one that paused (cap, backoff, user)
        // is disarmed here, or its backlog would be reported on every wait.
        self.arm_listener(index);
    }

    /// How many connections wait in listener `index`'s accept queue, when
    /// the kernel says (TCP listeners); `None` for Unix listeners.
    fn accept_queue_len(&self, index: u32) -> Option<u32> {
        match self.listeners.get(index as usize) {
            Some(Some(l)) => match &l.socket {
                ListenSocket::Tcp(s) => sys::accept_queue_len(s),
                ListenSocket::Unix(_) => None,
            },
            _ => None,
        }
    }

    /// Accepts up to `batch` connections: as many as the accept queue
    /// holds when the kernel says (TCP), otherwise until `WouldBlock`.
    /// The listener is level-triggered, so what is left is reported again.
    fn accept_batch(&mut self, index: u32, batch: usize) {
        let waiting = self.accept_queue_len(index);
        // At least one: a wakeup with an empty queue (another process took
        // the connection) costs one failing accept, as before.
        let batch = waiting.map_or(batch, |n| batch.min((n as usize).max(1)));
        for _ in 0..batch {
            if self.conns.len() >= self.config.max_connections {
                self.pause_for_cap();
                return;
            }
            if !matches!(self.listeners.get(index as usize), Some(Some(l)) if l.wants_accept()) {
                return;
            }
            match self.accept_one(index) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if sys::is_transient_accept_error(&e) => continue,
                Err(e) => {
                    let Some(Some(l)) = self.listeners.get_mut(index as usize) else {
                        return;
                    };
                    l.stats.accept_errors += 1;
                    if sys::is_resource_exhaustion(&e) {
                        // Free the spare descriptor to accept-and-close one
                        // waiting client (it gets a clean close rather than
                        // a hang), then back off instead of spinning.
                        if let Some(spare) = self.spare_fd.take() {
                            drop(spare);
                            if let Some(Some(l)) = self.listeners.get(index as usize) {
                                use std::os::fd::AsRawFd;
                                sys::accept_and_close(l.socket_fd().as_raw_fd());
                            }
                            self.spare_fd = File::open("/dev/null").ok();
                        }
                        log::warn!(
                            "accept: {e}; pausing listener {index} for {:?}",
                            self.config.accept_backoff
                        );
                    } else {
                        log::error!("accept: {e}; pausing listener {index}");
                    }
                    self.backoff_listener(index);
                    return;
                }
            }
        }
    }

    /// Accepts one waiting connection on listener `index` and hands it on:
    /// to the gate, or (behind a proxy) to the PROXY stage, whose header
    /// names the address the gate decides on. `Err` is accept's own
    /// (`WouldBlock` when nothing waits).
    fn accept_one(&mut self, index: u32) -> io::Result<()> {
        let Some(Some(l)) = self.listeners.get(index as usize) else {
            return Err(io::ErrorKind::NotFound.into());
        };
        let proxied = l.proxy.is_some();
        let (stream, peer) = match &l.socket {
            ListenSocket::Tcp(s) => sys::accept_tcp(s)
                .map(|(s, a)| (Stream::Tcp(s), PeerAddr::Tcp(canonical_peer(a))))?,
            ListenSocket::Unix(s) => {
                sys::accept_unix(s).map(|s| (Stream::Unix(s), PeerAddr::Unix))?
            }
        };
        if proxied {
            self.accept_proxied(index, stream, peer);
        } else {
            self.admit(index, stream, peer);
        }
        Ok(())
    }

    /// Before a listener closes for a graceful shutdown: accepts what the
    /// kernel has already queued on it (handshakes complete, requests
    /// perhaps sent), so those clients are answered like every open
    /// connection instead of being reset when the socket closes. Bounded by
    /// the connection cap and by what was queued when the drain began (on
    /// TCP, from `TCP_INFO`; on a Unix socket, at most 4096, `somaxconn`'s
    /// default): clients that keep arriving during the drain (a flood the
    /// gate refuses) cannot keep it going.
    fn drain_accept_queue(&mut self, index: u32) {
        let queued = self.accept_queue_len(index);
        for _ in 0..queued.map_or(4096, |n| n as usize) {
            if self.conns.len() >= self.config.max_connections {
                return;
            }
            match self.accept_one(index) {
                Ok(()) => {}
                Err(e) if sys::is_transient_accept_error(&e) => {}
                Err(_) => return,
            }
        }
    }

    /// A connection accepted on a listener without PROXY protocol: the
    /// gate decides on the socket's peer before anything is read.
    pub(crate) fn admit(&mut self, index: u32, stream: Stream, peer: PeerAddr) {
        let Some(mut admitted) = self.gate_and_build(index, peer) else {
            return; // `stream` drops: closed at once, nothing read
        };
        if let Some(Some(l)) = self.listeners.get_mut(index as usize) {
            l.stats.active += 1;
        }
        let protocol = admitted.protocol.take();
        let Some((key, gen)) = self.insert_conn(stream, protocol, peer, index, flag::READ_ARMED)
        else {
            // Not served after all: give the gate its slot back.
            if admitted.gated {
                self.release_gate(index, &peer);
            }
            return;
        };
        self.start_admitted(key, gen, admitted);
    }

    /// Asks listener `index`'s gate about `peer` and, unless it is refused
    /// at once (counted), starts its TLS session and builds its protocol
    /// (counted as accepted). `None`: the connection must be closed.
    pub(crate) fn gate_and_build(&mut self, index: u32, peer: PeerAddr) -> Option<Admitted> {
        let l = self.listeners.get_mut(index as usize)?.as_mut()?;
        let verdict = match l.gate.as_mut() {
            Some(g) => g.admit(&peer),
            None => Verdict::Admit,
        };
        let refused_for = match verdict {
            Verdict::Admit => None,
            Verdict::Drop => {
                l.stats.refused += 1;
                log::debug!("gate dropped {peer}");
                return None;
            }
            Verdict::Refuse { retry_after } => {
                l.stats.refused_with_reply += 1;
                Some(retry_after)
            }
        };
        let gated = l.gate.is_some();
        let tls = match l.tls.as_ref().map(TlsSession::server) {
            None => None,
            Some(Ok(session)) => Some(Box::new(TlsConn {
                session,
                backlog: Vec::new(),
            })),
            Some(Err(e)) => {
                l.stats.tls_failures += 1;
                log::warn!("cannot start TLS for {peer}: {e}");
                if let Some(g) = l.gate.as_mut() {
                    g.released(&peer);
                }
                return None;
            }
        };
        let info = PeerInfo {
            addr: peer,
            listener: ListenerId(index),
            refused_for,
            tls: tls.is_some(),
        };
        let protocol = l.factory.build(&info);
        l.stats.accepted += 1;
        Some(Admitted {
            protocol: Some(protocol),
            tls,
            gated,
        })
    }

    /// Starts a registered connection that its gate admitted: installs its
    /// protocol (if not installed yet) and TLS layer, then either starts
    /// the handshake deadline or calls `connection_made`.
    pub(crate) fn start_admitted(&mut self, key: u32, gen: u32, admitted: Admitted) {
        let Admitted {
            protocol,
            tls,
            gated,
        } = admitted;
        let Some(c) = self.conn_mut(key, gen) else {
            return;
        };
        if let Some(p) = protocol {
            c.protocol = Some(p);
        }
        if gated {
            c.flags |= flag::GATED;
        }
        if tls.is_some() {
            let at = self.now + self.config.handshake_timeout;
            let (conns, timers) = (&mut self.conns, &mut self.timers);
            if let Some(c) = conns.get_mut(key as usize) {
                c.tls = tls;
                c.flags |= flag::TLS_SERVER;
                let id =
                    timers.insert(at, None, key, gen, TimerKind::Handshake, &mut c.timers_head);
                c.aux_timer = Some(id);
            }
            return; // connection_made comes when the handshake completes
        }
        self.call(key, gen, |p, t| p.connection_made(t));
    }

    /// Gives a gate back the slot of a connection it admitted that was not
    /// served after all.
    fn release_gate(&mut self, index: u32, peer: &PeerAddr) {
        if let Some(Some(l)) = self.listeners.get_mut(index as usize) {
            if let Some(g) = l.gate.as_mut() {
                g.released(peer);
            }
        }
    }

    /// Adds a connection and registers it (level-triggered) with `flags`
    /// describing the initial interest. On failure the connection's stats
    /// are unwound and `None` returned.
    pub fn insert_conn(
        &mut self,
        stream: Stream,
        protocol: impl Into<Option<Box<dyn Protocol>>>,
        peer: PeerAddr,
        listener: u32,
        flags: u16,
    ) -> Option<(u32, u32)> {
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        let entry = self.conns.vacant_entry();
        let key = entry.key() as u32;
        let ev = Event::new(
            poll_key(KIND_CONN, key),
            flags & flag::READ_ARMED != 0,
            flags & flag::WRITE_ARMED != 0,
        );
        // Deleted from the poller in `finalize`, before the stream drops.
        let added = self.poller.add(stream.as_fd(), ev, Mode::Level);
        if let Err(e) = added {
            log::warn!("cannot register connection: {e}");
            let stats = self.stats_mut(listener);
            stats.active = stats.active.saturating_sub(1);
            stats.closed += 1;
            return None;
        }
        entry.insert(Conn {
            stream,
            protocol: protocol.into(),
            out: Vec::new(),
            out_sent: 0,
            peer,
            error: None,
            aux_timer: None,
            proxy: None,
            tls: None,
            gen,
            listener,
            timers_head: NIL,
            children: 0,
            flags,
        });
        Some((key, gen))
    }

    pub fn arm_listener(&mut self, index: u32) {
        let Some(Some(l)) = self.listeners.get_mut(index as usize) else {
            return;
        };
        let want = l.wants_accept();
        if want == l.armed {
            return;
        }
        let ev = if want {
            Event::readable(poll_key(KIND_LISTENER, index))
        } else {
            Event::none(poll_key(KIND_LISTENER, index))
        };
        match self.poller.modify(&l.socket, ev, Mode::Level) {
            Ok(()) => l.armed = want,
            Err(e) => log::error!("cannot re-arm listener {index}: {e}"),
        }
    }

    fn backoff_listener(&mut self, index: u32) {
        let Some(Some(l)) = self.listeners.get_mut(index as usize) else {
            return;
        };
        l.paused_backoff = true;
        l.stats.accept_pauses += 1;
        let mut dummy = NIL;
        let at = self.now + self.config.accept_backoff;
        self.timers.insert(
            at,
            None,
            NIL,
            0,
            TimerKind::ResumeListener(index),
            &mut dummy,
        );
        self.arm_listener(index);
    }

    fn pause_for_cap(&mut self) {
        if !self.cap_paused {
            log::warn!(
                "{} connections open (the cap): pausing accept",
                self.conns.len()
            );
        }
        self.cap_paused = true;
        for i in 0..self.listeners.len() as u32 {
            if let Some(Some(l)) = self.listeners.get_mut(i as usize) {
                if !l.paused_cap {
                    l.paused_cap = true;
                    l.stats.accept_pauses += 1;
                }
            }
            self.arm_listener(i);
        }
    }

    fn maybe_resume_after_cap(&mut self) {
        if !self.cap_paused || self.conns.len() >= self.config.max_connections {
            return;
        }
        self.cap_paused = false;
        for i in 0..self.listeners.len() as u32 {
            if let Some(Some(l)) = self.listeners.get_mut(i as usize) {
                l.paused_cap = false;
            }
            self.arm_listener(i);
        }
    }

    pub fn close_listener(&mut self, index: u32) -> bool {
        let Some(slot) = self.listeners.get_mut(index as usize) else {
            return false;
        };
        let Some(l) = slot.take() else {
            return false;
        };
        if let Err(e) = self.poller.delete(&l.socket) {
            log::debug!("poller delete (listener) failed: {e}");
        }
        if l.unlink_on_close {
            if let crate::addr::Address::Unix(p) = &l.local {
                let _ = std::fs::remove_file(p);
            }
        }
        true
    }

    // ----- children -------------------------------------------------------

    fn on_pipe_event(&mut self, ckey: u32, which: ChildStream) {
        for _ in 0..self.config.read_batch.max(1) {
            let Some(entry) = self.children.get_mut(ckey as usize) else {
                return;
            };
            let (owner, owner_gen, gen) = (entry.owner, entry.owner_gen, entry.gen);
            let over_high = self
                .conns
                .get(owner as usize)
                .filter(|c| c.gen == owner_gen)
                .is_some_and(|c| c.has(flag::OVER_HIGH));
            if over_high {
                entry.paused = true;
                return;
            }
            let mut buf = std::mem::take(&mut self.read_buf);
            if buf.is_empty() {
                buf = vec![0; self.config.read_buffer.max(1)];
            }
            use std::io::Read;
            let result = match which {
                ChildStream::Stdout => entry.stdout.as_mut().map(|p| p.read(&mut buf)),
                ChildStream::Stderr => entry.stderr.as_mut().map(|p| p.read(&mut buf)),
            };
            match result {
                None => {
                    self.read_buf = buf;
                    return;
                }
                Some(Ok(n)) if n > 0 => {
                    let id = ChildId { key: ckey, gen };
                    if let Some(data) = buf.get(..n) {
                        self.call(owner, owner_gen, |p, t| p.child_output(t, id, which, data));
                    }
                    self.read_buf = buf;
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.read_buf = buf;
                    self.arm_pipe(ckey, which);
                    return;
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    self.read_buf = buf;
                }
                Some(_) => {
                    // EOF (or a read error, which ends the pipe the same way).
                    self.read_buf = buf;
                    self.close_pipe(ckey, which);
                    self.try_reap(ckey);
                    self.complete_child(ckey);
                    return;
                }
            }
        }
        self.arm_pipe(ckey, which);
    }

    pub fn arm_pipe(&mut self, ckey: u32, which: ChildStream) {
        let Some(entry) = self.children.get(ckey as usize) else {
            return;
        };
        let key = poll_key(KIND_PIPE, pipe_index(ckey, which));
        let r = match which {
            ChildStream::Stdout => entry
                .stdout
                .as_ref()
                .map(|p| self.poller.modify(p, Event::readable(key), Mode::Oneshot)),
            ChildStream::Stderr => entry
                .stderr
                .as_ref()
                .map(|p| self.poller.modify(p, Event::readable(key), Mode::Oneshot)),
        };
        if let Some(Err(e)) = r {
            log::warn!("cannot re-arm child pipe: {e}");
        }
    }

    pub fn register_pipe(
        &mut self,
        ckey: u32,
        which: ChildStream,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        sys::set_nonblocking(fd.as_raw_fd())?;
        let key = poll_key(KIND_PIPE, pipe_index(ckey, which));
        // Deleted from the poller in `close_pipe`, before the pipe drops.
        self.poller.add(fd, Event::readable(key), Mode::Oneshot)
    }

    fn close_pipe(&mut self, ckey: u32, which: ChildStream) {
        let Some(entry) = self.children.get_mut(ckey as usize) else {
            return;
        };
        match which {
            ChildStream::Stdout => {
                if let Some(p) = entry.stdout.take() {
                    let _ = self.poller.delete(&p);
                }
            }
            ChildStream::Stderr => {
                if let Some(p) = entry.stderr.take() {
                    let _ = self.poller.delete(&p);
                }
            }
        }
    }

    /// Reaps the child if it has exited, and then kills what is left of
    /// its process group: a child's background processes (which may hold
    /// its stdout open, or just keep running) do not outlive it. The group
    /// id cannot have been reused: Linux keeps a pid number reserved while
    /// any process still has it as its group id.
    fn try_reap(&mut self, ckey: u32) {
        if let Some(entry) = self.children.get_mut(ckey as usize) {
            if entry.status.is_none() {
                if let Ok(Some(st)) = entry.child.try_wait() {
                    entry.status = Some(st);
                    let _ = sys::kill_group(entry.child.id(), libc::SIGKILL);
                }
            }
        }
    }

    /// Reaps every child that has exited (after SIGCHLD).
    pub fn reap_children(&mut self) {
        let keys: Vec<u32> = self.children.iter().map(|(k, _)| k as u32).collect();
        for k in keys {
            self.try_reap(k);
            self.complete_child(k);
        }
    }

    /// Delivers `child_exited` and forgets the child once it has exited and
    /// both pipes are closed.
    fn complete_child(&mut self, ckey: u32) {
        let done = self
            .children
            .get(ckey as usize)
            .is_some_and(|e| e.finished() || (e.owner == NIL && e.status.is_some()));
        if !done {
            return;
        }
        let entry = self.children.remove(ckey as usize);
        let Some(status) = entry.status else {
            return;
        };
        let id = ChildId {
            key: ckey,
            gen: entry.gen,
        };
        if entry.owner == NIL {
            return;
        }
        if let Some(c) = self.conn_mut(entry.owner, entry.owner_gen) {
            c.children = c.children.saturating_sub(1);
        }
        self.call(entry.owner, entry.owner_gen, |p, t| {
            p.child_exited(t, id, status)
        });
    }

    /// Kills the children of a closing connection and stops reading them;
    /// they are reaped (never left as zombies) when SIGCHLD arrives.
    fn orphan_children(&mut self, key: u32, gen: u32) {
        let keys: Vec<u32> = self
            .children
            .iter()
            .filter(|(_, e)| e.owner == key && e.owner_gen == gen)
            .map(|(k, _)| k as u32)
            .collect();
        for ck in keys {
            self.close_pipe(ck, ChildStream::Stdout);
            self.close_pipe(ck, ChildStream::Stderr);
            if let Some(entry) = self.children.get_mut(ck as usize) {
                entry.owner = NIL;
                if entry.status.is_none() {
                    let _ = sys::kill_group(entry.child.id(), libc::SIGKILL);
                    let _ = entry.child.kill();
                }
            }
            self.try_reap(ck);
            self.complete_child(ck);
        }
    }

    /// Re-arms the pipes of a connection's children paused by backpressure.
    pub fn resume_children(&mut self, key: u32, gen: u32) {
        let keys: Vec<u32> = self
            .children
            .iter()
            .filter(|(_, e)| e.owner == key && e.owner_gen == gen && e.paused)
            .map(|(k, _)| k as u32)
            .collect();
        for ck in keys {
            if let Some(e) = self.children.get_mut(ck as usize) {
                e.paused = false;
            }
            self.arm_pipe(ck, ChildStream::Stdout);
            self.arm_pipe(ck, ChildStream::Stderr);
        }
    }

    // ----- signals, pending work, timers ------------------------------------

    fn on_signals(&mut self) {
        let Some(pipe) = self.signals.as_mut() else {
            return;
        };
        let arrived = pipe.drain();
        let key = poll_key(KIND_SIGNAL, 0);
        if let Err(e) = self
            .poller
            .modify(&pipe.read, Event::readable(key), Mode::Oneshot)
        {
            log::error!("cannot re-arm signal pipe: {e}");
        }
        for sig in arrived {
            if sig == libc::SIGCHLD {
                self.reap_children();
                continue;
            }
            if (sig == libc::SIGINT || sig == libc::SIGTERM) && self.graceful_signals {
                if matches!(self.state, RunState::ShuttingDown) {
                    log::warn!("second stop signal: closing all connections now");
                    self.close_all();
                    self.state = RunState::Stopped;
                } else {
                    log::info!(
                        "stop signal: no new connections; finishing open ones (up to {:?})",
                        self.config.shutdown_timeout
                    );
                    let t = self.config.shutdown_timeout;
                    self.begin_shutdown(t);
                }
            }
            for i in 0..self.signal_handlers.len() {
                let Some((s, slot)) = self.signal_handlers.get_mut(i) else {
                    continue;
                };
                if *s != sig {
                    continue;
                }
                if let Some(mut cb) = slot.take() {
                    {
                        let mut ctx = Context::new(self);
                        cb(&mut ctx);
                    }
                    if let Some((_, slot)) = self.signal_handlers.get_mut(i) {
                        *slot = Some(cb);
                    }
                    self.settle();
                }
            }
        }
    }

    /// Runs the work queued for this turn (not work queued while running it).
    pub fn run_pending(&mut self) {
        for _ in 0..self.pending.len() {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            match p {
                Pending::Read(key, gen) => {
                    if let Some(c) = self.conn_mut(key, gen) {
                        c.flags &= !flag::READ_PENDING;
                    }
                    self.read_conn(key, gen);
                }
                Pending::Drained(key, gen) => {
                    let low = self.config.low_water;
                    let still_low = self
                        .conn(key, gen)
                        .is_some_and(|c| !c.has(flag::OVER_HIGH) && c.unsent() <= low);
                    if still_low {
                        if self.conn(key, gen).is_some_and(|c| c.children > 0) {
                            self.resume_children(key, gen);
                        }
                        self.call(key, gen, |p, t| p.write_drained(t));
                    }
                }
                Pending::Connected(key, gen) => {
                    self.mark_dirty(key, gen);
                    self.call(key, gen, |p, t| p.connection_made(t));
                }
                Pending::Failed(key, gen) => {
                    let e = self
                        .conn_mut(key, gen)
                        .and_then(|c| c.error.take())
                        .unwrap_or_else(|| io::Error::other("connect failed"));
                    self.finalize(key, Disconnect::ConnectFailed(e));
                }
            }
            self.settle();
        }
    }

    /// Fires every timer due now, in deadline order.
    pub fn fire_timers(&mut self) {
        let watermark = self.timers.watermark();
        while let Some(fired) = self.timers.pop_due(self.now, watermark) {
            let (owner, owner_gen) = (fired.owner, fired.owner_gen);
            if owner != NIL {
                let (conns, timers) = (&mut self.conns, &mut self.timers);
                match conns.get_mut(owner as usize).filter(|c| c.gen == owner_gen) {
                    Some(c) => timers.unlink_fired(&fired, &mut c.timers_head),
                    None => continue,
                }
            }
            let id = fired.id;
            match fired.kind {
                TimerKind::User => self.call(owner, owner_gen, |p, t| p.timer_fired(t, id)),
                TimerKind::ConnectTimeout => {
                    let connecting = self.conn_mut(owner, owner_gen).is_some_and(|c| {
                        c.aux_timer = None;
                        c.has(flag::CONNECTING) || c.handshaking()
                    });
                    if connecting {
                        let e = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                        self.finalize(owner, Disconnect::ConnectFailed(e));
                    }
                }
                TimerKind::Handshake => {
                    let stalled = self.conn_mut(owner, owner_gen).is_some_and(|c| {
                        c.aux_timer = None;
                        c.handshaking()
                    });
                    if stalled {
                        if let Some(c) = self.conn(owner, owner_gen) {
                            log::debug!("TLS handshake with {} timed out", c.peer);
                            let listener = c.listener;
                            self.stats_mut(listener).tls_failures += 1;
                        }
                        self.finalize(owner, Disconnect::HandshakeTimedOut);
                    }
                }
                TimerKind::ProxyDeadline => self.proxy_timed_out(owner, owner_gen),
                TimerKind::CloseLinger(_) => {
                    let unsent = self.conn(owner, owner_gen).map(|c| c.unsent());
                    if let Some(unsent) = unsent {
                        self.finalize(owner, Disconnect::CloseTimedOut { unsent });
                    }
                }
                TimerKind::LingerDrain => {
                    if self.conn(owner, owner_gen).is_some() {
                        self.finalize(owner, Disconnect::Closed);
                    }
                }
                TimerKind::Global(Some(mut cb)) => {
                    {
                        let mut ctx = Context::new(self);
                        cb(&mut ctx, id);
                    }
                    if fired.repeating {
                        self.timers.restore_callback(id, cb);
                    }
                }
                TimerKind::Global(None) => {}
                TimerKind::ResumeListener(index) => {
                    if let Some(Some(l)) = self.listeners.get_mut(index as usize) {
                        l.paused_backoff = false;
                    }
                    self.arm_listener(index);
                }
                TimerKind::ShutdownDeadline => {
                    if matches!(self.state, RunState::ShuttingDown) {
                        log::info!(
                            "shutdown deadline: closing {} connections",
                            self.conns.len()
                        );
                        self.close_all();
                        self.state = RunState::Stopped;
                    }
                }
            }
            self.settle();
        }
    }

    /// Stops accepting and asks every protocol to finish.
    pub fn begin_shutdown(&mut self, timeout: Duration) {
        if !matches!(self.state, RunState::Running) {
            return;
        }
        self.state = RunState::ShuttingDown;
        for i in 0..self.listeners.len() as u32 {
            self.drain_accept_queue(i);
            self.close_listener(i);
        }
        let mut dummy = NIL;
        let at = Instant::now() + timeout;
        self.timers
            .insert(at, None, NIL, 0, TimerKind::ShutdownDeadline, &mut dummy);
        let keys: Vec<(u32, u32)> = self.conns.iter().map(|(k, c)| (k as u32, c.gen)).collect();
        // Deliver what is already in each socket first (a request sent
        // before the signal, on a connection just taken from the queue or
        // idle between requests), so `shutting_down` sees every connection
        // as it really is: one with a request in its socket is not idle.
        for &(key, gen) in &keys {
            self.read_conn(key, gen);
        }
        self.settle();
        for (key, gen) in keys {
            self.call(key, gen, |p, t| p.shutting_down(t));
        }
    }
}

impl Listener {
    pub(crate) fn socket_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.socket.as_fd()
    }
}

/// Writes as much of `data` as the socket takes now. Returns the count
/// written; a hard error is stored in `error` (`WouldBlock` is not one).
fn write_all_nonblocking(stream: &Stream, data: &[u8], error: &mut Option<io::Error>) -> usize {
    let mut off = 0;
    while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
        match stream.write(rest) {
            Ok(0) => {
                *error = Some(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket took nothing",
                ));
                break;
            }
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                *error = Some(e);
                break;
            }
        }
    }
    off
}

/// True while a connection closed with `close_lingering` has sent
/// everything and waits for its peer's EOF: the one closing state that
/// still reads (and discards) input.
fn lingering(conn: &Conn) -> bool {
    conn.has(flag::LINGER) && conn.has(flag::WRITE_SHUT) && !conn.has(flag::PEER_EOF | flag::ABORT)
}
