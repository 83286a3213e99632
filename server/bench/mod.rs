//! `torsion bench URL`: a connection-throughput load generator built on
//! torsion's own reactor (its client side), for Gemini, HTTP(S),
//! WebSocket and raw TCP.
//!
//! One thread, one reactor: `-c` workers ([`worker`]) each run one
//! connection, claiming operations from the run's schedule ([`run()`]):
//! closed loop by default, open loop at a fixed rate with `--rate`. Every
//! operation's latency goes into a log-linear histogram ([`histogram`]);
//! errors are classified and counted, never fatal. The harness reports its
//! own CPU per operation beside the server's ([`cpu`]), since on a small
//! machine one load core may not saturate one server core.
//!
//! The pieces: [`options`] (command line), [`target`] (URL, resolution),
//! one [`worker::Mode`] per protocol ([`gemini`], [`http`], [`ws`],
//! [`tcp`]), [`body`] (checking response bodies against a reference), and
//! [`report`] (table, JSON, progress).

pub mod body;
pub mod cpu;
pub mod gemini;
pub mod histogram;
pub mod http;
pub mod options;
pub mod report;
pub mod run;
pub mod target;
pub mod tcp;
pub mod worker;
pub mod ws;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use torsion_reactor::tls::{ClientTlsConfig, ClientVerify};
use torsion_reactor::{Address, Context, Reactor, ReactorConfig};

use body::Expected;
use options::{Action, Options, UsageError};
use report::Summary;
use run::{ErrorKind, Link, Plan, Run};
use target::{Scheme, Target};
use worker::{Mode, Worker};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Exit code of a run that finished with a response body differing from
/// `--expect-body` / `--expect-bytes`: scripts must not mistake lost or
/// corrupted bytes for a clean run.
const EXIT_BODY_MISMATCH: u8 = 3;

