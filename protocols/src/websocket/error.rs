//! The one error type of the frame and message layers.
//!
//! Every variant is something the peer did wrong; [`ProtocolError::close_code`]
//! names the status code to put in the Close frame that answers it (RFC 6455
//! section 7.4.1) before the connection is dropped.

use std::fmt;

/// Close code 1002: the peer broke the framing rules.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code 1007: a text message or close reason was not valid UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code 1009: a message was larger than this endpoint accepts.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// A violation of RFC 6455 by the peer, found while decoding its frames.
///
/// The decoder that returned it must not be fed again: answer with a Close
/// frame carrying [`close_code`](Self::close_code) and drop the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1, RSV2 or RSV3 was set, but torsion negotiates no extension that
    /// would give them a meaning. The value holds the three bits (0b0xxx).
    ReservedBits(u8),
    /// The opcode is one of the reserved values 0x3-0x7 or 0xB-0xF.
    ReservedOpcode(u8),
    /// A frame from a client was not masked (RFC 6455 section 5.1).
    UnmaskedFrame,
    /// A frame from a server was masked (RFC 6455 section 5.1); only a
    /// client-role decoder reports this.
    MaskedFrame,
    /// The payload length used a longer encoding than needed (a 16-bit length
    /// below 126 or a 64-bit length below 65536).
    NonMinimalLength,
    /// The most significant bit of a 64-bit payload length was set.
    LengthOverflow,
    /// A control frame (close, ping, pong) announced more than 125 bytes.
    ControlFrameTooLong,
    /// A control frame had FIN clear: control frames must not be fragmented.
    FragmentedControlFrame,
    /// A continuation frame arrived with no fragmented message open.
    UnexpectedContinuation,
    /// A text or binary frame arrived while a fragmented message was still
    /// open; only continuation (and control) frames may follow.
    ExpectedContinuation,
    /// A text message was not valid UTF-8; reported at the first bad byte.
    InvalidUtf8,
    /// The message would exceed the configured limit (bytes); reported from
    /// the frame header, before the payload is read.
    MessageTooLarge {
        /// The configured maximum message size in bytes.
        limit: usize,
    },
    /// A close frame carried a one-byte payload: too short for a status code.
    CloseTooShort,
    /// A close frame carried a status code that may not be sent on the wire.
    InvalidCloseCode(u16),
    /// A close frame's reason was not valid UTF-8.
    InvalidCloseReason,
}

impl ProtocolError {
    /// The status code for the Close frame that answers this error:
    /// 1007 for bad UTF-8, 1009 for oversized messages, 1002 otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InvalidUtf8 | Self::InvalidCloseReason => CLOSE_INVALID_PAYLOAD,
            Self::MessageTooLarge { .. } => CLOSE_MESSAGE_TOO_BIG,
            Self::ReservedBits(_)
            | Self::ReservedOpcode(_)
            | Self::UnmaskedFrame
            | Self::MaskedFrame
            | Self::NonMinimalLength
            | Self::LengthOverflow
            | Self::ControlFrameTooLong
            | Self::FragmentedControlFrame
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::CloseTooShort
            | Self::InvalidCloseCode(_) => CLOSE_PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBits(bits) => {
                write!(f, "reserved bits set without an extension: {bits:#05b}")
            }
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::UnmaskedFrame => f.write_str("client frame is not masked"),
            Self::MaskedFrame => f.write_str("server frame is masked"),
            Self::NonMinimalLength => f.write_str("payload length not minimally encoded"),
            Self::LengthOverflow => f.write_str("payload length has its most significant bit set"),
            Self::ControlFrameTooLong => f.write_str("control frame payload longer than 125 bytes"),
            Self::FragmentedControlFrame => f.write_str("control frame without FIN"),
            Self::UnexpectedContinuation => {
                f.write_str("continuation frame without a message to continue")
            }
            Self::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message is open")
            }
            Self::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            Self::MessageTooLarge { limit } => {
                write!(f, "message larger than the {limit}-byte limit")
            }
            Self::CloseTooShort => f.write_str("close frame payload of one byte"),
            Self::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            Self::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_by_class() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
        assert_eq!(ProtocolError::InvalidCloseReason.close_code(), 1007);
        assert_eq!(
            ProtocolError::MessageTooLarge { limit: 10 }.close_code(),
            1009
        );
        assert_eq!(ProtocolError::ReservedOpcode(3).close_code(), 1002);
        assert_eq!(ProtocolError::InvalidCloseCode(5000).close_code(), 1002);
        assert_eq!(ProtocolError::CloseTooShort.close_code(), 1002);
    }

    #[test]
    fn display_names_the_fault() {
        assert_eq!(
            ProtocolError::ReservedBits(0b100).to_string(),
            "reserved bits set without an extension: 0b100"
        );
        assert_eq!(
            ProtocolError::InvalidCloseCode(1005).to_string(),
            "invalid close code 1005"
        );
    }
}
