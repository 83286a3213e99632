//! The Gemini `Protocol` and its factory: one request per connection, driven
//! by reactor events.
//!
//! A connection's life, after the TLS handshake:
//!
//! 1. **Request.** Bytes are fed to [`parse_request`] until a whole line
//!    arrives, within the request deadline (a silent or trickling client is
//!    closed). A line that cannot become valid is answered `59` at once.
//!    A client the listener's gate admitted only to refuse is answered
//!    `44 <seconds>` once its request arrives.
//! 2. **Dispatch.** The URL's host picks the virtual host (none: `53`), a
//!    port other than the listener's is refused (`53`), and the virtual
//!    host's [`Handler`] answers.
//! 3. **Response.** The header is written; for `20` the body follows:
//!    bytes at once, a [`BodyStream`] (files) in
//!    bounded chunks whenever the output queue falls below the low water
//!    mark, or a CGI process's output as it comes (the reactor stops
//!    reading the pipe while the client is slow). A client that takes
//!    nothing for the send timeout is dropped; a CGI script running past the
//!    CGI timeout is killed.
//! 4. **Close** (with TLS close_notify) and one access-log line.

use std::cell::{Cell, RefCell};
use std::io;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use torsion_reactor::{
    ChildId, ChildStream, Disconnect, Factory, PeerAddr, PeerInfo, Protocol, TimerId, Transport,
};

use super::app::{Body, BodyStream, Handler, Request, Response, ResponseKind};
use super::capsule::EmbeddedCapsule;
use super::cgi::Cgi;
use super::config::{GeminiConfig, GeminiConfigError, Root, VirtualHost};
use super::host::HostPolicy;
use super::log::{escape_for_log, log_access, AccessRecord};
use super::request::{parse_request, Parsed, RequestError, MAX_REQUEST_URL};
use super::response::{parse_response_header, ParsedHeader, ResponseHeader};
use super::static_files::StaticFiles;
use super::status::Status;

/// After answering a request that was cut short (too long, bad line end),
/// the connection closes lingering
/// ([`Transport::close_lingering`]): input is read and dropped for at most
/// this long, so the answer is not destroyed by a TCP reset over unread
/// bytes.
pub const LINGER: Duration = Duration::from_secs(2);

/// Chunks produced per callback at most, even if the queue still has room
/// (a very high water mark): the rest is produced on a zero-delay timer, so
/// one fast reader cannot hold the loop.
pub const MAX_CHUNKS_PER_TURN: usize = 16;

/// The longest CGI header line kept while waiting for its CR LF: the
/// longest valid header plus CR LF; a longer one is refused by the parser.
const MAX_CGI_HEADER: usize = 3 + super::response::MAX_META + 2;

/// Longest stderr text logged per CGI output chunk, so a chatty script
/// cannot flood the log with one write.
const MAX_STDERR_LOG: usize = 1024;

/// The handler for `vhost` when the application does not bring its own:
/// CGI (when enabled) in front of the static files, or the embedded capsule.
pub fn default_handler(vhost: &VirtualHost) -> Result<Rc<dyn Handler>, GeminiConfigError> {
    match &vhost.root {
        Root::Embedded => Ok(Rc::new(EmbeddedCapsule::new(vhost.default_lang.clone()))),
        Root::Dir(_) => {
            let files = StaticFiles::new(vhost)?;
            match Cgi::new(vhost)? {
                Some(cgi) => Ok(Rc::new(cgi.fallback(files))),
                None => Ok(Rc::new(files)),
            }
        }
    }
}

/// One virtual host, ready to serve.
struct Vhost {
    policy: HostPolicy,
    /// `SERVER_NAME`; `None` for a wildcard first name (then the request's
    /// host is used).
    name: Option<Rc<str>>,
    handler: Rc<dyn Handler>,
}

