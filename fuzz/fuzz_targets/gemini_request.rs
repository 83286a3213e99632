//! The Gemini request line: `parse_request` (with the line scanner, host
//! normalisation and the URL checks behind it), then what the server does
//! with a parsed request (host policy, safe path).
//!
//! Input: the bytes a client sends.
//!
//! Properties:
//! - feeding the bytes one at a time (re-parsing the growing buffer, as the
//!   connection does) stops at the same answer as parsing them whole: same
//!   request and `consumed`, or the same error, and `Partial` before it;
//! - a request is the line before CR LF, at most `MAX_REQUEST_URL` bytes,
//!   absolute `gemini://` with a host, no userinfo, no fragment; re-parsing
//!   its text gives the same request; the `url` crate's serialisation of it
//!   re-parses to the same URL and host (the serialisation may grow past
//!   1024 bytes by percent-encoding: see fuzz/README.md, so only its growth
//!   is bounded here);
//! - the normalised host is canonical: normalising its text again gives
//!   the same host, and a policy naming it accepts the request;
//! - every error maps to a 5x status with a fixed, printable reason.

#![no_main]

use libfuzzer_sys::fuzz_target;
use torsion_protocols::gemini::{
    host::{MAX_HOST_LEN, MAX_LABEL_LEN},
    normalise_host, parse_request, safe_segments, Category, Host, HostPolicy, Parsed, Request,
    RequestError, MAX_META, MAX_REQUEST_URL,
};

fuzz_target!(|data: &[u8]| {
    let whole = parse_request(data);

    // Byte at a time: the first answer that is not Partial.
    let mut first = (data.len(), Ok(Parsed::Partial));
    for end in 0..=data.len() {
        let r = parse_request(&data[..end]);
        if r != Ok(Parsed::Partial) {
            first = (end, r);
            break;
        }
    }
    match &whole {
        Ok(Parsed::Partial) => assert_eq!(first.1, Ok(Parsed::Partial)),
        Ok(Parsed::Complete { request, consumed }) => {
            assert_eq!(first.0, *consumed, "complete at a different length");
            assert_eq!(&first.1, &whole);
            check_request(data, request, *consumed);
        }
        Err(e) => {
            assert_eq!(&first.1, &whole, "a prefix and the whole disagree");
            check_error(e);
        }
    }

    // Host normalisation on its own, when the input is text.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(host) = normalise_host(text) {
            check_host(&host);
        }
    }
});

fn check_request(data: &[u8], request: &Request, consumed: usize) {
    assert!(consumed <= data.len());
    assert!(consumed <= MAX_REQUEST_URL + 2);
    assert_eq!(&data[consumed - 2..consumed], b"\r\n");
    let text = request.as_str();
    assert_eq!(text.as_bytes(), &data[..consumed - 2]);
    assert!(!text.is_empty() && text.len() <= MAX_REQUEST_URL);
    assert!(!text.chars().any(|c| c.is_control() || c == ' '));

    let url = request.url();
    assert_eq!(url.scheme(), "gemini");
    assert!(url.username().is_empty() && url.password().is_none());
    assert!(url.fragment().is_none());
    assert!(url.host_str().is_some_and(|h| !h.is_empty()));
    assert!(request.path().starts_with('/'));

    // The request's own text parses to the same request.
    let mut line = text.as_bytes().to_vec();
    line.extend_from_slice(b"\r\n");
    match parse_request(&line) {
        Ok(Parsed::Complete {
            request: again,
            consumed: n,
        }) => {
            assert_eq!(&again, request);
            assert_eq!(n, line.len());
        }
        other => panic!("own text does not re-parse: {other:?}"),
    }

    // The url crate's serialisation: percent-encoding can make it longer
    // than the request (at most three bytes per byte), and when it still
    // fits in a request it parses back to the same URL and host.
    let serialised = url.as_str();
    assert!(
        serialised.len() <= 3 * MAX_REQUEST_URL,
        "{}",
        serialised.len()
    );
    if serialised.len() <= MAX_REQUEST_URL {
        let mut line = serialised.as_bytes().to_vec();
        line.extend_from_slice(b"\r\n");
        match parse_request(&line) {
            Ok(Parsed::Complete { request: again, .. }) => {
                assert_eq!(again.url(), url);
                assert_eq!(again.host(), request.host());
            }
            other => panic!("serialised URL {serialised:?} does not re-parse: {other:?}"),
        }
    }

    check_host(request.host());

    // A listener serving exactly this host and port takes the request; one
    // serving another name refuses it with a 5x.
    let port = request.port().unwrap_or(1965);
    let own = HostPolicy::new([request.host().to_string()], port).expect("own host is a pattern");
    assert_eq!(own.check(request), Ok(()));
    let other = HostPolicy::new(["other.invalid"], 1965).expect("a valid pattern");
    if let Err(refusal) = other.check(request) {
        assert_eq!(refusal.status().category(), Category::PermanentFailure);
    }

    match safe_segments(request.path()) {
        Ok(safe) => {
            let s = safe.as_str();
            assert!(!s.starts_with('/'));
            assert!(!s.contains('\\'));
            assert!(!s.chars().any(char::is_control));
            for (i, segment) in s.split('/').enumerate() {
                if s.is_empty() {
                    break;
                }
                assert!(!segment.is_empty(), "empty segment in {s:?}");
                assert!(segment != "." && segment != "..", "dot segment in {s:?}");
                assert!(
                    !segment.starts_with('.') || (i == 0 && segment == ".well-known"),
                    "dotfile in {s:?}"
                );
            }
            assert_eq!(
                safe.segments().count(),
                s.split('/').filter(|x| !x.is_empty()).count()
            );
        }
        Err(e) => {
            assert_eq!(e.status().category(), Category::PermanentFailure);
            assert!(!e.reason().is_empty());
        }
    }
}

fn check_host(host: &Host) {
    let text = host.to_string();
    assert_eq!(
        normalise_host(&text).as_ref(),
        Ok(host),
        "{text:?} is not canonical"
    );
    if let Host::Domain(name) = host {
        assert!(!name.is_empty() && name.len() <= MAX_HOST_LEN);
        assert!(!name.ends_with('.'));
        assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(name
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= MAX_LABEL_LEN));
    }
}

fn check_error(e: &RequestError) {
    let status = e.status();
    assert_eq!(status.category(), Category::PermanentFailure, "{e:?}");
    assert!((50..=59).contains(&status.code()));
    let reason = e.reason();
    assert!(!reason.is_empty() && reason.len() <= MAX_META);
    assert!(!reason.chars().any(char::is_control));
    assert_eq!(e.to_string(), reason);
}
