//! Client certificates the Gemini way: request one, accept self-signed ones
//! (the handshake's CertificateVerify signature still proves the client holds
//! the key), and report separately whether the certificate chains to the
//! configured CA.
//!
//! What the `Optional` verifier checks at handshake time:
//! - the certificate is a well-formed X.509 certificate (else `bad_certificate`);
//! - the handshake signature verifies with the certificate's public key,
//!   using the crypto provider's algorithms (else `decrypt_error`).
//!
//! What it deliberately does not check: issuer, chain, key usage, and
//! validity dates. An expired certificate is accepted and reported with
//! [`PeerCertInfo::valid_now`](super::PeerCertInfo::valid_now) false, so the
//! application can answer Gemini status 62 ("certificate not valid") instead
//! of the user seeing an opaque TLS alert. Jetforce likewise accepts any
//! client certificate at the TLS layer.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::certs::{load_chain, CertError};

/// Largest number of files read from a `--tls-capath` directory: a CA
/// directory holds a handful; this bounds start-up on a wrong path.
pub const MAX_CAPATH_FILES: usize = 4096;

/// Whether and how a listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Do not request a client certificate.
    None,
    /// Request one, do not require it, accept self-signed ones (Gemini).
    #[default]
    Optional,
    /// Require a certificate that chains to the configured CA; others are
    /// refused in the handshake (only your own devices get in).
    RequireAuthorised,
}

/// Loads CA certificates from a PEM file and/or a directory of PEM or DER
/// files (`--tls-cafile`, `--tls-capath`). Unparsable files in the directory
/// are skipped (OpenSSL's hash-link directories hold other things); an empty
/// result is an error naming the path.
pub fn load_ca_roots(
    cafile: Option<&Path>,
    capath: Option<&Path>,
) -> Result<RootCertStore, CertError> {
    let mut roots = RootCertStore::empty();
    if let Some(file) = cafile {
        for der in load_chain(file)? {
            roots
                .add(der)
                .map_err(|e| CertError::Malformed(file.to_path_buf(), e.to_string()))?;
        }
    }
    if let Some(dir) = capath {
        let entries = fs::read_dir(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CertError::Missing(dir.to_path_buf()),
            _ => CertError::Unreadable(dir.to_path_buf(), e),
        })?;
        let before = roots.len();
        for entry in entries.take(MAX_CAPATH_FILES).flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            match load_chain(&path) {
                Ok(chain) => {
                    roots.add_parsable_certificates(chain);
                }
                // Not PEM: try the whole file as one DER certificate.
                Err(CertError::NoCertificate(_)) | Err(CertError::Malformed(..)) => {
                    if let Ok(bytes) = fs::read(&path) {
                        let _ = roots.add(CertificateDer::from(bytes));
                    }
                }
                Err(_) => {}
            }
        }
        if roots.len() == before {
            return Err(CertError::NoCertificate(dir.to_path_buf()));
        }
    }
    Ok(roots)
}

/// Builds the CA check used both to compute `authorised` and, in
/// [`ClientAuth::RequireAuthorised`] mode, to refuse handshakes.
pub fn ca_verifier(
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
    WebPkiClientVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))
}

/// True when `chain` (end-entity first) chains to the CA behind `ca`.
pub fn is_authorised(ca: &dyn ClientCertVerifier, chain: &[CertificateDer<'_>]) -> bool {
    match chain.split_first() {
        Some((end_entity, intermediates)) => ca
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok(),
        None => false,
    }
}

/// The Gemini verifier: requests a client certificate, does not require
/// one, accepts any well-formed certificate, verifies handshake signatures.
#[derive(Debug)]
pub struct GeminiClientVerifier {
    provider: Arc<CryptoProvider>,
    /// Whether a certificate is mandatory (used for self-signed-accepting
    /// listeners that still insist on some certificate).
    mandatory: bool,
}

impl GeminiClientVerifier {
    /// A verifier that asks for, but does not require, a certificate.
    pub fn optional(provider: Arc<CryptoProvider>) -> Self {
        GeminiClientVerifier {
            provider,
            mandatory: false,
        }
    }
}

impl ClientCertVerifier for GeminiClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // An empty list tells clients any certificate will do.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match X509Certificate::from_der(end_entity) {
            Ok(([], _)) => Ok(ClientCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::certs::tests::TempDir;
    use super::super::provider::provider;
    use super::*;

    fn ca() -> (String, rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        (issuer.pem(), issuer)
    }

    #[test]
    fn loads_cafile_and_capath() {
        let dir = TempDir::new("ca");
        let (pem, issuer) = ca();
        let file = dir.0.join("ca.pem");
        fs::write(&file, &pem).unwrap();
        assert_eq!(load_ca_roots(Some(&file), None).unwrap().len(), 1);

        let cadir = dir.0.join("capath");
        fs::create_dir(&cadir).unwrap();
        fs::write(cadir.join("a.pem"), &pem).unwrap();
        let (_, other) = ca();
        fs::write(cadir.join("b.der"), other.der().as_ref()).unwrap();
        fs::write(cadir.join("README"), "not a cert").unwrap();
        assert_eq!(load_ca_roots(None, Some(&cadir)).unwrap().len(), 2);
        let _ = issuer;

        let e = load_ca_roots(None, Some(&dir.0.join("none"))).unwrap_err();
        assert!(matches!(e, CertError::Missing(_)));
        let empty = dir.0.join("empty");
        fs::create_dir(&empty).unwrap();
        let e = load_ca_roots(None, Some(&empty)).unwrap_err();
        assert!(matches!(e, CertError::NoCertificate(_)));
    }

    #[test]
    fn gemini_verifier_accepts_well_formed_only() {
        let v = GeminiClientVerifier::optional(provider());
        assert!(v.offer_client_auth());
        assert!(!v.client_auth_mandatory());
        assert!(v.root_hint_subjects().is_empty());
        assert!(!v.supported_verify_schemes().is_empty());
        let ck = rcgen::generate_simple_self_signed(vec!["me".to_string()]).unwrap();
        assert!(v
            .verify_client_cert(ck.cert.der(), &[], UnixTime::now())
            .is_ok());
        let garbage = CertificateDer::from(vec![0x30, 0x03, 1, 2, 3]);
        assert!(v
            .verify_client_cert(&garbage, &[], UnixTime::now())
            .is_err());
    }

    #[test]
    fn authorised_only_when_chaining_to_ca() {
        let (_, issuer) = ca();
        let mut roots = RootCertStore::empty();
        roots.add(issuer.der().clone()).unwrap();
        let verifier = ca_verifier(Arc::new(roots), provider()).unwrap();

        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "device");
        params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let key = rcgen::KeyPair::generate().unwrap();
        let signed = params.signed_by(&key, &issuer).unwrap();
        assert!(is_authorised(&*verifier, &[signed.der().clone()]));

        let selfsigned = params.self_signed(&key).unwrap();
        assert!(!is_authorised(&*verifier, &[selfsigned.der().clone()]));
        assert!(!is_authorised(&*verifier, &[]));
    }
}
