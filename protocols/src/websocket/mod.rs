//! The WebSocket protocol (RFC 6455), in the three parts every protocol
//! module has:
//!
//! 1. the pure codec (below): bytes in, typed values or typed errors out;
//! 2. the [`WsProtocol`] driven by the reactor, built by [`WsFactory`], with
//!    the application API ([`Endpoint`], [`WsContext`]) and the built-in
//!    endpoints `/echo`, `/chat`, `/status` and the status page at `GET /`;
//! 3. the [`WsConfig`].
//!
//! The codec's pieces, in the order a connection meets them:
//!
//! - [`handshake`]: parse the HTTP upgrade request (incrementally, httparse
//!   style), compute `Sec-WebSocket-Accept`, pick a subprotocol; a plain GET
//!   is reported as [`Request::NotUpgrade`] so the listener can serve a page.
//! - [`origin`]: the Origin allow-list ([`OriginPolicy`]).
//! - [`response`]: the `101 Switching Protocols` and the error responses.
//! - [`frame`]: frame headers (decode with every RFC check, encode) and
//!   masking.
//! - [`utf8`]: incremental UTF-8 validation that fails at the first bad byte.
//! - [`close`]: close codes and close-payload checks.
//! - [`message`]: [`MessageDecoder`], frames to [`Event`]s (messages, pings,
//!   pongs, close), with fragmentation, UTF-8 and size limits.
//! - [`encode`]: what the server sends (text, binary, ping, pong, close).
//!
//! Peer faults are [`HandshakeError`] (an HTTP status) before the upgrade and
//! [`ProtocolError`] (a close code) after it. torsion negotiates no
//! extensions, so any RSV bit is a protocol error.

pub mod close;
pub mod config;
pub mod encode;
pub mod endpoint;
pub mod endpoints;
pub mod error;
pub mod frame;
pub mod handshake;
mod hub;
pub mod message;
pub mod origin;
pub mod protocol;
pub mod response;
pub mod stats;
pub mod utf8;

pub use close::CloseFrame;
pub use config::{BuiltinEndpoints, SlowReaderPolicy, WsConfig};
pub use encode::{
    encode_binary, encode_close, encode_close_empty, encode_ping, encode_pong, encode_text,
    server_header, ControlPayloadTooLong, HeaderBytes,
};
pub use endpoint::{Endpoint, EndpointFactory, Message, WsContext};
pub use endpoints::chat::{ChatEndpoint, CHAT_GROUP, CHAT_PATH};
pub use endpoints::echo::{EchoEndpoint, ECHO_PATH};
pub use endpoints::status::{StatusEndpoint, STATUS_GROUP, STATUS_PATH};
pub use error::ProtocolError;
pub use frame::{OpCode, Role};
pub use handshake::{
    accept_key, parse_request, select_subprotocol, HandshakeError, HandshakeStatus, Request,
    UpgradeRequest,
};
pub use hub::{BroadcastReport, WsHandle};
pub use message::{DecoderConfig, Event, MessageDecoder, DEFAULT_MAX_MESSAGE};
pub use origin::{is_same_origin, InvalidOrigin, OriginPolicy};
pub use protocol::{WsFactory, WsProtocol, STATUS_PAGE};
pub use response::{encode_rejection, encode_switching_protocols, Rejection};
pub use stats::{
    process_rss_bytes, ProcessStatus, ProtocolStatus, StatusSnapshot, StatusSource, WsStats,
};
