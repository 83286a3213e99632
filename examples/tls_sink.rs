//! A TLS listener that closes each connection right after its handshake:
//! the server side of the TLS handshake benchmark (`cargo bench --bench
//! tls`). Not part of the product.
//!
//! ```text
//! cargo run --release --example tls_sink -- 127.0.0.1:0 ecdsa   # or ed25519
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use torsion_reactor::tls::{
    self, CertSource, CertStore, ClientAuth, KeyAlgorithm, ServerTlsConfig,
};
use torsion_reactor::{ListenOptions, PeerInfo, Protocol, Reactor, Transport};

/// Closes (with close_notify) as soon as the handshake is done.
struct CloseAfterHandshake;

impl Protocol for CloseAfterHandshake {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        t.close();
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let alg = match args.next().as_deref() {
        Some("ed25519") => KeyAlgorithm::Ed25519,
        _ => KeyAlgorithm::EcdsaP256,
    };
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let (cert, key) = tls::certs::generate_pem(&["bench.test".to_string()], alg, now)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
    let ck = tls::certs::certified_key(
        chain,
        key,
        &tls::provider::provider(),
        "c".as_ref(),
        "k".as_ref(),
    )?;
    let store = CertStore::new();
    store.add_default(&["bench.test"], CertSource::Static(ck))?;
    // No client certificates and no tickets: every handshake is a full one.
    let config = ServerTlsConfig::builder(store)
        .client_auth(ClientAuth::None)
        .tickets(false)
        .session_cache_size(0)
        .build()?;
    let mut reactor = Reactor::new()?;
    let options = ListenOptions {
        tls: Some(config),
        ..ListenOptions::default()
    };
    let id = reactor.listen_with(
        addr,
        |_: &PeerInfo| Box::new(CloseAfterHandshake) as Box<dyn Protocol>,
        options,
    )?;
    eprintln!(
        "tls_sink listening on {}",
        reactor.local_addr(id).ok_or("no address")?
    );
    reactor.stop_on_signals()?;
    reactor.run()?;
    Ok(())
}
