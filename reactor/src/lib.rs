//! # torsion-reactor
//!
//! A single-threaded, poll-based event loop in the style of Twisted: one
//! [`Reactor`] runs a [`Protocol`] object per connection, and you write only
//! the protocol — no futures, no runtime, no locks.
//!
//! - **Listeners**: TCP (IPv4, IPv6, dual-stack `[::]`), Unix sockets, many
//!   per reactor, each with its own [`Factory`] and optional accept-time
//!   [`Gate`]; port 0 with [`Reactor::local_addr`]; behind a load
//!   balancer, the PROXY protocol ([`ProxyOptions`]): the header names the
//!   client the gate and the protocol see.
//! - **Transports**: [`Transport::write`] (queued, with high/low water marks
//!   and [`Protocol::write_drained`]), [`Transport::close`] (flush, then
//!   close), [`Transport::abort`], half-close, pause/resume reading,
//!   [`Context::write_to`] another connection (broadcast).
//! - **Timers**: [`Transport::call_later`], [`Transport::call_every`],
//!   [`Context::schedule`]; monotonic, cancellable, fired in deadline order.
//! - **Child processes**: [`Transport::spawn`] with stdout/stderr streamed
//!   through the loop, backpressure, kill on close, no zombies.
//! - **Outbound connections**: [`Context::connect`] with a connect timeout.
//! - **Signals**: [`Reactor::stop_on_signals`] (graceful SIGINT/SIGTERM),
//!   [`Reactor::on_signal`] (e.g. SIGHUP).
//!
//! # Example: an echo server
//!
//! ```no_run
//! use torsion_reactor::{PeerInfo, Protocol, Reactor, Transport};
//!
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
//!         t.write(data);
//!     }
//! }
//!
//! fn main() -> Result<(), torsion_reactor::ReactorError> {
//!     let mut reactor = Reactor::new()?;
//!     let addr: std::net::SocketAddr = "127.0.0.1:7000".parse().unwrap();
//!     reactor.listen(addr, |_peer: &PeerInfo| Box::new(Echo) as Box<dyn Protocol>)?;
//!     reactor.stop_on_signals()?;
//!     reactor.run()
//! }
//! ```
//!
//! # How the loop works
//!
//! Readiness comes from epoll, through `rustix`'s safe calls (the
//! `poller` module: one `epoll_pwait` per wakeup, where the `polling`
//! crate spent five system calls re-arming its timerfd and wake-up
//! eventfd). Connection sockets are registered **level-triggered**, with read interest only while the
//! protocol wants data and write interest only while output is queued, so
//! an idle connection costs no wakeups. A read shorter than the buffer
//! means the socket is drained: the loop moves on, and anything that
//! arrives later (more data, the FIN) is reported by the next wait — two
//! system calls per echoed message, no `read` ending in `EAGAIN`.
//! (Edge-triggered with that shortcut loses a FIN that arrives with data.)
//! `EPOLLPRI` is never asked for, so TCP urgent data cannot spin the loop
//! (the `pitfalls` tests send it).
//! HUP and ERR end the connection unless a read is about to make progress.
//! Listeners are level-triggered too, so an event does not need re-arming
//! (only pausing and resuming a listener change its interest): each wakeup
//! accepts as many connections as the kernel says wait in the queue
//! (`TCP_INFO`), up to a per-wakeup cap, instead of accepting until
//! `EAGAIN` — on Linux a failing `accept4` allocates and frees a whole
//! socket, which cost 13% of the server's CPU per connection under a
//! connection-per-request load. Accepted sockets inherit `TCP_NODELAY`
//! from the listener. A listener whose clients speak first can ask the
//! kernel to hand connections over only with their first bytes
//! (`ListenOptions::defer_accept`). Child pipes and the signal pipe are
//! oneshot and re-armed after each event. All connections share one read
//! buffer; a connection owns a write buffer only while the socket has not
//! taken all of its output, and output written during one callback is
//! sent with one `write`.
//!
//! # Memory per connection
//!
//! The reactor keeps one `Conn` record per connection
//! (`size_of` is printed by the `conn_size` test: 144 bytes on x86-64) plus
//! the protocol's own state; queued output only while it is queued. With
//! 10,000 idle echo connections the process grows by well under 0.5 KiB per
//! connection (see BENCHMARKS.md).

#![warn(missing_docs)]

mod addr;
mod child;
mod config;
mod conn;
mod connect;
mod core;
mod error;
pub mod gate;
mod ids;
mod listener;
mod poller;
mod protocol;
pub mod proxy;
mod proxy_stage;
mod reactor;
mod signals;
mod stats;
mod sys;
mod timers;
pub mod tls;
mod transport;

pub use addr::{resolve_listen_host, Address, PeerAddr};
pub use config::{
    default_max_connections, ReactorConfig, DEFAULT_ACCEPT_BACKOFF, DEFAULT_ACCEPT_BATCH,
    DEFAULT_BACKLOG, DEFAULT_CLOSE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER, DEFAULT_READ_BATCH, DEFAULT_READ_BUFFER,
    DEFAULT_SHUTDOWN_TIMEOUT,
};
pub use error::ReactorError;
pub use ids::{ChildId, ChildStream, ConnId, ListenerId, TimerId};
pub use listener::ListenOptions;
pub use protocol::{Disconnect, Factory, Gate, PeerInfo, Protocol, Verdict};
pub use proxy_stage::{ProxyOptions, DEFAULT_PROXY_DEADLINE};
pub use reactor::{Reactor, ReactorHandle};
pub use stats::ListenerStats;
pub use transport::{Context, Transport};

/// The size of the reactor's per-connection record, for documentation and
/// memory budgeting (the protocol's own state comes on top).
pub fn connection_record_size() -> usize {
    std::mem::size_of::<conn::Conn>()
}

#[cfg(test)]
mod size_tests {
    /// The per-connection record is what 10,000 idle connections cost the
    /// reactor (plus each protocol's state): keep an eye on its size.
    #[test]
    fn conn_size() {
        let size = super::connection_record_size();
        println!("size_of::<Conn>() = {size} bytes");
        assert!(size <= 160, "Conn grew to {size} bytes");
    }
}
