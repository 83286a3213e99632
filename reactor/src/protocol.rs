//! The contract between the reactor and the code that speaks a protocol.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use crate::addr::PeerAddr;
use crate::ids::{ChildId, ChildStream, ListenerId, TimerId};
use crate::transport::Transport;

/// One connection's protocol: the object the reactor calls when something
/// happens on that connection (Twisted's `Protocol`).
///
/// # Contract
///
/// - Every method runs on the reactor's thread and **must not block**: no
///   sleeping, no blocking I/O, no unbounded loops. Wait with a timer
///   ([`Transport::call_later`]) or for readiness instead.
/// - `connection_made` is called exactly once, first, before any other
///   method (except for outbound connections that fail to connect: they get
///   only `connection_lost` with [`Disconnect::ConnectFailed`]).
/// - `connection_lost` is called exactly once, last. After it the protocol is
///   dropped.
/// - `data_received` gets bytes in the order the peer sent them, but **split
///   and merged arbitrarily**: one call may hold half a message or ten
///   messages. A protocol must give the same result when fed one byte at a
///   time; test it that way.
/// - Output written with [`Transport::write`] is queued and sent in order as
///   the peer reads. When the queue is above the high water mark,
///   [`Transport::over_high_water`] is true and a producer should stop;
///   `write_drained` is called once it falls below the low water mark.
/// - Every method except `data_received` has a default that does nothing
///   (or, for `eof_received`, closes the connection).
pub trait Protocol {
    /// The connection is open. Start timers (every connection should have a
    /// deadline) and write a greeting here.
    fn connection_made(&mut self, _t: &mut Transport<'_>) {}

    /// Bytes arrived. `data` is the reactor's shared scratch buffer: copy out
    /// what you need to keep; you may modify it in place (e.g. to unmask a
    /// WebSocket payload without a copy).
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]);

    /// The peer shut down its sending side (TCP FIN): no more data will
    /// arrive. The default closes the connection after flushing queued
    /// output. Override it to keep writing on a half-closed connection;
    /// call [`Transport::close`] when done.
    fn eof_received(&mut self, t: &mut Transport<'_>) {
        t.close();
    }

    /// Queued output fell below the low water mark after having been above
    /// the high water mark: a paused producer may resume.
    fn write_drained(&mut self, _t: &mut Transport<'_>) {}

    /// A timer of this connection fired. A cancelled timer never fires.
    fn timer_fired(&mut self, _t: &mut Transport<'_>, _timer: TimerId) {}

    /// A child process of this connection wrote to its stdout or stderr.
    /// While this connection's output is above the high water mark the
    /// child's pipes are not read (the child blocks on a full pipe), so a
    /// fast child cannot outrun a slow client.
    fn child_output(
        &mut self,
        _t: &mut Transport<'_>,
        _child: ChildId,
        _stream: ChildStream,
        _data: &[u8],
    ) {
    }

    /// A child process of this connection exited. All of its output has
    /// been delivered before this call.
    fn child_exited(&mut self, _t: &mut Transport<'_>, _child: ChildId, _status: ExitStatus) {}

    /// The reactor is shutting down gracefully (SIGINT/SIGTERM or
    /// [`ReactorHandle::shutdown`](crate::ReactorHandle::shutdown)): finish
    /// what is in flight and close. A connection that is reading has had
    /// one more read batch from its socket delivered (`data_received`)
    /// before this call, so one with nothing buffered is almost certainly
    /// idle (a paused or closing connection is not read). Connections still
    /// open at the deadline are closed. The default does nothing, so the connection
    /// ends when its work ends (or at the deadline).
    fn shutting_down(&mut self, _t: &mut Transport<'_>) {}

    /// The connection has ended; `reason` says how. The transport still
    /// works for reactor-wide operations (writing to other connections,
    /// global timers), but writes to this connection are discarded.
    fn connection_lost(&mut self, _t: &mut Transport<'_>, _reason: &Disconnect) {}
}

/// Why a connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Disconnect {
    /// Closed cleanly by this side with [`Transport::close`] after all queued
    /// output was sent (including after the peer's EOF).
    Closed,
    /// Closed by [`Transport::abort`]; `unsent` queued bytes were discarded.
    Aborted {
        /// Bytes that were queued and never sent.
        unsent: usize,
    },
    /// The peer reset the connection or the socket failed (`ECONNRESET`,
    /// `EPIPE`, ...). Probably the peer's doing.
    Io(io::Error),
    /// An outbound connection could not be established (refused,
    /// unreachable, or timed out). `connection_made` was never called.
    ConnectFailed(io::Error),
    /// `close()` waited longer than the close timeout for a peer that does
    /// not read; `unsent` bytes were discarded.
    CloseTimedOut {
        /// Bytes that were queued and never sent.
        unsent: usize,
    },
    /// The TLS layer failed: a bad handshake (garbage instead of a
    /// ClientHello, no common version or cipher, a refused certificate) or a
    /// corrupt record. Probably the peer's doing.
    Tls(crate::tls::TlsError),
    /// The TLS handshake did not complete within the handshake timeout.
    HandshakeTimedOut,
    /// The reactor shut down (deadline reached, or stopped) with this
    /// connection still open; `unsent` bytes were discarded.
    Shutdown {
        /// Bytes that were queued and never sent.
        unsent: usize,
    },
}

impl Disconnect {
    /// Bytes this side had queued for the peer and never sent.
    pub fn unsent(&self) -> usize {
        match self {
            Disconnect::Aborted { unsent }
            | Disconnect::CloseTimedOut { unsent }
            | Disconnect::Shutdown { unsent } => *unsent,
            _ => 0,
        }
    }

    /// True when the connection ended the way both sides meant it to.
    pub fn is_clean(&self) -> bool {
        matches!(self, Disconnect::Closed)
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Closed => f.write_str("closed"),
            Disconnect::Aborted { unsent } => write!(f, "aborted ({unsent} bytes unsent)"),
            Disconnect::Io(e) => write!(f, "connection error: {e}"),
            Disconnect::ConnectFailed(e) => write!(f, "connect failed: {e}"),
            Disconnect::CloseTimedOut { unsent } => {
                write!(f, "peer stopped reading; closed with {unsent} bytes unsent")
            }
            Disconnect::Shutdown { unsent } => {
                write!(f, "reactor shut down ({unsent} bytes unsent)")
            }
            Disconnect::Tls(e) => write!(f, "TLS error: {e}"),
            Disconnect::HandshakeTimedOut => f.write_str("TLS handshake timed out"),
        }
    }
}

/// What a factory knows about a new connection when it builds its protocol.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer's address.
    pub addr: PeerAddr,
    /// The listener that accepted the connection.
    pub listener: ListenerId,
    /// Set when the listener's [`Gate`] admitted the connection only so that
    /// the protocol can refuse it politely (Gemini `44`, HTTP `429`): the
    /// client may come back after this long.
    pub refused_for: Option<Duration>,
    /// Whether the connection is TLS (the protocol starts after the
    /// handshake; see [`Transport::tls_info`](crate::Transport::tls_info)).
    pub tls: bool,
}

/// Builds a protocol for each accepted connection (Twisted's `Factory`).
///
/// Shared state for all connections of a listener lives in the factory
/// (typically an `Rc<RefCell<_>>` it clones into each protocol): the reactor
/// is single-threaded, so no locks are needed.
pub trait Factory {
    /// Returns the protocol for a newly accepted connection. Called before
    /// any of the protocol's bytes is read (on a PROXY protocol listener,
    /// once the header has named the client; see
    /// [`ListenOptions::proxy`](crate::ListenOptions::proxy)).
    fn build(&mut self, peer: &PeerInfo) -> Box<dyn Protocol>;
}

impl<F> Factory for F
where
    F: FnMut(&PeerInfo) -> Box<dyn Protocol>,
{
    fn build(&mut self, peer: &PeerInfo) -> Box<dyn Protocol> {
        self(peer)
    }
}

/// A gate's decision about a connection that was just accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Admit,
    /// Close it at once: no byte read, no TLS work, no protocol built.
    Drop,
    /// Build the protocol, but tell it (through
    /// [`PeerInfo::refused_for`]) to refuse the client politely; the client
    /// may retry after `retry_after`.
    Refuse {
        /// When the client may come back.
        retry_after: Duration,
    },
}

/// Decides at accept time, before any byte is read, whether a connection is
/// served: the hook for rate limits and connection caps. On a PROXY
/// protocol listener the decision waits for the header, and `peer` is the
/// client it names (no TLS work or protocol happens before it either).
///
/// `admit` is called once per accepted socket; for every admitted connection
/// (`Admit` or `Refuse`) `released` is called exactly once when it closes, so
/// a gate can count connections per client.
pub trait Gate {
    /// Decides the fate of a connection from `peer`.
    fn admit(&mut self, peer: &PeerAddr) -> Verdict;
    /// A connection this gate admitted has closed.
    fn released(&mut self, _peer: &PeerAddr) {}
}
