//! Recognising ACME http-01 challenge requests (RFC 8555 §8.3).
//!
//! The redirector may answer `/.well-known/acme-challenge/<token>` from a
//! directory instead of redirecting. The token becomes a file name, so only
//! the base64url alphabet is accepted: no dots, slashes or percent-escapes
//! can reach the file system. The file read itself happens elsewhere.

/// The path prefix of http-01 challenges.
pub const ACME_CHALLENGE_PREFIX: &[u8] = b"/.well-known/acme-challenge/";

/// Longest token accepted: RFC 8555 tokens carry at least 128 bits (43
/// base64url characters in practice); this leaves room while keeping file
/// names short.
pub const MAX_ACME_TOKEN: usize = 128;

/// The token of a challenge path, or `None` if `path` is not exactly
/// [`ACME_CHALLENGE_PREFIX`] followed by a non-empty token of
/// `[A-Za-z0-9_-]`, at most [`MAX_ACME_TOKEN`] long.
///
/// `path` is the path-and-query of the request; a query (which ACME servers
/// never send) makes it not a challenge.
pub fn acme_token(path: &[u8]) -> Option<&str> {
    let token = path.strip_prefix(ACME_CHALLENGE_PREFIX)?;
    let valid = !token.is_empty()
        && token.len() <= MAX_ACME_TOKEN
        && token
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return None;
    }
    // Only ASCII bytes passed the check above.
    std::str::from_utf8(token).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_tokens() {
        assert_eq!(
            acme_token(b"/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"),
            Some("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0")
        );
        assert_eq!(
            acme_token(b"/.well-known/acme-challenge/a-b_c"),
            Some("a-b_c")
        );
        let max = [ACME_CHALLENGE_PREFIX, &[b'a'; MAX_ACME_TOKEN]].concat();
        assert_eq!(acme_token(&max).map(str::len), Some(MAX_ACME_TOKEN));
    }

    #[test]
    fn everything_else_is_not_a_token() {
        let too_long = [ACME_CHALLENGE_PREFIX, &[b'a'; MAX_ACME_TOKEN + 1]].concat();
        for path in [
            &b"/.well-known/acme-challenge/"[..],
            b"/.well-known/acme-challenge",
            b"/.well-known/acme-challenge/../etc/passwd",
            b"/.well-known/acme-challenge/..",
            b"/.well-known/acme-challenge/.hidden",
            b"/.well-known/acme-challenge/%2e%2e",
            b"/.well-known/acme-challenge/a/b",
            b"/.well-known/acme-challenge/a\\b",
            b"/.well-known/acme-challenge/a?x=1",
            b"/.well-known/acme-challenge/a#f",
            b"/.well-known/acme-challenge/a b",
            b"/.well-known/acme-challenge/a\0",
            b"/.well-known/acme-challenge/caf\xc3\xa9",
            b"/.WELL-KNOWN/acme-challenge/abc",
            b"//.well-known/acme-challenge/abc",
            b"/.well-known/acme-challenge//abc",
            b"/x/.well-known/acme-challenge/abc",
            b"/",
            &too_long,
        ] {
            assert_eq!(
                acme_token(path),
                None,
                "{:?}",
                String::from_utf8_lossy(path)
            );
        }
    }
}
