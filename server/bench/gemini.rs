//! `gemini://`: one request per TLS connection, as Gemini does — connect,
//! handshake, send `URL\r\n`, read the header and the body to EOF. The
//! operation completes when the server closes; its status class is counted.
//! With `--expect-body`/`--expect-bytes` the body of every response whose
//! status counts as success is compared as it arrives ([`super::body`]).

use std::rc::Rc;

use torsion_protocols::gemini::{parse_response_header_lenient, ParsedHeader};
use torsion_reactor::Transport;

use super::body::{BodyCursor, Expected};
use super::run::ErrorKind;
use super::worker::{Mode, Ops};

/// The Gemini request line for `url`.
pub fn request(url: &str) -> Rc<[u8]> {
    let mut r = Vec::with_capacity(url.len() + 2);
    r.extend_from_slice(url.as_bytes());
    r.extend_from_slice(b"\r\n");
    r.into()
}

/// Reads a response header fed in pieces, remembering the start of a header
/// split across reads. The buffer keeps its capacity across connections.
#[derive(Debug, Default)]
pub struct HeaderReader {
    head: Vec<u8>,
    /// The status code, once the header is complete.
    status: Option<u8>,
}

impl HeaderReader {
    /// Feeds bytes; returns the status once the header is complete (and on
    /// every later call), with the body bytes in `data`: what follows the
    /// header once it is complete (all of `data` after that), nothing
    /// before. A malformed header is an error.
    pub fn feed_split<'d>(&mut self, data: &'d [u8]) -> Result<(Option<u8>, &'d [u8]), ErrorKind> {
        if self.status.is_some() {
            return Ok((self.status, data));
        }
        let had = self.head.len();
        let parsed = if had == 0 {
            match parse_response_header_lenient(data) {
                Ok(ParsedHeader::Partial) => {
                    self.head.extend_from_slice(data);
                    return Ok((None, &[]));
                }
                other => other,
            }
        } else {
            self.head.extend_from_slice(data);
            parse_response_header_lenient(&self.head)
        };
        match parsed {
            Ok(ParsedHeader::Complete { header, consumed }) => {
                self.status = Some(header.status.code());
                // A buffered head was partial, so its end is in `data`.
                let body = data.get(consumed.saturating_sub(had)..).unwrap_or_default();
                Ok((self.status, body))
            }
            Ok(ParsedHeader::Partial) => Ok((None, &[])),
            Err(_) => Err(ErrorKind::BadResponse),
        }
    }

    /// The status, if the header is complete.
    pub fn status(&self) -> Option<u8> {
        self.status
    }

    /// Forgets the response (keeps the buffer).
    pub fn reset(&mut self) {
        self.head.clear();
        self.status = None;
    }
}

/// The Gemini client of one worker.
#[derive(Debug)]
pub struct Gemini {
    request: Rc<[u8]>,
    reader: HeaderReader,
    /// The body check, with `--expect-body` / `--expect-bytes`.
    body: Option<BodyCursor>,
}

impl Gemini {
    /// A client sending `request` (from [`request`], shared by all),
    /// checking every successful body against `expected` when given.
    pub fn new(request: Rc<[u8]>, expected: Option<Rc<Expected>>) -> Self {
        Gemini {
            request,
            reader: HeaderReader::default(),
            body: expected.map(BodyCursor::new),
        }
    }
}

