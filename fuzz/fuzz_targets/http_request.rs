//! The HTTP redirect listener's codec: `parse_head` (request line, headers,
//! framing), the body skipper (`Content-Length` and chunked), and the
//! redirect or error response written for each request.
//!
//! Input: 4 control bytes (two little-endian u16 cut offsets; the first
//! byte also sets the chunked decoder's budget), then the bytes a client
//! sends on one connection (possibly several pipelined requests).
//!
//! Properties:
//! - never panics;
//! - a connection model (parse a head, skip its body, repeat) fed the
//!   payload in three pieces cut at the chosen offsets sees the same
//!   sequence of requests and errors as when fed it whole;
//! - `Partial` is only ever answered below `MAX_HEAD` buffered bytes, and
//!   `consumed` never exceeds the buffer;
//! - the chunked decoder never consumes more than it is given, stops at the
//!   end of the body, and gives the same total, end and error whether the
//!   bytes come whole, in the three pieces, or one at a time;
//! - every redirect and error response is well formed: one status line,
//!   printable header values (no CR/LF injected into `Location`),
//!   `Content-Length` equal to the body, no body for `HEAD`.

#![no_main]

mod common;

use common::{after_head, control, three_pieces, CheckedResponse};
use libfuzzer_sys::fuzz_target;
use torsion_protocols::http::chunked::ChunkedSkipper;
use torsion_protocols::http::ChunkedError;
use torsion_protocols::http::{
    encode_error, encode_redirect, parse_head, redirect_for, BodyError, BodyFraming, BodySkipper,
    ConnectionTokens, HostKind, HttpError, Method, Parsed, RedirectConfig, Reply, RequestHead,
    Skipped, Version, MAX_HEAD, MAX_TARGET,
};

const DATE: &[u8] = b"Thu, 01 Jan 1970 00:00:00 GMT";

/// What the connection saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Head {
        method: Method,
        method_bytes: Vec<u8>,
        target: Vec<u8>,
        version: Version,
        host: Option<(Vec<u8>, HostKind, Option<u16>)>,
        connection: ConnectionTokens,
        body: BodyFraming,
        consumed: usize,
        response: Vec<u8>,
    },
    HeadError(HttpError),
    BodyRefused(BodyError),
    BodySkipped(u64),
    BodyError(BodyError),
}

enum State {
    Head,
    Body(BodySkipper, u64),
}

/// The connection's read loop, without the socket.
struct Connection {
    buf: Vec<u8>,
    state: State,
    seen: Vec<Seen>,
    closed: bool,
    config: RedirectConfig,
}

impl Connection {
    fn new() -> Self {
        Connection {
            buf: Vec::new(),
            state: State::Head,
            seen: Vec::new(),
            closed: false,
            config: RedirectConfig::default(),
        }
    }

