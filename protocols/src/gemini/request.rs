//! The Gemini request: one absolute URL of at most [`MAX_REQUEST_URL`] bytes,
//! then CR LF.
//!
//! [`parse_request`] is a push parser: give it everything received so far and
//! it answers complete, partial or error; the answer for a buffer fed one byte
//! at a time equals the answer for it fed whole. A request that cannot become
//! valid is refused as soon as that is certain, so a client cannot hold a
//! buffer open by never sending CR LF.

use std::fmt;

use url::Url;

use super::host::{normalise_host, Host, HostError};
use super::line::{scan_line, Line};
use super::status::Status;

/// Longest URL accepted, in bytes, not counting CR LF: the limit set by the
/// Gemini specification, which also bounds what a server buffers per client.
pub const MAX_REQUEST_URL: usize = 1024;

/// The UTF-8 byte order mark, which the specification forbids at the start of
/// a request.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A valid Gemini request for a `gemini://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The parsed URL. Its host is as the client wrote it; `host` is the
    /// canonical form.
    url: Url,
    /// The URL's host, normalised (see [`normalise_host`]).
    host: Host,
    /// The request line exactly as received, without CR LF.
    text: Box<str>,
}

impl Request {
    /// The parsed URL (scheme `gemini`, no userinfo, no fragment).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The host in canonical form: compare this, not `url().host_str()`.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port the URL names, if it names one (`gemini://h:1965/` does).
    pub fn port(&self) -> Option<u16> {
        self.url.port()
    }

    /// The path, still percent-encoded; `/` when the URL has none. Give it to
    /// [`safe_segments`](super::path::safe_segments) before touching a file.
    pub fn path(&self) -> &str {
        match self.url.path() {
            "" => "/",
            path => path,
        }
    }

    /// The query, still percent-encoded, if there is a `?`.
    pub fn query(&self) -> Option<&str> {
        self.url.query()
    }

    /// The request line exactly as received, without CR LF. Escape it before
    /// logging it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Gives up the parsed URL.
    pub fn into_url(self) -> Url {
        self.url
    }
}

/// The result of feeding bytes to [`parse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole request arrived.
    Complete {
        /// The request.
        request: Request,
        /// How many bytes of the buffer it used, CR LF included. Gemini sends
        /// nothing after the request, so anything beyond is the client's
        /// mistake and can be ignored.
        consumed: usize,
    },
    /// No CR LF yet, and what arrived may still start a valid request.
    Partial,
}

/// Why bytes are not a request this server accepts.
///
/// Every variant maps to status 59 (bad request) except
/// [`RequestError::NotGemini`], which maps to 53 (proxy request refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// More than [`MAX_REQUEST_URL`] bytes arrived without CR LF.
    TooLong,
    /// A LF without a CR before it.
    BareLf,
    /// The request is only CR LF.
    Empty,
    /// The request starts with a UTF-8 byte order mark.
    Bom,
    /// The request is not UTF-8.
    NotUtf8,
    /// A control character (a stray CR included) or a space in the URL.
    InvalidCharacter,
    /// Not an absolute URL (no scheme).
    NotAbsolute,
    /// Not parseable as a URL for another reason.
    InvalidUrl,
    /// An absolute URL whose scheme is not `gemini`: this server is not a
    /// proxy. Status 53.
    NotGemini,
    /// The URL has a userinfo part (`user@`, even an empty one), which the
    /// specification forbids.
    Userinfo,
    /// The URL has a fragment (`#...`, even an empty one), which clients must
    /// not send.
    Fragment,
    /// The URL has no host, or an empty one (`gemini:/x`, `gemini:///x`).
    MissingHost,
    /// The host is malformed.
    InvalidHost(HostError),
    /// The port is not a number from 0 to 65535.
    InvalidPort,
}

impl RequestError {
    /// The status to answer with.
    pub fn status(&self) -> Status {
        match self {
            RequestError::NotGemini => Status::ProxyRequestRefused,
            _ => Status::BadRequest,
        }
    }

