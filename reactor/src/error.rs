//! The reactor's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::addr::Address;

/// Everything that can go wrong when setting up or running a reactor.
///
/// Errors caused by one peer (a reset, a malformed read) never appear here:
/// they end that connection only and reach its protocol as a
/// [`Disconnect`](crate::Disconnect). These are errors of the host or of the
/// caller.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReactorError {
    /// The OS poller (epoll) could not be created or failed while waiting.
    /// Probably the host: out of file descriptors or memory.
    Poller(io::Error),
    /// Binding or listening on an address failed (in use, no permission,
    /// address not available on this host).
    Bind {
        /// The address that could not be bound.
        addr: Address,
        /// The OS error.
        source: io::Error,
    },
    /// A Unix socket path exists and is not a stale socket we may replace.
    PathInUse(PathBuf),
    /// A host name given for listening could not be resolved.
    Resolve {
        /// The host as given.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// Registering a socket or pipe with the poller failed.
    Register(io::Error),
    /// Installing a signal handler failed.
    Signal(io::Error),
    /// A child process could not be started (not found, not executable,
    /// out of processes).
    Spawn(io::Error),
    /// An outbound connection could not even be started (no socket could be
    /// created). Failures of the connection itself reach the protocol.
    Connect(io::Error),
    /// The id names no live listener, connection, timer or child.
    UnknownId,
    /// A TLS session could not be created (e.g. an invalid server name for
    /// an outbound connection).
    Tls(crate::tls::TlsError),
}

impl fmt::Display for ReactorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReactorError::Poller(e) => write!(f, "poller failed: {e}"),
            ReactorError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ReactorError::PathInUse(p) => {
                write!(f, "{} exists and is not a stale Unix socket", p.display())
            }
            ReactorError::Resolve { host, source } => {
                write!(f, "cannot resolve host {host:?}: {source}")
            }
            ReactorError::Register(e) => write!(f, "cannot register with the poller: {e}"),
            ReactorError::Signal(e) => write!(f, "cannot install signal handler: {e}"),
            ReactorError::Spawn(e) => write!(f, "cannot start child process: {e}"),
            ReactorError::Connect(e) => write!(f, "cannot start connection: {e}"),
            ReactorError::UnknownId => write!(f, "no such listener, connection, timer or child"),
            ReactorError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for ReactorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReactorError::Poller(e)
            | ReactorError::Register(e)
            | ReactorError::Signal(e)
            | ReactorError::Spawn(e)
            | ReactorError::Connect(e) => Some(e),
            ReactorError::Bind { source, .. } | ReactorError::Resolve { source, .. } => {
                Some(source)
            }
            ReactorError::Tls(e) => Some(e),
            ReactorError::PathInUse(_) | ReactorError::UnknownId => None,
        }
    }
}
