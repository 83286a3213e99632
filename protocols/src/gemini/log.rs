//! Log lines that a client cannot forge.
//!
//! Every byte that came from a client (the request URL, a CGI script's
//! stderr, a meta a script chose) goes through [`escape_for_log`] before it
//! reaches the log, so a request holding CR LF, ANSI escapes or quotes cannot
//! start a fake log line, colour a terminal or break a quoted field.
//!
//! The access log is one line per answered request, at info level with the
//! target `access`, so it can be routed or silenced on its own
//! (`RUST_LOG=access=info`).

use std::fmt::{self, Write as _};
use std::time::Duration;

use torsion_reactor::PeerAddr;

use super::status::Status;

/// Bytes with the log-unsafe ones spelled `\xNN`: every byte outside printable
/// ASCII (controls, DEL, all non-ASCII), plus `"` and `\`, so the result is
/// one line of printable ASCII that reads back unambiguously.
pub fn escape_for_log(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    push_escaped(&mut out, bytes);
    out
}

/// Appends the escaped form of `bytes` to `out` (see [`escape_for_log`]).
pub fn push_escaped(out: &mut String, bytes: &[u8]) {
    // Runs of safe bytes are copied whole; only the rare unsafe byte costs a
    // formatting call.
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| !is_log_safe(b)) {
        let (run, tail) = rest.split_at(at);
        // Safe bytes are printable ASCII, so always valid UTF-8.
        out.push_str(std::str::from_utf8(run).unwrap_or(""));
        if let Some((&b, after)) = tail.split_first() {
            let _ = write!(out, "\\x{b:02X}");
            rest = after;
        } else {
            rest = tail;
        }
    }
    out.push_str(std::str::from_utf8(rest).unwrap_or(""));
}

/// Printable ASCII other than `"` and `\`.
fn is_log_safe(b: u8) -> bool {
    (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\'
}

/// Everything the access log says about one request.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// Who asked.
    pub peer: PeerAddr,
    /// The request line as received (escaped when written), or empty when no
    /// complete request arrived.
    pub url: &'a [u8],
    /// The status answered.
    pub status: Status,
    /// The meta answered (the MIME type for 20). Escaped when written: a CGI
    /// script chooses it.
    pub meta: &'a str,
    /// Bytes that reached the peer, header included.
    pub bytes: u64,
    /// From the connection being ready (after the handshake) to the end of
    /// the response.
    pub elapsed: Duration,
}

impl fmt::Display for AccessRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = String::with_capacity(self.url.len() + 8);
        push_escaped(&mut url, self.url);
        let mut meta = String::with_capacity(self.meta.len() + 8);
        push_escaped(&mut meta, self.meta.as_bytes());
        write!(
            f,
            "{} \"{}\" {} \"{}\" {} {}ms",
            PeerIp(self.peer),
            url,
            self.status,
            meta,
            self.bytes,
            self.elapsed.as_millis()
        )
    }
}

/// The client's address without the port (as Jetforce logs it).
struct PeerIp(PeerAddr);

impl fmt::Display for PeerIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.ip() {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unix"),
        }
    }
}

/// Writes the access-log line for one request.
pub fn log_access(record: &AccessRecord<'_>) {
    log::info!(target: "access", "{record}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_kept() {
        assert_eq!(
            escape_for_log(b"gemini://example.org/a?b=c"),
            "gemini://example.org/a?b=c"
        );
        assert_eq!(escape_for_log(b""), "");
    }

    #[test]
    fn controls_quotes_backslashes_and_non_ascii_are_escaped() {
        assert_eq!(
            escape_for_log(b"a\r\nb\"c\\d\x1b[31m\x7f\xc3\xa9"),
            "a\\x0D\\x0Ab\\x22c\\x5Cd\\x1B[31m\\x7F\\xC3\\xA9"
        );
        assert_eq!(escape_for_log(b"\0"), "\\x00");
    }

    #[test]
    fn escaped_output_is_one_printable_line() {
        let all: Vec<u8> = (0..=255).collect();
        let escaped = escape_for_log(&all);
        assert!(escaped.bytes().all(|b| (0x20..0x7F).contains(&b)));
        assert!(!escaped.contains('"'));
        // Every backslash starts an escape, so the text reads back exactly.
        assert_eq!(
            escaped.matches("\\x").count(),
            escaped.matches('\\').count()
        );
    }

    #[test]
    fn access_line_escapes_url_and_meta() {
        let record = AccessRecord {
            peer: PeerAddr::Tcp("192.0.2.7:4242".parse().unwrap()),
            url: b"gemini://h/\r\nFAKE 20",
            status: Status::Success,
            meta: "text/gemini\"x",
            bytes: 1234,
            elapsed: Duration::from_millis(17),
        };
        assert_eq!(
            record.to_string(),
            "192.0.2.7 \"gemini://h/\\x0D\\x0AFAKE 20\" 20 \"text/gemini\\x22x\" 1234 17ms"
        );
    }
}
