//! A sans-IO TLS session: ciphertext in from the socket, plaintext out to the
//! protocol, plaintext in from the protocol, ciphertext out to the socket.
//! See the module docs of [`super`] for the order of calls.
//!
//! Built on rustls's unbuffered API so that an idle connection holds no
//! buffers: records are decrypted in place in the caller's read buffer; only
//! an incomplete record (or handshake message) is copied into the session,
//! and only until it completes. Outgoing ciphertext is kept while unsent and
//! released once the socket has taken it, like the reactor's TCP write queue.

use std::io::{self, Write};
use std::mem;
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, UnbufferedStatus, WriteTraffic,
};
use rustls::{CommonState, HandshakeKind};

use super::certs::unix_now;
use super::client_auth::is_authorised;
use super::client_hello::{scan_sni, SniScan};
use super::config::{ClientTlsConfig, ServerTlsConfig};
use super::error::TlsError;
use super::info::{cipher_names, version_name, PeerCertInfo, TlsInfo};

/// TLS record header length (type, version, length).
const RECORD_HEADER: usize = 5;

/// Most ciphertext a session holds while waiting for a record or handshake
/// message to complete. rustls accepts handshake messages up to 64 KiB,
/// which may arrive split over records whose headers are held until the
/// message completes; twice that, and no more, so a peer splitting its
/// messages into tiny records cannot make a connection hold six times as
/// much. A record alone is at most 18 KiB.
pub const MAX_HELD_INPUT: usize = 128 * 1024;

/// Plaintext per record rustls produces (RFC 8446 §5.1): sizes the first
/// guess of an encryption's output.
const MAX_FRAGMENT: usize = 16_384;

/// Generous per-record expansion (header, explicit nonce, tag, content
/// type): a guess only; rustls says exactly how much it needs when short.
const RECORD_OVERHEAD: usize = 64;

/// rustls's connection, either side.
enum Conn {
    Server(UnbufferedServerConnection),
    Client(UnbufferedClientConnection),
}

/// What a run of rustls's state machine is for.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// Process input; stop at the first record of plaintext (left inside
    /// rustls) or once no complete record is left.
    Feed,
    /// Only emit what rustls has queued (handshake messages, alerts).
    Flush,
    /// Encrypt this plaintext as soon as traffic keys allow.
    Write(&'a [u8]),
    /// Queue close_notify as soon as traffic keys allow.
    Close,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A record's plaintext waits inside rustls ([`Mode::Feed`] only).
    Plaintext,
    /// rustls waits for input; for a write or close, nothing was done
    /// because the handshake is not complete.
    Idle,
    /// The write or close was done.
    Done,
    /// Both sides sent close_notify: nothing more will happen.
    Closed,
}

/// The state the state-machine handlers update, apart from `conn` so both
/// can be borrowed at once.
#[derive(Default)]
struct Io {
    /// Ciphertext for the peer; `out[out_sent..]` is unsent. No capacity
    /// when everything was sent.
    out: Vec<u8>,
    out_sent: usize,
    /// Plaintext taken out of rustls before the protocol read it (a record
    /// bigger than the caller's buffer, or one that arrived ahead of a
    /// write). Usually empty, without capacity.
    plain: Vec<u8>,
    /// A decrypted record waits inside rustls.
    plain_ready: bool,
    /// close_notify received from the peer.
    peer_closed: bool,
}

/// One TLS connection, server or client side, driven by the reactor.
pub struct TlsSession {
    conn: Conn,
    io: Io,
    /// Ciphertext rustls has not finished with: an incomplete record or
    /// handshake message (possibly partly processed in place), which the
    /// next input continues. Empty, without capacity, between records.
    partial: Vec<u8>,
    /// Plaintext the protocol wrote before the handshake completed.
    early_plain: Vec<u8>,
    /// Server side: the CA check computing `authorised` (None: no CA).
    ca: Option<Arc<dyn ClientCertVerifier>>,
    /// The server name: sent (client side, None for IP literals) or
    /// received (server side, read from the ClientHello).
    sni: Option<Box<str>>,
    /// Server side: the ClientHello has not been scanned for SNI yet.
    sni_pending: bool,
    /// Client side: whether server certificates are verified.
    verifies: bool,
    /// We sent close_notify; later plaintext is dropped.
    closing: bool,
    /// Both sides sent close_notify.
    closed: bool,
    /// rustls reported an error: the session is dead.
    failed: bool,
    /// `take_handshake_completed` has returned true once.
    handshake_reported: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.conn, Conn::Server(_)))
            .field("handshaking", &self.is_handshaking())
            .field("pending", &self.pending_len())
            .field("partial", &self.partial.len())
            .field("peer_closed", &self.io.peer_closed)
            .finish()
    }
}

