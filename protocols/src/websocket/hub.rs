//! State shared by every connection of one WebSocket factory: the named
//! groups broadcasts go to, the counters, the status source, and the
//! reactor-wide timers (status ticker, broadcast-file watcher).
//!
//! Single-threaded by design: an `Rc<Shared>` is cloned into each protocol
//! and each timer closure; the `RefCell` is never held across a call into
//! an endpoint, so endpoints may broadcast from any callback.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use torsion_reactor::{ConnId, Context, TimerId};

use super::close::POLICY_VIOLATION;
use super::config::{SlowReaderPolicy, WsConfig, MAX_BROADCAST_FILE};
use super::encode::{encode_close, server_header};
use super::endpoint::{Message, Route};
use super::endpoints::chat::CHAT_GROUP;
use super::endpoints::status::STATUS_GROUP;
use super::stats::{push_json_string, StatusSnapshot, StatusSource, WsStats};

/// Status samples kept for the page's charts: five minutes at the default
/// one-second interval, a few kilobytes.
pub const STATUS_HISTORY: usize = 300;

/// One tick's totals, for the charts of a page that opens later.
struct Sample {
    time_ms: u64,
    /// (connections, requests) per protocol, in `history_names` order.
    counts: Vec<(u64, u64)>,
}

/// Everything one factory's connections share.
pub(crate) struct Shared {
    pub(crate) config: WsConfig,
    pub(crate) routes: RefCell<Vec<Route>>,
    pub(crate) hub: RefCell<Hub>,
}

/// Groups, counters and timers.
pub(crate) struct Hub {
    pub(crate) stats: WsStats,
    groups: HashMap<Box<str>, BTreeSet<ConnId>>,
    /// The frame being broadcast, encoded once for all recipients; keeps its
    /// capacity between broadcasts.
    frame: Vec<u8>,
    source: Box<dyn StatusSource>,
    /// The status ticker: started with the first connection, it samples
    /// every interval (for the charts) and pushes to `/status` clients.
    status_timer: Option<TimerId>,
    /// The last [`STATUS_HISTORY`] samples, oldest first.
    history: VecDeque<Sample>,
    /// The protocol names of the samples.
    history_names: Vec<String>,
    /// Whether the broadcast-file watcher was started.
    watcher_started: bool,
}

/// What a broadcast did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BroadcastReport {
    /// Recipients the message was queued for.
    pub sent: usize,
    /// Recipients skipped because their queue was above the high water mark
    /// ([`SlowReaderPolicy::Drop`]).
    pub dropped: usize,
    /// Recipients closed with 1008 because their queue was above the high
    /// water mark ([`SlowReaderPolicy::Close`]).
    pub closed: usize,
}

impl Hub {
    pub(crate) fn new(source: Box<dyn StatusSource>) -> Hub {
        Hub {
            stats: WsStats::default(),
            groups: HashMap::new(),
            frame: Vec::new(),
            source,
            status_timer: None,
            history: VecDeque::new(),
            history_names: Vec::new(),
            watcher_started: false,
        }
    }

    pub(crate) fn join(&mut self, group: &str, id: ConnId) {
        match self.groups.get_mut(group) {
            Some(members) => {
                members.insert(id);
            }
            None => {
                self.groups.insert(group.into(), BTreeSet::from([id]));
            }
        }
    }

