//! TLS through the reactor over real sockets, with a real rustls client:
//! generated, loaded and SNI-selected certificates; the persisted generated
//! certificate; TLS 1.2 and 1.3 (and TLS 1.1 refused); hostile clients
//! against the handshake deadline; client certificate facts; reload while
//! connections stay open; backpressure through TLS; outbound TLS.
//!
//! Each test runs its own reactor on a background thread with a TLS
//! listener on 127.0.0.1:0; every blocking call has a timeout.

mod tls_support;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ProtocolVersion, RootCertStore};
use tls_support::*;
use torsion_reactor::tls::{
    load_ca_roots, CertSource, CertStore, ClientAuth, ClientTlsConfig, ClientVerify,
    ServerTlsConfig, TlsInfo, TlsVersions,
};
use torsion_reactor::{Address, ConnId, Disconnect, Protocol, ReactorConfig, Transport};

/// A store serving one generated certificate for `names`, kept in `dir`.
fn generated_store(dir: &TempDir, names: &[&str]) -> (CertStore, String) {
    let store = CertStore::new();
    let fp = store
        .add_default(
            names,
            CertSource::Generated {
                state_dir: dir.path().to_path_buf(),
                hostnames: names.iter().map(|s| s.to_string()).collect(),
            },
        )
        .unwrap();
    (store, fp)
}

/// Writes a certificate and key pair into `dir` as `<tag>.crt`/`<tag>.key`.
fn write_pair(dir: &TempDir, tag: &str, cert: &str, key: &str) -> CertSource {
    let c = dir.path().join(format!("{tag}.crt"));
    let k = dir.path().join(format!("{tag}.key"));
    fs::write(&c, cert).unwrap();
    fs::write(&k, key).unwrap();
    CertSource::Files { cert: c, key: k }
}

fn tls_config(store: CertStore) -> ServerTlsConfig {
    ServerTlsConfig::builder(store).build().unwrap()
}

/// Tests that measure the whole process (its RSS) or load it heavily (200
/// hostile clients) run alone; every other test holds this shared for its
/// whole run, so they still run in parallel with each other.
static SERIAL: RwLock<()> = RwLock::new(());

/// For an ordinary test: runs alongside others, never alongside an
/// [`alone`] one. (A poisoned lock only means another test failed.)
fn shared() -> RwLockReadGuard<'static, ()> {
    SERIAL.read().unwrap_or_else(|e| e.into_inner())
}

/// For a test that measures or loads the whole process: runs alone.
fn alone() -> RwLockWriteGuard<'static, ()> {
    SERIAL.write().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn generated_certificate_serves_handshakes_and_echo() {
    let _serial = shared();
    let dir = TempDir::new("gen");
    let (store, fp) = generated_store(&dir, &["localhost"]);
    let mut server = Server::echo(ReactorConfig::default(), tls_config(store));

    let mut c = connect(no_verify(TlsVersions::Tls12And13), server.addr, "localhost").unwrap();
    assert_eq!(server_fp(&c), fp);
    // What was served is what was persisted.
    let pem = fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    assert_eq!(sha256_hex(pem_cert_der(&pem).as_ref()), fp);
    assert_eq!(
        echo(&mut c, b"hello over TLS\n").unwrap(),
        b"hello over TLS\n"
    );
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(echo(&mut c, &big).unwrap(), big);

    let (is_tls, info) = server.made(local(&c));
    assert!(is_tls);
    assert_eq!(info.version, "TLSv1.3");
    assert_eq!(info.sni.as_deref(), Some("localhost"));
    assert!(info.peer_cert.is_none(), "no client certificate was sent");
    assert!(!info.resumed);
    assert!(info.cipher_suite.starts_with("TLS13_"), "{info:?}");

    // A clean close_notify from the client ends the connection cleanly.
    c.conn.send_close_notify();
    c.flush().unwrap();
    let peer = local(&c);
    let (reason, made) = server.lost(peer);
    assert!(made);
    assert_eq!(reason, "closed");
    // The server answered with its own close_notify, then closed.
    let mut rest = Vec::new();
    assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);

    let stats = server.stats();
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.tls_failures, 0);
}

#[test]
fn webpki_client_trusting_the_generated_certificate_verifies_it() {
    let _serial = shared();
    let dir = TempDir::new("webpki");
    let (store, fp) = generated_store(&dir, &["localhost"]);
    let server = Server::echo(ReactorConfig::default(), tls_config(store));
    let pem = fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(pem_cert_der(&pem)).unwrap();
    let cfg = ClientTlsConfig::builder(ClientVerify::WebPki(Arc::new(roots)))
        .resumption(false)
        .build()
        .unwrap()
        .rustls()
        .clone();
    let mut c = connect(cfg.clone(), server.addr, "localhost").unwrap();
    assert_eq!(server_fp(&c), fp);
    assert_eq!(echo(&mut c, b"verified\n").unwrap(), b"verified\n");
    // The certificate does not cover another name: the client refuses it.
    let err = connect(cfg, server.addr, "not-this-host.test").unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // The client's refusal is a failed handshake on the server side.
    let s = server.wait_stats(IO_TIMEOUT, |s| s.tls_failures >= 1);
    assert_eq!(s.tls_failures, 1);
    assert_eq!(s.tls_handshakes, 1);
}

