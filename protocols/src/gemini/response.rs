//! The Gemini response header: `<two-digit status><SP><meta><CR><LF>`.
//!
//! The server encodes headers with [`ResponseHeader::encode_into`]; it parses
//! them with [`parse_response_header`] to validate what a CGI script wrote
//! before passing it on (an invalid one is answered with 42 instead), and the
//! benchmark client parses them too. The parser is a push parser like the
//! request parser: complete, partial or error, the same byte by byte as whole.
//!
//! What the meta may be depends on the status, following the specification:
//!
//! | status | meta | may be empty | `NN\r\n` without the space |
//! |--------|------|--------------|----------------------------|
//! | 1x | prompt shown to the user | no | no |
//! | 20 | MIME type; empty means `text/gemini; charset=utf-8` | yes | no |
//! | 3x | URL to go to | no | no |
//! | 4x, 5x, 6x | message for the user | yes | yes (the message is optional) |
//!
//! No meta may hold a control character (tab, CR and LF included), so a
//! header can never smuggle a second line. The encoder always writes the
//! space, which every client understands.

use std::borrow::Cow;
use std::fmt;

use super::line::{scan_line, Line};
use super::status::Status;

/// Longest meta accepted, in bytes: the specification's limit, which clients
/// enforce, so a longer one would be refused downstream anyway.
pub const MAX_META: usize = 1024;

/// Longest header line before CR LF: two digits, the space and the meta.
const MAX_HEADER_LINE: usize = 3 + MAX_META;

/// A response header: status and meta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHeader<'a> {
    /// The status.
    pub status: Status,
    /// The meta, without the separating space. Borrowed from the buffer when
    /// parsed; borrowed or owned when built for encoding.
    pub meta: Cow<'a, str>,
}

impl<'a> ResponseHeader<'a> {
    /// A header with this status and meta (not validated until encoded).
    pub fn new(status: Status, meta: impl Into<Cow<'a, str>>) -> Self {
        ResponseHeader {
            status,
            meta: meta.into(),
        }
    }

    /// A copy that owns its meta, to keep beyond the parsed buffer.
    pub fn into_owned(self) -> ResponseHeader<'static> {
        ResponseHeader {
            status: self.status,
            meta: Cow::Owned(self.meta.into_owned()),
        }
    }

    /// Appends `<code> <meta>\r\n` to `out`, or leaves `out` untouched and
    /// says why the header is invalid (meta too long, containing a control
    /// character such as CR or LF, or empty where the status needs one).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), HeaderError> {
        check_meta(self.status, &self.meta)?;
        let code = self.status.code();
        // `check_meta` bounded the meta, so this cannot overflow.
        out.reserve(self.meta.len() + 5);
        out.extend_from_slice(&[b'0' + code / 10, b'0' + code % 10, b' ']);
        out.extend_from_slice(self.meta.as_bytes());
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Checks a meta against the rules shared by the encoder and the parser.
fn check_meta(status: Status, meta: &str) -> Result<(), HeaderError> {
    if meta.len() > MAX_META {
        return Err(HeaderError::MetaTooLong);
    }
    if meta.chars().any(char::is_control) {
        return Err(HeaderError::ControlCharacter);
    }
    if meta.is_empty() && status.requires_meta() {
        return Err(HeaderError::EmptyMeta(status));
    }
    Ok(())
}

/// The result of feeding bytes to [`parse_response_header`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedHeader<'a> {
    /// A whole header arrived.
    Complete {
        /// The header; its meta borrows from the buffer.
        header: ResponseHeader<'a>,
        /// How many bytes it used, CR LF included; the body (for 20) starts
        /// right after.
        consumed: usize,
    },
    /// No CR LF yet, and what arrived may still start a valid header.
    Partial,
}

/// Why a response header is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The meta is longer than [`MAX_META`] bytes (when parsing: no CR LF
    /// arrived within the longest valid header).
    MetaTooLong,
    /// A LF without a CR before it.
    BareLf,
    /// A control character in the meta (for the encoder this includes CR
    /// and LF; for the parser, a CR not followed by LF).
    ControlCharacter,
    /// The status is not exactly two ASCII digits.
    InvalidStatus,
    /// Two digits, but not a code the specification defines (the lenient
    /// parser only reports codes outside 10..=69).
    UnknownStatus(u8),
    /// No space after the status where one is required.
    MissingSpace,
    /// An empty meta for a status that needs one (1x, 3x).
    EmptyMeta(Status),
    /// The meta is not UTF-8.
    NotUtf8,
}

