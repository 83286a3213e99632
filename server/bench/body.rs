//! `--expect-body FILE` and `--expect-bytes N`: every response body the
//! harness reads (Gemini, HTTP, HTTPS) is compared with what was promised,
//! as it streams in.
//!
//! The reference is read once per run and shared; each worker keeps only a
//! [`BodyCursor`] (a position and a flag), so checking costs no allocation
//! per response and no copy: the bytes are compared straight from the read
//! buffer. A body that is too short, too long, or differs anywhere is a
//! mismatch.

use std::fmt;
use std::path::Path;
use std::rc::Rc;

/// Largest `--expect-body` file: it is held in memory once for the whole
/// run; larger references would measure the disk and the harness's memory,
/// not the server.
pub const MAX_EXPECT_BODY: u64 = 1 << 30;

/// What every response body must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The exact bytes (`--expect-body`), when given.
    body: Option<Box<[u8]>>,
    /// The length in bytes (the file's, or `--expect-bytes`).
    len: u64,
}

/// Why the expectation could not be set up.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExpectError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file is larger than [`MAX_EXPECT_BODY`].
    TooLarge(u64),
    /// `--expect-bytes` and the file's length differ.
    Disagree {
        /// `--expect-bytes`.
        bytes: u64,
        /// The file's length.
        file: u64,
    },
}

impl fmt::Display for ExpectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectError::Read(e) => write!(f, "--expect-body: {e}"),
            ExpectError::TooLarge(n) => write!(
                f,
                "--expect-body: the file has {n} bytes, more than {MAX_EXPECT_BODY}"
            ),
            ExpectError::Disagree { bytes, file } => write!(
                f,
                "--expect-bytes {bytes} disagrees with --expect-body's {file} bytes"
            ),
        }
    }
}

impl std::error::Error for ExpectError {}

impl Expected {
    /// Exactly these bytes.
    pub fn bytes(body: Vec<u8>) -> Expected {
        Expected {
            len: body.len() as u64,
            body: Some(body.into_boxed_slice()),
        }
    }

    /// Any bytes, `len` of them.
    pub fn length(len: u64) -> Expected {
        Expected { body: None, len }
    }

    /// From the command line: the file's bytes (checked against `bytes`
    /// when both are given), or only a length; `None` when neither is.
    pub fn from_options(
        file: Option<&Path>,
        bytes: Option<u64>,
    ) -> Result<Option<Rc<Expected>>, ExpectError> {
        let Some(path) = file else {
            return Ok(bytes.map(|n| Rc::new(Expected::length(n))));
        };
        let size = std::fs::metadata(path).map_err(ExpectError::Read)?.len();
        if size > MAX_EXPECT_BODY {
            return Err(ExpectError::TooLarge(size));
        }
        let body = std::fs::read(path).map_err(ExpectError::Read)?;
        let file = body.len() as u64;
        match bytes {
            Some(n) if n != file => Err(ExpectError::Disagree { bytes: n, file }),
            _ => Ok(Some(Rc::new(Expected::bytes(body)))),
        }
    }

    /// The promised length.
    pub fn promised_len(&self) -> u64 {
        self.len
    }
}

/// Where one response's body is in the comparison.
#[derive(Debug, Clone)]
pub struct BodyCursor {
    expected: Rc<Expected>,
    /// Body bytes seen so far (saturating: a runaway body stays "too long").
    seen: u64,
    /// A byte differed, or the body ran past the promised length.
    differs: bool,
}

impl BodyCursor {
    /// A cursor at the start of a body.
    pub fn new(expected: Rc<Expected>) -> Self {
        BodyCursor {
            expected,
            seen: 0,
            differs: false,
        }
    }

