//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load
//! balancer such as HAProxy or nginx `stream` sends before the client's
//! bytes, naming the real client.
//!
//! A pure, incremental parser: give [`parse`] everything received so far;
//! it answers [`Parsed::Partial`] until the header is complete (or an error
//! as soon as the bytes are provably not a valid header), then
//! [`Parsed::Complete`] with the header and how many bytes it took (the
//! rest belongs to the protocol behind it, e.g. a TLS ClientHello). Feeding
//! one byte at a time gives the same result as feeding the whole.
//!
//! Buffering is bounded: a v1 header is at most [`V1_MAX_LEN`] bytes, a v2
//! header at most [`MAX_HEADER_LEN`]; past that [`ProxyError::TooLong`].
//! v2 TLVs are checked for framing and skipped. Whether to trust the header
//! at all (only from configured proxy addresses) and the read deadline are
//! the caller's business.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 header, `\r\n` included, as the specification fixes it
/// (a `TCP6` line with the longest addresses and ports).
pub const V1_MAX_LEN: usize = 107;

/// The 12 bytes every v2 header starts with (chosen to be invalid in any
/// text protocol, so a v2 header cannot be mistaken for a request).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 header's fixed part: signature, version/command, family, length.
pub const V2_FIXED_LEN: usize = 16;

/// The most v2 address-and-TLV bytes accepted: the largest address block
/// (216 bytes, Unix) plus room for HAProxy's TLVs (ALPN, authority, SSL
/// facts, unique id), while keeping a hostile length from making us buffer
/// up to 64 KiB per connection.
pub const MAX_V2_PAYLOAD: usize = 2048;

/// The most bytes a caller needs to buffer before [`parse`] decides.
pub const MAX_HEADER_LEN: usize = V2_FIXED_LEN + MAX_V2_PAYLOAD;

const V1_PREFIX: &[u8] = b"PROXY ";

/// Which version of the protocol the header used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The text form (`PROXY TCP4 ...\r\n`).
    V1,
    /// The binary form.
    V2,
}

/// What the proxy says the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// A connection the proxy made itself (e.g. a health check): use the
    /// socket's real addresses. v2 only.
    Local,
    /// A relayed client connection: use the addresses in the header.
    Proxy,
}

/// The endpoints the header reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// None usable (v1 `UNKNOWN`, v2 `LOCAL`, `UNSPEC` family or
    /// protocol): use the socket's real addresses.
    Unknown,
    /// A TCP client: `source` is the real client, `destination` the address
    /// it connected to on the proxy.
    Tcp {
        /// The real client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// A client on a Unix socket of the proxy (v2 `AF_UNIX`): it has no IP,
    /// so the paths are not kept.
    Unix,
}

/// A complete, valid PROXY header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// v1 or v2.
    pub version: Version,
    /// `Local` or `Proxy` (always `Proxy` for v1).
    pub command: Command,
    /// The reported endpoints.
    pub addresses: Addresses,
}

