//! The HTTP redirect [`Protocol`]: drives the codec from reactor events.
//!
//! One [`HttpConnection`] per accepted connection, built by an
//! [`HttpFactory`] that owns what all of them share: the [`HttpConfig`],
//! one [`DateCache`] (so `Date` is formatted once per second, not per
//! request), one output scratch buffer and the [`HttpStats`] counters.
//!
//! How a connection runs:
//!
//! - **Parsing without copying.** Each `data_received` is parsed in place
//!   from the reactor's read buffer; every complete request in it is
//!   answered in order (pipelining) into the shared output buffer, which is
//!   handed to the transport once at the end. Only an incomplete head is
//!   copied into the connection's own buffer, which is bounded by
//!   [`MAX_HEAD`] and freed as soon as the head completes: an idle
//!   keep-alive connection owns no heap buffer.
//! - **Slow clients are cheap.** While a head trickles in, it is re-parsed
//!   only when the new bytes hold a line end (a head can only complete
//!   there) or when it crosses the target or head limit, not for every
//!   byte.
//! - **One timer per connection.** A connection has one deadline at a time
//!   (first request or head: [`HttpConfig::head_timeout`] from its first
//!   byte; between requests and for a body: [`HttpConfig::idle_timeout`];
//!   after the last answer the reactor's lingering close has its own).
//!   Moving the deadline later is
//!   a field write; the armed timer, when it fires early, re-arms for the
//!   rest. Only moving it earlier (a head that arrives in pieces) cancels
//!   and re-arms, so a fast keep-alive client costs no timer work per
//!   request.
//! - **Closing without losing the answer.** After an error (and after a
//!   closing answer when unread bytes remain) the connection ends with the
//!   reactor's [`Transport::close_lingering`] for [`HttpConfig::linger`]:
//!   closing a socket with unread input sends a reset that can destroy the
//!   answer before the client reads it.
//! - **Backpressure.** When queued output passes the high water mark,
//!   reading pauses until it drains. One read's worth of pipelined requests
//!   is answered whole, so a client that never reads can make us queue at
//!   most one read buffer's worth of answers above the mark.

use std::cell::RefCell;
use std::fmt;

pub use crate::log_escape::{escape_for_log, LogEscaped};
use std::io::Read;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use torsion_reactor::{Factory, PeerAddr, PeerInfo, Protocol, TimerId, Transport};

use super::acme::{acme_token, ACME_CHALLENGE_PREFIX};
use super::body::BodySkipper;
use super::config::HttpConfig;
use super::date::{DateCache, IMF_FIXDATE_LEN};
use super::redirect::{redirect_for, split_target};
use super::request::{
    parse_head, BodyFraming, HttpError, Method, Parsed, RequestHead, Version, MAX_HEAD, MAX_TARGET,
};
use super::response::{encode_error, encode_redirect, encode_text, ErrorStatus, Reply};

/// Largest ACME challenge file served: a key authorisation is under 100
/// bytes, so anything this big is not one, and the read stays small enough
/// to do synchronously on the loop.
pub const MAX_ACME_FILE: u64 = 64 * 1024;

/// Capacity of the shared output buffer kept between callbacks; a burst of
/// pipelined answers may grow it further, and it is shrunk back after.
const KEPT_OUTPUT: usize = 64 * 1024;

/// Counters of one HTTP listener (or of every listener built from one
/// factory), for the status page. Read them through
/// [`HttpFactory::stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HttpStats {
    /// Connections accepted.
    pub connections: u64,
    /// Complete request heads answered, whatever the answer.
    pub requests: u64,
    /// 301/308 redirects sent.
    pub redirects: u64,
    /// ACME challenges served (200).
    pub acme_served: u64,
    /// 404 answers (ACME challenge paths without a file).
    pub not_found: u64,
    /// 429 answers (connections the accept gate refused politely).
    pub refused: u64,
    /// 400 answers.
    pub bad_request: u64,
    /// 414 answers.
    pub uri_too_long: u64,
    /// 431 answers.
    pub header_too_large: u64,
    /// Connections closed without an answer because they spoke TLS or
    /// HTTP/2 to this plain HTTP/1.1 port.
    pub not_http: u64,
    /// Connections closed by the head, idle or body deadline.
    pub timeouts: u64,
}

