//! The PROXY protocol header (v1 text and v2 binary) that a load balancer
//! puts before a connection's first byte: `torsion_reactor::proxy::parse`.
//!
//! Input: the first bytes of a connection.
//!
//! Properties:
//! - `consumed` is at most the input and at most `MAX_HEADER_LEN`
//!   (`V1_MAX_LEN` for v1);
//! - prefixes: every prefix shorter than a complete header is `Partial`
//!   (never an error); the complete header alone parses the same as with
//!   bytes after it; an error on the whole is either `Partial` or the same
//!   error on every prefix, and once a prefix errs every longer one does;
//! - a parsed header re-encoded (as v1 and as v2 where it can be) parses
//!   back to the same addresses.

#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use torsion_reactor::proxy::{
    parse, Addresses, Command, Parsed, ProxyError, ProxyHeader, Version, MAX_HEADER_LEN,
    V1_MAX_LEN, V2_SIGNATURE,
};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    match whole {
        Ok(Parsed::Partial) => {
            for p in 0..data.len() {
                assert_eq!(parse(&data[..p]), Ok(Parsed::Partial), "prefix {p}");
            }
        }
        Ok(Parsed::Complete { header, consumed }) => {
            assert!(consumed > 0 && consumed <= data.len() && consumed <= MAX_HEADER_LEN);
            if header.version == Version::V1 {
                assert!(consumed <= V1_MAX_LEN);
                assert_eq!(&data[consumed - 2..consumed], b"\r\n");
            }
            for p in 0..consumed {
                assert_eq!(
                    parse(&data[..p]),
                    Ok(Parsed::Partial),
                    "prefix {p} of a header"
                );
            }
            assert_eq!(parse(&data[..consumed]), whole);
            check_header(&header);
        }
        Err(e) => {
            assert_eq!(e.is_missing(), e == ProxyError::Missing);
            assert!(!e.to_string().is_empty());
            // Prefixes up to the first error and 16 past it (each costs up
            // to the header's length; the whole was checked above).
            let mut first_error = None;
            for p in 0..=data.len() {
                if first_error.is_some_and(|at| p > at + 16) {
                    break;
                }
                match parse(&data[..p]) {
                    Ok(Parsed::Partial) => {
                        assert_eq!(first_error, None, "Partial at {p} after an error")
                    }
                    Err(e2) => {
                        assert_eq!(e2, e, "prefix {p} errs differently");
                        first_error.get_or_insert(p);
                    }
                    other => panic!("prefix {p} answered {other:?}, whole {e:?}"),
                }
            }
            assert!(first_error.is_some());
        }
    }
});

fn check_header(header: &ProxyHeader) {
    match header.addresses {
        Addresses::Tcp {
            source,
            destination,
        } => {
            assert_eq!(header.command, Command::Proxy);
            assert_eq!(header.source(), Some(source));
            assert_eq!(source.is_ipv4(), destination.is_ipv4());
            let expected = ProxyHeader {
                version: Version::V1,
                ..*header
            };
            assert_eq!(reparse(&encode_v1(source, destination)), expected);
            let expected = ProxyHeader {
                version: Version::V2,
                ..*header
            };
            assert_eq!(reparse(&encode_v2(source, destination)), expected);
        }
        Addresses::Unknown | Addresses::Unix => assert_eq!(header.source(), None),
    }
    if header.command == Command::Local {
        assert_eq!(header.addresses, Addresses::Unknown);
        assert_eq!(header.version, Version::V2);
    }
}

fn reparse(bytes: &[u8]) -> ProxyHeader {
    match parse(bytes) {
        Ok(Parsed::Complete { header, consumed }) => {
            assert_eq!(consumed, bytes.len());
            header
        }
        other => panic!("re-encoded header {bytes:?} answered {other:?}"),
    }
}

fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x21); // version 2, PROXY
    let mut block = Vec::new();
    match (source, destination) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            out.push(0x11); // INET, STREAM
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&d.ip().octets());
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            out.push(0x21); // INET6, STREAM
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&d.ip().octets());
        }
        _ => unreachable!("checked: same family"),
    }
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&destination.port().to_be_bytes());
    // A TLV the receiver must skip (PP2_TYPE_NOOP).
    block.extend_from_slice(&[0x04, 0x00, 0x02, 0xAA, 0xBB]);
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend_from_slice(&block);
    out
}
