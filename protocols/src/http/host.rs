//! `Host` header validation, in the spirit of nginx's `$host`.
//!
//! The redirector copies the client's host into a `Location` header, so the
//! value must be something that can only ever be a host: a DNS name made of
//! letters, digits and hyphens, an IPv4 dotted quad, or a bracketed IPv6
//! literal, with an optional port that is split off. Anything that could
//! change how the URL is read (`@`, `/`, `#`, `?`, `%`, `\`, spaces, control
//! bytes, non-ASCII) is rejected rather than escaped.
//!
//! Decisions worth knowing:
//! - Underscores are rejected: they are not LDH, and no publicly trusted
//!   certificate can name such a host, so an `https://` redirect to it could
//!   never succeed anyway.
//! - One trailing dot (`example.com.`) is accepted and stripped, as nginx does.
//! - A name whose last label is numeric (`1.2.3`, `0x7f.1`) is parsed by
//!   browsers as an IPv4 address in some shorthand; only the canonical dotted
//!   quad (`1.2.3.4`, no leading zeros) is accepted, so the `Location` means
//!   the same thing to every reader.
//! - The value is borrowed, not copied: [`HostName`] keeps the client's
//!   letter case and writes itself lowercased.

use std::fmt;
use std::net::Ipv6Addr;

/// Longest DNS name in its textual form (RFC 1035 §2.3.4, without the
/// trailing dot); anything longer cannot be resolved.
pub const MAX_HOST_NAME: usize = 253;

/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;

/// Longest bracketed IPv6 literal we look at (`[` + 45 characters of the
/// longest textual form + `]`); longer input is rejected before parsing.
pub const MAX_IPV6_LITERAL: usize = 47;

/// What kind of host a [`HostName`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A DNS name of LDH labels.
    Dns,
    /// An IPv4 dotted quad.
    Ipv4,
    /// An IPv6 literal, kept with its brackets.
    Ipv6,
}

/// A validated host, borrowed from the header value it came from.
///
/// The bytes are exactly as the client sent them (minus port and trailing
/// dot); use [`HostName::write_lowercase`] or `Display` for the normalised
/// form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostName<'a> {
    /// The host without its port; for IPv6 including the brackets.
    name: &'a [u8],
    /// What the name is.
    kind: HostKind,
    /// The port that followed the host, if any.
    port: Option<u16>,
}

impl<'a> HostName<'a> {
    /// Rebuilds a name that was validated earlier (the request head keeps
    /// only offsets, not the borrowed value).
    pub(crate) fn from_validated(name: &'a [u8], kind: HostKind, port: Option<u16>) -> Self {
        HostName { name, kind, port }
    }

    /// The host as received (original letter case, no port, no trailing
    /// dot, brackets kept for IPv6). Only ASCII host characters.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.name
    }

    /// What kind of host this is.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// The port that was given after the host, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Appends the host, lowercased, to `out`.
    pub fn write_lowercase(&self, out: &mut Vec<u8>) {
        out.extend(self.name.iter().map(u8::to_ascii_lowercase));
    }
}

impl fmt::Display for HostName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.name {
            fmt::Write::write_char(f, char::from(b.to_ascii_lowercase()))?;
        }
        Ok(())
    }
}

/// Why a `Host` value was refused. Every variant maps to `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// Nothing before the port (or nothing at all).
    Empty,
    /// A byte that cannot appear in a host: `@ / # ? % \ _`, space,
    /// control, non-ASCII, or a `:` where no port can start.
    InvalidByte,
    /// The name is longer than [`MAX_HOST_NAME`].
    TooLong,
    /// A label is longer than [`MAX_LABEL`].
    LabelTooLong,
    /// Two dots in a row, or a leading dot.
    EmptyLabel,
    /// A label starts or ends with `-`.
    HyphenAtLabelEdge,
    /// The last label is numeric but the whole is not a canonical dotted
    /// quad.
    BadIpv4,
    /// Brackets that are unclosed or do not hold an IPv6 address, or junk
    /// after the closing bracket.
    BadIpv6,
    /// `:` followed by nothing, a non-digit, more than five digits, `0` or
    /// a value above 65535.
    BadPort,
}

