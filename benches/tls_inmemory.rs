//! TLS in memory, no sockets: the ceiling the reactor's TLS transport is
//! compared against (issue 3), and the heap an idle TLS connection holds.
//!
//! `cargo bench --bench tls_inmemory` (harness = false). Prints, for the
//! crypto provider compiled into `torsion_reactor::tls`:
//! - full TLS 1.3 handshakes per second (client + server on one core) and
//!   the server-side CPU per handshake (time spent inside server-session
//!   calls only), for an ECDSA P-256 and an Ed25519 certificate, and for
//!   resumed handshakes; median of several short runs;
//! - heap bytes held per idle server session after a handshake and one
//!   request/response, measured with a counting global allocator.
//!
//! Environment: `TLS_BENCH_SECS` (per run, default 1.5), `TLS_BENCH_RUNS`
//! (default 3).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use torsion_reactor::tls::{
    self, CertSource, CertStore, ClientTlsConfig, ClientVerify, KeyAlgorithm, ServerTlsConfig,
    TlsSession, TlsVersions,
};

/// Counts live heap bytes so the idle-connection cost can be measured.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only
// counts sizes on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Moves ciphertext from one session to the other, timing calls on the
/// server session. Returns bytes moved.
fn transfer(
    from: &mut TlsSession,
    to: &mut TlsSession,
    from_is_server: bool,
    wire: &mut Vec<u8>,
    scratch: &mut [u8],
    server_time: &mut Duration,
) -> usize {
    wire.clear();
    let t = Instant::now();
    from.write_ciphertext(wire).expect("write to Vec");
    if from_is_server {
        *server_time += t.elapsed();
    }
    let mut rest = &mut wire[..];
    while !rest.is_empty() {
        let t = Instant::now();
        let used = to.feed_ciphertext(rest).expect("handshake");
        while to.read_plaintext(scratch) > 0 {}
        if !from_is_server {
            *server_time += t.elapsed();
        }
        rest = &mut rest[used..];
    }
    wire.len()
}