impl TlsSession {
    fn new(conn: Conn) -> Self {
        TlsSession {
            conn,
            io: Io::default(),
            partial: Vec::new(),
            early_plain: Vec::new(),
            ca: None,
            sni: None,
            sni_pending: false,
            verifies: false,
            closing: false,
            closed: false,
            failed: false,
            handshake_reported: false,
        }
    }

    /// A server session for an accepted connection.
    pub fn server(config: &ServerTlsConfig) -> Result<Self, TlsError> {
        let conn =
            UnbufferedServerConnection::new(config.rustls.clone()).map_err(TlsError::Config)?;
        let mut s = Self::new(Conn::Server(conn));
        s.ca = config.ca.clone();
        s.sni_pending = true;
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
        let sni = match &name {
            ServerName::DnsName(d) => Some(d.as_ref().to_ascii_lowercase().into_boxed_str()),
            _ => None,
        };
        let conn = UnbufferedClientConnection::new(config.rustls.clone(), name)
            .map_err(TlsError::Config)?;
        let mut s = Self::new(Conn::Client(conn));
        s.sni = sni;
        s.verifies = config.verifies;
        if let (_, Err(e)) = s.run(&mut [], Mode::Flush) {
            return Err(TlsError::Config(e));
        }
        Ok(s)
    }

    /// Ingests ciphertext read from the socket and processes complete
    /// records, decrypting them in place in `data` (whose consumed bytes are
    /// overwritten). Returns how many bytes were consumed. It stops early,
    /// after a record that carried plaintext: drain that with
    /// [`Self::read_plaintext`] and feed the rest again; it returns 0 while
    /// plaintext waits to be read. A trailing incomplete record is copied
    /// into the session and counts as consumed. After the peer's
    /// close_notify, further bytes are consumed and ignored.
    ///
    /// Never pass an empty slice for TCP EOF; see [`Self::peer_closed`].
    ///
    /// On error the session is dead; an alert for the peer may be queued:
    /// flush it with [`Self::write_ciphertext`] before closing.
    pub fn feed_ciphertext(&mut self, data: &mut [u8]) -> Result<usize, TlsError> {
        if self.failed {
            return Err(TlsError::Protocol(rustls::Error::General(
                "TLS session already failed".into(),
            )));
        }
        if self.io.plain_ready || !self.io.plain.is_empty() {
            return Ok(0);
        }
        let mut off = 0usize;
        while off < data.len() && !self.io.peer_closed && !self.closed {
            let handshaking = self.is_handshaking();
            let stop = if self.partial.is_empty() {
                let rest = data.get_mut(off..).unwrap_or_default();
                if self.sni_pending && !self.scan_client_hello(rest) {
                    self.partial.extend_from_slice(rest);
                    off = data.len();
                    break;
                }
                let (used, r) = self.run(rest, Mode::Feed);
                off = off.saturating_add(used);
                let stop = r.map_err(|e| TlsError::from_rustls(e, handshaking))?;
                if stop == Stop::Idle && !self.io.peer_closed {
                    // No complete record left: keep the tail for the next read.
                    self.partial
                        .extend_from_slice(data.get(off..).unwrap_or_default());
                    off = data.len();
                }
                stop
            } else {
                let rest = data.get(off..).unwrap_or_default();
                // Complete the waiting record, then go back to decrypting in
                // place; while a handshake message spans records (or the
                // ClientHello is being scanned), take everything.
                let take = match record_need(&self.partial) {
                    Some(n) if !self.sni_pending => n.min(rest.len()),
                    _ => rest.len(),
                };
                self.partial
                    .extend_from_slice(rest.get(..take).unwrap_or_default());
                off = off.saturating_add(take);
                let mut buf = mem::take(&mut self.partial);
                if self.sni_pending && !self.scan_client_hello(&buf) {
                    self.partial = buf;
                    continue;
                }
                let (used, r) = self.run(&mut buf, Mode::Feed);
                buf.drain(..used.min(buf.len()));
                if !buf.is_empty() {
                    self.partial = buf;
                }
                r.map_err(|e| TlsError::from_rustls(e, handshaking))?
            };
            match stop {
                Stop::Plaintext => break,
                Stop::Closed => self.closed = true,
                Stop::Idle | Stop::Done => {}
            }
        }
        if self.partial.len() > MAX_HELD_INPUT {
            self.failed = true;
            self.partial = Vec::new();
            let e = rustls::InvalidMessage::HandshakePayloadTooLarge;
            return Err(TlsError::from_rustls(e.into(), self.is_handshaking()));
        }
        if self.io.peer_closed || self.closed {
            off = data.len();
            self.partial = Vec::new();
        }
        if !self.early_plain.is_empty() && !self.is_handshaking() {
            self.flush_early_plain();
        }
        Ok(off)
    }

