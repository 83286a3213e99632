//! Encoding complete responses: the redirect, the error answers, and the
//! `200 text/plain` of an ACME challenge.
//!
//! Everything is appended to a caller-owned `Vec<u8>` (reused across
//! requests, so in steady state nothing allocates). Each function reserves
//! its worst case once, then writes. Responses are always `HTTP/1.1` (a
//! server answers with its own highest version, RFC 9110 §6.2) and always
//! carry `Date`, `Content-Type`, `Content-Length` and `Connection`; a `HEAD`
//! request gets the same headers and no body.

use std::ops::Range;

use super::redirect::Redirect;
use super::request::{HttpError, Method, RequestHead};

/// Room for a status line and the fixed headers; the variable parts are
/// added on top when reserving.
const FIXED_HEAD: usize = 256;

/// How a response is framed for the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'d> {
    /// The `Date` value, from [`DateCache`](super::date::DateCache).
    pub date: &'d [u8],
    /// Whether to announce `Connection: keep-alive` rather than `close`.
    pub keep_alive: bool,
    /// Answering `HEAD`: headers only.
    pub head_only: bool,
}

impl<'d> Reply<'d> {
    /// The framing a parsed request asks for: its keep-alive choice, and
    /// no body for `HEAD`.
    pub fn for_request(head: &RequestHead, date: &'d [u8]) -> Self {
        Reply {
            date,
            keep_alive: head.keep_alive(),
            head_only: head.method() == Method::Head,
        }
    }

    /// The framing for a request that could not be parsed: close after.
    pub fn closing(date: &'d [u8]) -> Self {
        Reply {
            date,
            keep_alive: false,
            head_only: false,
        }
    }
}

/// The error answers the redirector gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    /// 400: the request is malformed.
    BadRequest,
    /// 404: an ACME challenge that does not exist.
    NotFound,
    /// 414: the request target is too long.
    UriTooLong,
    /// 429: rate limited; come back after this many seconds.
    TooManyRequests {
        /// Value of `Retry-After`.
        retry_after_secs: u32,
    },
    /// 431: too many or too large header fields.
    HeaderFieldsTooLarge,
}

impl ErrorStatus {
    /// The status code.
    pub fn code(&self) -> u16 {
        match self {
            ErrorStatus::BadRequest => 400,
            ErrorStatus::NotFound => 404,
            ErrorStatus::UriTooLong => 414,
            ErrorStatus::TooManyRequests { .. } => 429,
            ErrorStatus::HeaderFieldsTooLarge => 431,
        }
    }

    /// The reason phrase.
    pub fn reason(&self) -> &'static str {
        match self {
            ErrorStatus::BadRequest => "Bad Request",
            ErrorStatus::NotFound => "Not Found",
            ErrorStatus::UriTooLong => "URI Too Long",
            ErrorStatus::TooManyRequests { .. } => "Too Many Requests",
            ErrorStatus::HeaderFieldsTooLarge => "Request Header Fields Too Large",
        }
    }
}

impl HttpError {
    /// The answer to send before closing, or `None` to close silently.
    pub fn error_status(&self) -> Option<ErrorStatus> {
        match self.status()? {
            414 => Some(ErrorStatus::UriTooLong),
            431 => Some(ErrorStatus::HeaderFieldsTooLarge),
            _ => Some(ErrorStatus::BadRequest),
        }
    }
}

/// Appends the redirect response: status, `Location`, and for non-`HEAD`
/// a short HTML body linking to the new location.
pub fn encode_redirect(out: &mut Vec<u8>, redirect: &Redirect<'_>, reply: &Reply<'_>) {
    let code = redirect.code.status();
    let reason = redirect.code.reason().as_bytes();
    // Location once in the header, twice in the body, where each byte
    // may become a 5-byte entity.
    out.reserve(FIXED_HEAD + 11 * redirect.location_len_bound());

    write_status_line(out, code, reason);
    out.extend_from_slice(b"Location: ");
    let start = out.len();
    redirect.write_location(out);
    let location = start..out.len();
    out.extend_from_slice(b"\r\n");

    let escaped = html_escaped_len(out.get(location.clone()).unwrap_or_default());
    let pieces: [&[u8]; 5] = [
        b"<!DOCTYPE html>\n<title>000 ",
        reason,
        b"</title>\n<a href=\"",
        b"\">",
        b"</a>\n",
    ];
    let body_len = pieces.iter().map(|p| p.len()).sum::<usize>() + 2 * escaped;
    write_common_headers(out, reply, b"text/html; charset=utf-8", body_len);
    if reply.head_only {
        return;
    }
    out.extend_from_slice(b"<!DOCTYPE html>\n<title>");
    write_decimal(out, u64::from(code));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"</title>\n<a href=\"");
    extend_html_escaped_from_within(out, location.clone());
    out.extend_from_slice(b"\">");
    extend_html_escaped_from_within(out, location);
    out.extend_from_slice(b"</a>\n");
}