impl Mode for Gemini {
    fn send(&mut self, t: &mut Transport<'_>) {
        t.write(&self.request);
    }
    fn received(
        &mut self,
        _t: &mut Transport<'_>,
        ops: &mut Ops,
        data: &mut [u8],
    ) -> Result<(), ErrorKind> {
        if !ops.busy() {
            return Err(ErrorKind::BadResponse);
        }
        let (status, body) = self.reader.feed_split(data)?;
        if let (Some(_), Some(cursor)) = (status, &mut self.body) {
            cursor.feed(body);
        }
        Ok(())
    }
    fn eof(&mut self, ops: &mut Ops) -> Result<(), ErrorKind> {
        match self.reader.status() {
            Some(code) if ops.busy() => {
                let class = code / 10;
                if let Some(cursor) = &mut self.body {
                    if !cursor.finish() && ops.expects(class) {
                        return Err(ErrorKind::Body);
                    }
                }
                ops.complete(Some(class));
                Ok(())
            }
            _ => Err(ErrorKind::Closed),
        }
    }
    fn reset(&mut self) {
        self.reader.reset();
        if let Some(cursor) = &mut self.body {
            cursor.reset();
        }
    }
    fn take(&mut self) -> Self {
        Gemini {
            request: Rc::clone(&self.request),
            reader: HeaderReader {
                head: std::mem::take(&mut self.reader.head),
                status: None,
            },
            body: self.body.take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(pieces: &[&[u8]]) -> Result<Option<u8>, ErrorKind> {
        let mut r = HeaderReader::default();
        let mut last = Ok(None);
        for p in pieces {
            last = r.status_after(p);
            if last.is_err() {
                break;
            }
        }
        last
    }

    impl HeaderReader {
        fn status_after(&mut self, data: &[u8]) -> Result<Option<u8>, ErrorKind> {
            self.feed_split(data).map(|(status, _)| status)
        }
    }

    #[test]
    fn request_line() {
        assert_eq!(&*request("gemini://h/"), b"gemini://h/\r\n");
    }

    #[test]
    fn whole_and_byte_at_a_time() {
        let resp = b"20 text/gemini\r\nhello";
        assert_eq!(feed_all(&[resp]), Ok(Some(20)));
        let singles: Vec<&[u8]> = resp.chunks(1).collect();
        assert_eq!(feed_all(&singles), Ok(Some(20)));
        assert_eq!(feed_all(&[b"51 not found\r\n"]), Ok(Some(51)));
        assert_eq!(feed_all(&[b"31 gemini://x/\r", b"\n"]), Ok(Some(31)));
        // A future code in a known class reads as its class.
        assert_eq!(feed_all(&[b"29 x\r\n"]), Ok(Some(20)));
    }

    #[test]
    fn partial_and_garbage() {
        assert_eq!(feed_all(&[b"20 text/gem"]), Ok(None));
        assert_eq!(
            feed_all(&[b"HTTP/1.1 200 OK\r\n"]),
            Err(ErrorKind::BadResponse)
        );
        assert_eq!(feed_all(&[b"2", b"x\r\n"]), Err(ErrorKind::BadResponse));
        let long = vec![b'a'; 5000];
        assert_eq!(feed_all(&[b"20 ", &long]), Err(ErrorKind::BadResponse));
    }

    /// The body bytes `feed_split` hands out, over all pieces.
    fn body_of(pieces: &[&[u8]]) -> (Option<u8>, Vec<u8>) {
        let mut r = HeaderReader::default();
        let mut body = Vec::new();
        let mut status = None;
        for p in pieces {
            let (s, b) = r.feed_split(p).unwrap();
            status = s;
            body.extend_from_slice(b);
        }
        (status, body)
    }

    #[test]
    fn feed_split_hands_out_exactly_the_body() {
        let resp = b"20 application/octet-stream\r\n\x00body\r\nbytes";
        let want = (Some(20), b"\x00body\r\nbytes".to_vec());
        assert_eq!(body_of(&[resp]), want);
        let singles: Vec<&[u8]> = resp.chunks(1).collect();
        assert_eq!(body_of(&singles), want, "byte at a time");
        for i in 0..=resp.len() {
            let (a, b) = resp.split_at(i);
            assert_eq!(body_of(&[a, b]), want, "split at {i}");
        }
        assert_eq!(body_of(&[b"51 gone\r\n"]), (Some(51), Vec::new()));
        assert_eq!(body_of(&[b"20 text/gem"]), (None, Vec::new()));
    }

    #[test]
    fn reset_forgets_the_response() {
        let mut r = HeaderReader::default();
        assert_eq!(r.status_after(b"20 t\r\n"), Ok(Some(20)));
        assert_eq!(r.status_after(b"more body"), Ok(Some(20)));
        r.reset();
        assert_eq!(r.status(), None);
        assert_eq!(r.status_after(b"40 busy\r\n"), Ok(Some(40)));
    }
}
