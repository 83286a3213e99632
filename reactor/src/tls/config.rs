//! Server and client TLS configurations: built once (per listener, or per
//! `connect` target kind), shared by every session through `Arc`s, and safe
//! to share between worker threads.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::client_auth::{ca_verifier, ClientAuth, GeminiClientVerifier};
use super::error::TlsError;
use super::provider::{provider, ticketer};
use super::sni::{CertStore, SniResolver};

/// TLS 1.2 session-id cache entries per server config: enough for the
/// returning clients of a busy capsule, bounded so a flood of new clients
/// cannot grow it (each entry is a few hundred bytes).
pub const SESSION_CACHE_SIZE: usize = 4096;

/// TLS 1.3 tickets sent after each full handshake. rustls's default is 2 so
/// a browser can open two resumed connections; Gemini clients open one at a
/// time and get a fresh ticket on each resumption.
pub const TLS13_TICKETS: usize = 2;

/// Which protocol versions a config allows. TLS 1.0/1.1 are never offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.3 preferred, TLS 1.2 allowed (the default).
    #[default]
    Tls12And13,
    /// TLS 1.3 only.
    Tls13Only,
    /// TLS 1.2 only (tests, old peers).
    Tls12Only,
}

impl TlsVersions {
    fn list(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static V13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        static V12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
        match self {
            TlsVersions::Tls12And13 => &BOTH,
            TlsVersions::Tls13Only => &V13,
            TlsVersions::Tls12Only => &V12,
        }
    }
}

/// A server TLS configuration for one listener. Cheap to clone; share one
/// between workers so session tickets resume across them.
#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    pub(crate) rustls: Arc<ServerConfig>,
    /// CA check for `authorised`; `None` when no CA is configured.
    pub(crate) ca: Option<Arc<dyn ClientCertVerifier>>,
    certs: CertStore,
}

impl ServerTlsConfig {
    /// Starts a configuration serving the certificates in `certs`.
    pub fn builder(certs: CertStore) -> ServerTlsConfigBuilder {
        ServerTlsConfigBuilder {
            certs,
            client_auth: ClientAuth::Optional,
            ca_roots: None,
            alpn: Vec::new(),
            session_cache_size: SESSION_CACHE_SIZE,
            tickets: true,
            versions: TlsVersions::default(),
        }
    }

    /// The certificate store: call [`CertStore::reload`] on it (SIGHUP).
    pub fn certs(&self) -> &CertStore {
        &self.certs
    }

    /// The underlying rustls configuration.
    pub fn rustls(&self) -> &Arc<ServerConfig> {
        &self.rustls
    }
}

/// Builder for [`ServerTlsConfig`].
#[derive(Debug)]
pub struct ServerTlsConfigBuilder {
    certs: CertStore,
    client_auth: ClientAuth,
    ca_roots: Option<RootCertStore>,
    alpn: Vec<Vec<u8>>,
    session_cache_size: usize,
    tickets: bool,
    versions: TlsVersions,
}

impl ServerTlsConfigBuilder {
    /// Client-certificate mode (default [`ClientAuth::Optional`]).
    pub fn client_auth(mut self, mode: ClientAuth) -> Self {
        self.client_auth = mode;
        self
    }

    /// CA certificates (from [`super::load_ca_roots`]): client certificates
    /// chaining to them are reported `authorised`.
    pub fn ca_roots(mut self, roots: RootCertStore) -> Self {
        self.ca_roots = Some(roots);
        self
    }

    /// ALPN protocols offered, in preference order (empty: no ALPN).
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// TLS 1.2 session-id cache size (0 disables it).
    pub fn session_cache_size(mut self, entries: usize) -> Self {
        self.session_cache_size = entries;
        self
    }

    /// Whether to issue TLS 1.3 session tickets (default on).
    pub fn tickets(mut self, on: bool) -> Self {
        self.tickets = on;
        self
    }

    /// Allowed protocol versions (default TLS 1.2 and 1.3).
    pub fn versions(mut self, versions: TlsVersions) -> Self {
        self.versions = versions;
        self
    }