impl ProxyHeader {
    /// The real client's address, if the header names one.
    pub fn source(&self) -> Option<SocketAddr> {
        match self.addresses {
            Addresses::Tcp { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result of a successful [`parse`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The header is complete and valid; it took the first `consumed` bytes.
    Complete {
        /// The header.
        header: ProxyHeader,
        /// Its length in bytes: the protocol's data starts after them.
        consumed: usize,
    },
    /// Valid so far; more bytes are needed.
    Partial,
}

/// Why the bytes are not a valid PROXY header. Every error closes the
/// connection (there is no reply: the peer is a proxy, not a client).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The first byte cannot start a PROXY header: the peer sent none (a
    /// client connected directly, e.g. a TLS ClientHello).
    Missing,
    /// The bytes began like a v1 (`PROXY `) or v2 signature, then differed.
    BadSignature,
    /// A v1 line with a forbidden byte (control character, non-ASCII), a
    /// bare CR or LF, or misplaced spaces or fields.
    Garbage,
    /// A v1 address or port that does not parse or does not match the
    /// family (`TCP4` with an IPv6 address, port over 65535, leading zero).
    BadAddress,
    /// A v1 protocol other than `TCP4`, `TCP6`, `UNKNOWN`; a v2 family or
    /// transport outside the specification, or a datagram (UDP)
    /// transport, which a stream listener cannot carry.
    UnsupportedFamily,
    /// A v2 version nibble other than 2.
    BadVersion,
    /// A v2 command other than `LOCAL` (0) or `PROXY` (1).
    BadCommand,
    /// The v2 header's own length is too short for what it declares: an
    /// address block shorter than its family needs, or a TLV running past
    /// the end.
    Truncated,
    /// A v1 line over [`V1_MAX_LEN`] bytes, or a v2 length over
    /// [`MAX_V2_PAYLOAD`].
    TooLong,
}

impl ProxyError {
    /// True if the peer sent no PROXY header at all (worth a clearer log
    /// line: a client bypassing the proxy, or a misconfigured proxy).
    pub fn is_missing(&self) -> bool {
        matches!(self, ProxyError::Missing)
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyError::Missing => "no PROXY protocol header",
            ProxyError::BadSignature => "bad PROXY protocol signature",
            ProxyError::Garbage => "malformed PROXY v1 line",
            ProxyError::BadAddress => "bad address or port in PROXY v1 line",
            ProxyError::UnsupportedFamily => "unsupported PROXY address family or transport",
            ProxyError::BadVersion => "unsupported PROXY v2 version",
            ProxyError::BadCommand => "unsupported PROXY v2 command",
            ProxyError::Truncated => "PROXY v2 header shorter than its contents",
            ProxyError::TooLong => "PROXY header too long",
        })
    }
}

impl std::error::Error for ProxyError {}

/// Parses a PROXY header (v1 or v2) at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match buf.first() {
        None => Ok(Parsed::Partial),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::Missing),
    }
}

/// Checks `buf` against as much of `sig` as it holds: `Ok(true)` when the
/// whole signature is there, `Ok(false)` when more bytes are needed.
fn signature(buf: &[u8], sig: &[u8]) -> Result<bool, ProxyError> {
    let n = buf.len().min(sig.len());
    if buf.get(..n) != sig.get(..n) {
        return Err(ProxyError::BadSignature);
    }
    Ok(buf.len() >= sig.len())
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if !signature(buf, V1_PREFIX)? {
        return Ok(Parsed::Partial);
    }
    // Scan no further than the longest legal line, and judge each byte by
    // bytes inside that window only, so a prefix and the whole input meet
    // the same first error.
    let window = buf.get(..buf.len().min(V1_MAX_LEN)).unwrap_or(buf);
    let mut line_end = None;
    for (i, &b) in window.iter().enumerate() {
        match b {
            b'\n' => {
                if i.checked_sub(1).and_then(|p| window.get(p)) != Some(&b'\r') {
                    return Err(ProxyError::Garbage);
                }
                line_end = Some(i);
                break;
            }
            b'\r' => match window.get(i + 1) {
                Some(b'\n') | None => {}
                Some(_) => return Err(ProxyError::Garbage),
            },
            0x20..=0x7e => {}
            _ => return Err(ProxyError::Garbage),
        }
    }
    let Some(lf) = line_end else {
        return if buf.len() >= V1_MAX_LEN {
            Err(ProxyError::TooLong)
        } else {
            Ok(Parsed::Partial)
        };
    };
    // Between "PROXY " and "\r\n"; the scan guarantees `lf - 1` is the CR.
    let fields = window
        .get(V1_PREFIX.len()..lf.saturating_sub(1))
        .ok_or(ProxyError::Garbage)?;
    let fields = std::str::from_utf8(fields).map_err(|_| ProxyError::Garbage)?;
    let addresses = v1_fields(fields)?;
    Ok(Parsed::Complete {
        header: ProxyHeader {
            version: Version::V1,
            command: Command::Proxy,
            addresses,
        },
        consumed: lf + 1,
    })
}

fn v1_fields(fields: &str) -> Result<Addresses, ProxyError> {
    let mut parts = fields.split(' ');
    let v6 = match parts.next() {
        // Whatever follows UNKNOWN is to be ignored, by the specification.
        Some("UNKNOWN") => return Ok(Addresses::Unknown),
        Some("TCP4") => false,
        Some("TCP6") => true,
        Some("") | None => return Err(ProxyError::Garbage),
        Some(_) => return Err(ProxyError::UnsupportedFamily),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ProxyError::Garbage);
    };
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        if s.is_empty() {
            return Err(ProxyError::Garbage);
        }
        if v6 {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        }
        .map_err(|_| ProxyError::BadAddress)
    };
    Ok(Addresses::Tcp {
        source: SocketAddr::new(ip(src)?, v1_port(sport)?),
        destination: SocketAddr::new(ip(dst)?, v1_port(dport)?),
    })
}

