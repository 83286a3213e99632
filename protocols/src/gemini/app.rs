//! The application API, Jetforce's `JetforceApplication` in Rust: a
//! [`Handler`] gets a [`Request`] (URL, path, query, peer, TLS facts with the
//! client certificate) and returns a [`Response`] (status, meta, and for 20 a
//! [`Body`]: bytes, a file, or a [`BodyStream`] pulled as the client drains).
//!
//! Handlers compose: a [`Router`] tries its routes (exact paths, prefixes,
//! and patterns with captures) in the order they were added, then its
//! fallback. Static files ([`StaticFiles`](super::static_files::StaticFiles))
//! and CGI ([`Cgi`](super::cgi::Cgi)) are handlers too, so "routes first,
//! then the static directory" is
//!
//! ```no_run
//! use torsion_protocols::gemini::{Response, Router, StaticFiles, VirtualHost, Root};
//!
//! let vhost = VirtualHost::new("localhost", Root::Dir("/var/gemini".into()));
//! let app = Router::new()
//!     .exact("/hello", |_: &torsion_protocols::gemini::AppRequest| {
//!         Response::gemtext("# Hello\n")
//!     })
//!     .fallback(StaticFiles::new(&vhost).unwrap());
//! ```
//!
//! Handlers run on the reactor's thread: they must not block. Answer at
//! once, or return a [`BodyStream`] that produces the body in steps.
//! Shared state lives in the handler behind a `RefCell` (one thread, no
//! locks).

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::process::Command;
use std::rc::Rc;

use torsion_reactor::tls::{PeerCertInfo, TlsInfo};
use torsion_reactor::PeerAddr;
use url::Url;

use super::host::Host;
use super::percent;
use super::request::{self, parse_request, Parsed, RequestError};
use super::status::Status;

/// One request as an application sees it.
#[derive(Debug, Clone)]
pub struct Request {
    line: request::Request,
    peer: PeerAddr,
    tls: Option<TlsInfo>,
    server_name: Rc<str>,
    port: u16,
    captures: Vec<(Box<str>, String)>,
}

impl Request {
    /// A request for `line` (already checked against the virtual host) from
    /// `peer`, served as `server_name` on `port`. The protocol builds these;
    /// tests and other front ends may too.
    pub fn new(
        line: request::Request,
        peer: PeerAddr,
        tls: Option<TlsInfo>,
        server_name: Rc<str>,
        port: u16,
    ) -> Self {
        Request {
            line,
            peer,
            tls,
            server_name,
            port,
            captures: Vec::new(),
        }
    }

    /// Parses `url` (without CR LF) into a request from `peer` without TLS:
    /// for tests of handlers.
    pub fn parse(url: &str, peer: PeerAddr) -> Result<Self, RequestError> {
        let mut line = Vec::with_capacity(url.len() + 2);
        line.extend_from_slice(url.as_bytes());
        line.extend_from_slice(b"\r\n");
        match parse_request(&line)? {
            Parsed::Complete { request, .. } => {
                let name: Rc<str> = Rc::from(request.host().to_string());
                let port = request.port().unwrap_or(super::config::DEFAULT_PORT);
                Ok(Request::new(request, peer, None, name, port))
            }
            Parsed::Partial => Err(RequestError::InvalidCharacter),
        }
    }

    /// The URL requested.
    pub fn url(&self) -> &Url {
        self.line.url()
    }

    /// The URL's host in canonical form.
    pub fn host(&self) -> &Host {
        self.line.host()
    }

    /// The path, still percent-encoded; `/` when the URL has none.
    pub fn path(&self) -> &str {
        self.line.path()
    }

    /// The query, still percent-encoded (what the client sent after `?`).
    pub fn query(&self) -> Option<&str> {
        self.line.query()
    }

