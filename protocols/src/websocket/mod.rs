//! The WebSocket protocol (RFC 6455): the pure codec.
//!
//! Bytes in, typed values or typed errors out; no I/O. The pieces, in the
//! order a connection meets them:
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
pub mod encode;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod origin;
pub mod response;
pub mod utf8;

pub use close::CloseFrame;
pub use encode::{
    encode_binary, encode_close, encode_close_empty, encode_ping, encode_pong, encode_text,
    ControlPayloadTooLong,
};
pub use error::ProtocolError;
pub use frame::{OpCode, Role};
pub use handshake::{
    accept_key, parse_request, select_subprotocol, HandshakeError, HandshakeStatus, Request,
    UpgradeRequest,
};
pub use message::{DecoderConfig, Event, MessageDecoder, DEFAULT_MAX_MESSAGE};
pub use origin::{InvalidOrigin, OriginPolicy};
pub use response::{encode_rejection, encode_switching_protocols, Rejection};