impl HostError {
    /// A short reason, fit for a log line.
    pub fn reason(&self) -> &'static str {
        match self {
            HostError::Empty => "empty host",
            HostError::InvalidByte => "invalid byte in host",
            HostError::TooLong => "host name too long",
            HostError::LabelTooLong => "host label too long",
            HostError::EmptyLabel => "empty label in host name",
            HostError::HyphenAtLabelEdge => "host label starts or ends with a hyphen",
            HostError::BadIpv4 => "numeric host is not a dotted-quad IPv4 address",
            HostError::BadIpv6 => "invalid IPv6 literal",
            HostError::BadPort => "invalid port",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HostError {}

/// Validates a `Host` header value (or the authority of an absolute-form
/// target): `name[:port]`, `a.b.c.d[:port]` or `[v6][:port]`.
pub fn parse_host(value: &[u8]) -> Result<HostName<'_>, HostError> {
    if value.first() == Some(&b'[') {
        return parse_bracketed(value);
    }
    let (name, port) = match value.iter().position(|&b| b == b':') {
        Some(colon) => {
            let (name, rest) = value.split_at(colon);
            // `rest` starts with the colon; a second colon fails in parse_port.
            (name, Some(parse_port(rest.get(1..).unwrap_or_default())?))
        }
        None => (value, None),
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    let kind = check_name(name)?;
    Ok(HostName { name, kind, port })
}

/// Parses `[v6]` and `[v6]:port`.
fn parse_bracketed(value: &[u8]) -> Result<HostName<'_>, HostError> {
    let close = value
        .iter()
        .take(MAX_IPV6_LITERAL)
        .position(|&b| b == b']')
        .ok_or(HostError::BadIpv6)?;
    let (name, rest) = value.split_at(close + 1);
    let inner = name
        .get(1..close)
        .filter(|s| {
            s.iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        })
        .ok_or(HostError::BadIpv6)?;
    // All bytes are ASCII, so this is valid UTF-8; std rejects zone ids.
    let text = std::str::from_utf8(inner).map_err(|_| HostError::BadIpv6)?;
    text.parse::<Ipv6Addr>().map_err(|_| HostError::BadIpv6)?;
    let port = match rest.split_first() {
        None => None,
        Some((b':', digits)) => Some(parse_port(digits)?),
        Some(_) => return Err(HostError::BadIpv6),
    };
    Ok(HostName {
        name,
        kind: HostKind::Ipv6,
        port,
    })
}

/// Parses 1 to 5 ASCII digits into a port in 1..=65535.
fn parse_port(digits: &[u8]) -> Result<u16, HostError> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HostError::BadPort);
    }
    let value = digits
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(HostError::BadPort),
    }
}

/// Checks a DNS name or IPv4 literal (port and trailing dot already gone).
fn check_name(name: &[u8]) -> Result<HostKind, HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if !name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(HostError::InvalidByte);
    }
    if name.len() > MAX_HOST_NAME {
        return Err(HostError::TooLong);
    }
    for label in name.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(HostError::LabelTooLong);
        }
        if label.first() == Some(&b'-') || label.last() == Some(&b'-') {
            return Err(HostError::HyphenAtLabelEdge);
        }
    }
    let last = name.rsplit(|&b| b == b'.').next().unwrap_or_default();
    if ends_in_number(last) {
        return if is_dotted_quad(name) {
            Ok(HostKind::Ipv4)
        } else {
            Err(HostError::BadIpv4)
        };
    }
    Ok(HostKind::Dns)
}

/// The WHATWG URL "ends in a number" test: browsers parse such hosts as
/// IPv4 (decimal, or hex with `0x`).
fn ends_in_number(label: &[u8]) -> bool {
    if label.iter().all(u8::is_ascii_digit) {
        return true;
    }
    match label {
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    }
}

