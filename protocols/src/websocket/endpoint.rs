//! The application API: an [`Endpoint`] per WebSocket connection, served at
//! a path, with a [`WsContext`] to send, broadcast to named groups, and
//! close.
//!
//! ```no_run
//! use torsion_protocols::websocket::{Endpoint, Message, WsConfig, WsContext, WsFactory};
//!
//! /// Shouts every message back in capitals.
//! struct Shout;
//!
//! impl Endpoint for Shout {
//!     fn on_message(&mut self, cx: &mut WsContext<'_, '_>, msg: Message<'_>) {
//!         if let Message::Text(text) = msg {
//!             cx.send_text(&text.to_uppercase());
//!         }
//!     }
//! }
//!
//! let mut factory = WsFactory::new(WsConfig::default());
//! factory.route("/shout", &["shout.v1"], |_req| Box::new(Shout));
//! // reactor.listen(addr, factory)?;
//! ```

use std::rc::Rc;
use std::time::Instant;

use torsion_reactor::{ConnId, TimerId, Transport};

use super::close::{is_valid_code, INTERNAL_ERROR};
use super::encode::{encode_close, server_header};
use super::frame::OpCode;
use super::handshake::UpgradeRequest;
use super::hub::{BroadcastReport, Shared};

/// A whole data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The frame opcode and the payload bytes.
    pub fn parts(&self) -> (OpCode, &'a [u8]) {
        match *self {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(data) => (OpCode::Binary, data),
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.parts().1.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One WebSocket connection's application logic, built by the route's
/// factory after a successful handshake.
///
/// # Contract
///
/// - `on_open` is called once, first, right after the `101` response is
///   queued; `on_close` once, last, when the connection has ended.
/// - `on_message` gets each whole message (fragments assembled, text
///   validated). The payload borrows the decoder: copy what you keep.
/// - Nothing is delivered after a Close frame was sent or received.
/// - Like every reactor callback, these must not block.
pub trait Endpoint {
    /// The socket is open.
    fn on_open(&mut self, _cx: &mut WsContext<'_, '_>) {}

    /// A whole message arrived.
    fn on_message(&mut self, cx: &mut WsContext<'_, '_>, msg: Message<'_>);

    /// The connection has ended. `code` is the close code of the close
    /// handshake (the peer's, or ours when we closed first), `None` when the
    /// connection dropped without one. Sending is pointless here, but
    /// broadcasting to others works (e.g. "X left").
    fn on_close(&mut self, _cx: &mut WsContext<'_, '_>, _code: Option<u16>) {}

    /// A timer this endpoint started with [`WsContext::transport`]`.call_later`
    /// (or `call_every`) fired.
    fn on_timer(&mut self, _cx: &mut WsContext<'_, '_>, _timer: TimerId) {}
}

/// Builds the endpoint of a new connection on a route.
pub type EndpointFactory = Box<dyn FnMut(&UpgradeRequest) -> Box<dyn Endpoint>>;

/// A path served by an endpoint.
pub(crate) struct Route {
    pub(crate) path: String,
    pub(crate) subprotocols: Vec<String>,
    pub(crate) factory: EndpointFactory,
}

/// Per-connection state the context changes and the protocol reads back.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// A Close frame was queued: nothing more may be sent.
    pub(crate) close_sent: bool,
    /// The close code of the handshake (ours or the peer's).
    pub(crate) close_code: Option<u16>,
    /// The negotiated subprotocol.
    pub(crate) subprotocol: Option<Box<str>>,
    /// Counters not yet added to the shared ones.
    pub(crate) messages_out: u64,
    pub(crate) payload_out: u64,
}

/// What an endpoint can do, in each of its callbacks.
pub struct WsContext<'a, 't> {
    pub(crate) t: &'a mut Transport<'t>,
    pub(crate) shared: &'a Rc<Shared>,
    pub(crate) link: &'a mut Link,
}

impl<'t> WsContext<'_, 't> {
    /// This connection's id (for groups and [`Context::write_to`](torsion_reactor::Context::write_to)).
    pub fn id(&self) -> ConnId {
        self.t.id()
    }

    /// The time at the start of this turn of the loop.
    pub fn now(&self) -> Instant {
        self.t.now()
    }

    /// The subprotocol agreed in the handshake, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.link.subprotocol.as_deref()
    }

    /// Whether a Close frame was sent: sends are dropped from then on.
    pub fn is_closing(&self) -> bool {
        self.link.close_sent
    }

    /// Bytes queued for this client and not yet sent.
    pub fn buffered_len(&self) -> usize {
        self.t.buffered_len()
    }

    /// Sends a message: the frame header and then the payload go straight
    /// into the transport's queue (no frame buffer). Dropped after close.
    pub fn send(&mut self, msg: Message<'_>) {
        if self.link.close_sent {
            return;
        }
        let (opcode, payload) = msg.parts();
        self.t
            .write(server_header(opcode, payload.len()).as_bytes());
        self.t.write(payload);
        self.link.messages_out += 1;
        self.link.payload_out += payload.len() as u64;
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        self.send(Message::Text(text));
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: &[u8]) {
        self.send(Message::Binary(data));
    }

    /// Adds this connection to a named group (it leaves all groups when it
    /// closes).
    pub fn join(&mut self, group: &str) {
        let id = self.t.id();
        self.shared.hub.borrow_mut().join(group, id);
    }

    /// Removes this connection from a group.
    pub fn leave(&mut self, group: &str) {
        let id = self.t.id();
        self.shared.hub.borrow_mut().leave(group, id);
    }

    /// Sends `msg` to every member of `group` (this connection included
    /// only if `include_self`). Members whose queue is above the high water
    /// mark miss it or are closed, per the listener's
    /// [`SlowReaderPolicy`](super::SlowReaderPolicy): never an unbounded
    /// queue.
    pub fn broadcast(
        &mut self,
        group: &str,
        msg: Message<'_>,
        include_self: bool,
    ) -> BroadcastReport {
        let except = if include_self {
            None
        } else {
            Some(self.t.id())
        };
        let shared = self.shared;
        shared
            .hub
            .borrow_mut()
            .broadcast(self.t, &shared.config, group, msg, except)
    }

    /// Starts the close handshake with `code` and `reason` (cut to 123
    /// bytes). A code that may not be sent on the wire (e.g. 1005) is
    /// replaced by 1011. The peer has the close deadline to answer before
    /// the TCP connection is closed.
    pub fn close(&mut self, code: u16, reason: &str) {
        if self.link.close_sent {
            return;
        }
        let code = if is_valid_code(code) {
            code
        } else {
            log::warn!("websocket: endpoint asked to close with invalid code {code}; sent 1011");
            INTERNAL_ERROR
        };
        let mut frame = Vec::with_capacity(4 + reason.len().min(125));
        encode_close(code, reason, &mut frame);
        self.t.write(&frame);
        self.link.close_sent = true;
        self.link.close_code = Some(code);
    }

    /// The connection's transport, for what the context does not cover:
    /// timers (fired to [`Endpoint::on_timer`]), the peer address, writes
    /// to other connections.
    pub fn transport(&mut self) -> &mut Transport<'t> {
        self.t
    }

    /// The current status snapshot as JSON (for the `/status` endpoint).
    pub(crate) fn status_json(&mut self) -> String {
        self.shared.hub.borrow_mut().status_json(self.t)
    }

    /// The recorded status samples as JSON, if any (for the `/status`
    /// endpoint).
    pub(crate) fn history_json(&mut self) -> Option<String> {
        self.shared.hub.borrow().history_json()
    }
}
