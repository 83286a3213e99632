//! `/status`: on open, the recorded history (`{"history":...}`, so the
//! page's charts start full) and a JSON snapshot of the server's counters
//! (see [`StatusSnapshot::write_json`](crate::websocket::StatusSnapshot::write_json));
//! then a snapshot every status interval. One reactor-wide timer builds
//! one snapshot per tick for all clients. Messages from clients are
//! ignored.

use crate::websocket::endpoint::{Endpoint, Message, WsContext};

/// Where the status endpoint is served.
pub const STATUS_PATH: &str = "/status";

/// The group every `/status` client joins.
pub const STATUS_GROUP: &str = "status";

/// The status endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct StatusEndpoint;

impl Endpoint for StatusEndpoint {
    fn on_open(&mut self, cx: &mut WsContext<'_, '_>) {
        cx.join(STATUS_GROUP);
        if let Some(history) = cx.history_json() {
            cx.send_text(&history);
        }
        // The first numbers at once, not a second later.
        let json = cx.status_json();
        cx.send_text(&json);
    }

    fn on_message(&mut self, _cx: &mut WsContext<'_, '_>, _msg: Message<'_>) {}
}