    /// The query percent-decoded: the user's answer to a `10`/`11` prompt.
    /// `None` when there is no query or it does not decode to UTF-8.
    pub fn input(&self) -> Option<String> {
        let raw = self.query()?;
        let mut out = Vec::with_capacity(raw.len());
        percent::decode_into(raw.as_bytes(), &mut out).ok()?;
        String::from_utf8(out).ok()
    }

    /// The request line as received, without CR LF (escape before logging).
    pub fn as_str(&self) -> &str {
        self.line.as_str()
    }

    /// The codec's view of the request line.
    pub fn line(&self) -> &request::Request {
        &self.line
    }

    /// The client's address.
    pub fn peer(&self) -> PeerAddr {
        self.peer
    }

    /// The TLS session's facts; `None` only for requests not made over TLS
    /// (tests).
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// The client certificate, when the client presented one.
    pub fn client_cert(&self) -> Option<&PeerCertInfo> {
        self.tls.as_ref().and_then(|t| t.peer_cert.as_ref())
    }

    /// The virtual host's name (`SERVER_NAME`).
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The listener's port (`SERVER_PORT`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The value a [`Router`] pattern captured as `name` (percent-decoded).
    pub fn capture(&self, name: &str) -> Option<&str> {
        self.captures
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A copy carrying `captures`, for the handler a pattern route chose.
    fn with_captures(&self, captures: Vec<(Box<str>, String)>) -> Request {
        let mut copy = self.clone();
        copy.captures = captures;
        copy
    }
}

/// Produces a response body step by step, as the client drains it.
///
/// The protocol calls [`BodyStream::fill`] only while the connection's
/// output queue has room, so a stream never makes the server buffer more
/// than about a high water mark per connection, however large the body.
pub trait BodyStream {
    /// Appends the next part of the body to `out`, at most `max` bytes.
    /// Appending nothing ends the body. An error ends the response at once
    /// (the header has been sent, so the client sees a short body) and is
    /// logged. Must not block.
    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<()>;
}

/// A body read from any [`Read`] in chunks (files: reading a regular file
/// in bounded chunks does not stall the loop for long).
#[derive(Debug)]
pub struct ReadStream<R>(pub R);

impl<R: Read> BodyStream for ReadStream<R> {
    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<()> {
        let start = out.len();
        out.resize(start.saturating_add(max), 0);
        let result = loop {
            match out.get_mut(start..) {
                Some(room) => match self.0.read(room) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                },
                None => break Ok(0),
            }
        };
        let n = *result.as_ref().unwrap_or(&0);
        out.truncate(start.saturating_add(n));
        result.map(|_| ())
    }
}

/// A body produced by a closure with [`BodyStream::fill`]'s contract.
pub struct FnStream<F>(pub F);

impl<F: FnMut(&mut Vec<u8>, usize) -> io::Result<()>> BodyStream for FnStream<F> {
    fn fill(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<()> {
        (self.0)(out, max)
    }
}

/// The body of a `20` response.
pub enum Body {
    /// No body.
    Empty,
    /// All of it, now (keep it small: it is queued at once).
    Bytes(Cow<'static, [u8]>),
    /// Produced as the client drains (files are streams).
    Stream(Box<dyn BodyStream>),
}

impl Body {
    /// A body pulled from `f` (see [`BodyStream::fill`]).
    pub fn from_fn(f: impl FnMut(&mut Vec<u8>, usize) -> io::Result<()> + 'static) -> Body {
        Body::Stream(Box::new(FnStream(f)))
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Body::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Bytes(Cow::Owned(v))
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::Bytes(Cow::Owned(s.into_bytes()))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::Bytes(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Body::Bytes(Cow::Borrowed(s))
    }
}

impl From<File> for Body {
    fn from(f: File) -> Self {
        Body::Stream(Box::new(ReadStream(f)))
    }
}

/// A program whose standard output is the whole response, header included
/// (CGI). The protocol runs it through the reactor and checks its header.
#[derive(Debug)]
pub struct Process {
    /// The command, with its environment and working directory set.
    pub command: Command,
    /// A name for the log (the script's URL path).
    pub name: String,
}

/// What a handler answers.
#[derive(Debug)]
pub struct Response {
    kind: ResponseKind,
}

/// The two shapes of a response.
#[derive(Debug)]
pub(crate) enum ResponseKind {
    /// A header chosen by the application, and the body for 20.
    Reply {
        status: Status,
        meta: Cow<'static, str>,
        body: Body,
    },
    /// Run a program whose output is the response.
    Process(Process),
}

impl Response {
    /// A header without a body. The meta is checked when the response is
    /// sent: an invalid one (control characters, over 1024 bytes, empty for
    /// 1x/3x) becomes `42` and a log line.
    pub fn new(status: Status, meta: impl Into<Cow<'static, str>>) -> Self {
        Response {
            kind: ResponseKind::Reply {
                status,
                meta: meta.into(),
                body: Body::Empty,
            },
        }
    }

