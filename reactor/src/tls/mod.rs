//! TLS as a transport inside a connection: a sans-IO rustls session, server
//! and client configuration, certificates that just work, Gemini-style client
//! certificates, SNI and reload.
//!
//! Nothing in [`session`] touches a socket: the reactor reads ciphertext from
//! the socket into its shared buffer and hands it to [`TlsSession`], takes
//! plaintext out for the protocol, puts the protocol's plaintext in, and
//! writes the session's pending ciphertext to the socket when it is writable.
//! Certificate loading and generation ([`certs`]) do read and write files:
//! they run at start-up and on reload, never per connection.
//!
//! # How the reactor drives a [`TlsSession`]
//!
//! Per connection, after `accept` (server) or `connect` (client):
//!
//! 1. Create the session: [`TlsSession::server`] / [`TlsSession::client`]. A
//!    client session has its ClientHello queued at once
//!    ([`TlsSession::has_pending_ciphertext`] is true): arm write interest.
//!    Start the handshake deadline timer ([`HANDSHAKE_TIMEOUT`]).
//! 2. **Readable**: read from the socket into the shared buffer until
//!    `WouldBlock` (edge-triggered). For each chunk `data` (a `&mut [u8]`:
//!    records are decrypted in place, overwriting the bytes consumed):
//!
//!    ```text
//!    let mut rest = data;
//!    loop {
//!        let used = match session.feed_ciphertext(rest) {
//!            Ok(n) => n,
//!            Err(e) => { /* step 5 */ }
//!        };
//!        rest = &mut rest[used..];
//!        if session.take_handshake_completed() {
//!            cancel deadline; info = session.info(); protocol.connection_made(..)
//!        }
//!        loop {                       // drain into a loop-wide scratch buffer
//!            let n = session.read_plaintext(&mut scratch);
//!            if n == 0 { break }
//!            protocol.data_received(&scratch[..n]);   // may call write_plaintext
//!        }
//!        if rest.is_empty() || used == 0 && session.peer_closed() { break }
//!    }
//!    ```
//!
//!    `feed_ciphertext` stops early (returns less than `rest.len()`) after
//!    each record that carried plaintext, and takes nothing while that
//!    plaintext waits: draining it lets it go on. Stopping there is what
//!    lets the protocol pause reading between records; the caller keeps the
//!    rest (the reactor's backlog) until it resumes. An incomplete record at
//!    the end of `rest` is copied into the session (the only per-connection
//!    input buffer, held only until the record completes) and counts as
//!    consumed. It returns `rest.len()` after `close_notify`: bytes after it
//!    are ignored.
//!    A socket read of 0 bytes (TCP EOF) is *not* fed: call
//!    [`TlsSession::peer_closed`] to tell a clean close (close_notify seen)
//!    from a truncation, then close.
//! 3. After every event (and after the protocol wrote), if
//!    [`TlsSession::has_pending_ciphertext`], call
//!    [`TlsSession::write_ciphertext`] with the socket; if data is still
//!    pending afterwards the socket would block: arm write interest, disarm it
//!    when nothing is pending (never keep it armed idle).
//! 4. **Writable**: [`TlsSession::write_ciphertext`] again. Backpressure uses
//!    [`TlsSession::pending_len`] exactly like a TCP write queue: pause the
//!    producer above the high-water mark, resume below the low-water mark.
//!    [`TlsSession::write_plaintext`] never refuses bytes.
//! 5. **Errors**: a [`TlsError`] from `feed_ciphertext` is fatal for the
//!    connection only. rustls has usually queued an alert: call
//!    `write_ciphertext` once more (ignore its result), then close. Log at
//!    debug and count `tls_failures` when [`TlsError::is_handshake_failure`].
//! 6. **Close**: [`TlsSession::send_close_notify`], flush with
//!    `write_ciphertext` (bounded by a deadline), then close the socket.
//!    Before the handshake has completed there is no session to close:
//!    `send_close_notify` does nothing then.
//!
//! [`TlsSession::info`] is valid once the handshake is complete; it parses the
//! peer certificate and checks it against the CA, so call it once and keep the
//! result.

pub mod certs;
pub mod client_auth;
pub mod client_hello;
pub mod config;
pub mod error;
pub mod info;
pub mod provider;
mod serial;
pub mod session;
pub mod sni;

#[cfg(test)]
mod tests;

pub use certs::{CertError, GeneratedCert, KeyAlgorithm};
pub use client_auth::{load_ca_roots, ClientAuth};
pub use config::{
    ClientTlsConfig, ClientTlsConfigBuilder, ClientVerify, ServerTlsConfig, ServerTlsConfigBuilder,
    TlsVersions,
};
pub use error::TlsError;
pub use info::{PeerCertInfo, TlsInfo};
pub use session::TlsSession;
pub use sni::{CertSource, CertStore, ReloadError};

use std::time::Duration;

/// How long a peer may take to complete the handshake before the reactor
/// closes the connection: a stalled peer must cost nothing (Jetforce 1.0).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
