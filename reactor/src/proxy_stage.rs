//! The pre-protocol stage of a connection accepted on a PROXY protocol
//! listener: before the gate decides, before any TLS work, before a
//! protocol exists, the proxy's header is read (with a deadline) and the
//! connection's peer becomes the real client it names.
//!
//! The stage, in order:
//! 1. at accept, a peer not in [`ProxyOptions::allowed_from`] is closed at
//!    once (anyone could otherwise claim any address);
//! 2. the connection is registered with no protocol and a deadline timer;
//!    bytes read are parsed with [`proxy::parse`]: the common case (the
//!    whole header in one read) parses straight from the shared read buffer
//!    with no allocation; a header split over reads is kept in a buffer that
//!    never exceeds [`MAX_HEADER_LEN`];
//! 3. a complete header sets the peer (`PROXY`: the header's source;
//!    `LOCAL`, or no address: the proxy's own), then the connection goes
//!    through exactly what a direct accept goes through (gate, TLS session,
//!    `Factory::build`); the bytes that followed the header in the same read
//!    go on to TLS or the protocol;
//! 4. a bad or missing header, EOF, or the deadline closes the connection,
//!    counted in [`ListenerStats::proxy_failures`](crate::ListenerStats::proxy_failures)
//!    and logged at debug.

use std::fmt;
use std::time::Duration;

use crate::addr::{canonical_peer, PeerAddr};
use crate::conn::{flag, Stream};
use crate::core::Core;
use crate::gate::AllowList;
use crate::protocol::{Disconnect, Protocol};
use crate::proxy::{self, Command, Parsed, ProxyError, MAX_HEADER_LEN};
use crate::reactor::RunState;
use crate::timers::TimerKind;

/// How long a proxy may take to send its header when no deadline is given:
/// a proxy sends it with its first bytes, so this only matters for a peer
/// that is not really a proxy or has stalled, which must not pin a slot.
pub const DEFAULT_PROXY_DEADLINE: Duration = Duration::from_secs(5);

/// PROXY protocol (v1 and v2) settings of a listener: every connection must
/// start with a header, and only from these addresses.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// The proxies allowed to connect and send headers. Connections from
    /// any other address are closed at once. Unix-socket peers are always
    /// allowed (the socket file's permissions decide who connects).
    pub allowed_from: AllowList,
    /// How long a connection may take to deliver a complete header.
    pub deadline: Duration,
}

impl ProxyOptions {
    /// Headers accepted from `allowed_from`, within
    /// [`DEFAULT_PROXY_DEADLINE`].
    pub fn new(allowed_from: AllowList) -> ProxyOptions {
        ProxyOptions {
            allowed_from,
            deadline: DEFAULT_PROXY_DEADLINE,
        }
    }

    /// True if `peer` may send a header.
    fn allows(&self, peer: &PeerAddr) -> bool {
        peer.ip().is_none_or(|ip| self.allowed_from.contains(ip))
    }
}

/// The part of a header that arrived before the rest of it. Invariant: it
/// holds bytes `proxy::parse` judged `Partial`, so it is always shorter
/// than [`MAX_HEADER_LEN`]; it is empty (no allocation) until a header
/// arrives split.
#[derive(Default)]
pub(crate) struct ProxyStage {
    held: Vec<u8>,
}

impl ProxyStage {
    /// How many bytes the next read may take: all the read buffer while
    /// nothing is held (the header's tail is parsed in place and the rest
    /// delivered), else only what keeps `held` within [`MAX_HEADER_LEN`].
    pub(crate) fn read_limit(&self, buf_len: usize) -> usize {
        if self.held.is_empty() {
            buf_len
        } else {
            MAX_HEADER_LEN
                .saturating_sub(self.held.len())
                .clamp(1, buf_len.max(1))
        }
    }
}

/// Why a connection was closed in the PROXY stage (for the debug log).
enum StageError {
    /// The bytes are not a valid header (or there is no header).
    Header(ProxyError),
    /// The peer closed before the header was complete.
    Eof,
    /// No complete header within the deadline.
    TimedOut,
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StageError::Header(e) if e.is_missing() => {
                write!(f, "{e} (a client bypassing the proxy?)")
            }
            StageError::Header(e) => write!(f, "{e}"),
            StageError::Eof => f.write_str("closed before a complete PROXY header"),
            StageError::TimedOut => f.write_str("no complete PROXY header in time"),
        }
    }
}

impl Core {
    /// A connection accepted on a PROXY listener: close it at once if the
    /// peer is not an allowed proxy, else register it in the PROXY stage
    /// (no gate decision, no TLS, no protocol yet) with its deadline.
    pub(crate) fn accept_proxied(&mut self, index: u32, stream: Stream, peer: PeerAddr) {
        let Some(Some(l)) = self.listeners.get_mut(index as usize) else {
            return;
        };
        let Some(opts) = l.proxy.as_ref() else {
            return self.admit(index, stream, peer);
        };
        if !opts.allows(&peer) {
            l.stats.proxy_failures += 1;
            log::debug!("{peer} is not an allowed PROXY protocol sender: closed");
            return; // `stream` drops: closed at once, nothing read
        }
        let deadline = opts.deadline;
        l.stats.active += 1;
        let none: Option<Box<dyn Protocol>> = None;
        let Some((key, gen)) = self.insert_conn(stream, none, peer, index, flag::READ_ARMED) else {
            return;
        };
        let at = self.now + deadline;
        let (conns, timers) = (&mut self.conns, &mut self.timers);
        if let Some(c) = conns.get_mut(key as usize) {
            c.proxy = Some(Box::default());
            let id = timers.insert(
                at,
                None,
                key,
                gen,
                TimerKind::ProxyDeadline,
                &mut c.timers_head,
            );
            c.aux_timer = Some(id);
        }
    }

