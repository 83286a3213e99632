//! The opening handshake (RFC 6455 section 4.2.1): parse the client's HTTP
//! request head and derive the `Sec-WebSocket-Accept` answer.
//!
//! [`parse_request`] is a push parser in the style of httparse: call it with
//! everything received so far; it answers [`HandshakeStatus::Partial`] until
//! the head is complete, then [`HandshakeStatus::Complete`] with the number of
//! bytes the head took (what follows belongs to the WebSocket stream). A
//! request without `Upgrade: websocket` is not an error: it is reported as
//! [`Request::NotUpgrade`] so the listener can serve its status page on the
//! same port.
//!
//! Origin checks ([`OriginPolicy`](super::OriginPolicy)) and the choice of a
//! subprotocol ([`select_subprotocol`]) are separate steps the listener takes
//! on the parsed request; the responses are in [`super::response`].

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Largest request head accepted, in bytes: a real handshake is a few hundred
/// bytes, and the limit bounds what a slow client can make us buffer.
pub const MAX_HEAD_LEN: usize = 8 * 1024;

/// Most header fields accepted: browsers send about 15; more is an attack on
/// memory or parsing time.
pub const MAX_HEADERS: usize = 64;

/// The GUID RFC 6455 appends to the client's key before hashing.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version torsion speaks (RFC 6455).
pub const WEBSOCKET_VERSION: &str = "13";

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A valid WebSocket upgrade request.
    Upgrade(UpgradeRequest),
    /// A plain GET or HEAD without `Upgrade: websocket`: serve a page, not a
    /// socket.
    NotUpgrade {
        /// The request path, as sent (not percent-decoded), starting with `/`.
        path: String,
        /// The query string after `?`, if any, as sent.
        query: Option<String>,
        /// The method was HEAD: send the headers without the body.
        head: bool,
    },
}

/// What the listener needs from a WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request path, as sent (not percent-decoded), starting with `/`.
    pub path: String,
    /// The query string after `?`, if any, as sent.
    pub query: Option<String>,
    /// The Host header.
    pub host: String,
    /// The Origin header; browsers always send one, other clients rarely do.
    pub origin: Option<String>,
    /// The subprotocols the client offers, in its order (from every
    /// `Sec-WebSocket-Protocol` header); each is an HTTP token.
    pub protocols: Vec<String>,
    /// The `Sec-WebSocket-Accept` value answering the client's key.
    pub accept: String,
}

impl UpgradeRequest {
    /// The first of the endpoint's `supported` subprotocols (in its order of
    /// preference) that the client offered; see [`select_subprotocol`].
    pub fn select_subprotocol<'s, S: AsRef<str>>(&self, supported: &'s [S]) -> Option<&'s str> {
        select_subprotocol(supported, &self.protocols)
    }
}

/// Outcome of [`parse_request`] on the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// The head is complete and acceptable so far.
    Complete {
        /// What was asked.
        request: Request,
        /// Bytes of input the head took; the rest is the peer's next data.
        consumed: usize,
    },
    /// The head is not complete yet; call again with more bytes.
    Partial,
}

