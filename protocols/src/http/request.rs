//! HTTP/1.x request head parsing.
//!
//! [`parse_head`] is called with everything received so far on a connection
//! (or since the previous request ended) and answers `Partial`, a complete
//! [`RequestHead`] plus how many bytes it used, or an [`HttpError`] that says
//! how to answer. httparse does the tokenising, with its strict defaults;
//! this module adds the limits and the message-level rules httparse leaves to
//! its caller (framing headers, `Host`).
//!
//! Decisions worth knowing:
//! - A bare LF is accepted as a line end in the head (httparse does, and
//!   RFC 9112 §2.2 allows it); a bare CR is always an error.
//! - `Content-Length` may be repeated with the same value (RFC 9110 §8.6
//!   allows treating that as one), but the list form `Content-Length: 1,1`
//!   is refused: it is rare from real clients and common in smuggling probes.
//! - `Transfer-Encoding` must be exactly one `chunked` coding. Any other
//!   coding, or `chunked` twice, is a 400 rather than RFC 9112's 501: a
//!   redirector never decodes bodies, and refusing is the safe answer.
//! - HTTP/1.0 with `Transfer-Encoding` is refused (RFC 9112 §6.1 says the
//!   framing is faulty).
//! - `Host` is validated here (missing in HTTP/1.1, repeated, or invalid →
//!   400, RFC 9112 §3.2), so every complete head has a usable host or none.
//!
//! The head does not copy the request: it keeps offsets into the buffer it
//! was parsed from, so the caller passes that buffer back to the accessors
//! and must not change its first `consumed` bytes until done with the head.

use std::fmt;

use super::host::{parse_host, HostError, HostKind, HostName};
use super::syntax;

/// Largest request head (request line + headers) we buffer: the same 8 KiB
/// nginx and most servers use, enough for any real browser request.
pub const MAX_HEAD: usize = 8192;

/// Most header fields in one request; real browsers send about 20.
pub const MAX_HEADERS: usize = 64;

/// Longest request target; longer is answered 414 before the head ends, so
/// a client cannot make us buffer a huge URL to learn it is too long.
pub const MAX_TARGET: usize = 4096;

/// First bytes of the HTTP/2 connection preface (RFC 9113 §3.4); enough to
/// be sure, as no HTTP/1.x request line can start this way.
const HTTP2_PREFACE_START: &[u8] = b"PRI * HTTP/2";

/// TLS record type "handshake": the first byte of a ClientHello, which no
/// HTTP method can start with.
const TLS_HANDSHAKE: u8 = 0x16;

/// The request methods the redirector treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: same headers as `GET`, no body.
    Head,
    /// Any other token; the raw bytes are in [`RequestHead::method_bytes`].
    Other,
}

/// The HTTP version of the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: close after the response unless asked to keep alive.
    Http10,
    /// `HTTP/1.1`: persistent unless asked to close.
    Http11,
}

/// How the request body, if any, is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes follow the head.
    ContentLength(u64),
    /// A chunked body follows the head.
    Chunked,
}

/// The `Connection` options that matter here, from all `Connection` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionTokens {
    /// `close` was listed.
    pub close: bool,
    /// `keep-alive` was listed.
    pub keep_alive: bool,
    /// `upgrade` was listed.
    pub upgrade: bool,
}

/// Where a piece of the head lies in the parsed buffer. `u16` is enough
/// because the head is at most [`MAX_HEAD`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    /// Offset of the first byte.
    start: u16,
    /// Number of bytes.
    len: u16,
}

impl Span {
    /// The span of `part`, which must be a sub-slice of `buf`.
    fn of(buf: &[u8], part: &[u8]) -> Option<Span> {
        let start = (part.as_ptr() as usize).checked_sub(buf.as_ptr() as usize)?;
        if start.checked_add(part.len())? > buf.len() {
            return None;
        }
        Some(Span {
            start: u16::try_from(start).ok()?,
            len: u16::try_from(part.len()).ok()?,
        })
    }

    /// The bytes of the span in `buf`; empty if `buf` is not the buffer the
    /// span was taken from and is too short.
    fn get(self, buf: &[u8]) -> &[u8] {
        let start = usize::from(self.start);
        buf.get(start..start + usize::from(self.len))
            .unwrap_or_default()
    }
}

