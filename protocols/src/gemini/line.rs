//! Finding the end of one CRLF-terminated line, incrementally and with a
//! length limit. Shared by the request parser and the response-header parser,
//! which both frame exactly one such line.

/// What the first bytes of a buffer say about the line they start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line is complete: this many bytes precede the CR LF.
    Complete(usize),
    /// No verdict yet: more bytes may still make a valid line.
    Partial,
    /// More than the limit arrived without a CR: no valid line can follow.
    TooLong,
    /// A LF arrived that no CR preceded.
    BareLf,
    /// A CR arrived followed by something other than LF.
    StrayCr,
}

/// Classifies the line at the start of `buf`, allowing at most `max_len`
/// bytes before the CR LF.
///
/// The verdict depends only on a prefix of `buf` and never changes once it is
/// not [`Line::Partial`]: feeding the buffer one byte at a time gives the same
/// answer as feeding it whole. That is why the limit is checked by looking
/// for the first CR or LF within `max_len + 1` bytes rather than by looking
/// for a LF anywhere: a LF found further on could never make the line valid.
pub(crate) fn scan_line(buf: &[u8], max_len: usize) -> Line {
    let window = buf.get(..max_len.saturating_add(1)).unwrap_or(buf);
    let Some(end) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if buf.len() > max_len {
            Line::TooLong
        } else {
            Line::Partial
        };
    };
    if window.get(end) == Some(&b'\n') {
        return Line::BareLf;
    }
    // `end` indexes into `buf`, so `end + 1 <= buf.len()` cannot overflow.
    match buf.get(end + 1) {
        None => Line::Partial,
        Some(b'\n') => Line::Complete(end),
        Some(_) => Line::StrayCr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_line_reports_length_without_crlf() {
        assert_eq!(scan_line(b"abc\r\n", 10), Line::Complete(3));
        assert_eq!(scan_line(b"abc\r\nrest", 10), Line::Complete(3));
        assert_eq!(scan_line(b"\r\n", 10), Line::Complete(0));
    }

    #[test]
    fn partial_until_crlf_or_limit() {
        assert_eq!(scan_line(b"", 10), Line::Partial);
        assert_eq!(scan_line(b"abc", 10), Line::Partial);
        assert_eq!(scan_line(b"abc\r", 10), Line::Partial);
    }

    #[test]
    fn errors() {
        assert_eq!(scan_line(b"ab\nc", 10), Line::BareLf);
        assert_eq!(scan_line(b"ab\rc\r\n", 10), Line::StrayCr);
        assert_eq!(scan_line(b"ab\r\r\n", 10), Line::StrayCr);
    }

    #[test]
    fn limit_is_exact() {
        assert_eq!(scan_line(b"abcd\r\n", 4), Line::Complete(4));
        assert_eq!(scan_line(b"abcd", 4), Line::Partial);
        assert_eq!(scan_line(b"abcd\r", 4), Line::Partial);
        assert_eq!(scan_line(b"abcde", 4), Line::TooLong);
        assert_eq!(scan_line(b"abcde\r\n", 4), Line::TooLong);
        // A LF just past the limit must not turn "too long" into "bare LF".
        assert_eq!(scan_line(b"abcde\n", 4), Line::TooLong);
    }

    #[test]
    fn verdict_never_changes_once_given() {
        let inputs: [&[u8]; 6] = [
            b"abcd\r\n",
            b"abcde\n",
            b"ab\nxyz",
            b"ab\rc",
            b"abcdefgh",
            b"a\r\n\r\n",
        ];
        for input in inputs {
            let whole = scan_line(input, 4);
            let first = (0..=input.len())
                .map(|n| scan_line(&input[..n], 4))
                .find(|v| *v != Line::Partial)
                .unwrap_or(Line::Partial);
            assert_eq!(first, whole, "input {input:?}");
        }
    }
}
