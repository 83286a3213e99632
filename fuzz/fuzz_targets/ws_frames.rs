//! WebSocket frames after the upgrade: the frame-header decoder, the
//! incremental UTF-8 validator, the message decoder (reassembly, masking,
//! limits) and close payloads.
//!
//! Input: 4 control bytes, then a byte stream. Control byte 0: bit 0 picks
//! the role (server: frames must be masked; client: must not be), bits 1-3
//! the message limit (0, 1, 2, 125, 126, 65535, 65536 or 1 MiB). Control
//! bytes 1-3: piece sizes, cycled, for feeding the stream in pieces; they
//! are also the mask key (with byte 0) of the frames built in part 4.
//!
//! Properties:
//! 1. UTF-8: the validator fed the stream whole, in pieces or one byte at a
//!    time agrees with `std::str::from_utf8` on the whole, and fails exactly
//!    at the first byte that no valid text can continue (in the piece that
//!    holds it);
//! 2. frame header: every prefix of a complete header is `Partial`, an
//!    error on a prefix is the whole's error, and a decoded header encodes
//!    back to the same bytes (lengths are minimal);
//! 3. message decoder: fed whole, in pieces or one byte at a time it gives
//!    the same events and the same error; it consumes all input unless it
//!    yields an event; no message is longer than the limit, and it never
//!    buffers more than the limit; every error has a valid close code;
//! 4. reassembly: the stream sent as a fragmented binary message (masked
//!    by a client, in fragments of the piece sizes) comes back byte for
//!    byte; as a text message it comes back when it is UTF-8 and is refused
//!    with 1007 when it is not; a close frame round-trips.

#![no_main]

mod common;

use common::{control, cycled_pieces};
use libfuzzer_sys::fuzz_target;
use torsion_protocols::websocket::close::{is_valid_code, parse_close_payload, MAX_REASON_LEN};
use torsion_protocols::websocket::frame::{
    decode_header, encode_frame, encode_header, HeaderStatus, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
use torsion_protocols::websocket::utf8::Utf8Validator;
use torsion_protocols::websocket::{
    encode_close, DecoderConfig, Event, MessageDecoder, OpCode, ProtocolError, Role,
};

const LIMITS: [usize; 8] = [0, 1, 2, 125, 126, 65535, 65536, 1 << 20];

/// An [`Event`] that owns its bytes, to compare runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

fn own(event: Event<'_>) -> Owned {
    match event {
        Event::Text(t) => Owned::Text(t.to_owned()),
        Event::Binary(b) => Owned::Binary(b.to_vec()),
        Event::Ping(p) => Owned::Ping(p.to_vec()),
        Event::Pong(p) => Owned::Pong(p.to_vec()),
        Event::Close(c) => Owned::Close(c.map(|c| (c.code, c.reason.to_owned()))),
    }
}

/// Runs a fresh decoder over `pieces`: the events, then the error if any.
fn decode(config: DecoderConfig, pieces: &[&[u8]]) -> (Vec<Owned>, Option<ProtocolError>) {
    let mut decoder = MessageDecoder::new(config);
    let mut events = Vec::new();
    for piece in pieces {
        let mut input: &[u8] = piece;
        loop {
            match decoder.next(&mut input) {
                Ok(Some(event)) => {
                    let event = own(event);
                    match &event {
                        Owned::Text(t) => assert!(t.len() <= config.max_message),
                        Owned::Binary(b) => assert!(b.len() <= config.max_message),
                        Owned::Ping(p) | Owned::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
                        Owned::Close(Some((code, reason))) => {
                            assert!(is_valid_code(*code));
                            assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2);
                        }
                        Owned::Close(None) => {}
                    }
                    events.push(event);
                }
                Ok(None) => {
                    assert!(input.is_empty(), "decoder stopped with input left");
                    break;
                }
                Err(e) => {
                    assert!(decoder.is_done());
                    assert!(is_valid_code(e.close_code()), "{e:?}");
                    assert!(!e.to_string().is_empty());
                    return (events, Some(e));
                }
            }
            assert!(
                decoder.buffered() <= config.max_message,
                "buffered past the limit"
            );
        }
    }
    (events, None)
}

