//! Gemini status codes and their categories.

use std::fmt;

/// The group a status belongs to (its first digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// 1x: the server asks the client for a line of input.
    Input,
    /// 2x: a body follows the header.
    Success,
    /// 3x: the resource is elsewhere.
    Redirect,
    /// 4x: the request failed but may succeed later.
    TemporaryFailure,
    /// 5x: the request failed and will fail again.
    PermanentFailure,
    /// 6x: a client certificate is needed or was refused.
    ClientCertificate,
}

/// Every status code the Gemini specification defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// 10: ask the user for input, sent back as the query.
    Input = 10,
    /// 11: like 10, but the client should not echo what is typed.
    SensitiveInput = 11,
    /// 20: the body follows; meta is its MIME type.
    Success = 20,
    /// 30: temporary redirect to the URL in meta.
    RedirectTemporary = 30,
    /// 31: permanent redirect to the URL in meta.
    RedirectPermanent = 31,
    /// 40: unspecified temporary failure.
    TemporaryFailure = 40,
    /// 41: the server is overloaded or under maintenance.
    ServerUnavailable = 41,
    /// 42: a CGI script or other dynamic generator failed.
    CgiError = 42,
    /// 43: a proxy request failed to reach the origin.
    ProxyError = 43,
    /// 44: rate limited; meta is the number of seconds to wait.
    SlowDown = 44,
    /// 50: unspecified permanent failure.
    PermanentFailure = 50,
    /// 51: no such resource.
    NotFound = 51,
    /// 52: the resource is gone for good.
    Gone = 52,
    /// 53: the request is for a host, port or scheme this server does not
    /// serve.
    ProxyRequestRefused = 53,
    /// 59: the request is malformed.
    BadRequest = 59,
    /// 60: a client certificate is required.
    ClientCertificateRequired = 60,
    /// 61: the certificate is valid but not authorised for this resource.
    CertificateNotAuthorised = 61,
    /// 62: the certificate is not valid (expired, malformed, ...).
    CertificateNotValid = 62,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 18] = [
        Status::Input,
        Status::SensitiveInput,
        Status::Success,
        Status::RedirectTemporary,
        Status::RedirectPermanent,
        Status::TemporaryFailure,
        Status::ServerUnavailable,
        Status::CgiError,
        Status::ProxyError,
        Status::SlowDown,
        Status::PermanentFailure,
        Status::NotFound,
        Status::Gone,
        Status::ProxyRequestRefused,
        Status::BadRequest,
        Status::ClientCertificateRequired,
        Status::CertificateNotAuthorised,
        Status::CertificateNotValid,
    ];

    /// The two-digit code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status with this exact code, if the specification defines it.
    pub fn from_code(code: u8) -> Option<Status> {
        Some(match code {
            10 => Status::Input,
            11 => Status::SensitiveInput,
            20 => Status::Success,
            30 => Status::RedirectTemporary,
            31 => Status::RedirectPermanent,
            40 => Status::TemporaryFailure,
            41 => Status::ServerUnavailable,
            42 => Status::CgiError,
            43 => Status::ProxyError,
            44 => Status::SlowDown,
            50 => Status::PermanentFailure,
            51 => Status::NotFound,
            52 => Status::Gone,
            53 => Status::ProxyRequestRefused,
            59 => Status::BadRequest,
            60 => Status::ClientCertificateRequired,
            61 => Status::CertificateNotAuthorised,
            62 => Status::CertificateNotValid,
            _ => return None,
        })
    }

    /// Like [`Status::from_code`], but an undefined code in a known category
    /// becomes that category's base code (`x0`), as the specification lets
    /// clients do. Codes outside 10..=69 stay unknown.
    pub fn from_code_lenient(code: u8) -> Option<Status> {
        Status::from_code(code).or(match code {
            10..=19 => Some(Status::Input),
            20..=29 => Some(Status::Success),
            30..=39 => Some(Status::RedirectTemporary),
            40..=49 => Some(Status::TemporaryFailure),
            50..=59 => Some(Status::PermanentFailure),
            60..=69 => Some(Status::ClientCertificateRequired),
            _ => None,
        })
    }

    /// The group this status belongs to.
    pub fn category(self) -> Category {
        match self {
            Status::Input | Status::SensitiveInput => Category::Input,
            Status::Success => Category::Success,
            Status::RedirectTemporary | Status::RedirectPermanent => Category::Redirect,
            Status::TemporaryFailure
            | Status::ServerUnavailable
            | Status::CgiError
            | Status::ProxyError
            | Status::SlowDown => Category::TemporaryFailure,
            Status::PermanentFailure
            | Status::NotFound
            | Status::Gone
            | Status::ProxyRequestRefused
            | Status::BadRequest => Category::PermanentFailure,
            Status::ClientCertificateRequired
            | Status::CertificateNotAuthorised
            | Status::CertificateNotValid => Category::ClientCertificate,
        }
    }

    /// Whether a body follows the header (only for 20; after any other
    /// status the server closes the connection).
    pub fn has_body(self) -> bool {
        self == Status::Success
    }

    /// Whether the meta must be non-empty: a prompt for 1x, a URL for 3x.
    pub fn requires_meta(self) -> bool {
        matches!(self.category(), Category::Input | Category::Redirect)
    }

    /// Whether `NN\r\n`, without the space, is a valid header: for failures
    /// and certificate statuses, whose message is optional.
    pub(crate) fn space_optional(self) -> bool {
        matches!(
            self.category(),
            Category::TemporaryFailure | Category::PermanentFailure | Category::ClientCertificate
        )
    }
}