    /// Server side, before the ClientHello reached rustls: reads the SNI
    /// from `buf` (the connection's first bytes). False when the ClientHello
    /// is incomplete, to be held back from rustls until it is whole.
    fn scan_client_hello(&mut self, buf: &[u8]) -> bool {
        match scan_sni(buf) {
            SniScan::Partial => false,
            SniScan::Done(name) => {
                self.sni = name;
                self.sni_pending = false;
                true
            }
        }
    }

    /// Copies decrypted plaintext into `out`; returns the number of bytes,
    /// 0 when none is waiting.
    pub fn read_plaintext(&mut self, out: &mut [u8]) -> usize {
        if self.io.plain.is_empty() {
            if !self.io.plain_ready {
                return 0;
            }
            self.io.plain_ready = false;
            // rustls answers with the waiting record before looking at the
            // buffer; it is passed only to keep rustls's view consistent.
            let mut buf = mem::take(&mut self.partial);
            let (used, n) = match &mut self.conn {
                Conn::Server(c) => take_record(c.process_tls_records(&mut buf), out, &mut self.io),
                Conn::Client(c) => take_record(c.process_tls_records(&mut buf), out, &mut self.io),
            };
            buf.drain(..used.min(buf.len()));
            if !buf.is_empty() {
                self.partial = buf;
            }
            return n;
        }
        let n = self.io.plain.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), self.io.plain.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.io.plain.drain(..n);
        if self.io.plain.is_empty() {
            self.io.plain = Vec::new();
        }
        n
    }

    /// Queues the protocol's plaintext for encryption. Every byte is accepted
    /// (it is sent once the handshake completes, if it has not yet);
    /// backpressure is the caller's, through [`Self::pending_len`]. Returns the
    /// number of bytes accepted: `data.len()`, or 0 after
    /// [`Self::send_close_notify`] or a failure.
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        if self.closing || self.closed || self.failed || data.is_empty() {
            return 0;
        }
        if self.is_handshaking() || !self.early_plain.is_empty() {
            self.early_plain.extend_from_slice(data);
            if !self.is_handshaking() {
                self.flush_early_plain();
            }
            return data.len();
        }
        match self.run_on_partial(Mode::Write(data)) {
            Ok(Stop::Done) => data.len(),
            Ok(Stop::Idle) => {
                self.early_plain.extend_from_slice(data);
                data.len()
            }
            Ok(Stop::Closed | Stop::Plaintext) => 0,
            Err(e) => {
                log::debug!("TLS write failed: {e}");
                0
            }
        }
    }

    /// Encrypts the plaintext written during the handshake.
    fn flush_early_plain(&mut self) {
        let data = mem::take(&mut self.early_plain);
        match self.run_on_partial(Mode::Write(&data)) {
            Ok(Stop::Idle) => self.early_plain = data,
            Ok(_) => {}
            Err(e) => log::debug!("TLS write failed: {e}"),
        }
    }

    /// Runs the state machine on the held partial input (outside a feed,
    /// that is the input rustls expects to see again).
    fn run_on_partial(&mut self, mode: Mode<'_>) -> Result<Stop, rustls::Error> {
        let mut buf = mem::take(&mut self.partial);
        let (used, r) = self.run(&mut buf, mode);
        buf.drain(..used.min(buf.len()));
        if !buf.is_empty() {
            self.partial = buf;
        }
        r
    }

    /// Drives rustls over `buf` until `mode` is satisfied. Returns how many
    /// leading bytes of `buf` rustls is done with, and why it stopped. On
    /// an error, the alerts rustls queued are moved to the output first.
    fn run(&mut self, buf: &mut [u8], mode: Mode<'_>) -> (usize, Result<Stop, rustls::Error>) {
        let mut used = 0usize;
        loop {
            let (discard, r) = self.step(buf.get_mut(used..).unwrap_or_default(), mode);
            used = used.saturating_add(discard).min(buf.len());
            match r {
                Ok(None) => {}
                Ok(Some(stop)) => return (used, Ok(stop)),
                Err(e) => {
                    self.failed = true;
                    // Collect the alerts rustls queued. Only while it has
                    // some: past them it would parse the bad input again.
                    while self.common().wants_write() {
                        let (discard, r) =
                            self.step(buf.get_mut(used..).unwrap_or_default(), Mode::Flush);
                        used = used.saturating_add(discard).min(buf.len());
                        if !matches!(r, Ok(None)) {
                            break;
                        }
                    }
                    return (used, Err(e));
                }
            }
        }
    }

    /// One call into rustls's state machine, and the handling of the state.
    fn step(&mut self, buf: &mut [u8], mode: Mode<'_>) -> (usize, StepResult) {
        match &mut self.conn {
            Conn::Server(c) => handle(c.process_tls_records(buf), &mut self.io, mode),
            Conn::Client(c) => handle(c.process_tls_records(buf), &mut self.io, mode),
        }
    }

    /// True when ciphertext (handshake, data or alerts) waits to be written:
    /// keep write interest armed exactly while this is true.
    pub fn has_pending_ciphertext(&self) -> bool {
        self.io.out_sent < self.io.out.len()
    }

    /// Writes pending ciphertext to `w` (the socket) until it is all written
    /// or `w` would block. Returns the bytes written; `Err(WouldBlock)` only
    /// when nothing could be written. If [`Self::has_pending_ciphertext`] is
    /// still true afterwards, the socket is full: wait for writability.
    pub fn write_ciphertext(&mut self, w: &mut dyn Write) -> io::Result<usize> {
        let mut total = 0usize;
        while let Some(rest) = self
            .io
            .out
            .get(self.io.out_sent..)
            .filter(|r| !r.is_empty())
        {
            match w.write(rest) {
                Ok(0) => break,
                Ok(n) => {
                    self.io.out_sent = self.io.out_sent.saturating_add(n);
                    total = total.saturating_add(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => break,
                Err(e) => return Err(e),
            }
        }
        if self.io.out_sent >= self.io.out.len() {
            // Release the buffer: an idle connection owns no output memory.
            self.io.out = Vec::new();
            self.io.out_sent = 0;
        }
        Ok(total)
    }

    /// Bytes queued for the peer and not yet written to the socket,
    /// including plaintext waiting for the handshake to complete: the figure
    /// the reactor's high/low water marks compare. Exact for ciphertext;
    /// plaintext held during the handshake counts without record overhead.
    pub fn pending_len(&self) -> usize {
        self.io
            .out
            .len()
            .saturating_sub(self.io.out_sent)
            .saturating_add(self.early_plain.len())
    }

    /// Bytes of buffer capacity the session itself holds (input, output
    /// and plaintext buffers, not rustls's own state): 0 when idle.
    #[cfg(test)]
    pub(crate) fn held_capacity(&self) -> usize {
        self.partial.capacity()
            + self.io.out.capacity()
            + self.io.plain.capacity()
            + self.early_plain.capacity()
    }

    /// True until the handshake has completed.
    pub fn is_handshaking(&self) -> bool {
        self.common().is_handshaking()
    }

    fn common(&self) -> &CommonState {
        match &self.conn {
            Conn::Server(c) => c,
            Conn::Client(c) => c,
        }
    }

    /// Returns true exactly once, the first time it is called after the
    /// handshake completed: the moment to cancel the handshake deadline, call
    /// [`Self::info`] and start the protocol.
    pub fn take_handshake_completed(&mut self) -> bool {
        if self.handshake_reported || self.failed || self.is_handshaking() {
            return false;
        }
        self.handshake_reported = true;
        true
    }

    /// True when the peer sent close_notify (a clean end). At TCP EOF without
    /// it, the peer may have been cut off mid-stream (truncation).
    pub fn peer_closed(&self) -> bool {
        self.io.peer_closed
    }

    /// Queues a close_notify alert; flush it with [`Self::write_ciphertext`],
    /// then close the socket. Plaintext written afterwards is dropped. Before
    /// the handshake completes there is nothing to close: it does nothing.
    pub fn send_close_notify(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        if self.failed || self.closed || self.is_handshaking() {
            return;
        }
        if !self.early_plain.is_empty() {
            self.flush_early_plain();
        }
        if let Err(e) = self.run_on_partial(Mode::Close) {
            log::debug!("TLS close_notify failed: {e}");
        }
    }

    /// Facts about the session once the handshake is complete (`None`
    /// before). Parses the peer certificate and checks it against the CA:
    /// call once and keep the result.
    pub fn info(&self) -> Option<TlsInfo> {
        let common = self.common();
        if common.is_handshaking() {
            return None;
        }
        let version = version_name(common.protocol_version()?);
        let (cipher_suite, cipher_iana, cipher_openssl) =
            cipher_names(common.negotiated_cipher_suite()?.suite());
        let peer_cert = common.peer_certificates().and_then(|chain| {
            let authorised = match &self.conn {
                Conn::Server(_) => self
                    .ca
                    .as_deref()
                    .is_some_and(|ca| is_authorised(ca, chain)),
                Conn::Client(_) => self.verifies,
            };
            PeerCertInfo::from_der(chain.first()?, unix_now(), authorised)
        });
        Some(TlsInfo {
            version,
            cipher_suite,
            cipher_iana,
            cipher_openssl,
            sni: self.sni.as_deref().map(str::to_owned),
            alpn: common.alpn_protocol().map(<[u8]>::to_vec),
            resumed: common.handshake_kind() == Some(HandshakeKind::Resumed),
            peer_cert,
        })
    }
}

/// Bytes still missing from the record at the front of `partial`, when it
/// is incomplete; `None` when a whole record is there (rustls is holding a
/// handshake message that spans records).
fn record_need(partial: &[u8]) -> Option<usize> {
    match partial.first_chunk::<RECORD_HEADER>() {
        None => Some(RECORD_HEADER.saturating_sub(partial.len())),
        Some(&[_, _, _, hi, lo]) => {
            let total = RECORD_HEADER.saturating_add(usize::from(u16::from_be_bytes([hi, lo])));
            total.checked_sub(partial.len()).filter(|&n| n > 0)
        }
    }
}

/// `Some(stop)` when a run is over, `None` to go on.
type StepResult = Result<Option<Stop>, rustls::Error>;

/// Handles one state of rustls's machine. Returns the bytes to discard and
/// whether the run is over.
fn handle<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    io: &mut Io,
    mode: Mode<'_>,
) -> (usize, StepResult) {
    let UnbufferedStatus { mut discard, state } = status;
    let state = match state {
        Ok(s) => s,
        Err(e) => return (discard, Err(e)),
    };
    let r = match state {
        ConnectionState::ReadTraffic(mut r) => {
            if let Mode::Feed = mode {
                io.plain_ready = true;
                return (discard, Ok(Some(Stop::Plaintext)));
            }
            // Writing needs the record out of rustls's way: keep it for the
            // protocol, after any plaintext already kept.
            while let Some(rec) = r.next_record() {
                match rec {
                    Ok(rec) => {
                        discard = discard.saturating_add(rec.discard);
                        io.plain.extend_from_slice(rec.payload);
                    }
                    Err(e) => return (discard, Err(e)),
                }
            }
            io.plain_ready = false;
            Ok(None)
        }
        ConnectionState::EncodeTlsData(mut e) => encode(&mut e, &mut io.out).map(|()| None),
        ConnectionState::TransmitTlsData(t) => {
            // "Transmitted" into `io.out`, which the socket drains later.
            t.done();
            Ok(None)
        }
        ConnectionState::BlockedHandshake => Ok(Some(Stop::Idle)),
        ConnectionState::WriteTraffic(mut w) => match mode {
            Mode::Feed | Mode::Flush => Ok(Some(Stop::Idle)),
            Mode::Write(data) => encrypt(&mut w, data, &mut io.out).map(|()| Some(Stop::Done)),
            Mode::Close => close(&mut w, &mut io.out).map(|()| Some(Stop::Done)),
        },
        ConnectionState::PeerClosed => {
            io.peer_closed = true;
            Ok(None)
        }
        ConnectionState::Closed => Ok(Some(Stop::Closed)),
        // Early data is never enabled; other states are future additions.
        _ => Err(rustls::Error::General("unexpected TLS state".into())),
    };
    (discard, r)
}