impl HttpStats {
    /// Counts an answer by its status code.
    fn count_status(&mut self, status: u16) {
        let counter = match status {
            200 => &mut self.acme_served,
            301 | 308 => &mut self.redirects,
            404 => &mut self.not_found,
            414 => &mut self.uri_too_long,
            429 => &mut self.refused,
            431 => &mut self.header_too_large,
            _ => &mut self.bad_request,
        };
        *counter += 1;
    }
}

/// What every connection of a factory shares.
struct Shared {
    /// The settings.
    config: HttpConfig,
    /// `Date` of the current second.
    date: RefCell<DateCache>,
    /// Scratch buffer answers are encoded into before one `write`; empty
    /// between callbacks.
    out: RefCell<Vec<u8>>,
    /// Counters, also held by whoever asked [`HttpFactory::stats`].
    stats: Rc<RefCell<HttpStats>>,
}

/// Builds an [`HttpConnection`] for each accepted connection; pass it to
/// [`Reactor::listen`](torsion_reactor::Reactor::listen).
pub struct HttpFactory {
    /// State shared with every connection built.
    shared: Rc<Shared>,
}

impl HttpFactory {
    /// A factory serving `config`. Check it with [`HttpConfig::validate`]
    /// first: a bad redirect host here only shows up as 400 answers.
    pub fn new(config: HttpConfig) -> Self {
        if let Some(dir) = &config.acme_dir {
            if !dir.is_dir() {
                log::warn!(
                    "ACME directory {} is not a directory: challenges will get 404",
                    dir.display()
                );
            }
        }
        HttpFactory {
            shared: Rc::new(Shared {
                config,
                date: RefCell::new(DateCache::new()),
                out: RefCell::new(Vec::new()),
                stats: Rc::new(RefCell::new(HttpStats::default())),
            }),
        }
    }

    /// The counters of every connection this factory built, live.
    pub fn stats(&self) -> Rc<RefCell<HttpStats>> {
        Rc::clone(&self.shared.stats)
    }

    /// The settings connections are served with.
    pub fn config(&self) -> &HttpConfig {
        &self.shared.config
    }
}

impl Factory for HttpFactory {
    fn build(&mut self, peer: &PeerInfo) -> Box<dyn Protocol> {
        self.shared.stats.borrow_mut().connections += 1;
        Box::new(HttpConnection::new(Rc::clone(&self.shared), peer))
    }
}

/// Where a connection is in its request cycle.
enum State {
    /// Waiting for (the rest of) a request head; partial heads are in
    /// `HttpConnection::buf`.
    Head,
    /// Skipping the body of a request already answered. Boxed: bodies are
    /// rare here, and the box keeps every idle connection small.
    Body(Box<BodySkipper>),
    /// Answered for the last time and closing (lingering): the reactor
    /// delivers nothing more, and no deadline of ours applies.
    Closed,
}

/// What to do with the connection after a batch of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Keep reading.
    Open,
    /// Close once the answers are sent: nothing unread is in flight.
    Close,
    /// Shut down writing, drain input, then close (see the module docs).
    Linger,
}

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    /// The connection stays open for the next request.
    KeepAlive,
    /// The answer said `Connection: close`; `body_pending` when the
    /// request's body has not been read.
    Close {
        /// The request still has body bytes to come.
        body_pending: bool,
    },
}

/// What one `data_received` works with.
struct Cx<'s> {
    /// The factory's shared state.
    shared: &'s Shared,
    /// Answers so far, written to the transport at the end.
    out: &'s mut Vec<u8>,
    /// The loop's time for this callback.
    now: Instant,
    /// The `Date` value, fetched on first need.
    date: Option<[u8; IMF_FIXDATE_LEN]>,
}

