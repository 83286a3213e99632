//! Runs a plan: certificates, gates, then one reactor per worker thread,
//! each with its own (`SO_REUSEPORT`) listening sockets — or with its own
//! duplicate of a socket inherited from systemd. Every worker opens its
//! listeners, then waits at the start barrier while the main thread writes
//! the pid file and drops root (`--user`); only then does any worker serve.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use torsion_reactor::gate::{AllowList, GateConfig, RateGate, RateQuota, RefusalPolicy};
use torsion_reactor::tls::ServerTlsConfig;
use torsion_reactor::{
    resolve_listen_host, Factory, ListenOptions, ListenerId, ProxyOptions, Reactor, ReactorConfig,
};

use crate::activation::{self, InheritedSockets};
use crate::plan::{Endpoint, Plan};
use crate::privileges::{self, Target};
use crate::startup::{FailUnlessReported, Startup};
use crate::status::{SharedRegistry, WorkerBoard};
use crate::tls_setup::{self, TlsSetup};

/// How often the gates forget quiet clients (bounded memory under scans).
const GATE_HOUSEKEEPING: Duration = Duration::from_secs(10);
/// How often refusals are summarised in the log.
const GATE_SUMMARY: Duration = Duration::from_secs(60);
/// How long a proxy may take to send its PROXY header: it sends it at
/// once, so only a stalled or bogus peer ever waits this long.
const PROXY_HEADER_DEADLINE: Duration = Duration::from_secs(5);

/// What every worker shares: the plan, certificates, gates (quotas are per
/// client across all workers).
struct Shared {
    plan: Plan,
    tls: Option<TlsSetup>,
    /// One gate per listener, in the order `listeners()` yields them, with
    /// the listener's scheme.
    gates: Vec<(&'static str, RateGate)>,
    started: Instant,
    /// Per listener (same order as `gates`): sockets opened once for every
    /// worker — inherited from systemd, or bound on port 0 when there are
    /// several workers (each binding port 0 would get its own port). Each
    /// worker serves a duplicate (`try_clone`); the kernel's `SO_REUSEPORT`
    /// balancing does not apply to a shared socket, so the workers race
    /// for its connections instead.
    prebound: Vec<Vec<TcpListener>>,
    /// Where the workers wait for the privilege drop.
    startup: Startup,
    /// Every worker's status lines, for the status page.
    board: Arc<WorkerBoard>,
    /// Who to become once every listener is open.
    drop_to: Option<Target>,
    /// The pid file was written by this process (so removing it at exit
    /// cannot remove another instance's).
    pid_file_written: AtomicBool,
}

/// One listener to open in every worker.
pub struct ListenerSpec<'a> {
    /// `gemini`, `http`, `https`, `ws`, `echo`: the URL scheme for the log.
    pub scheme: &'static str,
    /// Where to listen, and the gate settings.
    pub endpoint: &'a Endpoint,
    /// TLS settings, for TLS listeners.
    pub tls: Option<ServerTlsConfig>,
    /// The client sends first (a request, a ClientHello): the kernel may
    /// hold a connection until its first bytes arrive
    /// (`ListenOptions::defer_accept`).
    pub client_speaks_first: bool,
    /// Builds a factory for one worker's reactor, given the port the
    /// listener actually bound (Gemini checks request URLs against it).
    pub make_factory: Box<dyn Fn(u16) -> Box<dyn Factory> + 'a>,
}

/// The PROXY protocol settings of a listener, if it is behind a proxy.
pub fn proxy_for(name: &str, e: &Endpoint) -> Result<Option<ProxyOptions>, String> {
    if !e.proxy_protocol {
        return Ok(None);
    }
    if e.proxy_from.is_empty() {
        return Err(format!(
            "{name}: the PROXY protocol is on, so list the proxies allowed to send headers (--proxy-from CIDR, or proxy_from in the config file)"
        ));
    }
    let allowed = AllowList::parse(e.proxy_from.iter().map(String::as_str))
        .map_err(|(entry, err)| format!("{name}: proxy_from {entry:?}: {err}"))?;
    Ok(Some(ProxyOptions {
        allowed_from: allowed,
        deadline: PROXY_HEADER_DEADLINE,
    }))
}

