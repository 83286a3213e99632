//! The few raw system calls the reactor makes beyond std, rustix and
//! socket2. Each `unsafe` block says why it is sound.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use socket2::SockAddr;

/// `accept4` with `SOCK_NONBLOCK | SOCK_CLOEXEC`: one syscall instead of
/// accept + fcntl, and no window where the socket could leak into a child.
pub(crate) fn accept_tcp(listener: &impl AsRawFd) -> io::Result<(TcpStream, SocketAddr)> {
    let fd = listener.as_raw_fd();
    // SAFETY: `try_init` hands us a zeroed sockaddr_storage and its length,
    // exactly what accept4 expects to fill in; we return the new fd only
    // when accept4 succeeded.
    let (new_fd, addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            let r = libc::accept4(
                fd,
                storage.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            );
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r)
            }
        })?
    };
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(new_fd) };
    let addr = addr
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "accepted non-IP address"))?;
    Ok((stream, addr))
}

/// Seconds a listener with [`ListenOptions::defer_accept`] lets a
/// connection wait for its first bytes before handing it over anyway. The
/// kernel counts in SYN-ACK retransmissions, whose first timeout is one
/// second: a silent client is accepted about a second after it connected.
///
/// [`ListenOptions::defer_accept`]: crate::ListenOptions::defer_accept
pub(crate) const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// Sets `TCP_DEFER_ACCEPT` on a listening socket: the kernel queues a
/// connection for `accept` only once data has arrived on it (or after
/// [`DEFER_ACCEPT_SECS`]), not at the end of the TCP handshake.
pub(crate) fn set_defer_accept(listener: &impl AsRawFd) -> io::Result<()> {
    let secs: libc::c_int = DEFER_ACCEPT_SECS;
    // SAFETY: `secs` is a live c_int and we pass its exact size.
    let r = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// How many connections wait in a TCP listener's accept queue, from
/// `TCP_INFO` (for a listening socket the kernel reports the queue length
/// in `tcpi_unacked`). One cheap system call: the alternative, accepting
/// until `EAGAIN`, costs a failing `accept4`, which on Linux allocates a
/// socket, an inode and a file before it looks at the queue and frees them
/// after. `None` when the socket is not a listening TCP socket.
pub(crate) fn accept_queue_len(listener: &impl AsRawFd) -> Option<u32> {
    const TCP_LISTEN: u8 = 10;
    // SAFETY: an all-zero tcp_info is a valid value (plain integers).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes, and getsockopt writes at
    // most `len` bytes into it and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // An older kernel may fill less than the whole struct.
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_unacked) + 4;
    if r != 0 || (len as usize) < needed || info.tcpi_state != TCP_LISTEN {
        return None;
    }
    Some(info.tcpi_unacked)
}

/// `accept4` for a Unix listener; the peer address is not kept (it is
/// almost always unnamed).
pub(crate) fn accept_unix(listener: &impl AsRawFd) -> io::Result<UnixStream> {
    // SAFETY: null address pointers are allowed by accept4 when the caller
    // does not want the peer address.
    let r = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
    Ok(unsafe { UnixStream::from_raw_fd(r) })
}

/// Accepts one pending connection and closes it at once (used with the
/// spare descriptor when the process is out of descriptors).
pub(crate) fn accept_and_close(listener: RawFd) {
    // SAFETY: as in `accept_unix`; the result is closed immediately by
    // OwnedFd's drop.
    let r = unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if r >= 0 {
        // SAFETY: a fresh descriptor that nothing else owns.
        drop(unsafe { OwnedFd::from_raw_fd(r) });
    }
}

/// Sets `O_NONBLOCK` on a pipe descriptor (child stdout/stderr).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return ints.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Sends a signal to a whole process group (a child started in its own
/// group, and everything it started).
pub(crate) fn kill_group(pgid: u32, signal: i32) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    if pgid <= 1 {
        // Never signal group 0 (our own) or -1 (everyone).
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to signal pgid <= 1",
        ));
    }
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(-pgid, signal) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The soft limit on open descriptors, if it can be read.
pub(crate) fn nofile_soft_limit() -> Option<usize> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur == libc::RLIM_INFINITY {
        return Some(1 << 20);
    }
    usize::try_from(lim.rlim_cur).ok()
}

/// Whether an accept error means "out of descriptors or kernel memory":
/// retrying at once would spin.
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether an accept error concerns only the one connection being accepted
/// (it went away before we accepted it): just try the next.
pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM)
    )
}