impl Cx<'_> {
    /// The `Date` value, read from the shared cache once per callback.
    fn date(&mut self) -> [u8; IMF_FIXDATE_LEN] {
        let shared = self.shared;
        *self
            .date
            .get_or_insert_with(|| *shared.date.borrow_mut().get(SystemTime::now()))
    }
}

/// One HTTP connection: parses requests and answers each with a redirect,
/// an ACME challenge, or an error.
pub struct HttpConnection {
    /// Config, date cache, output buffer and counters.
    shared: Rc<Shared>,
    /// The start of a request head that arrived in pieces; empty, without
    /// capacity, whenever no head is in progress. Never longer than
    /// [`MAX_HEAD`].
    buf: Vec<u8>,
    /// Where the request cycle is.
    state: State,
    /// Requests answered on this connection.
    served: u32,
    /// `Retry-After` seconds when the accept gate wants every request
    /// refused with 429.
    refuse_secs: Option<u32>,
    /// When the current request's first byte arrived (for the access log).
    head_start: Instant,
    /// When the connection is closed unless something moves this later.
    deadline: Instant,
    /// The armed timer and when it fires (at or before `deadline`).
    timer: Option<(TimerId, Instant)>,
    /// Reading was paused for backpressure.
    paused: bool,
    /// The reactor is shutting down: answer what is in progress with
    /// `Connection: close`, start nothing new.
    stopping: bool,
}

impl HttpConnection {
    /// A connection from `peer` (only its `refused_for` matters here).
    fn new(shared: Rc<Shared>, peer: &PeerInfo) -> Self {
        let now = Instant::now();
        HttpConnection {
            shared,
            buf: Vec::new(),
            state: State::Head,
            served: 0,
            refuse_secs: peer.refused_for.map(retry_after_secs),
            head_start: now,
            deadline: now,
            timer: None,
            paused: false,
            stopping: false,
        }
    }

    /// Moves the deadline to `at`. Later: a field write (the armed timer
    /// re-arms when it fires). Earlier: the timer is replaced.
    fn set_deadline(&mut self, t: &mut Transport<'_>, at: Instant) {
        self.deadline = at;
        if let Some((id, fires)) = self.timer {
            if fires <= at {
                return;
            }
            t.cancel(id);
        }
        self.arm(t, at);
    }

    /// Done with this connection: no buffer, no deadline of ours (the
    /// reactor's close or lingering close takes over).
    fn end(&mut self, t: &mut Transport<'_>) {
        self.buf = Vec::new();
        self.state = State::Closed;
        if let Some((id, _)) = self.timer.take() {
            t.cancel(id);
        }
    }

    /// Arms the one timer for `at`.
    fn arm(&mut self, t: &mut Transport<'_>, at: Instant) {
        let now = t.now();
        let delay = at.saturating_duration_since(now);
        self.timer = Some((t.call_later(delay), now + delay));
    }

