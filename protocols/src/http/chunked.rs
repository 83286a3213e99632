//! A push state machine that skips a chunked request body (RFC 9112 §7.1)
//! without keeping any of it.
//!
//! Decisions worth knowing:
//! - Chunk lines, the CRLF after chunk data, and trailer lines must end in
//!   CRLF; a bare LF or bare CR is an error (the head parser accepts bare LF,
//!   but lenient chunk parsing is where request smuggling lives).
//! - Whitespace after the chunk size and chunk extensions are tolerated and
//!   ignored; their bytes only have to be visible ASCII, SP, HTAB or
//!   obs-text, and the whole size line is bounded by [`MAX_CHUNK_LINE`].
//! - Trailer fields are skipped; each must start with a `tchar` (so no
//!   obs-fold), and together they are bounded by [`MAX_TRAILERS`].

use std::fmt;

use super::syntax::is_tchar;

/// Longest chunk-size line, extensions included: real clients send a few
/// hex digits; the bound stops a client from streaming an endless line.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Most bytes of trailer fields after the last chunk: same budget as a
/// request head.
pub const MAX_TRAILERS: usize = super::request::MAX_HEAD;

/// Why a chunked body could not be skipped. None of them has an answer of
/// its own: the request was already answered from its head; the connection
/// just cannot be reused, so close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkedError {
    /// The size line does not start with a hex digit, or a byte after the
    /// size is neither whitespace, `;` nor CR.
    BadChunkSize,
    /// The chunk size does not fit in 64 bits.
    ChunkSizeOverflow,
    /// The chunk extensions hold a control byte, or the size line does not
    /// end in CRLF.
    BadChunkLine,
    /// The size line is longer than [`MAX_CHUNK_LINE`].
    ChunkLineTooLong,
    /// Chunk data is not followed by CRLF (wrong size, or bare LF).
    MissingDataCrlf,
    /// A trailer line that is not a field line ending in CRLF.
    BadTrailer,
    /// Trailer fields longer than [`MAX_TRAILERS`] in total.
    TrailersTooLarge,
    /// The declared chunk sizes add up to more than the skipper's budget.
    TooLarge,
}

impl ChunkedError {
    /// A short reason, fit for a log line.
    pub fn reason(&self) -> &'static str {
        match self {
            ChunkedError::BadChunkSize => "invalid chunk size",
            ChunkedError::ChunkSizeOverflow => "chunk size overflows",
            ChunkedError::BadChunkLine => "invalid chunk line",
            ChunkedError::ChunkLineTooLong => "chunk line too long",
            ChunkedError::MissingDataCrlf => "chunk data not followed by CRLF",
            ChunkedError::BadTrailer => "invalid trailer field",
            ChunkedError::TrailersTooLarge => "trailer fields too large",
            ChunkedError::TooLarge => "chunked body too large",
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ChunkedError {}

/// Where in the chunked grammar the next byte belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of the chunk size; `digits` counts those seen.
    Size { digits: usize },
    /// Whitespace after the size, before `;` or CR.
    SizeSpace,
    /// Inside chunk extensions, until CR.
    Extension,
    /// CR of the size line seen; LF must follow.
    SizeLf,
    /// Inside chunk data; `remaining` bytes left.
    Data { remaining: u64 },
    /// Chunk data done; CR must follow.
    DataCr,
    /// CR after chunk data seen; LF must follow.
    DataLf,
    /// At the start of a trailer line or of the final CRLF.
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    /// CR of a trailer line seen; LF must follow.
    TrailerLf,
    /// CR of the final empty line seen; LF must follow.
    EndLf,
    /// The body is over.
    Done,
    /// An error was found; it is returned again on every feed.
    Failed(ChunkedError),
}

/// Skips one chunked body, fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct ChunkedSkipper {
    /// Grammar position.
    state: State,
    /// The chunk size being read.
    size: u64,
    /// Bytes of the current size line.
    line_len: usize,
    /// Bytes of trailer fields so far.
    trailer_len: usize,
    /// Data bytes declared so far (sum of chunk sizes).
    declared: u64,
    /// Most data bytes accepted.
    budget: u64,
}

impl ChunkedSkipper {
    /// A skipper that refuses bodies whose chunk sizes add up to more than
    /// `budget` bytes.
    pub fn new(budget: u64) -> Self {
        ChunkedSkipper {
            state: State::Size { digits: 0 },
            size: 0,
            line_len: 0,
            trailer_len: 0,
            declared: 0,
            budget,
        }
    }