    /// `20` with this MIME type and body.
    pub fn success(mime: impl Into<Cow<'static, str>>, body: impl Into<Body>) -> Self {
        Response::new(Status::Success, mime).with_body(body)
    }

    /// `20 text/gemini` with this text.
    pub fn gemtext(text: impl Into<Body>) -> Self {
        Response::success("text/gemini", text)
    }

    /// `10`: ask the user for a line of input, which comes back as the query
    /// of a new request for the same URL (see [`Request::input`]).
    pub fn input(prompt: impl Into<Cow<'static, str>>) -> Self {
        Response::new(Status::Input, prompt)
    }

    /// `11`: like [`Response::input`] for secrets (not echoed).
    pub fn sensitive_input(prompt: impl Into<Cow<'static, str>>) -> Self {
        Response::new(Status::SensitiveInput, prompt)
    }

    /// `30`: temporary redirect.
    pub fn redirect(url: impl Into<Cow<'static, str>>) -> Self {
        Response::new(Status::RedirectTemporary, url)
    }

    /// `31`: permanent redirect.
    pub fn redirect_permanent(url: impl Into<Cow<'static, str>>) -> Self {
        Response::new(Status::RedirectPermanent, url)
    }

    /// `51 Not found`.
    pub fn not_found() -> Self {
        Response::new(Status::NotFound, "Not found")
    }

    /// `60`: a client certificate is needed for this resource.
    pub fn certificate_required(message: impl Into<Cow<'static, str>>) -> Self {
        Response::new(Status::ClientCertificateRequired, message)
    }

    /// `61`: the certificate presented is not allowed here.
    pub fn certificate_not_authorised(message: impl Into<Cow<'static, str>>) -> Self {
        Response::new(Status::CertificateNotAuthorised, message)
    }

    /// Runs `command` and sends what it writes (a Gemini header, then for 20
    /// the body), as a CGI script. `name` appears in the log.
    pub fn process(command: Command, name: impl Into<String>) -> Self {
        Response {
            kind: ResponseKind::Process(Process {
                command,
                name: name.into(),
            }),
        }
    }

    /// Replaces the body (sent only with status 20).
    pub fn with_body(mut self, new: impl Into<Body>) -> Self {
        if let ResponseKind::Reply { body, .. } = &mut self.kind {
            *body = new.into();
        }
        self
    }

    /// The status, unless a process will choose it.
    pub fn status(&self) -> Option<Status> {
        match &self.kind {
            ResponseKind::Reply { status, .. } => Some(*status),
            ResponseKind::Process(_) => None,
        }
    }

    /// The meta, unless a process will choose it.
    pub fn meta(&self) -> Option<&str> {
        match &self.kind {
            ResponseKind::Reply { meta, .. } => Some(meta),
            ResponseKind::Process(_) => None,
        }
    }