    /// Parses and answers everything in `input`; says what to do next.
    fn process(&mut self, t: &mut Transport<'_>, cx: &mut Cx<'_>, data: &[u8]) -> Next {
        let mut input = data;
        loop {
            if let State::Body(skipper) = &mut self.state {
                match skipper.feed(input) {
                    Ok(skipped) => {
                        input = input.get(skipped.consumed..).unwrap_or_default();
                        if !skipped.done {
                            return Next::Open;
                        }
                        self.state = State::Head;
                        if self.stopping {
                            return if input.is_empty() {
                                Next::Close
                            } else {
                                Next::Linger
                            };
                        }
                    }
                    Err(e) => {
                        // Already answered with keep-alive; the connection
                        // just cannot be reused.
                        log::debug!("{}: {e}; closing", Peer(t.peer_addr()));
                        return Next::Linger;
                    }
                }
            }
            if matches!(self.state, State::Closed) || input.is_empty() {
                return Next::Open;
            }
            let (answered, rest) = if self.buf.is_empty() {
                // Fast path: parse in place from the read buffer.
                self.head_start = cx.now;
                match parse_head(input) {
                    Ok(Parsed::Complete { head, consumed }) => {
                        let answered = self.answer(t, cx, &head, input);
                        (answered, input.get(consumed..).unwrap_or_default())
                    }
                    Ok(Parsed::Partial) => {
                        // Shorter than MAX_HEAD, or parse_head would have
                        // said HeadTooLarge.
                        self.buf.extend_from_slice(input);
                        // A later request's head has head_timeout from its
                        // first byte; the first request's counts from the
                        // connection's start (set in connection_made), or
                        // a client waiting before its first byte would get
                        // up to twice as long.
                        if self.served > 0 {
                            let at = cx.now + cx.shared.config.head_timeout;
                            self.set_deadline(t, at);
                        }
                        return Next::Open;
                    }
                    Err(e) => return self.reject(t, cx, e),
                }
            } else {
                // A head arriving in pieces: add what fits and re-parse
                // only where the answer can change.
                let old = self.buf.len();
                let take = MAX_HEAD.saturating_sub(old).min(input.len());
                let (fresh, _) = input.split_at(take);
                self.buf.extend_from_slice(fresh);
                let len = self.buf.len();
                let worth_parsing = fresh.contains(&b'\n')
                    || len >= MAX_HEAD
                    || (old <= MAX_TARGET && len > MAX_TARGET);
                if !worth_parsing {
                    // Everything was taken: `take < input.len()` only when
                    // the buffer reached MAX_HEAD.
                    return Next::Open;
                }
                match parse_head(&self.buf) {
                    Ok(Parsed::Complete { head, consumed }) => {
                        let buf = std::mem::take(&mut self.buf);
                        let answered = self.answer(t, cx, &head, &buf);
                        // The head ends with a line end, and the buffer is
                        // parsed whenever one arrives, so it always ends in
                        // `fresh`: `consumed > old`.
                        let used = consumed.saturating_sub(old);
                        (answered, input.get(used..).unwrap_or_default())
                    }
                    Ok(Parsed::Partial) if len < MAX_HEAD => return Next::Open,
                    Ok(Parsed::Partial) => return self.reject(t, cx, HttpError::HeadTooLarge),
                    Err(e) => return self.reject(t, cx, e),
                }
            };
            input = rest;
            if let Answered::Close { body_pending } = answered {
                return if body_pending || !input.is_empty() {
                    Next::Linger
                } else {
                    Next::Close
                };
            }
        }
    }

    /// Answers one complete request whose head was parsed from `buf`.
    fn answer(
        &mut self,
        t: &mut Transport<'_>,
        cx: &mut Cx<'_>,
        head: &RequestHead,
        buf: &[u8],
    ) -> Answered {
        let config = &cx.shared.config;
        let skipper = BodySkipper::new(head.body());
        self.served = self.served.saturating_add(1);
        let mut keep_alive = head.keep_alive()
            && skipper.is_ok()
            && self.served < config.max_requests
            && !self.stopping;
        let date = cx.date();
        let mut reply = Reply {
            date: &date,
            keep_alive,
            head_only: head.method() == Method::Head,
        };
        let start = cx.out.len();
        let status = if let Some(secs) = self.refuse_secs {
            keep_alive = false;
            reply.keep_alive = false;
            let status = ErrorStatus::TooManyRequests {
                retry_after_secs: secs,
            };
            encode_error(cx.out, status, &reply);
            status.code()
        } else if let Some(token) = acme_request(config, head, buf) {
            let body = token.and_then(|token| {
                let dir = config.acme_dir.as_deref()?;
                read_challenge(dir, token)
            });
            match body {
                Some(body) => {
                    encode_text(cx.out, &body, &reply);
                    200
                }
                None => {
                    encode_error(cx.out, ErrorStatus::NotFound, &reply);
                    404
                }
            }
        } else {
            match redirect_for(&config.redirect, head, buf) {
                Ok(redirect) => {
                    encode_redirect(cx.out, &redirect, &reply);
                    redirect.code.status()
                }
                Err(e) => {
                    keep_alive = false;
                    reply.keep_alive = false;
                    let status = e.error_status().unwrap_or(ErrorStatus::BadRequest);
                    encode_error(cx.out, status, &reply);
                    status.code()
                }
            }
        };
        {
            let mut stats = cx.shared.stats.borrow_mut();
            stats.requests += 1;
            stats.count_status(status);
        }
        log::info!(
            target: "access",
            "{} \"{} {} {}\" {} {} {}ms",
            Peer(t.peer_addr()),
            escape_for_log(head.method_bytes(buf)),
            escape_for_log(head.target(buf)),
            version_str(head.version()),
            status,
            cx.out.len().saturating_sub(start),
            cx.now.saturating_duration_since(self.head_start).as_millis(),
        );
        if !keep_alive {
            return Answered::Close {
                body_pending: head.body() != BodyFraming::None,
            };
        }
        if let Some(skipper) = skipper.ok().filter(|s| !s.is_done()) {
            self.state = State::Body(Box::new(skipper));
        }
        let at = cx.now + config.idle_timeout;
        self.set_deadline(t, at);
        Answered::KeepAlive
    }