    /// Whether the whole body, final CRLF included, has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes body bytes from the start of `input` and returns how many
    /// it used: all of them unless the body ended inside `input`, in which
    /// case the rest belongs to the next request.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkedError> {
        self.feed_with(input, |_| {})
    }

    /// [`feed`](Self::feed), handing the body's data bytes (without the
    /// chunk framing) to `on_data` as they pass: for a client that wants
    /// the body, not just to skip it.
    pub fn feed_with(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkedError> {
        let mut used = 0;
        while let Some(rest) = input.get(used..).filter(|r| !r.is_empty()) {
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data { remaining } => {
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    on_data(rest.get(..take).unwrap_or_default());
                    used += take;
                    // `take` <= `remaining`, so this cannot underflow.
                    let left = remaining.saturating_sub(take as u64);
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                }
                _ => {
                    let byte = rest.first().copied().unwrap_or_default();
                    used += 1;
                    if let Err(e) = self.step(byte) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                }
            }
        }
        match self.state {
            State::Failed(e) => Err(e),
            _ => Ok(used),
        }
    }

    /// Advances the grammar by one framing byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        match self.state {
            State::Size { .. } | State::SizeSpace | State::Extension | State::SizeLf => {
                self.line_len += 1;
                if self.line_len > MAX_CHUNK_LINE {
                    return Err(ChunkedError::ChunkLineTooLong);
                }
            }
            State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf => {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILERS {
                    return Err(ChunkedError::TrailersTooLarge);
                }
            }
            _ => {}
        }
        self.state = match (self.state, b) {
            (State::Size { digits }, _) if b.is_ascii_hexdigit() => {
                // Parsed from one hex digit, so always < 16.
                let digit = u64::from(char::from(b).to_digit(16).unwrap_or_default());
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(ChunkedError::ChunkSizeOverflow)?;
                State::Size { digits: digits + 1 }
            }
            (State::Size { digits: 0 }, _) => return Err(ChunkedError::BadChunkSize),
            (State::Size { .. } | State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
            (State::Size { .. } | State::SizeSpace, b';') => State::Extension,
            (State::Size { .. } | State::SizeSpace, b'\r') => State::SizeLf,
            (State::Size { .. } | State::SizeSpace, _) => return Err(ChunkedError::BadChunkSize),
            (State::Extension, b'\r') => State::SizeLf,
            (State::Extension, _) if is_line_byte(b) => State::Extension,
            (State::Extension, _) => return Err(ChunkedError::BadChunkLine),
            (State::SizeLf, b'\n') => self.end_size_line()?,
            (State::SizeLf, _) => return Err(ChunkedError::BadChunkLine),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { digits: 0 },
            (State::DataCr | State::DataLf, _) => return Err(ChunkedError::MissingDataCrlf),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, _) if is_tchar(b) => State::Trailer,
            (State::TrailerStart, _) => return Err(ChunkedError::BadTrailer),
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::Trailer, _) if is_line_byte(b) => State::Trailer,
            (State::Trailer, _) => return Err(ChunkedError::BadTrailer),
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerLf | State::EndLf, _) => return Err(ChunkedError::BadTrailer),
            // Not reached: `feed` handles these without calling `step`.
            (State::Data { .. } | State::Done | State::Failed(_), _) => self.state,
        };
        Ok(())
    }

    /// The size line ended: start the chunk data, or the trailers after the
    /// last chunk.
    fn end_size_line(&mut self) -> Result<State, ChunkedError> {
        let size = std::mem::take(&mut self.size);
        self.line_len = 0;
        if size == 0 {
            return Ok(State::TrailerStart);
        }
        self.declared = self
            .declared
            .checked_add(size)
            .filter(|&total| total <= self.budget)
            .ok_or(ChunkedError::TooLarge)?;
        Ok(State::Data { remaining: size })
    }
}

