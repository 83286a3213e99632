//! The WebSocket [`Protocol`] and its [`WsFactory`]: the codec driven by
//! reactor events.
//!
//! A connection goes through these phases:
//!
//! 1. **Handshake** (deadline: `handshake_deadline`). The request head is
//!    parsed from the reactor's buffer directly when it arrives in one read,
//!    and buffered (up to the codec's `MAX_HEAD_LEN`) only when split. A
//!    refusal (gate `429`, codec errors, `403` Origin, `404` path) is
//!    answered and the connection closed after it is sent. `GET /` without
//!    Upgrade is answered with the status page.
//! 2. **Open**. Frames go through the [`MessageDecoder`]; messages to the
//!    endpoint, pings answered at once. Keepalive: a connection silent for
//!    `ping_interval` is pinged; the pong's round-trip time is logged at
//!    debug; no pong within `pong_deadline` closes it with 1011 and then the
//!    TCP connection at once (a peer that does not answer pings will not
//!    answer a close either).
//! 3. **Closing**. We sent a Close: when the endpoint asked for it, we keep
//!    reading (data is ignored) until the peer's Close arrives, then close
//!    TCP. After a protocol error the decoder is done, so we send the Close
//!    with the error's code and close lingering
//!    ([`Transport::close_lingering`]: the peer sees Close, then EOF, and
//!    its input is drained until its EOF). Either way the close deadline
//!    bounds the wait. A Close from the peer is answered
//!    with the same code and the TCP connection is closed after it is sent.
//!
//! Output is never unbounded: a peer that sends faster than it reads (e.g.
//! flooding `/echo` without reading) has its reading paused above the
//! reactor's high water mark, and resumed when its queue drains.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion_reactor::{Disconnect, Factory, PeerInfo, Protocol, TimerId, Transport};

use super::close::{GOING_AWAY, INTERNAL_ERROR};
use super::config::WsConfig;
use super::encode::{encode_close, encode_close_empty, server_header};
use super::endpoint::{Endpoint, EndpointFactory, Link, Message, Route, WsContext};
use super::endpoints::chat::{ChatEndpoint, CHAT_PATH};
use super::endpoints::echo::{EchoEndpoint, ECHO_PATH};
use super::endpoints::status::{StatusEndpoint, STATUS_PATH};
use super::error::ProtocolError;
use super::frame::OpCode;
use super::handshake::{parse_request, HandshakeStatus, Request, UpgradeRequest, MAX_HEAD_LEN};
use super::hub::{ensure_file_watcher, ensure_status_ticker, Hub, Shared, WsHandle};
use super::message::{DecoderConfig, Event, MessageDecoder};
use super::origin::is_same_origin;
use super::response::{encode_rejection, encode_switching_protocols, Rejection};
use super::stats::{ProcessStatus, StatusSource};

/// The status page served at `GET /`: one self-contained HTML file.
pub const STATUS_PAGE: &str = include_str!("status_page.html");

/// Builds a [`WsProtocol`] for each connection of a WebSocket listener; owns
/// the routes and the state all its connections share.
pub struct WsFactory {
    shared: Rc<Shared>,
}

impl WsFactory {
    /// A factory serving the built-in endpoints `config` enables, with the
    /// standalone status source ([`ProcessStatus`]).
    pub fn new(config: WsConfig) -> WsFactory {
        WsFactory::with_status_source(config, ProcessStatus::new())
    }

    /// Like [`WsFactory::new`], with the server's own status source.
    pub fn with_status_source(config: WsConfig, source: impl StatusSource + 'static) -> WsFactory {
        let endpoints = config.endpoints;
        let factory = WsFactory {
            shared: Rc::new(Shared {
                config,
                routes: RefCell::new(Vec::new()),
                hub: RefCell::new(Hub::new(Box::new(source))),
            }),
        };
        let mut factory = factory;
        if endpoints.echo {
            factory.route(ECHO_PATH, &[], |_| Box::new(EchoEndpoint));
        }
        if endpoints.chat {
            factory.route(CHAT_PATH, &[], |_| Box::new(ChatEndpoint));
        }
        if endpoints.status {
            factory.route(STATUS_PATH, &[], |_| Box::new(StatusEndpoint));
        }
        factory
    }