/// Exactly four decimal octets, 0..=255, without leading zeros.
fn is_dotted_quad(name: &[u8]) -> bool {
    let mut parts = 0;
    for part in name.split(|&b| b == b'.') {
        parts += 1;
        let canonical = match part {
            [b'0'] => true,
            [first, ..] => *first != b'0' && part.len() <= 3,
            [] => false,
        };
        if !canonical || !part.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let value = part
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
        if value > 255 {
            return false;
        }
    }
    parts == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &[u8]) -> (String, HostKind, Option<u16>) {
        let h = parse_host(value).unwrap();
        (h.to_string(), h.kind(), h.port())
    }

    #[test]
    fn dns_names_are_lowercased_and_port_split() {
        assert_eq!(
            ok(b"Example.COM"),
            ("example.com".into(), HostKind::Dns, None)
        );
        assert_eq!(
            ok(b"example.com:8080"),
            ("example.com".into(), HostKind::Dns, Some(8080))
        );
        assert_eq!(ok(b"localhost"), ("localhost".into(), HostKind::Dns, None));
        assert_eq!(ok(b"a-b.c1"), ("a-b.c1".into(), HostKind::Dns, None));
        assert_eq!(ok(b"1.example"), ("1.example".into(), HostKind::Dns, None));
        assert_eq!(ok(b"x:65535").2, Some(65535));
        assert_eq!(ok(b"x:1").2, Some(1));
        assert_eq!(ok(b"x:080").2, Some(80));
    }

    #[test]
    fn as_bytes_keeps_case_and_write_lowercase_lowers() {
        let h = parse_host(b"WWW.Example.org:443").unwrap();
        assert_eq!(h.as_bytes(), b"WWW.Example.org");
        let mut out = Vec::new();
        h.write_lowercase(&mut out);
        assert_eq!(out, b"www.example.org");
    }

    #[test]
    fn trailing_dot_is_stripped() {
        assert_eq!(
            ok(b"example.com."),
            ("example.com".into(), HostKind::Dns, None)
        );
        assert_eq!(
            ok(b"example.com.:81"),
            ("example.com".into(), HostKind::Dns, Some(81))
        );
        assert_eq!(parse_host(b"."), Err(HostError::Empty));
        assert_eq!(parse_host(b"example.com.."), Err(HostError::EmptyLabel));
    }

    #[test]
    fn ipv4_literals() {
        assert_eq!(ok(b"127.0.0.1"), ("127.0.0.1".into(), HostKind::Ipv4, None));
        assert_eq!(
            ok(b"255.255.255.255:8443"),
            ("255.255.255.255".into(), HostKind::Ipv4, Some(8443))
        );
        assert_eq!(ok(b"10.0.0.1.").1, HostKind::Ipv4);
        for bad in [
            &b"256.0.0.1"[..],
            b"1.2.3",
            b"1.2.3.4.5",
            b"01.2.3.4",
            b"1.2.3.0400",
            b"example.123",
            b"0x7f.1",
            b"a.0x",
            b"1234",
        ] {
            assert_eq!(parse_host(bad), Err(HostError::BadIpv4), "{bad:?}");
        }
        // Hex-looking but not "0x": an ordinary name.
        assert_eq!(ok(b"a.0xg").1, HostKind::Dns);
    }

    #[test]
    fn ipv6_literals_stay_bracketed() {
        assert_eq!(ok(b"[::1]"), ("[::1]".into(), HostKind::Ipv6, None));
        assert_eq!(
            ok(b"[2001:DB8::1]:8080"),
            ("[2001:db8::1]".into(), HostKind::Ipv6, Some(8080))
        );
        assert_eq!(ok(b"[::ffff:1.2.3.4]").1, HostKind::Ipv6);
        for bad in [
            &b"[::1"[..],
            b"[",
            b"[]",
            b"[::1]x",
            b"[::1]:",
            b"[fe80::1%25eth0]",
            b"[fe80::1%eth0]",
            b"[1:2:3:4:5:6:7:8:9]",
            b"[::g]",
            b"[::1]]",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_host(b"[::1]:"), Err(HostError::BadPort));
        assert_eq!(parse_host(b"[::1"), Err(HostError::BadIpv6));
        let long = [b"[".as_slice(), &[b'0'; 60], b"::1]"].concat();
        assert_eq!(parse_host(&long), Err(HostError::BadIpv6));
    }

    #[test]
    fn injection_attempts_are_rejected() {
        for bad in [
            &b"a.com@evil.com"[..],
            b"a.com#@evil.com",
            b"a.com\r\nX: y",
            b"a.com evil.com",
            b"evil.com/.a.com",
            b"a.com?x",
            b"a.com\\evil.com",
            b"a.com%2f",
            b"user:pass@a.com",
            b"a.com\0",
            b"a.com\t",
            b"caf\xc3\xa9.com",
            b"under_score.com",
            b"a.com\x7f",
        ] {
            assert!(parse_host(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_host(b"a.com@evil.com"), Err(HostError::InvalidByte));
        assert_eq!(parse_host(b"under_score.com"), Err(HostError::InvalidByte));
        // The `:` makes `pass@a.com` the port.
        assert_eq!(parse_host(b"user:pass@a.com"), Err(HostError::BadPort));
    }

    #[test]
    fn bad_ports() {
        for bad in [
            &b"host:"[..],
            b"host:80x",
            b"host:0",
            b"host:65536",
            b"host:123456",
            b"host:-1",
            b"host:+80",
            b"host: 80",
            b"host:80:80",
            b"host::80",
            b"::1",
        ] {
            assert_eq!(parse_host(bad), Err(HostError::BadPort), "{bad:?}");
        }
    }

    #[test]
    fn structural_errors() {
        assert_eq!(parse_host(b""), Err(HostError::Empty));
        assert_eq!(parse_host(b":80"), Err(HostError::Empty));
        assert_eq!(parse_host(b".a.com"), Err(HostError::EmptyLabel));
        assert_eq!(parse_host(b"a..com"), Err(HostError::EmptyLabel));
        assert_eq!(parse_host(b"-a.com"), Err(HostError::HyphenAtLabelEdge));
        assert_eq!(parse_host(b"a-.com"), Err(HostError::HyphenAtLabelEdge));
        let label = [b'a'; MAX_LABEL];
        assert!(parse_host(&label).is_ok());
        let label = [b'a'; MAX_LABEL + 1];
        assert_eq!(parse_host(&label), Err(HostError::LabelTooLong));
        // 4 labels of 63 + 3 dots = 255 > 253.
        let long = [[b'a'; 63].as_slice(); 4].join(&b'.');
        assert_eq!(parse_host(&long), Err(HostError::TooLong));
        let fits = [[b'a'; 63].as_slice(), &[b'a'; 63], &[b'a'; 63], &[b'a'; 61]].join(&b'.');
        assert_eq!(fits.len(), MAX_HOST_NAME);
        assert!(parse_host(&fits).is_ok());
    }

    #[test]
    fn every_error_has_a_reason() {
        for e in [
            HostError::Empty,
            HostError::InvalidByte,
            HostError::TooLong,
            HostError::LabelTooLong,
            HostError::EmptyLabel,
            HostError::HyphenAtLabelEdge,
            HostError::BadIpv4,
            HostError::BadIpv6,
            HostError::BadPort,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