/// The SEC1 `ECPrivateKey` inside an EC PKCS#8 document, as PEM.
fn pkcs8_to_sec1_pem(pkcs8_pem: &str) -> String {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    let der = PrivateKeyDer::from_pem_slice(pkcs8_pem.as_bytes()).unwrap();
    let PrivateKeyDer::Pkcs8(p8) = der else {
        panic!("generate_pem gave no PKCS#8 key")
    };
    // PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING }
    let (tag, body, _) = der_tlv(p8.secret_pkcs8_der());
    assert_eq!(tag, 0x30);
    let (_, _, rest) = der_tlv(body); // version
    let (_, _, rest) = der_tlv(rest); // algorithm
    let (tag, sec1, _) = der_tlv(rest);
    assert_eq!(tag, 0x04);
    let b64 = base64::engine::general_purpose::STANDARD.encode(sec1);
    let mut pem = String::from("-----BEGIN EC PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END EC PRIVATE KEY-----\n");
    pem
}

/// One DER element: (tag, contents, what follows).
fn der_tlv(d: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = d[0];
    let (len, hdr) = match d[1] {
        n if n < 0x80 => (n as usize, 2),
        0x81 => (d[2] as usize, 3),
        0x82 => (((d[2] as usize) << 8) | d[3] as usize, 4),
        other => panic!("unsupported DER length byte {other:#x}"),
    };
    (tag, &d[hdr..hdr + len], &d[hdr + len..])
}

#[test]
fn loaded_certificates_pkcs8_sec1_and_combined_file() {
    let _serial = shared();
    let dir = TempDir::new("loaded");
    let (cert, pkcs8, fp) = generate(&["localhost"]);
    let sec1 = pkcs8_to_sec1_pem(&pkcs8);
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
    let combined = dir.path().join("combined.pem");
    fs::write(&combined, format!("{cert}{pkcs8}")).unwrap();
    let sources = [
        ("pkcs8", write_pair(&dir, "p8", &cert, &pkcs8)),
        ("sec1", write_pair(&dir, "sec1", &cert, &sec1)),
        (
            "combined",
            CertSource::Files {
                cert: combined.clone(),
                key: combined,
            },
        ),
    ];
    for (what, source) in sources {
        let store = CertStore::new();
        assert_eq!(
            store.add_default(&["localhost"], source).unwrap(),
            fp,
            "{what}"
        );
        let mut server = Server::echo(ReactorConfig::default(), tls_config(store));
        for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
            let mut c = connect(no_verify(versions), server.addr, "localhost")
                .unwrap_or_else(|e| panic!("{what} {versions:?}: {e}"));
            assert_eq!(server_fp(&c), fp, "{what}");
            assert_eq!(echo(&mut c, what.as_bytes()).unwrap(), what.as_bytes());
            let (_, info) = server.made(local(&c));
            let want = match versions {
                TlsVersions::Tls12Only => "TLSv1.2",
                _ => "TLSv1.3",
            };
            assert_eq!(info.version, want, "{what}");
        }
    }
}

#[test]
fn sni_selects_the_certificate_and_no_sni_gets_the_default() {
    let _serial = shared();
    let dir = TempDir::new("sni");
    let (ca, ka, fa) = generate(&["a.test"]);
    let (cb, kb, fb) = generate(&["b.test"]);
    let (cw, kw, fw) = generate(&["x.w.test"]);
    assert!(fa != fb && fb != fw && fa != fw);
    let store = CertStore::new();
    store
        .add(&["b.test"], write_pair(&dir, "b", &cb, &kb))
        .unwrap();
    store
        .add_default(&["a.test"], write_pair(&dir, "a", &ca, &ka))
        .unwrap();
    store
        .add(&["*.w.test"], write_pair(&dir, "w", &cw, &kw))
        .unwrap();
    let mut server = Server::echo(ReactorConfig::default(), tls_config(store));
    let cfg = no_verify(TlsVersions::Tls12And13);
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("a.test", &fa, Some("a.test")),
        ("b.test", &fb, Some("b.test")),
        ("B.TEST", &fb, Some("b.test")),
        ("x.w.test", &fw, Some("x.w.test")),
        ("unknown.test", &fa, Some("unknown.test")),
        // An IP literal sends no SNI at all.
        ("127.0.0.1", &fa, None),
    ];
    for (name, want_fp, want_sni) in cases {
        let mut c = connect(cfg.clone(), server.addr, name).unwrap();
        assert_eq!(server_fp(&c), want_fp, "certificate for {name}");
        assert_eq!(echo(&mut c, name.as_bytes()).unwrap(), name.as_bytes());
        let (_, info) = server.made(local(&c));
        assert_eq!(info.sni.as_deref(), want_sni, "SNI seen for {name}");
    }
    assert_eq!(server.stats().tls_handshakes, 6);
}

