//! An echo server: every byte a client sends comes back.
//!
//! ```text
//! cargo run --example echo                  # listens on 127.0.0.1:7000
//! cargo run --example echo -- [::]:7000     # all interfaces, IPv4 and IPv6
//! printf 'hello\n' | nc -q1 127.0.0.1 7000
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use torsion_reactor::{PeerInfo, Protocol, Reactor, Transport};

/// Idle connections are closed after this long, so a silent peer cannot
/// hold a connection forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Echo {
    idle: Option<torsion_reactor::TimerId>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.idle = Some(t.call_later(IDLE_TIMEOUT));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        t.write(data);
        if let Some(old) = self.idle.replace(t.call_later(IDLE_TIMEOUT)) {
            t.cancel(old);
        }
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, _timer: torsion_reactor::TimerId) {
        t.close();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .parse()?;
    let mut reactor = Reactor::new()?;
    let id = reactor.listen(addr, |_: &PeerInfo| {
        Box::new(Echo::default()) as Box<dyn Protocol>
    })?;
    eprintln!(
        "echo listening on {}",
        reactor.local_addr(id).ok_or("no address")?
    );
    reactor.stop_on_signals()?;
    reactor.run()?;
    Ok(())
}