    /// Serves `path` with endpoints from `build`, offering `subprotocols`
    /// (most preferred first; the first the client also offers is chosen).
    /// Replaces an earlier route for the same path, built-ins included.
    pub fn route(
        &mut self,
        path: &str,
        subprotocols: &[&str],
        build: impl FnMut(&UpgradeRequest) -> Box<dyn Endpoint> + 'static,
    ) -> &mut WsFactory {
        let factory: EndpointFactory = Box::new(build);
        let route = Route {
            path: path.to_owned(),
            subprotocols: subprotocols.iter().map(|s| (*s).to_owned()).collect(),
            factory,
        };
        let mut routes = self.shared.routes.borrow_mut();
        routes.retain(|r| r.path != path);
        routes.push(route);
        drop(routes);
        self
    }

    /// A handle on the shared state (counters, groups, broadcast).
    pub fn handle(&self) -> WsHandle {
        WsHandle {
            shared: Rc::clone(&self.shared),
        }
    }

    /// The configuration this factory serves with.
    pub fn config(&self) -> &WsConfig {
        &self.shared.config
    }
}

impl Factory for WsFactory {
    fn build(&mut self, peer: &PeerInfo) -> Box<dyn Protocol> {
        {
            let mut hub = self.shared.hub.borrow_mut();
            if !hub.stats.listeners.contains(&peer.listener) {
                hub.stats.listeners.push(peer.listener);
            }
        }
        Box::new(WsProtocol::new(Rc::clone(&self.shared), peer.refused_for))
    }
}

/// Where a connection is in its life (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Open,
    /// We sent a Close and wait for the peer's (or its EOF).
    Closing,
    /// Nothing more to do: the transport is closing.
    Done,
}

/// One WebSocket listener connection.
pub struct WsProtocol {
    shared: Rc<Shared>,
    phase: Phase,
    /// Set when the gate admitted this connection only to be refused (429).
    refused_for: Option<Duration>,
    /// The request head so far, only while it arrives in pieces.
    head: Vec<u8>,
    decoder: MessageDecoder,
    endpoint: Option<Box<dyn Endpoint>>,
    link: Link,
    /// The protocol's own timer: handshake deadline, then keepalive, then
    /// close deadline. Other timer ids belong to the endpoint.
    timer: Option<TimerId>,
    /// A frame arrived since the last keepalive tick.
    active: bool,
    /// The outstanding ping: its payload and when it was sent.
    ping: Option<(u64, Instant)>,
    /// Pings sent, for their payloads.
    pings: u64,
    /// Counters not yet added to the shared ones.
    messages_in: u64,
    payload_in: u64,
}

impl WsProtocol {
    fn new(shared: Rc<Shared>, refused_for: Option<Duration>) -> WsProtocol {
        let decoder = MessageDecoder::new(DecoderConfig {
            max_message: shared.config.max_message,
            ..DecoderConfig::default()
        });
        WsProtocol {
            shared,
            phase: Phase::Handshake,
            refused_for,
            head: Vec::new(),
            decoder,
            endpoint: None,
            link: Link::default(),
            timer: None,
            active: false,
            ping: None,
            pings: 0,
            messages_in: 0,
            payload_in: 0,
        }
    }

    /// Replaces the protocol's timer.
    fn set_timer(&mut self, t: &mut Transport<'_>, after: Duration) {
        if let Some(old) = self.timer.take() {
            t.cancel(old);
        }
        self.timer = Some(t.call_later(after));
    }

    /// Answers a refused handshake and closes after the answer is sent.
    fn reject(&mut self, t: &mut Transport<'_>, rejection: Rejection) {
        let mut out = Vec::with_capacity(160);
        encode_rejection(rejection, &mut out);
        t.write(&out);
        t.close();
        self.phase = Phase::Done;
        self.head = Vec::new();
        self.shared.hub.borrow_mut().stats.handshakes_refused += 1;
    }