fn handshake(
    client_cfg: &ClientTlsConfig,
    server_cfg: &ServerTlsConfig,
    wire: &mut Vec<u8>,
    scratch: &mut [u8],
    server_time: &mut Duration,
) -> (TlsSession, TlsSession) {
    let mut c = TlsSession::client(client_cfg, "bench.test").expect("client");
    let t = Instant::now();
    let mut s = TlsSession::server(server_cfg).expect("server");
    *server_time += t.elapsed();
    loop {
        let a = transfer(&mut c, &mut s, false, wire, scratch, server_time);
        let b = transfer(&mut s, &mut c, true, wire, scratch, server_time);
        if a == 0 && b == 0 {
            break;
        }
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    (c, s)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn server_config(alg: KeyAlgorithm) -> ServerTlsConfig {
    let (cert, key) =
        tls::certs::generate_pem(&["bench.test".to_string()], alg, now()).expect("generate");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .map(|c| c.expect("pem"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let ck = tls::certs::certified_key(
        chain,
        key,
        &tls::provider::provider(),
        "bench-cert".as_ref(),
        "bench-key".as_ref(),
    )
    .expect("certified key");
    let store = CertStore::new();
    store
        .add(&["bench.test"], CertSource::Static(ck))
        .expect("store");
    ServerTlsConfig::builder(store)
        .build()
        .expect("server config")
}

struct Run {
    per_sec: f64,
    /// Median server time per handshake: robust to the benchmark being
    /// preempted on a shared machine (a preempted sample is an outlier).
    server_us: f64,
}

fn run(client_cfg: &ClientTlsConfig, server_cfg: &ServerTlsConfig, secs: f64, resume: bool) -> Run {
    let mut wire = Vec::with_capacity(8192);
    let mut scratch = vec![0u8; 16384];
    let mut samples: Vec<f64> = Vec::with_capacity(100_000);
    // Warm the client's session cache when resuming.
    let _ = handshake(
        client_cfg,
        server_cfg,
        &mut wire,
        &mut scratch,
        &mut Duration::default(),
    );
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    while start.elapsed() < limit {
        let mut server_time = Duration::default();
        let (mut c, mut s) = handshake(
            client_cfg,
            server_cfg,
            &mut wire,
            &mut scratch,
            &mut server_time,
        );
        // Deliver the TLS 1.3 tickets (the resumption case needs them).
        transfer(
            &mut s,
            &mut c,
            true,
            &mut wire,
            &mut scratch,
            &mut server_time,
        );
        if samples.is_empty() {
            assert_eq!(
                s.info().map(|i| i.resumed),
                Some(resume),
                "resumption state"
            );
        }
        samples.push(server_time.as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed().as_secs_f64();
    Run {
        per_sec: samples.len() as f64 / elapsed,
        server_us: median(samples),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn bench_handshakes(secs: f64, runs: usize) {
    for (label, alg) in [
        ("ECDSA P-256", KeyAlgorithm::EcdsaP256),
        ("Ed25519", KeyAlgorithm::Ed25519),
    ] {
        let server_cfg = server_config(alg);
        for resume in [false, true] {
            let client_cfg = ClientTlsConfig::builder(ClientVerify::NoVerify)
                .versions(TlsVersions::Tls13Only)
                .resumption(resume)
                .build()
                .expect("client config");
            let results: Vec<Run> = (0..runs)
                .map(|_| run(&client_cfg, &server_cfg, secs, resume))
                .collect();
            let per_sec = median(results.iter().map(|r| r.per_sec).collect());
            let server_us = median(results.iter().map(|r| r.server_us).collect());
            println!(
                "{{\"bench\":\"tls13_handshake\",\"provider\":\"{}\",\"cert\":\"{label}\",\"resumed\":{resume},\"pairs_per_sec\":{per_sec:.0},\"server_us_per_handshake\":{server_us:.1},\"server_handshakes_per_core_sec\":{:.0}}}",
                tls::provider::PROVIDER_NAME,
                1e6 / server_us
            );
        }
    }
}

fn bench_idle_memory() {
    const N: usize = 500;
    let server_cfg = server_config(KeyAlgorithm::EcdsaP256);
    let (client_cert, client_key) =
        tls::certs::generate_pem(&["client".to_string()], KeyAlgorithm::EcdsaP256, now())
            .expect("client cert");
    let mut wire = Vec::with_capacity(8192);
    let mut scratch = vec![0u8; 16384];
    for (label, versions, with_client_cert) in [
        ("TLS1.3", TlsVersions::Tls13Only, false),
        ("TLS1.2", TlsVersions::Tls12Only, false),
        ("TLS1.3+client-cert", TlsVersions::Tls13Only, true),
    ] {
        let mut b = ClientTlsConfig::builder(ClientVerify::NoVerify)
            .versions(versions)
            .resumption(false);
        if with_client_cert {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(client_cert.as_bytes())
                    .map(|c| c.expect("pem"))
                    .collect();
            let key = PrivateKeyDer::from_pem_slice(client_key.as_bytes()).expect("key");
            b = b.client_cert(chain, key);
        }
        let client_cfg = b.build().expect("client");
        let mut servers: Vec<Box<TlsSession>> = Vec::with_capacity(N);
        let mut clients = Vec::with_capacity(N);
        for _ in 0..N {
            let (mut c, mut s) = handshake(
                &client_cfg,
                &server_cfg,
                &mut wire,
                &mut scratch,
                &mut Duration::default(),
            );
            // One Gemini-sized request and response, then idle.
            c.write_plaintext(b"gemini://bench.test/\r\n");
            transfer(
                &mut c,
                &mut s,
                false,
                &mut wire,
                &mut scratch,
                &mut Duration::default(),
            );
            s.write_plaintext(b"20 text/gemini\r\n# Hello\n");
            transfer(
                &mut s,
                &mut c,
                true,
                &mut wire,
                &mut scratch,
                &mut Duration::default(),
            );
            servers.push(Box::new(s));
            clients.push(c);
        }
        drop(clients);
        let with_servers = live();
        drop(servers);
        let without_servers = live();
        let per_conn = (with_servers - without_servers) as f64 / N as f64;
        println!(
            "{{\"bench\":\"tls_idle_server_heap\",\"provider\":\"{}\",\"case\":\"{label}\",\"heap_bytes_per_conn\":{per_conn:.0},\"inline_size_of_TlsSession\":{}}}",
            tls::provider::PROVIDER_NAME,
            std::mem::size_of::<TlsSession>(),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a `cargo test --all-targets` run must
    // not start a benchmark.
    if !std::env::args().any(|a| a == "--bench" || a == "--memory-only") {
        println!("TLS in-memory benchmark: run it with `cargo bench --bench tls_inmemory`");
        return;
    }
    let secs: f64 = std::env::var("TLS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.5);
    let runs: usize = std::env::var("TLS_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    bench_idle_memory();
    if std::env::args().any(|a| a == "--memory-only") {
        return;
    }
    bench_handshakes(secs, runs);
}