/// Appends an error response with a one-line `text/plain` body; 429 also
/// gets `Retry-After`.
pub fn encode_error(out: &mut Vec<u8>, status: ErrorStatus, reply: &Reply<'_>) {
    let code = status.code();
    let reason = status.reason().as_bytes();
    out.reserve(FIXED_HEAD + 2 * reason.len());
    write_status_line(out, code, reason);
    if let ErrorStatus::TooManyRequests { retry_after_secs } = status {
        out.extend_from_slice(b"Retry-After: ");
        write_decimal(out, u64::from(retry_after_secs));
        out.extend_from_slice(b"\r\n");
    }
    // "NNN reason\n"
    let body_len = 3 + 1 + reason.len() + 1;
    write_common_headers(out, reply, b"text/plain; charset=utf-8", body_len);
    if reply.head_only {
        return;
    }
    write_decimal(out, u64::from(code));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.push(b'\n');
}

/// Appends `200 OK` with `body` as `text/plain` (the ACME key
/// authorisation).
pub fn encode_text(out: &mut Vec<u8>, body: &[u8], reply: &Reply<'_>) {
    out.reserve(FIXED_HEAD + body.len());
    write_status_line(out, 200, b"OK");
    write_common_headers(out, reply, b"text/plain", body.len());
    if !reply.head_only {
        out.extend_from_slice(body);
    }
}

/// `HTTP/1.1 NNN reason\r\n`.
fn write_status_line(out: &mut Vec<u8>, code: u16, reason: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    write_decimal(out, u64::from(code));
    out.push(b' ');
    out.extend_from_slice(reason);
    out.extend_from_slice(b"\r\n");
}

/// `Date`, `Content-Type`, `Content-Length`, `Connection`, and the empty
/// line that ends the head.
fn write_common_headers(out: &mut Vec<u8>, reply: &Reply<'_>, content_type: &[u8], len: usize) {
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(reply.date);
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(content_type);
    out.extend_from_slice(b"\r\nContent-Length: ");
    write_decimal(out, len as u64);
    out.extend_from_slice(if reply.keep_alive {
        b"\r\nConnection: keep-alive\r\n\r\n".as_slice()
    } else {
        b"\r\nConnection: close\r\n\r\n".as_slice()
    });
}

/// Appends `n` in decimal, without allocating.
pub(crate) fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// The entity for bytes that must not appear raw in HTML text or a
/// double-quoted attribute.
fn html_entity(b: u8) -> Option<&'static [u8]> {
    match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'"' => Some(b"&quot;"),
        b'\'' => Some(b"&#39;"),
        _ => None,
    }
}

/// Length of `s` once HTML-escaped.
fn html_escaped_len(s: &[u8]) -> usize {
    s.iter()
        .map(|&b| html_entity(b).map_or(1, <[u8]>::len))
        .sum()
}

