//! Per-connection state. Kept small: with 10,000 idle connections this
//! struct (plus the protocol's own state) is most of the reactor's memory.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use crate::addr::PeerAddr;
use crate::ids::TimerId;
use crate::protocol::Protocol;
use crate::tls::TlsSession;

/// The TLS layer of a connection.
pub(crate) struct TlsConn {
    pub session: TlsSession,
    /// Ciphertext read from the socket but not yet fed to the session,
    /// because the protocol paused reading while the session still held
    /// plaintext. Bounded by one read buffer (we stop reading the socket
    /// while paused); empty (no allocation) otherwise. An incomplete
    /// record is the session's to keep, not this backlog's.
    pub backlog: Vec<u8>,
}

/// Lets the TLS session write its ciphertext straight to the socket.
pub(crate) struct StreamIo<'a>(pub &'a Stream);

impl Write for StreamIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connected socket.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }

    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Unix(s) => s.take_error(),
        }
    }

    pub fn local_addr(&self) -> io::Result<crate::addr::Address> {
        match self {
            Stream::Tcp(s) => s.local_addr().map(crate::addr::Address::Tcp),
            Stream::Unix(s) => {
                let a = s.local_addr()?;
                Ok(crate::addr::Address::Unix(
                    a.as_pathname().map(|p| p.to_path_buf()).unwrap_or_default(),
                ))
            }
        }
    }

    /// Whether an outbound connection has completed (`getpeername` works).
    pub fn is_connected(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.peer_addr().is_ok(),
            Stream::Unix(s) => s.peer_addr().is_ok(),
        }
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// Connection flags (a bit set, to keep [`Conn`] small).
pub(crate) mod flag {
    /// The protocol asked not to receive data for now.
    pub const READ_PAUSED: u16 = 1 << 0;
    /// Writable interest is registered with the poller.
    pub const WRITE_ARMED: u16 = 1 << 1;
    /// Readable interest is registered with the poller.
    pub const READ_ARMED: u16 = 1 << 2;
    /// Output went above the high water mark; `write_drained` is owed once
    /// it falls below the low mark.
    pub const OVER_HIGH: u16 = 1 << 3;
    /// `close()` was called: flush, then close.
    pub const CLOSING: u16 = 1 << 4;
    /// `abort()` was called: close now, discarding output.
    pub const ABORT: u16 = 1 << 5;
    /// `shutdown_write()` was called: shut the write side once flushed.
    pub const SHUT_WR_WANTED: u16 = 1 << 6;
    /// The write side has been shut down.
    pub const WRITE_SHUT: u16 = 1 << 7;
    /// The peer sent EOF.
    pub const PEER_EOF: u16 = 1 << 8;
    /// An outbound connection that has not completed yet.
    pub const CONNECTING: u16 = 1 << 9;
    /// Queued in `Core::dirty`.
    pub const DIRTY: u16 = 1 << 10;
    /// Queued in `Core::pending` for another read turn.
    pub const READ_PENDING: u16 = 1 << 11;
    /// Admitted by a gate: `released` is owed on close.
    pub const GATED: u16 = 1 << 12;
    /// The listener accepted it over TLS: handshake failures count there.
    pub const TLS_SERVER: u16 = 1 << 13;
    /// `close_lingering()` was called: once flushed, shut the write side
    /// and read and discard input until the peer's EOF or the deadline.
    pub const LINGER: u16 = 1 << 14;
}

/// One connection. Invariants: `out[out_sent..]` is the unsent output and
/// `out` has no capacity when nothing is unsent (the buffer is released);
/// `timers_head` heads the intrusive list of this connection's timers.
pub(crate) struct Conn {
    pub stream: Stream,
    /// `None` only while one of its methods is running.
    pub protocol: Option<Box<dyn Protocol>>,
    pub out: Vec<u8>,
    pub out_sent: usize,
    pub peer: PeerAddr,
    /// A pending error to report (a failed outbound connect).
    pub error: Option<io::Error>,
    /// The TLS layer, for TLS connections. The protocol sees plaintext and
    /// is told `connection_made` only once the handshake has completed.
    pub tls: Option<Box<TlsConn>>,
    /// The connect-timeout or close-linger timer, whichever applies now.
    pub aux_timer: Option<TimerId>,
    /// Set while an accepted connection waits for its PROXY protocol
    /// header (then `protocol` is `None` and no gate has decided yet).
    pub proxy: Option<Box<crate::proxy_stage::ProxyStage>>,
    pub gen: u32,
    /// Index of the accepting listener, or `timers::NIL` for outbound.
    pub listener: u32,
    pub timers_head: u32,
    /// Live child processes owned by this connection.
    pub children: u16,
    pub flags: u16,
}

impl Conn {
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    /// Output not yet taken by the socket: queued plaintext, and for TLS
    /// what the session holds (unsent ciphertext, and plaintext written
    /// during the handshake).
    pub fn unsent(&self) -> usize {
        let tls = self.tls.as_ref().map_or(0, |t| t.session.pending_len());
        self.out.len().saturating_sub(self.out_sent) + tls
    }

    /// True while a TLS handshake is under way.
    pub fn handshaking(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.session.is_handshaking())
    }
}