/// Runs `torsion bench` with the arguments after `bench`.
pub fn run(args: Vec<OsString>) -> ExitCode {
    let opts = match options::parse(args) {
        Ok(Action::Run(o)) => o,
        Ok(Action::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(UsageError(msg)) => return usage(&msg),
    };
    let target = match target::parse_target(&opts.url) {
        Ok(t) => t,
        Err(msg) => return usage(&msg),
    };
    let kind = match Kind::choose(&opts, &target) {
        Ok(k) => k,
        Err(msg) => return usage(&msg),
    };
    match execute(&opts, &target, kind) {
        Ok(summary) => {
            let out = if opts.json {
                format!("{}\n", summary.json())
            } else {
                summary.human()
            };
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
            let mismatches = summary
                .m
                .errors
                .get(ErrorKind::Body as usize)
                .copied()
                .unwrap_or(0);
            if mismatches > 0 {
                eprintln!(
                    "torsion bench: {mismatches} response bodies differed from the expected one"
                );
                return ExitCode::from(EXIT_BODY_MISMATCH);
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("torsion bench: {msg}");
            ExitCode::from(1)
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("torsion bench: {msg}\nTry 'torsion bench --help'.");
    ExitCode::from(2)
}

/// What each operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gemini,
    Http { close: bool },
    WsEcho,
    WsConnect,
    TcpEcho,
    TcpConnect,
}

impl Kind {
    /// Picks the kind from the scheme and flags, refusing flags that do
    /// not apply.
    fn choose(o: &Options, t: &Target) -> Result<Kind, String> {
        let kind = match t.scheme {
            Scheme::Gemini => Kind::Gemini,
            Scheme::Http | Scheme::Https => Kind::Http { close: o.close },
            Scheme::Ws | Scheme::Wss if o.connect_only => Kind::WsConnect,
            Scheme::Ws | Scheme::Wss => Kind::WsEcho,
            Scheme::Tcp if o.connect_only && o.size.is_some() => {
                return Err("tcp://: --connect-only and --size exclude each other".into())
            }
            Scheme::Tcp if o.size.is_some() => Kind::TcpEcho,
            Scheme::Tcp => Kind::TcpConnect,
        };
        if o.close && !matches!(kind, Kind::Http { .. }) {
            return Err("--close applies to http:// and https:// only".into());
        }
        if o.connect_only && !matches!(kind, Kind::WsConnect | Kind::TcpConnect) {
            return Err("--connect-only applies to ws://, wss:// and tcp:// only".into());
        }
        if o.pipeline > 1 && !matches!(kind, Kind::WsEcho | Kind::TcpEcho) {
            return Err(
                "--pipeline applies to ws://, wss:// and tcp:// echo (with --size) only".into(),
            );
        }
        if o.size.is_some() && !matches!(kind, Kind::WsEcho | Kind::TcpEcho) {
            return Err("--size applies to ws://, wss:// and tcp:// echo only".into());
        }
        if (o.expect_body.is_some() || o.expect_bytes.is_some())
            && !matches!(kind, Kind::Gemini | Kind::Http { .. })
        {
            return Err(
                "--expect-body and --expect-bytes apply to gemini://, http:// and https:// only (ws:// and tcp:// echoes are always checked)".into(),
            );
        }
        Ok(kind)
    }

    fn variant(self) -> &'static str {
        match self {
            Kind::Gemini => "fresh TLS connection per request",
            Kind::Http { close: false } => "keep-alive",
            Kind::Http { close: true } => "one request per connection",
            Kind::WsEcho => "echo",
            Kind::WsConnect => "connect, upgrade, close",
            Kind::TcpEcho => "echo",
            Kind::TcpConnect => "connect and close",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Kind::Gemini | Kind::Http { .. } => "requests",
            Kind::WsEcho | Kind::TcpEcho => "messages",
            Kind::WsConnect | Kind::TcpConnect => "connections",
        }
    }

    fn one_per_connection(self) -> bool {
        matches!(
            self,
            Kind::Gemini | Kind::Http { close: true } | Kind::WsConnect | Kind::TcpConnect
        )
    }

    fn status_digits(self) -> u8 {
        match self {
            Kind::Gemini => 2,
            Kind::Http { .. } => 3,
            _ => 0,
        }
    }
}

/// Builds the TLS client configuration once for the whole run.
fn tls_config(o: &Options) -> Result<ClientTlsConfig, String> {
    let verify = if o.verify {
        let roots = torsion_reactor::tls::load_ca_roots(Some(&o.cafile), None)
            .map_err(|e| format!("--verify: {e}"))?;
        ClientVerify::WebPki(std::sync::Arc::new(roots))
    } else {
        ClientVerify::NoVerify
    };
    ClientTlsConfig::builder(verify)
        .resumption(o.resume)
        .build()
        .map_err(|e| format!("TLS setup: {e}"))
}

/// Raises the soft descriptor limit to the hard one: each connection is a
/// descriptor, and `-c 10000` is a normal request.
fn raise_nofile() {
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Sets how workers are built: each gets a fresh protocol state; what all
/// share (requests, payloads) is built once here.
fn set_spawner(run: &Rc<Run>, kind: Kind, o: &Options, t: &Target, expected: Option<Rc<Expected>>) {
    fn install<M: Mode>(run: &Rc<Run>, make: impl Fn(u64) -> M + 'static) {
        let weak: Weak<Run> = Rc::downgrade(run);
        run.set_spawner(Box::new(move |ctx: &mut Context<'_>, cursor: u64| {
            if let Some(run) = weak.upgrade() {
                Box::new(Worker::new(run, cursor, make(cursor))).start(ctx);
            }
        }));
    }
    let size = o.size.unwrap_or(options::DEFAULT_SIZE);
    match kind {
        Kind::Gemini => {
            let req = gemini::request(&t.url);
            install(run, move |_| {
                gemini::Gemini::new(Rc::clone(&req), expected.clone())
            });
        }
        Kind::Http { close } => {
            let req = http::request(&t.authority, &t.path, close);
            install(run, move |_| {
                http::Http::new(Rc::clone(&req), expected.clone())
            });
        }
        Kind::WsEcho | Kind::WsConnect => {
            let base = ws::seed(0);
            let shared =
                ws::WsShared::new(&t.authority, &t.path, size, kind == Kind::WsConnect, base);
            install(run, move |k| {
                ws::Ws::new(Rc::clone(&shared), ws::seed(k + 1))
            });
        }
        Kind::TcpEcho => {
            let payload = tcp::pattern(size);
            install(run, move |_| tcp::TcpEcho::new(Rc::clone(&payload)));
        }
        Kind::TcpConnect => install(run, |_| tcp::TcpConnect),
    }
}

/// Runs the benchmark and returns what it measured.
fn execute(o: &Options, t: &Target, kind: Kind) -> Result<Summary, String> {
    let expected = Expected::from_options(o.expect_body.as_deref(), o.expect_bytes)
        .map_err(|e| e.to_string())?;
    let expect_body = expected
        .as_ref()
        .map(|e| (e.promised_len(), o.expect_body.is_some()));
    let addr = t.resolve()?;
    let tls = if t.scheme.tls() {
        Some((tls_config(o)?, t.host.clone()))
    } else {
        None
    };
    let server_pid = o.server_pid.or_else(|| {
        if addr.ip().is_loopback() {
            cpu::find_listener_pid(addr.port())
        } else {
            None
        }
    });
    raise_nofile();
    let mut expect = o.expect.unwrap_or([false; 10]);
    if o.expect.is_none() {
        expect[2] = true;
        expect[3] = true;
    }
    let plan = Plan {
        connections: o.connections,
        limit: o.requests,
        rate: o.rate,
        warmup: o.warmup,
        duration: o.duration,
        timeout: o.timeout,
        expect,
        pipeline: o.pipeline,
        per_conn: kind.one_per_connection().then_some(1),
    };
    let config = ReactorConfig {
        connect_timeout: o.timeout,
        ..ReactorConfig::default()
    };
    let mut reactor = Reactor::with_config(config).map_err(|e| e.to_string())?;
    let link = Link {
        addr: Address::Tcp(addr),
        tls,
    };
    let t0 = Instant::now();
    let run = Rc::new(Run::new(plan, link, server_pid, t0));
    set_spawner(&run, kind, o, t, expected);

    if o.warmup.is_zero() {
        run.begin_measure(&mut reactor.context());
    } else {
        let r = Rc::clone(&run);
        reactor.schedule(o.warmup, move |ctx, _| r.begin_measure(ctx));
    }
    if let Some(d) = o.duration {
        let r = Rc::clone(&run);
        reactor.schedule(o.warmup + d, move |ctx, _| r.end_window(ctx));
    }
    {
        let r = Rc::clone(&run);
        reactor
            .on_signal(libc::SIGINT, move |ctx| r.interrupt(ctx))
            .map_err(|e| e.to_string())?;
    }
    let progress = std::io::stderr().is_terminal();
    if progress {
        let r = Rc::clone(&run);
        let mut last = 0u64;
        reactor.schedule_every(PROGRESS_EVERY, move |ctx, id| {
            if r.finished() {
                ctx.cancel(id);
                return;
            }
            let (line, ops) = r.progress(last, PROGRESS_EVERY);
            last = ops;
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{line}\x1b[K");
            let _ = err.flush();
        });
    }
    for k in 0..o.connections as u64 {
        run.spawn(&mut reactor.context(), k);
    }
    if !run.finished() {
        reactor.run().map_err(|e| e.to_string())?;
    }
    if progress {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
    let m = run.measured();
    drop(reactor);
    Ok(Summary {
        url: t.url.clone(),
        mode: t.scheme.name(),
        variant: kind.variant(),
        unit: kind.unit(),
        status_digits: kind.status_digits(),
        connections: o.connections,
        pipeline: o.pipeline,
        size: matches!(kind, Kind::WsEcho | Kind::TcpEcho)
            .then_some(o.size.unwrap_or(options::DEFAULT_SIZE)),
        rate: o.rate,
        warmup: o.warmup,
        tls_resume: t.scheme.tls().then_some(o.resume),
        server_pid,
        expect_body,
        m,
    })
}