/// A validated `Host`, as offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HostSpan {
    /// The host name without port.
    name: Span,
    /// What the name is.
    kind: HostKind,
    /// The port given after the host.
    port: Option<u16>,
}

/// A parsed request head: small, `Copy`, and without allocation. Byte
/// accessors take the buffer the head was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// The method, classified.
    method: Method,
    /// The method token.
    method_span: Span,
    /// The request target, at most [`MAX_TARGET`] bytes.
    target: Span,
    /// The protocol version.
    version: Version,
    /// The one `Host` field, validated; `None` only for HTTP/1.0.
    host: Option<HostSpan>,
    /// `Connection` options.
    connection: ConnectionTokens,
    /// How the body is delimited.
    body: BodyFraming,
}

impl RequestHead {
    /// The method, classified.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The method token as sent (a `tchar` token, e.g. for logging).
    pub fn method_bytes<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.method_span.get(buf)
    }

    /// The request target as sent: visible ASCII or UTF-8, no spaces.
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.target.get(buf)
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The validated `Host` field; `None` only for an HTTP/1.0 request
    /// without one.
    pub fn host<'b>(&self, buf: &'b [u8]) -> Option<HostName<'b>> {
        self.host
            .map(|h| HostName::from_validated(h.name.get(buf), h.kind, h.port))
    }

    /// The `Connection` options.
    pub fn connection(&self) -> ConnectionTokens {
        self.connection
    }

    /// Whether the connection may serve another request after this one:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive` (and no `close`).
    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.connection.close,
            Version::Http10 => self.connection.keep_alive && !self.connection.close,
        }
    }

    /// How the body is delimited.
    pub fn body(&self) -> BodyFraming {
        self.body
    }
}

/// The outcome of [`parse_head`] when nothing is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The head is complete.
    Complete {
        /// The head.
        head: RequestHead,
        /// Bytes of the head, terminating empty line included; the body or
        /// the next request starts there.
        consumed: usize,
    },
    /// More bytes are needed.
    Partial,
}

