//! Log lines that a client cannot forge.
//!
//! Every byte that came from a client (the request URL, a CGI script's
//! stderr, a meta a script chose) goes through
//! [`escape_for_log`] before it reaches
//! the log.
//!
//! The access log is one line per answered request, at info level with the
//! target `access`, so it can be routed or silenced on its own
//! (`RUST_LOG=access=info`).

use std::fmt;
use std::time::Duration;

use torsion_reactor::PeerAddr;

use super::status::Status;
pub use crate::log_escape::escape_for_log;

/// Everything the access log says about one request.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    /// Who asked.
    pub peer: PeerAddr,
    /// The request line as received (escaped when written), or empty when no
    /// complete request arrived.
    pub url: &'a [u8],
    /// The status answered.
    pub status: Status,
    /// The meta answered (the MIME type for 20). Escaped when written: a CGI
    /// script chooses it.
    pub meta: &'a str,
    /// Bytes that reached the peer, header included.
    pub bytes: u64,
    /// From the connection being ready (after the handshake) to the end of
    /// the response.
    pub elapsed: Duration,
}

impl fmt::Display for AccessRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = escape_for_log(self.url);
        let meta = escape_for_log(self.meta.as_bytes());
        write!(
            f,
            "{} \"{}\" {} \"{}\" {} {}ms",
            PeerIp(self.peer),
            url,
            self.status,
            meta,
            self.bytes,
            self.elapsed.as_millis()
        )
    }
}

/// The client's address without the port (as Jetforce logs it).
struct PeerIp(PeerAddr);

impl fmt::Display for PeerIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.ip() {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("unix"),
        }
    }
}

/// Writes the access-log line for one request.
pub fn log_access(record: &AccessRecord<'_>) {
    log::info!(target: "access", "{record}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_line_escapes_url_and_meta() {
        let record = AccessRecord {
            peer: PeerAddr::Tcp("192.0.2.7:4242".parse().unwrap()),
            url: b"gemini://h/\r\nFAKE 20",
            status: Status::Success,
            meta: "text/gemini\"x",
            bytes: 1234,
            elapsed: Duration::from_millis(17),
        };
        assert_eq!(
            record.to_string(),
            "192.0.2.7 \"gemini://h/\\x0D\\x0AFAKE 20\" 20 \"text/gemini\\x22x\" 1234 17ms"
        );
    }
}