/// What every connection of a listener shares.
struct Shared {
    vhosts: Vec<Vhost>,
    /// The listener's port; 0 until learnt from the first connection.
    port: Cell<u16>,
    request_timeout: Duration,
    cgi_timeout: Duration,
    send_timeout: Duration,
    chunk_size: usize,
    /// One chunk buffer for every connection: a body passes through it on
    /// its way to the transport, so a streaming connection owns no buffer.
    scratch: RefCell<Vec<u8>>,
    /// Requests answered (one access-log line each), for status pages.
    requests: Rc<Cell<u64>>,
}

/// Builds a [`GeminiConnection`] per accepted connection. Give it to
/// `Reactor::listen_with` with `ListenOptions { tls: Some(..), .. }`.
pub struct GeminiFactory {
    shared: Rc<Shared>,
}

impl GeminiFactory {
    /// Serves each virtual host of `config` with its [`default_handler`]
    /// (static files and CGI, or the embedded capsule). `port` is the
    /// listener's port, which requests may name; 0 means "learn it from the
    /// first connection" (for listeners bound to port 0).
    pub fn new(config: GeminiConfig, port: u16) -> Result<Self, GeminiConfigError> {
        GeminiFactory::with_handlers(config, port, default_handler)
    }

    /// Serves every virtual host of `config` with `handler` (an application).
    pub fn with_handler(
        config: GeminiConfig,
        port: u16,
        handler: impl Handler + 'static,
    ) -> Result<Self, GeminiConfigError> {
        let handler: Rc<dyn Handler> = Rc::new(handler);
        GeminiFactory::with_handlers(config, port, |_| Ok(handler.clone()))
    }

    /// Serves each virtual host with the handler `make` returns for it.
    pub fn with_handlers(
        config: GeminiConfig,
        port: u16,
        mut make: impl FnMut(&VirtualHost) -> Result<Rc<dyn Handler>, GeminiConfigError>,
    ) -> Result<Self, GeminiConfigError> {
        config.validate()?;
        let mut vhosts = Vec::with_capacity(config.vhosts.len());
        for vhost in &config.vhosts {
            let policy = HostPolicy::new(&vhost.hostnames, port).map_err(|error| {
                GeminiConfigError::BadHostname {
                    name: vhost.hostnames.join(", "),
                    error,
                }
            })?;
            let primary = vhost.primary_hostname();
            let name = (!primary.starts_with("*.")).then(|| Rc::from(primary));
            vhosts.push(Vhost {
                policy,
                name,
                handler: make(vhost)?,
            });
        }
        Ok(GeminiFactory {
            shared: Rc::new(Shared {
                vhosts,
                port: Cell::new(port),
                request_timeout: config.request_timeout,
                cgi_timeout: config.cgi_timeout,
                send_timeout: config.send_timeout,
                chunk_size: config.chunk_size,
                scratch: RefCell::new(Vec::new()),
                requests: Rc::default(),
            }),
        })
    }

    /// The number of requests this factory's connections have answered
    /// (any status, one per access-log line), shared so a status page can
    /// read it while the factory serves.
    pub fn requests(&self) -> Rc<Cell<u64>> {
        Rc::clone(&self.shared.requests)
    }
}

impl Factory for GeminiFactory {
    fn build(&mut self, peer: &PeerInfo) -> Box<dyn Protocol> {
        Box::new(GeminiConnection::new(self.shared.clone(), peer))
    }
}

/// Where a connection is in its one request.
enum State {
    /// Waiting for the request line.
    Reading,
    /// Sending a body produced step by step.
    Streaming(Box<dyn BodyStream>),
    /// Relaying a CGI process's output.
    Cgi(CgiRun),
    /// Answered; closing (plainly, or lingering after a request cut
    /// short).
    Done,
}

/// A running CGI script.
struct CgiRun {
    child: ChildId,
    name: String,
    /// Output kept until the header line is complete; `None` once the
    /// header has been checked and sent.
    header: Option<Vec<u8>>,
}