/// Bytes allowed inside chunk extensions and trailer lines: HTAB, SP,
/// visible ASCII, obs-text.
fn is_line_byte(b: u8) -> bool {
    b == b'\t' || (0x20..=0x7E).contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: u64 = 1 << 20;

    /// Feeds `input` whole, then byte by byte, then split at every point;
    /// all must agree. Returns (bytes used, done) or the error.
    fn skip(input: &[u8]) -> Result<(usize, bool), ChunkedError> {
        let mut whole = ChunkedSkipper::new(BUDGET);
        let want = whole.feed(input).map(|n| (n, whole.is_done()));

        let mut bytewise = ChunkedSkipper::new(BUDGET);
        let mut used = 0;
        let mut got = Ok((0, false));
        for byte in input.chunks(1) {
            match bytewise.feed(byte) {
                Ok(n) => {
                    used += n;
                    got = Ok((used, bytewise.is_done()));
                }
                Err(e) => {
                    got = Err(e);
                    break;
                }
            }
            if bytewise.is_done() {
                break;
            }
        }
        assert_eq!(want, got, "bytewise {:?}", String::from_utf8_lossy(input));

        // Every split of short inputs; a sample of them for the long ones.
        let step = (input.len() / 256).max(1);
        for split in (0..=input.len()).step_by(step) {
            let (a, b) = input.split_at(split);
            let mut s = ChunkedSkipper::new(BUDGET);
            let got = s.feed(a).and_then(|n| {
                if s.is_done() {
                    Ok((n, true))
                } else {
                    s.feed(b).map(|m| (n + m, s.is_done()))
                }
            });
            assert_eq!(want, got, "split at {split}");
        }
        want
    }

    #[test]
    fn simple_bodies() {
        let body = b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n";
        assert_eq!(skip(body), Ok((body.len(), true)));
        assert_eq!(skip(b"0\r\n\r\n"), Ok((5, true)));
        let body = b"A\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(skip(body), Ok((body.len(), true)));
        let body = b"a\r\n0123456789\r\n000\r\n\r\n";
        assert_eq!(skip(body), Ok((body.len(), true)));
    }

    #[test]
    fn feed_with_hands_over_only_the_data_at_every_split() {
        let body = b"4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: 3\r\n\r\nGET";
        for split in 0..=body.len() {
            let mut sk = ChunkedSkipper::new(BUDGET);
            let mut data = Vec::new();
            let used = sk
                .feed_with(&body[..split], |d| data.extend_from_slice(d))
                .unwrap();
            let more = sk
                .feed_with(&body[used..], |d| data.extend_from_slice(d))
                .unwrap();
            assert!(sk.is_done(), "split {split}");
            // The next request's first bytes are left alone.
            assert_eq!(used + more, body.len() - 3, "split {split}");
            assert_eq!(data, b"Wikipedia", "split {split}");
        }
    }

    #[test]
    fn stops_at_end_of_body() {
        let body = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        assert_eq!(skip(body), Ok((13, true)));
        let mut s = ChunkedSkipper::new(BUDGET);
        s.feed(body).unwrap();
        assert_eq!(s.feed(b"more"), Ok(0));
    }

    #[test]
    fn partial_bodies_are_not_errors() {
        for body in [
            &b""[..],
            b"4",
            b"4\r",
            b"4\r\nWi",
            b"4\r\nWiki\r",
            b"0\r\n",
            b"0\r\nX: y\r\n",
        ] {
            assert_eq!(skip(body), Ok((body.len(), false)), "{body:?}");
        }
    }

    #[test]
    fn extensions_and_whitespace_are_tolerated() {
        let body = b"4;name=value;x=\"q s\"\r\nWiki\r\n0;last\r\n\r\n";
        assert_eq!(skip(body), Ok((body.len(), true)));
        let body = b"4 \t;a\r\nWiki\r\n0 \r\n\r\n";
        assert_eq!(skip(body), Ok((body.len(), true)));
    }

    #[test]
    fn trailers_are_skipped() {
        let body = b"1\r\na\r\n0\r\nChecksum: abc\r\nX-Other: \t\xff\r\n\r\nNEXT";
        assert_eq!(skip(body), Ok((body.len() - 4, true)));
    }

    #[test]
    fn size_errors() {
        assert_eq!(skip(b"\r\n"), Err(ChunkedError::BadChunkSize));
        assert_eq!(skip(b"g\r\n"), Err(ChunkedError::BadChunkSize));
        assert_eq!(skip(b"-1\r\n"), Err(ChunkedError::BadChunkSize));
        assert_eq!(skip(b"0x10\r\n"), Err(ChunkedError::BadChunkSize));
        assert_eq!(skip(b"1 2\r\n"), Err(ChunkedError::BadChunkSize));
        assert_eq!(skip(b";ext\r\n"), Err(ChunkedError::BadChunkSize));
        assert_eq!(skip(b"1\n"), Err(ChunkedError::BadChunkSize));
        assert_eq!(skip(b"1\rx"), Err(ChunkedError::BadChunkLine));
        assert_eq!(skip(b"1;a\x00\r\n"), Err(ChunkedError::BadChunkLine));
        assert_eq!(skip(b"1;a\n"), Err(ChunkedError::BadChunkLine));
        assert_eq!(
            skip(b"10000000000000000\r\n"),
            Err(ChunkedError::ChunkSizeOverflow)
        );
        assert_eq!(skip(b"FFFFFFFFFFFFFFFF\r\n"), Err(ChunkedError::TooLarge));
    }

    #[test]
    fn leading_zeros_are_bounded_by_line_length() {
        let mut line = vec![b'0'; MAX_CHUNK_LINE - 3];
        line.extend_from_slice(b"1\r\nx\r\n0\r\n\r\n");
        assert_eq!(skip(&line), Ok((line.len(), true)));
        let mut line = vec![b'0'; MAX_CHUNK_LINE];
        line.extend_from_slice(b"1\r\n");
        assert_eq!(skip(&line), Err(ChunkedError::ChunkLineTooLong));
        let mut line = b"1;".to_vec();
        line.resize(MAX_CHUNK_LINE + 10, b'x');
        assert_eq!(skip(&line), Err(ChunkedError::ChunkLineTooLong));
    }

    #[test]
    fn data_must_end_in_crlf() {
        assert_eq!(skip(b"3\r\nabcd\r\n"), Err(ChunkedError::MissingDataCrlf));
        assert_eq!(
            skip(b"3\r\nabc\n0\r\n\r\n"),
            Err(ChunkedError::MissingDataCrlf)
        );
        assert_eq!(skip(b"3\r\nabc\rx"), Err(ChunkedError::MissingDataCrlf));
    }

    #[test]
    fn trailer_errors() {
        assert_eq!(skip(b"0\r\n\n"), Err(ChunkedError::BadTrailer));
        assert_eq!(skip(b"0\r\n\rx"), Err(ChunkedError::BadTrailer));
        assert_eq!(skip(b"0\r\n X: y\r\n\r\n"), Err(ChunkedError::BadTrailer));
        assert_eq!(skip(b"0\r\nX: y\n\r\n"), Err(ChunkedError::BadTrailer));
        assert_eq!(skip(b"0\r\nX: \x01\r\n\r\n"), Err(ChunkedError::BadTrailer));
        assert_eq!(skip(b"0\r\nX: y\rz"), Err(ChunkedError::BadTrailer));
        let mut big = b"0\r\nX: ".to_vec();
        big.resize(MAX_TRAILERS + 10, b'a');
        assert_eq!(skip(&big), Err(ChunkedError::TrailersTooLarge));
    }

    #[test]
    fn budget_counts_all_chunks() {
        let mut s = ChunkedSkipper::new(10);
        assert_eq!(s.feed(b"5\r\n12345\r\n5\r\n12345\r\n"), Ok(20));
        assert_eq!(s.feed(b"1\r\n"), Err(ChunkedError::TooLarge));
        // The error sticks.
        assert_eq!(s.feed(b"x"), Err(ChunkedError::TooLarge));
        assert!(!s.is_done());
    }

    #[test]
    fn large_chunk_is_skipped_in_bulk() {
        let mut body = b"10000\r\n".to_vec();
        body.resize(body.len() + 0x10000, b'z');
        body.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut s = ChunkedSkipper::new(BUDGET);
        assert_eq!(s.feed(&body), Ok(body.len()));
        assert!(s.is_done());
    }

    #[test]
    fn random_bodies_agree_at_every_split() {
        const PIECES: &[&[u8]] = &[
            b"0", b"1", b"a", b"F", b"g", b" ", b";ext=1", b"\r\n", b"\r", b"\n", b"x", b"abc",
            b"X: y", b"\x01", b"\t",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut input = Vec::new();
            for _ in 0..(next() % 10) {
                input.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let _ = skip(&input);
        }
    }

    #[test]
    fn every_error_has_a_reason() {
        for e in [
            ChunkedError::BadChunkSize,
            ChunkedError::ChunkSizeOverflow,
            ChunkedError::BadChunkLine,
            ChunkedError::ChunkLineTooLong,
            ChunkedError::MissingDataCrlf,
            ChunkedError::BadTrailer,
            ChunkedError::TrailersTooLarge,
            ChunkedError::TooLarge,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
