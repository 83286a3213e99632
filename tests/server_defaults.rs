//! The built binary started with no arguments in an empty working
//! directory serves all three listeners on their default ports: Gemini on
//! 1965 (the built-in capsule), HTTP on 8080 redirecting to the HTTPS status
//! page on 8443, and WebSocket `/echo` on 8443.
//!
//! The only test that uses fixed ports (they are the point of it): a lock
//! file serialises it with any other test binary that might use them, and
//! if another program holds one of them the test fails saying so.

mod server_support;

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::process::Command;

use server_support::{command, gemini, tls_connect, Server, TempDir, TIMEOUT};

/// The defaults the binary promises (see `torsion --help`).
const DEFAULT_PORTS: [u16; 3] = [1965, 8080, 8443];

/// Holds an exclusive `flock` on a file shared by every test process
/// (released when the file is closed).
struct PortLock {
    _file: File,
}

impl PortLock {
    fn acquire() -> PortLock {
        let path = std::env::temp_dir().join("torsion-default-ports.lock");
        let file = File::create(path).expect("lock file");
        // SAFETY: flock on a descriptor we own; blocks until it is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock");
        PortLock { _file: file }
    }
}

#[test]
fn no_arguments_serves_gemini_http_redirect_and_wss_on_the_default_ports() {
    let _lock = PortLock::acquire();
    for port in DEFAULT_PORTS {
        if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
            panic!(
                "127.0.0.1:{port} is taken by another program ({e}): this test needs \
                 torsion's default ports 1965, 8080 and 8443 free"
            );
        }
    }
    let dir = TempDir::new("defaults");
    let mut server = Server::start(command(&dir, &[]), 3);
    let gemini_addr = server.addr("gemini");
    let https_addr = server.addr("https");
    assert_eq!(gemini_addr.port(), 1965);
    assert_eq!(server.addr("http").port(), 8080);
    assert_eq!(https_addr.port(), 8443);
    // The certificate was generated in the state directory and kept.
    assert!(dir.path().join("state/torsion/cert.pem").is_file());

    // Gemini: the capsule built into the binary.
    let reply = gemini(gemini_addr, "gemini://localhost/");
    assert!(
        reply.header.starts_with("20 text/gemini"),
        "{}",
        reply.header
    );
    assert!(reply.body.contains("torsion"), "{}", reply.body);

    // HTTP → 301 → the HTTPS status page (curl follows, -k: self-signed).
    let out = Command::new("curl")
        .args(["-sSL", "-k", "--max-time"])
        .arg(TIMEOUT.as_secs().to_string())
        .args(["-w", "\n%{url_effective} %{http_code} %{num_redirects}"])
        .arg("http://127.0.0.1:8080/")
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let (page, summary) = text.rsplit_once('\n').unwrap();
    assert_eq!(summary, "https://127.0.0.1:8443/ 200 1", "{text}");
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains("<title>torsion · status</title>"), "{page}");

    // WebSocket over TLS on /echo.
    let tls = tls_connect(https_addr, "localhost", &[b"http/1.1"]);
    let (mut ws, response) = tungstenite::client("wss://localhost:8443/echo", tls).expect("wss");
    assert_eq!(response.status(), 101);
    ws.send(tungstenite::Message::text("hello over wss"))
        .unwrap();
    let back = ws.read().expect("echo");
    assert_eq!(back, tungstenite::Message::text("hello over wss"));
    let _ = ws.close(None);
    drop(ws);

    server.signal(libc::SIGTERM);
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{:#?}", server.lines());
}