/// Length of the shortest prefix of `bytes` that no valid UTF-8 text starts
/// with, if any.
fn first_bad_prefix(bytes: &[u8]) -> Option<usize> {
    let possible = |p: &[u8]| match std::str::from_utf8(p) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    if possible(bytes) {
        return None;
    }
    // `possible` holds for a prefix of every prefix it holds for.
    let (mut lo, mut hi) = (0, bytes.len()); // possible(lo), !possible(hi)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if possible(&bytes[..mid]) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

fn check_utf8(stream: &[u8], pieces: &[&[u8]]) {
    let valid = std::str::from_utf8(stream).is_ok();
    let bad_at = first_bad_prefix(stream).map(|len| len - 1);

    let mut v = Utf8Validator::new();
    let whole = v.feed(stream).is_ok() && v.finish().is_ok();
    assert_eq!(whole, valid);

    for cut in [pieces.to_vec(), stream.chunks(1).collect::<Vec<_>>()] {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        let mut failed_in = None;
        for piece in &cut {
            if v.feed(piece).is_err() {
                failed_in = Some(start..start + piece.len());
                break;
            }
            start += piece.len();
        }
        match (bad_at, failed_in) {
            (None, None) => {
                assert_eq!(v.is_mid_sequence(), !valid);
                assert_eq!(v.finish().is_ok(), valid);
            }
            (Some(at), Some(range)) => {
                assert!(range.contains(&at), "bad byte {at}, failed in {range:?}")
            }
            (at, range) => panic!("bad byte at {at:?}, validator failed in {range:?}"),
        }
    }
}

fn check_header(stream: &[u8], role: Role) {
    let whole = decode_header(stream, role);
    for p in 0..=stream.len().min(MAX_HEADER_LEN) {
        let prefix = decode_header(&stream[..p], role);
        match (&whole, &prefix) {
            (_, Ok(HeaderStatus::Partial)) => {
                if let Ok(HeaderStatus::Complete { len, .. }) = &whole {
                    assert!(p < *len);
                }
            }
            (Ok(HeaderStatus::Complete { len, .. }), _) => {
                assert!(p >= *len);
                assert_eq!(prefix, whole);
            }
            (Err(_), Err(_)) => assert_eq!(prefix, whole),
            _ => panic!("prefix {p}: {prefix:?}, whole: {whole:?}"),
        }
    }
    match whole {
        Ok(HeaderStatus::Partial) => assert!(stream.len() < MAX_HEADER_LEN),
        Ok(HeaderStatus::Complete { header, len }) => {
            assert!(len <= MAX_HEADER_LEN && len <= stream.len());
            assert!(header.payload_len < 1 << 63);
            if header.opcode.is_control() {
                assert!(header.fin);
                assert!(header.payload_len <= MAX_CONTROL_PAYLOAD as u64);
            }
            assert_eq!(header.mask.is_some(), role == Role::Server);
            let mut again = Vec::new();
            encode_header(
                header.fin,
                header.opcode,
                usize::try_from(header.payload_len).expect("64-bit"),
                header.mask,
                &mut again,
            );
            assert_eq!(again, &stream[..len], "header does not round-trip");
        }
        Err(e) => assert!(is_valid_code(e.close_code())),
    }
}

/// `stream` as one fragmented data message: fragments of the piece sizes,
/// masked with `mask` when a client sends it.
fn fragmented(opcode: OpCode, stream: &[u8], sizes: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    let fragments = cycled_pieces(sizes, stream);
    if fragments.is_empty() {
        encode_frame(true, opcode, &[], mask, &mut out);
        return out;
    }
    let last = fragments.len() - 1;
    for (i, fragment) in fragments.iter().enumerate() {
        let op = if i == 0 { opcode } else { OpCode::Continuation };
        encode_frame(i == last, op, fragment, mask, &mut out);
        if i == 0 {
            // A ping between fragments must not disturb the message.
            encode_frame(true, OpCode::Ping, b"between", mask, &mut out);
        }
    }
    out
}

fn check_reassembly(stream: &[u8], sizes: &[u8], mask: [u8; 4]) {
    let limit = stream.len();
    for (role, mask) in [(Role::Server, Some(mask)), (Role::Client, None)] {
        let config = DecoderConfig {
            role,
            max_message: limit,
        };
        // Fed in the same piece sizes as the fragments, shifted by one byte,
        // so frame and read boundaries differ.
        let binary = fragmented(OpCode::Binary, stream, sizes, mask);
        let mut reads = vec![&binary[..1]];
        reads.extend(cycled_pieces(sizes, &binary[1..]));
        let (events, error) = decode(config, &reads);
        assert_eq!(error, None);
        let message: Vec<&Owned> = events
            .iter()
            .filter(|e| !matches!(e, Owned::Ping(_)))
            .collect();
        assert_eq!(message, [&Owned::Binary(stream.to_vec())]);

        let text = fragmented(OpCode::Text, stream, sizes, mask);
        let (events, error) = decode(config, &cycled_pieces(sizes, &text));
        match std::str::from_utf8(stream) {
            Ok(s) => {
                assert_eq!(error, None);
                let message: Vec<&Owned> = events
                    .iter()
                    .filter(|e| !matches!(e, Owned::Ping(_)))
                    .collect();
                assert_eq!(message, [&Owned::Text(s.to_owned())]);
            }
            Err(_) => {
                assert_eq!(error, Some(ProtocolError::InvalidUtf8));
                assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
            }
        }

        // One byte over the limit is refused before any payload is read.
        let mut over = Vec::new();
        encode_frame(true, OpCode::Binary, &[0; 3], mask, &mut over);
        let small = DecoderConfig {
            role,
            max_message: 2,
        };
        let (events, error) = decode(small, &[&over[..]]);
        assert!(events.is_empty());
        assert_eq!(error, Some(ProtocolError::MessageTooLarge { limit: 2 }));
    }
}

fn check_close(stream: &[u8]) {
    match parse_close_payload(stream) {
        Ok(None) => assert!(stream.is_empty()),
        Ok(Some(close)) => {
            assert!(is_valid_code(close.code));
            assert_eq!(close.reason.as_bytes(), &stream[2..]);
            // What the server would send back with this code and reason.
            let mut out = Vec::new();
            encode_close(close.code, close.reason, &mut out);
            let client = DecoderConfig {
                role: Role::Client,
                max_message: 0,
            };
            let (events, error) = decode(client, &[&out[..]]);
            assert_eq!(error, None);
            let [Owned::Close(Some((code, reason)))] = events.as_slice() else {
                panic!("close did not round-trip: {events:?}");
            };
            assert_eq!(*code, close.code);
            // A long reason is cut at the last character boundary that fits.
            let mut end = close.reason.len().min(MAX_REASON_LEN);
            while !close.reason.is_char_boundary(end) {
                end -= 1;
            }
            assert_eq!(reason, &close.reason[..end]);
        }
        Err(e) => assert!(matches!(e.close_code(), 1002 | 1007)),
    }
}

fuzz_target!(|data: &[u8]| {
    let (ctl, stream) = control::<4>(data);
    let role = if ctl[0] & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let config = DecoderConfig {
        role,
        max_message: LIMITS[usize::from((ctl[0] >> 1) & 7)],
    };
    let sizes = &ctl[1..4];
    let pieces = cycled_pieces(sizes, stream);

    check_utf8(stream, &pieces);
    check_header(stream, Role::Server);
    check_header(stream, Role::Client);

    let whole = decode(config, &[stream]);
    assert_eq!(decode(config, &pieces), whole, "pieces and whole disagree");
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(decode(config, &bytes), whole, "bytes and whole disagree");

    if stream.len() <= 4096 {
        check_reassembly(stream, sizes, ctl);
    }
    check_close(stream);
});
