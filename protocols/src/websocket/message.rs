//! Message assembly: frames in, whole messages and control frames out.
//!
//! [`MessageDecoder::next`] takes the bytes of one read, consumes what it can
//! and returns at most one [`Event`] per call; call it again until it returns
//! `Ok(None)`, which means every byte was consumed (kept inside the decoder
//! when it is the start of something unfinished):
//!
//! ```
//! use torsion_protocols::websocket::{Event, MessageDecoder};
//!
//! let mut decoder = MessageDecoder::default();
//! // A masked text frame "Hello" (RFC 6455 section 5.7).
//! let read = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let mut input = &read[..];
//! while let Some(event) = decoder.next(&mut input).unwrap() {
//!     assert_eq!(event, Event::Text("Hello"));
//! }
//! assert!(input.is_empty());
//! ```
//!
//! Rules enforced, with the close code of the error: continuation without an
//! open message and a new data frame inside an open one (1002); control
//! frames may come between fragments and are delivered at once; text is
//! validated as it arrives, across frames, and refused at the first bad byte
//! (1007); the size limit is checked against each frame's announced length
//! plus what the message already holds, before its payload is read (1009);
//! close payloads are checked by [`parse_close_payload`] (1002 / 1007).
//!
//! Copies. A client's payload is masked, so it has to be transformed before
//! use; reading from a shared `&[u8]`, the decoder unmasks into its own buffer
//! in the same pass as the copy ([`unmask_into`]), and the event borrows that
//! buffer. This costs one pass over the payload and keeps the API usable by a
//! reactor that hands out its read buffer immutably. (Unmasking in place would
//! need `&mut [u8]` and would save only the write to a second buffer.) The
//! buffer keeps its capacity between messages up to [`RETAINED_BUFFER`], so a
//! connection exchanging small messages does no allocation per message. A
//! client-role decoder (the bench harness) reads unmasked frames: a whole
//! single-frame message present in the input is returned borrowed from the
//! input, with no copy at all.
//!
//! Text from a single frame that arrived in one read is validated once, when
//! the `&str` is made. Text that arrived in pieces is validated piece by piece
//! (to fail fast) and once more when the `&str` is made, which avoids `unsafe`
//! at the cost of a second pass that only such messages pay.
//!
//! After a Close event, or after an error, the decoder is done: it consumes
//! and ignores all further input (RFC 6455 section 5.5.1: no data frames
//! after Close), and the caller should be closing the connection.

use super::close::{parse_close_payload, CloseFrame};
use super::error::ProtocolError;
use super::frame::{
    decode_header, unmask_into, FrameHeader, HeaderStatus, OpCode, Role, MAX_CONTROL_PAYLOAD,
    MAX_HEADER_LEN,
};
use super::utf8::Utf8Validator;

/// Default largest message, in bytes: plenty for chat and status traffic
/// while bounding what one connection can make the server hold.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

/// Largest message buffer kept for the next message: above it the buffer is
/// freed after delivery, so an idle connection does not keep a burst's
/// memory.
pub const RETAINED_BUFFER: usize = 64 * 1024;

/// Most payload capacity reserved from a frame's announced length before its
/// bytes arrive: a reactor read brings at most 64 KiB, so reserving more
/// would only let a peer make us allocate memory it never fills.
pub const MAX_UPFRONT_RESERVE: usize = 64 * 1024;

/// How a [`MessageDecoder`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderConfig {
    /// Our side of the connection; decides the masking required of the peer.
    pub role: Role,
    /// Largest message (sum of its fragments' payloads) accepted, in bytes;
    /// it bounds single frames too.
    pub max_message: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            role: Role::Server,
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }
}