/// One Gemini connection (one request).
pub struct GeminiConnection {
    shared: Rc<Shared>,
    peer: PeerAddr,
    refused_for: Option<Duration>,
    state: State,
    /// Request bytes received so far, while no line is complete.
    buf: Vec<u8>,
    /// The request line for the access log.
    url: Box<[u8]>,
    /// The header sent, for the access log.
    status: Option<Status>,
    meta: String,
    /// Bytes queued for the client, header included.
    bytes: u64,
    started: Option<Instant>,
    /// The request deadline, then the CGI timeout or linger deadline.
    deadline: Option<TimerId>,
    /// The periodic send-progress check while a body is sent.
    send_timer: Option<TimerId>,
    /// Set when the client took data since the last send check.
    progressed: bool,
    /// A zero-delay timer to go on producing after [`MAX_CHUNKS_PER_TURN`].
    resume: Option<TimerId>,
}

impl GeminiConnection {
    fn new(shared: Rc<Shared>, peer: &PeerInfo) -> Self {
        GeminiConnection {
            shared,
            peer: peer.addr,
            refused_for: peer.refused_for,
            state: State::Reading,
            buf: Vec::new(),
            url: Box::default(),
            status: None,
            meta: String::new(),
            bytes: 0,
            started: None,
            deadline: None,
            send_timer: None,
            progressed: false,
            resume: None,
        }
    }

    fn write(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        t.write(data);
        self.bytes = self.bytes.saturating_add(data.len() as u64);
    }

    /// Writes a header; an invalid one (a handler's mistake) becomes `42`.
    /// Returns whether the header written was the one asked for.
    fn send_header(&mut self, t: &mut Transport<'_>, status: Status, meta: &str) -> bool {
        let mut line = Vec::with_capacity(meta.len() + 5);
        let ok = match ResponseHeader::new(status, meta).encode_into(&mut line) {
            Ok(()) => {
                self.status = Some(status);
                self.meta = meta.to_string();
                true
            }
            Err(e) => {
                log::error!(
                    "gemini: application gave an invalid header for {}: {e}",
                    escape_for_log(&self.url)
                );
                line.clear();
                line.extend_from_slice(b"42 Application error\r\n");
                self.status = Some(Status::CgiError);
                self.meta = "Application error".to_string();
                false
            }
        };
        self.write(t, &line);
        ok
    }

    /// Answers with a header only and closes.
    fn answer(&mut self, t: &mut Transport<'_>, status: Status, meta: &str) {
        self.send_header(t, status, meta);
        self.finish(t);
    }

    fn finish(&mut self, t: &mut Transport<'_>) {
        self.state = State::Done;
        self.cancel_timers(t);
        t.close();
    }

    fn cancel_timers(&mut self, t: &mut Transport<'_>) {
        for timer in [
            self.deadline.take(),
            self.send_timer.take(),
            self.resume.take(),
        ]
        .into_iter()
        .flatten()
        {
            t.cancel(timer);
        }
    }

    fn cancel_deadline(&mut self, t: &mut Transport<'_>) {
        if let Some(timer) = self.deadline.take() {
            t.cancel(timer);
        }
    }

    fn port(&self, t: &Transport<'_>) -> u16 {
        let port = self.shared.port.get();
        if port != 0 {
            return port;
        }
        let learnt = match t.local_addr() {
            Some(torsion_reactor::Address::Tcp(a)) => a.port(),
            _ => 0,
        };
        self.shared.port.set(learnt);
        learnt
    }

    /// A request line that cannot be valid: answer and close (or linger when
    /// the rest of it may still be arriving).
    fn refuse_request(&mut self, t: &mut Transport<'_>, error: RequestError, cut_short: bool) {
        log::debug!("gemini: bad request from {}: {error}", self.peer_display());
        self.cancel_deadline(t);
        self.send_header(t, error.status(), error.reason());
        if cut_short {
            self.state = State::Done;
            self.cancel_timers(t);
            t.close_lingering(LINGER);
        } else {
            self.finish(t);
        }
    }

