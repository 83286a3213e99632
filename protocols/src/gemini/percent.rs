//! Strict percent-decoding (RFC 3986 §2.1), shared by host normalisation and
//! path safety. Strict means a `%` not followed by two hex digits is an error:
//! the `url` crate passes such sequences through untouched, and guessing what
//! they meant is how decoders disagree with each other.

/// A `%` was not followed by two hexadecimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidPercentEncoding;

/// Appends the percent-decoding of `input` to `out`, decoding exactly once.
///
/// Runs without `%` are copied whole; `out` grows at most by `input.len()`.
pub(crate) fn decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidPercentEncoding> {
    out.reserve(input.len());
    let mut rest = input;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        let (run, escape) = rest.split_at(at);
        out.extend_from_slice(run);
        let [_, hi, lo, after @ ..] = escape else {
            return Err(InvalidPercentEncoding);
        };
        let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) else {
            return Err(InvalidPercentEncoding);
        };
        out.push((hi << 4) | lo);
        rest = after;
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// The value of one ASCII hexadecimal digit, either case.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Result<Vec<u8>, InvalidPercentEncoding> {
        let mut out = Vec::new();
        decode_into(input, &mut out).map(|()| out)
    }

    #[test]
    fn decodes_escapes_in_either_case() {
        assert_eq!(decode(b"a%2fb%2Fc").unwrap(), b"a/b/c");
        assert_eq!(decode(b"%00%ff%FF").unwrap(), b"\0\xff\xff");
        assert_eq!(decode(b"plain").unwrap(), b"plain");
        assert_eq!(decode(b"").unwrap(), b"");
    }

    #[test]
    fn decodes_exactly_once() {
        assert_eq!(decode(b"%252e").unwrap(), b"%2e");
    }

    #[test]
    fn appends_to_existing_output() {
        let mut out = b"x/".to_vec();
        decode_into(b"%41", &mut out).unwrap();
        assert_eq!(out, b"x/A");
    }

    #[test]
    fn rejects_truncated_or_non_hex_escapes() {
        for bad in [&b"%"[..], b"%2", b"a%", b"%zz", b"%2g", b"%g2", b"%%41"] {
            assert_eq!(decode(bad), Err(InvalidPercentEncoding), "{bad:?}");
        }
    }
}
