//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! RFC 6455 section 8.1 asks an endpoint to fail the connection as soon as a
//! text message stops being valid UTF-8, not after buffering all of it. This
//! validator is fed each piece as it arrives and refuses at the first byte
//! that cannot be part of a valid sequence (`C0`, `F5`, the surrogate start
//! `ED A0`, the overlong start `E0 80`, ...), even when that sequence began in
//! an earlier piece. It carries at most three bytes of an unfinished sequence
//! between pieces, and [`Utf8Validator::finish`] says whether the message
//! ended in the middle of one.
//!
//! The work is done by `std::str::from_utf8`, whose ASCII fast path is far
//! quicker than a hand-written state machine; its `valid_up_to` and
//! `error_len` tell an invalid byte (`Some`) from a sequence cut short at the
//! end of the piece (`None`).

use std::fmt;

/// The bytes fed so far are not, and cannot become, valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Validates a UTF-8 stream fed in arbitrary pieces. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The start of a sequence that the last piece cut short: always a valid
    /// prefix of one character, so 1 to 3 bytes when `carry_len > 0`.
    carry: [u8; 4],
    /// How many bytes of `carry` are in use (0 to 3).
    carry_len: usize,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any carried bytes, ready for a new message.
    pub fn reset(&mut self) {
        self.carry_len = 0;
    }

    /// Whether the bytes fed so far end in the middle of a character.
    pub fn is_mid_sequence(&self) -> bool {
        self.carry_len > 0
    }

    /// Validates the next piece of the stream. Fails as soon as the stream so
    /// far cannot be a prefix of valid UTF-8.
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), InvalidUtf8> {
        let mut rest = piece;
        if self.carry_len > 0 {
            rest = self.complete_carry(piece)?;
            if self.carry_len > 0 {
                // The piece was too short to finish the character.
                return Ok(());
            }
        }
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = rest.get(e.valid_up_to()..).unwrap_or_default();
                self.carry_tail(tail)
            }
        }
    }

    /// Ends the stream: fails when it stopped in the middle of a character.
    /// The validator is reset either way.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let mid = self.is_mid_sequence();
        self.reset();
        if mid {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Joins the carried bytes with the start of `piece`, validates the
    /// character they form, and returns the part of `piece` after it. When
    /// `piece` is too short to finish it, the bytes are carried on and the
    /// empty slice is returned.
    fn complete_carry<'p>(&mut self, piece: &'p [u8]) -> Result<&'p [u8], InvalidUtf8> {
        let carried = self.carry_len;
        let mut joined = [0u8; 4];
        let taken = piece.len().min(4 - carried);
        let (head, _) = piece.split_at(taken);
        let (front, back) = joined.split_at_mut(carried);
        front.copy_from_slice(self.carry.get(..carried).unwrap_or_default());
        if let Some(dst) = back.get_mut(..taken) {
            dst.copy_from_slice(head);
        }
        let joined = joined.get(..carried + taken).unwrap_or_default();
        let valid = match std::str::from_utf8(joined) {
            Ok(_) => joined.len(),
            Err(e) if e.error_len().is_some() && e.valid_up_to() == 0 => {
                return Err(InvalidUtf8);
            }
            Err(e) if e.valid_up_to() == 0 => {
                // Still unfinished: every byte of `piece` joined the carry.
                self.carry_tail(joined)?;
                return Ok(&[]);
            }
            Err(e) => e.valid_up_to(),
        };
        // The carried bytes were an unfinished character, so a valid prefix
        // of `joined` ends past them; the rest of `piece` is checked from the
        // end of that prefix, which rechecks at most three bytes.
        self.carry_len = 0;
        Ok(piece
            .get(valid.saturating_sub(carried)..)
            .unwrap_or_default())
    }

    /// Keeps an unfinished sequence (at most 3 bytes, as `from_utf8` reports
    /// only those as cut short) for the next piece.
    fn carry_tail(&mut self, tail: &[u8]) -> Result<(), InvalidUtf8> {
        let dst = self.carry.get_mut(..tail.len()).ok_or(InvalidUtf8)?;
        dst.copy_from_slice(tail);
        self.carry_len = tail.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(pieces: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        for piece in pieces {
            v.feed(piece)?;
        }
        v.finish()
    }

    const SAMPLES: [&str; 6] = [
        "a",
        "é",
        "€",
        "😀",
        "κόσμε",
        "aé€😀b\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}",
    ];

    #[test]
    fn valid_text_split_at_every_boundary() {
        for s in SAMPLES {
            let b = s.as_bytes();
            assert_eq!(feed_all(&[b]), Ok(()), "{s}");
            for i in 0..=b.len() {
                for j in i..=b.len() {
                    assert_eq!(
                        feed_all(&[&b[..i], &b[i..j], &b[j..]]),
                        Ok(()),
                        "{s} {i} {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn valid_text_one_byte_at_a_time() {
        for s in SAMPLES {
            let mut v = Utf8Validator::new();
            for byte in s.as_bytes() {
                v.feed(std::slice::from_ref(byte)).unwrap();
            }
            assert_eq!(v.finish(), Ok(()));
        }
    }

    /// (bytes, index of the first byte at which the stream is known bad)
    const INVALID: [(&[u8], usize); 12] = [
        (b"\xC0", 0),
        (b"\xC1\x80", 0),
        (b"\xF5", 0),
        (b"\xFF", 0),
        (b"\x80", 0),
        (b"\xED\xA0\x80", 1),
        (b"\xED\xBF\xBF", 1),
        (b"\xE0\x80\x80", 1),
        (b"\xF0\x80\x80\x80", 1),
        (b"\xF4\x90\x80\x80", 1),
        (b"ab\xE2\x82\x28", 4),
        (
            b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80edited",
            12,
        ),
    ];

    #[test]
    fn invalid_sequences_fail_at_their_first_bad_byte() {
        for (bytes, bad_at) in INVALID {
            assert_eq!(feed_all(&[bytes]), Err(InvalidUtf8), "{bytes:02x?}");
            // One byte at a time: all is well up to bad_at, which fails.
            let mut v = Utf8Validator::new();
            for (i, byte) in bytes.iter().enumerate() {
                let result = v.feed(std::slice::from_ref(byte));
                if i < bad_at {
                    assert_eq!(result, Ok(()), "{bytes:02x?} byte {i}");
                } else {
                    assert_eq!(result, Err(InvalidUtf8), "{bytes:02x?} byte {i}");
                    break;
                }
            }
        }
    }

    #[test]
    fn invalid_sequences_split_across_pieces() {
        for (bytes, _) in INVALID {
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    assert_eq!(
                        feed_all(&[&bytes[..i], &bytes[i..j], &bytes[j..]]),
                        Err(InvalidUtf8),
                        "{bytes:02x?} {i} {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn ending_mid_sequence_is_reported_by_finish() {
        for bytes in [&b"\xC3"[..], b"\xE2\x82", b"\xF0\x9F\x98", b"ok\xE2"] {
            let mut v = Utf8Validator::new();
            assert_eq!(v.feed(bytes), Ok(()));
            assert!(v.is_mid_sequence());
            assert_eq!(v.finish(), Err(InvalidUtf8));
            // finish resets: the validator is usable for the next message.
            assert!(!v.is_mid_sequence());
            assert_eq!(v.feed(b"fine"), Ok(()));
            assert_eq!(v.finish(), Ok(()));
        }
    }

    #[test]
    fn carry_completed_then_more_text() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xF0\x9F").unwrap();
        v.feed(b"\x98").unwrap();
        v.feed(b"\x80abc\xE2\x82").unwrap();
        v.feed(b"\xAC").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn bad_byte_right_after_a_completed_carry() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xC3").unwrap();
        assert_eq!(v.feed(b"\xA9\xFF"), Err(InvalidUtf8));
        let mut v = Utf8Validator::new();
        v.feed(b"\xC3").unwrap();
        assert_eq!(v.feed(b"\xA9\xC3\xA9\xC0"), Err(InvalidUtf8));
    }

    #[test]
    fn empty_pieces_change_nothing() {
        let mut v = Utf8Validator::new();
        v.feed(b"").unwrap();
        v.feed(b"\xE2").unwrap();
        v.feed(b"").unwrap();
        v.feed(b"\x82\xAC").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }
}