#[test]
fn persisted_generated_certificate_survives_a_restart() {
    let _serial = shared();
    let dir = TempDir::new("persist");
    let mut seen = Vec::new();
    for _start in 0..2 {
        // A new store and a new reactor each time, as after a restart.
        let (store, fp) = generated_store(&dir, &["localhost", "capsule.test"]);
        let server = Server::echo(ReactorConfig::default(), tls_config(store));
        let c = connect(
            no_verify(TlsVersions::Tls12And13),
            server.addr,
            "capsule.test",
        )
        .unwrap();
        assert_eq!(server_fp(&c), fp);
        seen.push(fp);
    }
    assert_eq!(seen[0], seen[1], "the certificate changed across starts");
    let mode = fs::metadata(dir.path().join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    // Sanity: another state directory gives another certificate, so the
    // equality above is not trivially true.
    let other = TempDir::new("persist-other");
    let (_, fp_other) = generated_store(&other, &["localhost", "capsule.test"]);
    assert_ne!(fp_other, seen[0]);
}

#[test]
fn tls12_and_tls13_both_work() {
    let _serial = shared();
    let dir = TempDir::new("versions");
    let (store, fp) = generated_store(&dir, &["localhost"]);
    let mut server = Server::echo(ReactorConfig::default(), tls_config(store));
    let cases = [
        (TlsVersions::Tls13Only, ProtocolVersion::TLSv1_3, "TLSv1.3"),
        (TlsVersions::Tls12Only, ProtocolVersion::TLSv1_2, "TLSv1.2"),
    ];
    for (versions, want, name) in cases {
        let mut c = connect(no_verify(versions), server.addr, "localhost").unwrap();
        assert_eq!(c.conn.protocol_version(), Some(want));
        assert_eq!(server_fp(&c), fp);
        assert_eq!(echo(&mut c, name.as_bytes()).unwrap(), name.as_bytes());
        let (_, info) = server.made(local(&c));
        assert_eq!(info.version, name);
        let client_suite = c.conn.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(Some(info.cipher_suite), client_suite.as_str(), "{name}");
        assert_ne!(info.cipher_iana, "unknown");
        if want == ProtocolVersion::TLSv1_2 {
            assert!(
                info.cipher_iana.starts_with("TLS_ECDHE_ECDSA_WITH_"),
                "{info:?}"
            );
            assert!(info.cipher_openssl.starts_with("ECDHE-ECDSA-"), "{info:?}");
        } else {
            assert_eq!(info.cipher_iana, info.cipher_openssl);
        }
    }
}

#[test]
fn returning_clients_resume_with_tickets_and_session_ids() {
    let _serial = shared();
    let dir = TempDir::new("resume");
    let (store, fp) = generated_store(&dir, &["localhost"]);
    let mut server = Server::echo(ReactorConfig::default(), tls_config(store));
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        // One client config = one session cache, as a returning browser.
        let cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
            .versions(versions)
            .build()
            .unwrap()
            .rustls()
            .clone();
        let mut first = connect(cfg.clone(), server.addr, "localhost").unwrap();
        // The echo also reads the TLS 1.3 tickets sent after the handshake.
        assert_eq!(echo(&mut first, b"first\n").unwrap(), b"first\n");
        assert_eq!(server_fp(&first), fp);
        assert!(!server.made(local(&first)).1.resumed, "{versions:?}");
        let mut again = connect(cfg, server.addr, "localhost").unwrap();
        assert_eq!(echo(&mut again, b"again\n").unwrap(), b"again\n");
        assert_eq!(
            again.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{versions:?}"
        );
        let (_, info) = server.made(local(&again));
        assert!(info.resumed, "{versions:?}");
    }
    assert_eq!(server.stats().tls_handshakes, 4);
}

/// A TLS 1.1 ClientHello as an old client sends it: legacy version 3.2, no
/// `supported_versions`, TLS 1.0-era CBC suites, SNI and EC extensions;
/// optionally `signature_algorithms` (which TLS 1.1 clients do not send, and
/// rustls checks before the version) so the version check itself is reached.
fn tls11_client_hello(with_sigalgs: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    // server_name: localhost
    let name = b"localhost";
    let mut sni = vec![0x00];
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut list = (sni.len() as u16).to_be_bytes().to_vec();
    list.extend_from_slice(&sni);
    ext.extend_from_slice(&[0x00, 0x00]);
    ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
    ext.extend_from_slice(&list);
    // supported_groups: x25519, secp256r1
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    if with_sigalgs {
        // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256
        ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x08, 0x00, 0x06]);
        ext.extend_from_slice(&[0x04, 0x03, 0x08, 0x04, 0x04, 0x01]);
    }

    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // empty session id
    let suites: [u16; 4] = [0xc009, 0xc00a, 0xc013, 0xc014]; // ECDHE_*_AES_*_CBC_SHA
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);

    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

#[test]
fn tls11_only_client_is_refused_with_a_fatal_alert() {
    let _serial = shared();
    let dir = TempDir::new("tls11");
    let (store, _) = generated_store(&dir, &["localhost"]);
    let mut server = Server::echo(ReactorConfig::default(), tls_config(store));
    // (hello, acceptable alert descriptions): a genuine TLS 1.1 hello lacks
    // signature_algorithms, refused as handshake_failure (40) or
    // protocol_version (70); with it, the version check answers 70.
    let cases: [(bool, &[u8]); 2] = [(false, &[40, 70]), (true, &[70])];
    for (i, (sigalgs, alerts)) in cases.into_iter().enumerate() {
        let mut s = tcp(server.addr);
        s.write_all(&tls11_client_hello(sigalgs)).unwrap();
        let reply = read_until_closed(&mut s).unwrap();
        // One fatal alert record (level 2), then the connection closes.
        assert!(reply.len() >= 7, "reply {reply:?}");
        assert_eq!(reply[0], 0x15, "an alert record: {reply:?}");
        assert_eq!(reply[5], 2, "fatal: {reply:?}");
        assert!(
            alerts.contains(&reply[6]),
            "alert {reply:?}, sigalgs {sigalgs}"
        );
        let stats = server.wait_stats(IO_TIMEOUT, |s| s.tls_failures > i as u64);
        assert_eq!(stats.tls_failures, i as u64 + 1);
        assert_eq!(stats.tls_handshakes, 0);
        let peer = s.local_addr().unwrap();
        let (reason, made) = server.lost(peer);
        assert!(!made, "the protocol must never see a refused client");
        assert!(reason.contains("TLS"), "{reason}");
    }
}