    /// The body, unless a process will write it.
    pub fn body(&self) -> Option<&Body> {
        match &self.kind {
            ResponseKind::Reply { body, .. } => Some(body),
            ResponseKind::Process(_) => None,
        }
    }

    /// The process to run, if this response is one.
    pub fn as_process(&self) -> Option<&Process> {
        match &self.kind {
            ResponseKind::Process(p) => Some(p),
            ResponseKind::Reply { .. } => None,
        }
    }

    pub(crate) fn into_kind(self) -> ResponseKind {
        self.kind
    }
}

/// Something that answers requests: a closure `Fn(&Request) -> Response`,
/// a [`Router`], [`StaticFiles`](super::static_files::StaticFiles),
/// [`Cgi`](super::cgi::Cgi), or your own type.
pub trait Handler {
    /// Answers `request`. Runs on the reactor thread: must not block.
    fn handle(&self, request: &Request) -> Response;
}

impl<F: Fn(&Request) -> Response> Handler for F {
    fn handle(&self, request: &Request) -> Response {
        self(request)
    }
}

impl<H: Handler + ?Sized> Handler for Rc<H> {
    fn handle(&self, request: &Request) -> Response {
        (**self).handle(request)
    }
}

/// A route pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The pattern does not start with `/`.
    NotAbsolute,
    /// A `{` without its `}`, or text around a capture in one segment.
    BadCapture,
    /// `{*rest}` is not the last segment.
    RestNotLast,
    /// A capture without a name.
    EmptyName,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteError::NotAbsolute => "route pattern must start with /",
            RouteError::BadCapture => "a capture must be a whole segment: {name}",
            RouteError::RestNotLast => "{*name} must be the last segment",
            RouteError::EmptyName => "capture without a name",
        })
    }
}

impl std::error::Error for RouteError {}

/// One segment of a pattern route.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Must equal the request's segment as written (percent-encoded).
    Literal(String),
    /// `{name}`: any one non-empty segment, captured decoded.
    Capture(String),
    /// `{*name}`: the rest of the path (possibly empty), captured decoded.
    Rest(String),
}

/// How a route matches a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Exact(String),
    Prefix(String),
    Pattern(Vec<Segment>),
}

