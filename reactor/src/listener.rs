//! Listening sockets and how they are opened.

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use socket2::{Domain, Socket, Type};

use crate::addr::{ipv4_any, Address};
use crate::config::DEFAULT_BACKLOG;
use crate::error::ReactorError;
use crate::protocol::{Factory, Gate};
use crate::stats::ListenerStats;

/// Options for one listener. `ListenOptions::default()` is right for most.
pub struct ListenOptions {
    /// `listen(2)` backlog.
    pub backlog: i32,
    /// Set `SO_REUSEPORT`, so several reactors (one per thread, `--workers`)
    /// can each bind the same port and the kernel spreads connections.
    pub reuse_port: bool,
    /// Decides at accept time whether a connection is served.
    pub gate: Option<Box<dyn Gate>>,
    /// Start paused (call [`Reactor::resume_listener`](crate::Reactor::resume_listener)).
    pub start_paused: bool,
    /// Serve TLS: every accepted connection does a handshake first (with
    /// the reactor's handshake timeout), and its protocol sees plaintext.
    pub tls: Option<crate::tls::ServerTlsConfig>,
    /// Expect a PROXY protocol header (v1 or v2) on every connection, only
    /// from the listed proxies: the gate, the protocol and the logs then
    /// see the client the header names. A connection without a valid
    /// header within the deadline is closed.
    pub proxy: Option<crate::proxy_stage::ProxyOptions>,
    /// The client speaks first (HTTP, TLS, a PROXY header): have the kernel
    /// hand a connection over once its first bytes have arrived
    /// (`TCP_DEFER_ACCEPT`), not at the end of the TCP handshake, so
    /// accepting it and reading its request take one wakeup instead of two.
    /// A client that sends nothing is handed over after about a second, and
    /// its deadlines start then. Leave it off where the server speaks
    /// first. TCP only.
    pub defer_accept: bool,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
            gate: None,
            start_paused: false,
            tls: None,
            proxy: None,
            defer_accept: false,
        }
    }
}

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenOptions")
            .field("backlog", &self.backlog)
            .field("reuse_port", &self.reuse_port)
            .field("gate", &self.gate.is_some())
            .field("start_paused", &self.start_paused)
            .field("tls", &self.tls.is_some())
            .field("proxy", &self.proxy)
            .field("defer_accept", &self.defer_accept)
            .finish()
    }
}

/// A bound, listening socket.
pub(crate) enum ListenSocket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl AsFd for ListenSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            ListenSocket::Tcp(l) => l.as_fd(),
            ListenSocket::Unix(l) => l.as_fd(),
        }
    }
}

/// One listener of a reactor.
pub(crate) struct Listener {
    pub socket: ListenSocket,
    pub factory: Box<dyn Factory>,
    pub gate: Option<Box<dyn Gate>>,
    pub stats: ListenerStats,
    /// The address actually bound (port 0 resolved).
    pub local: Address,
    /// Paused by the application.
    pub paused_user: bool,
    /// Paused after `EMFILE` until a timer fires.
    pub paused_backoff: bool,
    /// Paused because the reactor is at its connection cap.
    pub paused_cap: bool,
    /// Readable interest is registered (level-triggered).
    pub armed: bool,
    /// Unix socket file to remove when the listener closes.
    pub unlink_on_close: bool,
    /// TLS settings, for TLS listeners.
    pub tls: Option<crate::tls::ServerTlsConfig>,
    /// PROXY protocol settings, when connections arrive through a proxy.
    pub proxy: Option<crate::proxy_stage::ProxyOptions>,
}

impl Listener {
    pub fn wants_accept(&self) -> bool {
        !(self.paused_user || self.paused_backoff || self.paused_cap)
    }
}

/// Opens a listening socket for `addr`.
pub(crate) fn bind(
    addr: &Address,
    opts: &ListenOptions,
) -> Result<(ListenSocket, Address), ReactorError> {
    match addr {
        Address::Tcp(sa) => {
            let l = match bind_tcp(*sa, opts) {
                Ok(l) => l,
                // `[::]` on a host without IPv6: fall back to all IPv4 interfaces.
                Err(e) if sa.ip().is_unspecified() && sa.is_ipv6() && no_ipv6(&e) => {
                    bind_tcp(ipv4_any(sa.port()), opts).map_err(|source| ReactorError::Bind {
                        addr: addr.clone(),
                        source,
                    })?
                }
                Err(source) => {
                    return Err(ReactorError::Bind {
                        addr: addr.clone(),
                        source,
                    })
                }
            };
            let local = l.local_addr().map_err(|source| ReactorError::Bind {
                addr: addr.clone(),
                source,
            })?;
            Ok((ListenSocket::Tcp(l), Address::Tcp(local)))
        }
        Address::Unix(path) => {
            remove_stale_socket(path)?;
            let l = UnixListener::bind(path).map_err(|source| ReactorError::Bind {
                addr: addr.clone(),
                source,
            })?;
            l.set_nonblocking(true)
                .map_err(|source| ReactorError::Bind {
                    addr: addr.clone(),
                    source,
                })?;
            Ok((ListenSocket::Unix(l), addr.clone()))
        }
    }
}

fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

fn bind_tcp(sa: std::net::SocketAddr, opts: &ListenOptions) -> io::Result<TcpListener> {
    let socket = Socket::new(
        Domain::for_address(sa),
        Type::STREAM.nonblocking().cloexec(),
        None,
    )?;
    socket.set_reuse_address(true)?;
    if opts.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if sa.is_ipv6() {
        // Dual-stack: `[::]` accepts IPv4 too (the kernel default varies by
        // distribution, so say it explicitly). Harmless for specific
        // addresses.
        socket.set_only_v6(false)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one
    // system call here instead of one per connection. Replies are usually
    // written whole; Nagle would only delay them.
    socket.set_tcp_nodelay(true)?;
    if opts.defer_accept {
        crate::sys::set_defer_accept(&socket)?;
    }
    socket.bind(&sa.into())?;
    socket.listen(opts.backlog)?;
    Ok(socket.into())
}

/// Removes `path` if it is a Unix socket nobody listens on; refuses to
/// touch anything else.
fn remove_stale_socket(path: &Path) -> Result<(), ReactorError> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(ReactorError::PathInUse(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(|source| ReactorError::Bind {
                addr: Address::Unix(path.to_path_buf()),
                source,
            })
        }
        _ => Err(ReactorError::PathInUse(path.to_path_buf())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// The per-connection `setsockopt(TCP_NODELAY)` was dropped because
    /// accepted sockets inherit it from the listener; this pins that the
    /// kernel still does so, over IPv4 and IPv6 (dual-stack and not).
    #[test]
    fn accepted_sockets_inherit_nodelay() {
        for host in ["127.0.0.1:0", "[::]:0", "[::1]:0"] {
            let addr = Address::Tcp(host.parse().unwrap());
            let (socket, local) = bind(&addr, &ListenOptions::default()).unwrap();
            let ListenSocket::Tcp(listener) = socket else {
                panic!("not TCP");
            };
            let Address::Tcp(mut local) = local else {
                panic!("not TCP");
            };
            if local.ip().is_unspecified() {
                local.set_ip("127.0.0.1".parse().unwrap());
            }
            let _client = TcpStream::connect(local).unwrap();
            let accepted = loop {
                match crate::sys::accept_tcp(&listener) {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(1))
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            assert!(
                accepted.nodelay().unwrap(),
                "{host}: TCP_NODELAY not inherited"
            );
        }
    }

    /// `defer_accept`: a client that has sent its first bytes is handed
    /// over while one that connected earlier but sent nothing waits, and
    /// that one is still handed over (after about a second), not dropped.
    #[test]
    fn deferred_accept_hands_over_talkers_first_and_silent_clients_later() {
        use std::io::{Read, Write};
        use std::time::{Duration, Instant};
        let opts = ListenOptions {
            defer_accept: true,
            ..ListenOptions::default()
        };
        let addr = Address::Tcp("127.0.0.1:0".parse().unwrap());
        let (socket, local) = bind(&addr, &opts).unwrap();
        let (ListenSocket::Tcp(listener), Address::Tcp(local)) = (socket, local) else {
            panic!("not TCP");
        };
        let accept_within = |limit: Duration| {
            let deadline = Instant::now() + limit;
            loop {
                match crate::sys::accept_tcp(&listener) {
                    Ok(pair) => return pair,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "nothing accepted in {limit:?}");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        };
        let silent = TcpStream::connect(local).unwrap();
        let mut talker = TcpStream::connect(local).unwrap();
        talker.write_all(b"hello").unwrap();
        let (mut first, peer) = accept_within(Duration::from_secs(5));
        assert_eq!(peer, talker.local_addr().unwrap(), "the talker comes first");
        first.set_nonblocking(false).unwrap();
        let mut got = [0u8; 5];
        first.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello", "its bytes are there on accept");
        let (_, peer) = accept_within(Duration::from_secs(10));
        assert_eq!(
            peer,
            silent.local_addr().unwrap(),
            "the silent client, later"
        );
    }

    /// The accept path reads the queue length instead of accepting until
    /// `EAGAIN`; pin that the kernel reports it for listening sockets.
    #[test]
    fn accept_queue_len_counts_waiting_connections() {
        let addr = Address::Tcp("127.0.0.1:0".parse().unwrap());
        let (socket, local) = bind(&addr, &ListenOptions::default()).unwrap();
        let (ListenSocket::Tcp(listener), Address::Tcp(local)) = (socket, local) else {
            panic!("not TCP");
        };
        assert_eq!(crate::sys::accept_queue_len(&listener), Some(0));
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(local).unwrap()).collect();
        // Loopback handshakes complete at once, but poll rather than assume.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while crate::sys::accept_queue_len(&listener) != Some(3) {
            assert!(
                std::time::Instant::now() < deadline,
                "queue never reached 3"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        crate::sys::accept_tcp(&listener).unwrap();
        assert_eq!(crate::sys::accept_queue_len(&listener), Some(2));
        // Not a listening TCP socket: no answer rather than a wrong one.
        assert_eq!(crate::sys::accept_queue_len(&clients[0]), None);
    }
}