/// Why a handshake request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head is not valid HTTP/1.x (httparse's reason attached).
    Malformed(httparse::Error),
    /// The head is longer than [`MAX_HEAD_LEN`].
    HeadTooLarge,
    /// The head has more than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// The method is not GET (nor HEAD, for a non-upgrade request).
    MethodNotAllowed,
    /// The request target is not a path (`/...`).
    BadTarget,
    /// An upgrade was requested over HTTP/1.0.
    OldHttpVersion,
    /// The request announces a body (Content-Length other than 0, or
    /// Transfer-Encoding), which neither a handshake nor a page request has.
    HasBody,
    /// `Upgrade: websocket` without `upgrade` in the Connection header.
    MissingConnectionUpgrade,
    /// The Host header is missing or empty.
    MissingHost,
    /// A header that must appear at most once appeared more often.
    DuplicateHeader(&'static str),
    /// A header torsion reads was not valid UTF-8.
    NonUtf8Header(&'static str),
    /// `Sec-WebSocket-Version` is missing or not 13.
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing or does not decode to 16 bytes.
    BadKey,
    /// `Sec-WebSocket-Protocol` holds something other than tokens.
    BadSubprotocol,
}

impl HandshakeError {
    /// The HTTP status to answer with: 426 for a version mismatch (send
    /// `Sec-WebSocket-Version: 13`), 405 for the method, 431 for oversized
    /// heads, 400 otherwise. [`rejection`](Self::rejection) gives the whole
    /// response.
    pub fn status(&self) -> u16 {
        self.rejection().status()
    }

    /// The response to send, ready for
    /// [`encode_rejection`](super::response::encode_rejection).
    pub fn rejection(&self) -> super::response::Rejection {
        use super::response::Rejection;
        match self {
            Self::UnsupportedVersion => Rejection::UpgradeRequired,
            Self::MethodNotAllowed => Rejection::MethodNotAllowed,
            Self::HeadTooLarge | Self::TooManyHeaders => Rejection::HeaderFieldsTooLarge,
            Self::Malformed(_)
            | Self::BadTarget
            | Self::OldHttpVersion
            | Self::HasBody
            | Self::MissingConnectionUpgrade
            | Self::MissingHost
            | Self::DuplicateHeader(_)
            | Self::NonUtf8Header(_)
            | Self::BadKey
            | Self::BadSubprotocol => Rejection::BadRequest,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed request head: {e}"),
            Self::HeadTooLarge => write!(f, "request head longer than {MAX_HEAD_LEN} bytes"),
            Self::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header fields"),
            Self::MethodNotAllowed => f.write_str("method not allowed"),
            Self::BadTarget => f.write_str("request target is not a path"),
            Self::OldHttpVersion => f.write_str("upgrade requested over HTTP/1.0"),
            Self::HasBody => f.write_str("request has a body"),
            Self::MissingConnectionUpgrade => {
                f.write_str("Upgrade: websocket without Connection: upgrade")
            }
            Self::MissingHost => f.write_str("missing Host header"),
            Self::DuplicateHeader(name) => write!(f, "duplicate {name} header"),
            Self::NonUtf8Header(name) => write!(f, "{name} header is not UTF-8"),
            Self::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is not 13"),
            Self::BadKey => f.write_str("Sec-WebSocket-Key is not 16 base64-encoded bytes"),
            Self::BadSubprotocol => f.write_str("Sec-WebSocket-Protocol is not a token list"),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// The first of `supported` (the endpoint's subprotocols, most preferred
/// first) that appears in `offered`; `None` when they share none, in which
/// case the response names no subprotocol. Comparison is exact: subprotocol
/// names are case-sensitive.
pub fn select_subprotocol<'s, S: AsRef<str>>(
    supported: &'s [S],
    offered: &[String],
) -> Option<&'s str> {
    supported
        .iter()
        .map(AsRef::as_ref)
        .find(|name| offered.iter().any(|o| o == name))
}

/// Parses a request head from the start of `input` (everything received so
/// far). See the module docs.
pub fn parse_request(input: &[u8]) -> Result<HandshakeStatus, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // Parsing at most MAX_HEAD_LEN bytes makes the answer the same however
    // the input was split: an error past the limit is never looked for.
    let window = input.get(..MAX_HEAD_LEN).unwrap_or(input);
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() > MAX_HEAD_LEN => {
            return Err(HandshakeError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(HandshakeStatus::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(e) => return Err(HandshakeError::Malformed(e)),
    };
    let request = check_request(&req)?;
    Ok(HandshakeStatus::Complete { request, consumed })
}

/// Applies RFC 6455 section 4.2.1 to a complete head.
fn check_request(req: &httparse::Request<'_, '_>) -> Result<Request, HandshakeError> {
    let headers = Headers(req.headers);
    let upgrade = headers.has_token("upgrade", "websocket");
    let head = match req.method {
        Some("GET") => false,
        Some("HEAD") if !upgrade => true,
        _ => return Err(HandshakeError::MethodNotAllowed),
    };
    let (path, query) = split_target(req.path.unwrap_or_default())?;
    if headers.has_body()? {
        return Err(HandshakeError::HasBody);
    }
    if !upgrade {
        return Ok(Request::NotUpgrade { path, query, head });
    }
    if req.version != Some(1) {
        return Err(HandshakeError::OldHttpVersion);
    }
    if !headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    // An empty Host is no Host (RFC 7230 section 5.4 requires one naming
    // the authority; an upgrade cannot be checked against nothing).
    let host = headers
        .single("Host")?
        .filter(|h| !h.trim().is_empty())
        .ok_or(HandshakeError::MissingHost)?
        .to_owned();
    match headers.single("Sec-WebSocket-Version") {
        Ok(Some(v)) if v == WEBSOCKET_VERSION => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    let key = match headers.single("Sec-WebSocket-Key") {
        Ok(Some(key)) if is_valid_key(key) => key,
        _ => return Err(HandshakeError::BadKey),
    };
    let origin = headers.single("Origin")?.map(str::to_owned);
    let protocols = headers.protocols()?;
    Ok(Request::Upgrade(UpgradeRequest {
        path,
        query,
        host,
        origin,
        protocols,
        accept: accept_key(key),
    }))
}

/// Whether a `Sec-WebSocket-Key` is base64 for exactly 16 bytes.
fn is_valid_key(key: &str) -> bool {
    // 16 bytes are always 24 characters; checking first keeps a huge value
    // from being decoded.
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|bytes| bytes.len() == 16)
}

/// Splits an origin-form target into path and query.
fn split_target(target: &str) -> Result<(String, Option<String>), HandshakeError> {
    if !target.starts_with('/') {
        return Err(HandshakeError::BadTarget);
    }
    Ok(match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    })
}

/// Whether `b` may appear in an HTTP token (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty HTTP token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Case-insensitive header lookups over httparse's parsed fields.
struct Headers<'h, 'b>(&'h [httparse::Header<'b>]);

impl<'b> Headers<'_, 'b> {
    fn named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b [u8]> + 's {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Whether any field `name` holds `token` in its comma-separated list
    /// (ASCII case-insensitive, as for Connection and Upgrade).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.named(name).any(|value| {
            value
                .split(|&b| b == b',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// The trimmed value of a field that may appear at most once.
    fn single(&self, name: &'static str) -> Result<Option<&'b str>, HandshakeError> {
        let mut values = self.named(name);
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(HandshakeError::DuplicateHeader(name));
        }
        let value = std::str::from_utf8(value).map_err(|_| HandshakeError::NonUtf8Header(name))?;
        Ok(Some(value.trim_matches([' ', '\t'])))
    }

    fn has_body(&self) -> Result<bool, HandshakeError> {
        if self.named("Transfer-Encoding").next().is_some() {
            return Ok(true);
        }
        Ok(self
            .single("Content-Length")?
            .is_some_and(|len| len.bytes().any(|b| b != b'0') || len.is_empty()))
    }

    /// Every offered subprotocol, from all Sec-WebSocket-Protocol fields.
    fn protocols(&self) -> Result<Vec<String>, HandshakeError> {
        let mut offered = Vec::new();
        for value in self.named("Sec-WebSocket-Protocol") {
            let value = std::str::from_utf8(value).map_err(|_| HandshakeError::BadSubprotocol)?;
            // Empty list elements are allowed by HTTP's list syntax.
            for item in value.split(',').map(|s| s.trim_matches([' ', '\t'])) {
                if item.is_empty() {
                    continue;
                }
                if !is_token(item) {
                    return Err(HandshakeError::BadSubprotocol);
                }
                offered.push(item.to_owned());
            }
        }
        Ok(offered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\n\
Host: example.com:8443\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Upgrade: websocket\r\n\
Origin: https://example.com:8443\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

    fn parse(input: &[u8]) -> Result<Request, HandshakeError> {
        match parse_request(input)? {
            HandshakeStatus::Complete { request, consumed } => {
                assert_eq!(consumed, input.len());
                Ok(request)
            }
            HandshakeStatus::Partial => panic!("partial"),
        }
    }

    fn upgrade(input: &[u8]) -> UpgradeRequest {
        match parse(input).unwrap() {
            Request::Upgrade(u) => u,
            other => panic!("{other:?}"),
        }
    }

    /// Builds a request from header lines, for error cases.
    fn request(first: &str, headers: &[&str]) -> Vec<u8> {
        let mut s = format!("{first}\r\n");
        for h in headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    const GOOD: [&str; 5] = [
        "Host: h",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];

    /// GOOD with the header starting with `replace_prefix` replaced by
    /// `with` (or removed when `with` is empty).
    fn good_but(replace_prefix: &str, with: &str) -> Vec<u8> {
        let headers: Vec<&str> = GOOD
            .iter()
            .map(|h| {
                if h.starts_with(replace_prefix) {
                    with
                } else {
                    h
                }
            })
            .filter(|h| !h.is_empty())
            .collect();
        request("GET / HTTP/1.1", &headers)
    }

    /// RFC 6455 sections 1.3 and 4.2.2 (and Python's hashlib) give this
    /// value for the sample key.
    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn browser_handshake() {
        let u = upgrade(CHROME);
        assert_eq!(u.path, "/chat");
        assert_eq!(u.query.as_deref(), Some("room=1"));
        assert_eq!(u.host, "example.com:8443");
        assert_eq!(u.origin.as_deref(), Some("https://example.com:8443"));
        assert_eq!(u.protocols, ["chat", "superchat"]);
        assert_eq!(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let whole = parse_request(CHROME).unwrap();
        for end in 0..CHROME.len() {
            assert_eq!(
                parse_request(&CHROME[..end]),
                Ok(HandshakeStatus::Partial),
                "prefix {end}"
            );
        }
        assert_eq!(parse_request(CHROME), Ok(whole));
        // Errors too: a bad key is found only once the head is complete.
        let bad = good_but("Sec-WebSocket-Key", "Sec-WebSocket-Key: c2hvcnQ=");
        for end in 0..bad.len() {
            assert_eq!(parse_request(&bad[..end]), Ok(HandshakeStatus::Partial));
        }
        assert_eq!(parse_request(&bad), Err(HandshakeError::BadKey));
    }

    #[test]
    fn every_prefix_is_partial_or_the_same_error() {
        let inputs: [&[u8]; 5] = [
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost h\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"\x00GET",
        ];
        for input in inputs {
            let whole = parse_request(input);
            for end in 0..input.len() {
                match parse_request(&input[..end]) {
                    Ok(HandshakeStatus::Partial) => {}
                    other => {
                        assert_eq!(other, whole, "{input:?} prefix {end}");
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn bytes_after_the_head_are_not_consumed() {
        let mut input = CHROME.to_vec();
        input.extend_from_slice(b"\x81\x85");
        match parse_request(&input).unwrap() {
            HandshakeStatus::Complete { consumed, .. } => assert_eq!(consumed, CHROME.len()),
            HandshakeStatus::Partial => panic!("partial"),
        }
    }

    #[test]
    fn connection_and_upgrade_tokens_in_lists_any_case() {
        let input = good_but("Connection", "Connection: keep-alive, Upgrade");
        assert!(matches!(parse(&input), Ok(Request::Upgrade(_))));
        let input = good_but("Connection", "connection:   KEEP-ALIVE ,upgrade ");
        assert!(matches!(parse(&input), Ok(Request::Upgrade(_))));
        let input = good_but("Upgrade", "UPGRADE: h2c, WebSocket");
        assert!(matches!(parse(&input), Ok(Request::Upgrade(_))));
    }

    #[test]
    fn plain_get_is_not_an_upgrade() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"),
            Ok(Request::NotUpgrade {
                path: "/".into(),
                query: None,
                head: false
            })
        );
        assert_eq!(
            parse(b"HEAD /status?x HTTP/1.0\r\n\r\n"),
            Ok(Request::NotUpgrade {
                path: "/status".into(),
                query: Some("x".into()),
                head: true
            })
        );
        // Another protocol's upgrade is ignored, as HTTP allows.
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"),
            Ok(Request::NotUpgrade { .. })
        ));
    }

    #[test]
    fn version_errors_are_426() {
        for version in [
            "Sec-WebSocket-Version: 8",
            "Sec-WebSocket-Version: 13, 8",
            "Sec-WebSocket-Version: ",
            "",
        ] {
            let err = parse(&good_but("Sec-WebSocket-Version", version)).unwrap_err();
            assert_eq!(err, HandshakeError::UnsupportedVersion, "{version:?}");
            assert_eq!(err.status(), 426);
        }
        let mut twice = GOOD.to_vec();
        twice.push("Sec-WebSocket-Version: 13");
        assert_eq!(
            parse(&request("GET / HTTP/1.1", &twice)),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    #[test]
    fn key_errors_are_400() {
        for key in [
            "",
            "Sec-WebSocket-Key: ",
            "Sec-WebSocket-Key: c2hvcnQ=",                 // 5 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",   // no padding
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSE=", // 17 bytes
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ!==", // not base64
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", // 27 bytes
        ] {
            let err = parse(&good_but("Sec-WebSocket-Key", key)).unwrap_err();
            assert_eq!(err, HandshakeError::BadKey, "{key:?}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn other_upgrade_errors() {
        let cases: [(Vec<u8>, HandshakeError); 9] = [
            (
                good_but("Connection", ""),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                good_but("Connection", "Connection: keep-alive"),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (good_but("Host", ""), HandshakeError::MissingHost),
            (good_but("Host", "Host: "), HandshakeError::MissingHost),
            (
                request("GET / HTTP/1.0", &GOOD),
                HandshakeError::OldHttpVersion,
            ),
            (
                request("POST / HTTP/1.1", &GOOD),
                HandshakeError::MethodNotAllowed,
            ),
            (
                request("HEAD / HTTP/1.1", &GOOD),
                HandshakeError::MethodNotAllowed,
            ),
            (
                request("GET http://h/ HTTP/1.1", &GOOD),
                HandshakeError::BadTarget,
            ),
            (
                good_but("Host", "Host: h\r\nSec-WebSocket-Protocol: a b"),
                HandshakeError::BadSubprotocol,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(&input),
                Err(expected),
                "{}",
                String::from_utf8_lossy(&input)
            );
        }
        assert_eq!(HandshakeError::MethodNotAllowed.status(), 405);
    }

    #[test]
    fn duplicates_and_bodies_are_refused() {
        let mut headers = GOOD.to_vec();
        headers.push("Host: other");
        assert_eq!(
            parse(&request("GET / HTTP/1.1", &headers)),
            Err(HandshakeError::DuplicateHeader("Host"))
        );
        let mut headers = GOOD.to_vec();
        headers.extend(["Origin: https://a", "Origin: https://b"]);
        assert_eq!(
            parse(&request("GET / HTTP/1.1", &headers)),
            Err(HandshakeError::DuplicateHeader("Origin"))
        );
        let mut headers = GOOD.to_vec();
        headers.push("Content-Length: 5");
        assert_eq!(
            parse(&request("GET / HTTP/1.1", &headers)),
            Err(HandshakeError::HasBody)
        );
        let mut headers = GOOD.to_vec();
        headers.push("Content-Length: 0");
        assert!(matches!(
            parse(&request("GET / HTTP/1.1", &headers)),
            Ok(Request::Upgrade(_))
        ));
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HandshakeError::HasBody)
        );
    }

    #[test]
    fn non_utf8_host_is_refused() {
        let mut input = good_but("Host", "Host: h\u{e9}");
        // Replace the two UTF-8 bytes of é by a lone Latin-1 byte.
        let at = input.windows(2).position(|w| w == "é".as_bytes()).unwrap();
        input.splice(at..at + 2, [0xE9]);
        assert_eq!(parse(&input), Err(HandshakeError::NonUtf8Header("Host")));
    }

    #[test]
    fn several_protocol_headers_are_joined() {
        let mut headers = GOOD.to_vec();
        headers.extend(["Sec-WebSocket-Protocol: a, ,b", "Sec-WebSocket-Protocol: c"]);
        let u = upgrade(&request("GET / HTTP/1.1", &headers));
        assert_eq!(u.protocols, ["a", "b", "c"]);
        assert_eq!(u.origin, None);
    }

    #[test]
    fn subprotocol_selection_follows_server_preference() {
        let offered = vec!["chat".to_owned(), "superchat".to_owned()];
        assert_eq!(
            select_subprotocol(&["superchat", "chat"], &offered),
            Some("superchat")
        );
        assert_eq!(select_subprotocol(&["x", "chat"], &offered), Some("chat"));
        assert_eq!(select_subprotocol(&["CHAT"], &offered), None);
        assert_eq!(select_subprotocol::<&str>(&[], &offered), None);
        assert_eq!(select_subprotocol(&["chat"], &[]), None);
        let u = upgrade(CHROME);
        let supported = vec!["superchat".to_owned()];
        assert_eq!(u.select_subprotocol(&supported), Some("superchat"));
    }

    #[test]
    fn malformed_heads_are_400() {
        for input in [
            &b"GET / HTTP/1.1\r\nHost h\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"\x00\r\n\r\n",
        ] {
            let err = parse_request(input).unwrap_err();
            assert!(matches!(err, HandshakeError::Malformed(_)), "{err:?}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn head_size_limit() {
        // Exactly at the limit: fine.
        let filler_len = MAX_HEAD_LEN - b"GET / HTTP/1.1\r\nX: \r\n\r\n".len();
        let at_limit = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(filler_len));
        assert_eq!(at_limit.len(), MAX_HEAD_LEN);
        assert!(matches!(
            parse(at_limit.as_bytes()),
            Ok(Request::NotUpgrade { .. })
        ));
        // One byte more: refused, whole or as a growing prefix.
        let over = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(filler_len + 1)
        );
        assert_eq!(
            parse_request(over.as_bytes()),
            Err(HandshakeError::HeadTooLarge)
        );
        assert_eq!(
            parse_request(&over.as_bytes()[..MAX_HEAD_LEN]),
            Ok(HandshakeStatus::Partial)
        );
        assert_eq!(
            parse_request(&over.as_bytes()[..MAX_HEAD_LEN + 1]),
            Err(HandshakeError::HeadTooLarge)
        );
        assert_eq!(HandshakeError::HeadTooLarge.status(), 431);
    }

    #[test]
    fn header_count_limit() {
        let many: Vec<String> = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            parse_request(&request("GET / HTTP/1.1", &refs)),
            Err(HandshakeError::TooManyHeaders)
        );
        let refs = &refs[..MAX_HEADERS];
        assert!(parse(&request("GET / HTTP/1.1", refs)).is_ok());
    }
}