    fn handshake(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if let Some(wait) = self.refused_for {
            let secs = wait
                .as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0));
            let retry_after_secs = u32::try_from(secs.max(1)).unwrap_or(u32::MAX);
            self.reject(t, Rejection::TooManyRequests { retry_after_secs });
            return;
        }
        let buffered = !self.head.is_empty();
        if buffered {
            // One byte past the limit is enough for the codec to say
            // HeadTooLarge; more would only cost memory.
            let room = (MAX_HEAD_LEN + 1).saturating_sub(self.head.len());
            self.head
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        }
        let status = if buffered {
            parse_request(&self.head)
        } else {
            parse_request(data)
        };
        match status {
            Err(e) => {
                log::debug!("websocket: handshake refused: {e}");
                self.reject(t, e.rejection());
            }
            Ok(HandshakeStatus::Partial) => {
                if !buffered {
                    // The codec said Partial, so `data` is within the limit.
                    self.head.extend_from_slice(data);
                }
            }
            Ok(HandshakeStatus::Complete { request, consumed }) => {
                let mut head = std::mem::take(&mut self.head);
                let rest: &mut [u8] = if buffered {
                    head.get_mut(consumed..).unwrap_or_default()
                } else {
                    data.get_mut(consumed..).unwrap_or_default()
                };
                match request {
                    Request::NotUpgrade { path, head, .. } => self.serve_page(t, &path, head),
                    Request::Upgrade(req) => {
                        self.upgrade(t, &req);
                        if self.phase == Phase::Open && !rest.is_empty() {
                            self.frames(t, rest);
                        }
                    }
                }
            }
        }
    }

    /// Answers a plain GET: the status page at `/`, 404 elsewhere.
    fn serve_page(&mut self, t: &mut Transport<'_>, path: &str, head_only: bool) {
        if !(self.shared.config.endpoints.page && (path == "/" || path == "/index.html")) {
            self.reject(t, Rejection::NotFound);
            return;
        }
        let mut out = Vec::with_capacity(600);
        encode_page_head(STATUS_PAGE.len(), &mut out);
        t.write(&out);
        if !head_only {
            t.write(STATUS_PAGE.as_bytes());
        }
        t.close();
        self.phase = Phase::Done;
        self.shared.hub.borrow_mut().stats.pages += 1;
    }

    fn upgrade(&mut self, t: &mut Transport<'_>, req: &UpgradeRequest) {
        let config = &self.shared.config;
        let origin_ok = config.origins.allows(req.origin.as_deref())
            || (config.allow_same_origin
                && req
                    .origin
                    .as_deref()
                    .is_some_and(|o| is_same_origin(o, &req.host)));
        let built = {
            let mut routes = self.shared.routes.borrow_mut();
            match routes.iter_mut().find(|r| r.path == req.path) {
                None => Err(Rejection::NotFound),
                Some(_) if !origin_ok => Err(Rejection::Forbidden),
                Some(route) => {
                    let sub = req.select_subprotocol(&route.subprotocols).map(Box::from);
                    Ok((sub, (route.factory)(req)))
                }
            }
        };
        let (subprotocol, endpoint) = match built {
            Ok(b) => b,
            Err(rejection) => {
                log::debug!(
                    "websocket: {} for {:?} (origin {:?})",
                    rejection.status(),
                    req.path,
                    req.origin
                );
                self.reject(t, rejection);
                return;
            }
        };
        let mut out = Vec::with_capacity(160);
        encode_switching_protocols(&req.accept, subprotocol.as_deref(), &mut out);
        t.write(&out);
        self.link.subprotocol = subprotocol;
        self.phase = Phase::Open;
        self.endpoint = Some(endpoint);
        let interval = self.shared.config.ping_interval;
        self.set_timer(t, interval);
        {
            let mut hub = self.shared.hub.borrow_mut();
            hub.stats.upgrades += 1;
            hub.stats.sockets_open += 1;
        }
        self.with_endpoint(t, |e, cx| e.on_open(cx));
    }

    /// Calls the endpoint, then acts on a close it asked for.
    fn with_endpoint(
        &mut self,
        t: &mut Transport<'_>,
        f: impl FnOnce(&mut dyn Endpoint, &mut WsContext<'_, '_>),
    ) {
        let Some(endpoint) = self.endpoint.as_mut() else {
            return;
        };
        let mut cx = WsContext {
            t,
            shared: &self.shared,
            link: &mut self.link,
        };
        f(endpoint.as_mut(), &mut cx);
        if self.link.close_sent && self.phase == Phase::Open {
            self.phase = Phase::Closing;
            let deadline = self.shared.config.close_deadline;
            self.set_timer(t, deadline);
        }
    }

    /// Decodes frames and acts on each event.
    fn frames(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        let mut input: &[u8] = data;
        loop {
            let Self {
                decoder,
                endpoint,
                link,
                shared,
                phase,
                ..
            } = self;
            let event = match decoder.next(&mut input) {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(e) => {
                    self.fail(t, &e);
                    break;
                }
            };
            self.active = true;
            let msg = match event {
                Event::Text(text) => Message::Text(text),
                Event::Binary(data) => Message::Binary(data),
                Event::Ping(payload) => {
                    if !link.close_sent {
                        // The decoder bounded the payload to 125 bytes.
                        t.write(server_header(OpCode::Pong, payload.len()).as_bytes());
                        t.write(payload);
                    }
                    continue;
                }
                Event::Pong(payload) => {
                    pong_received(&mut self.ping, shared, payload);
                    continue;
                }
                Event::Close(frame) => {
                    let code = frame.map(|f| f.code);
                    if !link.close_sent {
                        let mut out = Vec::with_capacity(4);
                        match code {
                            Some(code) => encode_close(code, "", &mut out),
                            None => encode_close_empty(&mut out),
                        }
                        t.write(&out);
                        link.close_sent = true;
                        link.close_code = code;
                    }
                    *phase = Phase::Done;
                    t.close();
                    break;
                }
            };
            if *phase != Phase::Open || link.close_sent {
                // Data after our Close is ignored (RFC 6455 section 5.5.1).
                continue;
            }
            self.messages_in += 1;
            self.payload_in += msg.len() as u64;
            if let Some(endpoint) = endpoint.as_mut() {
                let mut cx = WsContext { t, shared, link };
                endpoint.on_message(&mut cx, msg);
            }
            if self.link.close_sent && self.phase == Phase::Open {
                self.phase = Phase::Closing;
                let deadline = self.shared.config.close_deadline;
                self.set_timer(t, deadline);
            }
        }
    }

    /// Fails the connection for a protocol error (RFC 6455 section 7.1.7).
    fn fail(&mut self, t: &mut Transport<'_>, e: &ProtocolError) {
        log::debug!("websocket: protocol error: {e}");
        self.shared.hub.borrow_mut().stats.protocol_errors += 1;
        if !self.link.close_sent {
            let mut out = Vec::with_capacity(64);
            encode_close(e.close_code(), &e.to_string(), &mut out);
            t.write(&out);
            self.link.close_sent = true;
            self.link.close_code = Some(e.close_code());
        }
        // The decoder is done and cannot see the peer's Close: tell the peer
        // we are finished (Close, then EOF) and drain until its EOF, so that
        // unread input does not turn our close into a reset that could
        // destroy the Close frame before the peer reads it.
        self.phase = Phase::Done;
        if let Some(old) = self.timer.take() {
            t.cancel(old);
        }
        t.close_lingering(self.shared.config.close_deadline);
    }

    /// The keepalive timer fired in the open phase.
    fn keepalive(&mut self, t: &mut Transport<'_>) {
        let config = &self.shared.config;
        if self.ping.is_some() {
            // The pong deadline passed.
            log::debug!(
                "websocket: no pong within {:?}; closing",
                config.pong_deadline
            );
            self.shared.hub.borrow_mut().stats.ping_timeouts += 1;
            if !self.link.close_sent {
                let mut out = Vec::with_capacity(32);
                encode_close(INTERNAL_ERROR, "ping timeout", &mut out);
                t.write(&out);
                self.link.close_sent = true;
                self.link.close_code = Some(INTERNAL_ERROR);
            }
            self.phase = Phase::Done;
            t.close();
            return;
        }
        if std::mem::take(&mut self.active) {
            let interval = config.ping_interval;
            self.set_timer(t, interval);
            return;
        }
        self.pings = self.pings.wrapping_add(1);
        let nonce = self.pings;
        let mut out = [0u8; 10];
        if let Some((h, p)) = out.split_at_mut_checked(2) {
            h.copy_from_slice(server_header(OpCode::Ping, 8).as_bytes());
            p.copy_from_slice(&nonce.to_be_bytes());
        }
        t.write(&out);
        self.ping = Some((nonce, Instant::now()));
        let deadline = config.pong_deadline;
        self.set_timer(t, deadline);
    }

    /// Adds this connection's counters to the shared ones.
    fn flush_counters(&mut self) {
        if self.messages_in == 0 && self.link.messages_out == 0 {
            return;
        }
        let mut hub = self.shared.hub.borrow_mut();
        let s = &mut hub.stats;
        s.messages_in = s
            .messages_in
            .saturating_add(std::mem::take(&mut self.messages_in));
        s.payload_in = s
            .payload_in
            .saturating_add(std::mem::take(&mut self.payload_in));
        s.messages_out = s
            .messages_out
            .saturating_add(std::mem::take(&mut self.link.messages_out));
        s.payload_out = s
            .payload_out
            .saturating_add(std::mem::take(&mut self.link.payload_out));
    }
}

