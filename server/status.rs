//! What the status page (`/status` on the HTTPS/WebSocket listener) shows:
//! every listener of every worker, per protocol, plus gate refusals.
//!
//! Each worker's counters live on its own thread (its reactor's listener
//! stats, its factories' request counters). The worker serving a status
//! page computes its own lines and, once per snapshot, asks every other
//! worker for theirs through [`ReactorHandle::call_from_thread`]; the
//! answers land on the [`WorkerBoard`] and are summed into the next
//! snapshot, so other workers' figures are at most one tick old.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use torsion_protocols::http::HttpStats;
use torsion_protocols::websocket::{
    process_rss_bytes, ProtocolStatus, StatusSnapshot, StatusSource, WsHandle, WsStats,
};
use torsion_reactor::gate::RateGate;
use torsion_reactor::{Context, ListenerId, ReactorHandle};

/// The listeners of one worker's reactor, filled in as they are opened, and
/// the protocol factories' counters.
#[derive(Default)]
pub struct Registry {
    /// Each listener's scheme (`gemini`, `http`, `https`, `echo`) and id.
    pub listeners: Vec<(&'static str, ListenerId)>,
    /// Request counters of the HTTP redirect factories.
    pub http: Vec<Rc<RefCell<HttpStats>>>,
    /// Requests answered by the Gemini factories.
    pub gemini: Vec<Rc<Cell<u64>>>,
    /// The WebSocket factories (their counters).
    pub ws: Vec<WsHandle>,
    /// The port the first HTTPS listener actually bound (it may have been
    /// configured as 0): HTTP redirects point there.
    pub https_port: Option<u16>,
}

/// A registry shared by the wiring (which fills it) and the status page.
pub type SharedRegistry = Rc<RefCell<Registry>>;

thread_local! {
    /// This thread's worker index and registry, for calls from other
    /// workers' status pages.
    static THIS_WORKER: RefCell<Option<(usize, SharedRegistry)>> = const { RefCell::new(None) };
}

/// Every worker's reactor handle and latest protocol lines.
pub struct WorkerBoard {
    handles: Mutex<Vec<Option<ReactorHandle>>>,
    lines: Mutex<Vec<Option<Vec<ProtocolStatus>>>>,
}

impl WorkerBoard {
    /// A board for `workers` workers, none registered yet.
    pub fn new(workers: usize) -> Arc<WorkerBoard> {
        Arc::new(WorkerBoard {
            handles: Mutex::new(vec![None; workers]),
            lines: Mutex::new(vec![None; workers]),
        })
    }

    /// Called on worker `index`'s thread once its listeners are open: its
    /// handle goes on the board and its registry becomes reachable from
    /// calls sent to that thread.
    pub fn enter(&self, index: usize, handle: ReactorHandle, registry: SharedRegistry) {
        if let Some(slot) = lock(&self.handles).get_mut(index) {
            *slot = Some(handle);
        }
        THIS_WORKER.with(|w| *w.borrow_mut() = Some((index, registry)));
    }

    /// Asks every other worker for its lines (they arrive later).
    fn ask_others(self: &Arc<Self>, me: usize) {
        let handles = lock(&self.handles).clone();
        for (index, handle) in handles.into_iter().enumerate() {
            let Some(handle) = handle.filter(|_| index != me) else {
                continue;
            };
            let board = Arc::clone(self);
            handle.call_from_thread(move |ctx| {
                let lines = THIS_WORKER.with(|w| {
                    w.borrow()
                        .as_ref()
                        .map(|(_, registry)| worker_lines(&registry.borrow(), ctx, None))
                });
                if let Some(slot) = lock(&board.lines).get_mut(index) {
                    *slot = lines;
                }
            });
        }
    }

    /// The other workers' latest lines, summed into `into`.
    fn add_others(&self, me: usize, into: &mut Vec<ProtocolStatus>) {
        for (index, lines) in lock(&self.lines).iter().enumerate() {
            if index == me {
                continue;
            }
            for line in lines.iter().flatten() {
                add_line(into, line);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This worker's lines: one per protocol, from its listeners' counters and
/// its factories' request counts (gate refusals are process-wide and added
/// by the caller). `own_ws`: the counters of the WebSocket factory whose
/// status source is asking, which cannot be read through its busy handle.
fn worker_lines(
    registry: &Registry,
    ctx: &Context<'_>,
    own_ws: Option<&WsStats>,
) -> Vec<ProtocolStatus> {
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
    }
    let mut ws_lines = Vec::new();
    for handle in &registry.ws {
        match (handle.try_stats(), own_ws) {
            (Some(stats), _) => ws_lines.push(stats.protocol_status(ctx)),
            (None, Some(own)) => ws_lines.push(own.protocol_status(ctx)),
            (None, None) => {}
        }
    }
    if registry.ws.is_empty() {
        if let Some(own) = own_ws {
            ws_lines.push(own.protocol_status(ctx));
        }
    }
    for line in &ws_lines {
        add_line(&mut protocols, line);
    }
    protocols
}

/// Adds `line`'s counters to the line of the same name in `into` (or
/// appends it). Gate refusals are not summed: the gates are shared by all
/// workers, so [`ServerStatus::snapshot`] sets them from the gates.
fn add_line(into: &mut Vec<ProtocolStatus>, line: &ProtocolStatus) {
    let Some(p) = into.iter_mut().find(|p| p.name == line.name) else {
        into.push(line.clone());
        return;
    };
    p.open = p.open.saturating_add(line.open);
    p.connections = p.connections.saturating_add(line.connections);
    p.requests = p.requests.saturating_add(line.requests);
    p.bytes_in = p.bytes_in.saturating_add(line.bytes_in);
    p.bytes_out = p.bytes_out.saturating_add(line.bytes_out);
    p.tls_failures = p.tls_failures.saturating_add(line.tls_failures);
}

/// The server's [`StatusSource`].
pub struct ServerStatus {
    started: Instant,
    registry: SharedRegistry,
    gates: Vec<(&'static str, RateGate)>,
    board: Arc<WorkerBoard>,
}

impl ServerStatus {
    /// A source reporting the listeners in `registry`, the other workers'
    /// lines from `board`, and the refusals of `gates` (by the scheme of
    /// the listener they guard).
    pub fn new(
        started: Instant,
        registry: SharedRegistry,
        gates: Vec<(&'static str, RateGate)>,
        board: Arc<WorkerBoard>,
    ) -> Self {
        ServerStatus {
            started,
            registry,
            gates,
            board,
        }
    }

    fn refusals(&self, schemes: &[&str]) -> u64 {
        self.gates
            .iter()
            .filter(|(s, _)| schemes.contains(s))
            .map(|(_, g)| g.stats().refused_total())
            .sum()
    }
}

impl StatusSource for ServerStatus {
    fn snapshot(&mut self, ctx: &Context<'_>, ws: &WsStats) -> StatusSnapshot {
        let mut protocols = worker_lines(&self.registry.borrow(), ctx, Some(ws));
        let me = THIS_WORKER.with(|w| w.borrow().as_ref().map(|(index, _)| *index));
        if let Some(me) = me {
            self.board.add_others(me, &mut protocols);
            self.board.ask_others(me);
        }
        // The gates are shared by all workers: their counts are already
        // the process's.
        for p in &mut protocols {
            p.gate_refusals = match p.name.as_str() {
                "websocket" => self.refusals(&["https", "ws"]),
                name => self.refusals(&[name]),
            };
        }
        StatusSnapshot {
            uptime: self.started.elapsed(),
            rss_bytes: process_rss_bytes(),
            protocols,
            ws: ws.clone(),
        }
    }
}