/// Appends `out[range]`, HTML-escaped, to `out` itself (the location was
/// written once into the header; the body copies it from there).
fn extend_html_escaped_from_within(out: &mut Vec<u8>, range: Range<usize>) {
    let end = range.end.min(out.len());
    let mut i = range.start.min(end);
    while i < end {
        let special = out
            .get(i..end)
            .and_then(|s| s.iter().position(|&b| html_entity(b).is_some()))
            .map_or(end, |p| i + p);
        out.extend_from_within(i..special);
        match out.get(special).copied().and_then(html_entity) {
            Some(entity) if special < end => {
                out.extend_from_slice(entity);
                i = special + 1;
            }
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::redirect::{redirect_for, RedirectCode, RedirectConfig};
    use crate::http::request::{parse_head, Parsed};

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn redirect_response(config: &RedirectConfig, input: &[u8]) -> String {
        let Ok(Parsed::Complete { head, .. }) = parse_head(input) else {
            panic!("incomplete");
        };
        let r = redirect_for(config, &head, input).unwrap();
        let mut out = Vec::new();
        encode_redirect(&mut out, &r, &Reply::for_request(&head, DATE));
        String::from_utf8(out).unwrap()
    }

    /// Splits a response into head and body and checks Content-Length.
    fn check_length(response: &str, head_only: bool) -> (String, String) {
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        if head_only {
            assert_eq!(body, "");
        } else {
            assert_eq!(body.len(), len, "{response}");
        }
        (head.to_owned(), body.to_owned())
    }

    #[test]
    fn typical_redirect_is_byte_exact() {
        let got = redirect_response(
            &RedirectConfig::default(),
            b"GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\n\r\n",
        );
        let want = "HTTP/1.1 301 Moved Permanently\r\n\
            Location: https://example.com/index.html?a=1\r\n\
            Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
            Content-Type: text/html; charset=utf-8\r\n\
            Content-Length: 137\r\n\
            Connection: keep-alive\r\n\r\n\
            <!DOCTYPE html>\n<title>301 Moved Permanently</title>\n\
            <a href=\"https://example.com/index.html?a=1\">https://example.com/index.html?a=1</a>\n";
        assert_eq!(got, want);
        check_length(&got, false);
    }

    #[test]
    fn head_gets_headers_only_with_same_length() {
        let config = RedirectConfig {
            code: RedirectCode::PermanentRedirect,
            ..RedirectConfig::default()
        };
        let get = redirect_response(&config, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let head = redirect_response(&config, b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let (get_head, body) = check_length(&get, false);
        let (head_head, _) = check_length(&head, true);
        assert_eq!(get_head, head_head);
        assert!(get.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"));
        assert!(body.contains("<title>308 Permanent Redirect</title>"));
    }

    #[test]
    fn connection_header_follows_request() {
        let close = redirect_response(
            &RedirectConfig::default(),
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        );
        assert!(close.contains("\r\nConnection: close\r\n"));
        let old = redirect_response(&RedirectConfig::default(), b"GET / HTTP/1.0\r\n\r\n");
        assert!(old.contains("\r\nConnection: close\r\n"));
        assert!(old.contains("Location: https://localhost/\r\n"));
    }

    #[test]
    fn body_link_is_html_escaped() {
        let got = redirect_response(
            &RedirectConfig::default(),
            b"GET /a?x=1&y='2'\"<> HTTP/1.1\r\nHost: a\r\n\r\n",
        );
        let (head, body) = check_length(&got, false);
        assert!(head.contains("Location: https://a/a?x=1&y='2'%22%3C%3E\r\n"));
        let link = "https://a/a?x=1&amp;y=&#39;2&#39;%22%3C%3E";
        assert_eq!(body.matches(link).count(), 2, "{body}");
        assert!(!body.contains("&y"));
    }

    #[test]
    fn error_responses() {
        let statuses = [
            (ErrorStatus::BadRequest, "400 Bad Request"),
            (ErrorStatus::NotFound, "404 Not Found"),
            (ErrorStatus::UriTooLong, "414 URI Too Long"),
            (
                ErrorStatus::TooManyRequests {
                    retry_after_secs: 30,
                },
                "429 Too Many Requests",
            ),
            (
                ErrorStatus::HeaderFieldsTooLarge,
                "431 Request Header Fields Too Large",
            ),
        ];
        for (status, line) in statuses {
            let mut out = Vec::new();
            encode_error(&mut out, status, &Reply::closing(DATE));
            let text = String::from_utf8(out).unwrap();
            let (head, body) = check_length(&text, false);
            assert!(head.starts_with(&format!("HTTP/1.1 {line}\r\n")), "{head}");
            assert_eq!(body, format!("{line}\n"));
            assert!(head.contains("\r\nConnection: close"));
            assert!(head.contains("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT"));
            assert_eq!(
                head.contains("\r\nRetry-After: 30"),
                status.code() == 429,
                "{head}"
            );
        }
        let mut out = Vec::new();
        let reply = Reply {
            date: DATE,
            keep_alive: true,
            head_only: true,
        };
        encode_error(&mut out, ErrorStatus::NotFound, &reply);
        let text = String::from_utf8(out).unwrap();
        check_length(&text, true);
        assert!(text.contains("Connection: keep-alive"));
    }

    #[test]
    fn parse_errors_map_to_answers() {
        assert_eq!(HttpError::TlsHandshake.error_status(), None);
        assert_eq!(HttpError::Http2Preface.error_status(), None);
        assert_eq!(
            HttpError::TargetTooLong.error_status(),
            Some(ErrorStatus::UriTooLong)
        );
        assert_eq!(
            HttpError::HeadTooLarge.error_status(),
            Some(ErrorStatus::HeaderFieldsTooLarge)
        );
        assert_eq!(
            HttpError::BareCr.error_status(),
            Some(ErrorStatus::BadRequest)
        );
    }

    #[test]
    fn text_response() {
        let mut out = Vec::new();
        let reply = Reply {
            date: DATE,
            keep_alive: true,
            head_only: false,
        };
        encode_text(&mut out, b"token.thumbprint", &reply);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = check_length(&text, false);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("Content-Type: text/plain\r\n"));
        assert_eq!(body, "token.thumbprint");
    }

    #[test]
    fn reused_buffer_does_not_grow() {
        let input = b"GET /some/path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let Ok(Parsed::Complete { head, .. }) = parse_head(input) else {
            panic!();
        };
        let config = RedirectConfig::default();
        let r = redirect_for(&config, &head, input).unwrap();
        let mut out = Vec::new();
        encode_redirect(&mut out, &r, &Reply::for_request(&head, DATE));
        let (ptr, cap) = (out.as_ptr(), out.capacity());
        for _ in 0..3 {
            out.clear();
            encode_redirect(&mut out, &r, &Reply::for_request(&head, DATE));
            assert_eq!((out.as_ptr(), out.capacity()), (ptr, cap));
        }
    }

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 431, 65535, u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn escaping_from_within_handles_edges() {
        let mut out = b"a&b".to_vec();
        extend_html_escaped_from_within(&mut out, 0..3);
        assert_eq!(out, b"a&ba&amp;b");
        let mut out = b"&".to_vec();
        extend_html_escaped_from_within(&mut out, 0..1);
        assert_eq!(out, b"&&amp;");
        // A range past the end is clamped, not a panic.
        let mut out = b"xy".to_vec();
        extend_html_escaped_from_within(&mut out, 1..10);
        assert_eq!(out, b"xyy");
    }
}