    /// The next piece of the body.
    pub fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = self.seen.saturating_add(data.len() as u64);
        if !self.differs {
            if end > self.expected.len {
                self.differs = true;
            } else if let Some(body) = &self.expected.body {
                let same = usize::try_from(self.seen)
                    .ok()
                    .and_then(|from| body.get(from..from.checked_add(data.len())?))
                    .is_some_and(|want| want == data);
                self.differs = !same;
            }
        }
        self.seen = end;
    }

    /// The body ended: whether it was exactly the promised one. Resets the
    /// cursor for the next body.
    pub fn finish(&mut self) -> bool {
        let ok = !self.differs && self.seen == self.expected.len;
        self.reset();
        ok
    }

    /// Forgets the current body (a new response or connection).
    pub fn reset(&mut self) {
        self.seen = 0;
        self.differs = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expected: &Rc<Expected>, pieces: &[&[u8]]) -> bool {
        let mut c = BodyCursor::new(Rc::clone(expected));
        for p in pieces {
            c.feed(p);
        }
        c.finish()
    }

    /// The verdict on `body` fed whole, byte at a time, and split at
    /// every point must agree.
    fn all_ways(expected: &Rc<Expected>, body: &[u8]) -> bool {
        let whole = check(expected, &[body]);
        let singles: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(check(expected, &singles), whole, "byte at a time");
        for i in 0..=body.len() {
            let (a, b) = body.split_at(i);
            assert_eq!(check(expected, &[a, b]), whole, "split at {i}");
        }
        whole
    }

    #[test]
    fn exact_bytes() {
        let e = Rc::new(Expected::bytes(b"hello world".to_vec()));
        assert!(all_ways(&e, b"hello world"));
        assert!(!all_ways(&e, b"hello worle"), "one byte differs");
        assert!(!all_ways(&e, b"Hello world"), "first byte differs");
        assert!(!all_ways(&e, b"hello worl"), "too short");
        assert!(!all_ways(&e, b"hello world!"), "too long");
        assert!(!all_ways(&e, b""), "empty");
    }

    #[test]
    fn length_only() {
        let e = Rc::new(Expected::length(4));
        assert!(all_ways(&e, b"abcd"));
        assert!(all_ways(&e, b"wxyz"));
        assert!(!all_ways(&e, b"abc"));
        assert!(!all_ways(&e, b"abcde"));
        let empty = Rc::new(Expected::length(0));
        assert_eq!(empty.promised_len(), 0);
        assert!(all_ways(&empty, b""));
        assert!(!all_ways(&empty, b"x"));
    }

    #[test]
    fn the_cursor_is_reusable_after_finish_and_reset() {
        let e = Rc::new(Expected::bytes(b"abc".to_vec()));
        let mut c = BodyCursor::new(Rc::clone(&e));
        c.feed(b"abX");
        assert!(!c.finish());
        c.feed(b"abc");
        assert!(c.finish(), "a mismatch does not stick to the next body");
        c.feed(b"ab");
        c.reset();
        c.feed(b"abc");
        assert!(c.finish());
    }

    #[test]
    fn a_mismatch_stays_a_mismatch_when_the_length_comes_right() {
        let e = Rc::new(Expected::bytes(b"abcdef".to_vec()));
        // Differs early, right length at the end.
        assert!(!all_ways(&e, b"abXdef"));
    }

    #[test]
    fn from_options() {
        let dir = std::env::temp_dir().join(format!("torsion-body-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ref.bin");
        std::fs::write(&file, b"0123456789").unwrap();
        let e = Expected::from_options(Some(&file), None).unwrap().unwrap();
        assert_eq!(e.promised_len(), 10);
        assert!(check(&e, &[b"01234", b"56789"]));
        let e = Expected::from_options(Some(&file), Some(10))
            .unwrap()
            .unwrap();
        assert_eq!(e.promised_len(), 10);
        assert!(matches!(
            Expected::from_options(Some(&file), Some(9)),
            Err(ExpectError::Disagree { bytes: 9, file: 10 })
        ));
        let e = Expected::from_options(None, Some(3)).unwrap().unwrap();
        assert!(check(&e, &[b"xyz"]));
        assert!(Expected::from_options(None, None).unwrap().is_none());
        let missing = dir.join("missing.bin");
        let err = Expected::from_options(Some(&missing), None).unwrap_err();
        assert!(matches!(err, ExpectError::Read(_)));
        assert!(err.to_string().starts_with("--expect-body: "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