/// `openssl s_client -tls1_1` against the listener, when the openssl tool is
/// installed and still able to offer TLS 1.1 (at security level 0).
#[test]
fn openssl_tls1_1_client_is_refused() {
    let _serial = shared();
    let help = std::process::Command::new("openssl")
        .args(["s_client", "-help"])
        .output();
    let Ok(help) = help else {
        eprintln!("openssl not installed: covered by the raw ClientHello test");
        return;
    };
    let text =
        String::from_utf8_lossy(&help.stderr).to_string() + &String::from_utf8_lossy(&help.stdout);
    if !text.contains("-tls1_1") {
        eprintln!("openssl s_client has no -tls1_1: covered by the raw ClientHello test");
        return;
    }
    let dir = TempDir::new("openssl11");
    let (store, _) = generated_store(&dir, &["localhost"]);
    let server = Server::echo(ReactorConfig::default(), tls_config(store));
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("openssl");
        cmd.args(["s_client", "-connect", &server.addr.to_string()])
            .args(["-servername", "localhost"])
            .args(extra)
            .stdin(std::process::Stdio::null());
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // Control: the same tool with TLS 1.2 gets in.
    let (ok12, out12) = run(&["-tls1_2"]);
    assert!(ok12 && out12.contains("TLSv1.2"), "{out12}");
    let before = server.stats();
    let (ok11, out11) = run(&["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    assert!(!ok11, "TLS 1.1 must be refused: {out11}");
    assert!(!out11.contains("Cipher is ECDHE"), "{out11}");
    let after = server.wait_stats(IO_TIMEOUT, |s| s.tls_failures > before.tls_failures);
    if after.tls_failures == before.tls_failures {
        // This openssl build refused to send a TLS 1.1 hello at all.
        eprintln!("openssl did not offer TLS 1.1 here: {out11}");
        return;
    }
    // openssl's TLS 1.1 hello has no signature_algorithms: rustls answers
    // handshake_failure (40) or protocol_version (70).
    assert!(
        out11.contains("SSL alert number 40") || out11.contains("SSL alert number 70"),
        "{out11}"
    );
    assert_eq!(after.tls_handshakes, before.tls_handshakes);
}

#[test]
fn hostile_clients_do_not_delay_a_good_one_and_stalled_ones_time_out() {
    let _serial = alone();
    const HOSTILE: usize = 200;
    let dir = TempDir::new("hostile");
    let (store, fp) = generated_store(&dir, &["localhost"]);
    let config = ReactorConfig {
        handshake_timeout: Duration::from_millis(500),
        ..ReactorConfig::default()
    };
    let mut server = Server::echo(config, tls_config(store));
    let hello = client_hello();
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let mut garbage = Vec::new();
    let mut stalled = Vec::new();
    let t_stall = Instant::now();
    for i in 0..HOSTILE {
        let mut s = tcp(server.addr);
        if i % 2 == 0 {
            // Part of a real ClientHello, then silence.
            s.write_all(&hello[..hello.len() / 2]).unwrap();
            stalled.push(s);
        } else {
            // Random bytes whose first one is no TLS content type.
            let n = 64 + (rng.next_u64() % 512) as usize;
            let mut junk = rng.bytes(n);
            junk[0] |= 0x80;
            let _ = s.write_all(&junk);
            garbage.push(s);
        }
    }

    // A well-behaved client is served at once, hostile crowd or not.
    let t_good = Instant::now();
    let mut c = connect(no_verify(TlsVersions::Tls12And13), server.addr, "localhost").unwrap();
    assert_eq!(echo(&mut c, b"still served\n").unwrap(), b"still served\n");
    let served_in = t_good.elapsed();
    // Not held up by the crowd (a bound generous enough for a debug build
    // on a loaded machine).
    assert!(
        served_in < Duration::from_secs(5),
        "served in {served_in:?}"
    );
    assert_eq!(server_fp(&c), fp);

    // Garbage costs its own connection only: an alert or a reset, then EOF.
    for s in &mut garbage {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let reply = read_until_closed(s).unwrap();
        assert!(reply.is_empty() || reply[0] == 0x15, "{reply:?}");
    }
    // Stalled handshakes are closed by the deadline, not before.
    let mut closed_after = Duration::ZERO;
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        read_until_closed(s).expect("stalled handshake closed by the deadline");
        closed_after = t_stall.elapsed();
    }
    assert!(
        closed_after >= Duration::from_millis(450),
        "stalled clients closed too early ({closed_after:?})"
    );
    // Read only after the good client was served (which may itself take
    // a while on a loaded machine), so the bound covers that too.
    assert!(
        closed_after < served_in + Duration::from_secs(4),
        "stalled clients closed too late ({closed_after:?})"
    );

    let stats = server.wait_stats(IO_TIMEOUT, |s| s.tls_failures >= HOSTILE as u64);
    assert_eq!(stats.tls_failures, HOSTILE as u64, "{stats:?}");
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.accepted, HOSTILE as u64 + 1);
    // The good client is still connected and working.
    assert_eq!(echo(&mut c, b"and again\n").unwrap(), b"and again\n");
    assert_eq!(stats.active, 1, "{stats:?}");
    // No hostile client's protocol was ever started: one connection_made,
    // and every stalled one ended by the deadline.
    let events = server.drain_events();
    let made = events
        .iter()
        .filter(|e| matches!(e, Event::Made { .. }))
        .count();
    assert_eq!(made, 1, "{events:?}");
    let timed_out = events
        .iter()
        .filter(|e| matches!(e, Event::Lost { reason, made: false, .. } if reason.contains("timed out")))
        .count();
    assert_eq!(timed_out, HOSTILE / 2, "{events:?}");
}