    /// A short, fixed explanation, safe to send as the response meta (it
    /// never echoes the client's bytes).
    pub fn reason(&self) -> &'static str {
        match self {
            RequestError::TooLong => "Request too long",
            RequestError::BareLf => "Request must end with CR LF",
            RequestError::Empty => "Empty request",
            RequestError::Bom => "Request must not start with a byte order mark",
            RequestError::NotUtf8 => "Request is not UTF-8",
            RequestError::InvalidCharacter => "Control character or space in URL",
            RequestError::NotAbsolute => "Request must be an absolute URL",
            RequestError::InvalidUrl => "Malformed URL",
            RequestError::NotGemini => "Proxy request refused",
            RequestError::Userinfo => "URL must not contain userinfo",
            RequestError::Fragment => "URL must not contain a fragment",
            RequestError::MissingHost => "URL has no host",
            RequestError::InvalidHost(host) => host.reason(),
            RequestError::InvalidPort => "Invalid port",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for RequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestError::InvalidHost(host) => Some(host),
            _ => None,
        }
    }
}

/// Parses the request at the start of `buf` (everything received so far).
///
/// Framing errors ([`RequestError::TooLong`], [`RequestError::BareLf`]) are
/// reported as soon as the bytes make them certain; the URL itself is checked
/// once its CR LF has arrived.
pub fn parse_request(buf: &[u8]) -> Result<Parsed, RequestError> {
    let len = match scan_line(buf, MAX_REQUEST_URL) {
        Line::Complete(len) => len,
        Line::Partial => return Ok(Parsed::Partial),
        Line::TooLong => return Err(RequestError::TooLong),
        Line::BareLf => return Err(RequestError::BareLf),
        Line::StrayCr => return Err(RequestError::InvalidCharacter),
    };
    let (line, _) = buf.split_at(len);
    let request = parse_line(line)?;
    Ok(Parsed::Complete {
        request,
        // `len + 2 <= buf.len()`: the CR LF were found inside `buf`.
        consumed: len + 2,
    })
}

/// Validates one request line (without CR LF).
fn parse_line(line: &[u8]) -> Result<Request, RequestError> {
    if line.is_empty() {
        return Err(RequestError::Empty);
    }
    if line.starts_with(BOM) {
        return Err(RequestError::Bom);
    }
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
    // The url crate silently drops tabs and newlines and trims controls and
    // spaces at the ends; refusing them first keeps `text` and `url` in step.
    if text.chars().any(|c| c.is_control() || c == ' ') {
        return Err(RequestError::InvalidCharacter);
    }
    let url = Url::parse(text).map_err(url_error)?;
    if url.scheme() != "gemini" {
        return Err(RequestError::NotGemini);
    }
    // `gemini://@host/` parses with an empty username that the url crate
    // forgets, so look at the authority as written too.
    if !url.username().is_empty()
        || url.password().is_some()
        || authority_has_at(text, url.scheme().len())
    {
        return Err(RequestError::Userinfo);
    }
    if url.fragment().is_some() {
        return Err(RequestError::Fragment);
    }
    let raw_host = match url.host_str() {
        None | Some("") => return Err(RequestError::MissingHost),
        Some(raw_host) => raw_host,
    };
    let host = normalise_host(raw_host).map_err(RequestError::InvalidHost)?;
    Ok(Request {
        url,
        host,
        text: text.into(),
    })
}

/// Whether the authority as written (from the `//` right after the scheme to
/// the next `/`, `?` or `#`) contains `@`. `scheme_len` is the length of the
/// scheme, which the url crate lowercases but never shortens.
fn authority_has_at(text: &str, scheme_len: usize) -> bool {
    let Some(rest) = text.get(scheme_len..).and_then(|r| r.strip_prefix("://")) else {
        return false;
    };
    rest.split(['/', '?', '#'])
        .next()
        .is_some_and(|authority| authority.contains('@'))
}

