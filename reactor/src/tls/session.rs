//! A sans-IO TLS session: ciphertext in from the socket, plaintext out to the
//! protocol, plaintext in from the protocol, ciphertext out to the socket.
//! See the module docs of [`super`] for the order of calls.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConnection, Connection, HandshakeKind, ServerConnection};

use super::certs::unix_now;
use super::client_auth::is_authorised;
use super::config::{ClientTlsConfig, ServerTlsConfig};
use super::error::TlsError;
use super::info::{cipher_names, version_name, PeerCertInfo, TlsInfo};

/// One TLS connection, server or client side, driven by the reactor.
pub struct TlsSession {
    conn: Connection,
    /// Server side: the CA check computing `authorised` (None: no CA).
    ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Client side: the host name sent as SNI (None for IP literals).
    sni_sent: Option<Box<str>>,
    /// Approximate bytes accepted by [`Self::write_plaintext`] and not yet
    /// written to the socket (see [`Self::pending_len`]).
    queued: usize,
    /// Client side: whether server certificates are verified.
    verifies: bool,
    /// close_notify received from the peer.
    peer_closed: bool,
    /// We sent close_notify; later plaintext is dropped.
    closing: bool,
    /// `take_handshake_completed` has returned true once.
    handshake_reported: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.conn, Connection::Server(_)))
            .field("handshaking", &self.conn.is_handshaking())
            .field("queued", &self.queued)
            .field("peer_closed", &self.peer_closed)
            .finish()
    }
}

impl TlsSession {
    fn new(mut conn: Connection) -> Self {
        // No rustls-side cap: the reactor applies its own high/low water
        // marks to pending_len(), as for a TCP write queue.
        conn.set_buffer_limit(None);
        TlsSession {
            conn,
            ca: None,
            sni_sent: None,
            queued: 0,
            verifies: false,
            peer_closed: false,
            closing: false,
            handshake_reported: false,
        }
    }

    /// A server session for an accepted connection.
    pub fn server(config: &ServerTlsConfig) -> Result<Self, TlsError> {
        let conn = ServerConnection::new(config.rustls.clone()).map_err(TlsError::Config)?;
        let mut s = Self::new(Connection::Server(conn));
        s.ca = config.ca.clone();
        Ok(s)
    }

