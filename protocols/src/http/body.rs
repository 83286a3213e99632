//! Skipping request bodies the redirector does not read.
//!
//! A redirect is decided from the head alone, so a body is only in the way
//! of the next pipelined request. [`BodySkipper`] consumes exactly one body
//! and says where it ended. Bodies larger than [`MAX_SKIPPED_BODY`] are not
//! worth reading: [`BodySkipper::new`] refuses a large `Content-Length` up
//! front so the caller can answer with `Connection: close` and close instead.

use std::fmt;

use super::chunked::{ChunkedError, ChunkedSkipper};
use super::request::BodyFraming;

/// Most body bytes read and thrown away to keep a connection alive; beyond
/// this, closing is cheaper than reading.
pub const MAX_SKIPPED_BODY: u64 = 1 << 20;

/// Why a body cannot be skipped. The request has been (or is) answered from
/// its head; the caller answers with `Connection: close` if it has not
/// answered yet, and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is longer than [`MAX_SKIPPED_BODY`] (declared by
    /// `Content-Length`, or by the chunk sizes so far).
    TooLarge,
    /// The chunked framing is broken.
    Chunked(ChunkedError),
}

impl BodyError {
    /// A short reason, fit for a log line.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge => "request body too large to skip",
            BodyError::Chunked(e) => e.reason(),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BodyError::Chunked(e) => Some(e),
            BodyError::TooLarge => None,
        }
    }
}

/// How far a [`BodySkipper::feed`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// Bytes of the input that belonged to the body; the rest, if any, is
    /// the next request.
    pub consumed: usize,
    /// The body is over.
    pub done: bool,
}

/// What is left of the body.
#[derive(Debug, Clone)]
enum Remaining {
    /// This many bytes of a `Content-Length` body.
    Length(u64),
    /// The rest of a chunked body.
    Chunked(ChunkedSkipper),
}

/// Consumes one request body, fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct BodySkipper {
    /// What is left.
    remaining: Remaining,
}

impl BodySkipper {
    /// A skipper for a body with this framing, or `TooLarge` if its
    /// `Content-Length` is over [`MAX_SKIPPED_BODY`].
    pub fn new(framing: BodyFraming) -> Result<Self, BodyError> {
        let remaining = match framing {
            BodyFraming::None => Remaining::Length(0),
            BodyFraming::ContentLength(n) if n > MAX_SKIPPED_BODY => {
                return Err(BodyError::TooLarge)
            }
            BodyFraming::ContentLength(n) => Remaining::Length(n),
            BodyFraming::Chunked => Remaining::Chunked(ChunkedSkipper::new(MAX_SKIPPED_BODY)),
        };
        Ok(BodySkipper { remaining })
    }

    /// Whether the body is over.
    pub fn is_done(&self) -> bool {
        match &self.remaining {
            Remaining::Length(n) => *n == 0,
            Remaining::Chunked(c) => c.is_done(),
        }
    }

    /// Consumes body bytes from the start of `input`.
    pub fn feed(&mut self, input: &[u8]) -> Result<Skipped, BodyError> {
        let consumed = match &mut self.remaining {
            Remaining::Length(left) => {
                let take = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                *left = left.saturating_sub(take as u64);
                take
            }
            Remaining::Chunked(c) => c.feed(input).map_err(|e| match e {
                ChunkedError::TooLarge => BodyError::TooLarge,
                other => BodyError::Chunked(other),
            })?,
        };
        Ok(Skipped {
            consumed,
            done: self.is_done(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_body_is_done_at_once() {
        let mut s = BodySkipper::new(BodyFraming::None).unwrap();
        assert!(s.is_done());
        assert_eq!(
            s.feed(b"GET /"),
            Ok(Skipped {
                consumed: 0,
                done: true
            })
        );
    }

    #[test]
    fn content_length_whole_and_bytewise() {
        let input = b"helloGET";
        let mut s = BodySkipper::new(BodyFraming::ContentLength(5)).unwrap();
        assert_eq!(
            s.feed(input),
            Ok(Skipped {
                consumed: 5,
                done: true
            })
        );

        let mut s = BodySkipper::new(BodyFraming::ContentLength(5)).unwrap();
        let mut used = 0;
        for byte in input.chunks(1) {
            let r = s.feed(byte).unwrap();
            used += r.consumed;
            if r.done {
                break;
            }
        }
        assert_eq!(used, 5);
        assert!(s.is_done());
        assert_eq!(s.feed(b"x").unwrap().consumed, 0);
    }

    #[test]
    fn content_length_limit_is_decided_up_front() {
        assert!(BodySkipper::new(BodyFraming::ContentLength(MAX_SKIPPED_BODY)).is_ok());
        assert_eq!(
            BodySkipper::new(BodyFraming::ContentLength(MAX_SKIPPED_BODY + 1)).err(),
            Some(BodyError::TooLarge)
        );
        assert_eq!(
            BodySkipper::new(BodyFraming::ContentLength(u64::MAX)).err(),
            Some(BodyError::TooLarge)
        );
    }

    #[test]
    fn chunked_through_the_skipper() {
        let input = b"3\r\nabc\r\n0\r\n\r\nNEXT";
        let mut s = BodySkipper::new(BodyFraming::Chunked).unwrap();
        assert_eq!(
            s.feed(input),
            Ok(Skipped {
                consumed: input.len() - 4,
                done: true
            })
        );
    }

    #[test]
    fn chunked_errors_map() {
        let mut s = BodySkipper::new(BodyFraming::Chunked).unwrap();
        assert_eq!(
            s.feed(b"zz\r\n"),
            Err(BodyError::Chunked(ChunkedError::BadChunkSize))
        );
        let mut s = BodySkipper::new(BodyFraming::Chunked).unwrap();
        let too_big = format!("{:x}\r\n", MAX_SKIPPED_BODY + 1);
        assert_eq!(s.feed(too_big.as_bytes()), Err(BodyError::TooLarge));
        let mut s = BodySkipper::new(BodyFraming::Chunked).unwrap();
        let fits = format!("{:x}\r\n", MAX_SKIPPED_BODY);
        assert!(s.feed(fits.as_bytes()).is_ok());
        use std::error::Error;
        assert!(BodyError::Chunked(ChunkedError::BadTrailer)
            .source()
            .is_some());
        assert!(!BodyError::TooLarge.to_string().is_empty());
    }
}