/// The gate of a listener (and a check of its PROXY protocol settings, so
/// that `--check-config` reports them too).
pub fn gate_for(name: &str, e: &Endpoint, plan: &Plan) -> Result<RateGate, String> {
    proxy_for(name, e)?;
    let quota = match &e.rate_limit {
        Some(q) => {
            let mut quota =
                RateQuota::parse(q).map_err(|err| format!("{name}: rate limit {q:?}: {err}"))?;
            if let Some(b) = e.rate_burst {
                quota = quota
                    .with_burst(b)
                    .map_err(|err| format!("{name}: rate burst {b}: {err}"))?;
            }
            Some(quota)
        }
        None => None,
    };
    let policy = match e.refusal.as_deref() {
        Some(p) => p
            .parse::<RefusalPolicy>()
            .map_err(|err| format!("{name}: refusal {p:?}: {err}"))?,
        None => RefusalPolicy::Reply,
    };
    let allow = AllowList::parse(plan.gate_allow.iter().map(String::as_str))
        .map_err(|(entry, err)| format!("--gate-allow {entry:?}: {err}"))?;
    let defaults = GateConfig::default();
    Ok(RateGate::new(GateConfig {
        name: name.to_string(),
        quota,
        policy,
        max_conns_per_client: plan
            .max_conns_per_ip
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(defaults.max_conns_per_client),
        ipv6_prefix: plan.ipv6_prefix.unwrap_or(defaults.ipv6_prefix),
        allow,
        ..defaults
    }))
}

fn listeners<'a>(shared: &'a Shared, registry: &SharedRegistry) -> Vec<ListenerSpec<'a>> {
    let plan = &shared.plan;
    let mut out = Vec::new();
    for e in &plan.echo {
        out.push(ListenerSpec {
            scheme: "echo",
            endpoint: e,
            tls: None,
            // The echo client does send first, but `torsion bench
            // --connect-only` measures bare connections against it.
            client_speaks_first: false,
            make_factory: Box::new(|_port| {
                Box::new(torsion_protocols::echo::Echo::factory(
                    torsion_protocols::echo::EchoConfig::default(),
                ))
            }),
        });
    }
    crate::wiring::protocol_listeners(shared_view(shared), registry, &mut out);
    out
}

/// What protocol wiring may read from the shared state.
pub struct SharedView<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Certificates, when any listener uses TLS.
    pub tls: Option<&'a TlsSetup>,
    /// The gates, with the scheme of the listener each guards.
    pub gates: Vec<(&'static str, RateGate)>,
    /// When the server started (the status page's uptime).
    pub started: Instant,
    /// Every worker's status lines, for the status page.
    pub board: Arc<WorkerBoard>,
}

fn shared_view(shared: &Shared) -> SharedView<'_> {
    SharedView {
        plan: &shared.plan,
        tls: shared.tls.as_ref(),
        gates: shared.gates.clone(),
        started: shared.started,
        board: Arc::clone(&shared.board),
    }
}

/// Runs the plan until a stop signal; returns when every worker has stopped.
/// `drop_to`: the resolved `--user`/`--group`.
pub fn run(plan: Plan, drop_to: Option<Target>) -> Result<(), Box<dyn std::error::Error>> {
    crate::wiring::check(&plan)?;
    // Before any other thread exists: this edits the environment.
    let mut inherited = activation::take_from_env()?;
    if drop_to.is_none() && privileges::running_as_root() {
        log::warn!(
            "running as root without --user: requests are served with root's privileges; \
             add --user (and --group) to drop them once the listeners are open, \
             or use systemd socket activation (contrib/torsion.socket)"
        );
    }
    if plan.gemini.iter().any(|g| g.dir.is_none()) {
        log::info!(
            "gemini: {} does not exist and no --dir was given: serving the capsule built into the binary",
            crate::plan::DEFAULT_DIR
        );
    }
    let needs_tls = !plan.gemini.is_empty() || plan.websocket.iter().any(|w| !w.plain);
    let tls = if needs_tls {
        Some(tls_setup::build(&plan.tls)?)
    } else {
        None
    };
    let workers = plan.workers.max(1);
    let mut shared = Shared {
        plan,
        tls,
        gates: Vec::new(),
        started: Instant::now(),
        prebound: Vec::new(),
        startup: Startup::new(workers),
        board: WorkerBoard::new(workers),
        drop_to,
        pid_file_written: AtomicBool::new(false),
    };
    let scratch = SharedRegistry::default();
    let specs = listeners(&shared, &scratch);
    let gates: Vec<(&'static str, RateGate)> = specs
        .iter()
        .map(|l| gate_for(l.scheme, l.endpoint, &shared.plan).map(|g| (l.scheme, g)))
        .collect::<Result<_, _>>()?;
    let prebound = prebind(&specs, &mut inherited, workers)?;
    drop(specs);
    for s in inherited.leftovers() {
        log::warn!(
            "inherited socket {} ({}) matches no listener: closed",
            s.addr,
            s.name.as_deref().unwrap_or("unnamed")
        );
    }
    drop(inherited);
    shared.gates = gates;
    shared.prebound = prebound;
    let shared = Arc::new(shared);
    let mut threads = Vec::new();
    for i in 1..workers {
        let s = Arc::clone(&shared);
        let t = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                let _report = FailUnlessReported {
                    startup: &s.startup,
                    index: i,
                };
                worker(i, &s).map_err(|e| e.to_string())
            })?;
        threads.push(t);
    }
    let result = worker(0, &shared);
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::error!("worker failed: {e}"),
            Err(_) => log::error!("worker panicked"),
        }
    }
    let written = shared.pid_file_written.load(Ordering::SeqCst);
    if let Some(path) = shared.plan.pid_file.as_ref().filter(|_| written) {
        // After a privilege drop the pid file's directory (/run) is often
        // no longer writable: systemd and init scripts cope with a stale
        // pid file, so this is not an error.
        if let Err(e) = std::fs::remove_file(path) {
            log::debug!("pid file {}: {e}", path.display());
        }
    }
    result
}

