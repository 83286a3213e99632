//! `ws://` and `wss://`: upgrade, then keep `--pipeline` binary messages of
//! `--size` bytes in flight to an echo endpoint and check every echo; or,
//! with `--connect-only`, one connection per operation: connect, upgrade,
//! close handshake, and the server's TCP close.
//!
//! Frames are masked (client role) with a per-connection xorshift key
//! stream and encoded into one reused buffer; server frames are decoded
//! by torsion's own [`MessageDecoder`] in the client role, which hands out
//! single-frame messages straight from the read buffer.

use std::rc::Rc;

use torsion_protocols::websocket::{
    accept_key, frame::encode_frame, DecoderConfig, Event, MessageDecoder, OpCode, Role,
    DEFAULT_MAX_MESSAGE,
};
use torsion_reactor::Transport;

use super::run::ErrorKind;
use super::worker::{Mode, Ops};

/// Largest upgrade response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// Most header fields parsed in the upgrade response.
pub const MAX_HEADERS: usize = 32;

/// Close code sent by `--connect-only`: a normal closure.
const CLOSE_NORMAL: u16 = 1000;

/// What every connection of a run shares.
#[derive(Debug)]
pub struct WsShared {
    /// The upgrade request.
    upgrade: Box<[u8]>,
    /// The `Sec-WebSocket-Accept` the server must answer.
    accept: String,
    /// The message payload.
    payload: Box<[u8]>,
    /// Connect, upgrade and close only.
    connect_only: bool,
    decoder: DecoderConfig,
}

/// A small, fast, non-cryptographic generator (xorshift64*) for masking
/// keys and the handshake key. Masking only has to stop a proxy's cache
/// from being poisoned by chosen bytes; a benchmark needs no more.
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A seed that differs between runs and workers.
pub fn seed(worker: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9);
    (t ^ (u64::from(std::process::id()) << 32) ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

/// Standard base64 of `bytes` (the handshake key is 16 random bytes).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl WsShared {
    /// The shared part of a run against `path` on `authority`.
    pub fn new(
        authority: &str,
        path: &str,
        size: usize,
        connect_only: bool,
        seed: u64,
    ) -> Rc<Self> {
        let mut state = seed | 1;
        let mut key_bytes = [0u8; 16];
        for pair in key_bytes.chunks_mut(8) {
            let r = next_random(&mut state).to_le_bytes();
            pair.copy_from_slice(r.get(..pair.len()).unwrap_or_default());
        }
        let key = base64(&key_bytes);
        let upgrade = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: torsion-bench/{}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        Rc::new(WsShared {
            upgrade: upgrade.into_bytes().into_boxed_slice(),
            accept: accept_key(&key),
            payload: super::tcp::pattern(size).to_vec().into_boxed_slice(),
            connect_only,
            decoder: DecoderConfig {
                role: Role::Client,
                max_message: DEFAULT_MAX_MESSAGE.max(size),
            },
        })
    }
}

/// Checks an upgrade response head: 101 and the right accept key.
fn check_upgrade(resp: &httparse::Response<'_, '_>, accept: &str) -> Result<(), ErrorKind> {
    if resp.code != Some(101) {
        return Err(ErrorKind::Status);
    }
    let ok = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("sec-websocket-accept")
            && h.value.trim_ascii() == accept.as_bytes()
    });
    if ok {
        Ok(())
    } else {
        Err(ErrorKind::BadResponse)
    }
}

/// The WebSocket client of one worker.
pub struct Ws {
    shared: Rc<WsShared>,
    upgraded: bool,
    /// The start of an upgrade response split across reads.
    head: Vec<u8>,
    decoder: MessageDecoder,
    /// Frames are encoded here, then written.
    frame: Vec<u8>,
    rng: u64,
    close_sent: bool,
    close_received: bool,
}

impl Ws {
    /// A client for the run described by `shared`.
    pub fn new(shared: Rc<WsShared>, seed: u64) -> Self {
        let decoder = MessageDecoder::new(shared.decoder);
        let frame = Vec::with_capacity(shared.payload.len() + 14);
        Ws {
            shared,
            upgraded: false,
            head: Vec::new(),
            decoder,
            frame,
            rng: seed | 1,
            close_sent: false,
            close_received: false,
        }
    }

    fn mask(&mut self) -> [u8; 4] {
        let r = next_random(&mut self.rng).to_le_bytes();
        [r[0], r[1], r[2], r[3]]
    }

    /// Reads the upgrade response; returns how many bytes of `input` it
    /// used once it is complete and valid.
    fn read_upgrade(&mut self, input: &[u8]) -> Result<Option<usize>, ErrorKind> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let had = self.head.len();
        let buf: &[u8] = if had == 0 {
            input
        } else {
            self.head.extend_from_slice(input);
            &self.head
        };
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                check_upgrade(&resp, &self.shared.accept)?;
                self.head.clear();
                Ok(Some(n.saturating_sub(had)))
            }
            Ok(httparse::Status::Partial) => {
                if had == 0 {
                    self.head.extend_from_slice(input);
                }
                if self.head.len() > MAX_HEAD {
                    return Err(ErrorKind::BadResponse);
                }
                Ok(None)
            }
            Err(_) => Err(ErrorKind::BadResponse),
        }
    }

    fn write_frame(&mut self, t: &mut Transport<'_>, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask();
        self.frame.clear();
        encode_frame(true, opcode, payload, Some(mask), &mut self.frame);
        t.write(&self.frame);
    }
}