    pub(crate) fn leave(&mut self, group: &str, id: ConnId) {
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(&id);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    /// Removes a closed connection from every group.
    pub(crate) fn leave_all(&mut self, id: ConnId) {
        self.groups.retain(|_, members| {
            members.remove(&id);
            !members.is_empty()
        });
    }

    pub(crate) fn members(&self, group: &str) -> Vec<ConnId> {
        self.groups
            .get(group)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    pub(crate) fn group_len(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, BTreeSet::len)
    }

    /// Sends `msg` to every member of `group` but `except`, applying the
    /// slow-reader policy: a member whose queue would pass `high_water` with
    /// this frame (and is not empty: one frame always fits) is skipped or
    /// closed. The frame is encoded once.
    pub(crate) fn broadcast(
        &mut self,
        ctx: &mut Context<'_>,
        config: &WsConfig,
        group: &str,
        msg: Message<'_>,
        except: Option<ConnId>,
    ) -> BroadcastReport {
        let mut report = BroadcastReport::default();
        let Hub {
            groups,
            frame,
            stats,
            ..
        } = self;
        let Some(members) = groups.get(group) else {
            return report;
        };
        let (opcode, payload) = msg.parts();
        frame.clear();
        frame.extend_from_slice(server_header(opcode, payload.len()).as_bytes());
        frame.extend_from_slice(payload);
        let high = config.broadcast_high_water;
        for &id in members {
            if Some(id) == except || !ctx.is_open(id) {
                continue;
            }
            let queued = ctx.buffered_len_of(id).unwrap_or(0);
            stats.max_recipient_backlog = stats
                .max_recipient_backlog
                .max(u64::try_from(queued).unwrap_or(u64::MAX));
            if queued > 0 && queued.saturating_add(frame.len()) > high {
                match config.slow_reader {
                    SlowReaderPolicy::Drop => report.dropped += 1,
                    SlowReaderPolicy::Close => {
                        let mut close = Vec::with_capacity(32);
                        encode_close(POLICY_VIOLATION, "too slow", &mut close);
                        ctx.write_to(id, &close);
                        ctx.close_conn(id);
                        report.closed += 1;
                        log::debug!("websocket: slow reader {id} closed ({queued} bytes queued)");
                    }
                }
                continue;
            }
            if ctx.write_to(id, frame) {
                report.sent += 1;
            }
        }
        let sent = report.sent as u64;
        stats.messages_out = stats.messages_out.saturating_add(sent);
        stats.payload_out = stats
            .payload_out
            .saturating_add(sent.saturating_mul(payload.len() as u64));
        stats.broadcast_dropped = stats
            .broadcast_dropped
            .saturating_add(report.dropped as u64);
        stats.slow_closed = stats.slow_closed.saturating_add(report.closed as u64);
        if frame.capacity() > super::message::RETAINED_BUFFER {
            *frame = Vec::new();
        }
        report
    }

    /// The current snapshot as JSON.
    pub(crate) fn status_json(&mut self, ctx: &Context<'_>) -> String {
        let snapshot = self.source.snapshot(ctx, &self.stats);
        let mut json = String::with_capacity(1024);
        snapshot.write_json(&mut json);
        json
    }

    /// Records a snapshot's totals for the charts.
    fn record(&mut self, snapshot: &StatusSnapshot) {
        let names_match = self.history_names.len() == snapshot.protocols.len()
            && self
                .history_names
                .iter()
                .zip(&snapshot.protocols)
                .all(|(a, p)| *a == p.name);
        if !names_match {
            self.history.clear();
            self.history_names = snapshot.protocols.iter().map(|p| p.name.clone()).collect();
        }
        if self.history.len() >= STATUS_HISTORY {
            self.history.pop_front();
        }
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.history.push_back(Sample {
            time_ms,
            counts: snapshot
                .protocols
                .iter()
                .map(|p| (p.connections, p.requests))
                .collect(),
        });
    }

    /// The recorded samples as JSON, `None` when there are none yet:
    /// `{"history":{"names":["websocket"],"samples":[[time_ms,conns,reqs,...],...]}}`
    /// with a (connections, requests) pair per name in each sample.
    pub(crate) fn history_json(&self) -> Option<String> {
        if self.history.is_empty() {
            return None;
        }
        let mut json = String::with_capacity(64 + self.history.len() * 40);
        json.push_str("{\"history\":{\"names\":[");
        for (i, name) in self.history_names.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            push_json_string(name, &mut json);
        }
        json.push_str("],\"samples\":[");
        for (i, sample) in self.history.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            let _ = write!(json, "[{}", sample.time_ms);
            for (c, r) in &sample.counts {
                let _ = write!(json, ",{c},{r}");
            }
            json.push(']');
        }
        json.push_str("]}}");
        Some(json)
    }
}

