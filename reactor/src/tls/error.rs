//! Errors of a TLS session: who is probably at fault, and whether they count
//! as a handshake failure for the listener's `tls_failures` counter.

use std::fmt;

/// Why a TLS session failed or could not be created.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The handshake failed: the peer sent garbage instead of a ClientHello,
    /// offered no common version or cipher suite, presented a certificate we
    /// refuse, or failed to prove possession of its key. Usually the peer's
    /// fault; costs one connection.
    Handshake(rustls::Error),
    /// A record after the handshake was malformed or failed to decrypt, or the
    /// peer broke the protocol. The peer's fault (or corruption in transit).
    Protocol(rustls::Error),
    /// The peer sent a fatal alert (for instance it does not trust our
    /// certificate). The peer chose to end the session.
    PeerAlert {
        /// The alert the peer sent.
        alert: rustls::AlertDescription,
        /// Whether it came before the handshake completed.
        during_handshake: bool,
    },
    /// The host name given to a client session is neither a DNS name nor an
    /// IP address. The caller's fault.
    InvalidServerName(String),
    /// rustls refused to create the session from the configuration. Our fault.
    Config(rustls::Error),
}

impl TlsError {
    /// Classifies a rustls error raised while processing records.
    pub(crate) fn from_rustls(err: rustls::Error, handshaking: bool) -> Self {
        match err {
            rustls::Error::AlertReceived(alert) => TlsError::PeerAlert {
                alert,
                during_handshake: handshaking,
            },
            other if handshaking => TlsError::Handshake(other),
            other => TlsError::Protocol(other),
        }
    }

    /// True when the error ended a connection before the handshake completed:
    /// the listener logs it at debug and counts it in `tls_failures`.
    pub fn is_handshake_failure(&self) -> bool {
        matches!(
            self,
            TlsError::Handshake(_)
                | TlsError::PeerAlert {
                    during_handshake: true,
                    ..
                }
        )
    }

    /// True when the error is the local side's mistake (bad configuration or
    /// host name) rather than the peer's: worth logging at error level.
    pub fn is_local(&self) -> bool {
        matches!(self, TlsError::InvalidServerName(_) | TlsError::Config(_))
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            TlsError::Protocol(e) => write!(f, "TLS protocol error: {e}"),
            TlsError::PeerAlert { alert, .. } => write!(f, "peer sent fatal TLS alert: {alert:?}"),
            TlsError::InvalidServerName(name) => {
                write!(f, "invalid TLS server name {name:?}")
            }
            TlsError::Config(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Handshake(e) | TlsError::Protocol(e) | TlsError::Config(e) => Some(e),
            TlsError::PeerAlert { .. } | TlsError::InvalidServerName(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let hs = TlsError::from_rustls(rustls::Error::DecryptError, true);
        assert!(matches!(hs, TlsError::Handshake(_)));
        assert!(hs.is_handshake_failure());
        assert!(!hs.is_local());

        let proto = TlsError::from_rustls(rustls::Error::DecryptError, false);
        assert!(matches!(proto, TlsError::Protocol(_)));
        assert!(!proto.is_handshake_failure());

        let alert = TlsError::from_rustls(
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
            true,
        );
        assert!(matches!(
            alert,
            TlsError::PeerAlert {
                alert: rustls::AlertDescription::BadCertificate,
                during_handshake: true
            }
        ));
        assert!(alert.is_handshake_failure());
        let late = TlsError::from_rustls(
            rustls::Error::AlertReceived(rustls::AlertDescription::DecodeError),
            false,
        );
        assert!(!late.is_handshake_failure());
        assert!(TlsError::InvalidServerName("a b".into()).is_local());
        assert!(alert.to_string().contains("BadCertificate"));
    }
}