    fn peer_display(&self) -> String {
        self.peer.to_string()
    }

    fn on_request(&mut self, t: &mut Transport<'_>, request: super::request::Request) {
        self.cancel_deadline(t);
        self.url = request.as_str().as_bytes().into();
        if let Some(wait) = self.refused_for {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            self.answer(t, Status::SlowDown, &secs.max(1).to_string());
            return;
        }
        let shared = self.shared.clone();
        let Some(vhost) = shared
            .vhosts
            .iter()
            .find(|v| v.policy.matches(request.host()))
        else {
            let reason = if request.host().is_ip() {
                super::host::HostRefusal::IpLiteral
            } else {
                super::host::HostRefusal::UnknownHost
            };
            self.answer(t, reason.status(), reason.reason());
            return;
        };
        let port = self.port(t);
        if let Some(requested) = request.port() {
            if requested != port {
                let refusal = super::host::HostRefusal::WrongPort {
                    expected: port,
                    requested,
                };
                self.answer(t, refusal.status(), refusal.reason());
                return;
            }
        }
        let name = match &vhost.name {
            Some(name) => name.clone(),
            None => Rc::from(request.host().to_string()),
        };
        let app_request = Request::new(request, self.peer, t.tls_info(), name, port);
        let response = vhost.handler.handle(&app_request);
        self.dispatch(t, response);
    }

    fn dispatch(&mut self, t: &mut Transport<'_>, response: Response) {
        match response.into_kind() {
            ResponseKind::Reply { status, meta, body } => {
                if !self.send_header(t, status, &meta) || !status.has_body() {
                    return self.finish(t);
                }
                match body {
                    Body::Empty => self.finish(t),
                    Body::Bytes(bytes) => {
                        self.write(t, &bytes);
                        self.finish(t);
                    }
                    Body::Stream(stream) => {
                        self.state = State::Streaming(stream);
                        self.send_timer = Some(t.call_every(self.shared.send_timeout));
                        self.pump(t);
                    }
                }
            }
            ResponseKind::Process(process) => match t.spawn(process.command) {
                Ok(child) => {
                    self.deadline = Some(t.call_later(self.shared.cgi_timeout));
                    self.state = State::Cgi(CgiRun {
                        child,
                        name: process.name,
                        header: Some(Vec::new()),
                    });
                }
                Err(e) => {
                    log::warn!(
                        "gemini: CGI {} could not start: {e}",
                        escape_for_log(process.name.as_bytes())
                    );
                    self.answer(t, Status::CgiError, "CGI error");
                }
            },
        }
    }

    /// Produces body chunks while the output queue has room.
    fn pump(&mut self, t: &mut Transport<'_>) {
        let State::Streaming(stream) = &mut self.state else {
            return;
        };
        let chunk = self.shared.chunk_size;
        let shared = self.shared.clone();
        let mut scratch = shared.scratch.borrow_mut();
        let mut produced = 0;
        let mut outcome: Option<io::Result<()>> = None;
        for _ in 0..MAX_CHUNKS_PER_TURN {
            if t.over_high_water() || !t.is_open(t.id()) {
                return;
            }
            scratch.clear();
            if let Err(e) = stream.fill(&mut scratch, chunk) {
                outcome = Some(Err(e));
                break;
            }
            if scratch.is_empty() {
                outcome = Some(Ok(()));
                break;
            }
            t.write(&scratch);
            produced += scratch.len();
        }
        // Keep the chunk buffer's memory bounded to one chunk.
        scratch.truncate(0);
        scratch.shrink_to(chunk);
        drop(scratch);
        self.bytes = self.bytes.saturating_add(produced as u64);
        match outcome {
            Some(Ok(())) => self.finish(t),
            Some(Err(e)) => {
                log::warn!(
                    "gemini: reading the body of {} failed: {e}",
                    escape_for_log(&self.url)
                );
                self.state = State::Done;
                self.cancel_timers(t);
                t.abort();
            }
            // Room left after the per-turn budget: go on next turn.
            None if !t.over_high_water() => {
                self.resume = Some(t.call_later(Duration::ZERO));
            }
            None => {}
        }
    }

