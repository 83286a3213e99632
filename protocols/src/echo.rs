//! Echo (RFC 862): every byte a client sends is sent back. The simplest
//! complete protocol, used as the `--echo` listener of the binary and as the
//! target of `torsion bench tcp://` and the reactor benchmarks.

use std::time::Duration;

use torsion_reactor::{PeerInfo, Protocol, TimerId, Transport};

/// Settings of an echo listener.
#[derive(Clone, Copy, Debug)]
pub struct EchoConfig {
    /// A connection that sends nothing for this long is closed, so a silent
    /// peer cannot hold a descriptor forever.
    pub idle_timeout: Duration,
}

/// The default idle timeout: long enough for interactive use.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// One echo connection.
///
/// The idle deadline is not re-armed on every read (that would cost a timer
/// insert and cancel per message): the timer fires once per `idle_timeout`
/// and closes the connection only if nothing arrived since the last firing.
pub struct Echo {
    config: EchoConfig,
    active: bool,
    timer: Option<TimerId>,
}

impl Echo {
    /// A protocol instance for one connection.
    pub fn new(config: EchoConfig) -> Echo {
        Echo {
            config,
            active: false,
            timer: None,
        }
    }

    /// A factory for [`Reactor::listen`](torsion_reactor::Reactor::listen).
    pub fn factory(config: EchoConfig) -> impl FnMut(&PeerInfo) -> Box<dyn Protocol> {
        move |_peer| Box::new(Echo::new(config))
    }
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.timer = Some(t.call_every(self.config.idle_timeout));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        self.active = true;
        t.write(data);
        // Stop reading while the peer is not reading our echo: its own
        // sending then stalls on TCP flow control instead of our memory.
        if t.over_high_water() {
            t.pause_reading();
        }
    }

    fn write_drained(&mut self, t: &mut Transport<'_>) {
        t.resume_reading();
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, _timer: TimerId) {
        if !std::mem::take(&mut self.active) && t.buffered_len() == 0 {
            log::debug!("echo: idle connection closed");
            t.close();
        }
    }
}