/// A client certificate with known facts.
struct ClientCert {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn alice() -> ClientCert {
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
    ClientCert {
        der: cert.der().clone(),
        key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

fn with_cert(c: &ClientCert, versions: TlsVersions) -> Arc<rustls::ClientConfig> {
    no_verify_with_cert(vec![c.der.clone()], c.key.clone_key(), versions)
}

#[test]
fn client_certificate_facts_match_what_the_test_generated() {
    let _serial = shared();
    let dir = TempDir::new("clientcert");
    let (store, _) = generated_store(&dir, &["localhost"]);
    let mut server = Server::echo(ReactorConfig::default(), tls_config(store));
    let cert = alice();
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let mut c = connect(with_cert(&cert, versions), server.addr, "localhost").unwrap();
        assert_eq!(echo(&mut c, b"who am i\n").unwrap(), b"who am i\n");
        let (_, info) = server.made(local(&c));
        let p = info.peer_cert.expect("client certificate reported");
        assert_eq!(p.hash, sha256_hex(cert.der.as_ref()), "{versions:?}");
        use base64::Engine;
        let digest: [u8; 32] = sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(cert.der.as_ref()),
        )
        .into();
        assert_eq!(p.sha256, digest);
        assert_eq!(
            p.hash_b64,
            base64::engine::general_purpose::URL_SAFE.encode(digest)
        );
        assert_eq!(p.common_name, "alice");
        assert_eq!(p.subject, "CN=alice");
        assert_eq!(p.not_before, "2025-01-02T00:00:00Z");
        assert_eq!(p.not_after, "2099-12-31T00:00:00Z");
        assert_eq!(p.serial_hex, "1ABCDEF42");
        assert_eq!(p.serial, 0x1_ABCD_EF42_u64.to_string());
        assert!(p.valid_now);
        assert!(!p.authorised, "no CA configured");
    }
    // No certificate: nothing reported.
    let c = connect(no_verify(TlsVersions::Tls12And13), server.addr, "localhost").unwrap();
    let (_, info) = server.made(local(&c));
    assert!(info.peer_cert.is_none());
}

/// A CA (written to `dir/ca.pem`), a client certificate it signed and a
/// self-signed one with the same key and subject.
fn ca_and_devices(dir: &TempDir) -> (std::path::PathBuf, ClientCert, ClientCert) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let ca_path = dir.path().join("ca.pem");
    fs::write(&ca_path, ca.pem()).unwrap();

    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "device");
    let key = rcgen::KeyPair::generate().unwrap();
    let signed = params.signed_by(&key, &ca).unwrap();
    let selfsigned = params.self_signed(&key).unwrap();
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    (
        ca_path,
        ClientCert {
            der: signed.der().clone(),
            key: key_der.clone_key(),
        },
        ClientCert {
            der: selfsigned.der().clone(),
            key: key_der,
        },
    )
}

#[test]
fn authorised_is_true_only_for_a_ca_signed_client_certificate() {
    let _serial = shared();
    let dir = TempDir::new("ca");
    let (ca_path, signed, selfsigned) = ca_and_devices(&dir);
    let (store, _) = generated_store(&dir, &["localhost"]);
    let roots = load_ca_roots(Some(&ca_path), None).unwrap();
    let tls = ServerTlsConfig::builder(store)
        .ca_roots(roots)
        .build()
        .unwrap();
    let mut server = Server::echo(ReactorConfig::default(), tls);
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let mut c = connect(with_cert(&signed, versions), server.addr, "localhost").unwrap();
        assert_eq!(echo(&mut c, b"signed\n").unwrap(), b"signed\n");
        let p = server.made(local(&c)).1.peer_cert.unwrap();
        assert!(p.authorised, "CA-signed, {versions:?}");
        assert_eq!(p.common_name, "device");
        assert_eq!(p.issuer, "CN=Test CA");
        assert_eq!(p.hash, sha256_hex(signed.der.as_ref()));

        let mut c = connect(with_cert(&selfsigned, versions), server.addr, "localhost").unwrap();
        assert_eq!(echo(&mut c, b"self\n").unwrap(), b"self\n");
        let p = server.made(local(&c)).1.peer_cert.unwrap();
        assert!(!p.authorised, "self-signed, {versions:?}");
        assert_eq!(p.common_name, "device");
        assert_eq!(p.hash, sha256_hex(selfsigned.der.as_ref()));
    }
    assert_eq!(server.stats().tls_failures, 0);
}

