//! In-memory end-to-end tests: a client session and a server session
//! exchanging bytes through `Vec`s, no sockets.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::certs::tests::{TempDir, EC_CERT, EC_SEC1_KEY, RSA_CERT, RSA_PKCS1_KEY};
use super::certs::{fingerprint, generate_pem, unix_now, KeyAlgorithm};
use super::*;

/// Moves pending ciphertext from `from` to `to`, draining plaintext into
/// `sink`, feeding `chunk` bytes at a time. Returns the bytes moved.
fn transfer_chunked(
    from: &mut TlsSession,
    to: &mut TlsSession,
    sink: &mut Vec<u8>,
    chunk: usize,
) -> Result<usize, TlsError> {
    let mut wire = Vec::new();
    from.write_ciphertext(&mut wire).unwrap();
    let len = wire.len();
    let mut scratch = [0u8; 4096];
    for piece in wire.chunks_mut(chunk) {
        let mut rest = piece;
        loop {
            let used = to.feed_ciphertext(rest)?;
            rest = &mut rest[used..];
            loop {
                let n = to.read_plaintext(&mut scratch);
                if n == 0 {
                    break;
                }
                sink.extend_from_slice(&scratch[..n]);
            }
            if rest.is_empty() {
                break;
            }
        }
    }
    Ok(len)
}

fn transfer(
    from: &mut TlsSession,
    to: &mut TlsSession,
    sink: &mut Vec<u8>,
) -> Result<usize, TlsError> {
    transfer_chunked(from, to, sink, usize::MAX)
}