/// Starts the status ticker once per factory (at its first connection):
/// every status interval it takes one snapshot, records it for the charts
/// and pushes it to every `/status` client.
pub(crate) fn ensure_status_ticker(shared: &Rc<Shared>, ctx: &mut Context<'_>) {
    if shared.hub.borrow().status_timer.is_some() {
        return;
    }
    let me = Rc::clone(shared);
    let id = ctx.schedule_every(shared.config.status_interval, move |ctx, _id| {
        let mut guard = me.hub.borrow_mut();
        let hub = &mut *guard;
        let snapshot = hub.source.snapshot(ctx, &hub.stats);
        hub.record(&snapshot);
        if hub.group_len(STATUS_GROUP) == 0 {
            return;
        }
        let mut json = String::with_capacity(1024);
        snapshot.write_json(&mut json);
        hub.broadcast(ctx, &me.config, STATUS_GROUP, Message::Text(&json), None);
    });
    shared.hub.borrow_mut().status_timer = Some(id);
}

/// Starts the broadcast-file watcher once per factory, if a file is
/// configured: every poll interval it compares the file's length and
/// modification time with the last seen, and on a change pushes the text to
/// every `/chat` client. The state at start is the baseline (not pushed).
pub(crate) fn ensure_file_watcher(shared: &Rc<Shared>, ctx: &mut Context<'_>) {
    let Some(path) = shared.config.broadcast_file.clone() else {
        return;
    };
    {
        let mut hub = shared.hub.borrow_mut();
        if hub.watcher_started {
            return;
        }
        hub.watcher_started = true;
    }
    let me = Rc::clone(shared);
    let mut last = file_stamp(&path);
    ctx.schedule_every(shared.config.broadcast_poll, move |ctx, _id| {
        let stamp = file_stamp(&path);
        if stamp == last {
            return;
        }
        last = stamp;
        if stamp.is_none_or(|(len, _)| len == 0) {
            return;
        }
        let text = match read_prefix(&path, MAX_BROADCAST_FILE) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                log::warn!("broadcast file {}: {e}", path.display());
                return;
            }
        };
        let text = text.trim_end_matches(['\n', '\r']);
        let mut hub = me.hub.borrow_mut();
        let report = hub.broadcast(ctx, &me.config, CHAT_GROUP, Message::Text(text), None);
        log::info!(
            "broadcast file {}: {} bytes pushed to {} chat clients ({} dropped)",
            path.display(),
            text.len(),
            report.sent,
            report.dropped
        );
    });
}

/// Length and modification time, the change detector of the watcher.
fn file_stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

/// Reads at most `limit` bytes from the start of a regular file.
fn read_prefix(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A handle on a factory's shared state, for the server and tests: counters,
/// group members, and broadcasts from outside any connection (e.g. a
/// signal handler or a reactor timer).
#[derive(Clone)]
pub struct WsHandle {
    pub(crate) shared: Rc<Shared>,
}

impl WsHandle {
    /// A copy of the counters.
    pub fn stats(&self) -> WsStats {
        self.shared.hub.borrow().stats.clone()
    }

    /// A copy of the counters, or `None` while the factory's hub is busy
    /// (when called from inside its own status source).
    pub fn try_stats(&self) -> Option<WsStats> {
        self.shared.hub.try_borrow().ok().map(|h| h.stats.clone())
    }

    /// The connections in a group now (`"chat"`, `"status"`, or one an
    /// endpoint named).
    pub fn members(&self, group: &str) -> Vec<ConnId> {
        self.shared.hub.borrow().members(group)
    }

    /// Sends `msg` to every member of `group`, with the slow-reader policy.
    pub fn broadcast(
        &self,
        ctx: &mut Context<'_>,
        group: &str,
        msg: Message<'_>,
    ) -> BroadcastReport {
        self.shared
            .hub
            .borrow_mut()
            .broadcast(ctx, &self.shared.config, group, msg, None)
    }

    /// The snapshot `/status` would push now, as JSON.
    pub fn status_json(&self, ctx: &Context<'_>) -> String {
        self.shared.hub.borrow_mut().status_json(ctx)
    }
}

impl std::fmt::Debug for WsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WsHandle")
    }
}