/// Whether a client with `cfg` gets served: handshake and an echo. Returns
/// that and the client's address when the handshake got that far. (In TLS
/// 1.3 the client finishes before the server has checked its certificate,
/// so a refusal may only show on the first read.)
fn served(cfg: Arc<rustls::ClientConfig>, addr: SocketAddr) -> (bool, Option<SocketAddr>) {
    match connect(cfg, addr, "localhost") {
        Err(_) => (false, None),
        Ok(mut c) => {
            let peer = local(&c);
            let ok = matches!(echo(&mut c, b"let me in\n"), Ok(v) if v == b"let me in\n");
            (ok, Some(peer))
        }
    }
}

#[test]
fn require_authorised_refuses_self_signed_and_missing_client_certificates() {
    let _serial = shared();
    let dir = TempDir::new("require");
    let (ca_path, signed, selfsigned) = ca_and_devices(&dir);
    let (store, _) = generated_store(&dir, &["localhost"]);
    let tls = ServerTlsConfig::builder(store)
        .client_auth(ClientAuth::RequireAuthorised)
        .ca_roots(load_ca_roots(Some(&ca_path), None).unwrap())
        .build()
        .unwrap();
    let mut server = Server::echo(ReactorConfig::default(), tls);
    let mut failures = 0;
    for versions in [TlsVersions::Tls13Only, TlsVersions::Tls12Only] {
        let (ok, peer) = served(with_cert(&signed, versions), server.addr);
        assert!(ok, "CA-signed certificate refused ({versions:?})");
        assert!(server.made(peer.unwrap()).1.peer_cert.unwrap().authorised);

        let (ok, _) = served(with_cert(&selfsigned, versions), server.addr);
        assert!(!ok, "self-signed certificate served ({versions:?})");
        let (ok, _) = served(no_verify(versions), server.addr);
        assert!(!ok, "no certificate served ({versions:?})");
        failures += 2;
        let s = server.wait_stats(IO_TIMEOUT, |s| s.tls_failures >= failures);
        assert_eq!(s.tls_failures, failures, "{versions:?}");
    }
    // Only the two CA-signed clients ever reached the protocol.
    let events = server.drain_events();
    let made = events
        .iter()
        .filter(|e| matches!(e, Event::Made { .. }))
        .count();
    assert_eq!(made, 0, "{events:?}");
    assert_eq!(server.stats().tls_handshakes, 2);
}

#[test]
fn reload_serves_new_certificate_while_old_connection_keeps_working() {
    let _serial = shared();
    let dir = TempDir::new("reload");
    let (ca, ka, fa) = generate(&["localhost"]);
    let (cb, kb, fb) = generate(&["localhost"]);
    let source = write_pair(&dir, "site", &ca, &ka);
    let CertSource::Files { cert, key } = source.clone() else {
        unreachable!()
    };
    let store = CertStore::new();
    assert_eq!(store.add_default(&["localhost"], source).unwrap(), fa);
    let server = Server::echo(ReactorConfig::default(), tls_config(store.clone()));
    let cfg = no_verify(TlsVersions::Tls12And13);

    let mut old = connect(cfg.clone(), server.addr, "localhost").unwrap();
    assert_eq!(server_fp(&old), fa);
    assert_eq!(echo(&mut old, b"before\n").unwrap(), b"before\n");

    fs::write(&cert, &cb).unwrap();
    fs::write(&key, &kb).unwrap();
    // From the test thread: the store is shared with the reactor thread.
    assert_eq!(store.reload().unwrap(), 1);

    let mut new = connect(cfg.clone(), server.addr, "localhost").unwrap();
    assert_eq!(server_fp(&new), fb);
    assert_eq!(echo(&mut new, b"new\n").unwrap(), b"new\n");
    assert_eq!(
        echo(&mut old, b"old still works\n").unwrap(),
        b"old still works\n"
    );

    // A broken key file: reload fails, naming it, and B stays in service.
    fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = store.reload().unwrap_err();
    assert!(err.to_string().contains("site.key"), "{err}");
    let c = connect(cfg.clone(), server.addr, "localhost").unwrap();
    assert_eq!(server_fp(&c), fb);
    // A certificate and key that do not match: also refused.
    fs::write(&cert, &ca).unwrap();
    fs::write(&key, &kb).unwrap();
    assert!(store.reload().is_err());
    let c = connect(cfg, server.addr, "localhost").unwrap();
    assert_eq!(server_fp(&c), fb);
    assert_eq!(
        echo(&mut old, b"old at the end\n").unwrap(),
        b"old at the end\n"
    );
    assert_eq!(server.stats().tls_failures, 0);
}

/// Bytes of the test stream: block `b` (of `BLOCK` bytes) is a run of
/// 64-bit words derived from `b`, so any misplaced block shows.
const BLOCK: usize = 16 * 1024;