/// Why a request head was refused. [`HttpError::status`] says how to answer;
/// after any of these the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The peer started a TLS handshake on the plain-HTTP port. Close
    /// without answering: an HTTP answer would be noise to a TLS client.
    TlsHandshake,
    /// The peer sent the HTTP/2 connection preface. Close without
    /// answering.
    Http2Preface,
    /// The head did not end within [`MAX_HEAD`] bytes (431).
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header fields (431).
    TooManyHeaders,
    /// The request target is longer than [`MAX_TARGET`] (414).
    TargetTooLong,
    /// The request line is not `method SP target SP version`: a bad method
    /// byte, two spaces, a target byte that is not allowed or not UTF-8.
    BadRequestLine,
    /// The version is not `HTTP/1.0` or `HTTP/1.1`.
    BadVersion,
    /// A CR not followed by LF where a line may end (after the version,
    /// in a header value, before the first line or the final empty line).
    /// A CR inside the method, target or a header name is wrong whatever
    /// follows, so it is `BadRequestLine` or `BadHeaderName`.
    BareCr,
    /// A header line starting with whitespace: obsolete line folding, or
    /// whitespace between the request line and the first header.
    ObsFold,
    /// Whitespace between a header name and its colon (RFC 9112 §5.1 says
    /// reject: it is a smuggling vector).
    SpaceBeforeColon,
    /// A header name with a byte outside `tchar`, or a line without colon.
    BadHeaderName,
    /// A header value with a control byte other than HTAB.
    BadHeaderValue,
    /// HTTP/1.1 without `Host`.
    MissingHost,
    /// More than one `Host` field.
    DuplicateHost,
    /// A `Host` (or absolute-form authority) that is not a valid host.
    BadHost(HostError),
    /// `Content-Length` that is not a plain non-negative decimal fitting in
    /// 64 bits (signs, spaces inside, hex, empty, overflow).
    BadContentLength,
    /// `Content-Length` in list form (`1,1`).
    ContentLengthList,
    /// Several `Content-Length` fields with different values.
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`.
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    TransferEncodingInHttp10,
    /// `Transfer-Encoding` other than exactly one `chunked`.
    UnsupportedTransferEncoding,
    /// A request target that cannot be redirected: `*`, authority-form, a
    /// scheme other than http(s), or no authority in absolute-form.
    BadTarget,
}

impl HttpError {
    /// The status code to answer with before closing, or `None` to close
    /// without answering.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::TlsHandshake | HttpError::Http2Preface => None,
            HttpError::HeadTooLarge | HttpError::TooManyHeaders => Some(431),
            HttpError::TargetTooLong => Some(414),
            _ => Some(400),
        }
    }

    /// A short reason, fit for a log line.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::TlsHandshake => "TLS handshake on plain HTTP port",
            HttpError::Http2Preface => "HTTP/2 preface on HTTP/1.1 port",
            HttpError::HeadTooLarge => "request head too large",
            HttpError::TooManyHeaders => "too many header fields",
            HttpError::TargetTooLong => "request target too long",
            HttpError::BadRequestLine => "malformed request line",
            HttpError::BadVersion => "unsupported HTTP version",
            HttpError::BareCr => "bare CR",
            HttpError::ObsFold => "header line starts with whitespace",
            HttpError::SpaceBeforeColon => "whitespace before header colon",
            HttpError::BadHeaderName => "invalid header name",
            HttpError::BadHeaderValue => "invalid header value",
            HttpError::MissingHost => "missing Host",
            HttpError::DuplicateHost => "more than one Host",
            HttpError::BadHost(e) => e.reason(),
            HttpError::BadContentLength => "invalid Content-Length",
            HttpError::ContentLengthList => "Content-Length given as a list",
            HttpError::ConflictingContentLength => "conflicting Content-Length values",
            HttpError::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding"
            }
            HttpError::TransferEncodingInHttp10 => "Transfer-Encoding in HTTP/1.0",
            HttpError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            HttpError::BadTarget => "request target cannot be redirected",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::BadHost(e) => Some(e),
            _ => None,
        }
    }
}

/// Parses a request head from the start of `buf`.
///
/// Call again with the longer buffer after `Partial`. Only the first
/// [`MAX_HEAD`] bytes are ever looked at. The result for a buffer never
/// depends on how its bytes arrived.
pub fn parse_head(buf: &[u8]) -> Result<Parsed, HttpError> {
    match buf.first() {
        None => return Ok(Parsed::Partial),
        Some(&TLS_HANDSHAKE) => return Err(HttpError::TlsHandshake),
        Some(_) => {}
    }
    if buf.starts_with(HTTP2_PREFACE_START) {
        return Err(HttpError::Http2Preface);
    }
    let window = buf.get(..MAX_HEAD).unwrap_or(buf);
    if target_too_long(window) {
        return Err(HttpError::TargetTooLong);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => {
            let head = interpret(window, &request)?;
            Ok(Parsed::Complete { head, consumed })
        }
        Ok(httparse::Status::Partial) if window.len() >= MAX_HEAD => Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooManyHeaders),
        Err(e) => Err(syntax::diagnose(window, e)),
    }
}

/// Whether the request line has a target of more than [`MAX_TARGET`]
/// bytes, looking only at bytes httparse would accept up to there (so a
/// head with an earlier error gets that error, however it was split).
fn target_too_long(window: &[u8]) -> bool {
    let Ok(Some(start)) = syntax::skip_empty_lines(window) else {
        return false;
    };
    let method_end = syntax::run_end(window, start, syntax::is_tchar);
    if method_end == start || window.get(method_end) != Some(&b' ') {
        return false;
    }
    let target = window.get(method_end + 1..).unwrap_or_default();
    let run = target
        .iter()
        .take(MAX_TARGET + 1)
        .take_while(|&&b| syntax::is_target_byte(b))
        .count();
    run > MAX_TARGET
}

/// Applies the message-level rules to a head httparse accepted.
fn interpret(window: &[u8], request: &httparse::Request<'_, '_>) -> Result<RequestHead, HttpError> {
    // httparse fills all three before answering Complete.
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(HttpError::BadRequestLine);
    };
    if target.len() > MAX_TARGET {
        return Err(HttpError::TargetTooLong);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    // Spans of sub-slices of `window`, which is at most MAX_HEAD long, so
    // this cannot fail; the error keeps it panic-free regardless.
    let span = |part: &[u8]| Span::of(window, part).ok_or(HttpError::BadRequestLine);

    let mut host = None;
    let mut host_count = 0u32;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_codings = 0u32;
    let mut other_codings = false;
    let mut connection = ConnectionTokens::default();

    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            host_count += 1;
            if host_count > 1 {
                return Err(HttpError::DuplicateHost);
            }
            let parsed = parse_host(header.value).map_err(HttpError::BadHost)?;
            host = Some(HostSpan {
                name: span(parsed.as_bytes())?,
                kind: parsed.kind(),
                port: parsed.port(),
            });
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let value = parse_content_length(header.value)?;
            match content_length {
                Some(previous) if previous != value => {
                    return Err(HttpError::ConflictingContentLength)
                }
                _ => content_length = Some(value),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
            for coding in list_elements(header.value) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked_codings += 1;
                } else {
                    other_codings = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list_elements(header.value) {
                if option.eq_ignore_ascii_case(b"close") {
                    connection.close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    connection.keep_alive = true;
                } else if option.eq_ignore_ascii_case(b"upgrade") {
                    connection.upgrade = true;
                }
            }
        }
    }

    let body = if transfer_encoding {
        if content_length.is_some() {
            return Err(HttpError::ContentLengthWithTransferEncoding);
        }
        if version == Version::Http10 {
            return Err(HttpError::TransferEncodingInHttp10);
        }
        if chunked_codings != 1 || other_codings {
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            None | Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::ContentLength(n),
        }
    };
    if host.is_none() && version == Version::Http11 {
        return Err(HttpError::MissingHost);
    }

    Ok(RequestHead {
        method: match method {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            _ => Method::Other,
        },
        method_span: span(method.as_bytes())?,
        target: span(target.as_bytes())?,
        version,
        host,
        connection,
        body,
    })
}

/// A `Content-Length` value: ASCII digits only, no sign, fits in `u64`.
fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    if value.contains(&b',') {
        return Err(HttpError::ContentLengthList);
    }
    if value.is_empty() {
        return Err(HttpError::BadContentLength);
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(HttpError::BadContentLength);
        }
        acc.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::BadContentLength)
    })
}

/// The non-empty elements of a comma-separated list, optional whitespace
/// trimmed (RFC 9110 §5.6.1: empty elements are ignored).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|e| e.trim_ascii())
        .filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` whole, and again fed one byte at a time (stopping at
    /// the first non-Partial answer); both must agree.
    fn parse(input: &[u8]) -> Result<Parsed, HttpError> {
        let whole = parse_head(input);
        let mut bytewise = Ok(Parsed::Partial);
        for end in 1..=input.len() {
            bytewise = parse_head(&input[..end]);
            if bytewise != Ok(Parsed::Partial) {
                break;
            }
        }
        assert_eq!(whole, bytewise, "{:?}", String::from_utf8_lossy(input));
        whole
    }

    fn complete(input: &[u8]) -> (RequestHead, usize) {
        match parse(input) {
            Ok(Parsed::Complete { head, consumed }) => (head, consumed),
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn error(input: &[u8]) -> HttpError {
        match parse(input) {
            Err(e) => e,
            other => panic!("{other:?} for {:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn simple_get() {
        let input = b"GET /a?b=c HTTP/1.1\r\nHost: Example.com:8080\r\nAccept: */*\r\n\r\nNEXT";
        let (head, consumed) = complete(input);
        assert_eq!(consumed, input.len() - 4);
        assert_eq!(head.method(), Method::Get);
        assert_eq!(head.method_bytes(input), b"GET");
        assert_eq!(head.target(input), b"/a?b=c");
        assert_eq!(head.version(), Version::Http11);
        let host = head.host(input).unwrap();
        assert_eq!(host.to_string(), "example.com");
        assert_eq!(host.port(), Some(8080));
        assert_eq!(head.body(), BodyFraming::None);
        assert!(head.keep_alive());
    }

    #[test]
    fn methods_are_case_sensitive() {
        let (head, _) = complete(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.method(), Method::Head);
        let input = b"head / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (head, _) = complete(input);
        assert_eq!(head.method(), Method::Other);
        assert_eq!(head.method_bytes(input), b"head");
        let (head, _) = complete(b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.method(), Method::Other);
    }

    #[test]
    fn partial_heads() {
        for input in [
            &b""[..],
            b"G",
            b"GET",
            b"GET /",
            b"GET / HTTP/1.",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r",
            b"\r\n",
            b"PRI * HTTP/",
        ] {
            assert_eq!(parse(input), Ok(Parsed::Partial), "{input:?}");
        }
    }

    #[test]
    fn leading_empty_lines_and_bare_lf_are_accepted() {
        let input = b"\r\n\nGET / HTTP/1.1\nHost: a\n\n";
        let (head, consumed) = complete(input);
        assert_eq!(consumed, input.len());
        assert_eq!(head.target(input), b"/");
    }

    #[test]
    fn keep_alive_rules() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
                true,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: ,, keep-alive ,\r\n\r\n",
                true,
            ),
        ];
        for (input, want) in cases {
            let (head, _) = complete(input);
            assert_eq!(
                head.keep_alive(),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let (head, _) =
            complete(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n");
        assert_eq!(
            head.connection(),
            ConnectionTokens {
                close: false,
                keep_alive: true,
                upgrade: true
            }
        );
    }

    #[test]
    fn host_rules() {
        let (head, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(head.host(b"GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(error(b"GET / HTTP/1.1\r\n\r\n"), HttpError::MissingHost);
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
            HttpError::DuplicateHost
        );
        assert_eq!(
            error(b"GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n"),
            HttpError::DuplicateHost
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost: a.com@evil.com\r\n\r\n"),
            HttpError::BadHost(HostError::InvalidByte)
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
            HttpError::BadHost(HostError::Empty)
        );
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n"),
            HttpError::BadHost(HostError::BadPort)
        );
        let input = b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
        let (head, _) = complete(input);
        assert_eq!(head.host(input).unwrap().as_bytes(), b"[::1]");
    }

    #[test]
    fn content_length_framing() {
        let (head, _) = complete(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n");
        assert_eq!(head.body(), BodyFraming::ContentLength(42));
        let (head, _) = complete(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(head.body(), BodyFraming::None);
        let (head, _) = complete(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length:  7 \r\n\r\n",
        );
        assert_eq!(head.body(), BodyFraming::ContentLength(7));
        let (head, _) =
            complete(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(head.body(), BodyFraming::ContentLength(u64::MAX));
        let (head, _) = complete(b"POST / HTTP/1.0\r\nContent-Length: 007\r\n\r\n");
        assert_eq!(head.body(), BodyFraming::ContentLength(7));
    }

    #[test]
    fn content_length_errors() {
        let cases: &[(&[u8], HttpError)] = &[
            (
                b"Content-Length: 1\r\nContent-Length: 2",
                HttpError::ConflictingContentLength,
            ),
            (b"Content-Length: 1,1", HttpError::ContentLengthList),
            (b"Content-Length: 1, 2", HttpError::ContentLengthList),
            (b"Content-Length: -1", HttpError::BadContentLength),
            (b"Content-Length: +1", HttpError::BadContentLength),
            (b"Content-Length: 0x10", HttpError::BadContentLength),
            (b"Content-Length: 1 2", HttpError::BadContentLength),
            (b"Content-Length: abc", HttpError::BadContentLength),
            (b"Content-Length:", HttpError::BadContentLength),
            (
                b"Content-Length: 18446744073709551616",
                HttpError::BadContentLength,
            ),
            (
                b"Content-Length: 99999999999999999999999",
                HttpError::BadContentLength,
            ),
            (
                b"Content-Length: 3\r\nTransfer-Encoding: chunked",
                HttpError::ContentLengthWithTransferEncoding,
            ),
            (
                b"Transfer-Encoding: chunked\r\nContent-Length: 3",
                HttpError::ContentLengthWithTransferEncoding,
            ),
        ];
        for (headers, want) in cases {
            let input = [
                b"POST / HTTP/1.1\r\nHost: a\r\n".as_slice(),
                headers,
                b"\r\n\r\n",
            ]
            .concat();
            assert_eq!(
                error(&input),
                *want,
                "{:?}",
                String::from_utf8_lossy(headers)
            );
        }
    }

    #[test]
    fn transfer_encoding() {
        for value in [
            "chunked",
            "Chunked",
            "CHUNKED",
            " chunked ",
            "chunked,",
            ", chunked",
        ] {
            let input = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {value}\r\n\r\n");
            let (head, _) = complete(input.as_bytes());
            assert_eq!(head.body(), BodyFraming::Chunked, "{value}");
        }
        for value in [
            "gzip",
            "gzip, chunked",
            "chunked, gzip",
            "chunked, chunked",
            "identity",
            "",
            "chunked;q=1",
            "xchunked",
        ] {
            let input = format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {value}\r\n\r\n");
            assert_eq!(
                error(input.as_bytes()),
                HttpError::UnsupportedTransferEncoding,
                "{value}"
            );
        }
        assert_eq!(
            error(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HttpError::UnsupportedTransferEncoding
        );
        assert_eq!(
            error(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HttpError::TransferEncodingInHttp10
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&[u8], HttpError)] = &[
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n X: y\r\n\r\n",
                HttpError::ObsFold,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n",
                HttpError::ObsFold,
            ),
            (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", HttpError::ObsFold),
            (
                b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
                HttpError::SpaceBeforeColon,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX\t: y\r\n\r\n",
                HttpError::SpaceBeforeColon,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX@Y: z\r\n\r\n",
                HttpError::BadHeaderName,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
                HttpError::BadHeaderName,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n",
                HttpError::BadHeaderName,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
                HttpError::BadHeaderValue,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n",
                HttpError::BadHeaderValue,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
                HttpError::BareCr,
            ),
            (b"GET / HTTP/1.1\rHost: a\r\n\r\n", HttpError::BareCr),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\rX", HttpError::BareCr),
            (b"GET /a\rb HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"\rGET / HTTP/1.1\r\n\r\n", HttpError::BareCr),
            (
                b"GET / HTTP/1.1\r\nX\rY: z\r\n\r\n",
                HttpError::BadHeaderName,
            ),
            (b"GET  / HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET /  HTTP/1.1\r\n\r\n", HttpError::BadVersion),
            (b"GET / HTTP/1.1 \r\n\r\n", HttpError::BadRequestLine),
            (b"GET\t/ HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b" GET / HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET /a b HTTP/1.1\r\n\r\n", HttpError::BadVersion),
            (b"GET /\xff\xfe HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET /\x01 HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"G@T / HTTP/1.1\r\n\r\n", HttpError::BadRequestLine),
            (b"GET / HTTP/1.2\r\n\r\n", HttpError::BadVersion),
            (b"GET / HTTP/2.0\r\n\r\n", HttpError::BadVersion),
            (b"GET / HTTP/0.9\r\n\r\n", HttpError::BadVersion),
            (b"GET / http/1.1\r\n\r\n", HttpError::BadVersion),
            (b"GET /\r\n\r\n", HttpError::BadRequestLine),
            (b"\x00\x01\x02", HttpError::BadRequestLine),
        ];
        for (input, want) in cases {
            let got = error(input);
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(got.status(), Some(400));
        }
    }

    #[test]
    fn utf8_target_is_accepted() {
        let input = "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n";
        let (head, _) = complete(input.as_bytes());
        assert_eq!(head.target(input.as_bytes()), "/caf\u{e9}".as_bytes());
    }

    #[test]
    fn not_http1() {
        assert_eq!(
            error(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            HttpError::TlsHandshake
        );
        assert_eq!(error(b"\x16"), HttpError::TlsHandshake);
        assert_eq!(
            error(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            HttpError::Http2Preface
        );
        assert_eq!(error(b"PRI * HTTP/2"), HttpError::Http2Preface);
        assert_eq!(HttpError::TlsHandshake.status(), None);
        assert_eq!(HttpError::Http2Preface.status(), None);
        // A PRI request that is HTTP/1.1 is just an unknown method.
        let (head, _) = complete(b"PRI * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.method(), Method::Other);
    }

    #[test]
    fn head_size_limit() {
        // A head that never ends: refused once MAX_HEAD bytes are in.
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        input.resize(MAX_HEAD - 1, b'a');
        assert_eq!(parse_head(&input), Ok(Parsed::Partial));
        input.push(b'a');
        assert_eq!(parse_head(&input), Err(HttpError::HeadTooLarge));
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&input), Err(HttpError::HeadTooLarge));
        assert_eq!(HttpError::HeadTooLarge.status(), Some(431));

        // A head of exactly MAX_HEAD bytes is fine.
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        input.resize(MAX_HEAD - 4, b'a');
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(input.len(), MAX_HEAD);
        let (_, consumed) = complete(&input);
        assert_eq!(consumed, MAX_HEAD);
        // Followed by lots of body: still fine, the body is not looked at.
        input.extend_from_slice(&[b'z'; 20000]);
        assert!(matches!(
            parse_head(&input),
            Ok(Parsed::Complete {
                consumed: MAX_HEAD,
                ..
            })
        ));
    }

    #[test]
    fn header_count_limit() {
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 1..MAX_HEADERS {
            input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let mut ok = input.clone();
        ok.extend_from_slice(b"\r\n");
        complete(&ok);
        input.extend_from_slice(b"X-last: v\r\n\r\n");
        assert_eq!(error(&input), HttpError::TooManyHeaders);
        assert_eq!(HttpError::TooManyHeaders.status(), Some(431));
    }

    #[test]
    fn target_limit() {
        let mut ok = b"GET /".to_vec();
        ok.resize(4 + MAX_TARGET, b'a');
        ok.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        complete(&ok);

        // Too long: refused as soon as the target passes the limit, before
        // the request line ends.
        let mut long = b"GET /".to_vec();
        long.resize(4 + MAX_TARGET + 1, b'a');
        assert_eq!(parse_head(&long), Err(HttpError::TargetTooLong));
        assert_eq!(parse_head(&long[..long.len() - 1]), Ok(Parsed::Partial));
        long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(error(&long), HttpError::TargetTooLong);
        assert_eq!(HttpError::TargetTooLong.status(), Some(414));

        // An invalid byte early in a long target is a 400, whole or split.
        let mut bad = b"GET /\x01".to_vec();
        bad.resize(5000, b'a');
        assert_eq!(error(&bad), HttpError::BadRequestLine);
    }

    #[test]
    fn every_error_has_status_and_reason() {
        let all = [
            HttpError::TlsHandshake,
            HttpError::Http2Preface,
            HttpError::HeadTooLarge,
            HttpError::TooManyHeaders,
            HttpError::TargetTooLong,
            HttpError::BadRequestLine,
            HttpError::BadVersion,
            HttpError::BareCr,
            HttpError::ObsFold,
            HttpError::SpaceBeforeColon,
            HttpError::BadHeaderName,
            HttpError::BadHeaderValue,
            HttpError::MissingHost,
            HttpError::DuplicateHost,
            HttpError::BadHost(HostError::Empty),
            HttpError::BadContentLength,
            HttpError::ContentLengthList,
            HttpError::ConflictingContentLength,
            HttpError::ContentLengthWithTransferEncoding,
            HttpError::TransferEncodingInHttp10,
            HttpError::UnsupportedTransferEncoding,
            HttpError::BadTarget,
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
            assert!(matches!(e.status(), None | Some(400 | 414 | 431)));
        }
        use std::error::Error;
        assert!(HttpError::BadHost(HostError::Empty).source().is_some());
    }

    #[test]
    fn random_heads_agree_whole_and_bytewise() {
        // Heads glued from HTTP-ish pieces, including broken ones; `parse`
        // asserts that the whole-buffer answer equals the first non-Partial
        // answer of its prefixes.
        const PIECES: &[&[u8]] = &[
            b"GET",
            b"HEAD",
            b" ",
            b"  ",
            b"/",
            b"/a?b",
            b"*",
            b"http://h/x",
            b" HTTP/1.1",
            b" HTTP/1.0",
            b" HTTP/2.0",
            b"\r\n",
            b"\n",
            b"\r",
            b"Host: a",
            b"Host : a",
            b"Host: a@b",
            b" folded",
            b"Content-Length: 5",
            b"Content-Length: 1,1",
            b"Transfer-Encoding: chunked",
            b"X: \x01",
            b"X\x00: y",
            b"\t",
            b":",
            b"\xc3\xa9",
            b"\xff",
            b"PRI * HTTP/2.0",
            b"\x16\x03",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..(next() % 12) {
                input.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let _ = parse(&input);
        }
    }

    #[test]
    fn span_of_foreign_slice_is_none() {
        let a = [0u8; 4];
        let b = [0u8; 4];
        assert_eq!(Span::of(&a, &b[..]), None);
        let span = Span::of(&a, &a[1..3]).unwrap();
        assert_eq!(span.get(&a), &a[1..3]);
        assert_eq!(span.get(&[]), b"");
    }
}