/// Runs the handshake to completion (or the first error).
fn handshake(client: &mut TlsSession, server: &mut TlsSession) -> Result<(), TlsError> {
    let mut junk = Vec::new();
    for _ in 0..10 {
        let a = transfer(client, server, &mut junk)?;
        let b = transfer(server, client, &mut junk)?;
        if a == 0 && b == 0 && !client.is_handshaking() && !server.is_handshaking() {
            assert!(junk.is_empty());
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn generated_store(name: &str) -> (CertStore, Arc<rustls::sign::CertifiedKey>) {
    let (c, k) = generate_pem(&[name.to_string()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(c.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap();
    let ck = certs::certified_key(
        chain,
        key,
        &provider::provider(),
        &PathBuf::from("c"),
        &PathBuf::from("k"),
    )
    .unwrap();
    let store = CertStore::new();
    store.add(&[name], CertSource::Static(ck.clone())).unwrap();
    (store, ck)
}

fn no_verify_client() -> ClientTlsConfig {
    ClientTlsConfig::builder(ClientVerify::NoVerify)
        .build()
        .unwrap()
}

fn echo_roundtrip(client: &mut TlsSession, server: &mut TlsSession) {
    let mut got = Vec::new();
    assert_eq!(client.write_plaintext(b"gemini://a.test/\r\n"), 18);
    transfer(client, server, &mut got).unwrap();
    assert_eq!(got, b"gemini://a.test/\r\n");
    let mut back = Vec::new();
    server.write_plaintext(b"20 text/gemini\r\nhello");
    transfer(server, client, &mut back).unwrap();
    assert_eq!(back, b"20 text/gemini\r\nhello");
}

#[test]
fn tls13_and_tls12_handshakes_with_generated_cert() {
    let (store, ck) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    for (versions, name, iana) in [
        // The server prefers the SHA-256 suite (see provider.rs).
        (TlsVersions::Tls12And13, "TLSv1.3", "TLS_AES_128_GCM_SHA256"),
        (
            TlsVersions::Tls12Only,
            "TLSv1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
    ] {
        let client_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
            .versions(versions)
            .build()
            .unwrap();
        let mut c = TlsSession::client(&client_cfg, "a.test").unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        assert!(c.has_pending_ciphertext(), "ClientHello queued at once");
        assert!(s.info().is_none());
        assert!(!s.take_handshake_completed());
        handshake(&mut c, &mut s).unwrap();
        assert!(s.take_handshake_completed());
        assert!(!s.take_handshake_completed());
        let si = s.info().unwrap();
        let ci = c.info().unwrap();
        assert_eq!(si.version, name);
        assert_eq!(ci.version, name);
        assert_eq!(si.cipher_iana, iana);
        assert_eq!(si.sni.as_deref(), Some("a.test"));
        assert_eq!(ci.sni.as_deref(), Some("a.test"));
        assert!(si.peer_cert.is_none());
        assert!(!si.resumed);
        let server_cert = ci.peer_cert.unwrap();
        assert_eq!(server_cert.hash, fingerprint(&ck.cert[0]));
        assert!(!server_cert.authorised, "NoVerify does not authorise");
        echo_roundtrip(&mut c, &mut s);
    }
}

#[test]
fn handshakes_with_loaded_pkcs8_pkcs1_sec1() {
    let dir = TempDir::new("sess-load");
    let (c8, k8) = generate_pem(&["p8.test".into()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
    for (i, (cert, key, host)) in [
        (c8.as_str(), k8.as_str(), "p8.test"),
        (RSA_CERT, RSA_PKCS1_KEY, "rsa.test"),
        (EC_CERT, EC_SEC1_KEY, "ec.test"),
    ]
    .into_iter()
    .enumerate()
    {
        let cp = dir.0.join(format!("{i}.crt"));
        let kp = dir.0.join(format!("{i}.key"));
        fs::write(&cp, cert).unwrap();
        fs::write(&kp, key).unwrap();
        let store = CertStore::new();
        store
            .add(
                &[host],
                CertSource::Files {
                    cert: cp.clone(),
                    key: kp,
                },
            )
            .unwrap();
        let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
        // Verify properly this time: the certificate is its own root.
        let mut roots = RootCertStore::empty();
        roots
            .add(certs::load_chain(&cp).unwrap().remove(0))
            .unwrap();
        let client_cfg = ClientTlsConfig::builder(ClientVerify::WebPki(Arc::new(roots)))
            .build()
            .unwrap();
        let mut c = TlsSession::client(&client_cfg, host).unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        handshake(&mut c, &mut s).unwrap();
        assert!(c.info().unwrap().peer_cert.unwrap().authorised);
        echo_roundtrip(&mut c, &mut s);
    }
}

#[test]
fn webpki_client_refuses_wrong_name() {
    let (store, ck) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ck.cert[0].clone()).unwrap();
    let client_cfg = ClientTlsConfig::builder(ClientVerify::WebPki(Arc::new(roots)))
        .build()
        .unwrap();
    let mut c = TlsSession::client(&client_cfg, "other.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    let mut junk = Vec::new();
    transfer(&mut c, &mut s, &mut junk).unwrap();
    let err = transfer(&mut s, &mut c, &mut junk).unwrap_err();
    assert!(err.is_handshake_failure(), "{err}");
    // The client queued an alert for the server, which reports it.
    assert!(c.has_pending_ciphertext());
    let err = transfer(&mut c, &mut s, &mut junk).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::PeerAlert {
                during_handshake: true,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn sni_selects_certificate_and_ip_sends_none() {
    let dir = TempDir::new("sess-sni");
    let store = CertStore::new();
    let mut fps = Vec::new();
    for name in ["a.test", "b.test"] {
        let (c, k) =
            generate_pem(&[name.to_string()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
        let cert = dir.0.join(format!("{name}.crt"));
        let key = dir.0.join(format!("{name}.key"));
        fs::write(&cert, c).unwrap();
        fs::write(&key, k).unwrap();
        fps.push(store.add(&[name], CertSource::Files { cert, key }).unwrap());
    }
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let client_cfg = no_verify_client();
    for (host, want, sni) in [
        ("B.TEST", &fps[1], Some("b.test")),
        ("a.test", &fps[0], Some("a.test")),
        ("127.0.0.1", &fps[0], None),
        ("[::1]", &fps[0], None),
        ("unknown.test", &fps[0], Some("unknown.test")),
    ] {
        let mut c = TlsSession::client(&client_cfg, host).unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        handshake(&mut c, &mut s).unwrap();
        assert_eq!(&c.info().unwrap().peer_cert.unwrap().hash, want, "{host}");
        assert_eq!(s.info().unwrap().sni.as_deref(), sni, "{host}");
    }
    assert!(matches!(
        TlsSession::client(&client_cfg, "bad name!"),
        Err(TlsError::InvalidServerName(_))
    ));
}

#[test]
fn garbage_instead_of_client_hello_is_an_error_not_a_panic() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let inputs: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
        b"\x16\x03\x01\xff\xff",
        &[0u8; 300],
        b"\x15\x03\x03\x00\x02\x02\x28",
    ];
    for input in inputs {
        let mut s = TlsSession::server(&server_cfg).unwrap();
        match s.feed_ciphertext(&mut input.to_vec()) {
            Err(e) => {
                assert!(e.is_handshake_failure(), "{e}");
                assert!(!e.is_local());
                // The alert rustls queued is still there to be written.
                let mut out = Vec::new();
                s.write_ciphertext(&mut out).unwrap();
                assert!(out.is_empty() || out[0] == 0x15, "{out:?}");
            }
            // A record header promising more bytes is partial, not an error.
            Ok(n) => {
                assert_eq!(n, input.len());
                assert!(s.is_handshaking());
            }
        }
    }
    // Pseudo-random garbage of many lengths never panics.
    let mut x: u32 = 0x1234_5678;
    for len in 0..200usize {
        let mut bytes = vec![0u8; len];
        for b in &mut bytes {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        let mut s = TlsSession::server(&server_cfg).unwrap();
        let _ = s.feed_ciphertext(&mut bytes);
        let _ = s.write_ciphertext(&mut Vec::new());
    }
}

#[test]
fn byte_at_a_time_feeding_matches_whole() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let client_cfg = no_verify_client();
    let mut c = TlsSession::client(&client_cfg, "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    let mut junk = Vec::new();
    for _ in 0..4 {
        transfer_chunked(&mut c, &mut s, &mut junk, 1).unwrap();
        transfer_chunked(&mut s, &mut c, &mut junk, 1).unwrap();
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    let msg: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    c.write_plaintext(&msg);
    let mut got = Vec::new();
    transfer_chunked(&mut c, &mut s, &mut got, 1).unwrap();
    assert_eq!(got, msg);
    let mut got2 = Vec::new();
    c.write_plaintext(&msg);
    transfer_chunked(&mut c, &mut s, &mut got2, 7).unwrap();
    assert_eq!(got2, msg);
}

#[test]
fn large_feed_stops_when_plaintext_is_full_and_resumes() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let mut c = TlsSession::client(&no_verify_client(), "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    handshake(&mut c, &mut s).unwrap();
    let msg = vec![7u8; 200_000];
    assert_eq!(c.write_plaintext(&msg), msg.len());
    let mut wire = Vec::new();
    c.write_ciphertext(&mut wire).unwrap();
    // Not draining: the session stops once rustls's plaintext buffer is full.
    let first = s.feed_ciphertext(&mut wire).unwrap();
    assert!(first < wire.len());
    assert_eq!(s.feed_ciphertext(&mut wire[first..]).unwrap(), 0);
    let mut scratch = vec![0u8; 65536];
    let mut total = 0;
    let mut rest = &mut wire[first..];
    loop {
        loop {
            let n = s.read_plaintext(&mut scratch);
            if n == 0 {
                break;
            }
            total += n;
        }
        if rest.is_empty() {
            break;
        }
        let used = s.feed_ciphertext(rest).unwrap();
        rest = &mut rest[used..];
    }
    assert_eq!(total, msg.len());
}

#[test]
fn pending_len_counts_plaintext_queued_before_and_after_handshake() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let mut c = TlsSession::client(&no_verify_client(), "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    assert_eq!(s.pending_len(), 0);
    // A server protocol may write before the handshake is done.
    assert_eq!(s.write_plaintext(&[1u8; 100_000]), 100_000);
    assert!(s.pending_len() >= 100_000);
    let mut got = Vec::new();
    for _ in 0..4 {
        transfer(&mut c, &mut s, &mut got).unwrap();
        transfer(&mut s, &mut c, &mut got).unwrap();
    }
    assert_eq!(got.len(), 100_000);
    assert_eq!(s.pending_len(), 0);
    assert!(!s.has_pending_ciphertext());

    // After the handshake: the count falls as the socket takes bytes.
    s.write_plaintext(&[2u8; 50_000]);
    assert!(s.pending_len() >= 50_000);
    let mut small = LimitedWriter {
        buf: Vec::new(),
        room: 20_000,
    };
    let n = s.write_ciphertext(&mut small).unwrap();
    assert_eq!(n, 20_000);
    assert!(s.has_pending_ciphertext());
    let p = s.pending_len();
    assert!((29_000..=31_000).contains(&p), "{p}");
    let mut full = LimitedWriter {
        buf: Vec::new(),
        room: 0,
    };
    let e = s.write_ciphertext(&mut full).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    s.write_ciphertext(&mut Vec::new()).unwrap();
    assert_eq!(s.pending_len(), 0);
}

/// A socket that takes `room` bytes then would block.
struct LimitedWriter {
    buf: Vec<u8>,
    room: usize,
}

impl std::io::Write for LimitedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = data.len().min(self.room);
        self.room -= n;
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn close_notify_is_seen_by_the_peer() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let mut c = TlsSession::client(&no_verify_client(), "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    handshake(&mut c, &mut s).unwrap();
    s.write_plaintext(b"bye");
    s.send_close_notify();
    assert_eq!(s.write_plaintext(b"dropped"), 0);
    assert!(!c.peer_closed());
    let mut got = Vec::new();
    transfer(&mut s, &mut c, &mut got).unwrap();
    assert_eq!(got, b"bye");
    assert!(c.peer_closed());
    // Bytes after close_notify are consumed and ignored.
    assert_eq!(
        c.feed_ciphertext(&mut b"trailing junk".to_vec()).unwrap(),
        13
    );
}

#[test]
fn alpn_is_negotiated() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store)
        .alpn(&[b"http/1.1", b"gemini"])
        .build()
        .unwrap();
    let client_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
        .alpn(&[b"gemini"])
        .build()
        .unwrap();
    let mut c = TlsSession::client(&client_cfg, "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(s.info().unwrap().alpn.as_deref(), Some(&b"gemini"[..]));
    assert_eq!(c.info().unwrap().alpn.as_deref(), Some(&b"gemini"[..]));
}

#[test]
fn sessions_resume_with_tls13_tickets_and_tls12_ids() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let client_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
            .versions(versions)
            .build()
            .unwrap();
        let mut kinds = Vec::new();
        for _ in 0..3 {
            let mut c = TlsSession::client(&client_cfg, "a.test").unwrap();
            let mut s = TlsSession::server(&server_cfg).unwrap();
            handshake(&mut c, &mut s).unwrap();
            // TLS 1.3 tickets arrive after the handshake, with the first data.
            echo_roundtrip(&mut c, &mut s);
            kinds.push(s.info().unwrap().resumed);
        }
        assert_eq!(kinds, [false, true, true], "{versions:?}");
    }
}

/// A certificate chain and its key, as a client presents them.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn ca_and_client_certs() -> (RootCertStore, Identity, Identity) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();

    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "device");
    let key = rcgen::KeyPair::generate().unwrap();
    let signed = params.signed_by(&key, &ca).unwrap();
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let selfsigned = params.self_signed(&key).unwrap();
    (
        roots,
        (vec![signed.der().clone()], key_der.clone_key()),
        (vec![selfsigned.der().clone()], key_der),
    )
}

fn dup(c: &Identity) -> Identity {
    (c.0.clone(), c.1.clone_key())
}

fn handshake_with_client_cert(
    server_cfg: &ServerTlsConfig,
    cert: Option<Identity>,
) -> Result<(TlsSession, TlsSession), TlsError> {
    let mut b = ClientTlsConfig::builder(ClientVerify::NoVerify);
    if let Some((chain, key)) = cert {
        b = b.client_cert(chain, key);
    }
    let client_cfg = b.build().unwrap();
    let mut c = TlsSession::client(&client_cfg, "a.test").unwrap();
    let mut s = TlsSession::server(server_cfg).unwrap();
    handshake(&mut c, &mut s)?;
    Ok((c, s))
}

#[test]
fn client_cert_facts_match_what_was_generated() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[
        0x01, 0xAB, 0xCD, 0xEF, 0x42,
    ]));
    params.not_before = rcgen::date_time_ymd(2025, 1, 2);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let der = cert.der().clone();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let client_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
            .versions(versions)
            .client_cert(vec![der.clone()], key_der.clone_key())
            .build()
            .unwrap();
        let mut c = TlsSession::client(&client_cfg, "a.test").unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        handshake(&mut c, &mut s).unwrap();
        let info = s.info().unwrap().peer_cert.expect("client cert");
        assert_eq!(info.hash, fingerprint(&der));
        assert_eq!(info.sha256, certs::sha256(&der));
        use base64::Engine;
        assert_eq!(
            info.hash_b64,
            base64::engine::general_purpose::URL_SAFE.encode(certs::sha256(&der))
        );
        assert_eq!(info.common_name, "alice");
        assert_eq!(info.subject, "CN=alice");
        assert_eq!(info.not_before, "2025-01-02T00:00:00Z");
        assert_eq!(info.not_after, "2099-12-31T00:00:00Z");
        assert_eq!(info.serial_hex, "1ABCDEF42");
        assert_eq!(
            info.serial,
            u64::from_str_radix("1ABCDEF42", 16).unwrap().to_string()
        );
        assert!(info.valid_now);
        assert!(!info.authorised, "no CA configured");
    }
}

#[test]
fn expired_self_signed_client_cert_is_accepted_and_flagged() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let (_, s) =
        handshake_with_client_cert(&server_cfg, Some((vec![cert.der().clone()], key_der))).unwrap();
    let info = s.info().unwrap().peer_cert.unwrap();
    assert!(!info.valid_now);
    assert_eq!(info.common_name, "rcgen self signed cert");
}

#[test]
fn authorised_reflects_the_ca_and_require_mode_refuses_others() {
    let (roots, signed, selfsigned) = ca_and_client_certs();
    let (store, _) = generated_store("a.test");
    let optional = ServerTlsConfig::builder(store.clone())
        .ca_roots(roots.clone())
        .build()
        .unwrap();
    let (_, s) = handshake_with_client_cert(&optional, Some(dup(&signed))).unwrap();
    assert!(s.info().unwrap().peer_cert.unwrap().authorised);
    let (_, s) = handshake_with_client_cert(&optional, Some(dup(&selfsigned))).unwrap();
    let info = s.info().unwrap().peer_cert.unwrap();
    assert!(!info.authorised);
    assert_eq!(info.common_name, "device");
    let (_, s) = handshake_with_client_cert(&optional, None).unwrap();
    assert!(s.info().unwrap().peer_cert.is_none());

    let required = ServerTlsConfig::builder(store.clone())
        .client_auth(ClientAuth::RequireAuthorised)
        .ca_roots(roots)
        .build()
        .unwrap();
    let (_, s) = handshake_with_client_cert(&required, Some(signed)).unwrap();
    assert!(s.info().unwrap().peer_cert.unwrap().authorised);
    let err = handshake_with_client_cert(&required, Some(selfsigned)).unwrap_err();
    assert!(err.is_handshake_failure(), "{err}");
    assert!(handshake_with_client_cert(&required, None).is_err());

    // Require without a CA is a configuration error.
    let e = ServerTlsConfig::builder(store)
        .client_auth(ClientAuth::RequireAuthorised)
        .build()
        .unwrap_err();
    assert!(e.is_local());
}

#[test]
fn client_auth_none_does_not_ask() {
    let (_, _, selfsigned) = ca_and_client_certs();
    let (store, _) = generated_store("a.test");
    let cfg = ServerTlsConfig::builder(store)
        .client_auth(ClientAuth::None)
        .build()
        .unwrap();
    let (_, s) = handshake_with_client_cert(&cfg, Some(selfsigned)).unwrap();
    assert!(s.info().unwrap().peer_cert.is_none());
}

#[test]
fn reload_serves_new_cert_to_new_sessions_and_old_session_keeps_working() {
    let dir = TempDir::new("sess-reload");
    let cert = dir.0.join("c.pem");
    let key = dir.0.join("k.pem");
    let (c1, k1) = generate_pem(&["a.test".into()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
    fs::write(&cert, &c1).unwrap();
    fs::write(&key, &k1).unwrap();
    let store = CertStore::new();
    let fp1 = store
        .add(
            &["a.test"],
            CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
        )
        .unwrap();
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let client_cfg = no_verify_client();
    let mut old_c = TlsSession::client(&client_cfg, "a.test").unwrap();
    let mut old_s = TlsSession::server(&server_cfg).unwrap();
    handshake(&mut old_c, &mut old_s).unwrap();

    let (c2, k2) = generate_pem(&["a.test".into()], KeyAlgorithm::EcdsaP256, unix_now()).unwrap();
    fs::write(&cert, &c2).unwrap();
    fs::write(&key, &k2).unwrap();
    assert_eq!(server_cfg.certs().reload().unwrap(), 1);

    let fresh = ClientTlsConfig::builder(ClientVerify::NoVerify)
        .resumption(false)
        .build()
        .unwrap();
    let mut c = TlsSession::client(&fresh, "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    handshake(&mut c, &mut s).unwrap();
    let fp2 = c.info().unwrap().peer_cert.unwrap().hash;
    assert_ne!(fp1, fp2);
    echo_roundtrip(&mut old_c, &mut old_s);

    // A bad new key keeps the current certificate.
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert!(server_cfg.certs().reload().is_err());
    let mut c = TlsSession::client(&fresh, "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    handshake(&mut c, &mut s).unwrap();
    assert_eq!(c.info().unwrap().peer_cert.unwrap().hash, fp2);
}

#[test]
fn empty_store_is_a_config_error() {
    let e = ServerTlsConfig::builder(CertStore::new())
        .build()
        .unwrap_err();
    assert!(e.is_local());
}

#[test]
fn tls11_client_hello_is_refused_with_an_alert() {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    // ClientHello: legacy version 3.2 (TLS 1.1), no supported_versions.
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x09]); // ECDHE_ECDSA_AES_128_CBC_SHA
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut hs = vec![0x01, 0x00, 0x00, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, hs.len() as u8];
    record.extend_from_slice(&hs);
    let mut s = TlsSession::server(&server_cfg).unwrap();
    let err = s.feed_ciphertext(&mut record).unwrap_err();
    assert!(err.is_handshake_failure(), "{err}");
    let mut out = Vec::new();
    s.write_ciphertext(&mut out).unwrap();
    assert_eq!(out.first(), Some(&0x15), "alert record queued: {out:?}");
}

// ----- the unbuffered paths: partial records, pauses, in-place input -----

/// A handshaken pair over `versions`, with a fresh generated certificate.
fn pair(versions: TlsVersions) -> (TlsSession, TlsSession) {
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let client_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
        .versions(versions)
        .build()
        .unwrap();
    let mut c = TlsSession::client(&client_cfg, "a.test").unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    handshake(&mut c, &mut s).unwrap();
    assert!(s.take_handshake_completed() && c.take_handshake_completed());
    (c, s)
}

const BOTH: [TlsVersions; 2] = [TlsVersions::Tls13Only, TlsVersions::Tls12Only];

/// The ciphertext `from` has queued.
fn wire_of(from: &mut TlsSession) -> Vec<u8> {
    let mut wire = Vec::new();
    from.write_ciphertext(&mut wire).unwrap();
    wire
}

/// Feeds `data` as one read and drains all plaintext, as the reactor does.
fn feed_all(to: &mut TlsSession, data: &mut [u8]) -> Result<Vec<u8>, TlsError> {
    let mut got = Vec::new();
    let mut scratch = vec![0u8; 65536];
    let mut rest = data;
    loop {
        let used = to.feed_ciphertext(rest)?;
        rest = &mut rest[used..];
        loop {
            let n = to.read_plaintext(&mut scratch);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&scratch[..n]);
        }
        if rest.is_empty() {
            return Ok(got);
        }
    }
}

#[test]
fn records_split_at_every_byte_deliver_the_same_plaintext() {
    for versions in BOTH {
        let (mut c, mut s) = pair(versions);
        let mut cut = 0;
        loop {
            c.write_plaintext(b"first record");
            c.write_plaintext(b"second");
            let mut wire = wire_of(&mut c);
            let (len, first) = (wire.len(), 5 + usize::from(wire[4]));
            if cut > len {
                break;
            }
            let (a, b) = wire.split_at_mut(cut);
            let mut got = feed_all(&mut s, a).unwrap();
            let want: &[u8] = match cut {
                _ if cut < first => b"",
                _ if cut < len => b"first record",
                _ => b"first recordsecond",
            };
            assert_eq!(got, want, "{versions:?} {cut}");
            // Only an incomplete record is held, and only until it completes.
            let boundary = cut == 0 || cut == first || cut == len;
            assert_eq!(s.held_capacity() > 0, !boundary, "{cut}");
            cut += 1;
            got.extend(feed_all(&mut s, b).unwrap());
            assert_eq!(got, b"first recordsecond", "{versions:?} {cut}");
            assert_eq!(s.held_capacity(), 0, "nothing held between records");
        }
    }
}

#[test]
fn feed_stops_after_each_record_so_a_pause_falls_between_records() {
    for versions in BOTH {
        let (mut c, mut s) = pair(versions);
        for m in [&b"one"[..], b"two", b"three"] {
            c.write_plaintext(m);
        }
        let mut wire = wire_of(&mut c);
        let mut scratch = [0u8; 100];
        let mut rest = &mut wire[..];
        let mut got = Vec::new();
        for want in [&b"one"[..], b"two", b"three"] {
            let used = s.feed_ciphertext(rest).unwrap();
            assert!(used > 0);
            // Paused: plaintext waits; the session takes nothing more.
            assert_eq!(s.feed_ciphertext(&mut rest[used..]).unwrap(), 0);
            rest = &mut rest[used..];
            let n = s.read_plaintext(&mut scratch);
            assert_eq!(&scratch[..n], want, "{versions:?}");
            assert_eq!(s.read_plaintext(&mut scratch), 0);
            got.push(n);
        }
        assert!(rest.is_empty(), "exactly three records");
    }
}

#[test]
fn record_bigger_than_each_read_is_assembled_once() {
    for versions in BOTH {
        let (mut c, mut s) = pair(versions);
        let msg: Vec<u8> = (0..16_384u32).map(|i| (i % 251) as u8).collect();
        c.write_plaintext(&msg);
        let mut wire = wire_of(&mut c);
        assert!(wire.len() > 16_384 && wire.len() < 16_500, "one record");
        let mut got = Vec::new();
        let n = wire.len();
        for (i, piece) in wire.chunks_mut(1000).enumerate() {
            let last = (i + 1) * 1000 >= n;
            let part = feed_all(&mut s, piece).unwrap();
            assert_eq!(part.is_empty(), !last, "plaintext only with the last piece");
            got.extend(part);
        }
        assert_eq!(got, msg);
        assert_eq!(s.held_capacity(), 0);
        // A small reader gets it in pieces, in order.
        c.write_plaintext(&msg);
        let mut wire = wire_of(&mut c);
        assert_eq!(s.feed_ciphertext(&mut wire).unwrap(), wire.len());
        let mut small = [0u8; 1000];
        let mut got = Vec::new();
        loop {
            let n = s.read_plaintext(&mut small);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, msg);
        assert_eq!(s.held_capacity(), 0);
    }
}

#[test]
fn writing_while_a_record_waits_keeps_both_directions_in_order() {
    // The protocol may write (from connection_made) while a record it has
    // not read yet is waiting: the write must not lose or reorder it.
    for versions in BOTH {
        let (mut c, mut s) = pair(versions);
        c.write_plaintext(b"request one");
        c.write_plaintext(b"request two");
        let mut wire = wire_of(&mut c);
        let used = s.feed_ciphertext(&mut wire).unwrap();
        assert!(used < wire.len());
        assert_eq!(s.write_plaintext(b"greeting"), 8);
        let mut got = feed_all(&mut s, &mut wire[used..]).unwrap();
        let mut scratch = [0u8; 64];
        let n = s.read_plaintext(&mut scratch);
        got.extend_from_slice(&scratch[..n]);
        assert_eq!(got, b"request onerequest two", "{versions:?}");
        let mut back = wire_of(&mut s);
        assert_eq!(feed_all(&mut c, &mut back).unwrap(), b"greeting");
    }
}

#[test]
fn close_notify_after_data_in_one_read() {
    for versions in BOTH {
        let (mut c, mut s) = pair(versions);
        s.write_plaintext(b"20 text/gemini\r\nbye");
        s.send_close_notify();
        assert!(s.has_pending_ciphertext());
        let mut wire = wire_of(&mut s);
        wire.extend_from_slice(b"junk after close_notify");
        let used = c.feed_ciphertext(&mut wire).unwrap();
        assert!(used < wire.len(), "stops after the data record");
        assert!(!c.peer_closed(), "data first");
        let mut scratch = [0u8; 64];
        let n = c.read_plaintext(&mut scratch);
        assert_eq!(&scratch[..n], b"20 text/gemini\r\nbye");
        let rest = wire.len() - used;
        assert_eq!(c.feed_ciphertext(&mut wire[used..]).unwrap(), rest);
        assert!(c.peer_closed(), "{versions:?}");
        assert_eq!(c.read_plaintext(&mut scratch), 0);
        // The client answers with its own close_notify; then both are done.
        c.send_close_notify();
        let mut back = wire_of(&mut c);
        assert!(!back.is_empty());
        assert_eq!(feed_all(&mut s, &mut back).unwrap(), b"");
        assert!(s.peer_closed());
        assert_eq!(s.held_capacity(), 0);
    }
}

#[test]
fn garbage_record_after_handshake_is_answered_with_an_alert() {
    for versions in BOTH {
        let (mut c, mut s) = pair(versions);
        let mut bad = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        bad.extend_from_slice(&[0x5a; 0x20]);
        let err = s.feed_ciphertext(&mut bad).unwrap_err();
        assert!(matches!(err, TlsError::Protocol(_)), "{err}");
        assert!(!err.is_handshake_failure());
        assert!(s.has_pending_ciphertext(), "alert queued");
        // Dead from now on, without panicking.
        assert!(s.feed_ciphertext(&mut bad.clone()).is_err());
        assert_eq!(s.write_plaintext(b"x"), 0);
        s.send_close_notify();
        // The peer reads the alert (bad_record_mac) and reports it.
        let mut alert = wire_of(&mut s);
        match feed_all(&mut c, &mut alert) {
            Err(TlsError::PeerAlert {
                alert,
                during_handshake: false,
            }) => assert_eq!(alert, rustls::AlertDescription::BadRecordMac),
            other => panic!("{versions:?}: {other:?}"),
        }
    }
}

#[test]
fn fragmented_handshake_messages_and_client_hello_at_any_chunking() {
    // Tiny records: every handshake message (the ClientHello included)
    // spans many records, so rustls holds parts while the rest arrives.
    let (store, _) = generated_store("frag.test");
    let mut server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    Arc::make_mut(&mut server_cfg.rustls).max_fragment_size = Some(64);
    for versions in BOTH {
        let mut client_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
            .versions(versions)
            .build()
            .unwrap();
        Arc::make_mut(&mut client_cfg.rustls).max_fragment_size = Some(64);
        for chunk in [1, 3, 64, 69, 100, 1000, usize::MAX] {
            let mut c = TlsSession::client(&client_cfg, "Frag.Test").unwrap();
            let mut s = TlsSession::server(&server_cfg).unwrap();
            let mut junk = Vec::new();
            for _ in 0..4 {
                transfer_chunked(&mut c, &mut s, &mut junk, chunk).unwrap();
                transfer_chunked(&mut s, &mut c, &mut junk, chunk).unwrap();
            }
            assert!(!c.is_handshaking() && !s.is_handshaking(), "{chunk}");
            assert!(junk.is_empty());
            let info = s.info().unwrap();
            assert_eq!(
                info.sni.as_deref(),
                Some("frag.test"),
                "{versions:?} {chunk}"
            );
            let msg = vec![9u8; 1000];
            c.write_plaintext(&msg);
            let mut got = Vec::new();
            transfer_chunked(&mut c, &mut s, &mut got, chunk).unwrap();
            assert_eq!(got, msg);
            assert_eq!(s.held_capacity(), 0);
            assert_eq!(c.held_capacity(), 0);
        }
    }
}

#[test]
fn idle_session_holds_no_buffers() {
    for versions in BOTH {
        let (mut c, mut s) = pair(versions);
        echo_roundtrip(&mut c, &mut s);
        assert_eq!(s.held_capacity(), 0, "{versions:?}");
        assert_eq!(c.held_capacity(), 0, "{versions:?}");
        assert_eq!(s.pending_len(), 0);
        // Unsent output is held only until the socket takes it.
        s.write_plaintext(&[1u8; 5000]);
        assert!(s.held_capacity() >= 5000);
        wire_of(&mut s);
        assert_eq!(s.held_capacity(), 0);
    }
}

#[test]
fn a_peer_cannot_make_the_session_hold_unbounded_input() {
    // Valid-looking handshake records of one byte each: rustls would wait
    // for the 64 KiB message to complete, holding six times that.
    let (store, _) = generated_store("a.test");
    let server_cfg = ServerTlsConfig::builder(store).build().unwrap();
    let mut s = TlsSession::server(&server_cfg).unwrap();
    let mut first = vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0xff, 0xff];
    assert_eq!(s.feed_ciphertext(&mut first).unwrap(), first.len());
    let mut chunk = [0x16, 0x03, 0x01, 0x00, 0x01, 0x00].repeat(1000);
    let mut fed = 0;
    let err = loop {
        match s.feed_ciphertext(&mut chunk) {
            Ok(n) => fed += n,
            Err(e) => break e,
        }
        assert!(fed <= session::MAX_HELD_INPUT, "{fed}");
    };
    assert!(err.is_handshake_failure(), "{err}");
    assert!(s.held_capacity() < 64, "released");
}
