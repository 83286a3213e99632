//! Many concurrent clients through one echo reactor: every byte comes back,
//! in order, whatever the chunking.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{Echo, Rng};
use torsion_reactor::{PeerInfo, Protocol, ReactorConfig};

const CLIENTS: usize = 500;
const BYTES_PER_CLIENT: usize = 64 * 1024;
/// Largest chunk a client writes at once.
const MAX_CHUNK: usize = 8 * 1024;
/// A client lets at most this much echo pile up before reading it back, so
/// neither side can fill both kernel buffers and deadlock.
const MAX_OUTSTANDING: usize = 32 * 1024;

/// One client: writes `data` in random chunks, reads the echo back at random
/// points, half-closes, reads the rest to EOF. Returns what came back.
fn client(addr: std::net::SocketAddr, seed: u64, start: &Barrier) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let data = rng.bytes(BYTES_PER_CLIENT);
    let mut s = common::connect(addr);
    start.wait();
    let mut back = Vec::with_capacity(BYTES_PER_CLIENT);
    let mut sent = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while sent < data.len() {
        let n = rng.range(1, MAX_CHUNK).min(data.len() - sent);
        s.write_all(&data[sent..sent + n]).expect("write");
        sent += n;
        let allowed = rng.range(0, MAX_OUTSTANDING);
        while sent - back.len() > allowed {
            let got = s.read(&mut buf).expect("read echo");
            assert!(got > 0, "server closed early (seed {seed})");
            back.extend_from_slice(&buf[..got]);
        }
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    if let Err(e) = s.read_to_end(&mut back) {
        panic!(
            "client {seed}: read to EOF failed after {} of {} bytes: {e}",
            back.len(),
            data.len()
        );
    }
    (data, back)
}

#[test]
fn five_hundred_clients_get_every_byte_back_in_order() {
    let started = std::time::Instant::now();
    let (addr, running) = common::start(
        ReactorConfig::default(),
        |r| {
            let id = r
                .listen(common::localhost0(), |_: &PeerInfo| {
                    Box::new(Echo) as Box<dyn Protocol>
                })
                .expect("listen");
            (common::tcp_addr(r, id), id)
        },
        |r, (_, id)| r.listener_stats(id),
    );
    let (addr, _) = addr;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let b = Arc::clone(&barrier);
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || client(addr, 1 + i as u64, &b))
                .expect("spawn client")
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let (sent, back) = t.join().expect("client panicked");
        assert_eq!(back.len(), sent.len(), "client {i}: length differs");
        if let Some(pos) = sent.iter().zip(&back).position(|(a, b)| a != b) {
            panic!("client {i}: first difference at byte {pos}");
        }
    }
    let stats = running.stop().expect("listener stats");
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.bytes_in, (CLIENTS * BYTES_PER_CLIENT) as u64);
    assert_eq!(stats.bytes_out, (CLIENTS * BYTES_PER_CLIENT) as u64);
    // Each client saw EOF, which the server sends only when it has closed.
    assert_eq!(stats.closed, CLIENTS as u64);
    assert_eq!(stats.active, 0);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "took {:?}",
        started.elapsed()
    );
}
