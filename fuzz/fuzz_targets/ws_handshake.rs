//! The WebSocket opening handshake: `parse_request` (an HTTP upgrade request
//! or a plain GET/HEAD for the status page), the Origin checks, and the
//! `101` or rejection response.
//!
//! Input: the bytes a client sends before the upgrade.
//!
//! Properties:
//! - never panics;
//! - incremental: every prefix shorter than a complete head is `Partial`
//!   (checked at every line end, around the end of the head and at evenly
//!   spaced cuts), a prefix that errs errs like the whole, and the bytes
//!   after the head change nothing;
//! - a complete request has a path starting with `/` and no `?`, token
//!   subprotocols, and an accept value of 28 base64 characters; the `101`
//!   response carries it and a chosen subprotocol that was offered;
//! - an origin that parses as a policy entry is allowed by that policy, and
//!   one that is same-origin with the Host is too;
//! - every error maps to 400, 405, 426 or 431, and its response is well
//!   formed with a matching `Content-Length`.

#![no_main]

mod common;

use common::CheckedResponse;
use libfuzzer_sys::fuzz_target;
use torsion_protocols::websocket::handshake::MAX_HEAD_LEN;
use torsion_protocols::websocket::{
    encode_rejection, encode_switching_protocols, is_same_origin, parse_request,
    select_subprotocol, HandshakeError, HandshakeStatus, OriginPolicy, Request,
};

const SUPPORTED: [&str; 3] = ["chat", "superchat", "v1.torsion"];

fuzz_target!(|data: &[u8]| {
    let whole = parse_request(data);

    // Where a prefix's answer may change: line ends, the end of the head,
    // the size limit, and a few evenly spaced cuts.
    let mut cuts: Vec<usize> = Vec::new();
    for (i, &b) in data.iter().enumerate().take(MAX_HEAD_LEN + 1) {
        if b == b'\n' || b == b'\r' {
            cuts.extend([i, i + 1]);
        }
    }
    let step = (data.len() / 16).max(1);
    cuts.extend((0..=data.len()).step_by(step));
    cuts.extend([MAX_HEAD_LEN, MAX_HEAD_LEN + 1]);
    if let Ok(HandshakeStatus::Complete { consumed, .. }) = &whole {
        cuts.extend([consumed.saturating_sub(1), *consumed]);
    }
    cuts.retain(|&c| c <= data.len());
    cuts.sort_unstable();
    cuts.dedup();

    for &cut in &cuts {
        let prefix = parse_request(&data[..cut]);
        match (&whole, &prefix) {
            (_, Ok(HandshakeStatus::Partial)) => {
                if let Ok(HandshakeStatus::Complete { consumed, .. }) = &whole {
                    assert!(cut < *consumed, "Partial at {cut}, complete at {consumed}");
                }
            }
            (Ok(HandshakeStatus::Complete { consumed, .. }), _) => {
                assert!(cut >= *consumed, "prefix of {cut} answered {prefix:?}");
                assert_eq!(prefix, whole, "bytes after the head changed the answer");
            }
            (Err(_), Err(_)) => assert_eq!(prefix, whole, "prefix of {cut}"),
            _ => panic!("prefix of {cut} answered {prefix:?}, whole {whole:?}"),
        }
    }

    match whole {
        Ok(HandshakeStatus::Partial) => assert!(data.len() <= MAX_HEAD_LEN),
        Ok(HandshakeStatus::Complete { request, consumed }) => {
            assert!(consumed <= data.len().min(MAX_HEAD_LEN));
            check_request(&request);
        }
        Err(e) => check_error(&e),
    }
});

fn check_request(request: &Request) {
    match request {
        Request::NotUpgrade { path, .. } => check_target(path),
        Request::Upgrade(up) => {
            check_target(&up.path);
            assert_eq!(up.accept.len(), 28);
            assert!(up.accept.ends_with('='));
            assert!(up
                .accept
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
            for p in &up.protocols {
                assert!(!p.is_empty());
                assert!(p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)));
            }
            let chosen = up.select_subprotocol(&SUPPORTED);
            assert_eq!(chosen, select_subprotocol(&SUPPORTED, &up.protocols));
            if let Some(c) = chosen {
                assert!(up.protocols.iter().any(|p| p == c));
            }
            let mut out = Vec::new();
            encode_switching_protocols(&up.accept, chosen, &mut out);
            let text = std::str::from_utf8(&out).expect("ASCII response");
            assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
            assert!(text.ends_with("\r\n\r\n"));
            assert_eq!(text.matches("\r\n\r\n").count(), 1);
            assert!(text.contains(&format!("Sec-WebSocket-Accept: {}\r\n", up.accept)));

            if let Some(origin) = &up.origin {
                check_origin(origin, &up.host);
            }
        }
    }
}

/// The path is the target up to its first `?` (the query is the rest).
fn check_target(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    assert!(!path.contains('?'));
}

fn check_origin(origin: &str, host: &str) {
    assert!(OriginPolicy::allow_any().allows(Some(origin)));
    assert!(!OriginPolicy::default().allows(Some(origin)));
    assert!(OriginPolicy::default().allows(None));
    if let Ok(policy) = OriginPolicy::new([origin]) {
        assert!(
            policy.allows(Some(origin)),
            "{origin:?} not allowed by itself"
        );
    }
    if is_same_origin(origin, host) {
        let policy = OriginPolicy::new([origin]).expect("a same-origin Origin parses");
        assert!(policy.allows(Some(origin)));
    }
}

fn check_error(e: &HandshakeError) {
    let status = e.status();
    assert!(matches!(status, 400 | 405 | 426 | 431), "{e:?} -> {status}");
    assert!(!e.to_string().is_empty());
    let mut out = Vec::new();
    encode_rejection(e.rejection(), &mut out);
    let checked = CheckedResponse::parse(&out, false);
    assert_eq!(checked.status, status);
}