/// Pops the record waiting in rustls into `out`; what does not fit is kept
/// in `io.plain`. Returns (bytes to discard, bytes copied).
fn take_record<Data>(
    status: UnbufferedStatus<'_, '_, Data>,
    out: &mut [u8],
    io: &mut Io,
) -> (usize, usize) {
    let UnbufferedStatus { mut discard, state } = status;
    let Ok(ConnectionState::ReadTraffic(mut r)) = state else {
        return (discard, 0);
    };
    let mut n = 0usize;
    while let Some(Ok(rec)) = r.next_record() {
        discard = discard.saturating_add(rec.discard);
        let room = out.len().saturating_sub(n);
        let (now, later) = rec.payload.split_at(rec.payload.len().min(room));
        if let Some(dst) = out.get_mut(n..n.saturating_add(now.len())) {
            dst.copy_from_slice(now);
            n = n.saturating_add(now.len());
        }
        io.plain.extend_from_slice(later);
    }
    (discard, n)
}

/// Appends a handshake record (or alert) rustls queued to `out`.
fn encode<Data>(e: &mut EncodeTlsData<'_, Data>, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
    let need = match e.encode(&mut []) {
        Ok(_) => return Ok(()),
        Err(EncodeError::InsufficientSize(s)) => s.required_size,
        Err(other) => return Err(rustls::Error::General(other.to_string())),
    };
    let start = out.len();
    out.resize(start.saturating_add(need), 0);
    match e.encode(out.get_mut(start..).unwrap_or_default()) {
        Ok(n) => {
            out.truncate(start.saturating_add(n));
            Ok(())
        }
        Err(other) => {
            out.truncate(start);
            Err(rustls::Error::General(other.to_string()))
        }
    }
}

/// Appends the records of `data` to `out`.
fn encrypt<Data>(
    w: &mut WriteTraffic<'_, Data>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    let records = data.len() / MAX_FRAGMENT + 1;
    let guess = data
        .len()
        .saturating_add(records.saturating_mul(RECORD_OVERHEAD));
    grow_and_write(out, guess, |buf| w.encrypt(data, buf))
}

/// Appends a close_notify alert to `out`.
fn close<Data>(w: &mut WriteTraffic<'_, Data>, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
    grow_and_write(out, RECORD_OVERHEAD, |buf| w.queue_close_notify(buf))
}

/// Lets `write` fill the end of `out`, growing it to the size rustls asks
/// for when the first guess is short.
fn grow_and_write(
    out: &mut Vec<u8>,
    guess: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    let mut room = guess;
    loop {
        out.resize(start.saturating_add(room), 0);
        match write(out.get_mut(start..).unwrap_or_default()) {
            Ok(n) => {
                out.truncate(start.saturating_add(n));
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(s)) if s.required_size > room => {
                room = s.required_size;
            }
            Err(e) => {
                out.truncate(start);
                return Err(rustls::Error::General(e.to_string()));
            }
        }
    }
}