/// Opens, once for all workers, the sockets listed on [`Shared::prebound`]:
/// per listener, the inherited sockets meant for it, else (with several
/// workers) a port-0 listener bound here.
fn prebind(
    specs: &[ListenerSpec<'_>],
    inherited: &mut InheritedSockets,
    workers: usize,
) -> Result<Vec<Vec<TcpListener>>, Box<dyn std::error::Error>> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut socks = if inherited.is_empty() {
            Vec::new()
        } else {
            inherited.take_for(spec.scheme, spec.endpoint.port)
        };
        for s in &socks {
            log::info!(
                "{}: using the socket inherited from systemd on {}",
                spec.scheme,
                s.local_addr()?
            );
        }
        if socks.is_empty() && spec.endpoint.port == 0 && workers > 1 {
            for addr in resolve_listen_host(&spec.endpoint.host, 0)? {
                socks.push(
                    TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?,
                );
            }
        }
        out.push(socks);
    }
    Ok(out)
}

/// The pid file and the privilege drop: run by the main thread once every
/// worker has opened its listeners, before any serves.
fn become_ready(shared: &Shared) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(path) = &shared.plan.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        shared.pid_file_written.store(true, Ordering::SeqCst);
    }
    if let Some(target) = &shared.drop_to {
        if privileges::running_as_root() {
            // Generated certificates are root's, mode 0600: give them to the
            // user so SIGHUP can still re-read them after the drop.
            if let Some(tls) = &shared.tls {
                privileges::hand_over(&tls.generated_files, target)?;
            }
        }
        let threads = privileges::drop_to(target)?;
        if threads > 0 {
            log::info!(
                "dropped root privileges: now {} (checked {threads} threads)",
                target.label
            );
        }
    }
    Ok(())
}

/// Where a worker's listener comes from.
enum Source<'a> {
    /// Bind this address (with `SO_REUSEPORT` when there are workers).
    Addr(SocketAddr),
    /// Serve a duplicate of this socket, opened once for all workers.
    Shared(&'a TcpListener),
}

fn worker(index: usize, shared: &Shared) -> Result<(), Box<dyn std::error::Error>> {
    let opened = open_listeners(index, shared);
    let (reactor, registry, ids) = shared
        .startup
        .sync(index, opened, || become_ready(shared))?;
    shared.board.enter(index, reactor.handle(), registry);
    if index == 0 {
        for (scheme, id) in ids {
            let bound = reactor
                .local_addr(id)
                .map(|a| a.to_string())
                .unwrap_or_default();
            // Printed too (not only logged) so scripts and tests can find
            // ports chosen with 0. Only after the privilege drop: a line
            // means the listener is served.
            eprintln!("torsion: {scheme} listening on {bound}");
            log::info!("listening: {scheme}://{bound}/");
        }
    }
    serve(index, shared, reactor)
}