/// Something the peer sent, complete. Payloads borrow the decoder (or, for a
/// client-role decoder, the input) until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole text message, validated as UTF-8.
    Text(&'a str),
    /// A whole binary message.
    Binary(&'a [u8]),
    /// A ping: answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (solicited or not).
    Pong(&'a [u8]),
    /// The peer closes, with a status code and reason when it gave one.
    /// The decoder ignores all later input.
    Close(Option<CloseFrame<'a>>),
}

/// The two kinds of data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    Text,
    Binary,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes still to read; fits usize because it passed the size
    /// limit (data) or the 125-byte limit (control).
    remaining: usize,
    /// Payload bytes read so far: the masking phase of the next byte.
    offset: usize,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Expecting a frame header (its first `header_len` bytes are buffered).
    Header,
    /// Reading the payload of this frame.
    Payload(Frame),
    /// A Close was received or an error returned: input is ignored.
    Done,
}

/// What `advance` found complete. Borrows only the input, so the caller can
/// still touch the decoder while building the event.
enum Ready<'i> {
    /// A single-frame unmasked message, borrowed straight from the input.
    Input(DataKind, &'i [u8]),
    /// A message assembled in `data`.
    Buffered(DataKind),
    /// A control frame whose payload is in `control`.
    Control(OpCode),
}

/// Turns a stream of frames into [`Event`]s. See the module docs.
#[derive(Debug, Clone)]
pub struct MessageDecoder {
    config: DecoderConfig,
    state: State,
    /// The start of a header split across reads.
    header: [u8; MAX_HEADER_LEN],
    /// How many bytes of `header` are in use; below `MAX_HEADER_LEN`.
    header_len: usize,
    /// The data message being assembled, if one is open.
    message: Option<DataKind>,
    /// The open message's unmasked payload so far (or the message just
    /// delivered, until the next call).
    data: Vec<u8>,
    /// Set when `data` was handed out: it is cleared on the next call.
    delivered: bool,
    /// The current (or last delivered) control frame's unmasked payload.
    control: [u8; MAX_CONTROL_PAYLOAD],
    /// How many bytes of `control` are in use.
    control_len: usize,
    /// Validates the open text message as it arrives.
    utf8: Utf8Validator,
}

impl Default for MessageDecoder {
    fn default() -> Self {
        Self::new(DecoderConfig::default())
    }
}

impl MessageDecoder {
    /// A decoder at the start of a connection (after the handshake).
    pub fn new(config: DecoderConfig) -> Self {
        Self {
            config,
            state: State::Header,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            message: None,
            data: Vec::new(),
            delivered: false,
            control: [0; MAX_CONTROL_PAYLOAD],
            control_len: 0,
            utf8: Utf8Validator::new(),
        }
    }

    /// The configuration this decoder was made with.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Whether the decoder has seen a Close or returned an error, and now
    /// ignores input.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether a fragmented (or partly received) data message is open.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Bytes of payload held for the open message: what this connection
    /// costs beyond its fixed size.
    pub fn buffered(&self) -> usize {
        if self.delivered {
            0
        } else {
            self.data.len()
        }
    }

    /// Consumes bytes from the front of `input` until one event is complete,
    /// and returns it; `Ok(None)` once `input` is empty and nothing more is
    /// complete. Partial frames are kept inside, so feeding a stream one byte
    /// at a time yields the same events as feeding it whole.
    ///
    /// After an error the decoder is done (see [`is_done`](Self::is_done)):
    /// send a Close with [`ProtocolError::close_code`] and drop the
    /// connection.
    #[allow(clippy::should_implement_trait)] // Not an Iterator: it borrows the input and returns Results.
    pub fn next<'s, 'i: 's>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Event<'s>>, ProtocolError> {
        if self.delivered {
            self.delivered = false;
            self.data.clear();
            if self.data.capacity() > RETAINED_BUFFER {
                self.data = Vec::new();
            }
        }
        let ready = match self.advance(input) {
            Ok(Some(ready)) => ready,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.state = State::Done;
                return Err(e);
            }
        };
        let event = match ready {
            Ready::Input(DataKind::Binary, payload) => Event::Binary(payload),
            Ready::Input(DataKind::Text, payload) => match std::str::from_utf8(payload) {
                Ok(text) => Event::Text(text),
                Err(_) => {
                    self.state = State::Done;
                    return Err(ProtocolError::InvalidUtf8);
                }
            },
            Ready::Buffered(kind) => {
                self.delivered = true;
                match kind {
                    DataKind::Binary => Event::Binary(&self.data),
                    DataKind::Text => match std::str::from_utf8(&self.data) {
                        Ok(text) => Event::Text(text),
                        Err(_) => {
                            self.state = State::Done;
                            return Err(ProtocolError::InvalidUtf8);
                        }
                    },
                }
            }
            Ready::Control(opcode) => {
                let payload = self.control.get(..self.control_len).unwrap_or_default();
                match opcode {
                    OpCode::Ping => Event::Ping(payload),
                    OpCode::Pong => Event::Pong(payload),
                    _ => match parse_close_payload(payload) {
                        Ok(close) => Event::Close(close),
                        Err(e) => {
                            self.state = State::Done;
                            return Err(e);
                        }
                    },
                }
            }
        };
        Ok(Some(event))
    }

    /// Runs the state machine over `input` until something is complete or
    /// the input is used up.
    fn advance<'i>(&mut self, input: &mut &'i [u8]) -> Result<Option<Ready<'i>>, ProtocolError> {
        loop {
            match self.state {
                State::Done => {
                    *input = &[];
                    return Ok(None);
                }
                State::Header => {
                    let Some(header) = self.read_header(input)? else {
                        return Ok(None);
                    };
                    self.begin_frame(header)?;
                }
                State::Payload(frame) => {
                    if let Some(ready) = self.read_payload(frame, input)? {
                        return Ok(Some(ready));
                    }
                    if matches!(self.state, State::Payload(_)) {
                        // The frame goes on past the end of the input.
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Decodes the next header, buffering its start when it is split.
    fn read_header(&mut self, input: &mut &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
        if self.header_len == 0 {
            return match decode_header(input, self.config.role)? {
                HeaderStatus::Complete { header, len } => {
                    *input = input.get(len..).unwrap_or_default();
                    Ok(Some(header))
                }
                HeaderStatus::Partial => {
                    // Partial means shorter than the longest header.
                    let kept = input.len().min(MAX_HEADER_LEN - 1);
                    if let (Some(dst), Some(src)) = (self.header.get_mut(..kept), input.get(..kept))
                    {
                        dst.copy_from_slice(src);
                    }
                    self.header_len = kept;
                    *input = &[];
                    Ok(None)
                }
            };
        }
        let had = self.header_len;
        let take = input.len().min(MAX_HEADER_LEN - had);
        let (head, rest) = input.split_at(take);
        if let Some(dst) = self.header.get_mut(had..had + take) {
            dst.copy_from_slice(head);
        }
        let buffered = self.header.get(..had + take).unwrap_or_default();
        match decode_header(buffered, self.config.role)? {
            HeaderStatus::Complete { header, len } => {
                // The buffered part alone was partial, so the header ends in
                // the bytes just taken.
                *input = input.get(len.saturating_sub(had)..).unwrap_or_default();
                self.header_len = 0;
                Ok(Some(header))
            }
            HeaderStatus::Partial => {
                self.header_len = had + take;
                *input = rest;
                Ok(None)
            }
        }
    }

    /// Checks a new frame against the message state and the size limit, and
    /// starts reading its payload.
    fn begin_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        let too_large = ProtocolError::MessageTooLarge {
            limit: self.config.max_message,
        };
        if header.opcode.is_control() {
            // The header decoder refused control payloads over 125 bytes.
            let remaining = usize::try_from(header.payload_len)
                .map_err(|_| ProtocolError::ControlFrameTooLong)?;
            self.control_len = 0;
            self.state = State::Payload(Frame {
                opcode: header.opcode,
                fin: header.fin,
                mask: header.mask,
                remaining,
                offset: 0,
            });
            return Ok(());
        }
        let kind = match (header.opcode, self.message) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Continuation, Some(kind)) => kind,
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (OpCode::Text, None) => DataKind::Text,
            (_, None) => DataKind::Binary,
        };
        let held = if self.message.is_some() {
            self.data.len()
        } else {
            0
        };
        let limit = u64::try_from(self.config.max_message).unwrap_or(u64::MAX);
        let total = u64::try_from(held)
            .ok()
            .and_then(|held| held.checked_add(header.payload_len));
        match total {
            Some(total) if total <= limit => {}
            _ => return Err(too_large),
        }
        let remaining = usize::try_from(header.payload_len).map_err(|_| too_large)?;
        if self.message.is_none() {
            self.message = Some(kind);
            self.utf8.reset();
        }
        self.state = State::Payload(Frame {
            opcode: header.opcode,
            fin: header.fin,
            mask: header.mask,
            remaining,
            offset: 0,
        });
        Ok(())
    }

    /// Reads as much of the current frame's payload as `input` holds.
    /// Returns what completed, if anything; leaves `state` at `Header` when
    /// the frame ended without completing an event.
    fn read_payload<'i>(
        &mut self,
        mut frame: Frame,
        input: &mut &'i [u8],
    ) -> Result<Option<Ready<'i>>, ProtocolError> {
        let whole_message = frame.fin && matches!(frame.opcode, OpCode::Text | OpCode::Binary);
        if whole_message && frame.offset == 0 {
            if let Some((payload, rest)) = input.split_at_checked(frame.remaining) {
                // The common case: a one-frame message entirely in this read.
                let kind = self.message.take().unwrap_or(DataKind::Binary);
                self.state = State::Header;
                *input = rest;
                return Ok(Some(match frame.mask {
                    None => Ready::Input(kind, payload),
                    Some(mask) => {
                        unmask_into(&mut self.data, payload, mask, 0);
                        Ready::Buffered(kind)
                    }
                }));
            }
        }

        let take = frame.remaining.min(input.len());
        let (chunk, rest) = input.split_at(take);
        *input = rest;
        if frame.opcode.is_control() {
            let end = self.control_len + take;
            let dst = self
                .control
                .get_mut(self.control_len..end)
                .ok_or(ProtocolError::ControlFrameTooLong)?;
            dst.copy_from_slice(chunk);
            if let Some(mask) = frame.mask {
                super::frame::apply_mask(dst, mask, frame.offset);
            }
            self.control_len = end;
        } else {
            if frame.offset == 0 {
                // One allocation per frame instead of repeated doubling, but
                // only up to what a read can bring: a header alone must not
                // make us allocate the whole announced length (a client
                // announcing 1 MiB and sending 1 byte would cost 1 MiB).
                self.data.reserve(frame.remaining.min(MAX_UPFRONT_RESERVE));
            }
            let start = self.data.len();
            match frame.mask {
                Some(mask) => unmask_into(&mut self.data, chunk, mask, frame.offset),
                None => self.data.extend_from_slice(chunk),
            }
            if self.message == Some(DataKind::Text) {
                let fresh = self.data.get(start..).unwrap_or_default();
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        frame.remaining -= take;
        frame.offset = frame.offset.wrapping_add(take);
        if frame.remaining > 0 {
            self.state = State::Payload(frame);
            return Ok(None);
        }

        self.state = State::Header;
        if frame.opcode.is_control() {
            if frame.opcode == OpCode::Close {
                self.state = State::Done;
            }
            return Ok(Some(Ready::Control(frame.opcode)));
        }
        if !frame.fin {
            return Ok(None);
        }
        let kind = self.message.take().unwrap_or(DataKind::Binary);
        if kind == DataKind::Text {
            self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(Some(Ready::Buffered(kind)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::frame::encode_frame;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// An owned copy of an event, to compare across feeding strategies.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Owned {
        Text(String),
        Binary(Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    impl From<Event<'_>> for Owned {
        fn from(e: Event<'_>) -> Self {
            match e {
                Event::Text(t) => Self::Text(t.to_owned()),
                Event::Binary(b) => Self::Binary(b.to_vec()),
                Event::Ping(p) => Self::Ping(p.to_vec()),
                Event::Pong(p) => Self::Pong(p.to_vec()),
                Event::Close(c) => Self::Close(c.map(|c| (c.code, c.reason.to_owned()))),
            }
        }
    }

    fn text(s: &str) -> Owned {
        Owned::Text(s.to_owned())
    }

    fn server() -> MessageDecoder {
        MessageDecoder::default()
    }

    fn client() -> MessageDecoder {
        MessageDecoder::new(DecoderConfig {
            role: Role::Client,
            ..DecoderConfig::default()
        })
    }

    fn limited(max_message: usize) -> MessageDecoder {
        MessageDecoder::new(DecoderConfig {
            max_message,
            ..DecoderConfig::default()
        })
    }

    /// A masked (client) frame.
    fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(fin, opcode, payload, Some(KEY), &mut out);
        out
    }

    /// Feeds `pieces` in order; returns the events, or the first error.
    fn feed(decoder: &mut MessageDecoder, pieces: &[&[u8]]) -> Result<Vec<Owned>, ProtocolError> {
        let mut events = Vec::new();
        for piece in pieces {
            let mut input = *piece;
            while let Some(event) = decoder.next(&mut input)? {
                events.push(event.into());
            }
            assert!(input.is_empty(), "Ok(None) must mean all input consumed");
        }
        Ok(events)
    }

    fn whole(decoder: MessageDecoder, bytes: &[u8]) -> Result<Vec<Owned>, ProtocolError> {
        let mut d = decoder;
        feed(&mut d, &[bytes])
    }

    /// The result of feeding `bytes` whole, after checking that byte at a
    /// time and every two-piece split give the same.
    fn all_ways(make: fn() -> MessageDecoder, bytes: &[u8]) -> Result<Vec<Owned>, ProtocolError> {
        let expected = whole(make(), bytes);
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(feed(&mut make(), &singles), expected, "byte at a time");
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(feed(&mut make(), &[a, b]), expected, "split at {split}");
        }
        expected
    }

    #[test]
    fn rfc_masked_hello() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(all_ways(server, &bytes), Ok(vec![text("Hello")]));
    }

    #[test]
    fn rfc_unmasked_hello_client_role() {
        assert_eq!(all_ways(client, b"\x81\x05Hello"), Ok(vec![text("Hello")]));
        // The server role refuses it.
        assert_eq!(
            whole(server(), b"\x81\x05Hello"),
            Err(ProtocolError::UnmaskedFrame)
        );
    }

    #[test]
    fn rfc_fragmented_hello() {
        assert_eq!(
            all_ways(client, b"\x01\x03Hel\x80\x02lo"),
            Ok(vec![text("Hello")])
        );
        let mut bytes = frame(false, OpCode::Text, b"Hel");
        bytes.extend(frame(true, OpCode::Continuation, b"lo"));
        assert_eq!(all_ways(server, &bytes), Ok(vec![text("Hello")]));
    }

    #[test]
    fn rfc_ping_and_pong() {
        assert_eq!(
            all_ways(client, b"\x89\x05Hello"),
            Ok(vec![Owned::Ping(b"Hello".to_vec())])
        );
        let pong = [
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            all_ways(server, &pong),
            Ok(vec![Owned::Pong(b"Hello".to_vec())])
        );
    }

    #[test]
    fn rfc_256_byte_and_64k_binary() {
        let payload: Vec<u8> = (0..=255u8).collect();
        let mut bytes = vec![0x82, 0x7E, 0x01, 0x00];
        bytes.extend(&payload);
        assert_eq!(all_ways(client, &bytes), Ok(vec![Owned::Binary(payload)]));

        let payload: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut bytes = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
        bytes.extend(&payload);
        assert_eq!(
            whole(client(), &bytes),
            Ok(vec![Owned::Binary(payload.clone())])
        );
        let masked = frame(true, OpCode::Binary, &payload);
        assert_eq!(masked.len(), 14 + 65536);
        let pieces: Vec<&[u8]> = masked.chunks(1000).collect();
        assert_eq!(
            feed(&mut server(), &pieces),
            Ok(vec![Owned::Binary(payload)])
        );
    }

    #[test]
    fn control_frames_between_fragments_at_every_boundary() {
        let mut bytes = frame(false, OpCode::Text, "κό".as_bytes());
        bytes.extend(frame(true, OpCode::Ping, b"p1"));
        bytes.extend(frame(false, OpCode::Continuation, "σ".as_bytes()));
        bytes.extend(frame(false, OpCode::Continuation, b""));
        bytes.extend(frame(true, OpCode::Pong, b""));
        bytes.extend(frame(true, OpCode::Continuation, "με".as_bytes()));
        bytes.extend(frame(true, OpCode::Binary, &[1, 2, 3]));
        bytes.extend(frame(true, OpCode::Close, b"\x03\xE8done"));
        assert_eq!(
            all_ways(server, &bytes),
            Ok(vec![
                Owned::Ping(b"p1".to_vec()),
                Owned::Pong(vec![]),
                text("κόσμε"),
                Owned::Binary(vec![1, 2, 3]),
                Owned::Close(Some((1000, "done".into()))),
            ])
        );
    }

    #[test]
    fn utf8_split_inside_characters_across_fragments() {
        let s = "a€😀é";
        let b = s.as_bytes();
        for i in 0..=b.len() {
            let mut bytes = frame(false, OpCode::Text, &b[..i]);
            bytes.extend(frame(true, OpCode::Continuation, &b[i..]));
            assert_eq!(whole(server(), &bytes), Ok(vec![text(s)]), "split {i}");
        }
    }

    #[test]
    fn empty_messages() {
        let mut bytes = frame(true, OpCode::Text, b"");
        bytes.extend(frame(true, OpCode::Binary, b""));
        bytes.extend(frame(false, OpCode::Text, b""));
        bytes.extend(frame(true, OpCode::Continuation, b""));
        bytes.extend(frame(true, OpCode::Close, b""));
        assert_eq!(
            all_ways(server, &bytes),
            Ok(vec![
                text(""),
                Owned::Binary(vec![]),
                text(""),
                Owned::Close(None)
            ])
        );
    }

    #[test]
    fn continuation_without_message() {
        let bytes = frame(true, OpCode::Continuation, b"x");
        assert_eq!(
            all_ways(server, &bytes),
            Err(ProtocolError::UnexpectedContinuation)
        );
        // Also after a finished message.
        let mut bytes = frame(true, OpCode::Text, b"a");
        bytes.extend(frame(true, OpCode::Continuation, b"b"));
        let mut d = server();
        assert_eq!(
            feed(&mut d, &[&bytes]),
            Err(ProtocolError::UnexpectedContinuation)
        );
        assert_eq!(ProtocolError::UnexpectedContinuation.close_code(), 1002);
    }

    #[test]
    fn new_data_frame_inside_fragmented_message() {
        for opcode in [OpCode::Text, OpCode::Binary] {
            let mut bytes = frame(false, OpCode::Binary, b"a");
            bytes.extend(frame(true, opcode, b"b"));
            assert_eq!(
                all_ways(server, &bytes),
                Err(ProtocolError::ExpectedContinuation)
            );
        }
    }

    #[test]
    fn frame_level_errors_pass_through() {
        assert_eq!(
            whole(server(), &[0x83, 0x80, 0, 0, 0, 0]),
            Err(ProtocolError::ReservedOpcode(3))
        );
        assert_eq!(
            whole(server(), &[0xC1, 0x80, 0, 0, 0, 0]),
            Err(ProtocolError::ReservedBits(0b100))
        );
        assert_eq!(
            whole(server(), &[0x09, 0x80, 0, 0, 0, 0]),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            whole(server(), &[0x89, 0xFE, 0, 126]),
            Err(ProtocolError::ControlFrameTooLong)
        );
    }

    #[test]
    fn invalid_utf8_is_caught_at_the_first_bad_byte() {
        // "κόσμε" then a surrogate, split over fragments: the error comes
        // with the fragment holding ED A0, before the message ends.
        let mut d = server();
        let first = frame(
            false,
            OpCode::Text,
            b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED",
        );
        let second = frame(false, OpCode::Continuation, b"\xA0\x80");
        assert_eq!(feed(&mut d, &[&first]), Ok(vec![]));
        assert_eq!(feed(&mut d, &[&second]), Err(ProtocolError::InvalidUtf8));
        assert!(d.is_done());
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);

        // Inside one large frame that arrives in pieces: refused with the
        // first piece, long before the announced length is reached.
        let mut payload = vec![b'a'; 10_000];
        payload[100] = 0xC0;
        let bytes = frame(true, OpCode::Text, &payload);
        let mut d = server();
        let mut input = &bytes[..200];
        assert_eq!(d.next(&mut input), Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn text_ending_mid_character_is_refused() {
        let mut bytes = frame(false, OpCode::Text, b"ok\xE2\x82");
        bytes.extend(frame(true, OpCode::Continuation, b""));
        assert_eq!(all_ways(server, &bytes), Err(ProtocolError::InvalidUtf8));
        let bytes = frame(true, OpCode::Text, b"ok\xE2\x82");
        assert_eq!(all_ways(server, &bytes), Err(ProtocolError::InvalidUtf8));
        assert_eq!(
            all_ways(client, b"\x81\x03ok\xE2"),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn binary_is_not_utf8_checked() {
        let bytes = frame(true, OpCode::Binary, b"\xC0\xFF");
        assert_eq!(
            all_ways(server, &bytes),
            Ok(vec![Owned::Binary(vec![0xC0, 0xFF])])
        );
    }

    #[test]
    fn length_2_pow_63_is_refused_from_the_header() {
        let mut d = server();
        let mut input: &[u8] = &[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(d.next(&mut input), Err(ProtocolError::LengthOverflow));
        // The largest legal announcement is refused by the size limit, with
        // no payload sent.
        let mut d = server();
        let mut input: &[u8] = &[
            0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4,
        ];
        assert_eq!(
            d.next(&mut input),
            Err(ProtocolError::MessageTooLarge {
                limit: DEFAULT_MAX_MESSAGE
            })
        );
    }

    #[test]
    fn frame_over_the_limit_is_refused_from_its_header() {
        let header_only = [0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4]; // 256 bytes announced
        let mut d = limited(255);
        let mut input = &header_only[..];
        assert_eq!(
            d.next(&mut input),
            Err(ProtocolError::MessageTooLarge { limit: 255 })
        );
        assert_eq!(
            ProtocolError::MessageTooLarge { limit: 1 }.close_code(),
            1009
        );
        // Exactly at the limit is fine.
        let bytes = frame(true, OpCode::Binary, &[9; 256]);
        assert_eq!(
            whole(limited(256), &bytes),
            Ok(vec![Owned::Binary(vec![9; 256])])
        );
    }

    #[test]
    fn fragments_over_the_limit_are_refused_at_the_frame_that_crosses_it() {
        let mut d = limited(10);
        let a = frame(false, OpCode::Text, b"123456");
        let b = frame(false, OpCode::Continuation, b"7890");
        assert_eq!(feed(&mut d, &[&a, &b]), Ok(vec![]));
        let header_of_c = &frame(true, OpCode::Continuation, b"x")[..6];
        assert_eq!(
            feed(&mut d, &[header_of_c]),
            Err(ProtocolError::MessageTooLarge { limit: 10 })
        );
        // Control frames do not count towards the limit.
        let mut bytes = frame(false, OpCode::Text, b"12345");
        bytes.extend(frame(true, OpCode::Ping, &[0; 100]));
        bytes.extend(frame(true, OpCode::Continuation, b"67890"));
        assert_eq!(
            whole(limited(10), &bytes),
            Ok(vec![Owned::Ping(vec![0; 100]), text("1234567890")])
        );
    }

    #[test]
    fn sixteen_mib_message_when_allowed() {
        let size = 16 << 20;
        let payload: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let bytes = frame(true, OpCode::Binary, &payload);
        let mut d = limited(size);
        // Whole, then in 64 KiB reads.
        let mut input = &bytes[..];
        match d.next(&mut input).unwrap() {
            Some(Event::Binary(b)) => assert!(b == payload.as_slice()),
            other => panic!("{:?}", other.map(Owned::from)),
        }
        let mut d = limited(size);
        let mut got = None;
        for piece in bytes.chunks(64 * 1024) {
            let mut input = piece;
            while let Some(event) = d.next(&mut input).unwrap() {
                match event {
                    Event::Binary(b) => got = Some(b == payload.as_slice()),
                    other => panic!("{:?}", Owned::from(other)),
                }
            }
        }
        assert_eq!(got, Some(true));
        // The big buffer is not kept once the message is handed out.
        let mut empty: &[u8] = &[];
        assert!(d.next(&mut empty).unwrap().is_none());
        assert!(d.data.capacity() <= RETAINED_BUFFER);
        // And one byte less of limit refuses it up front.
        let mut d = limited(size - 1);
        let mut input = &bytes[..14];
        assert!(matches!(
            d.next(&mut input),
            Err(ProtocolError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn close_payload_rules() {
        type Case = (&'static [u8], Result<Vec<Owned>, ProtocolError>);
        let cases: [Case; 7] = [
            (b"", Ok(vec![Owned::Close(None)])),
            (b"\x03", Err(ProtocolError::CloseTooShort)),
            (
                b"\x03\xE8",
                Ok(vec![Owned::Close(Some((1000, String::new())))]),
            ),
            (
                b"\x0B\xB8",
                Ok(vec![Owned::Close(Some((3000, String::new())))]),
            ),
            (b"\x03\xED", Err(ProtocolError::InvalidCloseCode(1005))),
            (b"\x13\x88", Err(ProtocolError::InvalidCloseCode(5000))),
            (
                b"\x03\xE8\xED\xA0\x80",
                Err(ProtocolError::InvalidCloseReason),
            ),
        ];
        for (payload, expected) in cases {
            let bytes = frame(true, OpCode::Close, payload);
            assert_eq!(all_ways(server, &bytes), expected, "{payload:02x?}");
        }
        for code in [0u16, 999, 1004, 1006, 1015, 1016, 2999, 65535] {
            let bytes = frame(true, OpCode::Close, &code.to_be_bytes());
            assert_eq!(
                whole(server(), &bytes),
                Err(ProtocolError::InvalidCloseCode(code))
            );
        }
        assert_eq!(ProtocolError::InvalidCloseReason.close_code(), 1007);
        assert_eq!(ProtocolError::CloseTooShort.close_code(), 1002);
    }

    #[test]
    fn input_after_close_is_ignored() {
        let mut bytes = frame(true, OpCode::Close, b"\x03\xE8");
        bytes.extend(frame(true, OpCode::Text, b"late"));
        bytes.extend([0xFF, 0xFF]); // garbage too
        let mut d = server();
        assert_eq!(
            feed(&mut d, &[&bytes]),
            Ok(vec![Owned::Close(Some((1000, String::new())))])
        );
        assert!(d.is_done());
        assert_eq!(feed(&mut d, &[b"\x81\x05Hello"]), Ok(vec![]));
    }

    #[test]
    fn decoder_is_done_after_an_error() {
        let mut d = server();
        assert!(feed(&mut d, &[&frame(true, OpCode::Continuation, b"")]).is_err());
        assert!(d.is_done());
        assert_eq!(
            feed(&mut d, &[&frame(true, OpCode::Text, b"x")]),
            Ok(vec![])
        );
    }

    #[test]
    fn one_event_per_call_and_rest_left_in_input() {
        let mut bytes = frame(true, OpCode::Text, b"one");
        bytes.extend(frame(true, OpCode::Text, b"two"));
        let mut d = server();
        let mut input = &bytes[..];
        assert_eq!(d.next(&mut input), Ok(Some(Event::Text("one"))));
        assert_eq!(input.len(), bytes.len() / 2);
        assert_eq!(d.next(&mut input), Ok(Some(Event::Text("two"))));
        assert_eq!(d.next(&mut input), Ok(None));
        assert!(input.is_empty());
    }

    #[test]
    fn client_role_borrows_single_frames_from_the_input() {
        let bytes = b"\x82\x03abc";
        let mut d = client();
        let mut input = &bytes[..];
        match d.next(&mut input).unwrap() {
            Some(Event::Binary(b)) => {
                assert_eq!(b, b"abc");
                assert_eq!(b.as_ptr(), bytes[2..].as_ptr());
            }
            other => panic!("{:?}", other.map(Owned::from)),
        }
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn partial_message_is_buffered_and_reported() {
        let bytes = frame(true, OpCode::Binary, &[5; 100]);
        let mut d = server();
        assert_eq!(feed(&mut d, &[&bytes[..50]]), Ok(vec![]));
        assert!(d.in_message());
        assert_eq!(d.buffered(), 50 - 6);
        assert_eq!(
            feed(&mut d, &[&bytes[50..]]),
            Ok(vec![Owned::Binary(vec![5; 100])])
        );
        assert!(!d.in_message());
        assert_eq!(d.buffered(), 0);
    }
}
