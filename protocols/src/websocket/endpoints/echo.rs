//! `/echo`: every message comes back unchanged. This is what conformance
//! suites (Autobahn) and benchmark tools hit, so it does nothing but send:
//! the reply's header and payload go straight into the transport's queue.

use crate::websocket::endpoint::{Endpoint, Message, WsContext};

/// Where the echo endpoint is served.
pub const ECHO_PATH: &str = "/echo";

/// The echo endpoint. Holds no state (a zero-sized box allocates nothing).
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoEndpoint;

impl Endpoint for EchoEndpoint {
    fn on_message(&mut self, cx: &mut WsContext<'_, '_>, msg: Message<'_>) {
        cx.send(msg);
    }
}