    /// Bytes read from a connection, if it is in the PROXY stage: returns
    /// where the protocol's bytes start in `data` once the header is
    /// complete and the connection admitted (`Some(0)` if the connection is
    /// not in the stage at all), or `None` when nothing is to be delivered
    /// now (header still partial, or the connection was closed).
    pub(crate) fn proxy_input(&mut self, key: u32, gen: u32, data: &[u8]) -> Option<usize> {
        let c = self.conn_mut(key, gen)?;
        let Some(stage) = c.proxy.as_mut() else {
            return Some(0);
        };
        // The header usually arrives whole: parse in place, copy nothing.
        let held = stage.held.len();
        let parsed = if held == 0 {
            proxy::parse(data)
        } else {
            stage.held.reserve_exact(data.len());
            stage.held.extend_from_slice(data);
            proxy::parse(&stage.held)
        };
        match parsed {
            Ok(Parsed::Partial) => {
                if held == 0 {
                    stage.held.reserve_exact(data.len());
                    stage.held.extend_from_slice(data);
                }
                if stage.held.len() >= MAX_HEADER_LEN {
                    // Not reachable with a correct parser (it decides by
                    // then); kept so the bound holds whatever it does.
                    self.proxy_failed(key, gen, StageError::Header(ProxyError::TooLong));
                }
                None
            }
            Err(e) => {
                self.proxy_failed(key, gen, StageError::Header(e));
                None
            }
            Ok(Parsed::Complete { header, consumed }) => {
                // `held` parsed as partial, so the header ends in `data`.
                let Some(start) = consumed.checked_sub(held) else {
                    self.proxy_failed(key, gen, StageError::Header(ProxyError::Garbage));
                    return None;
                };
                c.proxy = None;
                if let (Command::Proxy, Some(source)) = (header.command, header.source()) {
                    c.peer = PeerAddr::Tcp(canonical_peer(source));
                }
                let (peer, listener) = (c.peer, c.listener);
                if let Some(id) = c.aux_timer.take() {
                    self.cancel_timer(id);
                }
                if !matches!(self.state, RunState::Running) {
                    self.finalize(key, Disconnect::Shutdown { unsent: 0 });
                    return None;
                }
                log::trace!("PROXY header: connection {key} is from {peer}");
                let Some(admitted) = self.gate_and_build(listener, peer) else {
                    // Refused at once (counted by the gate's listener).
                    self.finalize(key, Disconnect::Closed);
                    return None;
                };
                self.start_admitted(key, gen, admitted);
                self.conn(key, gen).map(|_| start)
            }
        }
    }

    /// The peer closed before its header was complete.
    pub(crate) fn proxy_eof(&mut self, key: u32, gen: u32) {
        self.proxy_failed(key, gen, StageError::Eof);
    }

    /// The PROXY deadline fired: close the connection if it is still
    /// waiting for its header.
    pub(crate) fn proxy_timed_out(&mut self, key: u32, gen: u32) {
        let waiting = self.conn_mut(key, gen).is_some_and(|c| {
            c.aux_timer = None;
            c.proxy.is_some()
        });
        if waiting {
            self.proxy_failed(key, gen, StageError::TimedOut);
        }
    }

    /// Closes a connection in the PROXY stage: counted, logged at debug.
    fn proxy_failed(&mut self, key: u32, gen: u32, why: StageError) {
        let Some(c) = self.conn(key, gen) else {
            return;
        };
        let (listener, peer) = (c.listener, c.peer);
        self.stats_mut(listener).proxy_failures += 1;
        log::debug!("PROXY protocol from {peer}: {why}; closed");
        self.finalize(key, Disconnect::Aborted { unsent: 0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::Cidr;

    #[test]
    fn read_limit_keeps_the_held_header_bounded() {
        let mut stage = ProxyStage::default();
        assert_eq!(stage.read_limit(16384), 16384);
        stage.held.extend_from_slice(b"PROXY TCP4 ");
        assert_eq!(stage.read_limit(16384), MAX_HEADER_LEN - 11);
        assert_eq!(stage.read_limit(100), 100);
        stage.held.resize(MAX_HEADER_LEN, 0);
        assert_eq!(stage.read_limit(16384), 1, "never a zero-length read (EOF)");
    }

    #[test]
    fn only_listed_proxies_and_unix_peers_are_allowed() {
        let mut allow = AllowList::new();
        allow.push(Cidr::parse("10.0.0.0/8").unwrap());
        let opts = ProxyOptions::new(allow);
        assert_eq!(opts.deadline, DEFAULT_PROXY_DEADLINE);
        assert!(opts.allows(&PeerAddr::Tcp("10.1.2.3:5000".parse().unwrap())));
        assert!(!opts.allows(&PeerAddr::Tcp("192.0.2.1:5000".parse().unwrap())));
        assert!(!opts.allows(&PeerAddr::Tcp("[2001:db8::1]:5000".parse().unwrap())));
        assert!(opts.allows(&PeerAddr::Unix));
    }

    #[test]
    fn missing_header_says_so_in_the_log() {
        let line = StageError::Header(ProxyError::Missing).to_string();
        assert!(line.contains("bypassing"), "{line}");
        assert!(StageError::TimedOut.to_string().contains("in time"));
    }
}