fn block(b: usize, out: &mut [u8]) {
    for (i, w) in out.chunks_exact_mut(8).enumerate() {
        let v = ((b as u64) << 32 | i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        w.copy_from_slice(&v.to_le_bytes());
    }
}

/// Produces `total` bytes as fast as backpressure allows, recording the
/// largest queue it ever saw and how often it was told to resume.
struct Producer {
    total: usize,
    sent: usize,
    chunk: Vec<u8>,
    max_buffered: Arc<AtomicUsize>,
    drained: Arc<AtomicUsize>,
}

impl Producer {
    fn pump(&mut self, t: &mut Transport<'_>) {
        while self.sent < self.total && !t.over_high_water() {
            block(self.sent / BLOCK, &mut self.chunk);
            let n = BLOCK.min(self.total - self.sent);
            t.write(&self.chunk[..n]);
            self.sent += n;
            self.max_buffered
                .fetch_max(t.buffered_len(), Ordering::Relaxed);
        }
        if self.sent == self.total {
            t.close();
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.pump(t);
    }
    fn data_received(&mut self, _t: &mut Transport<'_>, _data: &mut [u8]) {}
    fn write_drained(&mut self, t: &mut Transport<'_>) {
        self.drained.fetch_add(1, Ordering::Relaxed);
        self.pump(t);
    }
}

fn rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn fifty_mib_through_tls_to_a_slow_reader_stays_bounded() {
    let _serial = alone();
    const TOTAL: usize = 50 * 1024 * 1024;
    let dir = TempDir::new("bulk");
    let (store, _) = generated_store(&dir, &["localhost"]);
    let config = ReactorConfig::default();
    let high = config.high_water;
    let max_buffered = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(AtomicUsize::new(0));
    let (m, d) = (max_buffered.clone(), drained.clone());
    let server = Server::start(
        config,
        tls_config(store),
        Box::new(move |_, _| {
            Box::new(Producer {
                total: TOTAL,
                sent: 0,
                chunk: vec![0; BLOCK],
                max_buffered: m.clone(),
                drained: d.clone(),
            })
        }),
    );
    let rss_before = rss_kib();
    let mut c = connect(no_verify(TlsVersions::Tls12And13), server.addr, "localhost").unwrap();
    c.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut expected = vec![0u8; BLOCK];
    let mut pending = Vec::with_capacity(2 * BLOCK);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let mut rss_peak = rss_before;
    let started = Instant::now();
    loop {
        let n = match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => panic!("read after {got} bytes: {e}"),
        };
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= BLOCK || (got + pending.len() == TOTAL && !pending.is_empty()) {
            let len = BLOCK.min(pending.len());
            block(got / BLOCK, &mut expected);
            assert!(pending[..len] == expected[..len], "corrupt block at {got}");
            pending.drain(..len);
            got += len;
        }
        // Slow for the first 8 MiB: the server must wait for us.
        if got < 8 * 1024 * 1024 && got % (256 * 1024) < n {
            std::thread::sleep(Duration::from_millis(5));
            rss_peak = rss_peak.max(rss_kib());
        }
    }
    rss_peak = rss_peak.max(rss_kib());
    assert_eq!(got, TOTAL, "stream length");
    assert!(pending.is_empty());
    let max = max_buffered.load(Ordering::Relaxed);
    let drained = drained.load(Ordering::Relaxed);
    eprintln!(
        "50 MiB through TLS in {:?}: max queued {max} bytes (high water {high}), {drained} resumes, RSS +{} KiB",
        started.elapsed(),
        rss_peak.saturating_sub(rss_before)
    );
    assert!(
        drained > 0,
        "the producer was never paused: no backpressure"
    );
    // High water + one chunk + TLS record overhead (22 bytes per record).
    assert!(max <= high + BLOCK + 1024, "queue grew to {max} bytes");
    // The whole stream would be 50 MiB in memory without backpressure.
    assert!(
        rss_peak.saturating_sub(rss_before) < 24 * 1024,
        "RSS grew by {} KiB",
        rss_peak - rss_before
    );
}

/// What an outbound protocol saw.
#[derive(Debug)]
enum Out {
    Made {
        is_tls: bool,
        info: Option<Box<TlsInfo>>,
    },
    Data(Vec<u8>),
    Lost {
        kind: &'static str,
        reason: String,
        made: bool,
    },
}

/// An outbound protocol: sends a greeting once connected, reports
/// everything, closes after the echo of its greeting.
struct Outbound {
    tx: Sender<Out>,
    greeting: &'static [u8],
    got: Vec<u8>,
    made: bool,
}

impl Protocol for Outbound {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.made = true;
        let _ = self.tx.send(Out::Made {
            is_tls: t.is_tls(),
            info: t.tls_info().map(Box::new),
        });
        t.write(self.greeting);
    }
    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.greeting.len() {
            let _ = self.tx.send(Out::Data(std::mem::take(&mut self.got)));
            t.close();
        }
    }
    fn connection_lost(&mut self, _t: &mut Transport<'_>, reason: &Disconnect) {
        let kind = match reason {
            Disconnect::Closed => "Closed",
            Disconnect::Tls(_) => "Tls",
            Disconnect::ConnectFailed(_) => "ConnectFailed",
            Disconnect::HandshakeTimedOut => "HandshakeTimedOut",
            Disconnect::Io(_) => "Io",
            _ => "other",
        };
        let _ = self.tx.send(Out::Lost {
            kind,
            reason: reason.to_string(),
            made: self.made,
        });
    }
}

/// Starts an outbound TLS connection from the server's reactor.
fn dial(
    server: &Server,
    to: SocketAddr,
    name: &'static str,
    tls: ClientTlsConfig,
) -> mpsc::Receiver<Out> {
    let (tx, rx) = mpsc::channel();
    let id: Result<ConnId, String> = server.call(move |ctx, _| {
        let p = Outbound {
            tx,
            greeting: b"hello from connect_tls\n",
            got: Vec::new(),
            made: false,
        };
        ctx.connect_tls(&Address::Tcp(to), name, &tls, Box::new(p))
            .map_err(|e| e.to_string())
    });
    id.expect("connect_tls");
    rx
}

fn next(rx: &mpsc::Receiver<Out>) -> Out {
    rx.recv_timeout(IO_TIMEOUT).expect("outbound event")
}

