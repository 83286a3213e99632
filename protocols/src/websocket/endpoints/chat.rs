//! `/chat`: every message goes to every other `/chat` client (Gate One's
//! broadcast), and the broadcast file's text goes to all of them. Slow
//! readers miss messages or are closed, per the listener's
//! [`SlowReaderPolicy`](crate::websocket::SlowReaderPolicy).

use crate::websocket::endpoint::{Endpoint, Message, WsContext};

/// Where the chat endpoint is served.
pub const CHAT_PATH: &str = "/chat";

/// The group every `/chat` client joins.
pub const CHAT_GROUP: &str = "chat";

/// The chat endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChatEndpoint;

impl Endpoint for ChatEndpoint {
    fn on_open(&mut self, cx: &mut WsContext<'_, '_>) {
        cx.join(CHAT_GROUP);
    }

    fn on_message(&mut self, cx: &mut WsContext<'_, '_>, msg: Message<'_>) {
        cx.broadcast(CHAT_GROUP, msg, false);
    }
}
