//! Settings of a WebSocket listener, each with a default and the reason for
//! it. The server fills a [`WsConfig`] from its flags (`--ws-origins`,
//! `--ws-max-message`, `--broadcast-file`, ...) and config file.

use std::path::PathBuf;
use std::time::Duration;

use super::message::DEFAULT_MAX_MESSAGE;
use super::origin::OriginPolicy;

/// Time a client has to send its whole handshake request: a real client
/// sends it in its first packet, and the limit keeps a silent or trickling
/// peer from holding a descriptor (Jetforce settled on 10 s too).
pub const DEFAULT_HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// A connection that has been silent this long is pinged: shorter than the
/// idle timeouts of common proxies and NATs (60 s and up), so the ping also
/// keeps the path open.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);

/// A ping unanswered for this long closes the connection: generous for a
/// phone on a bad network, short enough that dead peers are reaped quickly.
pub const DEFAULT_PONG_DEADLINE: Duration = Duration::from_secs(20);

/// After our Close frame, the peer has this long to answer with its own
/// before the TCP connection is closed anyway: a close handshake is one
/// round trip, so seconds are plenty.
pub const DEFAULT_CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// Bytes queued for a client above which a broadcast skips it (or closes
/// it, see [`SlowReaderPolicy`]): four reactor high-water marks, so a
/// briefly busy browser tab loses nothing, while a client that stopped
/// reading costs at most this much.
pub const DEFAULT_BROADCAST_HIGH_WATER: usize = 256 * 1024;

/// How often the broadcast file's size and modification time are checked:
/// one `stat` a second is free, and a human writing the file sees the
/// message arrive at once.
pub const DEFAULT_BROADCAST_POLL: Duration = Duration::from_secs(1);

/// How often `/status` pushes a snapshot: the page's numbers tick once a
/// second, which reads as live without costing anything measurable.
pub const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Longest broadcast-file text pushed, in bytes: the file is read whole on
/// each change (a blocking read of a regular file), so it is kept small; a
/// longer file is cut at this length.
pub const MAX_BROADCAST_FILE: usize = 64 * 1024;

/// What a broadcast does with a client whose queue is above
/// [`WsConfig::broadcast_high_water`]. Never an unbounded queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlowReaderPolicy {
    /// Skip the message for that client and count it: the client misses
    /// messages but stays connected (Gate One's choice for broadcast).
    #[default]
    Drop,
    /// Close the client with 1008 (policy violation): it reconnects and
    /// starts from a clean state rather than with gaps.
    Close,
}

/// Which built-in endpoints a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinEndpoints {
    /// `/echo`: echoes every message (conformance and benchmark tools).
    pub echo: bool,
    /// `/chat`: every message goes to every other `/chat` client.
    pub chat: bool,
    /// `/status`: a JSON snapshot of the server's counters every second.
    pub status: bool,
    /// `GET /` without Upgrade: the status page.
    pub page: bool,
}

impl Default for BuiltinEndpoints {
    fn default() -> Self {
        BuiltinEndpoints {
            echo: true,
            chat: true,
            status: true,
            page: true,
        }
    }
}

/// Settings of one WebSocket listener.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest message accepted (sum of its fragments), in bytes; larger is
    /// refused with 1009 from the frame header, before it is buffered.
    /// Default [`DEFAULT_MAX_MESSAGE`] (1 MiB).
    pub max_message: usize,
    /// See [`DEFAULT_HANDSHAKE_DEADLINE`].
    pub handshake_deadline: Duration,
    /// See [`DEFAULT_PING_INTERVAL`].
    pub ping_interval: Duration,
    /// See [`DEFAULT_PONG_DEADLINE`].
    pub pong_deadline: Duration,
    /// See [`DEFAULT_CLOSE_DEADLINE`].
    pub close_deadline: Duration,
    /// Origins allowed to open sockets (`--ws-origins`; `*` allows all).
    /// Clients that send no Origin (non-browsers) are always allowed.
    pub origins: OriginPolicy,
    /// Also allow a browser whose Origin names the host it connects to (the
    /// `Host` header): the status page served by this listener can always
    /// use its own sockets. Default true.
    pub allow_same_origin: bool,
    /// The built-in endpoints served.
    pub endpoints: BuiltinEndpoints,
    /// What a broadcast does with a slow client.
    pub slow_reader: SlowReaderPolicy,
    /// See [`DEFAULT_BROADCAST_HIGH_WATER`].
    pub broadcast_high_water: usize,
    /// `--broadcast-file`: when this file changes, its text is pushed to
    /// every `/chat` client.
    pub broadcast_file: Option<PathBuf>,
    /// See [`DEFAULT_BROADCAST_POLL`].
    pub broadcast_poll: Duration,
    /// See [`DEFAULT_STATUS_INTERVAL`].
    pub status_interval: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message: DEFAULT_MAX_MESSAGE,
            handshake_deadline: DEFAULT_HANDSHAKE_DEADLINE,
            ping_interval: DEFAULT_PING_INTERVAL,
            pong_deadline: DEFAULT_PONG_DEADLINE,
            close_deadline: DEFAULT_CLOSE_DEADLINE,
            origins: OriginPolicy::default(),
            allow_same_origin: true,
            endpoints: BuiltinEndpoints::default(),
            slow_reader: SlowReaderPolicy::default(),
            broadcast_high_water: DEFAULT_BROADCAST_HIGH_WATER,
            broadcast_file: None,
            broadcast_poll: DEFAULT_BROADCAST_POLL,
            status_interval: DEFAULT_STATUS_INTERVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_constants() {
        let c = WsConfig::default();
        assert_eq!(c.max_message, 1 << 20);
        assert_eq!(c.ping_interval, DEFAULT_PING_INTERVAL);
        assert!(c.pong_deadline < c.ping_interval);
        assert_eq!(c.slow_reader, SlowReaderPolicy::Drop);
        assert!(c.allow_same_origin);
        assert!(c.endpoints.echo && c.endpoints.chat && c.endpoints.status && c.endpoints.page);
        assert!(c.broadcast_file.is_none());
        // Cross-origin browsers are refused unless configured.
        assert!(!c.origins.allows(Some("https://evil.example")));
        assert!(c.origins.allows(None));
    }
}
