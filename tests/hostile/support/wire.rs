//! The attacker's side of the wire: connections from many loopback
//! addresses ([`connect_from`]), TLS sessions and raw ClientHellos, and
//! what the server did to a connection (answered, closed, when), whether
//! one thread waits on one socket ([`read_until_closed`]) or on thousands
//! ([`wait_closed`]).

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::probe::PROBE_TIMEOUT;
use crate::server_support::tls_client;

/// `127.0.0.N`: attackers spread over many loopback addresses, as a botnet
/// would be, so the per-client cap does not turn the attack away before it
/// reaches what the case tests. `n` is taken modulo 250 (2..=251).
pub fn attacker_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % 250) as u8))
}

/// A TCP connection to `to` from `from` (port chosen by the kernel).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    connect_with(from, to, None)
}

/// Like [`connect_from`], with a receive buffer of `rcvbuf` bytes set
/// before connecting (so the window is small from the start): a client
/// that reads nothing fills it quickly, and the server's sending side
/// meets backpressure without megabytes of kernel buffering first.
pub fn connect_small_window(from: IpAddr, to: SocketAddr, rcvbuf: usize) -> io::Result<TcpStream> {
    connect_with(from, to, Some(rcvbuf))
}

fn connect_with(from: IpAddr, to: SocketAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), PROBE_TIMEOUT)?;
    Ok(socket.into())
}

/// A TLS client session for SNI `localhost` offering `alpn`, trusting any
/// certificate (the server's is generated), not yet started.
pub fn tls_client_session(alpn: &[&[u8]]) -> rustls::ClientConnection {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    rustls::ClientConnection::new(tls_client(alpn), name).expect("TLS client")
}

/// Completes a TLS handshake (SNI `localhost`, ALPN `alpn`) on `sock`.
pub fn handshake(sock: &mut TcpStream, alpn: &[&[u8]]) -> io::Result<rustls::ClientConnection> {
    let mut conn = tls_client_session(alpn);
    while conn.is_handshaking() {
        conn.complete_io(sock)?;
    }
    Ok(conn)
}

/// Connects from `from` to `to` and completes a TLS handshake (ALPN
/// `alpn`), every step bounded by [`PROBE_TIMEOUT`]: for attackers whose
/// attack starts after the handshake. Panics if either fails.
pub fn tls_from(
    from: IpAddr,
    to: SocketAddr,
    alpn: &[&[u8]],
) -> (TcpStream, rustls::ClientConnection) {
    let mut sock = connect_from(from, to).expect("attacker connect");
    sock.set_read_timeout(Some(PROBE_TIMEOUT)).expect("timeout");
    sock.set_write_timeout(Some(PROBE_TIMEOUT))
        .expect("timeout");
    let conn = handshake(&mut sock, alpn).expect("attacker TLS handshake");
    (sock, conn)
}

/// The bytes of a real TLS ClientHello (SNI `localhost`, ALPN `alpn`), as
/// the first flight of a client: for attackers that send part of one, all
/// of it and then nothing, or a doctored copy.
pub fn client_hello(alpn: &[&[u8]]) -> Vec<u8> {
    let mut conn = tls_client_session(alpn);
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("ClientHello");
    }
    out
}

/// What one read from a connection meant.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadStep {
    /// This many bytes arrived.
    Data(usize),
    /// Nothing yet: a timeout, a non-blocking socket with nothing waiting,
    /// or an interrupted call.
    Nothing,
    /// The peer is gone: end of file (or TLS close), a reset, any other
    /// error.
    Closed,
}

/// Reads once from `from` into `buf` and says what that meant.
pub fn read_step(from: &mut impl Read, buf: &mut [u8]) -> ReadStep {
    match from.read(buf) {
        Ok(0) => ReadStep::Closed,
        Ok(n) => ReadStep::Data(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            ReadStep::Nothing
        }
        Err(_) => ReadStep::Closed,
    }
}

/// How a connection ended, as the attacker saw it.
#[derive(Debug, Default)]
pub struct Ending {
    /// The first bytes the server sent (at most [`KEPT_REPLY`]).
    pub reply: Vec<u8>,
    /// The server closed (EOF or reset) before the deadline.
    pub closed: bool,
    /// From the call until the close (or the deadline).
    pub after: Duration,
}

/// How much of a reply [`read_until_closed`] keeps: enough to tell an
/// alert from a handshake, or a status line.
pub const KEPT_REPLY: usize = 64;

/// Reads from `s` until the server closes it (EOF or reset) or `deadline`
/// passes, keeping the start of what it sent.
pub fn read_until_closed(s: &mut TcpStream, deadline: Instant) -> Ending {
    let start = Instant::now();
    let mut ending = Ending::default();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if s.set_read_timeout(Some(left)).is_err() {
            ending.closed = true;
            break;
        }
        match read_step(s, &mut buf) {
            ReadStep::Data(n) => {
                let room = KEPT_REPLY.saturating_sub(ending.reply.len());
                ending.reply.extend_from_slice(&buf[..n.min(room)]);
            }
            ReadStep::Nothing => {}
            ReadStep::Closed => {
                ending.closed = true;
                break;
            }
        }
    }
    ending.after = start.elapsed();
    ending
}

/// Reads (and drops) whatever `sock` has waiting without blocking; true
/// once the peer has closed: end of file, or a reset. The socket must be
/// non-blocking.
pub fn drained_to_close(mut sock: &TcpStream) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match read_step(&mut sock, &mut buf) {
            ReadStep::Data(_) => continue,
            ReadStep::Nothing => return false,
            ReadStep::Closed => return true,
        }
    }
}

/// Waits up to `within` for `poll(2)` readiness (input, hang-up or error)
/// on any of `socks` whose entry in `open` is true; returns the indexes
/// that are ready. Used to notice a server's closes without a thread per
/// socket.
pub fn poll_ready(socks: &[TcpStream], open: &[bool], within: Duration) -> Vec<usize> {
    use std::os::fd::AsRawFd;
    let mut index = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    for (i, s) in socks.iter().enumerate() {
        if open.get(i).copied().unwrap_or(false) {
            index.push(i);
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN | libc::POLLRDHUP,
                revents: 0,
            });
        }
    }
    if fds.is_empty() {
        return Vec::new();
    }
    let ms = libc::c_int::try_from(within.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return Vec::new();
    }
    fds.iter()
        .zip(index)
        .filter(|(f, _)| f.revents != 0)
        .map(|(_, i)| i)
        .collect()
}

/// Waits up to `within` until the server has closed every one of `socks`
/// (made non-blocking here), dropping whatever it sends first (a TLS alert,
/// an error answer). Returns, per socket, when its close was seen; `None`
/// for those still open at the end.
pub fn wait_closed(socks: &[TcpStream], within: Duration) -> Vec<Option<Instant>> {
    let deadline = Instant::now() + within;
    let mut closed: Vec<Option<Instant>> = vec![None; socks.len()];
    for s in socks {
        let _ = s.set_nonblocking(true);
    }
    // At least one look, even with no time to wait.
    loop {
        let open: Vec<bool> = closed.iter().map(Option::is_none).collect();
        if !open.contains(&true) {
            return closed;
        }
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        for i in poll_ready(socks, &open, wait) {
            if drained_to_close(&socks[i]) {
                closed[i] = Some(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            return closed;
        }
    }
}

/// The start of a reply (hex and text), for failure messages.
pub fn show(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(24)];
    format!("{:02x?} {:?}", head, String::from_utf8_lossy(head))
}
