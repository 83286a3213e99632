//! Frame headers (RFC 6455 section 5.2): decode, encode, and payload masking.
//!
//! The header decoder is stateless: give it the bytes received so far and it
//! answers [`HeaderStatus::Complete`] or [`HeaderStatus::Partial`]. A header is
//! at most [`MAX_HEADER_LEN`] bytes, so a caller that must carry a split header
//! across reads needs only a 14-byte array. Each rule is checked as soon as the
//! byte it concerns is present, so a bad frame is refused at its first bad
//! byte, and feeding one byte at a time gives the same error as feeding whole.

use super::error::ProtocolError;

/// Longest possible frame header: 2 fixed bytes, 8 of extended length, 4 of
/// mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest control-frame payload (RFC 6455 section 5.5): control frames must
/// fit the 7-bit length so they can be handled without buffering.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The frame opcodes RFC 6455 defines; the others are reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: a later fragment of a text or binary message.
    Continuation,
    /// 0x1: the first (or only) frame of a UTF-8 text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: closes the connection, optionally with a code and reason.
    Close,
    /// 0x9: asks the peer for a Pong with the same payload.
    Ping,
    /// 0xA: answers a Ping, or an unsolicited heartbeat.
    Pong,
}

impl OpCode {
    /// The opcode for the low four bits of a frame's first byte, or `None`
    /// for a reserved value.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The four-bit wire value.
    pub fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong): such frames are
    /// short, unfragmented, and may arrive between fragments of a message.
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// Which end of the connection the decoder serves; it decides which masking
/// the incoming frames must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// We are the server: incoming (client) frames must be masked.
    #[default]
    Server,
    /// We are the client (the bench harness): incoming (server) frames must
    /// not be masked.
    Client,
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this frame ends its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key, present exactly when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes; below 2^63 by construction.
    pub payload_len: u64,
}

/// Outcome of [`decode_header`] on the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStatus {
    /// A whole header was decoded from the first `len` bytes of the input.
    Complete {
        /// The decoded header.
        header: FrameHeader,
        /// How many input bytes the header took (2 to 14).
        len: usize,
    },
    /// The input is a valid prefix of a header; call again with more bytes.
    Partial,
}

