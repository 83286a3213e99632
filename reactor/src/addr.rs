//! Addresses: where to listen, and who is on the other end.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use crate::error::ReactorError;

/// A socket address to listen on or connect to: TCP or a Unix-domain path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A TCP address. Port 0 asks the OS for a free port; read the bound one
    /// back with [`Reactor::local_addr`](crate::Reactor::local_addr).
    /// An IPv6 wildcard (`[::]`) also accepts IPv4 (dual-stack).
    Tcp(SocketAddr),
    /// A Unix-domain stream socket at this path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Self {
        Address::Unix(p)
    }
}

/// Who is on the other end of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddr {
    /// A TCP peer. IPv4 clients of a dual-stack listener appear as plain
    /// IPv4 addresses, not as IPv4-mapped IPv6.
    Tcp(SocketAddr),
    /// A Unix-domain peer (these are almost always unnamed).
    Unix,
}

impl PeerAddr {
    /// The peer's IP address, if it is a TCP peer.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            PeerAddr::Tcp(a) => Some(a.ip()),
            PeerAddr::Unix => None,
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Tcp(a) => write!(f, "{a}"),
            PeerAddr::Unix => f.write_str("unix"),
        }
    }
}

/// Turns a dual-stack listener's view of an IPv4 client (`::ffff:1.2.3.4`)
/// back into plain IPv4, so logs, gates and CGI see one form per client.
pub(crate) fn canonical_peer(addr: SocketAddr) -> SocketAddr {
    if let SocketAddr::V6(v6) = addr {
        if let Some(v4) = v6.ip().to_ipv4_mapped() {
            return SocketAddr::new(IpAddr::V4(v4), v6.port());
        }
    }
    addr
}

/// Resolves a listening host the way Jetforce's `--host` does.
///
/// - `""` means every interface: `[::]` dual-stack (which also accepts
///   IPv4); if the host has no IPv6 the caller may fall back to `0.0.0.0`
///   (see [`Reactor::listen`](crate::Reactor::listen), which does).
/// - `"::"` is the IPv6 wildcard, also dual-stack.
/// - An IP literal (`127.0.0.1`, `::1`, `[::1]`) is used as is.
/// - A name (`localhost`) is resolved once, now; every address it resolves
///   to is returned (bind them all to serve both families).
///
/// Resolution blocks, so call it while setting up, never inside a callback.
pub fn resolve_listen_host(host: &str, port: u16) -> Result<Vec<SocketAddr>, ReactorError> {
    let trimmed = host.trim_start_matches('[').trim_end_matches(']');
    if trimmed.is_empty() {
        return Ok(vec![SocketAddr::new(
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            port,
        )]);
    }
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let resolved: Vec<SocketAddr> = (trimmed, port)
        .to_socket_addrs()
        .map_err(|source| ReactorError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    if resolved.is_empty() {
        return Err(ReactorError::Resolve {
            host: host.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        });
    }
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(resolved.len());
    for a in resolved {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    Ok(unique)
}

/// The IPv4 wildcard for a port: the fallback when `[::]` cannot be bound.
pub(crate) fn ipv4_any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_host_is_dual_stack_wildcard() {
        let a = resolve_listen_host("", 1965).unwrap();
        assert_eq!(a, vec!["[::]:1965".parse().unwrap()]);
    }

    #[test]
    fn literals_are_used_as_is() {
        assert_eq!(
            resolve_listen_host("127.0.0.1", 1).unwrap(),
            vec!["127.0.0.1:1".parse().unwrap()]
        );
        assert_eq!(
            resolve_listen_host("::1", 2).unwrap(),
            vec!["[::1]:2".parse().unwrap()]
        );
        assert_eq!(
            resolve_listen_host("[::1]", 3).unwrap(),
            vec!["[::1]:3".parse().unwrap()]
        );
    }

    #[test]
    fn mapped_ipv4_becomes_plain_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:99".parse().unwrap();
        assert_eq!(canonical_peer(mapped), "10.1.2.3:99".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:99".parse().unwrap();
        assert_eq!(canonical_peer(v6), v6);
    }
}