/// A decimal port, 0..=65535, without leading zeros (as the specification
/// demands) or signs.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    if s.is_empty() {
        return Err(ProxyError::Garbage);
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return Err(ProxyError::BadAddress);
    }
    s.parse().map_err(|_| ProxyError::BadAddress)
}

const FAMILY_UNSPEC: u8 = 0;
const FAMILY_INET: u8 = 1;
const FAMILY_INET6: u8 = 2;
const FAMILY_UNIX: u8 = 3;
const TRANSPORT_UNSPEC: u8 = 0;
const TRANSPORT_STREAM: u8 = 1;
const TRANSPORT_DGRAM: u8 = 2;

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if !signature(buf, &V2_SIGNATURE)? {
        return Ok(Parsed::Partial);
    }
    let Some(&ver_cmd) = buf.get(12) else {
        return Ok(Parsed::Partial);
    };
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::BadVersion);
    }
    let command = match ver_cmd & 0x0f {
        0 => Command::Local,
        1 => Command::Proxy,
        _ => return Err(ProxyError::BadCommand),
    };
    let Some(&fam) = buf.get(13) else {
        return Ok(Parsed::Partial);
    };
    let (family, transport) = (fam >> 4, fam & 0x0f);
    // LOCAL discards the address block whatever its family, by the
    // specification, so only PROXY headers are held to known families.
    if command == Command::Proxy && (family > FAMILY_UNIX || transport > TRANSPORT_DGRAM) {
        return Err(ProxyError::UnsupportedFamily);
    }
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(Parsed::Partial);
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > MAX_V2_PAYLOAD {
        return Err(ProxyError::TooLong);
    }
    let consumed = V2_FIXED_LEN + len;
    let Some(payload) = buf.get(V2_FIXED_LEN..consumed) else {
        return Ok(Parsed::Partial);
    };
    let addresses = match command {
        Command::Local => Addresses::Unknown,
        Command::Proxy => v2_addresses(family, transport, payload)?,
    };
    Ok(Parsed::Complete {
        header: ProxyHeader {
            version: Version::V2,
            command,
            addresses,
        },
        consumed,
    })
}

fn v2_addresses(family: u8, transport: u8, payload: &[u8]) -> Result<Addresses, ProxyError> {
    if family == FAMILY_UNSPEC || transport == TRANSPORT_UNSPEC {
        // "The receiver must ignore the address information": the block
        // may hold anything, so it is not parsed, TLVs included.
        return Ok(Addresses::Unknown);
    }
    if transport != TRANSPORT_STREAM {
        return Err(ProxyError::UnsupportedFamily);
    }
    let (addresses, rest) = match family {
        FAMILY_INET => {
            let (a, rest) = split_array::<12>(payload)?;
            let [s0, s1, s2, s3, d0, d1, d2, d3, sp0, sp1, dp0, dp1] = a;
            let source = SocketAddr::from(([s0, s1, s2, s3], u16::from_be_bytes([sp0, sp1])));
            let destination = SocketAddr::from(([d0, d1, d2, d3], u16::from_be_bytes([dp0, dp1])));
            (
                Addresses::Tcp {
                    source,
                    destination,
                },
                rest,
            )
        }
        FAMILY_INET6 => {
            let (src, rest) = split_array::<16>(payload)?;
            let (dst, rest) = split_array::<16>(rest)?;
            let (ports, rest) = split_array::<4>(rest)?;
            let [sp0, sp1, dp0, dp1] = ports;
            let source = SocketAddr::from((Ipv6Addr::from(src), u16::from_be_bytes([sp0, sp1])));
            let destination =
                SocketAddr::from((Ipv6Addr::from(dst), u16::from_be_bytes([dp0, dp1])));
            (
                Addresses::Tcp {
                    source,
                    destination,
                },
                rest,
            )
        }
        FAMILY_UNIX => {
            let (_, rest) = split_array::<216>(payload)?;
            (Addresses::Unix, rest)
        }
        _ => return Err(ProxyError::UnsupportedFamily),
    };
    skip_tlvs(rest)?;
    Ok(addresses)
}

