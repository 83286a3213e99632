//! Python's `websockets` as a second, independent client: echo of text,
//! binary and a fragmented message, ping, the close handshake, and 1009.
//! The library must be installed (`pip install websockets`; `.ci/run` does):
//! its absence fails the test rather than skipping it.

mod websocket_support;

use std::time::Duration;

use torsion_protocols::websocket::WsConfig;
use websocket_support::{run_python_client, Server};

#[test]
fn python_websockets_client() {
    let server = Server::start(WsConfig::default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ws_python_client.py");
    let stdout = run_python_client(
        &[script.to_string(), format!("ws://{}", server.addr)],
        Duration::from_secs(20),
    );
    assert!(stdout.starts_with("ok"), "{stdout}");
    let p = server.wait_for("python's connections closed", |p| p.stats.sockets_open == 0);
    assert_eq!(p.stats.upgrades, 2);
    assert_eq!(p.stats.protocol_errors, 1, "the 1009");
}