    /// Answers a head that could not be parsed (or closes silently for
    /// TLS / HTTP/2); the connection ends either way.
    fn reject(&mut self, t: &mut Transport<'_>, cx: &mut Cx<'_>, e: HttpError) -> Next {
        let Some(status) = e.error_status() else {
            cx.shared.stats.borrow_mut().not_http += 1;
            log::debug!("{}: {e}; closing", Peer(t.peer_addr()));
            return Next::Close;
        };
        let date = cx.date();
        let start = cx.out.len();
        encode_error(cx.out, status, &Reply::closing(&date));
        cx.shared.stats.borrow_mut().count_status(status.code());
        log::info!(
            target: "access",
            "{} \"-\" {} {} {}ms ({e})",
            Peer(t.peer_addr()),
            status.code(),
            cx.out.len().saturating_sub(start),
            cx.now.saturating_duration_since(self.head_start).as_millis(),
        );
        Next::Linger
    }

    /// Acts on what `process` decided.
    fn finish(&mut self, t: &mut Transport<'_>, next: Next) {
        match next {
            Next::Open => {
                if !self.paused && t.over_high_water() {
                    self.paused = true;
                    t.pause_reading();
                }
            }
            Next::Close => {
                self.end(t);
                t.close();
            }
            Next::Linger => {
                self.end(t);
                t.close_lingering(self.shared.config.linger);
            }
        }
    }
}

impl Protocol for HttpConnection {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        let now = t.now();
        self.head_start = now;
        self.set_deadline(t, now + self.shared.config.head_timeout);
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        let shared = Rc::clone(&self.shared);
        let mut out = shared.out.borrow_mut();
        out.clear();
        let mut cx = Cx {
            shared: &shared,
            out: &mut out,
            now: t.now(),
            date: None,
        };
        let next = self.process(t, &mut cx, data);
        if !out.is_empty() {
            t.write(&out);
            out.clear();
            out.shrink_to(KEPT_OUTPUT);
        }
        drop(out);
        self.finish(t, next);
    }

    fn shutting_down(&mut self, t: &mut Transport<'_>) {
        self.stopping = true;
        // Idle between requests: nothing is lost by closing now (the
        // reactor delivered one more read batch from the socket before
        // telling us). Otherwise the request in progress is answered with
        // `Connection: close`.
        if matches!(self.state, State::Head) && self.buf.is_empty() {
            self.end(t);
            t.close();
        }
    }

    fn write_drained(&mut self, t: &mut Transport<'_>) {
        if self.paused {
            self.paused = false;
            t.resume_reading();
        }
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, timer: TimerId) {
        match self.timer {
            Some((id, _)) if id == timer => self.timer = None,
            _ => return,
        }
        if t.now() < self.deadline {
            // The deadline moved later since the timer was armed.
            let at = self.deadline;
            self.arm(t, at);
            return;
        }
        let phase = match self.state {
            State::Closed => None,
            State::Body(_) => Some("request body"),
            State::Head if !self.buf.is_empty() || self.served == 0 => Some("request head"),
            State::Head => Some("idle keep-alive"),
        };
        if let Some(phase) = phase {
            self.shared.stats.borrow_mut().timeouts += 1;
            log::debug!("{}: {phase} deadline passed; closing", Peer(t.peer_addr()));
        }
        self.buf = Vec::new();
        t.close();
    }
}

