//! Byte classes of HTTP/1.1 syntax and the diagnosis of a head httparse
//! refused.
//!
//! httparse only says which *kind* of byte was wrong (`HeaderName`,
//! `NewLine`, ...). To tell obs-fold from whitespace before a colon from a
//! bare CR, [`diagnose`] walks the head again with the same rules httparse
//! applies to requests (its defaults: no leniency enabled) and names the
//! first thing that breaks them. It runs only on the error path.
//!
//! The walk must stop at the same byte httparse stops at, or feeding a head
//! one byte at a time could name a different error than feeding it whole;
//! the byte classes below are therefore copies of httparse's tables.

use super::request::HttpError;

/// `tchar` (RFC 9110 §5.6.2): method names and header names.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A byte httparse accepts inside a request target: visible ASCII and
/// anything above 0x7F (it checks UTF-8 afterwards).
pub(crate) fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7E).contains(&b) || b >= 0x80
}

/// A byte httparse accepts inside a header value: HTAB, SP, visible ASCII,
/// obs-text.
fn is_value_byte(b: u8) -> bool {
    b == b'\t' || (0x20..=0x7E).contains(&b) || b >= 0x80
}

/// Index of the first byte after the empty lines httparse skips before the
/// request line, or `Err` with the diagnosis if one is a bare CR; `Ok(None)`
/// if the buffer ends first.
pub(crate) fn skip_empty_lines(buf: &[u8]) -> Result<Option<usize>, HttpError> {
    let mut i = 0;
    loop {
        match buf.get(i) {
            Some(b'\r') => match buf.get(i + 1) {
                Some(b'\n') => i += 2,
                Some(_) => return Err(HttpError::BareCr),
                None => return Ok(None),
            },
            Some(b'\n') => i += 1,
            Some(_) => return Ok(Some(i)),
            None => return Ok(None),
        }
    }
}

/// Index just past the run of bytes starting at `from` that satisfy `class`.
pub(crate) fn run_end(buf: &[u8], from: usize, class: fn(u8) -> bool) -> usize {
    let len = buf
        .get(from..)
        .map_or(0, |rest| rest.iter().take_while(|&&b| class(b)).count());
    from + len
}

/// Names what is wrong with a head that httparse rejected with `fallback`.
pub(crate) fn diagnose(buf: &[u8], fallback: httparse::Error) -> HttpError {
    match walk(buf) {
        Some(error) => error,
        None => match fallback {
            httparse::Error::HeaderName => HttpError::BadHeaderName,
            httparse::Error::HeaderValue => HttpError::BadHeaderValue,
            httparse::Error::Version => HttpError::BadVersion,
            httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
            _ => HttpError::BadRequestLine,
        },
    }
}

