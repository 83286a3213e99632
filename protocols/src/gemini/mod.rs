//! Gemini: a capsule server with Jetforce parity.
//!
//! [Gemini](https://geminiprotocol.net/) is a small request/response protocol
//! over TLS, port 1965 by default. A client opens a connection, completes the
//! TLS handshake and sends one line: an absolute `gemini://` URL of at most
//! 1024 bytes, then CR LF. The server answers with one header line — a
//! two-digit status, a space, a "meta" string of at most 1024 bytes, CR LF —
//! followed, for status 20 only, by the body; then it closes the connection.
//!
//! Like every protocol module it has three parts.
//!
//! **The pure codec** touches no socket, file or clock, each part
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
//! **The protocol** ([`protocol`]): [`GeminiFactory`] builds a
//! [`GeminiConnection`] per accepted TLS connection, which reads the request
//! line within a deadline, checks host and port, picks the virtual host,
//! asks its [`Handler`] and sends the answer — files streamed in bounded
//! chunks as the socket drains, CGI output relayed with backpressure — then
//! writes one access-log line ([`log`]).
//!
//! **The configuration** ([`config`]): [`GeminiConfig`] with one
//! [`VirtualHost`] per served name (root, CGI directory, index file,
//! language), filled by the server from Jetforce's flags or the TOML file.
//!
//! **Applications** ([`app`]) are how library users serve their own
//! content, like Jetforce's `JetforceApplication`: a [`Handler`] gets an
//! [`AppRequest`] (URL, path, query, peer, TLS facts and client
//! certificate) and returns a [`Response`]; a [`Router`] dispatches exact
//! paths, prefixes and patterns with captures, then falls back (usually to
//! the files). The built-in content is made of such handlers:
//! [`StaticFiles`] ([`static_files`]), [`Cgi`] ([`cgi`]) and the
//! [`EmbeddedCapsule`] ([`capsule`]).
//!
//! ```no_run
//! use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};
//! use torsion_reactor::{ListenOptions, Reactor};
//! use torsion_reactor::tls::{CertSource, CertStore, ServerTlsConfig};
//!
//! let vhost = VirtualHost::new("localhost", Root::Dir("/var/gemini".into()));
//! let factory = GeminiFactory::new(GeminiConfig::single(vhost), 1965).unwrap();
//! let certs = CertStore::new();
//! certs
//!     .add_default(
//!         &["localhost"],
//!         CertSource::Generated {
//!             state_dir: "/var/lib/torsion".into(),
//!             hostnames: vec!["localhost".into()],
//!         },
//!     )
//!     .unwrap();
//! let tls = ServerTlsConfig::builder(certs).build().unwrap();
//! let mut reactor = Reactor::new().unwrap();
//! let addr: std::net::SocketAddr = "127.0.0.1:1965".parse().unwrap();
//! reactor
//!     .listen_with(addr, factory, ListenOptions { tls: Some(tls), ..Default::default() })
//!     .unwrap();
//! reactor.run().unwrap();
//! ```

pub mod app;
pub mod capsule;
pub mod cgi;
pub mod config;
pub mod host;
mod line;
pub mod log;
pub mod path;
mod percent;
pub mod protocol;
pub mod request;
pub mod response;
pub mod static_files;
pub mod status;

pub use app::{
    Body, BodyStream, FnStream, Handler, Process, ReadStream, Request as AppRequest, Response,
    RouteError, Router,
};
pub use capsule::EmbeddedCapsule;
pub use cgi::{cgi_env, Cgi};
pub use config::{
    GeminiConfig, GeminiConfigError, Root, VirtualHost, DEFAULT_CGI_DIR, DEFAULT_CGI_TIMEOUT,
    DEFAULT_CHUNK_SIZE, DEFAULT_HOSTNAME, DEFAULT_INDEX_FILE, DEFAULT_PORT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_ROOT, DEFAULT_SEND_TIMEOUT,
};
pub use log::escape_for_log;
pub use protocol::{default_handler, GeminiConnection, GeminiFactory};
pub use static_files::{mime_for, StaticFiles};

pub use host::{normalise_host, Host, HostError, HostPolicy, HostRefusal};
pub use path::{safe_segments, PathError, SafePath};
pub use request::{parse_request, Parsed, Request, RequestError, MAX_REQUEST_URL};
pub use response::{
    parse_response_header, parse_response_header_lenient, HeaderError, ParsedHeader,
    ResponseHeader, MAX_META,
};
pub use status::{Category, Status};