/// `None` if the request is not for an ACME challenge (ACME disabled, not
/// `GET`/`HEAD`, or a path outside [`ACME_CHALLENGE_PREFIX`]); else the
/// token, `None` inside when it is not a valid token (traversal attempts
/// and the like, answered 404 without touching the file system).
fn acme_request<'b>(
    config: &HttpConfig,
    head: &RequestHead,
    buf: &'b [u8],
) -> Option<Option<&'b str>> {
    config.acme_dir.as_ref()?;
    if !matches!(head.method(), Method::Get | Method::Head) {
        return None;
    }
    let path = split_target(head.target(buf)).ok()?.path_and_query;
    path.starts_with(ACME_CHALLENGE_PREFIX)
        .then(|| acme_token(path))
}

/// The challenge file `dir/token`, if it is a regular file of at most
/// [`MAX_ACME_FILE`] bytes. `token` is `[A-Za-z0-9_-]+` (checked by
/// [`acme_token`]), so the path cannot leave `dir`.
///
/// Read synchronously: the file is tiny and local, and it is opened with
/// [`crate::open_file::open_regular`], so a FIFO or device swapped in
/// cannot block the reactor (and a symlink there is refused).
fn read_challenge(dir: &Path, token: &str) -> Option<Vec<u8>> {
    let path = dir.join(token);
    let (file, meta) = crate::open_file::open_regular(&path).ok()?;
    if meta.len() > MAX_ACME_FILE {
        log::warn!("ACME challenge {} is too large to serve", path.display());
        return None;
    }
    let mut body = Vec::new();
    file.take(MAX_ACME_FILE + 1).read_to_end(&mut body).ok()?;
    (body.len() as u64 <= MAX_ACME_FILE).then_some(body)
}

/// `Retry-After` for a refusal lasting `d`: whole seconds, rounded up so
/// the client never comes back too early.
fn retry_after_secs(d: Duration) -> u32 {
    let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The version as written in a request line.
fn version_str(v: Version) -> &'static str {
    match v {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    }
}

/// Displays a peer address, or `-` once the connection is gone.
struct Peer(Option<PeerAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 0);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_secs(Duration::MAX), u32::MAX);
    }

    #[test]
    fn status_counters() {
        let mut s = HttpStats::default();
        for code in [200, 301, 308, 404, 414, 429, 431, 400] {
            s.count_status(code);
        }
        assert_eq!(
            s,
            HttpStats {
                acme_served: 1,
                redirects: 2,
                not_found: 1,
                uri_too_long: 1,
                refused: 1,
                header_too_large: 1,
                bad_request: 1,
                ..HttpStats::default()
            }
        );
    }

    #[test]
    fn connection_state_is_small() {
        // Part of the per-idle-connection memory budget (0.6 KiB with the
        // reactor's record, the timer and the allocator's rounding).
        let size = std::mem::size_of::<HttpConnection>();
        assert!(size <= 128, "HttpConnection is {size} bytes");
    }

    #[test]
    fn challenge_files() {
        let dir = std::env::temp_dir().join(format!("torsion-acme-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("tok"), b"tok.key").unwrap();
        fs::write(dir.join("big"), vec![b'a'; MAX_ACME_FILE as usize + 1]).unwrap();
        fs::create_dir_all(dir.join("sub")).unwrap();
        assert_eq!(read_challenge(&dir, "tok"), Some(b"tok.key".to_vec()));
        assert_eq!(read_challenge(&dir, "missing"), None);
        assert_eq!(read_challenge(&dir, "big"), None);
        assert_eq!(read_challenge(&dir, "sub"), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