/// Walks the head; `None` if nothing is wrong in the bytes present.
fn walk(buf: &[u8]) -> Option<HttpError> {
    let mut i = match skip_empty_lines(buf) {
        Ok(Some(i)) => i,
        Ok(None) => return None,
        Err(e) => return Some(e),
    };

    // Method, one space, target, one space.
    for class in [is_tchar as fn(u8) -> bool, is_target_byte] {
        let start = i;
        i = run_end(buf, i, class);
        match buf.get(i) {
            None => return None,
            Some(b' ') if i > start => {
                let token = buf.get(start..i).unwrap_or_default();
                if std::str::from_utf8(token).is_err() {
                    return Some(HttpError::BadRequestLine);
                }
                i += 1;
            }
            // A CR here is wrong whatever follows it, and httparse stops
            // without looking further, so it is not called a bare CR.
            Some(_) => return Some(HttpError::BadRequestLine),
        }
    }

    // Version: httparse compares 8 bytes at once when it has them, and the
    // 7-byte prefix `HTTP/1.` byte by byte when it does not.
    match buf.get(i..i + 8) {
        Some(b"HTTP/1.0" | b"HTTP/1.1") => i += 8,
        Some(_) => return Some(HttpError::BadVersion),
        None => {
            let rest = buf.get(i..).unwrap_or_default();
            let matches = rest.iter().zip(b"HTTP/1.").all(|(a, b)| a == b);
            return (!matches).then_some(HttpError::BadVersion);
        }
    }
    match buf.get(i) {
        Some(b'\r') => match buf.get(i + 1) {
            Some(b'\n') => i += 2,
            Some(_) => return Some(HttpError::BareCr),
            None => return None,
        },
        Some(b'\n') => i += 1,
        Some(_) => return Some(HttpError::BadRequestLine),
        None => return None,
    }

    loop {
        match buf.get(i) {
            None | Some(b'\n') => return None,
            // CRLF here ends the head: nothing wrong; CR + other is bare.
            Some(b'\r') => {
                return match buf.get(i + 1) {
                    Some(b'\n') | None => None,
                    Some(_) => Some(HttpError::BareCr),
                };
            }
            Some(b' ' | b'\t') => return Some(HttpError::ObsFold),
            Some(&b) if !is_tchar(b) => return Some(HttpError::BadHeaderName),
            Some(_) => {}
        }
        i = run_end(buf, i, is_tchar);
        match buf.get(i) {
            None => return None,
            Some(b':') => i += 1,
            Some(b' ' | b'\t') => return Some(HttpError::SpaceBeforeColon),
            // Same for a CR in a name: wrong whatever follows.
            Some(_) => return Some(HttpError::BadHeaderName),
        }
        i = run_end(buf, i, is_value_byte);
        match buf.get(i) {
            None => return None,
            Some(b'\r') => match buf.get(i + 1) {
                Some(b'\n') => i += 2,
                Some(_) => return Some(HttpError::BareCr),
                None => return None,
            },
            Some(b'\n') => i += 1,
            Some(_) => return Some(HttpError::BadHeaderValue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_matches_rfc() {
        for b in b"azAZ09!#$%&'*+-.^_`|~" {
            assert!(is_tchar(*b), "{b}");
        }
        for b in b" \t\r\n\"(),/:;<=>?@[\\]{}\x7f\x80\xff\0" {
            assert!(!is_tchar(*b), "{b}");
        }
    }

    #[test]
    fn byte_classes_match_httparse() {
        // One header per byte value: httparse must accept exactly the bytes
        // our classes accept, or the diagnosis could drift from the parser.
        for b in 0u8..=255 {
            let name = [b"GET / HTTP/1.1\r\nX".as_slice(), &[b], b"Y: v\r\n\r\n"].concat();
            let mut headers = [httparse::EMPTY_HEADER; 4];
            let accepted = httparse::Request::new(&mut headers).parse(&name).is_ok();
            // A colon just ends the name early; that is not a name byte.
            if b != b':' {
                assert_eq!(accepted, is_tchar(b), "header name byte {b:#x}");
            }

            let value = [b"GET / HTTP/1.1\r\nX: a".as_slice(), &[b], b"b\r\n\r\n"].concat();
            let mut headers = [httparse::EMPTY_HEADER; 4];
            let accepted = httparse::Request::new(&mut headers).parse(&value).is_ok();
            assert_eq!(accepted, is_value_byte(b), "header value byte {b:#x}");

            if b < 0x80 {
                let target = [b"GET /a".as_slice(), &[b], b"b HTTP/1.1\r\n\r\n"].concat();
                let mut headers = [httparse::EMPTY_HEADER; 4];
                let accepted = httparse::Request::new(&mut headers).parse(&target).is_ok();
                assert_eq!(accepted, is_target_byte(b), "target byte {b:#x}");
            }
        }
    }

    #[test]
    fn walk_finds_nothing_in_valid_or_partial_heads() {
        assert_eq!(walk(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(walk(b"\r\n\nGET / HTTP/1.0\nA: b\n\n"), None);
        assert_eq!(walk(b"GET / HTTP/1."), None);
        assert_eq!(walk(b"GET / HTTP/1.1\r"), None);
        assert_eq!(walk(b"GET / HTTP/1.1\r\nA: b\r"), None);
    }

    #[test]
    fn walk_names_each_error() {
        let cases: &[(&[u8], HttpError)] = &[
            (b"\rX", HttpError::BareCr),
            (b"G(T / HTTP/1.1\r\n", HttpError::BadRequestLine),
            (b"GET  / HTTP/1.1\r\n", HttpError::BadRequestLine),
            (b"GET /\rx HTTP/1.1\r\n", HttpError::BadRequestLine),
            (b"GET /\xff HTTP/1.1\r\n", HttpError::BadRequestLine),
            (b"GET / HTTP/2.0\r\n", HttpError::BadVersion),
            (b"GET / HTTX", HttpError::BadVersion),
            (b"GET / HTTP/1.1x", HttpError::BadRequestLine),
            (b"GET / HTTP/1.1\rx", HttpError::BareCr),
            (b"GET / HTTP/1.1\r\n\rx", HttpError::BareCr),
            (b"GET / HTTP/1.1\r\n x: y\r\n", HttpError::ObsFold),
            (b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n", HttpError::ObsFold),
            (b"GET / HTTP/1.1\r\nA : b\r\n", HttpError::SpaceBeforeColon),
            (b"GET / HTTP/1.1\r\nA\t: b\r\n", HttpError::SpaceBeforeColon),
            (b"GET / HTTP/1.1\r\n(A: b\r\n", HttpError::BadHeaderName),
            (b"GET / HTTP/1.1\r\nA(: b\r\n", HttpError::BadHeaderName),
            (b"GET / HTTP/1.1\r\nAb\r\n", HttpError::BadHeaderName),
            (b"GET / HTTP/1.1\r\nA\rb: c\r\n", HttpError::BadHeaderName),
            (b"GET / HTTP/1.1\r\nA: b\x01\r\n", HttpError::BadHeaderValue),
            (b"GET / HTTP/1.1\r\nA: b\rc\r\n", HttpError::BareCr),
        ];
        for (input, want) in cases {
            assert_eq!(
                walk(input),
                Some(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn fallback_maps_httparse_kinds() {
        assert_eq!(
            diagnose(b"", httparse::Error::TooManyHeaders),
            HttpError::TooManyHeaders
        );
        assert_eq!(
            diagnose(b"", httparse::Error::HeaderName),
            HttpError::BadHeaderName
        );
        assert_eq!(
            diagnose(b"", httparse::Error::HeaderValue),
            HttpError::BadHeaderValue
        );
        assert_eq!(
            diagnose(b"", httparse::Error::Version),
            HttpError::BadVersion
        );
        assert_eq!(
            diagnose(b"", httparse::Error::Token),
            HttpError::BadRequestLine
        );
    }
}