/// Writes the two-digit code.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_none() {
        for status in Status::ALL {
            assert_eq!(Status::from_code(status.code()), Some(status));
            assert_eq!(Status::from_code_lenient(status.code()), Some(status));
            assert_eq!(status.to_string(), format!("{}", status.code()));
        }
        // ALL lists each defined code once, in order, and nothing else.
        assert!(Status::ALL.windows(2).all(|w| w[0].code() < w[1].code()));
        let defined = (0..=u8::MAX)
            .filter(|&c| Status::from_code(c).is_some())
            .count();
        assert_eq!(defined, Status::ALL.len());
        for code in [0, 1, 9, 12, 21, 29, 32, 45, 54, 58, 63, 70, 99, 255] {
            assert_eq!(Status::from_code(code), None, "{code}");
        }
    }

    #[test]
    fn lenient_codes_fall_back_to_the_category_base() {
        assert_eq!(Status::from_code_lenient(21), Some(Status::Success));
        assert_eq!(Status::from_code_lenient(12), Some(Status::Input));
        assert_eq!(
            Status::from_code_lenient(39),
            Some(Status::RedirectTemporary)
        );
        assert_eq!(
            Status::from_code_lenient(49),
            Some(Status::TemporaryFailure)
        );
        assert_eq!(
            Status::from_code_lenient(58),
            Some(Status::PermanentFailure)
        );
        assert_eq!(
            Status::from_code_lenient(69),
            Some(Status::ClientCertificateRequired)
        );
        assert_eq!(Status::from_code_lenient(9), None);
        assert_eq!(Status::from_code_lenient(70), None);
    }

    #[test]
    fn categories_follow_the_first_digit() {
        for status in Status::ALL {
            let want = match status.code() / 10 {
                1 => Category::Input,
                2 => Category::Success,
                3 => Category::Redirect,
                4 => Category::TemporaryFailure,
                5 => Category::PermanentFailure,
                6 => Category::ClientCertificate,
                _ => unreachable!(),
            };
            assert_eq!(status.category(), want, "{status:?}");
            assert_eq!(status.has_body(), status == Status::Success);
        }
    }
}
