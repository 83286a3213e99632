//! Python's `websockets` as a second, independent client: echo of text,
//! binary and a fragmented message, ping, the close handshake, and 1009.
//! The library must be installed (`pip install websockets`; `.ci/run` does):
//! its absence fails the test rather than skipping it.

mod websocket_support;

use std::process::Command;
use std::time::{Duration, Instant};

use torsion_protocols::websocket::WsConfig;
use websocket_support::Server;

#[test]
fn python_websockets_client() {
    let server = Server::start(WsConfig::default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ws_python_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(format!("ws://{}", server.addr))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    // Bounded: the script has its own timeouts, this is the backstop.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the Python client hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "Python `websockets` is missing: pip install websockets\n{stderr}"
    );
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.starts_with("ok"), "{stdout}");
    let p = server.wait_for("python's connections closed", |p| p.stats.sockets_open == 0);
    assert_eq!(p.stats.upgrades, 2);
    assert_eq!(p.stats.protocol_errors, 1, "the 1009");
}
