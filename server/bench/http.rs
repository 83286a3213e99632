//! `http://` and `https://`: HTTP/1.1 GET, keep-alive (or one request per
//! connection with `--close`); follows nothing; counts status classes.
//!
//! Responses are read by [`ResponseReader`], a push parser (httparse for
//! the head; Content-Length, chunked or close-delimited bodies, handed out
//! piece by piece from the read buffer, never kept). With `--expect-body`
//! / `--expect-bytes` the body of every response whose status counts as
//! success is compared with the promised one ([`super::body`]).

use std::fmt;
use std::rc::Rc;

use torsion_protocols::http::chunked::{ChunkedError, ChunkedSkipper};
use torsion_reactor::Transport;

use super::body::{BodyCursor, Expected};
use super::run::ErrorKind;
use super::worker::{Mode, Ops};

/// Largest response head accepted: far above any real server's, bounds what
/// a broken one can make us buffer.
pub const MAX_HEAD: usize = 64 * 1024;

/// Most header fields parsed in a response head.
pub const MAX_HEADERS: usize = 64;

/// The GET request for `path` on `authority`, built once per run.
pub fn request(authority: &str, path: &str, close: bool) -> Rc<[u8]> {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: torsion-bench/{}\r\nAccept: */*\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if close {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes().into()
}

/// A complete response: what the harness needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

/// Why a response could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// The head is not valid HTTP/1.x.
    Head(httparse::Error),
    /// The head is longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// Content-Length is not a number, or two disagree.
    BadLength,
    /// The chunked body is malformed.
    Chunked(ChunkedError),
    /// The connection ended in the middle of a response.
    Truncated,
}

impl ResponseError {
    /// How the harness counts it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ResponseError::Truncated => ErrorKind::Closed,
            _ => ErrorKind::BadResponse,
        }
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Head(e) => write!(f, "bad response head: {e}"),
            ResponseError::HeadTooLarge => write!(f, "response head over {MAX_HEAD} bytes"),
            ResponseError::BadLength => f.write_str("bad Content-Length"),
            ResponseError::Chunked(e) => write!(f, "bad chunked body: {}", e.reason()),
            ResponseError::Truncated => f.write_str("connection closed mid-response"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// How the body of the current response ends.
#[derive(Debug, Clone)]
enum Body {
    Length(u64),
    Chunked(ChunkedSkipper),
    UntilClose,
}

#[derive(Debug, Clone)]
enum Stage {
    Head,
    Body(Body, Response),
}

/// Reads responses, one after the other, from bytes fed in any pieces.
#[derive(Debug)]
pub struct ResponseReader {
    /// The start of a head split across reads.
    head: Vec<u8>,
    stage: Stage,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new()
    }
}

/// What the head says about the body, or that it was informational.
enum HeadOutcome {
    Informational,
    Body(Body, Response),
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn interpret(resp: &httparse::Response<'_, '_>) -> Result<HeadOutcome, ResponseError> {
    let status = resp.code.unwrap_or(0);
    let version = resp.version.unwrap_or(1);
    if (100..200).contains(&status) && status != 101 {
        return Ok(HeadOutcome::Informational);
    }
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = version == 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(ResponseError::BadLength)?;
            if length.is_some_and(|l| l != v) {
                return Err(ResponseError::BadLength);
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only a final "chunked" delimits the body; anything else
            // reads to close.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                length = None;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                close = true;
            } else if has_token(h.value, "keep-alive") {
                close = false;
            }
        }
    }
    let no_body = status == 204 || status == 304 || status == 101;
    let body = if no_body {
        Body::Length(0)
    } else if chunked {
        Body::Chunked(ChunkedSkipper::new(u64::MAX))
    } else if let Some(n) = length {
        Body::Length(n)
    } else {
        close = true;
        Body::UntilClose
    };
    Ok(HeadOutcome::Body(
        body,
        Response {
            status,
            keep_alive: !close,
        },
    ))
}

impl ResponseReader {
    /// A reader waiting for a response head.
    pub fn new() -> Self {
        ResponseReader {
            head: Vec::new(),
            stage: Stage::Head,
        }
    }

    /// Forgets any partial response (a new connection); keeps the buffer.
    pub fn reset(&mut self) {
        self.head.clear();
        self.stage = Stage::Head;
    }

    /// Whether no response is partly read.
    #[cfg(test)]
    pub fn idle(&self) -> bool {
        matches!(self.stage, Stage::Head) && self.head.is_empty()
    }

    /// Consumes bytes from the start of `input`, handing the body bytes
    /// among them to `on_body` (in order, without the chunked framing).
    /// Returns how many were used and the response if one just completed;
    /// call again with the rest.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_body: &mut impl FnMut(&[u8]),
    ) -> Result<(usize, Option<Response>), ResponseError> {
        match &mut self.stage {
            Stage::Head => self.feed_head(input),
            Stage::Body(body, resp) => {
                let resp = *resp;
                let (used, done) = match body {
                    Body::Length(left) => {
                        let take =
                            usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                        *left -= take as u64;
                        on_body(input.get(..take).unwrap_or_default());
                        (take, *left == 0)
                    }
                    Body::Chunked(sk) => {
                        let used = sk
                            .feed_with(input, &mut *on_body)
                            .map_err(ResponseError::Chunked)?;
                        (used, sk.is_done())
                    }
                    Body::UntilClose => {
                        on_body(input);
                        (input.len(), false)
                    }
                };
                if done {
                    self.stage = Stage::Head;
                    return Ok((used, Some(resp)));
                }
                Ok((used, None))
            }
        }
    }

    fn feed_head(&mut self, input: &[u8]) -> Result<(usize, Option<Response>), ResponseError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let had = self.head.len();
        let (outcome, used) = {
            let buf: &[u8] = if had == 0 {
                input
            } else {
                let room = (MAX_HEAD + 1).saturating_sub(had);
                self.head
                    .extend_from_slice(input.get(..room.min(input.len())).unwrap_or_default());
                &self.head
            };
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    // A buffered head was partial, so it ends in `input`.
                    (Some(interpret(&resp)?), n.saturating_sub(had))
                }
                Ok(httparse::Status::Partial) => (None, input.len()),
                Err(e) => return Err(ResponseError::Head(e)),
            }
        };
        let Some(outcome) = outcome else {
            if had == 0 {
                self.head.extend_from_slice(input);
            }
            if self.head.len() > MAX_HEAD {
                return Err(ResponseError::HeadTooLarge);
            }
            return Ok((used, None));
        };
        self.head.clear();
        match outcome {
            HeadOutcome::Informational => Ok((used, None)),
            HeadOutcome::Body(Body::Length(0), resp) => Ok((used, Some(resp))),
            HeadOutcome::Body(body, resp) => {
                self.stage = Stage::Body(body, resp);
                Ok((used, None))
            }
        }
    }

    /// The peer closed: completes a close-delimited response; `Ok(None)`
    /// between responses; an error in the middle of one.
    pub fn eof(&mut self) -> Result<Option<Response>, ResponseError> {
        match &self.stage {
            Stage::Body(Body::UntilClose, resp) => {
                let resp = *resp;
                self.stage = Stage::Head;
                Ok(Some(resp))
            }
            Stage::Head if self.head.is_empty() => Ok(None),
            _ => Err(ResponseError::Truncated),
        }
    }
}

/// The HTTP client of one worker.
#[derive(Debug)]
pub struct Http {
    request: Rc<[u8]>,
    reader: ResponseReader,
    /// The body check, with `--expect-body` / `--expect-bytes`.
    body: Option<BodyCursor>,
}

impl Http {
    /// A client sending `request` (from [`request`], shared by all),
    /// checking every successful body against `expected` when given.
    pub fn new(request: Rc<[u8]>, expected: Option<Rc<Expected>>) -> Self {
        Http {
            request,
            reader: ResponseReader::new(),
            body: expected.map(BodyCursor::new),
        }
    }

    /// A response is complete: counts it, or fails it when its body is not
    /// the promised one.
    fn done(&mut self, ops: &mut Ops, r: Response) -> Result<(), ErrorKind> {
        let class = u8::try_from(r.status / 100).ok();
        if let Some(cursor) = &mut self.body {
            if !cursor.finish() && class.is_some_and(|c| ops.expects(c)) {
                return Err(ErrorKind::Body);
            }
        }
        ops.complete(class);
        Ok(())
    }
}

impl Mode for Http {
    fn send(&mut self, t: &mut Transport<'_>) {
        t.write(&self.request);
    }
    fn received(
        &mut self,
        _t: &mut Transport<'_>,
        ops: &mut Ops,
        data: &mut [u8],
    ) -> Result<(), ErrorKind> {
        let mut rest: &[u8] = data;
        while !rest.is_empty() {
            if !ops.busy() {
                return Err(ErrorKind::BadResponse);
            }
            let body = &mut self.body;
            let (used, done) = self
                .reader
                .feed(rest, &mut |b: &[u8]| {
                    if let Some(cursor) = body.as_mut() {
                        cursor.feed(b);
                    }
                })
                .map_err(|e| e.kind())?;
            rest = rest.get(used..).unwrap_or_default();
            if let Some(r) = done {
                self.done(ops, r)?;
                if !r.keep_alive {
                    ops.close_after_current();
                }
            } else if used == 0 {
                return Err(ErrorKind::BadResponse);
            }
        }
        Ok(())
    }
    fn eof(&mut self, ops: &mut Ops) -> Result<(), ErrorKind> {
        match self.reader.eof() {
            Ok(Some(r)) if ops.busy() => self.done(ops, r),
            Ok(_) => Ok(()),
            Err(e) => Err(e.kind()),
        }
    }
    fn reset(&mut self) {
        self.reader.reset();
        if let Some(cursor) = &mut self.body {
            cursor.reset();
        }
    }
    fn take(&mut self) -> Self {
        Http {
            request: Rc::clone(&self.request),
            reader: ResponseReader {
                head: std::mem::take(&mut self.reader.head),
                stage: Stage::Head,
            },
            body: self.body.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces`; returns the responses completed, the reader's
    /// answer at EOF, or the first error.
    fn read(pieces: &[&[u8]]) -> Result<(Vec<Response>, Option<Response>), ResponseError> {
        read_bodies(pieces).map(|(done, at_eof, _)| (done, at_eof))
    }

    /// As [`read`], with the body bytes handed out, one `Vec` per
    /// completed response (and one for a close-delimited one at EOF).
    #[allow(clippy::type_complexity)]
    fn read_bodies(
        pieces: &[&[u8]],
    ) -> Result<(Vec<Response>, Option<Response>, Vec<Vec<u8>>), ResponseError> {
        let mut r = ResponseReader::new();
        let mut out = Vec::new();
        let mut bodies = Vec::new();
        let mut body = Vec::new();
        for p in pieces {
            let mut rest = *p;
            while !rest.is_empty() {
                let (used, done) = r.feed(rest, &mut |b: &[u8]| body.extend_from_slice(b))?;
                if done.is_some() {
                    bodies.push(std::mem::take(&mut body));
                }
                rest = &rest[used..];
                out.extend(done);
                assert!(used > 0 || done.is_some(), "no progress");
            }
        }
        let at_eof = r.eof()?;
        if at_eof.is_some() {
            bodies.push(std::mem::take(&mut body));
        }
        Ok((out, at_eof, bodies))
    }

    /// The result of feeding `bytes` whole, checked against byte at a time
    /// and every two-piece split.
    fn all_ways(bytes: &[u8]) -> Result<(Vec<Response>, Option<Response>), ResponseError> {
        let whole = read(&[bytes]);
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read(&singles), whole, "byte at a time");
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(read(&[a, b]), whole, "split at {i}");
        }
        whole
    }

    /// The bodies of `bytes` fed whole, checked against byte at a time and
    /// every two-piece split.
    fn bodies_all_ways(bytes: &[u8]) -> Vec<Vec<u8>> {
        let whole = read_bodies(&[bytes]).unwrap();
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(read_bodies(&singles).unwrap(), whole, "byte at a time");
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            assert_eq!(read_bodies(&[a, b]).unwrap(), whole, "split at {i}");
        }
        whole.2
    }

    #[test]
    fn bodies_are_handed_out_without_framing() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(bodies_all_ways(two), vec![b"hello".to_vec(), Vec::new()]);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"a b\"\r\nhel\r\n\r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(
            bodies_all_ways(chunked),
            vec![b"hel\r\n0123456789".to_vec(), Vec::new()]
        );
        let until_close = b"HTTP/1.1 200 OK\r\n\r\nall of\r\nthis";
        assert_eq!(
            bodies_all_ways(until_close),
            vec![b"all of\r\nthis".to_vec()]
        );
        let informational =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(bodies_all_ways(informational), vec![b"ok".to_vec()]);
    }

    fn ok(status: u16) -> Response {
        Response {
            status,
            keep_alive: true,
        }
    }

    #[test]
    fn request_bytes() {
        let r = request("h:8080", "/x?y", false);
        let s = std::str::from_utf8(&r).unwrap();
        assert!(s.starts_with("GET /x?y HTTP/1.1\r\nHost: h:8080\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
        assert!(!s.contains("Connection"));
        let c = request("h", "/", true);
        assert!(std::str::from_utf8(&c)
            .unwrap()
            .contains("Connection: close\r\n"));
    }

    #[test]
    fn content_length_responses_back_to_back() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(all_ways(two), Ok((vec![ok(200), ok(404)], None)));
    }

    #[test]
    fn chunked_body() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(all_ways(r), Ok((vec![ok(200)], None)));
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let r = b"HTTP/1.1 200 OK\r\n\r\nbody until close";
        let closing = Response {
            status: 200,
            keep_alive: false,
        };
        assert_eq!(all_ways(r), Ok((vec![], Some(closing))));
    }

    #[test]
    fn connection_close_and_http10() {
        let r = b"HTTP/1.1 301 Moved\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        let (got, _) = all_ways(r).unwrap();
        assert_eq!(
            got,
            vec![Response {
                status: 301,
                keep_alive: false
            }]
        );
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(!all_ways(r).unwrap().0[0].keep_alive);
        let r = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert!(all_ways(r).unwrap().0[0].keep_alive);
    }

    #[test]
    fn informational_and_no_body_statuses() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n";
        assert_eq!(all_ways(r), Ok((vec![ok(204), ok(304)], None)));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            all_ways(b"garbage\r\n\r\n"),
            Err(ResponseError::Head(_))
        ));
        assert_eq!(
            all_ways(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ResponseError::BadLength)
        );
        assert_eq!(
            all_ways(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(ResponseError::BadLength)
        );
        assert!(matches!(
            all_ways(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(ResponseError::Chunked(_))
        ));
        assert_eq!(
            all_ways(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
            Err(ResponseError::Truncated)
        );
        assert_eq!(all_ways(b"HTTP/1.1 200"), Err(ResponseError::Truncated));
        assert_eq!(ResponseError::Truncated.kind(), ErrorKind::Closed);
        assert_eq!(ResponseError::BadLength.kind(), ErrorKind::BadResponse);
    }

    #[test]
    fn an_endless_head_is_refused() {
        let mut r = ResponseReader::new();
        let mut line = b"HTTP/1.1 200 OK\r\n".to_vec();
        line.extend(std::iter::repeat_n(b"X-A: b\r\n".as_slice(), 10_000).flatten());
        let mut result = Ok((0, None));
        for piece in line.chunks(1000) {
            result = r.feed(piece, &mut |_: &[u8]| {});
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(
            result,
            Err(ResponseError::HeadTooLarge) | Err(ResponseError::Head(_))
        ));
    }

    #[test]
    fn reset_forgets_a_partial_response() {
        let mut r = ResponseReader::new();
        r.feed(b"HTTP/1.1 200 OK\r\nContent-", &mut |_: &[u8]| {})
            .unwrap();
        assert!(!r.idle());
        r.reset();
        assert!(r.idle());
        assert_eq!(
            r.feed(
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                &mut |_: &[u8]| {}
            ),
            Ok((38, Some(ok(200))))
        );
    }
}