/// Maps the url crate's error to ours.
fn url_error(error: url::ParseError) -> RequestError {
    use url::ParseError as E;
    match error {
        E::RelativeUrlWithoutBase => RequestError::NotAbsolute,
        E::EmptyHost => RequestError::MissingHost,
        E::InvalidPort => RequestError::InvalidPort,
        E::InvalidIpv6Address => RequestError::InvalidHost(HostError::InvalidIpLiteral),
        E::InvalidDomainCharacter | E::InvalidIpv4Address | E::IdnaError => {
            RequestError::InvalidHost(HostError::InvalidCharacter)
        }
        _ => RequestError::InvalidUrl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn parse(buf: &[u8]) -> Result<Parsed, RequestError> {
        parse_request(buf)
    }

    fn request(buf: &[u8]) -> (Request, usize) {
        match parse(buf) {
            Ok(Parsed::Complete { request, consumed }) => (request, consumed),
            other => panic!("{buf:?} gave {other:?}"),
        }
    }

    fn error(buf: &[u8]) -> RequestError {
        match parse(buf) {
            Err(e) => e,
            other => panic!("{buf:?} gave {other:?}"),
        }
    }

    /// The first non-partial answer when `buf` arrives one byte at a time.
    fn byte_at_a_time(buf: &[u8]) -> Result<Parsed, RequestError> {
        for n in 0..=buf.len() {
            match parse(&buf[..n]) {
                Ok(Parsed::Partial) => continue,
                other => return other,
            }
        }
        Ok(Parsed::Partial)
    }

    #[test]
    fn simple_request() {
        let (req, consumed) = request(b"gemini://example.org/docs/a%20b.gmi?q=1\r\n");
        assert_eq!(consumed, 41);
        assert_eq!(req.host(), &Host::Domain("example.org".into()));
        assert_eq!(req.port(), None);
        assert_eq!(req.path(), "/docs/a%20b.gmi");
        assert_eq!(req.query(), Some("q=1"));
        assert_eq!(req.as_str(), "gemini://example.org/docs/a%20b.gmi?q=1");
        assert_eq!(req.url().scheme(), "gemini");
    }

    #[test]
    fn empty_path_reads_as_root_and_port_is_kept() {
        let (req, _) = request(b"gemini://example.org:1965\r\n");
        assert_eq!(req.path(), "/");
        assert_eq!(req.port(), Some(1965));
        assert_eq!(req.query(), None);
        let (req, _) = request(b"gemini://example.org?x\r\n");
        assert_eq!(req.path(), "/");
        assert_eq!(req.query(), Some("x"));
    }

    #[test]
    fn text_is_kept_as_sent_while_host_is_normalised() {
        let (req, _) = request(b"GEMINI://LocalHost./x\r\n");
        assert_eq!(req.as_str(), "GEMINI://LocalHost./x");
        assert_eq!(req.host(), &Host::Domain("localhost".into()));
        let (req, _) = request(b"gemini://[::1]:1965/\r\n");
        assert_eq!(req.host(), &Host::Ipv6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn unicode_url_is_accepted_and_encoded() {
        let (req, _) = request("gemini://h/café?é\r\n".as_bytes());
        assert_eq!(req.path(), "/caf%C3%A9");
        assert_eq!(req.query(), Some("%C3%A9"));
    }

    #[test]
    fn trailing_bytes_are_not_consumed() {
        let (req, consumed) = request(b"gemini://h/\r\nextra");
        assert_eq!(consumed, 13);
        assert_eq!(req.as_str(), "gemini://h/");
    }

    #[test]
    fn partial_without_crlf() {
        for buf in [&b""[..], b"gemini://h", b"gemini://h/\r", b"\r"] {
            assert_eq!(parse(buf), Ok(Parsed::Partial), "{buf:?}");
        }
    }

    #[test]
    fn length_limit_is_exact() {
        let prefix = "gemini://h/";
        let fill = |total: usize| format!("{prefix}{}", "a".repeat(total - prefix.len()));
        let at_limit = format!("{}\r\n", fill(MAX_REQUEST_URL));
        let (req, consumed) = request(at_limit.as_bytes());
        assert_eq!(req.as_str().len(), MAX_REQUEST_URL);
        assert_eq!(consumed, MAX_REQUEST_URL + 2);

        let over = format!("{}\r\n", fill(MAX_REQUEST_URL + 1));
        assert_eq!(error(over.as_bytes()), RequestError::TooLong);
        // Refused as soon as the limit is passed, without waiting for CR LF.
        assert_eq!(
            error(fill(MAX_REQUEST_URL + 1).as_bytes()),
            RequestError::TooLong
        );
        assert_eq!(parse(fill(MAX_REQUEST_URL).as_bytes()), Ok(Parsed::Partial));
        assert_eq!(error(&[b'x'; 5000]), RequestError::TooLong);
    }

    #[test]
    fn every_error() {
        let cases: [(&[u8], RequestError); 31] = [
            (b"gemini://h/\n", RequestError::BareLf),
            (b"\n", RequestError::BareLf),
            (b"gemini://h/\rx\r\n", RequestError::InvalidCharacter),
            (b"\r\n", RequestError::Empty),
            (b"\xEF\xBB\xBFgemini://h/\r\n", RequestError::Bom),
            (b"gemini://h/\xff\r\n", RequestError::NotUtf8),
            (b"gemini://h/\xc0\xae\r\n", RequestError::NotUtf8),
            (b"gemini://h/a b\r\n", RequestError::InvalidCharacter),
            (b" gemini://h/\r\n", RequestError::InvalidCharacter),
            (b"gemini://h/\t\r\n", RequestError::InvalidCharacter),
            (b"gemini://h/\0\r\n", RequestError::InvalidCharacter),
            (b"gemini://h/\x7f\r\n", RequestError::InvalidCharacter),
            (b"gemini://h/\xc2\x85\r\n", RequestError::InvalidCharacter),
            (b"/index.gmi\r\n", RequestError::NotAbsolute),
            (b"example.org/\r\n", RequestError::NotAbsolute),
            (b"//example.org/\r\n", RequestError::NotAbsolute),
            (b"https://example.org/\r\n", RequestError::NotGemini),
            (b"gopher://example.org/\r\n", RequestError::NotGemini),
            (b"geminix://example.org/\r\n", RequestError::NotGemini),
            (b"gemini://user@h/\r\n", RequestError::Userinfo),
            (b"gemini://:pw@h/\r\n", RequestError::Userinfo),
            (b"gemini://@h/\r\n", RequestError::Userinfo),
            (b"gemini://h/#frag\r\n", RequestError::Fragment),
            (b"gemini://h/#\r\n", RequestError::Fragment),
            (b"gemini:///path\r\n", RequestError::MissingHost),
            (b"gemini:/path\r\n", RequestError::MissingHost),
            (b"gemini:path\r\n", RequestError::MissingHost),
            (b"gemini://h:65536/\r\n", RequestError::InvalidPort),
            (b"gemini://h:x/\r\n", RequestError::InvalidPort),
            (
                b"gemini://[::1/\r\n",
                RequestError::InvalidHost(HostError::InvalidIpLiteral),
            ),
            (
                b"gemini://H%00st/\r\n",
                RequestError::InvalidHost(HostError::InvalidCharacter),
            ),
        ];
        for (buf, want) in cases {
            assert_eq!(parse(buf), Err(want), "{buf:?}");
        }
    }

    #[test]
    fn statuses_and_reasons() {
        assert_eq!(
            RequestError::NotGemini.status(),
            Status::ProxyRequestRefused
        );
        assert_eq!(RequestError::TooLong.status(), Status::BadRequest);
        assert_eq!(
            RequestError::InvalidHost(HostError::Empty).status(),
            Status::BadRequest
        );
        assert_eq!(
            RequestError::Fragment.to_string(),
            RequestError::Fragment.reason()
        );
        for e in [
            RequestError::TooLong,
            RequestError::Userinfo,
            RequestError::BareLf,
        ] {
            assert!(!e.reason().is_empty());
            assert!(!e.reason().contains(['\r', '\n']));
        }
    }

    #[test]
    fn userinfo_check_is_limited_to_the_authority() {
        let (req, _) = request(b"gemini://h/a@b?c@d\r\n");
        assert_eq!(req.path(), "/a@b");
        let (req, _) = request(b"gemini://h?c@d\r\n");
        assert_eq!(req.query(), Some("c@d"));
        // A `://` later in the URL does not start an authority.
        assert_eq!(error(b"gemini:x?y://u@h\r\n"), RequestError::MissingHost);
    }

    #[test]
    fn same_answer_byte_at_a_time() {
        let long = [b'a'; MAX_REQUEST_URL + 10];
        let mut long_then_lf = b"gemini://h/".to_vec();
        long_then_lf.resize(MAX_REQUEST_URL + 1, b'a');
        long_then_lf.push(b'\n');
        let inputs: [&[u8]; 12] = [
            b"gemini://example.org/a?b\r\n",
            b"gemini://example.org/a?b\r\ntrailing",
            b"gemini://h/\n",
            b"gemini://h/\rx\r\n",
            b"\r\n",
            b"\xEF\xBB\xBFgemini://h/\r\n",
            b"https://h/\r\n",
            b"gemini://u@h/\r\n",
            b"gemini://h/\xff\r\n",
            &long,
            &long_then_lf,
            b"gemini://h",
        ];
        for input in inputs {
            assert_eq!(byte_at_a_time(input), parse(input), "{input:?}");
        }
    }
}
