//! Client bytes made safe for a log line, shared by every protocol's access
//! log.
//!
//! Every byte that came from a client (a request target, a CGI script's
//! stderr, a meta a script chose) goes through [`escape_for_log`] before it
//! reaches the log: every byte outside printable ASCII (controls, DEL, all
//! non-ASCII), and `"` and `\\`, becomes `\\xNN`. A request holding CR LF,
//! ANSI escapes or quotes then cannot end a line early, forge a new one,
//! colour a terminal or close a quoted field, and the text reads back
//! unambiguously.

use std::fmt;

/// Bytes from a client, displayed escaped; see [`escape_for_log`].
#[derive(Debug, Clone, Copy)]
pub struct LogEscaped<'a>(&'a [u8]);

/// Wraps client bytes so they display escaped. Formats lazily, without
/// allocating: use it directly in `log!` arguments.
pub fn escape_for_log(bytes: &[u8]) -> LogEscaped<'_> {
    LogEscaped(bytes)
}

/// Whether a byte must be written as `\xNN` in a log line.
fn needs_log_escape(b: u8) -> bool {
    !(b' '..=b'~').contains(&b) || b == b'"' || b == b'\\'
}

impl fmt::Display for LogEscaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Runs of safe bytes are written whole; only the rare unsafe byte
        // costs a formatting call.
        let mut rest = self.0;
        loop {
            let plain = rest
                .iter()
                .position(|&b| needs_log_escape(b))
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(plain);
            // `run` is printable ASCII, so always UTF-8.
            f.write_str(std::str::from_utf8(run).unwrap_or_default())?;
            let Some((&b, after)) = tail.split_first() else {
                return Ok(());
            };
            write!(f, "\\x{b:02X}")?;
            rest = after;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_escaping() {
        let cases: &[(&[u8], &str)] = &[
            (b"/plain/path?q=1&x", "/plain/path?q=1&x"),
            (b"gemini://example.org/a?b=c", "gemini://example.org/a?b=c"),
            (b"", ""),
            (b"a b", "a b"),
            (
                b"\r\n127.0.0.1 \"GET / HTTP/1.1\" 200",
                "\\x0D\\x0A127.0.0.1 \\x22GET / HTTP/1.1\\x22 200",
            ),
            (b"back\\slash", "back\\x5Cslash"),
            (b"\x00\x1b[31m\x7f", "\\x00\\x1B[31m\\x7F"),
            ("caf\u{e9}".as_bytes(), "caf\\xC3\\xA9"),
            (b"\xff", "\\xFF"),
        ];
        for (input, want) in cases {
            let got = escape_for_log(input).to_string();
            assert_eq!(got, *want);
        }
    }

    #[test]
    fn escaped_output_is_one_printable_line() {
        let all: Vec<u8> = (0..=255).collect();
        let escaped = escape_for_log(&all).to_string();
        assert!(escaped.bytes().all(|b| (0x20..0x7F).contains(&b)));
        assert!(!escaped.contains('"'));
        // Every backslash starts an escape, so the text reads back exactly.
        assert_eq!(
            escaped.matches("\\x").count(),
            escaped.matches('\\').count()
        );
    }
}