    /// Builds the configuration. Fails when the store is empty, when
    /// [`ClientAuth::RequireAuthorised`] has no CA, or when rustls refuses
    /// the settings.
    pub fn build(self) -> Result<ServerTlsConfig, TlsError> {
        let provider = provider();
        if self.certs.is_empty() {
            return Err(TlsError::Config(rustls::Error::General(
                "no server certificate configured".into(),
            )));
        }
        let ca = match self.ca_roots {
            Some(roots) if !roots.is_empty() => {
                Some(ca_verifier(Arc::new(roots), provider.clone()).map_err(TlsError::Config)?)
            }
            _ => None,
        };
        let verifier: Arc<dyn ClientCertVerifier> = match self.client_auth {
            ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
            ClientAuth::Optional => Arc::new(GeminiClientVerifier::optional(provider.clone())),
            ClientAuth::RequireAuthorised => match &ca {
                Some(ca) => ca.clone(),
                None => {
                    return Err(TlsError::Config(rustls::Error::General(
                        "client certificates required but no CA configured".into(),
                    )));
                }
            },
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions.list())
            .map_err(TlsError::Config)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(SniResolver(self.certs.clone())));
        config.alpn_protocols = self.alpn;
        // Our suite order (cheapest first), not the client's.
        config.ignore_client_order = true;
        config.session_storage = ServerSessionMemoryCache::new(self.session_cache_size);
        if self.tickets {
            config.ticketer = ticketer().map_err(TlsError::Config)?;
            config.send_tls13_tickets = TLS13_TICKETS;
        } else {
            config.send_tls13_tickets = 0;
        }
        Ok(ServerTlsConfig {
            rustls: Arc::new(config),
            ca,
            certs: self.certs,
        })
    }
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone)]
pub enum ClientVerify {
    /// Verify the chain against these roots and the host name (browsers'
    /// behaviour).
    WebPki(Arc<RootCertStore>),
    /// Accept any well-formed certificate; the handshake signature is still
    /// checked, so the server holds the key of the certificate it sent. For
    /// trust-on-first-use (pin [`super::PeerCertInfo::hash`]) and benchmarks.
    NoVerify,
}

/// A client TLS configuration for `reactor.connect`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClientTlsConfig {
    pub(crate) rustls: Arc<ClientConfig>,
    /// True when server certificates are verified (reported as
    /// `authorised`).
    pub(crate) verifies: bool,
}

/// Builder for [`ClientTlsConfig`].
#[derive(Debug)]
pub struct ClientTlsConfigBuilder {
    verify: ClientVerify,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: Vec<Vec<u8>>,
    resumption: bool,
    versions: TlsVersions,
}

impl ClientTlsConfig {
    /// Starts a client configuration with the given verification mode.
    pub fn builder(verify: ClientVerify) -> ClientTlsConfigBuilder {
        ClientTlsConfigBuilder {
            verify,
            client_cert: None,
            alpn: Vec::new(),
            resumption: true,
            versions: TlsVersions::default(),
        }
    }

    /// The underlying rustls configuration.
    pub fn rustls(&self) -> &Arc<ClientConfig> {
        &self.rustls
    }
}

impl ClientTlsConfigBuilder {
    /// Presents this certificate chain and key when the server asks.
    pub fn client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some((chain, key));
        self
    }

    /// ALPN protocols offered, in preference order.
    pub fn alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Whether to cache sessions and resume (default on; benchmarks of full
    /// handshakes turn it off).
    pub fn resumption(mut self, on: bool) -> Self {
        self.resumption = on;
        self
    }

    /// Allowed protocol versions (default TLS 1.2 and 1.3).
    pub fn versions(mut self, versions: TlsVersions) -> Self {
        self.versions = versions;
        self
    }

    /// Builds the configuration; fails when rustls refuses the client key.
    pub fn build(self) -> Result<ClientTlsConfig, TlsError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(self.versions.list())
            .map_err(TlsError::Config)?;
        let (builder, verifies) = match self.verify {
            ClientVerify::WebPki(roots) => (builder.with_root_certificates(roots), true),
            ClientVerify::NoVerify => (
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(NoVerify { provider })),
                false,
            ),
        };
        let mut config = match self.client_cert {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::Config)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn;
        if !self.resumption {
            config.resumption = Resumption::disabled();
        }
        Ok(ClientTlsConfig {
            rustls: Arc::new(config),
            verifies,
        })
    }
}

/// Accepts any well-formed server certificate, checks handshake signatures.
#[derive(Debug)]
struct NoVerify {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match X509Certificate::from_der(end_entity) {
            Ok(([], _)) => Ok(ServerCertVerified::assertion()),
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
