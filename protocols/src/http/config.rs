//! Settings of the HTTP redirect listener, with defaults, filled by the
//! server from its command line (`--redirect-code`, `--redirect-host`,
//! `--redirect-port`, `--hostname`, `--acme-dir`) and config file.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::host::HostError;
use super::redirect::RedirectConfig;

/// Time a client has to send a whole request head, from its first byte (and
/// for the first request, from the connection's start): real clients send
/// a head in one packet; this cuts slowloris-style trickling, as Jetforce's
/// 10 s deadline does.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a keep-alive connection may sit idle between requests (and the time
/// a request body has to arrive): long enough for a browser to reuse the
/// connection for the next page, short enough not to hoard descriptors.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// After an error answer the connection closes lingering
/// ([`torsion_reactor::Transport::close_lingering`]): input is read and
/// thrown away for at most this long after the answer is sent, so it is not
/// destroyed by a TCP reset when unread request bytes remain: enough for
/// the client to read the answer and close, too short to be worth abusing.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(2);

/// Requests served on one connection before it is closed (the last answer
/// says `Connection: close`), as nginx's `keepalive_requests`: bounds what
/// one connection can take from the loop without hurting real browsers.
pub const DEFAULT_MAX_REQUESTS: u32 = 1000;

/// How the HTTP redirect listener behaves. `HttpConfig::default()` is
/// right for a test; the server fills `redirect.target_port` from its
/// HTTPS listener and `redirect.fallback_host` from `--hostname`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where redirects point: the code (301 or 308, `--redirect-code`), the
    /// canonical host (`--redirect-host`: when set, every `Location` uses it
    /// whatever the client sent), the HTTPS port (`--redirect-port`,
    /// omitted from `Location` when 443) and the host for HTTP/1.0 requests
    /// without `Host` (`--hostname`).
    pub redirect: RedirectConfig,
    /// Serve ACME http-01 challenges (`/.well-known/acme-challenge/<token>`)
    /// from the files in this directory (`--acme-dir`); `None` redirects
    /// those paths like any other.
    pub acme_dir: Option<PathBuf>,
    /// See [`DEFAULT_HEAD_TIMEOUT`].
    pub head_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`DEFAULT_LINGER`].
    pub linger: Duration,
    /// See [`DEFAULT_MAX_REQUESTS`]. At least 1.
    pub max_requests: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            redirect: RedirectConfig::default(),
            acme_dir: None,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            linger: DEFAULT_LINGER,
            max_requests: DEFAULT_MAX_REQUESTS,
        }
    }
}

impl HttpConfig {
    /// Checks the settings; call when loading the configuration so a bad
    /// value is reported at start-up rather than as 400s later. Does not
    /// touch the file system (a missing ACME directory just answers 404).
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        self.redirect.validate().map_err(HttpConfigError::BadHost)?;
        if self.max_requests == 0 {
            return Err(HttpConfigError::ZeroMaxRequests);
        }
        let timeouts = [
            ("head_timeout", self.head_timeout),
            ("idle_timeout", self.idle_timeout),
            ("linger", self.linger),
        ];
        for (name, value) in timeouts {
            if value.is_zero() {
                return Err(HttpConfigError::ZeroTimeout(name));
            }
        }
        Ok(())
    }
}

/// Why an [`HttpConfig`] was refused by [`HttpConfig::validate`]. Always
/// the operator's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// The canonical or fallback host is not a plain host name, or the
    /// target port is 0.
    BadHost(HostError),
    /// `max_requests` is 0: no request could ever be answered.
    ZeroMaxRequests,
    /// The named timeout is zero: every connection would be cut at once.
    ZeroTimeout(&'static str),
}

impl fmt::Display for HttpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpConfigError::BadHost(e) => write!(f, "redirect host or port: {e}"),
            HttpConfigError::ZeroMaxRequests => f.write_str("max_requests must be at least 1"),
            HttpConfigError::ZeroTimeout(name) => write!(f, "{name} must not be zero"),
        }
    }
}

impl std::error::Error for HttpConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpConfigError::BadHost(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(HttpConfig::default().validate(), Ok(()));
        let c = HttpConfig::default();
        assert_eq!(c.redirect.target_port, 443);
        assert_eq!(c.max_requests, DEFAULT_MAX_REQUESTS);
        assert!(c.acme_dir.is_none());
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut c = HttpConfig::default();
        c.redirect.canonical_host = Some("a.com/evil".into());
        assert!(matches!(c.validate(), Err(HttpConfigError::BadHost(_))));

        let c = HttpConfig {
            max_requests: 0,
            ..HttpConfig::default()
        };
        assert_eq!(c.validate(), Err(HttpConfigError::ZeroMaxRequests));

        let c = HttpConfig {
            head_timeout: Duration::ZERO,
            ..HttpConfig::default()
        };
        assert_eq!(
            c.validate(),
            Err(HttpConfigError::ZeroTimeout("head_timeout"))
        );
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "head_timeout must not be zero"
        );
        use std::error::Error;
        let e = HttpConfigError::BadHost(HostError::Empty);
        assert!(e.source().is_some());
        assert!(!e.to_string().is_empty());
    }
}