    fn cgi_stdout(&mut self, t: &mut Transport<'_>, data: &[u8]) {
        let State::Cgi(run) = &mut self.state else {
            return;
        };
        let Some(header) = run.header.as_mut() else {
            // Header sent: the rest is the body.
            t.write(data);
            self.bytes = self.bytes.saturating_add(data.len() as u64);
            return;
        };
        let room = MAX_CGI_HEADER.saturating_sub(header.len());
        let (take, rest) = data.split_at(data.len().min(room));
        header.extend_from_slice(take);
        let name = run.name.clone();
        let buffered = std::mem::take(header);
        match parse_response_header(&buffered) {
            Ok(ParsedHeader::Partial) => {
                if let State::Cgi(run) = &mut self.state {
                    run.header = Some(buffered);
                }
            }
            Ok(ParsedHeader::Complete { header, consumed }) => {
                let (line, body) = buffered.split_at(consumed);
                self.status = Some(header.status);
                self.meta = header.meta.into_owned();
                self.write(t, line);
                if !header.status.has_body() {
                    return self.finish(t);
                }
                if let State::Cgi(run) = &mut self.state {
                    run.header = None;
                }
                self.write(t, body);
                self.write(t, rest);
            }
            Err(e) => {
                log::warn!(
                    "gemini: CGI {} wrote an invalid header ({e}): \"{}\"",
                    escape_for_log(name.as_bytes()),
                    escape_for_log(buffered.get(..80).unwrap_or(&buffered))
                );
                self.answer(t, Status::CgiError, "CGI error");
            }
        }
    }

    fn cgi_stderr(&self, data: &[u8]) {
        let State::Cgi(run) = &self.state else {
            return;
        };
        let shown = data.get(..MAX_STDERR_LOG).unwrap_or(data);
        for line in shown.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            log::warn!(
                "gemini: CGI {} stderr: {}",
                escape_for_log(run.name.as_bytes()),
                escape_for_log(line)
            );
        }
    }
}

impl Protocol for GeminiConnection {
    fn connection_made(&mut self, t: &mut Transport<'_>) {
        self.started = Some(t.now());
        self.deadline = Some(t.call_later(self.shared.request_timeout));
    }

    fn data_received(&mut self, t: &mut Transport<'_>, data: &mut [u8]) {
        if !matches!(self.state, State::Reading) {
            // Gemini clients send nothing after the request; drop it.
            return;
        }
        // Keep no more than a whole request line can need; anything beyond
        // makes the parser answer "too long" (or is after the CR LF).
        let limit = MAX_REQUEST_URL + 2;
        let parsed = if self.buf.is_empty() {
            parse_request(data)
        } else {
            let room = limit.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(data.get(..room).unwrap_or(data));
            parse_request(&self.buf)
        };
        match parsed {
            Ok(Parsed::Complete { request, .. }) => {
                self.buf = Vec::new();
                self.on_request(t, request);
            }
            Ok(Parsed::Partial) => {
                if self.buf.is_empty() {
                    self.buf
                        .extend_from_slice(data.get(..limit).unwrap_or(data));
                }
            }
            Err(error) => {
                let source: &[u8] = if self.buf.is_empty() { data } else { &self.buf };
                let line = source.split(|&b| b == b'\r' || b == b'\n').next();
                let line = line.unwrap_or(&[]);
                self.url = line.get(..MAX_REQUEST_URL).unwrap_or(line).into();
                // The line did not end (too long, bare LF): more of it may be
                // on its way, so linger rather than reset it.
                let cut_short = matches!(error, RequestError::TooLong | RequestError::BareLf);
                self.buf = Vec::new();
                self.refuse_request(t, error, cut_short);
            }
        }
    }

