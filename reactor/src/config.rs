//! Tunables of a reactor, each with a default and the reason for it.

use std::time::Duration;

/// Size of the one read buffer shared by every connection of a reactor:
/// large enough that a bulk transfer needs few `read` calls, and paid once
/// per reactor rather than once per connection.
pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;

/// Queued output above which a protocol is asked to stop producing
/// ([`Transport::over_high_water`](crate::Transport::over_high_water)):
/// enough to keep a fast link busy between two wakeups.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// Queued output below which a paused producer is resumed
/// ([`Protocol::write_drained`](crate::Protocol::write_drained)): a quarter of
/// the high mark, so a producer is not woken for every few bytes sent.
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// At most this many connections are accepted per listener per wakeup, so a
/// connection storm on one listener cannot starve established connections.
pub const DEFAULT_ACCEPT_BATCH: usize = 64;

/// At most this many full reads per connection per wakeup, so one fast
/// sender cannot starve the others; the rest is read on the next turn.
pub const DEFAULT_READ_BATCH: usize = 4;

/// How long `close()` may wait for queued output to reach a peer that does
/// not read; after this the connection is aborted (and the loss logged).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect timeout of outbound connections.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS handshake must complete within this long, so a peer that stalls
/// mid-handshake costs a descriptor for a bounded time (Jetforce uses 10 s).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Grace period after SIGINT/SIGTERM before remaining connections are closed.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a listener pauses after the process ran out of file descriptors
/// (`EMFILE`/`ENFILE`): long enough not to spin, short enough to recover fast.
pub const DEFAULT_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// `listen(2)` backlog: room for a burst of connections while the loop is busy.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Reactor-wide settings. Build with [`ReactorConfig::default`] and change
/// what you need.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// See [`DEFAULT_READ_BUFFER`].
    pub read_buffer: usize,
    /// See [`DEFAULT_HIGH_WATER`].
    pub high_water: usize,
    /// See [`DEFAULT_LOW_WATER`]. Must be at most `high_water`.
    pub low_water: usize,
    /// See [`DEFAULT_ACCEPT_BATCH`].
    pub accept_batch: usize,
    /// See [`DEFAULT_READ_BATCH`].
    pub read_batch: usize,
    /// See [`DEFAULT_CLOSE_TIMEOUT`].
    pub close_timeout: Duration,
    /// See [`DEFAULT_CONNECT_TIMEOUT`]. For outbound TLS connections it
    /// covers the handshake too.
    pub connect_timeout: Duration,
    /// See [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub shutdown_timeout: Duration,
    /// See [`DEFAULT_ACCEPT_BACKOFF`].
    pub accept_backoff: Duration,
    /// Global cap on open connections (accepted and outbound). At the cap,
    /// listeners stop accepting until a connection closes, so the kernel's
    /// backlog holds new clients instead of the loop accepting and closing
    /// them. Default: derived from `RLIMIT_NOFILE` by
    /// [`default_max_connections`].
    pub max_connections: usize,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            read_buffer: DEFAULT_READ_BUFFER,
            high_water: DEFAULT_HIGH_WATER,
            low_water: DEFAULT_LOW_WATER,
            accept_batch: DEFAULT_ACCEPT_BATCH,
            read_batch: DEFAULT_READ_BATCH,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            accept_backoff: DEFAULT_ACCEPT_BACKOFF,
            max_connections: default_max_connections(),
        }
    }
}

/// The default global connection cap: the soft `RLIMIT_NOFILE` less a
/// quarter (at least 32) kept for listeners, files being served and child
/// pipes, so reaching the cap never means running out of descriptors.
pub fn default_max_connections() -> usize {
    let soft = crate::sys::nofile_soft_limit().unwrap_or(1024);
    let headroom = (soft / 4).max(32);
    soft.saturating_sub(headroom).max(1)
}