    /// A client session to `host` (a DNS name, sent as SNI, or an IP
    /// literal, optionally in brackets, sent without SNI). The ClientHello is
    /// queued at once: write it when the socket is writable.
    pub fn client(config: &ClientTlsConfig, host: &str) -> Result<Self, TlsError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|_| TlsError::InvalidServerName(host.to_owned()))?;
        let sni_sent = match &name {
            ServerName::DnsName(d) => Some(d.as_ref().to_ascii_lowercase().into_boxed_str()),
            _ => None,
        };
        let conn = ClientConnection::new(config.rustls.clone(), name).map_err(TlsError::Config)?;
        let mut s = Self::new(Connection::Client(conn));
        s.sni_sent = sni_sent;
        s.verifies = config.verifies;
        Ok(s)
    }

    /// Ingests ciphertext read from the socket and processes every complete
    /// record. Returns how many bytes were consumed: all of `data`, unless
    /// decrypted plaintext is waiting to be read, in which case drain it
    /// with [`Self::read_plaintext`] and feed the rest again. After the peer's
    /// close_notify, further bytes are consumed and ignored.
    ///
    /// Never pass an empty slice for TCP EOF; see [`Self::peer_closed`].
    ///
    /// On error the session is dead; an alert for the peer may be queued:
    /// flush it with [`Self::write_ciphertext`] before closing.
    pub fn feed_ciphertext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        let mut used = 0usize;
        loop {
            let rest = match data.get(used..) {
                Some(r) if !r.is_empty() => r,
                _ => break,
            };
            if self.peer_closed {
                return Ok(data.len());
            }
            let mut reader = rest;
            let n = match self.conn.read_tls(&mut reader) {
                Ok(n) => n,
                // rustls signals "received plaintext buffer full" with
                // ErrorKind::Other: the caller must drain plaintext first.
                Err(e) if e.kind() == io::ErrorKind::Other => break,
                Err(e) => {
                    return Err(TlsError::from_rustls(
                        rustls::Error::General(e.to_string()),
                        self.conn.is_handshaking(),
                    ));
                }
            };
            if n == 0 {
                // Only after close_notify (the reader is never empty here).
                self.peer_closed = true;
                return Ok(data.len());
            }
            used = used.saturating_add(n);
            let handshaking = self.conn.is_handshaking();
            match self.conn.process_new_packets() {
                Ok(state) => {
                    if state.peer_has_closed() {
                        self.peer_closed = true;
                    }
                }
                Err(e) => return Err(TlsError::from_rustls(e, handshaking)),
            }
        }
        Ok(used)
    }

    /// Copies decrypted plaintext into `out`; returns the number of bytes,
    /// 0 when none is waiting.
    pub fn read_plaintext(&mut self, out: &mut [u8]) -> usize {
        self.conn.reader().read(out).unwrap_or_default()
    }

    /// Queues the protocol's plaintext for encryption. Every byte is accepted
    /// (it is sent once the handshake completes, if it has not yet);
    /// backpressure is the caller's, through [`Self::pending_len`]. Returns the
    /// number of bytes accepted: `data.len()`, or 0 after
    /// [`Self::send_close_notify`].
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        if self.closing || data.is_empty() {
            return 0;
        }
        let n = self.conn.writer().write(data).unwrap_or_default();
        self.queued = self.queued.saturating_add(n);
        n
    }

    /// True when ciphertext (handshake, data or alerts) waits to be written:
    /// keep write interest armed exactly while this is true.
    pub fn has_pending_ciphertext(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes pending ciphertext to `w` (the socket) until it is all written
    /// or `w` would block. Returns the bytes written; `Err(WouldBlock)` only
    /// when nothing could be written. If [`Self::has_pending_ciphertext`] is
    /// still true afterwards, the socket is full: wait for writability.
    pub fn write_ciphertext(&mut self, w: &mut dyn Write) -> io::Result<usize> {
        let mut total = 0usize;
        while self.conn.wants_write() {
            let handshaking = self.conn.is_handshaking();
            match self.conn.write_tls(w) {
                Ok(0) => break,
                Ok(n) => {
                    total = total.saturating_add(n);
                    if !handshaking {
                        self.queued = self.queued.saturating_sub(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => break,
                Err(e) => return Err(e),
            }
        }
        if !self.conn.wants_write() && !self.conn.is_handshaking() {
            // Both rustls buffers are empty: plaintext queued during the
            // handshake was encrypted when it completed and is now written.
            self.queued = 0;
        }
        Ok(total)
    }

    /// Bytes queued for the peer and not yet written to the socket,
    /// including plaintext waiting for the handshake to complete: the figure
    /// the reactor's high/low water marks compare. Approximate to within the
    /// record overhead (22 bytes per 16 KiB) and the handshake's own bytes.
    pub fn pending_len(&self) -> usize {
        if self.conn.wants_write() {
            self.queued.max(1)
        } else {
            self.queued
        }
    }

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Returns true exactly once, the first time it is called after the
    /// handshake completed: the moment to cancel the handshake deadline, call
    /// [`Self::info`] and start the protocol.
    pub fn take_handshake_completed(&mut self) -> bool {
        if self.handshake_reported || self.conn.is_handshaking() {
            return false;
        }
        self.handshake_reported = true;
        true
    }

    /// True when the peer sent close_notify (a clean end). At TCP EOF without
    /// it, the peer may have been cut off mid-stream (truncation).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Queues a close_notify alert; flush it with [`Self::write_ciphertext`],
    /// then close the socket. Plaintext written afterwards is dropped.
    pub fn send_close_notify(&mut self) {
        if !self.closing {
            self.closing = true;
            self.conn.send_close_notify();
        }
    }

    /// Facts about the session once the handshake is complete (`None`
    /// before). Parses the peer certificate and checks it against the CA:
    /// call once and keep the result.
    pub fn info(&self) -> Option<TlsInfo> {
        if self.conn.is_handshaking() {
            return None;
        }
        let version = version_name(self.conn.protocol_version()?);
        let (cipher_suite, cipher_iana, cipher_openssl) =
            cipher_names(self.conn.negotiated_cipher_suite()?.suite());
        let sni = match &self.conn {
            Connection::Server(s) => s.server_name().map(str::to_owned),
            Connection::Client(_) => self.sni_sent.as_deref().map(str::to_owned),
        };
        let peer_cert = self.conn.peer_certificates().and_then(|chain| {
            let authorised = match &self.conn {
                Connection::Server(_) => self
                    .ca
                    .as_deref()
                    .is_some_and(|ca| is_authorised(ca, chain)),
                Connection::Client(_) => self.verifies,
            };
            PeerCertInfo::from_der(chain.first()?, unix_now(), authorised)
        });
        Some(TlsInfo {
            version,
            cipher_suite,
            cipher_iana,
            cipher_openssl,
            sni,
            alpn: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            resumed: self.conn.handshake_kind() == Some(HandshakeKind::Resumed),
            peer_cert,
        })
    }
}
