//! The one place that names the rustls crypto provider, so switching between
//! `ring` and `aws-lc-rs` is a Cargo feature and nothing else.
//!
//! Feature `ring` (the default) selects ring. Feature `aws-lc-rs` selects
//! aws-lc-rs: about 20% faster handshakes and 1 KiB less heap per idle
//! connection, at the price of ~2 MB of binary (the binary aims at 4 MiB)
//! and a C build. If both are enabled, aws-lc-rs wins. See BENCHMARKS.md
//! for the figures behind the choice.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;

#[cfg(feature = "aws-lc-rs")]
use rustls::crypto::aws_lc_rs as backend;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use rustls::crypto::ring as backend;
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
compile_error!("enable the `aws-lc-rs` or the `ring` feature for TLS");

/// Name of the provider compiled in, for logs and benchmark output.
#[cfg(feature = "aws-lc-rs")]
pub const PROVIDER_NAME: &str = "aws-lc-rs";
/// Name of the provider compiled in, for logs and benchmark output.
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub const PROVIDER_NAME: &str = "ring";

/// The crypto provider every config in this module uses: the backend's
/// defaults (TLS 1.3 AES-GCM and ChaCha20 suites, TLS 1.2 ECDHE AEAD suites,
/// X25519/P-256/P-384) with TLS13_AES_128_GCM_SHA256 first. Built once and
/// shared.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut p = backend::default_provider();
            // Prefer the SHA-256 suites: AES-128-GCM is as safe in
            // practice, and SHA-384's transcript hashing is a measurable
            // share of a handshake (servers apply this order, see config).
            p.cipher_suites
                .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
            Arc::new(p)
        })
        .clone()
}

/// A new TLS 1.3 session-ticket producer (stateless resumption) whose keys
/// rotate every few hours; shared by every connection of one server config.
pub fn ticketer() -> Result<Arc<dyn ProducesTickets>, rustls::Error> {
    backend::Ticketer::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_is_shared_and_complete() {
        let a = provider();
        let b = provider();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!a.cipher_suites.is_empty());
        assert!(ticketer().unwrap().enabled());
    }
}