impl Protocol for WsProtocol {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        {
            let mut hub = self.shared.hub.borrow_mut();
            hub.stats.connections += 1;
            hub.stats.open += 1;
        }
        ensure_file_watcher(&self.shared, t);
        if self.shared.config.endpoints.status {
            ensure_status_ticker(&self.shared, t);
        }
        let deadline = self.shared.config.handshake_deadline;
        self.set_timer(t, deadline);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        match self.phase {
            Phase::Handshake => self.handshake(t, data),
            Phase::Open | Phase::Closing => self.frames(t, data),
            Phase::Done => {}
        }
        self.flush_counters();
        // A peer that sends faster than it reads waits on TCP flow control,
        // not on our memory.
        if t.over_high_water() {
            t.pause_reading();
        }
    }

    fn write_drained(&mut self, t: &mut Transport<'_>) {
        t.resume_reading();
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) {
        self.phase = Phase::Done;
        t.close();
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, timer: TimerId) {
        if self.timer != Some(timer) {
            self.with_endpoint(t, |e, cx| e.on_timer(cx, timer));
            self.flush_counters();
            return;
        }
        self.timer = None;
        match self.phase {
            Phase::Handshake => {
                log::debug!("websocket: handshake deadline passed");
                self.phase = Phase::Done;
                t.close();
            }
            Phase::Open => self.keepalive(t),
            Phase::Closing => {
                log::debug!("websocket: close deadline passed");
                self.phase = Phase::Done;
                t.close();
            }
            Phase::Done => {}
        }
    }

    fn shutting_down(&mut self, t: &mut Transport<'_>) {
        match self.phase {
            Phase::Open => {
                self.with_endpoint(t, |_, cx| cx.close(GOING_AWAY, "server shutting down"));
            }
            Phase::Handshake => {
                self.phase = Phase::Done;
                t.close();
            }
            Phase::Closing | Phase::Done => {}
        }
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &Disconnect) {
        log::trace!("websocket: connection lost: {reason}");
        {
            let mut hub = self.shared.hub.borrow_mut();
            hub.stats.open = hub.stats.open.saturating_sub(1);
            if self.endpoint.is_some() {
                hub.stats.sockets_open = hub.stats.sockets_open.saturating_sub(1);
            }
            hub.leave_all(t.id());
        }
        if let Some(mut endpoint) = self.endpoint.take() {
            let code = self.link.close_code;
            let mut cx = WsContext {
                t,
                shared: &self.shared,
                link: &mut self.link,
            };
            endpoint.on_close(&mut cx, code);
        }
        self.flush_counters();
    }
}

