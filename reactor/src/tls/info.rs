//! What a protocol may know about its TLS session once the handshake is
//! done: version, cipher suite, SNI, ALPN and the peer's certificate facts,
//! in the formats Jetforce exposes to CGI scripts and applications.

use base64::Engine;
use rustls::{CipherSuite, ProtocolVersion};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use super::certs::{push_hex_upper, sha256};

/// Facts about a negotiated TLS session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// Protocol version as OpenSSL and Jetforce's `TLS_VERSION` name it:
    /// `"TLSv1.3"` or `"TLSv1.2"`.
    pub version: &'static str,
    /// Cipher suite as rustls prints it, e.g. `"TLS13_AES_256_GCM_SHA384"`.
    pub cipher_suite: &'static str,
    /// IANA registry name, e.g. `"TLS_AES_256_GCM_SHA384"` or
    /// `"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"`.
    pub cipher_iana: &'static str,
    /// OpenSSL's name, which is what Jetforce's `TLS_CIPHER` shows: equal to
    /// the IANA name for TLS 1.3, e.g. `"ECDHE-ECDSA-AES256-GCM-SHA384"` for
    /// TLS 1.2.
    pub cipher_openssl: &'static str,
    /// Server name the client sent (SNI), lower-case; `None` when it sent none.
    pub sni: Option<String>,
    /// Negotiated ALPN protocol, if any.
    pub alpn: Option<Vec<u8>>,
    /// True when the session was resumed (ticket or session id) rather than a
    /// full handshake.
    pub resumed: bool,
    /// The peer's end-entity certificate, when it presented one (a client
    /// certificate on the server side; the server's certificate on the client
    /// side).
    pub peer_cert: Option<PeerCertInfo>,
}

/// Facts about a peer's end-entity certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertInfo {
    /// SHA-256 of the certificate DER.
    pub sha256: [u8; 32],
    /// `"SHA256:"` + upper-case hex of [`Self::sha256`]: Jetforce's
    /// `TLS_CLIENT_HASH` (since Jetforce 0.7).
    pub hash: String,
    /// URL-safe base64 (with padding) of [`Self::sha256`]: Jetforce's
    /// `TLS_CLIENT_HASH_B64`, the older `TLS_CLIENT_HASH` format.
    pub hash_b64: String,
    /// First subject common name, or `""` when there is none (Jetforce's
    /// `REMOTE_USER`).
    pub common_name: String,
    /// Subject distinguished name, RFC 4514 style (`CN=…, O=…`).
    pub subject: String,
    /// Issuer distinguished name, RFC 4514 style.
    pub issuer: String,
    /// Not-before, RFC 3339 UTC (`2026-11-22T14:00:00Z`):
    /// Jetforce's `TLS_CLIENT_NOT_BEFORE`.
    pub not_before: String,
    /// Not-after, RFC 3339 UTC: Jetforce's `TLS_CLIENT_NOT_AFTER`.
    pub not_after: String,
    /// Not-before as Unix seconds.
    pub not_before_unix: i64,
    /// Not-after as Unix seconds.
    pub not_after_unix: i64,
    /// Serial number in decimal: Jetforce's `TLS_CLIENT_SERIAL_NUMBER` (a
    /// Python int, so decimal in CGI). Empty when the serial is longer than
    /// 64 octets (RFC 5280 allows 20), which only a hostile or broken
    /// certificate has; `serial_hex` still carries it.
    pub serial: String,
    /// Serial number in upper-case hex without leading zeros, as Jetforce
    /// applications format it (`f"{serial:X}"`).
    pub serial_hex: String,
    /// True when the certificate is within its validity dates now. Expired
    /// client certificates are accepted by the handshake so the application
    /// can answer Gemini status 62 (certificate not valid).
    pub valid_now: bool,
    /// True when the certificate chains to the configured CA
    /// (`--tls-cafile`/`--tls-capath`; Jetforce's `TLS_CLIENT_AUTHORISED`) or,
    /// on the client side, when it was verified against the roots.
    pub authorised: bool,
}