    fn receive(&mut self, bytes: &[u8]) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(bytes);
        loop {
            match &mut self.state {
                State::Head => match parse_head(&self.buf) {
                    Ok(Parsed::Partial) => {
                        assert!(self.buf.len() < MAX_HEAD, "Partial with a full head buffer");
                        return;
                    }
                    Ok(Parsed::Complete { head, consumed }) => {
                        assert!(consumed > 0 && consumed <= self.buf.len().min(MAX_HEAD));
                        let seen = self.describe(&head, consumed);
                        self.seen.push(seen);
                        self.buf.drain(..consumed);
                        match BodySkipper::new(head.body()) {
                            Ok(skipper) => self.state = State::Body(skipper, 0),
                            Err(e) => {
                                self.seen.push(Seen::BodyRefused(e));
                                self.closed = true;
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        check_error(&e);
                        self.seen.push(Seen::HeadError(e));
                        self.closed = true;
                        return;
                    }
                },
                State::Body(skipper, total) => match skipper.feed(&self.buf) {
                    Ok(Skipped { consumed, done }) => {
                        assert!(consumed <= self.buf.len(), "skipped more than given");
                        if !done {
                            assert_eq!(consumed, self.buf.len(), "unfinished body left bytes");
                        }
                        self.buf.drain(..consumed);
                        *total += consumed as u64;
                        if !done {
                            return;
                        }
                        self.seen.push(Seen::BodySkipped(*total));
                        self.state = State::Head;
                    }
                    Err(e) => {
                        assert!(!e.reason().is_empty());
                        self.seen.push(Seen::BodyError(e));
                        self.closed = true;
                        return;
                    }
                },
            }
        }
    }

    /// Records a head, checking it and the response it gets.
    fn describe(&self, head: &RequestHead, consumed: usize) -> Seen {
        let buf = &self.buf[..consumed];
        let target = head.target(buf);
        assert!(!target.is_empty() && target.len() <= MAX_TARGET);
        let method_bytes = head.method_bytes(buf);
        match head.method() {
            Method::Get => assert_eq!(method_bytes, b"GET"),
            Method::Head => assert_eq!(method_bytes, b"HEAD"),
            Method::Other => assert!(method_bytes != b"GET" && method_bytes != b"HEAD"),
        }
        if head.version() == Version::Http11 {
            assert!(head.host(buf).is_some(), "HTTP/1.1 without Host accepted");
        }
        if let BodyFraming::ContentLength(n) = head.body() {
            assert!(n > 0);
        }

        // The response the listener would write.
        let mut response = Vec::new();
        let reply = Reply::for_request(head, DATE);
        match redirect_for(&self.config, head, buf) {
            Ok(redirect) => {
                encode_redirect(&mut response, &redirect, &reply);
                let checked = CheckedResponse::parse(&response, reply.head_only);
                assert_eq!(checked.status, 301);
                let location = checked.header("Location").expect("a Location");
                let mut expected = Vec::new();
                redirect.write_location(&mut expected);
                assert_eq!(location, expected.as_slice());
                assert!(location.len() <= redirect.location_len_bound());
                assert!(location.starts_with(b"https://"));
                assert!(
                    location.iter().all(|&b| (0x21..0x7F).contains(&b)),
                    "{location:?}"
                );
            }
            Err(e) => {
                check_error(&e);
                if let Some(status) = e.error_status() {
                    encode_error(&mut response, status, &reply);
                    let checked = CheckedResponse::parse(&response, reply.head_only);
                    assert_eq!(Some(checked.status), e.status());
                }
            }
        }

        Seen::Head {
            method: head.method(),
            method_bytes: method_bytes.to_vec(),
            target: target.to_vec(),
            version: head.version(),
            host: head
                .host(buf)
                .map(|h| (h.as_bytes().to_vec(), h.kind(), h.port())),
            connection: head.connection(),
            body: head.body(),
            consumed,
            response,
        }
    }
}

fn check_error(e: &HttpError) {
    match e.status() {
        None => assert!(matches!(
            e,
            HttpError::TlsHandshake | HttpError::Http2Preface
        )),
        Some(code) => assert!(matches!(code, 400 | 414 | 431), "{e:?} -> {code}"),
    }
    assert!(!e.reason().is_empty());
    if let Some(status) = e.error_status() {
        let mut out = Vec::new();
        encode_error(&mut out, status, &Reply::closing(DATE));
        CheckedResponse::parse(&out, false);
    }
}

/// How a chunked body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Complete after this many bytes.
    Done(usize),
    /// Everything given was consumed and more is needed.
    More(usize),
    /// Refused (how much was consumed before is not reported).
    Failed(ChunkedError),
}

/// Feeds a fresh chunked decoder `pieces` in order.
fn skip_chunked(budget: u64, pieces: &[&[u8]]) -> Chunked {
    let mut skipper = ChunkedSkipper::new(budget);
    let mut total = 0;
    for piece in pieces {
        match skipper.feed(piece) {
            Ok(n) => {
                assert!(
                    n <= piece.len(),
                    "chunked decoder consumed {n} of {}",
                    piece.len()
                );
                total += n;
                if skipper.is_done() {
                    // Done is final: nothing more is consumed.
                    assert_eq!(skipper.feed(b"0\r\n\r\n"), Ok(0));
                    return Chunked::Done(total);
                }
                assert_eq!(n, piece.len(), "unfinished chunked body left bytes");
            }
            Err(e) => {
                // An error is final too.
                assert_eq!(skipper.feed(b"0\r\n\r\n"), Err(e));
                assert!(!e.reason().is_empty());
                return Chunked::Failed(e);
            }
        }
    }
    Chunked::More(total)
}

fuzz_target!(|data: &[u8]| {
    let (ctl, payload) = control::<4>(data);

    let mut whole = Connection::new();
    whole.receive(payload);
    let mut pieces = Connection::new();
    for piece in three_pieces(ctl, payload) {
        pieces.receive(piece);
    }
    assert_eq!(whole.seen, pieces.seen, "whole and pieces disagree");
    assert_eq!(whole.closed, pieces.closed);
    if !whole.closed {
        // Both wait for more with the same bytes held.
        assert_eq!(whole.buf, pieces.buf);
    }

    // The chunked decoder on its own, on what follows the first head (or
    // the whole payload when there is none), with a budget small enough
    // to be reached.
    let body = after_head(payload).unwrap_or(payload);
    let budget = u64::from(ctl[0]) * 4;
    let at_once = skip_chunked(budget, &[body]);
    let cut = three_pieces(ctl, body);
    assert_eq!(skip_chunked(budget, &cut), at_once);
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(skip_chunked(budget, &bytes), at_once);
    if let Chunked::Done(n) = at_once {
        // What was consumed is the whole body: it alone decodes the same.
        assert_eq!(skip_chunked(budget, &[&body[..n]]), at_once);
    }
});
