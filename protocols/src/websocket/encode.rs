//! Encoders for what the server sends: messages, pings, pongs and closes,
//! unmasked (RFC 6455 section 5.1: servers never mask), appended to the
//! caller's output buffer.
//!
//! A client (the bench harness) builds masked frames with
//! [`encode_frame`] and a key of its choosing.

use std::fmt;

use super::close::MAX_REASON_LEN;
use super::frame::{encode_frame, encode_header, OpCode, MAX_CONTROL_PAYLOAD};

/// A ping or pong payload was longer than the 125 bytes a control frame
/// allows. Never caused by a peer: pong payloads echo pings the decoder
/// already bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPayloadTooLong;

impl fmt::Display for ControlPayloadTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("control frame payload longer than 125 bytes")
    }
}

impl std::error::Error for ControlPayloadTooLong {}

/// Appends a single-frame text message.
pub fn encode_text(text: &str, out: &mut Vec<u8>) {
    encode_frame(true, OpCode::Text, text.as_bytes(), None, out);
}

/// Appends a single-frame binary message.
pub fn encode_binary(data: &[u8], out: &mut Vec<u8>) {
    encode_frame(true, OpCode::Binary, data, None, out);
}

/// Appends a ping; its payload must fit a control frame.
pub fn encode_ping(payload: &[u8], out: &mut Vec<u8>) -> Result<(), ControlPayloadTooLong> {
    encode_control(OpCode::Ping, payload, out)
}

/// Appends a pong, normally echoing a received ping's payload.
pub fn encode_pong(payload: &[u8], out: &mut Vec<u8>) -> Result<(), ControlPayloadTooLong> {
    encode_control(OpCode::Pong, payload, out)
}

/// Appends a close frame with `code` (which the caller picks from the valid
/// ones, e.g. [`ProtocolError::close_code`](super::ProtocolError::close_code))
/// and `reason`. A reason longer than 123 bytes is cut at the last character
/// boundary that fits: a close must always be sendable, and the reason is
/// only informative.
pub fn encode_close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = reason.get(..end).unwrap_or_default();
    encode_header(true, OpCode::Close, 2 + reason.len(), None, out);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
}

/// Appends a close frame with no status code (an empty payload).
pub fn encode_close_empty(out: &mut Vec<u8>) {
    encode_header(true, OpCode::Close, 0, None, out);
}

fn encode_control(
    opcode: OpCode,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ControlPayloadTooLong> {
    if payload.len() > MAX_CONTROL_PAYLOAD {
        return Err(ControlPayloadTooLong);
    }
    encode_frame(true, opcode, payload, None, out);
    Ok(())
}

/// A server frame header built on the stack, for writing a frame as two
/// slices (header, then payload) straight into a transport without copying
/// the payload into a frame buffer first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBytes {
    buf: [u8; 10],
    len: u8,
}

impl HeaderBytes {
    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// The unmasked header of a final frame with `opcode` and a payload of
/// `payload_len` bytes (shortest length encoding).
pub fn server_header(opcode: OpCode, payload_len: usize) -> HeaderBytes {
    let mut buf = [0u8; 10];
    buf[0] = 0x80 | opcode.bits();
    let len = if payload_len < 126 {
        buf[1] = payload_len as u8;
        2
    } else if let Ok(medium) = u16::try_from(payload_len) {
        buf[1] = 126;
        buf[2..4].copy_from_slice(&medium.to_be_bytes());
        4
    } else {
        buf[1] = 127;
        // A slice's length is at most isize::MAX: the top bit is clear.
        let long = u64::try_from(payload_len).unwrap_or(u64::MAX >> 1);
        buf[2..10].copy_from_slice(&long.to_be_bytes());
        10
    };
    HeaderBytes { buf, len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::close::CloseFrame;
    use crate::websocket::frame::Role;
    use crate::websocket::{DecoderConfig, Event, MessageDecoder};

    /// Decodes server output with a client-role decoder.
    fn decode_one(bytes: &[u8], check: impl FnOnce(Event<'_>)) {
        let mut decoder = MessageDecoder::new(DecoderConfig {
            role: Role::Client,
            ..DecoderConfig::default()
        });
        let mut input = bytes;
        let event = decoder.next(&mut input).unwrap().unwrap();
        check(event);
        assert!(input.is_empty());
    }

    #[test]
    fn text_and_binary() {
        let mut out = Vec::new();
        encode_text("Hello", &mut out);
        assert_eq!(out, b"\x81\x05Hello");
        out.clear();
        encode_binary(&[0u8; 256], &mut out);
        assert_eq!(&out[..4], [0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
    }

    #[test]
    fn ping_pong_limits() {
        let mut out = Vec::new();
        encode_ping(b"Hello", &mut out).unwrap();
        assert_eq!(out, b"\x89\x05Hello");
        out.clear();
        encode_pong(&[7; 125], &mut out).unwrap();
        assert_eq!(&out[..2], [0x8A, 125]);
        out.clear();
        assert_eq!(encode_ping(&[0; 126], &mut out), Err(ControlPayloadTooLong));
        assert_eq!(encode_pong(&[0; 126], &mut out), Err(ControlPayloadTooLong));
        assert!(out.is_empty());
    }

    #[test]
    fn close_round_trips() {
        let mut out = Vec::new();
        encode_close(1000, "bye", &mut out);
        assert_eq!(out, b"\x88\x05\x03\xE8bye");
        decode_one(&out, |e| {
            assert_eq!(
                e,
                Event::Close(Some(CloseFrame {
                    code: 1000,
                    reason: "bye"
                }))
            )
        });
        out.clear();
        encode_close_empty(&mut out);
        assert_eq!(out, b"\x88\x00");
    }

    #[test]
    fn long_close_reason_is_cut_on_a_char_boundary() {
        let reason = "€".repeat(50); // 150 bytes, 3 per char
        let mut out = Vec::new();
        encode_close(1001, &reason, &mut out);
        // 123 is a multiple of 3: 41 whole characters fit.
        assert_eq!(out.len(), 2 + 2 + 123);
        decode_one(&out, |e| match e {
            Event::Close(Some(c)) => assert_eq!(c.reason, "€".repeat(41)),
            other => panic!("{other:?}"),
        });
        out.clear();
        let reason = format!("a{}", "€".repeat(50)); // boundary falls mid-char
        encode_close(1001, &reason, &mut out);
        assert_eq!(out.len(), 2 + 2 + 121);
    }

    #[test]
    fn server_header_matches_encode_header() {
        for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 1 << 24] {
            for op in [OpCode::Text, OpCode::Binary, OpCode::Ping, OpCode::Close] {
                let mut want = Vec::new();
                encode_header(true, op, len, None, &mut want);
                assert_eq!(server_header(op, len).as_bytes(), &want[..], "{op:?} {len}");
            }
        }
    }
}