impl HeaderError {
    /// The status a server sends instead when a CGI script's header is
    /// invalid: 42, CGI error. (For a header the server built itself, an
    /// error is a bug in the caller.)
    pub fn status(&self) -> Status {
        Status::CgiError
    }

    /// A short, fixed explanation.
    pub fn reason(&self) -> &'static str {
        match self {
            HeaderError::MetaTooLong => "response meta too long",
            HeaderError::BareLf => "response header must end with CR LF",
            HeaderError::ControlCharacter => "control character in response meta",
            HeaderError::InvalidStatus => "response status is not two digits",
            HeaderError::UnknownStatus(_) => "unknown response status",
            HeaderError::MissingSpace => "no space after response status",
            HeaderError::EmptyMeta(_) => "empty response meta",
            HeaderError::NotUtf8 => "response meta is not UTF-8",
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::UnknownStatus(code) => write!(f, "unknown response status {code:02}"),
            HeaderError::EmptyMeta(status) => write!(f, "empty response meta for status {status}"),
            _ => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for HeaderError {}

/// Parses the header at the start of `buf`, accepting only the status codes
/// the specification defines: use this to validate a CGI script's output.
pub fn parse_response_header(buf: &[u8]) -> Result<ParsedHeader<'_>, HeaderError> {
    parse_with(buf, Status::from_code)
}

/// Like [`parse_response_header`], but an undefined code in a known category
/// is read as that category's base code (see [`Status::from_code_lenient`]):
/// for clients, which should cope with future codes.
pub fn parse_response_header_lenient(buf: &[u8]) -> Result<ParsedHeader<'_>, HeaderError> {
    parse_with(buf, Status::from_code_lenient)
}

/// The parser, with the code-to-status mapping as the only difference.
fn parse_with(
    buf: &[u8],
    status_of: fn(u8) -> Option<Status>,
) -> Result<ParsedHeader<'_>, HeaderError> {
    let len = match scan_line(buf, MAX_HEADER_LINE) {
        Line::Complete(len) => len,
        Line::Partial => return Ok(ParsedHeader::Partial),
        Line::TooLong => return Err(HeaderError::MetaTooLong),
        Line::BareLf => return Err(HeaderError::BareLf),
        Line::StrayCr => return Err(HeaderError::ControlCharacter),
    };
    let (line, _) = buf.split_at(len);
    let header = parse_line(line, status_of)?;
    Ok(ParsedHeader::Complete {
        header,
        // `len + 2 <= buf.len()`: the CR LF were found inside `buf`.
        consumed: len + 2,
    })
}

