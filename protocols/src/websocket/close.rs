//! Close frames (RFC 6455 sections 5.5.1 and 7.4): status codes, and the
//! check of a received close payload.
//!
//! Which codes a peer may send: 1000-1003 and 1007-1011 (RFC 6455), 1012-1014
//! (Service Restart, Try Again Later, Bad Gateway: registered with IANA after
//! the RFC, sent by real servers, and accepted by browsers, tungstenite and
//! the Autobahn suite), and 3000-4999 (libraries and applications). Refused:
//! 0-999 (unused), 1004 (reserved), 1005, 1006 and 1015 (reserved for APIs to
//! report "no code", "dropped" and "TLS failure": never on the wire),
//! 1016-2999 (reserved for future RFCs, which we don't know) and 5000 and up
//! (out of range).

use super::error::ProtocolError;

/// 1000: the purpose of the connection is fulfilled.
pub const NORMAL: u16 = 1000;
/// 1001: the endpoint is going away (server shutdown, page left).
pub const GOING_AWAY: u16 = 1001;
/// 1002: the peer broke the protocol.
pub const PROTOCOL_ERROR: u16 = super::error::CLOSE_PROTOCOL_ERROR;
/// 1003: the endpoint got a kind of data it does not accept.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// 1007: a text payload was not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = super::error::CLOSE_INVALID_PAYLOAD;
/// 1008: the message broke the endpoint's policy.
pub const POLICY_VIOLATION: u16 = 1008;
/// 1009: the message was too big to process.
pub const MESSAGE_TOO_BIG: u16 = super::error::CLOSE_MESSAGE_TOO_BIG;
/// 1011: the server hit an unexpected condition.
pub const INTERNAL_ERROR: u16 = 1011;
/// 1012: the server is restarting.
pub const SERVICE_RESTART: u16 = 1012;
/// 1013: the server is overloaded; try again later.
pub const TRY_AGAIN_LATER: u16 = 1013;

/// Longest close reason, in bytes: the 125-byte control payload minus the
/// 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// Whether `code` may appear in a close frame on the wire (see the module
/// docs for the choice on each range).
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A received close frame's status code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code; always [`is_valid_code`].
    pub code: u16,
    /// The reason, possibly empty; valid UTF-8, at most 123 bytes.
    pub reason: &'a str,
}

/// Checks an (unmasked) close payload: empty is fine (no code), one byte is
/// too short (1002), an invalid code is refused (1002), a reason that is not
/// UTF-8 is refused (1007).
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame<'_>>, ProtocolError> {
    let (code, reason) = match payload {
        [] => return Ok(None),
        [_] => return Err(ProtocolError::CloseTooShort),
        [hi, lo, reason @ ..] => (u16::from_be_bytes([*hi, *lo]), reason),
    };
    if !is_valid_code(code) {
        return Err(ProtocolError::InvalidCloseCode(code));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
    Ok(Some(CloseFrame { code, reason }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert!(is_valid_code(code), "{code}");
            let payload = code.to_be_bytes();
            assert_eq!(
                parse_close_payload(&payload),
                Ok(Some(CloseFrame { code, reason: "" }))
            );
        }
    }

    #[test]
    fn every_invalid_class_is_refused() {
        for code in [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 5001, 65535,
        ] {
            assert!(!is_valid_code(code), "{code}");
            assert_eq!(
                parse_close_payload(&code.to_be_bytes()),
                Err(ProtocolError::InvalidCloseCode(code))
            );
        }
    }

    #[test]
    fn empty_payload_means_no_code() {
        assert_eq!(parse_close_payload(b""), Ok(None));
    }

    #[test]
    fn one_byte_payload_is_refused() {
        assert_eq!(
            parse_close_payload(b"\x03"),
            Err(ProtocolError::CloseTooShort)
        );
    }

    #[test]
    fn reason_must_be_utf8() {
        assert_eq!(
            parse_close_payload(b"\x03\xE8bye \xE2\x82\xAC"),
            Ok(Some(CloseFrame {
                code: 1000,
                reason: "bye €"
            }))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xE8\xCE\xBA\xED\xA0\x80"),
            Err(ProtocolError::InvalidCloseReason)
        );
        assert_eq!(
            parse_close_payload(b"\x03\xE8\xE2\x82"),
            Err(ProtocolError::InvalidCloseReason)
        );
    }

    #[test]
    fn invalid_code_wins_over_bad_reason() {
        assert_eq!(
            parse_close_payload(b"\x03\xEC\xFF"),
            Err(ProtocolError::InvalidCloseCode(1004))
        );
    }
}
