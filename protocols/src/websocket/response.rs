//! Handshake responses: the `101 Switching Protocols` that opens a
//! WebSocket, and the error responses that refuse one.
//!
//! Error responses carry a short plain-text body, its `Content-Length`, and
//! `Connection: close`: after refusing a handshake the server closes, so the
//! client never has to guess where the response ends.

use super::handshake::{is_token, WEBSOCKET_VERSION};

/// A refusal of a handshake (or page) request, with the headers its status
/// requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// 400: the request is not a valid handshake.
    BadRequest,
    /// 403: the Origin is not allowed by the endpoint's
    /// [`OriginPolicy`](super::OriginPolicy).
    Forbidden,
    /// 404: no endpoint at this path.
    NotFound,
    /// 405: a method other than GET (or HEAD for pages); sends
    /// `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// 426: the client asked for a protocol version other than 13; sends
    /// `Sec-WebSocket-Version: 13` so it can retry with one we speak.
    UpgradeRequired,
    /// 429: the client's address is over its rate limit; sends `Retry-After`.
    TooManyRequests {
        /// Seconds after which the client may try again.
        retry_after_secs: u32,
    },
    /// 431: the request head is too large or has too many fields.
    HeaderFieldsTooLarge,
}

impl Rejection {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::UpgradeRequired => 426,
            Self::TooManyRequests { .. } => 429,
            Self::HeaderFieldsTooLarge => 431,
        }
    }

    /// The status line's reason phrase.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest => "Bad Request",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::UpgradeRequired => "Upgrade Required",
            Self::TooManyRequests { .. } => "Too Many Requests",
            Self::HeaderFieldsTooLarge => "Request Header Fields Too Large",
        }
    }
}

/// Appends the `101 Switching Protocols` response for an accepted upgrade:
/// `accept` is [`UpgradeRequest::accept`](super::UpgradeRequest::accept),
/// `subprotocol` the one [`select_subprotocol`](super::select_subprotocol)
/// chose. A subprotocol that is not an HTTP token (never the case for one the
/// client offered) is left out rather than allowed to break the response.
pub fn encode_switching_protocols(accept: &str, subprotocol: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = subprotocol.filter(|p| is_token(p)) {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(protocol.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a complete error response for `rejection`.
pub fn encode_rejection(rejection: Rejection, out: &mut Vec<u8>) {
    let status = rejection.status();
    let reason = rejection.reason();
    // Body: "400 Bad Request\n".
    let body_len = 3 + 1 + reason.len() + 1;

    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(u64::from(status), out);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    push_decimal(u64::try_from(body_len).unwrap_or(0), out);
    out.extend_from_slice(b"\r\nConnection: close\r\n");
    match rejection {
        Rejection::UpgradeRequired => {
            out.extend_from_slice(b"Sec-WebSocket-Version: ");
            out.extend_from_slice(WEBSOCKET_VERSION.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Rejection::TooManyRequests { retry_after_secs } => {
            out.extend_from_slice(b"Retry-After: ");
            push_decimal(u64::from(retry_after_secs), out);
            out.extend_from_slice(b"\r\n");
        }
        Rejection::MethodNotAllowed => out.extend_from_slice(b"Allow: GET, HEAD\r\n"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    push_decimal(u64::from(status), out);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.push(b'\n');
}

/// Appends `n` in decimal without allocating.
fn push_decimal(n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(r: Rejection) -> String {
        let mut out = Vec::new();
        encode_rejection(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Parses a response with httparse and checks Content-Length.
    fn check_framing(text: &str) -> (u16, Vec<(String, String)>) {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(n) = resp.parse(text.as_bytes()).unwrap() else {
            panic!("partial response");
        };
        let pairs: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect();
        let len: usize = pairs
            .iter()
            .find(|(k, _)| k == "Content-Length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        assert_eq!(text.len() - n, len, "body length of {text:?}");
        (resp.code.unwrap(), pairs)
    }

    #[test]
    fn switching_protocols() {
        let mut out = Vec::new();
        encode_switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", Some("chat"), &mut out);
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
        );
        out.clear();
        encode_switching_protocols("x", None, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("Sec-WebSocket-Protocol"));
        out.clear();
        encode_switching_protocols("x", Some("evil\r\nSet-Cookie: a"), &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("evil"));
    }

    #[test]
    fn every_rejection_is_well_framed() {
        for (r, status) in [
            (Rejection::BadRequest, 400),
            (Rejection::Forbidden, 403),
            (Rejection::NotFound, 404),
            (Rejection::MethodNotAllowed, 405),
            (Rejection::UpgradeRequired, 426),
            (
                Rejection::TooManyRequests {
                    retry_after_secs: 30,
                },
                429,
            ),
            (Rejection::HeaderFieldsTooLarge, 431),
        ] {
            let text = rejection(r);
            let (code, headers) = check_framing(&text);
            assert_eq!(code, status);
            assert_eq!(r.status(), status);
            assert!(headers.contains(&("Connection".into(), "close".into())));
            assert!(text.ends_with(&format!("{status} {}\n", r.reason())));
        }
    }

    #[test]
    fn status_specific_headers() {
        let (_, h) = check_framing(&rejection(Rejection::UpgradeRequired));
        assert!(h.contains(&("Sec-WebSocket-Version".into(), "13".into())));
        let (_, h) = check_framing(&rejection(Rejection::TooManyRequests {
            retry_after_secs: 4_294_967_295,
        }));
        assert!(h.contains(&("Retry-After".into(), "4294967295".into())));
        let (_, h) = check_framing(&rejection(Rejection::MethodNotAllowed));
        assert!(h.contains(&("Allow".into(), "GET, HEAD".into())));
    }

    #[test]
    fn exact_bad_request() {
        assert_eq!(
            rejection(Rejection::BadRequest),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 16\r\nConnection: close\r\n\r\n400 Bad Request\n"
        );
    }

    #[test]
    fn decimal() {
        for n in [0u64, 7, 10, 429, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(n, &mut out);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