    fn eof_received(&mut self, t: &mut Transport<'_>) {
        match self.state {
            // The client gave up before asking, or was answered early.
            State::Reading | State::Done => {
                self.state = State::Done;
                self.cancel_timers(t);
                t.close();
            }
            // A client may half-close after its request: keep answering.
            State::Streaming(_) | State::Cgi(_) => {}
        }
    }

    fn write_drained(&mut self, t: &mut Transport<'_>) {
        self.progressed = true;
        if matches!(self.state, State::Streaming(_)) {
            self.pump(t);
        }
    }

    fn timer_fired(&mut self, t: &mut Transport<'_>, timer: TimerId) {
        if self.resume == Some(timer) {
            self.resume = None;
            self.pump(t);
            return;
        }
        if self.send_timer == Some(timer) {
            if !std::mem::take(&mut self.progressed) && t.over_high_water() {
                log::info!(
                    "gemini: {} stopped reading {}; dropped",
                    self.peer_display(),
                    escape_for_log(&self.url)
                );
                self.state = State::Done;
                self.cancel_timers(t);
                t.abort();
            }
            return;
        }
        if self.deadline != Some(timer) {
            return;
        }
        self.deadline = None;
        match &self.state {
            State::Reading => {
                log::debug!(
                    "gemini: {} sent no request within {:?}; closed",
                    self.peer_display(),
                    self.shared.request_timeout
                );
                self.finish(t);
            }
            State::Cgi(run) => {
                let (child, header_pending) = (run.child, run.header.is_some());
                log::warn!(
                    "gemini: CGI {} ran past {:?}; killed",
                    escape_for_log(run.name.as_bytes()),
                    self.shared.cgi_timeout
                );
                t.kill_child(child);
                if header_pending {
                    self.answer(t, Status::CgiError, "CGI script timed out");
                } else {
                    self.finish(t);
                }
            }
            State::Streaming(_) | State::Done => self.finish(t),
        }
    }

    fn child_output(
        &mut self,
        t: &mut Transport<'_>,
        _child: ChildId,
        stream: ChildStream,
        data: &[u8],
    ) {
        match stream {
            ChildStream::Stdout => self.cgi_stdout(t, data),
            ChildStream::Stderr => self.cgi_stderr(data),
        }
    }

    fn child_exited(&mut self, t: &mut Transport<'_>, _child: ChildId, status: ExitStatus) {
        let State::Cgi(run) = &self.state else {
            return;
        };
        let name = escape_for_log(run.name.as_bytes());
        if !status.success() {
            log::info!("gemini: CGI {name} exited with {status}");
        }
        match &run.header {
            None => self.finish(t),
            Some(partial) => {
                if partial.is_empty() {
                    log::warn!("gemini: CGI {name} wrote nothing");
                } else {
                    log::warn!(
                        "gemini: CGI {name} ended without a complete header: \"{}\"",
                        escape_for_log(partial.get(..80).unwrap_or(partial))
                    );
                }
                self.answer(t, Status::CgiError, "CGI error");
            }
        }
    }

    fn connection_lost(&mut self, t: &mut Transport<'_>, reason: &Disconnect) {
        self.cancel_timers(t);
        let Some(status) = self.status else {
            return;
        };
        let answered = &self.shared.requests;
        answered.set(answered.get().saturating_add(1));
        let elapsed = self
            .started
            .map(|s| Instant::now().saturating_duration_since(s))
            .unwrap_or_default();
        log_access(&AccessRecord {
            peer: self.peer,
            url: &self.url,
            status,
            meta: &self.meta,
            bytes: self.bytes.saturating_sub(reason.unsent() as u64),
            elapsed,
        });
    }
}
