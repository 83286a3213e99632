//! Counters kept per listener, readable by protocols and the server.

/// A snapshot of one listener's counters. Outbound connections are counted
/// in a separate set (see [`Context::client_stats`](crate::Context::client_stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections accepted and handed to a protocol (including those the
    /// gate admitted only to be refused by the protocol).
    pub accepted: u64,
    /// Connections the gate dropped at once, before any byte was read.
    pub refused: u64,
    /// Connections the gate admitted with a refusal for the protocol to
    /// deliver (e.g. Gemini `44`, HTTP `429`).
    pub refused_with_reply: u64,
    /// Connections open now.
    pub active: u64,
    /// Connections that have ended, for any reason.
    pub closed: u64,
    /// Bytes read from peers.
    pub bytes_in: u64,
    /// Bytes written to peers.
    pub bytes_out: u64,
    /// `accept` failures (e.g. out of file descriptors).
    pub accept_errors: u64,
    /// Times this listener paused accepting because the process was out of
    /// descriptors or at the global connection cap.
    pub accept_pauses: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out (garbage instead of a
    /// ClientHello, no shared version, a stalled peer...).
    pub tls_failures: u64,
    /// Connections closed in the PROXY protocol stage: from an address not
    /// allowed to send headers, without a header, with a bad one, or
    /// without a complete one before the deadline.
    pub proxy_failures: u64,
}