/// The first `N` bytes as an array and the rest, or `Truncated`.
fn split_array<const N: usize>(bytes: &[u8]) -> Result<([u8; N], &[u8]), ProxyError> {
    if bytes.len() < N {
        return Err(ProxyError::Truncated);
    }
    let (head, rest) = bytes.split_at(N);
    let head = <[u8; N]>::try_from(head).map_err(|_| ProxyError::Truncated)?;
    Ok((head, rest))
}

/// Checks that the TLVs (type, 2-byte length, value) tile the rest of the
/// header exactly. At most `MAX_V2_PAYLOAD / 3` iterations.
fn skip_tlvs(mut rest: &[u8]) -> Result<(), ProxyError> {
    while !rest.is_empty() {
        let (tl, after) = split_array::<3>(rest)?;
        let [_kind, hi, lo] = tl;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        rest = after.get(len..).ok_or(ProxyError::Truncated)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (ProxyHeader, usize) {
        match parse(buf) {
            Ok(Parsed::Complete { header, consumed }) => (header, consumed),
            other => panic!("expected Complete for {buf:?}, got {other:?}"),
        }
    }

    fn tcp(src: &str, dst: &str) -> Addresses {
        Addresses::Tcp {
            source: src.parse().unwrap(),
            destination: dst.parse().unwrap(),
        }
    }

    /// Feeds `buf` one byte at a time (as an accumulating buffer, the way
    /// a connection reads) and returns the first non-Partial answer.
    fn byte_at_a_time(buf: &[u8]) -> Result<Parsed, ProxyError> {
        for n in 0..=buf.len() {
            match parse(&buf[..n]) {
                Ok(Parsed::Partial) => continue,
                other => return other,
            }
        }
        Ok(Parsed::Partial)
    }

    /// Every strict prefix is Partial (the header is valid), and whole and
    /// byte-at-a-time feeding agree.
    fn assert_incremental(buf: &[u8], header_len: usize) {
        for n in 0..header_len {
            assert_eq!(parse(&buf[..n]), Ok(Parsed::Partial), "prefix of {n} bytes");
        }
        assert_eq!(byte_at_a_time(buf), parse(buf));
    }

    fn v2(ver_cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(ver_cmd);
        v.push(fam);
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn inet_payload() -> Vec<u8> {
        let mut p = vec![192, 0, 2, 1, 198, 51, 100, 2];
        p.extend_from_slice(&56324u16.to_be_bytes());
        p.extend_from_slice(&1965u16.to_be_bytes());
        p
    }

    #[test]
    fn v1_tcp4() {
        let buf = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 1965\r\n\x16\x03\x01";
        let (h, n) = complete(buf);
        assert_eq!(n, buf.len() - 3, "the ClientHello is left for TLS");
        assert_eq!(h.version, Version::V1);
        assert_eq!(h.command, Command::Proxy);
        assert_eq!(h.addresses, tcp("192.0.2.1:56324", "198.51.100.2:1965"));
        assert_eq!(h.source(), Some("192.0.2.1:56324".parse().unwrap()));
        assert_incremental(buf, n);
    }

    #[test]
    fn v1_tcp6() {
        let buf = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
        let (h, n) = complete(buf);
        assert_eq!(n, buf.len());
        assert_eq!(h.addresses, tcp("[2001:db8::1]:65535", "[2001:db8::2]:0"));
        assert_incremental(buf, n);
        // IPv4-mapped is carried as given; the gate canonicalises it.
        let (h, _) = complete(b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n");
        assert_eq!(h.addresses, tcp("[::ffff:192.0.2.1]:1", "[::1]:2"));
    }

    #[test]
    fn v1_unknown() {
        let (h, n) = complete(b"PROXY UNKNOWN\r\nGET");
        assert_eq!((h.addresses, n), (Addresses::Unknown, 15));
        assert_eq!(h.source(), None);
        let buf = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
        let (h, n) = complete(buf);
        assert_eq!((h.addresses, n), (Addresses::Unknown, buf.len()));
        assert_incremental(buf, n);
    }

    #[test]
    fn v1_longest_legal_line() {
        let line = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
                    ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(line.len(), 104);
        let (h, n) = complete(line.as_bytes());
        assert_eq!(n, 104);
        assert!(matches!(h.addresses, Addresses::Tcp { .. }));
        // Exactly V1_MAX_LEN bytes, CRLF included, is accepted.
        let mut max = b"PROXY UNKNOWN ".to_vec();
        max.resize(V1_MAX_LEN - 2, b'x');
        max.extend_from_slice(b"\r\n");
        assert_eq!(complete(&max).1, V1_MAX_LEN);
        assert_incremental(&max, V1_MAX_LEN);
    }

    #[test]
    fn v1_too_long() {
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LEN - 1, b'x');
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse(&long), Err(ProxyError::TooLong));
        assert_eq!(byte_at_a_time(&long), Err(ProxyError::TooLong));
        let endless = vec![b'x'; 10_000];
        let mut buf = b"PROXY ".to_vec();
        buf.extend_from_slice(&endless);
        assert_eq!(parse(&buf), Err(ProxyError::TooLong));
        assert_eq!(parse(&buf[..V1_MAX_LEN - 1]), Ok(Parsed::Partial));
        // A CR at the last allowed byte cannot complete the line in time.
        let mut cr_last = b"PROXY UNKNOWN ".to_vec();
        cr_last.resize(V1_MAX_LEN - 1, b'x');
        cr_last.extend_from_slice(b"\rz");
        assert_eq!(parse(&cr_last), Err(ProxyError::TooLong));
        assert_eq!(byte_at_a_time(&cr_last), Err(ProxyError::TooLong));
    }

    #[test]
    fn v1_errors() {
        let cases: &[(&[u8], ProxyError)] = &[
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n", ProxyError::Garbage),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\rx\n",
                ProxyError::Garbage,
            ),
            (
                b"PROXY TCP4 192.0.2.1\t192.0.2.2 1 2\r\n",
                ProxyError::Garbage,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 \xc3\xa9\r\n",
                ProxyError::Garbage,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\x00\r\n",
                ProxyError::Garbage,
            ),
            (
                b"PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n",
                ProxyError::Garbage,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 \r\n",
                ProxyError::Garbage,
            ),
            (b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n", ProxyError::Garbage),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n",
                ProxyError::Garbage,
            ),
            (b"PROXY \r\n", ProxyError::Garbage),
            (b"PROXY  UNKNOWN\r\n", ProxyError::Garbage),
            (
                b"PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n",
                ProxyError::UnsupportedFamily,
            ),
            (
                b"PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n",
                ProxyError::UnsupportedFamily,
            ),
            (b"PROXY unknown\r\n", ProxyError::UnsupportedFamily),
            (
                b"PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n",
                ProxyError::BadAddress,
            ),
            (
                b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
                ProxyError::BadAddress,
            ),
            (
                b"PROXY TCP4 192.0.2.256 192.0.2.2 1 2\r\n",
                ProxyError::BadAddress,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n",
                ProxyError::BadAddress,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 01 2\r\n",
                ProxyError::BadAddress,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 +1 2\r\n",
                ProxyError::BadAddress,
            ),
            (
                b"PROXY TCP4 192.0.2.1 192.0.2.2 1 99999999999\r\n",
                ProxyError::BadAddress,
            ),
            (
                b"PROXY TCP4 localhost 192.0.2.2 1 2\r\n",
                ProxyError::BadAddress,
            ),
            (b"PROXX TCP4", ProxyError::BadSignature),
            (b"PROXYTCP4", ProxyError::BadSignature),
            (b"POST / HTTP/1.1\r\n", ProxyError::BadSignature),
        ];
        for (buf, want) in cases {
            assert_eq!(parse(buf), Err(*want), "{:?}", String::from_utf8_lossy(buf));
            assert_eq!(
                byte_at_a_time(buf),
                Err(*want),
                "{:?} fed bytewise",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn garbage_is_caught_before_the_line_ends() {
        // A provably bad byte is an error at once, without waiting for CRLF.
        assert_eq!(parse(b"PROXY TCP4 \x16"), Err(ProxyError::Garbage));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4\r "), Err(ProxyError::Garbage));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4\r"), Ok(Parsed::Partial));
    }

    #[test]
    fn missing_header() {
        for buf in [
            &b"\x16\x03\x01\x02\x00"[..],
            b"GET / HTTP/1.1\r\n",
            b"gemini://x/\r\n",
            b"\0",
        ] {
            assert_eq!(parse(buf), Err(ProxyError::Missing));
            assert!(ProxyError::Missing.is_missing());
        }
        assert_eq!(parse(b""), Ok(Parsed::Partial));
    }

    #[test]
    fn v2_proxy_tcp4_with_tlvs() {
        let mut payload = inet_payload();
        // PP2_TYPE_ALPN "gemini", PP2_TYPE_AUTHORITY "example.org", NOOP empty.
        payload.extend_from_slice(&[0x01, 0x00, 0x06]);
        payload.extend_from_slice(b"gemini");
        payload.extend_from_slice(&[0x02, 0x00, 0x0b]);
        payload.extend_from_slice(b"example.org");
        payload.extend_from_slice(&[0x04, 0x00, 0x00]);
        let mut buf = v2(0x21, 0x11, &payload);
        let len = buf.len();
        buf.extend_from_slice(b"\x16\x03\x01");
        let (h, n) = complete(&buf);
        assert_eq!(n, len);
        assert_eq!(h.version, Version::V2);
        assert_eq!(h.command, Command::Proxy);
        assert_eq!(h.addresses, tcp("192.0.2.1:56324", "198.51.100.2:1965"));
        assert_incremental(&buf, n);
    }

    #[test]
    fn v2_proxy_tcp6() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8:ffff::2".parse().unwrap();
        let mut payload = src.octets().to_vec();
        payload.extend_from_slice(&dst.octets());
        payload.extend_from_slice(&[0x12, 0x34, 0x07, 0xad]);
        let buf = v2(0x21, 0x21, &payload);
        let (h, n) = complete(&buf);
        assert_eq!(n, 16 + 36);
        assert_eq!(
            h.addresses,
            tcp("[2001:db8::1]:4660", "[2001:db8:ffff::2]:1965")
        );
        assert_incremental(&buf, n);
    }

    #[test]
    fn v2_local() {
        let buf = v2(0x20, 0x00, &[]);
        let (h, n) = complete(&buf);
        assert_eq!(
            (h.command, h.addresses, n),
            (Command::Local, Addresses::Unknown, 16)
        );
        assert_incremental(&buf, n);
        // LOCAL with an address block (HAProxy health checks may send one):
        // skipped, whatever the family says.
        let buf = v2(0x20, 0x11, &inet_payload());
        let (h, n) = complete(&buf);
        assert_eq!(
            (h.command, h.addresses, n),
            (Command::Local, Addresses::Unknown, 28)
        );
        let (h, _) = complete(&v2(0x20, 0xff, &[1, 2, 3]));
        assert_eq!(h.command, Command::Local);
    }

    #[test]
    fn v2_unspec_and_unix() {
        let (h, n) = complete(&v2(0x21, 0x00, &[9, 9, 9]));
        assert_eq!((h.addresses, n), (Addresses::Unknown, 19));
        let (h, _) = complete(&v2(0x21, 0x10, &[]));
        assert_eq!(
            h.addresses,
            Addresses::Unknown,
            "INET with UNSPEC transport"
        );
        let mut unix = vec![0u8; 216];
        unix[..4].copy_from_slice(b"/tmp");
        let buf = v2(0x21, 0x31, &unix);
        let (h, n) = complete(&buf);
        assert_eq!((h.addresses, n), (Addresses::Unix, 16 + 216));
        assert_incremental(&buf, n);
    }

    #[test]
    fn v2_errors() {
        let mut bad_tlv = inet_payload();
        bad_tlv.extend_from_slice(&[0x01, 0x00, 0x09, b'x']);
        let mut short_tlv = inet_payload();
        short_tlv.extend_from_slice(&[0x01, 0x00]);
        let cases: Vec<(Vec<u8>, ProxyError)> = vec![
            (v2(0x11, 0x11, &inet_payload()), ProxyError::BadVersion),
            (v2(0x31, 0x11, &inet_payload()), ProxyError::BadVersion),
            (v2(0x22, 0x11, &inet_payload()), ProxyError::BadCommand),
            (v2(0x2f, 0x11, &inet_payload()), ProxyError::BadCommand),
            (
                v2(0x21, 0x41, &inet_payload()),
                ProxyError::UnsupportedFamily,
            ),
            (
                v2(0x21, 0x13, &inet_payload()),
                ProxyError::UnsupportedFamily,
            ),
            (
                v2(0x21, 0x12, &inet_payload()),
                ProxyError::UnsupportedFamily,
            ),
            (v2(0x21, 0x22, &[0; 36]), ProxyError::UnsupportedFamily),
            (v2(0x21, 0x11, &[0; 11]), ProxyError::Truncated),
            (v2(0x21, 0x21, &[0; 35]), ProxyError::Truncated),
            (v2(0x21, 0x31, &[0; 215]), ProxyError::Truncated),
            (v2(0x21, 0x11, &bad_tlv), ProxyError::Truncated),
            (v2(0x21, 0x11, &short_tlv), ProxyError::Truncated),
            (
                v2(0x21, 0x11, &vec![0; MAX_V2_PAYLOAD + 1]),
                ProxyError::TooLong,
            ),
        ];
        for (buf, want) in &cases {
            assert_eq!(parse(buf), Err(*want), "{buf:?}");
            assert_eq!(byte_at_a_time(buf), Err(*want), "{buf:?} fed bytewise");
        }
        // Errors come as soon as they are provable, not after the payload.
        assert_eq!(parse(&cases[0].0[..13]), Err(ProxyError::BadVersion));
        assert_eq!(parse(&cases[4].0[..14]), Err(ProxyError::UnsupportedFamily));
        let huge = v2(0x21, 0x11, &vec![0; 65535]);
        assert_eq!(parse(&huge[..16]), Err(ProxyError::TooLong));
        // The largest accepted payload is accepted.
        let mut max = inet_payload();
        max.extend_from_slice(&[0xee, 0x00, 0x00]);
        let pad = MAX_V2_PAYLOAD - max.len() - 3;
        max.extend_from_slice(&[0xee]);
        max.extend_from_slice(&(pad as u16).to_be_bytes());
        max.resize(MAX_V2_PAYLOAD, 0);
        let buf = v2(0x21, 0x11, &max);
        assert_eq!(complete(&buf).1, MAX_HEADER_LEN);
    }

    #[test]
    fn v2_bad_signature_at_every_position() {
        let good = v2(0x21, 0x11, &inet_payload());
        for i in 1..V2_SIGNATURE.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert_eq!(parse(&bad), Err(ProxyError::BadSignature), "byte {i}");
            assert_eq!(parse(&bad[..=i]), Err(ProxyError::BadSignature));
            assert_eq!(parse(&bad[..i]), Ok(Parsed::Partial));
        }
        // A changed first byte is no longer a PROXY header at all.
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(parse(&bad), Err(ProxyError::Missing));
    }

    /// Every single-byte change to valid headers, and pseudo-random
    /// buffers: never a panic, and bytewise feeding always agrees.
    #[test]
    fn mutations_never_panic_and_stay_incremental() {
        let mut tlvs = inet_payload();
        tlvs.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
        let seeds: Vec<Vec<u8>> = vec![
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 1965\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n".to_vec(),
            v2(0x21, 0x11, &tlvs),
            v2(0x20, 0x00, &[]),
        ];
        for seed in &seeds {
            for i in 0..seed.len() {
                for value in 0..=255u8 {
                    let mut m = seed.clone();
                    m[i] = value;
                    let whole = parse(&m);
                    assert_eq!(
                        byte_at_a_time(&m),
                        whole,
                        "seed {seed:?} byte {i} = {value}"
                    );
                    if let Ok(Parsed::Complete { consumed, .. }) = whole {
                        assert!(consumed <= m.len());
                    }
                }
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000 {
            let mut buf = if round % 2 == 0 {
                V2_SIGNATURE.to_vec()
            } else {
                b"PROXY ".to_vec()
            };
            for _ in 0..(round % 120) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            assert_eq!(byte_at_a_time(&buf), parse(&buf));
        }
    }

    #[test]
    fn errors_display() {
        assert_eq!(ProxyError::Missing.to_string(), "no PROXY protocol header");
        assert!(ProxyError::TooLong.to_string().contains("too long"));
    }
}