/// Routes requests to handlers by path: exact paths, prefixes, and patterns
/// with captures (`/users/{name}`, `/files/{*rest}`), tried in the order they
/// were added; then the fallback (or `51 Not found`).
///
/// Paths are compared as the client wrote them (percent-encoded), so
/// register ASCII paths; captures are percent-decoded (a capture that does
/// not decode to UTF-8 does not match).
#[derive(Default)]
pub struct Router {
    routes: Vec<(Matcher, Rc<dyn Handler>)>,
    fallback: Option<Rc<dyn Handler>>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self.routes.iter().map(|(m, _)| m).collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Router {
    /// A router without routes (everything gets `51`).
    pub fn new() -> Self {
        Router::default()
    }

    /// Answers exactly `path` (`/` for the root) with `handler`.
    pub fn exact(mut self, path: &str, handler: impl Handler + 'static) -> Self {
        self.routes
            .push((Matcher::Exact(path.to_string()), Rc::new(handler)));
        self
    }

    /// Answers every path starting with `prefix` with `handler`.
    pub fn prefix(mut self, prefix: &str, handler: impl Handler + 'static) -> Self {
        self.routes
            .push((Matcher::Prefix(prefix.to_string()), Rc::new(handler)));
        self
    }

    /// Answers paths matching `pattern`: segments separated by `/`, each a
    /// literal, `{name}` (one segment) or, last, `{*name}` (the rest).
    pub fn pattern(
        mut self,
        pattern: &str,
        handler: impl Handler + 'static,
    ) -> Result<Self, RouteError> {
        let segments = parse_pattern(pattern)?;
        self.routes
            .push((Matcher::Pattern(segments), Rc::new(handler)));
        Ok(self)
    }

    /// Answers what no route matched (e.g. the static directory).
    pub fn fallback(mut self, handler: impl Handler + 'static) -> Self {
        self.fallback = Some(Rc::new(handler));
        self
    }
}

impl Handler for Router {
    fn handle(&self, request: &Request) -> Response {
        let path = request.path();
        for (matcher, handler) in &self.routes {
            match matcher {
                Matcher::Exact(p) if p == path => return handler.handle(request),
                Matcher::Prefix(p) if path.starts_with(p.as_str()) => {
                    return handler.handle(request)
                }
                Matcher::Pattern(segments) => {
                    if let Some(captures) = match_pattern(segments, path) {
                        return handler.handle(&request.with_captures(captures));
                    }
                }
                _ => {}
            }
        }
        match &self.fallback {
            Some(handler) => handler.handle(request),
            None => Response::not_found(),
        }
    }
}

fn parse_pattern(pattern: &str) -> Result<Vec<Segment>, RouteError> {
    let rest = pattern.strip_prefix('/').ok_or(RouteError::NotAbsolute)?;
    let raw: Vec<&str> = rest.split('/').collect();
    let count = raw.len();
    let mut segments = Vec::with_capacity(count);
    for (i, seg) in raw.into_iter().enumerate() {
        if let Some(inner) = seg.strip_prefix('{') {
            let name = inner.strip_suffix('}').ok_or(RouteError::BadCapture)?;
            if let Some(name) = name.strip_prefix('*') {
                if i + 1 != count {
                    return Err(RouteError::RestNotLast);
                }
                if name.is_empty() {
                    return Err(RouteError::EmptyName);
                }
                segments.push(Segment::Rest(name.to_string()));
            } else {
                if name.is_empty() {
                    return Err(RouteError::EmptyName);
                }
                segments.push(Segment::Capture(name.to_string()));
            }
        } else if seg.contains(['{', '}']) {
            return Err(RouteError::BadCapture);
        } else {
            segments.push(Segment::Literal(seg.to_string()));
        }
    }
    Ok(segments)
}

fn decode(raw: &str) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    percent::decode_into(raw.as_bytes(), &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// The captures when `path` matches, `None` otherwise.
fn match_pattern(segments: &[Segment], path: &str) -> Option<Vec<(Box<str>, String)>> {
    let mut rest = path.strip_prefix('/')?;
    let mut captures = Vec::new();
    let last = segments.len().checked_sub(1)?;
    for (i, segment) in segments.iter().enumerate() {
        if let Segment::Rest(name) = segment {
            captures.push((name.as_str().into(), decode(rest)?));
            return Some(captures);
        }
        let (here, after) = match rest.split_once('/') {
            Some((here, after)) if i < last => (here, after),
            Some(_) => return None,
            None if i == last => (rest, ""),
            None => return None,
        };
        match segment {
            Segment::Literal(lit) if lit == here => {}
            Segment::Capture(name) if !here.is_empty() => {
                captures.push((name.as_str().into(), decode(here)?));
            }
            _ => return None,
        }
        rest = after;
    }
    Some(captures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(url: &str) -> Request {
        Request::parse(url, PeerAddr::Tcp("127.0.0.1:5000".parse().unwrap())).unwrap()
    }

    fn text(r: &Response) -> String {
        match r.body() {
            Some(Body::Bytes(b)) => String::from_utf8(b.to_vec()).unwrap(),
            _ => String::new(),
        }
    }

    #[test]
    fn router_tries_routes_in_order_then_fallback() {
        let router = Router::new()
            .exact("/", |_: &Request| Response::gemtext("root"))
            .exact("/a", |_: &Request| Response::gemtext("exact a"))
            .prefix("/a", |_: &Request| Response::gemtext("prefix a"))
            .pattern("/u/{name}/x", |r: &Request| {
                Response::gemtext(format!("user {}", r.capture("name").unwrap()))
            })
            .unwrap()
            .pattern("/files/{*rest}", |r: &Request| {
                Response::gemtext(format!("rest [{}]", r.capture("rest").unwrap()))
            })
            .unwrap()
            .fallback(|_: &Request| Response::new(Status::Gone, "gone"));
        assert_eq!(text(&router.handle(&req("gemini://h/"))), "root");
        assert_eq!(text(&router.handle(&req("gemini://h"))), "root");
        assert_eq!(text(&router.handle(&req("gemini://h/a"))), "exact a");
        assert_eq!(text(&router.handle(&req("gemini://h/abc"))), "prefix a");
        assert_eq!(
            text(&router.handle(&req("gemini://h/u/%C3%A9mile/x"))),
            "user émile"
        );
        assert_eq!(
            router.handle(&req("gemini://h/u//x")).status(),
            Some(Status::Gone)
        );
        assert_eq!(
            router.handle(&req("gemini://h/u/bob/x/y")).status(),
            Some(Status::Gone)
        );
        assert_eq!(
            text(&router.handle(&req("gemini://h/files/a/b%20c"))),
            "rest [a/b c]"
        );
        assert_eq!(text(&router.handle(&req("gemini://h/files/"))), "rest []");
        assert_eq!(
            router.handle(&req("gemini://h/zzz")).status(),
            Some(Status::Gone)
        );
        assert_eq!(
            Router::new().handle(&req("gemini://h/")).status(),
            Some(Status::NotFound)
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        let h = |_: &Request| Response::not_found();
        assert_eq!(
            Router::new().pattern("a/{x}", h).unwrap_err(),
            RouteError::NotAbsolute
        );
        assert_eq!(
            Router::new().pattern("/{*x}/y", h).unwrap_err(),
            RouteError::RestNotLast
        );
        assert_eq!(
            Router::new().pattern("/{x", h).unwrap_err(),
            RouteError::BadCapture
        );
        assert_eq!(
            Router::new().pattern("/a{x}", h).unwrap_err(),
            RouteError::BadCapture
        );
        assert_eq!(
            Router::new().pattern("/{}", h).unwrap_err(),
            RouteError::EmptyName
        );
    }

    #[test]
    fn helpers_set_status_and_meta() {
        let r = Response::input("Name?");
        assert_eq!((r.status(), r.meta()), (Some(Status::Input), Some("Name?")));
        let r = Response::sensitive_input("Password?");
        assert_eq!(r.status(), Some(Status::SensitiveInput));
        let r = Response::redirect("gemini://h/x");
        assert_eq!(r.status(), Some(Status::RedirectTemporary));
        let r = Response::redirect_permanent("/x/");
        assert_eq!(r.status(), Some(Status::RedirectPermanent));
        let r = Response::certificate_required("Need a cert");
        assert_eq!(r.status(), Some(Status::ClientCertificateRequired));
        let r = Response::process(Command::new("true"), "/cgi-bin/x");
        assert!(r.status().is_none() && r.as_process().is_some());
    }

    #[test]
    fn input_is_decoded_query() {
        assert_eq!(
            req("gemini://h/s?hello%20w%C3%B6rld").input().as_deref(),
            Some("hello wörld")
        );
        assert_eq!(req("gemini://h/s?%FF").input(), None);
        assert_eq!(req("gemini://h/s").input(), None);
        assert_eq!(req("gemini://h/s?").input().as_deref(), Some(""));
    }

    #[test]
    fn read_stream_fills_in_bounded_chunks() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut s = ReadStream(&data[..]);
        let mut out = Vec::new();
        s.fill(&mut out, 40).unwrap();
        assert_eq!(out.len(), 40);
        s.fill(&mut out, 40).unwrap();
        s.fill(&mut out, 40).unwrap();
        assert_eq!(out, data);
        let before = out.len();
        s.fill(&mut out, 40).unwrap();
        assert_eq!(out.len(), before, "end of body appends nothing");
    }
}
