//! What the status page (`/status` on the HTTPS/WebSocket listener) shows:
//! every listener of this worker, per protocol, plus gate refusals.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use torsion_protocols::http::HttpStats;
use torsion_protocols::websocket::{
    process_rss_bytes, ProtocolStatus, StatusSnapshot, StatusSource, WsStats,
};
use torsion_reactor::gate::RateGate;
use torsion_reactor::{Context, ListenerId};

/// The listeners of one worker's reactor, filled in as they are opened, and
/// the HTTP factories' request counters.
#[derive(Default)]
pub struct Registry {
    /// Each listener's scheme (`gemini`, `http`, `https`, `echo`) and id.
    pub listeners: Vec<(&'static str, ListenerId)>,
    /// Request counters of the HTTP redirect factories.
    pub http: Vec<Rc<RefCell<HttpStats>>>,
    /// Requests answered by the Gemini factories.
    pub gemini: Vec<Rc<Cell<u64>>>,
    /// The port the first HTTPS listener actually bound (it may have been
    /// configured as 0): HTTP redirects point there.
    pub https_port: Option<u16>,
}

/// A registry shared by the wiring (which fills it) and the status page.
pub type SharedRegistry = Rc<RefCell<Registry>>;

/// The server's [`StatusSource`].
pub struct ServerStatus {
    started: Instant,
    registry: SharedRegistry,
    gates: Vec<(&'static str, RateGate)>,
}

impl ServerStatus {
    /// A source reporting the listeners in `registry` and the refusals of
    /// `gates` (by the scheme of the listener they guard).
    pub fn new(
        started: Instant,
        registry: SharedRegistry,
        gates: Vec<(&'static str, RateGate)>,
    ) -> Self {
        ServerStatus {
            started,
            registry,
            gates,
        }
    }

    fn refusals(&self, scheme: &str) -> u64 {
        self.gates
            .iter()
            .filter(|(s, _)| *s == scheme)
            .map(|(_, g)| g.stats().refused_total())
            .sum()
    }
}

impl StatusSource for ServerStatus {
    fn snapshot(&mut self, ctx: &Context<'_>, ws: &WsStats) -> StatusSnapshot {
        let registry = self.registry.borrow();
        let mut protocols: Vec<ProtocolStatus> = Vec::new();
        for (scheme, id) in &registry.listeners {
            // The WebSocket module reports its own line (below).
            if *scheme == "https" || *scheme == "ws" {
                continue;
            }
            let Some(stats) = ctx.listener_stats(*id) else {
                continue;
            };
            match protocols.iter_mut().find(|p| p.name == *scheme) {
                Some(p) => p.add_listener(&stats),
                None => protocols.push(ProtocolStatus::from_listener(scheme, &stats)),
            }
        }
        for p in &mut protocols {
            p.requests = match p.name.as_str() {
                "gemini" => registry.gemini.iter().map(|r| r.get()).sum(),
                "http" => registry.http.iter().map(|s| s.borrow().requests).sum(),
                _ => p.requests,
            };
            p.gate_refusals = self.refusals(&p.name);
        }
        let mut line = ws.protocol_status(ctx);
        line.gate_refusals = self.refusals("https") + self.refusals("ws");
        protocols.push(line);
        StatusSnapshot {
            uptime: self.started.elapsed(),
            rss_bytes: process_rss_bytes(),
            protocols,
            ws: ws.clone(),
        }
    }
}