impl PeerCertInfo {
    /// Parses an end-entity certificate. `None` when it is not a well-formed
    /// X.509 certificate (the handshake has already refused those).
    pub fn from_der(der: &[u8], now_unix: i64, authorised: bool) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let digest = sha256(der);
        let mut hash = String::with_capacity(7 + 64);
        hash.push_str("SHA256:");
        push_hex_upper(&mut hash, &digest);
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .unwrap_or("")
            .to_string();
        let validity = cert.validity();
        let not_before_unix = validity.not_before.timestamp();
        let not_after_unix = validity.not_after.timestamp();
        let serial = cert.tbs_certificate.raw_serial();
        Some(PeerCertInfo {
            sha256: digest,
            hash,
            hash_b64: base64::engine::general_purpose::URL_SAFE.encode(digest),
            common_name,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: rfc3339(&validity.not_before),
            not_after: rfc3339(&validity.not_after),
            not_before_unix,
            not_after_unix,
            serial: super::serial::decimal(serial).unwrap_or_default(),
            serial_hex: super::serial::hex(serial),
            valid_now: not_before_unix <= now_unix && now_unix <= not_after_unix,
            authorised,
        })
    }
}

/// Formats a certificate time as RFC 3339 UTC with seconds and a `Z`.
pub fn rfc3339(t: &ASN1Time) -> String {
    let dt = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// `"TLSv1.3"` / `"TLSv1.2"` (OpenSSL's names); `"unknown"` otherwise,
/// which cannot happen with the versions this module enables.
pub fn version_name(v: ProtocolVersion) -> &'static str {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3",
        ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "unknown",
    }
}

/// (rustls name, IANA name, OpenSSL name) of a cipher suite rustls can
/// negotiate; `"unknown"` for others.
pub fn cipher_names(cs: CipherSuite) -> (&'static str, &'static str, &'static str) {
    use CipherSuite as C;
    let rustls_name = cs.as_str().unwrap_or("unknown");
    let (iana, openssl) = match cs {
        C::TLS13_AES_128_GCM_SHA256 => ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"),
        C::TLS13_AES_256_GCM_SHA384 => ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
        C::TLS13_CHACHA20_POLY1305_SHA256 => (
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS_CHACHA20_POLY1305_SHA256",
        ),
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
        ),
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ),
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
        ),
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ),
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
        ),
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            "ECDHE-RSA-CHACHA20-POLY1305",
        ),
        _ => ("unknown", "unknown"),
    };
    (rustls_name, iana, openssl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        let t = ASN1Time::from_timestamp(1_795_356_000).unwrap();
        assert_eq!(rfc3339(&t), "2026-11-22T14:00:00Z");
        let t = ASN1Time::from_timestamp(0).unwrap();
        assert_eq!(rfc3339(&t), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn names() {
        assert_eq!(version_name(ProtocolVersion::TLSv1_3), "TLSv1.3");
        assert_eq!(version_name(ProtocolVersion::TLSv1_2), "TLSv1.2");
        assert_eq!(version_name(ProtocolVersion::TLSv1_1), "unknown");
        assert_eq!(
            cipher_names(CipherSuite::TLS13_AES_256_GCM_SHA384),
            (
                "TLS13_AES_256_GCM_SHA384",
                "TLS_AES_256_GCM_SHA384",
                "TLS_AES_256_GCM_SHA384"
            )
        );
        assert_eq!(
            cipher_names(CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
            (
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "ECDHE-ECDSA-AES256-GCM-SHA384"
            )
        );
        assert_eq!(cipher_names(CipherSuite::Unknown(0x1234)).1, "unknown");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(PeerCertInfo::from_der(b"\x30\x03\x02\x01\x00", 0, false).is_none());
        assert!(PeerCertInfo::from_der(b"", 0, false).is_none());
    }
}