/// Validates one header line (without CR LF).
fn parse_line(
    line: &[u8],
    status_of: fn(u8) -> Option<Status>,
) -> Result<ResponseHeader<'_>, HeaderError> {
    let (tens, units, rest) = match line {
        [tens, units, rest @ ..] if tens.is_ascii_digit() && units.is_ascii_digit() => {
            (tens - b'0', units - b'0', rest)
        }
        _ => return Err(HeaderError::InvalidStatus),
    };
    let meta = match rest {
        [] => None,
        [b' ', meta @ ..] => Some(meta),
        [third, ..] if third.is_ascii_digit() => return Err(HeaderError::InvalidStatus),
        [_, ..] => return Err(HeaderError::MissingSpace),
    };
    let code = tens * 10 + units;
    let status = status_of(code).ok_or(HeaderError::UnknownStatus(code))?;
    let meta = match meta {
        Some(meta) => std::str::from_utf8(meta).map_err(|_| HeaderError::NotUtf8)?,
        None if status.space_optional() => "",
        None => return Err(HeaderError::MissingSpace),
    };
    check_meta(status, meta)?;
    Ok(ResponseHeader {
        status,
        meta: Cow::Borrowed(meta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(status: Status, meta: &str) -> Result<Vec<u8>, HeaderError> {
        let mut out = Vec::new();
        ResponseHeader::new(status, meta)
            .encode_into(&mut out)
            .map(|()| out)
    }

    fn parsed(buf: &[u8]) -> (Status, &str, usize) {
        match parse_response_header(buf) {
            Ok(ParsedHeader::Complete { header, consumed }) => {
                let meta = match header.meta {
                    Cow::Borrowed(meta) => meta,
                    Cow::Owned(_) => panic!("parsed meta should borrow"),
                };
                (header.status, meta, consumed)
            }
            other => panic!("{buf:?} gave {other:?}"),
        }
    }

    fn byte_at_a_time(buf: &[u8]) -> Result<ParsedHeader<'_>, HeaderError> {
        for n in 0..=buf.len() {
            match parse_response_header(&buf[..n]) {
                Ok(ParsedHeader::Partial) => continue,
                other => return other,
            }
        }
        Ok(ParsedHeader::Partial)
    }

    #[test]
    fn encodes_headers() {
        assert_eq!(
            encode(Status::Success, "text/gemini; lang=en").unwrap(),
            b"20 text/gemini; lang=en\r\n"
        );
        assert_eq!(encode(Status::NotFound, "").unwrap(), b"51 \r\n");
        assert_eq!(encode(Status::Success, "").unwrap(), b"20 \r\n");
        assert_eq!(
            encode(Status::RedirectPermanent, "gemini://h/x/").unwrap(),
            b"31 gemini://h/x/\r\n"
        );
        assert_eq!(encode(Status::Input, "Name?").unwrap(), b"10 Name?\r\n");
        let mut out = b"kept".to_vec();
        ResponseHeader::new(Status::SlowDown, String::from("5"))
            .encode_into(&mut out)
            .unwrap();
        assert_eq!(out, b"kept44 5\r\n");
    }

    #[test]
    fn encoder_rejects_bad_meta_and_writes_nothing() {
        let too_long = "x".repeat(MAX_META + 1);
        let cases = [
            (Status::Success, too_long.as_str(), HeaderError::MetaTooLong),
            (
                Status::Success,
                "text/gemini\r\n",
                HeaderError::ControlCharacter,
            ),
            (Status::NotFound, "a\nb", HeaderError::ControlCharacter),
            (Status::NotFound, "a\rb", HeaderError::ControlCharacter),
            (Status::NotFound, "a\0b", HeaderError::ControlCharacter),
            (Status::NotFound, "a\u{85}b", HeaderError::ControlCharacter),
            (
                Status::RedirectTemporary,
                "",
                HeaderError::EmptyMeta(Status::RedirectTemporary),
            ),
            (
                Status::SensitiveInput,
                "",
                HeaderError::EmptyMeta(Status::SensitiveInput),
            ),
        ];
        for (status, meta, want) in cases {
            let mut out = b"before".to_vec();
            assert_eq!(
                ResponseHeader::new(status, meta).encode_into(&mut out),
                Err(want),
                "{status:?} {meta:?}"
            );
            assert_eq!(out, b"before");
        }
        let at_limit = "x".repeat(MAX_META);
        assert_eq!(
            encode(Status::Success, &at_limit).unwrap().len(),
            MAX_META + 5
        );
    }

    #[test]
    fn encoded_headers_parse_back() {
        for status in Status::ALL {
            let meta = if status.requires_meta() {
                "m e t a"
            } else {
                ""
            };
            let bytes = encode(status, meta).unwrap();
            assert_eq!(parsed(&bytes), (status, meta, bytes.len()));
        }
    }

    #[test]
    fn parses_valid_headers() {
        assert_eq!(
            parsed(b"20 text/gemini\r\n"),
            (Status::Success, "text/gemini", 16)
        );
        assert_eq!(
            parsed(b"20 text/gemini\r\n# body"),
            (Status::Success, "text/gemini", 16)
        );
        assert_eq!(parsed(b"20 \r\n"), (Status::Success, "", 5));
        assert_eq!(parsed(b"51 \r\n"), (Status::NotFound, "", 5));
        assert_eq!(parsed(b"51\r\n"), (Status::NotFound, "", 4));
        assert_eq!(parsed(b"62\r\n"), (Status::CertificateNotValid, "", 4));
        assert_eq!(parsed(b"44 30\r\n"), (Status::SlowDown, "30", 7));
        assert_eq!(parsed("10 Wie heißt du?\r\n".as_bytes()).1, "Wie heißt du?");
        // The meta is everything after the first space, spaces included.
        assert_eq!(parsed(b"40  two spaces\r\n").1, " two spaces");
    }

    #[test]
    fn meta_length_limit_is_exact() {
        let header = |meta_len: usize| format!("20 {}\r\n", "x".repeat(meta_len));
        let ok = header(MAX_META);
        assert_eq!(parsed(ok.as_bytes()).1.len(), MAX_META);
        assert_eq!(
            parse_response_header(header(MAX_META + 1).as_bytes()),
            Err(HeaderError::MetaTooLong)
        );
        // Refused without waiting for CR LF.
        let unterminated = format!("20 {}", "x".repeat(MAX_META + 1));
        assert_eq!(
            parse_response_header(unterminated.as_bytes()),
            Err(HeaderError::MetaTooLong)
        );
    }

    #[test]
    fn rejects_invalid_headers() {
        let cases: [(&[u8], HeaderError); 21] = [
            (b"20 text/gemini\n", HeaderError::BareLf),
            (b"\n", HeaderError::BareLf),
            (b"20 text\rgemini\r\n", HeaderError::ControlCharacter),
            (b"20 text\0gemini\r\n", HeaderError::ControlCharacter),
            (b"20 text\tgemini\r\n", HeaderError::ControlCharacter),
            (b"\r\n", HeaderError::InvalidStatus),
            (b"2\r\n", HeaderError::InvalidStatus),
            (b"2 text/gemini\r\n", HeaderError::InvalidStatus),
            (b"ab text/gemini\r\n", HeaderError::InvalidStatus),
            (b"2x text/gemini\r\n", HeaderError::InvalidStatus),
            (b" 20 text/gemini\r\n", HeaderError::InvalidStatus),
            (b"200 text/gemini\r\n", HeaderError::InvalidStatus),
            (b"21 text/gemini\r\n", HeaderError::UnknownStatus(21)),
            (b"00 x\r\n", HeaderError::UnknownStatus(0)),
            (b"99 x\r\n", HeaderError::UnknownStatus(99)),
            (b"20text/gemini\r\n", HeaderError::MissingSpace),
            (b"20\ttext/gemini\r\n", HeaderError::MissingSpace),
            (b"20\r\n", HeaderError::MissingSpace),
            (b"30\r\n", HeaderError::MissingSpace),
            (
                b"30 \r\n",
                HeaderError::EmptyMeta(Status::RedirectTemporary),
            ),
            (b"20 \xff\r\n", HeaderError::NotUtf8),
        ];
        for (buf, want) in cases {
            assert_eq!(parse_response_header(buf), Err(want), "{buf:?}");
        }
        assert_eq!(
            parse_response_header(b"10 \r\n"),
            Err(HeaderError::EmptyMeta(Status::Input))
        );
    }

    #[test]
    fn lenient_parser_maps_unknown_codes() {
        match parse_response_header_lenient(b"21 text/plain\r\n") {
            Ok(ParsedHeader::Complete { header, consumed }) => {
                assert_eq!(header.status, Status::Success);
                assert_eq!(header.meta, "text/plain");
                assert_eq!(consumed, 15);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_response_header_lenient(b"71 x\r\n"),
            Err(HeaderError::UnknownStatus(71))
        );
        assert_eq!(
            parse_response_header_lenient(b"20 \x01\r\n"),
            Err(HeaderError::ControlCharacter)
        );
    }

    #[test]
    fn partial_until_crlf() {
        for buf in [
            &b""[..],
            b"2",
            b"20",
            b"20 ",
            b"20 text/gemini",
            b"20 text/gemini\r",
        ] {
            assert_eq!(
                parse_response_header(buf),
                Ok(ParsedHeader::Partial),
                "{buf:?}"
            );
        }
    }

    #[test]
    fn same_answer_byte_at_a_time() {
        let long = format!("20 {}\r\n", "x".repeat(MAX_META + 1));
        let inputs: [&[u8]; 9] = [
            b"20 text/gemini\r\nbody",
            b"51\r\n",
            b"20 text/gemini\n",
            b"20 a\rb\r\n",
            b"2x\r\n",
            b"21 x\r\n",
            b"30 \r\n",
            b"20 \xff\r\n",
            long.as_bytes(),
        ];
        for input in inputs {
            assert_eq!(
                byte_at_a_time(input),
                parse_response_header(input),
                "{input:?}"
            );
        }
    }

    #[test]
    fn errors_map_to_cgi_error() {
        assert_eq!(HeaderError::MissingSpace.status(), Status::CgiError);
        assert_eq!(
            HeaderError::UnknownStatus(7).to_string(),
            "unknown response status 07"
        );
        assert_eq!(
            HeaderError::BareLf.to_string(),
            HeaderError::BareLf.reason()
        );
    }

    #[test]
    fn into_owned_outlives_the_buffer() {
        let owned = {
            let buf = b"20 text/plain\r\n".to_vec();
            match parse_response_header(&buf).unwrap() {
                ParsedHeader::Complete { header, .. } => header.into_owned(),
                ParsedHeader::Partial => unreachable!(),
            }
        };
        assert_eq!(owned, ResponseHeader::new(Status::Success, "text/plain"));
    }
}
