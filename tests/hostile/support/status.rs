//! What the server says about itself: the counters of its status page
//! (`wss://…/status`, README "Status page") and the lines of its log.

use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::wire::tls_client_session;
use crate::server_support::Server;

/// How long reading a snapshot may take (a handshake and one message).
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// One JSON snapshot of the status page: every listener's line
/// (`{"name":"gemini",…}`) and the WebSocket module's counters
/// (`"ws":{…}`). Hand-parsed: the shape is fixed and flat
/// (`StatusSnapshot::write_json`), and no JSON crate is a dependency.
pub struct Status(String);

impl Status {
    /// Connects to the status endpoint of the HTTPS listener at `https` and
    /// returns the first snapshot (the history message sent first is
    /// skipped). Panics if none arrives within a few seconds.
    pub fn read(https: SocketAddr) -> Status {
        let tcp = TcpStream::connect_timeout(&https, STATUS_TIMEOUT).expect("connect /status");
        tcp.set_read_timeout(Some(STATUS_TIMEOUT)).expect("timeout");
        tcp.set_write_timeout(Some(STATUS_TIMEOUT))
            .expect("timeout");
        let tls = rustls::StreamOwned::new(tls_client_session(&[b"http/1.1"]), tcp);
        let url = format!("wss://localhost:{}/status", https.port());
        let (mut ws, _) = tungstenite::client(url, tls).expect("/status handshake");
        loop {
            if let tungstenite::Message::Text(t) = ws.read().expect("/status snapshot") {
                if t.as_str().contains("\"protocols\":") {
                    let _ = ws.close(None);
                    return Status(t.as_str().to_owned());
                }
            }
        }
    }

    /// Counter `key` of the listener line named `name` (`gemini`, `http`,
    /// `websocket`: the HTTPS listener). Panics when absent.
    pub fn protocol(&self, name: &str, key: &str) -> u64 {
        self.counter(&format!("{{\"name\":\"{name}\""), key)
    }

    /// Counter `key` of the WebSocket module (`protocol_errors`...).
    /// Panics when absent.
    pub fn ws(&self, key: &str) -> u64 {
        self.counter("\"ws\":{", key)
    }

    /// The number after `"key":` in the object that starts at `scope`.
    fn counter(&self, scope: &str, key: &str) -> u64 {
        let json = &self.0;
        let at = json
            .find(scope)
            .unwrap_or_else(|| panic!("no {scope} in status JSON {json}"));
        let object = &json[at..];
        let object = &object[..object.find('}').unwrap_or(object.len())];
        let field = format!("\"{key}\":");
        let start = object
            .find(&field)
            .unwrap_or_else(|| panic!("no {key} in {object}"))
            + field.len();
        object[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a number in {object}"))
    }
}

impl fmt::Display for Status {
    /// The JSON as received, for failure messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Polls the status page until `counter` of it reaches `want` (a counter
/// may be flushed a moment after the event it counts); returns the value.
/// Panics after a few seconds with `what`, the value and the JSON.
pub fn wait_status(
    https: SocketAddr,
    what: &str,
    want: u64,
    counter: impl Fn(&Status) -> u64,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let status = Status::read(https);
        let got = counter(&status);
        if got >= want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: status page says {got}, want at least {want}; JSON: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lines of the server's log so far that contain every one of `needles`.
pub fn count_lines(server: &Server, needles: &[&str]) -> usize {
    server
        .lines()
        .iter()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}
