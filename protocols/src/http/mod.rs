//! The HTTP redirect protocol: a plain HTTP/1.1 listener that answers every
//! request with a permanent redirect to `https://`, optionally serving ACME
//! http-01 challenges instead.
//!
//! Three parts, as every protocol module here: the pure codec (bytes in,
//! typed values or typed errors out, no I/O: every module but the two
//! below), the [`HttpFactory`] / [`HttpConnection`] that drive it from
//! reactor events ([`protocol`]), and the [`HttpConfig`] the server fills
//! ([`config`]).
//!
//! A connection's life, as [`HttpConnection`] drives the codec:
//!
//! 1. [`parse_head`] on the bytes received so far: `Partial` (read more),
//!    `Complete { head, consumed }`, or an [`HttpError`] whose
//!    [`status`](HttpError::status) is the answer to send before closing
//!    (`None`: close silently — TLS or HTTP/2 spoken to the wrong port).
//! 2. [`acme_token`] on the path, if ACME is enabled; else [`redirect_for`]
//!    decides the [`Redirect`] from the head and the [`RedirectConfig`].
//! 3. [`encode_redirect`] / [`encode_error`] / [`encode_text`] append the
//!    response to the connection's output buffer, framed by a [`Reply`]
//!    (`Date` from a [`DateCache`], keep-alive from the request).
//! 4. [`BodySkipper`] consumes the request body, if any, so the next
//!    pipelined request starts where it says; if [`BodySkipper::new`]
//!    refuses, answer with `Connection: close` and close.
//!
//! Around that the protocol keeps one deadline per connection (head, idle,
//! linger), a cap on requests per connection, the 429 refusal asked for by
//! the accept gate, the access log and the [`HttpStats`] counters.
//!
//! Every limit is a named constant; every parser gives the same answer
//! whether its input arrives whole or one byte at a time.

pub mod acme;
pub mod body;
pub mod chunked;
pub mod config;
pub mod date;
pub mod host;
pub mod protocol;
pub mod redirect;
pub mod request;
pub mod response;
mod syntax;

pub use acme::{acme_token, ACME_CHALLENGE_PREFIX, MAX_ACME_TOKEN};
pub use body::{BodyError, BodySkipper, Skipped, MAX_SKIPPED_BODY};
pub use chunked::ChunkedError;
pub use config::{
    HttpConfig, HttpConfigError, DEFAULT_HEAD_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_LINGER,
    DEFAULT_MAX_REQUESTS,
};
pub use date::DateCache;
pub use host::{parse_host, HostError, HostKind, HostName};
pub use protocol::{
    escape_for_log, HttpConnection, HttpFactory, HttpStats, LogEscaped, MAX_ACME_FILE,
};
pub use redirect::{redirect_for, Redirect, RedirectCode, RedirectConfig};
pub use request::{
    parse_head, BodyFraming, ConnectionTokens, HttpError, Method, Parsed, RequestHead, Version,
    MAX_HEAD, MAX_HEADERS, MAX_TARGET,
};
pub use response::{encode_error, encode_redirect, encode_text, ErrorStatus, Reply};