impl Mode for Ws {
    fn connected(&mut self, t: &mut Transport<'_>, _ops: &mut Ops) {
        t.write(&self.shared.upgrade);
    }

    fn ready(&self) -> bool {
        self.upgraded && !self.shared.connect_only && !self.close_sent
    }

    fn send(&mut self, t: &mut Transport<'_>) {
        let mask = self.mask();
        self.frame.clear();
        encode_frame(
            true,
            OpCode::Binary,
            &self.shared.payload,
            Some(mask),
            &mut self.frame,
        );
        t.write(&self.frame);
    }

    fn received(
        &mut self,
        t: &mut Transport<'_>,
        ops: &mut Ops,
        data: &mut [u8],
    ) -> Result<(), ErrorKind> {
        let mut input: &[u8] = data;
        if !self.upgraded {
            let Some(used) = self.read_upgrade(input)? else {
                return Ok(());
            };
            input = input.get(used..).unwrap_or_default();
            self.upgraded = true;
            if self.shared.connect_only {
                self.write_frame(t, OpCode::Close, &CLOSE_NORMAL.to_be_bytes());
                self.close_sent = true;
            }
        }
        loop {
            let event = match self.decoder.next(&mut input) {
                Ok(Some(e)) => e,
                Ok(None) => return Ok(()),
                Err(_) => return Err(ErrorKind::BadResponse),
            };
            match event {
                Event::Binary(p) => {
                    if !ops.busy() || self.close_sent || p != &*self.shared.payload {
                        return Err(ErrorKind::BadResponse);
                    }
                    ops.complete(None);
                }
                Event::Text(_) => return Err(ErrorKind::BadResponse),
                Event::Ping(p) => {
                    let r = next_random(&mut self.rng).to_le_bytes();
                    let mask = [r[0], r[1], r[2], r[3]];
                    self.frame.clear();
                    encode_frame(true, OpCode::Pong, p, Some(mask), &mut self.frame);
                    t.write(&self.frame);
                }
                Event::Pong(_) => {}
                Event::Close(_) => {
                    if self.close_sent {
                        self.close_received = true;
                        return Ok(());
                    }
                    // The server closes while we wait for echoes.
                    return Err(ErrorKind::Closed);
                }
            }
        }
    }

    fn eof(&mut self, ops: &mut Ops) -> Result<(), ErrorKind> {
        if self.close_received && ops.busy() {
            ops.complete(None);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.upgraded = false;
        self.head.clear();
        self.decoder = MessageDecoder::new(self.shared.decoder);
        self.close_sent = false;
        self.close_received = false;
    }

    fn take(&mut self) -> Self {
        Ws {
            shared: Rc::clone(&self.shared),
            upgraded: false,
            head: std::mem::take(&mut self.head),
            decoder: MessageDecoder::new(self.shared.decoder),
            frame: std::mem::take(&mut self.frame),
            rng: self.rng,
            close_sent: false,
            close_received: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // RFC 6455's sample nonce.
        assert_eq!(base64(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn random_is_not_stuck() {
        let mut s = seed(3);
        let a = next_random(&mut s);
        let b = next_random(&mut s);
        assert_ne!(a, b);
        assert_ne!(s, 0);
    }

    #[test]
    fn upgrade_request_and_accept() {
        let shared = WsShared::new("h:1", "/echo", 64, false, 42);
        let req = std::str::from_utf8(&shared.upgrade).unwrap();
        assert!(req.starts_with("GET /echo HTTP/1.1\r\nHost: h:1\r\n"));
        let key = req
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        assert_eq!(key.len(), 24);
        assert_eq!(shared.accept, accept_key(key));
        assert_eq!(shared.payload.len(), 64);
    }

    fn upgrade_reply(accept: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn reads_the_upgrade_whole_or_in_pieces() {
        let shared = WsShared::new("h", "/", 8, false, 1);
        let mut reply = upgrade_reply(&shared.accept);
        let head_len = reply.len();
        reply.extend_from_slice(b"\x82\x08abcdefgh");
        let mut ws = Ws::new(Rc::clone(&shared), 7);
        assert_eq!(ws.read_upgrade(&reply), Ok(Some(head_len)));
        for split in 1..head_len {
            let mut ws = Ws::new(Rc::clone(&shared), 7);
            assert_eq!(ws.read_upgrade(&reply[..split]), Ok(None), "{split}");
            assert_eq!(
                ws.read_upgrade(&reply[split..]),
                Ok(Some(head_len - split)),
                "{split}"
            );
        }
    }

    #[test]
    fn refuses_a_bad_upgrade() {
        let shared = WsShared::new("h", "/", 8, false, 1);
        let mut ws = Ws::new(Rc::clone(&shared), 7);
        assert_eq!(
            ws.read_upgrade(&upgrade_reply("wrong")),
            Err(ErrorKind::BadResponse)
        );
        let mut ws = Ws::new(Rc::clone(&shared), 7);
        assert_eq!(
            ws.read_upgrade(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            Err(ErrorKind::Status)
        );
        let mut ws = Ws::new(shared, 7);
        assert_eq!(
            ws.read_upgrade(b"\x00\x01garbage\r\n\r\n"),
            Err(ErrorKind::BadResponse)
        );
    }
}
