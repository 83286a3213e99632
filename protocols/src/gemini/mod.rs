//! Gemini: the pure codec.
//!
//! [Gemini](https://geminiprotocol.net/) is a small request/response protocol
//! over TLS, port 1965 by default. A client opens a connection, completes the
//! TLS handshake and sends one line: an absolute `gemini://` URL of at most
//! 1024 bytes, then CR LF. The server answers with one header line — a
//! two-digit status, a space, a "meta" string of at most 1024 bytes, CR LF —
//! followed, for status 20 only, by the body; then it closes the connection.
//!
//! This module holds the parts that touch no socket, file or clock, each
//! unit-tested with byte strings:
//!
//! - [`request`]: [`parse_request`], an incremental parser for the request
//!   line, and the [`Request`] it yields;
//! - [`host`]: [`normalise_host`], which gives a URL's host one canonical form
//!   (the `url` crate does not normalise hosts of `gemini:` URLs), and
//!   [`HostPolicy`], which decides whether a request is for this listener;
//! - [`status`]: the [`Status`] codes and their [`Category`];
//! - [`response`]: [`ResponseHeader::encode_into`] for the server, and
//!   [`parse_response_header`] to validate a CGI script's header or read a
//!   server's answer in the benchmark client;
//! - [`path`]: [`safe_segments`], which turns a request's percent-encoded
//!   path into segments that cannot leave the served directory.
//!
//! Every error type says which status to answer with (`status()`) and gives a
//! short fixed text for the meta (`reason()`) that never echoes client bytes.
//!
//! A request is handled by applying them in order:
//!
//! ```
//! use torsion_protocols::gemini::{parse_request, safe_segments, HostPolicy, Parsed};
//!
//! let policy = HostPolicy::new(["example.org"], 1965).unwrap();
//! let Parsed::Complete { request, .. } =
//!     parse_request(b"gemini://Example.ORG/docs/%C3%A9t%C3%A9.gmi\r\n").unwrap()
//! else {
//!     unreachable!("the line is complete");
//! };
//! policy.check(&request).unwrap();
//! let path = safe_segments(request.path()).unwrap();
//! assert_eq!(path.as_str(), "docs/été.gmi");
//! ```
//!
//! Still to come here, as for every protocol module: the `Protocol` and
//! `Factory` that drive this codec from reactor events (request deadline,
//! static files streamed with backpressure, CGI, client certificates,
//! virtual hosts), and the config struct the server fills from the command
//! line and TOML.

pub mod host;
mod line;
pub mod path;
mod percent;
pub mod request;
pub mod response;
pub mod status;

pub use host::{normalise_host, Host, HostError, HostPolicy, HostRefusal};
pub use path::{safe_segments, PathError, SafePath};
pub use request::{parse_request, Parsed, Request, RequestError, MAX_REQUEST_URL};
pub use response::{
    parse_response_header, parse_response_header_lenient, HeaderError, ParsedHeader,
    ResponseHeader, MAX_META,
};
pub use status::{Category, Status};