/// Takes a pong: if it answers the outstanding ping, logs and records the
/// round-trip time.
fn pong_received(ping: &mut Option<(u64, Instant)>, shared: &Shared, payload: &[u8]) {
    let Some((nonce, sent)) = *ping else {
        return;
    };
    if payload != nonce.to_be_bytes() {
        // An unsolicited pong (a client heartbeat): not our answer.
        return;
    }
    *ping = None;
    let rtt = Instant::now().saturating_duration_since(sent);
    log::debug!("websocket: ping round trip {} µs", rtt.as_micros());
    shared.hub.borrow_mut().stats.last_rtt_us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
}

/// Appends the head of the status page's `200` response. The page is
/// served with `Connection: close` (its sockets are new connections) and a
/// Content-Security-Policy that allows only its own inline code and
/// connections back to this origin.
fn encode_page_head(body_len: usize, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Length: {body_len}\r\n\
Cache-Control: no-cache\r\n\
X-Content-Type-Options: nosniff\r\n\
Referrer-Policy: no-referrer\r\n\
Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; img-src data:; connect-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n\
Connection: close\r\n\r\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_head_is_complete_http() {
        let mut out = Vec::new();
        encode_page_head(STATUS_PAGE.len(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains(&format!("Content-Length: {}\r\n", STATUS_PAGE.len())));
        assert!(text.ends_with("\r\n\r\n"));
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        assert!(resp.parse(text.as_bytes()).unwrap().is_complete());
    }

    #[test]
    fn idle_connection_state_is_small() {
        // The budget is 2 KiB per idle ws:// connection, reactor
        // record included; the protocol's own share must stay well below.
        let size = std::mem::size_of::<WsProtocol>();
        assert!(size <= 640, "WsProtocol is {size} bytes");
    }

    #[test]
    fn status_page_is_self_contained() {
        assert!(STATUS_PAGE.starts_with("<!doctype html>"));
        // No external scripts, styles or fonts: hosts are often offline.
        for needle in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(http",
            "src=\"//",
        ] {
            assert!(!STATUS_PAGE.contains(needle), "{needle}");
        }
    }
}