#[test]
fn connect_tls_handshakes_before_connection_made_and_exchanges_data() {
    let _serial = shared();
    let dir = TempDir::new("outbound");
    let (store, fp) = generated_store(&dir, &["localhost"]);
    let mut server = Server::echo(ReactorConfig::default(), tls_config(store));
    let no_verify_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
        .build()
        .unwrap();
    let rx = dial(&server, server.addr, "localhost", no_verify_cfg);
    match next(&rx) {
        Out::Made { is_tls, info } => {
            assert!(is_tls);
            let info = info.expect("handshake done before connection_made");
            assert_eq!(info.version, "TLSv1.3");
            assert_eq!(info.sni.as_deref(), Some("localhost"));
            let p = info.peer_cert.expect("server certificate");
            assert_eq!(p.hash, fp);
            assert_eq!(p.common_name, "localhost");
            assert!(!p.authorised, "not verified in no-verify mode");
        }
        other => panic!("{other:?}"),
    }
    match next(&rx) {
        Out::Data(d) => assert_eq!(d, b"hello from connect_tls\n"),
        other => panic!("{other:?}"),
    }
    match next(&rx) {
        Out::Lost { kind, made, .. } => assert_eq!((kind, made), ("Closed", true)),
        other => panic!("{other:?}"),
    }
    // The listener side saw the same connection, as TLS.
    let made = server.wait_event(|e| matches!(e, Event::Made { .. }));
    assert!(matches!(made, Event::Made { is_tls: true, .. }));

    // Verified against the generated certificate as a root: authorised.
    let pem = fs::read_to_string(dir.path().join("cert.pem")).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(pem_cert_der(&pem)).unwrap();
    let verify = ClientTlsConfig::builder(ClientVerify::WebPki(Arc::new(roots)))
        .build()
        .unwrap();
    let rx = dial(&server, server.addr, "localhost", verify);
    match next(&rx) {
        Out::Made { info, .. } => assert!(info.unwrap().peer_cert.unwrap().authorised),
        other => panic!("{other:?}"),
    }

    // Verified against an unrelated root: refused, never connection_made.
    let (other_cert, _, _) = generate(&["localhost"]);
    let mut roots = RootCertStore::empty();
    roots.add(pem_cert_der(&other_cert)).unwrap();
    let wrong = ClientTlsConfig::builder(ClientVerify::WebPki(Arc::new(roots)))
        .build()
        .unwrap();
    let rx = dial(&server, server.addr, "localhost", wrong);
    match next(&rx) {
        Out::Lost { kind, made, reason } => {
            assert_eq!((kind, made), ("Tls", false), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let client = server.call(|ctx, _| ctx.client_stats());
    assert!(client.tls_handshakes >= 2, "{client:?}");
}

#[test]
fn connect_tls_to_a_plain_server_sending_garbage_fails_cleanly() {
    let _serial = shared();
    let dir = TempDir::new("outbound-garbage");
    let (store, _) = generated_store(&dir, &["localhost"]);
    let server = Server::echo(ReactorConfig::default(), tls_config(store));
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_addr = plain.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = plain.accept().unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6 this is not TLS\r\n");
        // Wait for the client to hang up (bounded).
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
        .build()
        .unwrap();
    let rx = dial(&server, plain_addr, "localhost", cfg);
    match next(&rx) {
        Out::Lost { kind, made, reason } => {
            assert!(!made, "connection_made before a handshake: {reason}");
            assert!(kind == "Tls" || kind == "ConnectFailed", "{kind}: {reason}");
        }
        other => panic!("{other:?}"),
    }
    peer.join().unwrap();
    // The reactor still serves.
    let mut c = connect(no_verify(TlsVersions::Tls12And13), server.addr, "localhost").unwrap();
    assert_eq!(echo(&mut c, b"ok\n").unwrap(), b"ok\n");
}

#[test]
fn connect_tls_to_a_server_that_never_answers_times_out() {
    let _serial = shared();
    let dir = TempDir::new("outbound-silent");
    let (store, _) = generated_store(&dir, &["localhost"]);
    let config = ReactorConfig {
        connect_timeout: Duration::from_millis(300),
        ..ReactorConfig::default()
    };
    let server = Server::echo(config, tls_config(store));
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let (hello_tx, hello_rx) = mpsc::channel();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = silent.accept().unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        // Read the ClientHello, never answer, wait for the hang-up.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if got.is_empty() {
                        let _ = hello_tx.send(buf[0]);
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
        }
        got.len()
    });
    let cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
        .build()
        .unwrap();
    let started = Instant::now();
    let rx = dial(&server, silent_addr, "localhost", cfg);
    assert_eq!(
        hello_rx.recv_timeout(IO_TIMEOUT).unwrap(),
        0x16,
        "a ClientHello was sent"
    );
    match next(&rx) {
        Out::Lost { kind, made, reason } => {
            let waited = started.elapsed();
            assert_eq!((kind, made), ("ConnectFailed", false), "{reason}");
            assert!(reason.contains("timed out"), "{reason}");
            assert!(waited >= Duration::from_millis(250), "{waited:?}");
            assert!(waited < Duration::from_secs(3), "{waited:?}");
        }
        other => panic!("{other:?}"),
    }
    // The reactor closed the socket: the silent peer sees the hang-up.
    assert!(peer.join().unwrap() > 0);
}