/// Decodes a frame header from the start of `input`, for a decoder on the
/// given `role`'s side.
///
/// Refuses, as soon as the offending byte is present: set RSV bits (torsion
/// negotiates no extensions), reserved opcodes, control frames without FIN or
/// longer than 125 bytes, wrong masking for the role, non-minimal length
/// encodings and 64-bit lengths with the top bit set. The payload size limit
/// is the caller's business (it depends on the message so far).
pub fn decode_header(input: &[u8], role: Role) -> Result<HeaderStatus, ProtocolError> {
    let Some(&b0) = input.first() else {
        return Ok(HeaderStatus::Partial);
    };
    let rsv = (b0 >> 4) & 0b111;
    if rsv != 0 {
        return Err(ProtocolError::ReservedBits(rsv));
    }
    let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(ProtocolError::ReservedOpcode(b0 & 0x0F))?;
    let fin = b0 & 0x80 != 0;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::FragmentedControlFrame);
    }

    let Some(&b1) = input.get(1) else {
        return Ok(HeaderStatus::Partial);
    };
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::ControlFrameTooLong);
    }

    let (payload_len, len_end) = match len7 {
        126 => {
            let Some(&[hi, lo]) = input.get(2..4) else {
                return Ok(HeaderStatus::Partial);
            };
            let len = u16::from_be_bytes([hi, lo]);
            if len < 126 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (u64::from(len), 4)
        }
        127 => {
            // The top bit is refused from the first length byte, so a 2^63
            // announcement dies before the rest of its header arrives.
            match input.get(2) {
                None => return Ok(HeaderStatus::Partial),
                Some(&first) if first & 0x80 != 0 => return Err(ProtocolError::LengthOverflow),
                Some(_) => {}
            }
            let Some(bytes) = input.get(2..10).and_then(|s| <[u8; 8]>::try_from(s).ok()) else {
                return Ok(HeaderStatus::Partial);
            };
            let len = u64::from_be_bytes(bytes);
            if len < 0x1_0000 {
                return Err(ProtocolError::NonMinimalLength);
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };

    let (mask, len) = if masked {
        let mask_end = len_end + 4;
        let Some(key) = input
            .get(len_end..mask_end)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
        else {
            return Ok(HeaderStatus::Partial);
        };
        (Some(key), mask_end)
    } else {
        (None, len_end)
    };

    Ok(HeaderStatus::Complete {
        header: FrameHeader {
            fin,
            opcode,
            mask,
            payload_len,
        },
        len,
    })
}

/// Appends a frame header to `out`: unmasked when `mask` is `None` (the server
/// role), masked with the given key otherwise (the client role). Lengths use
/// the shortest encoding, as the decoder demands of peers.
pub fn encode_header(
    fin: bool,
    opcode: OpCode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
    out: &mut Vec<u8>,
) {
    let b0 = if fin { 0x80 } else { 0 } | opcode.bits();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.push(b0);
    if let Ok(short) = u8::try_from(payload_len) {
        if short < 126 {
            out.push(mask_bit | short);
        } else {
            out.push(mask_bit | 126);
            out.extend_from_slice(&u16::from(short).to_be_bytes());
        }
    } else if let Ok(medium) = u16::try_from(payload_len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&medium.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        // usize is at most 64 bits on every supported target, and a slice's
        // length is at most isize::MAX, so the top bit is always clear.
        let long = u64::try_from(payload_len).unwrap_or(u64::MAX >> 1);
        out.extend_from_slice(&long.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Appends a whole frame (header and payload) to `out`, masking the payload
/// with `mask` when one is given (client role).
pub fn encode_frame(
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    out: &mut Vec<u8>,
) {
    encode_header(fin, opcode, payload.len(), mask, out);
    match mask {
        Some(key) => unmask_into(out, payload, key, 0),
        None => out.extend_from_slice(payload),
    }
}

/// XORs `buf` with the masking key, as the bytes at payload offset `phase`
/// onwards (only `phase % 4` matters): a payload that arrives in pieces is
/// unmasked piece by piece, each call passing how many payload bytes came
/// before it. Masking and unmasking are the same operation.
///
/// Works on 8-byte words, which the compiler turns into vector code.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], phase: usize) {
    let mut key = mask;
    key.rotate_left(phase % 4);
    let [k0, k1, k2, k3] = key;
    let word = u64::from_ne_bytes([k0, k1, k2, k3, k0, k1, k2, k3]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
        }
    }
    // The remainder starts a multiple of 8 (so of 4) bytes in: same phase.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Appends `src` to `dst` XORed with the masking key at payload offset
/// `phase`: the copy and the unmasking in one call, reusing `dst`'s capacity.
pub fn unmask_into(dst: &mut Vec<u8>, src: &[u8], mask: [u8; 4], phase: usize) {
    let start = dst.len();
    dst.extend_from_slice(src);
    if let Some(tail) = dst.get_mut(start..) {
        apply_mask(tail, mask, phase);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8], role: Role) -> (FrameHeader, usize) {
        match decode_header(input, role).unwrap() {
            HeaderStatus::Complete { header, len } => (header, len),
            HeaderStatus::Partial => panic!("partial: {input:02x?}"),
        }
    }

    /// Feeds every prefix: all shorter than `whole_len` must be Partial (or
    /// the same error), and the final answer must equal the whole-input one.
    fn assert_prefixes_agree(input: &[u8], role: Role) {
        let whole = decode_header(input, role);
        for end in 0..input.len() {
            match decode_header(&input[..end], role) {
                Ok(HeaderStatus::Partial) => {}
                Ok(done @ HeaderStatus::Complete { .. }) => {
                    assert_eq!(Ok(done), whole, "prefix {end} completed differently")
                }
                Err(e) => {
                    assert_eq!(Err(e), whole, "prefix {end} failed differently");
                    return;
                }
            }
        }
    }

    #[test]
    fn rfc_single_frame_unmasked_hello() {
        let input = b"\x81\x05Hello";
        let (h, len) = complete(input, Role::Client);
        assert_eq!(len, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.mask, None);
        assert_eq!(h.payload_len, 5);
        assert_prefixes_agree(input, Role::Client);
    }

    #[test]
    fn rfc_single_frame_masked_hello() {
        let input = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, len) = complete(&input, Role::Server);
        assert_eq!(len, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let mut payload = input[6..].to_vec();
        apply_mask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");
        assert_prefixes_agree(&input, Role::Server);
    }

    #[test]
    fn rfc_fragmented_unmasked() {
        let (first, _) = complete(b"\x01\x03Hel", Role::Client);
        assert!(!first.fin);
        assert_eq!(first.opcode, OpCode::Text);
        let (last, _) = complete(b"\x80\x02lo", Role::Client);
        assert!(last.fin);
        assert_eq!(last.opcode, OpCode::Continuation);
        assert_eq!(last.payload_len, 2);
    }

    #[test]
    fn rfc_ping_and_masked_pong() {
        let (ping, _) = complete(b"\x89\x05Hello", Role::Client);
        assert_eq!(ping.opcode, OpCode::Ping);
        let (pong, len) = complete(
            &[
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
            Role::Server,
        );
        assert_eq!(pong.opcode, OpCode::Pong);
        assert_eq!(len, 6);
    }

    #[test]
    fn rfc_256_byte_and_64k_lengths() {
        let (h, len) = complete(&[0x82, 0x7E, 0x01, 0x00], Role::Client);
        assert_eq!((h.opcode, h.payload_len, len), (OpCode::Binary, 256, 4));
        let input = [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, len) = complete(&input, Role::Client);
        assert_eq!((h.payload_len, len), (65536, 10));
        assert_prefixes_agree(&input, Role::Client);
    }

    #[test]
    fn longest_header_is_fourteen_bytes() {
        let input = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        let (h, len) = complete(&input, Role::Server);
        assert_eq!(len, MAX_HEADER_LEN);
        assert_eq!(h.mask, Some([1, 2, 3, 4]));
        assert_prefixes_agree(&input, Role::Server);
    }

    #[test]
    fn every_rsv_bit_is_refused() {
        for (byte, bits) in [(0xC1, 0b100), (0xA1, 0b010), (0x91, 0b001), (0xF1, 0b111)] {
            assert_eq!(
                decode_header(&[byte], Role::Server),
                Err(ProtocolError::ReservedBits(bits))
            );
        }
    }

    #[test]
    fn every_reserved_opcode_is_refused_from_the_first_byte() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                decode_header(&[0x80 | op], Role::Server),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn masking_must_match_the_role() {
        assert_eq!(
            decode_header(b"\x81\x05Hello", Role::Server),
            Err(ProtocolError::UnmaskedFrame)
        );
        assert_eq!(
            decode_header(&[0x81, 0x85, 1, 2, 3, 4], Role::Client),
            Err(ProtocolError::MaskedFrame)
        );
    }

    #[test]
    fn control_frames_must_be_short_and_final() {
        for op in [0x8, 0x9, 0xA] {
            assert_eq!(
                decode_header(&[op], Role::Server),
                Err(ProtocolError::FragmentedControlFrame)
            );
            assert_eq!(
                decode_header(&[0x80 | op, 0x80 | 126], Role::Server),
                Err(ProtocolError::ControlFrameTooLong)
            );
            assert_eq!(
                decode_header(&[0x80 | op, 0x80 | 127], Role::Server),
                Err(ProtocolError::ControlFrameTooLong)
            );
            assert!(matches!(
                decode_header(&[0x80 | op, 0x80 | 125, 0, 0, 0, 0], Role::Server),
                Ok(HeaderStatus::Complete { .. })
            ));
        }
    }

    #[test]
    fn non_minimal_lengths_are_refused() {
        assert_eq!(
            decode_header(&[0x82, 0xFE, 0x00, 125], Role::Server),
            Err(ProtocolError::NonMinimalLength)
        );
        assert!(matches!(
            decode_header(&[0x82, 0xFE, 0x00, 126, 0, 0, 0, 0], Role::Server),
            Ok(HeaderStatus::Complete { .. })
        ));
        let input = [0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];
        assert_eq!(
            decode_header(&input, Role::Server),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_prefixes_agree(&input, Role::Server);
    }

    #[test]
    fn length_with_top_bit_is_refused_at_its_first_byte() {
        assert_eq!(
            decode_header(&[0x82, 0xFF, 0x80], Role::Server),
            Err(ProtocolError::LengthOverflow)
        );
        let input = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            decode_header(&input, Role::Server),
            Err(ProtocolError::LengthOverflow)
        );
        assert_prefixes_agree(&input, Role::Server);
        // 2^63 - 1 is a legal announcement (the size limit is the caller's).
        let (h, _) = complete(
            &[0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            Role::Client,
        );
        assert_eq!(h.payload_len, u64::MAX >> 1);
    }

    #[test]
    fn empty_input_is_partial() {
        assert_eq!(decode_header(b"", Role::Server), Ok(HeaderStatus::Partial));
    }

    #[test]
    fn encode_header_uses_minimal_lengths() {
        for (len, expected) in [
            (0usize, vec![0x82, 0x00]),
            (125, vec![0x82, 125]),
            (126, vec![0x82, 126, 0, 126]),
            (255, vec![0x82, 126, 0, 255]),
            (65535, vec![0x82, 126, 0xFF, 0xFF]),
            (65536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut out = Vec::new();
            encode_header(true, OpCode::Binary, len, None, &mut out);
            assert_eq!(out, expected, "len {len}");
            // What we encode, our client-role decoder accepts.
            let (h, n) = complete(&out, Role::Client);
            assert_eq!((h.payload_len, n), (len as u64, out.len()));
        }
    }

    #[test]
    fn encode_frame_reproduces_rfc_examples() {
        let mut out = Vec::new();
        encode_frame(true, OpCode::Text, b"Hello", None, &mut out);
        assert_eq!(out, b"\x81\x05Hello");
        out.clear();
        let key = Some([0x37, 0xfa, 0x21, 0x3d]);
        encode_frame(true, OpCode::Text, b"Hello", key, &mut out);
        assert_eq!(
            out,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        out.clear();
        encode_frame(false, OpCode::Text, b"Hel", None, &mut out);
        encode_frame(true, OpCode::Continuation, b"lo", None, &mut out);
        assert_eq!(out, b"\x01\x03Hel\x80\x02lo");
    }

    #[test]
    fn mask_split_at_every_point_matches_whole() {
        let key = [0xA1, 0xB2, 0xC3, 0xD4];
        let plain: Vec<u8> = (0..=255u8).cycle().take(301).collect();
        let mut whole = plain.clone();
        apply_mask(&mut whole, key, 0);
        for (i, byte) in whole.iter().enumerate() {
            assert_eq!(*byte, plain[i] ^ key[i % 4]);
        }
        for split in 0..plain.len() {
            let mut out = Vec::new();
            unmask_into(&mut out, &plain[..split], key, 0);
            unmask_into(&mut out, &plain[split..], key, split);
            assert_eq!(out, whole, "split at {split}");
        }
        // Three pieces with odd phases.
        let mut out = Vec::new();
        unmask_into(&mut out, &plain[..7], key, 0);
        unmask_into(&mut out, &plain[7..30], key, 7);
        unmask_into(&mut out, &plain[30..], key, 30);
        assert_eq!(out, whole);
    }
}
