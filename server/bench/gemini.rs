//! `gemini://`: one request per TLS connection, as Gemini does — connect,
//! handshake, send `URL\r\n`, read the header and the body to EOF. The
//! operation completes when the server closes; its status class is counted.

use std::rc::Rc;

use torsion_protocols::gemini::{parse_response_header_lenient, ParsedHeader};
use torsion_reactor::Transport;

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
    /// every later call: body bytes are skipped). A malformed header is an
    /// error.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<u8>, ErrorKind> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let parsed = if self.head.is_empty() {
            match parse_response_header_lenient(data) {
                Ok(ParsedHeader::Partial) => {
                    self.head.extend_from_slice(data);
                    return Ok(None);
                }
                other => other,
            }
        } else {
            self.head.extend_from_slice(data);
            parse_response_header_lenient(&self.head)
        };
        match parsed {
            Ok(ParsedHeader::Complete { header, .. }) => {
                self.status = Some(header.status.code());
            }
            Ok(ParsedHeader::Partial) => {}
            Err(_) => return Err(ErrorKind::BadResponse),
        }
        Ok(self.status)
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
}

impl Gemini {
    /// A client sending `request` (from [`request`], shared by all).
    pub fn new(request: Rc<[u8]>) -> Self {
        Gemini {
            request,
            reader: HeaderReader::default(),
        }
    }
}

impl Mode for Gemini {
    fn connected(&mut self, _t: &mut Transport<'_>, _ops: &mut Ops) {}
    fn ready(&self) -> bool {
        true
    }
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
        self.reader.feed(data).map(|_| ())
    }
    fn eof(&mut self, ops: &mut Ops) -> Result<(), ErrorKind> {
        match self.reader.status() {
            Some(code) if ops.busy() => {
                ops.complete(Some(code / 10));
                Ok(())
            }
            _ => Err(ErrorKind::Closed),
        }
    }
    fn reset(&mut self) {
        self.reader.reset();
    }
    fn take(&mut self) -> Self {
        Gemini {
            request: Rc::clone(&self.request),
            reader: HeaderReader {
                head: std::mem::take(&mut self.reader.head),
                status: None,
            },
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
            last = r.feed(p);
            if last.is_err() {
                break;
            }
        }
        last
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

    #[test]
    fn reset_forgets_the_response() {
        let mut r = HeaderReader::default();
        assert_eq!(r.feed(b"20 t\r\n"), Ok(Some(20)));
        assert_eq!(r.feed(b"more body"), Ok(Some(20)));
        r.reset();
        assert_eq!(r.status(), None);
        assert_eq!(r.feed(b"40 busy\r\n"), Ok(Some(40)));
    }
}