/// A worker's reactor with every listener open (not yet served), its
/// status registry, and the listeners' schemes and ids in order.
type Opened = (Reactor, SharedRegistry, Vec<(&'static str, ListenerId)>);

fn open_listeners(index: usize, shared: &Shared) -> Result<Opened, Box<dyn std::error::Error>> {
    let plan = &shared.plan;
    let mut config = ReactorConfig {
        shutdown_timeout: plan.shutdown_timeout,
        ..ReactorConfig::default()
    };
    if let Some(t) = plan.handshake_timeout {
        config.handshake_timeout = t;
    }
    if let Some(n) = plan.max_conns.filter(|n| *n > 0) {
        config.max_connections = n;
    }
    let mut reactor = Reactor::with_config(config)?;
    let registry = SharedRegistry::default();
    let specs = listeners(shared, &registry);
    let mut ids = Vec::with_capacity(specs.len());
    for (i, (spec, (_, gate))) in specs.iter().zip(&shared.gates).enumerate() {
        let sources: Vec<Source<'_>> = match shared.prebound.get(i) {
            Some(socks) if !socks.is_empty() => socks.iter().map(Source::Shared).collect(),
            _ => resolve_listen_host(&spec.endpoint.host, spec.endpoint.port)?
                .into_iter()
                .map(Source::Addr)
                .collect(),
        };
        for source in sources {
            let options = ListenOptions {
                reuse_port: plan.workers > 1,
                gate: Some(Box::new(gate.clone())),
                tls: spec.tls.clone(),
                proxy: proxy_for(spec.scheme, spec.endpoint)?,
                defer_accept: spec.client_speaks_first,
                ..ListenOptions::default()
            };
            let id = match source {
                Source::Shared(sock) => {
                    let listener = sock.try_clone()?;
                    let port = listener.local_addr()?.port();
                    let factory = BoxedFactory((spec.make_factory)(port));
                    reactor.adopt_tcp_listener(listener, factory, options)?
                }
                Source::Addr(addr) if addr.port() == 0 => {
                    // Bind first to learn the port the factory must know.
                    let listener = std::net::TcpListener::bind(addr)
                        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                    let port = listener.local_addr()?.port();
                    let factory = BoxedFactory((spec.make_factory)(port));
                    reactor.adopt_tcp_listener(listener, factory, options)?
                }
                Source::Addr(addr) => {
                    let factory = BoxedFactory((spec.make_factory)(addr.port()));
                    reactor.listen_with(addr, factory, options)?
                }
            };
            let mut reg = registry.borrow_mut();
            reg.listeners.push((spec.scheme, id));
            if spec.scheme == "https" && reg.https_port.is_none() {
                reg.https_port = reactor.local_addr(id).and_then(|a| match a {
                    torsion_reactor::Address::Tcp(sa) => Some(sa.port()),
                    torsion_reactor::Address::Unix(_) => None,
                });
            }
            drop(reg);
            ids.push((spec.scheme, id));
        }
    }
    drop(specs);
    // Before the listening lines are printed: a SIGTERM sent as soon as
    // they appear must stop the server gracefully, not kill it.
    reactor.stop_on_signals()?;
    if index == 0 {
        if let Some(tls) = &shared.tls {
            let store = tls.store.clone();
            reactor.on_signal(libc::SIGHUP, move |_ctx| match store.reload() {
                Ok(n) => log::info!("SIGHUP: reloaded {n} certificate(s)"),
                Err(e) => log::error!("SIGHUP: {e} (the old certificates stay in use)"),
            })?;
        }
    }
    Ok((reactor, registry, ids))
}

/// Runs a worker's reactor until it stops.
fn serve(
    index: usize,
    shared: &Shared,
    mut reactor: Reactor,
) -> Result<(), Box<dyn std::error::Error>> {
    if index == 0 {
        let gates = shared.gates.clone();
        reactor.schedule_every(GATE_HOUSEKEEPING, move |_ctx, _id| {
            for (_, g) in &gates {
                g.housekeeping();
            }
        });
        let gates = shared.gates.clone();
        reactor.schedule_every(GATE_SUMMARY, move |_ctx, _id| {
            for (_, g) in &gates {
                if let Some(line) = g.summary_line() {
                    log::info!("{line}");
                }
            }
        });
    }
    reactor.run()?;
    if index == 0 {
        log::info!("stopped");
    }
    Ok(())
}

/// Lets a boxed factory be passed where `impl Factory` is expected.
struct BoxedFactory(Box<dyn Factory>);

impl Factory for BoxedFactory {
    fn build(&mut self, peer: &torsion_reactor::PeerInfo) -> Box<dyn torsion_reactor::Protocol> {
        self.0.build(peer)
    }
}
