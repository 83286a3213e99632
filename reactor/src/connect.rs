//! Outbound connections (Twisted's `connectTCP`/`connectUNIX`).

use std::io;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::addr::{Address, PeerAddr};
use crate::conn::TlsConn;
use crate::conn::{flag, Stream};
use crate::core::{Core, Pending};
use crate::error::ReactorError;
use crate::ids::ConnId;
use crate::protocol::Protocol;
use crate::timers::{TimerKind, NIL};
use crate::tls::TlsSession;

/// Starts a non-blocking connect; completion or failure is reported from
/// the loop.
pub(crate) fn connect(
    core: &mut Core,
    addr: &Address,
    protocol: Box<dyn Protocol>,
    timeout: Option<Duration>,
    tls: Option<TlsSession>,
) -> Result<ConnId, ReactorError> {
    let (socket, target, peer) = match addr {
        Address::Tcp(sa) => {
            let s = Socket::new(
                Domain::for_address(*sa),
                Type::STREAM.nonblocking().cloexec(),
                None,
            )
            .map_err(ReactorError::Connect)?;
            let _ = s.set_tcp_nodelay(true);
            (s, SockAddr::from(*sa), PeerAddr::Tcp(*sa))
        }
        Address::Unix(path) => {
            let s = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)
                .map_err(ReactorError::Connect)?;
            let target = SockAddr::unix(path).map_err(ReactorError::Connect)?;
            (s, target, PeerAddr::Unix)
        }
    };
    let outcome = match socket.connect(&target) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    };
    let stream = match addr {
        Address::Tcp(_) => Stream::Tcp(socket.into()),
        Address::Unix(_) => Stream::Unix(socket.into()),
    };
    let connecting = matches!(outcome, Ok(false));
    let flags = if connecting {
        flag::CONNECTING | flag::WRITE_ARMED
    } else {
        flag::READ_ARMED
    };
    core.client_stats.accepted += 1;
    core.client_stats.active += 1;
    let (key, gen) = core
        .insert_conn(stream, protocol, peer, NIL, flags)
        .ok_or_else(|| ReactorError::Connect(io::Error::other("cannot register socket")))?;
    let is_tls = tls.is_some();
    if let Some(session) = tls {
        if let Some(c) = core.conn_mut(key, gen) {
            c.tls = Some(Box::new(TlsConn {
                session,
                backlog: Vec::new(),
            }));
        }
    }
    match outcome {
        // Connected at once (a Unix socket): a TLS client still has its
        // handshake ahead, which the writable event starts.
        Ok(true) if !is_tls => core.pending.push_back(Pending::Connected(key, gen)),
        Ok(_) => {
            // Connecting, or connected at once with a TLS handshake ahead:
            // either way the connect timer bounds it.
            core.mark_dirty(key, gen);
            let at = core.now + timeout.unwrap_or(core.config.connect_timeout);
            let (conns, timers) = (&mut core.conns, &mut core.timers);
            if let Some(c) = conns.get_mut(key as usize) {
                let id = timers.insert(
                    at,
                    None,
                    key,
                    gen,
                    TimerKind::ConnectTimeout,
                    &mut c.timers_head,
                );
                c.aux_timer = Some(id);
            }
        }
        Err(e) => {
            if let Some(c) = core.conn_mut(key, gen) {
                c.error = Some(e);
                c.flags |= flag::CONNECTING;
            }
            core.pending.push_back(Pending::Failed(key, gen));
        }
    }
    Ok(ConnId { key, gen })
}
