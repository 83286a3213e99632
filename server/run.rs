//! Runs a plan: certificates, gates, then one reactor per worker thread,
//! each with its own (`SO_REUSEPORT`) listening sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use torsion_reactor::gate::{AllowList, GateConfig, RateGate, RateQuota, RefusalPolicy};
use torsion_reactor::tls::ServerTlsConfig;
use torsion_reactor::{resolve_listen_host, Factory, ListenOptions, Reactor, ReactorConfig};

use crate::plan::{Endpoint, Plan};
use crate::status::SharedRegistry;
use crate::tls_setup::{self, TlsSetup};

/// How often the gates forget quiet clients (bounded memory under scans).
const GATE_HOUSEKEEPING: Duration = Duration::from_secs(10);
/// How often refusals are summarised in the log.
const GATE_SUMMARY: Duration = Duration::from_secs(60);

/// What every worker shares: the plan, certificates, gates (quotas are per
/// client across all workers).
struct Shared {
    plan: Plan,
    tls: Option<TlsSetup>,
    /// One gate per listener, in the order `listeners()` yields them, with
    /// the listener's scheme.
    gates: Vec<(&'static str, RateGate)>,
    started: Instant,
}

/// One listener to open in every worker.
pub struct ListenerSpec<'a> {
    /// `gemini`, `http`, `https`, `ws`, `echo`: the URL scheme for the log.
    pub scheme: &'static str,
    /// Where to listen, and the gate settings.
    pub endpoint: &'a Endpoint,
    /// TLS settings, for TLS listeners.
    pub tls: Option<ServerTlsConfig>,
    /// Builds a factory for one worker's reactor, given the port the
    /// listener actually bound (Gemini checks request URLs against it).
    pub make_factory: Box<dyn Fn(u16) -> Box<dyn Factory> + 'a>,
}

pub fn gate_for(name: &str, e: &Endpoint, plan: &Plan) -> Result<RateGate, String> {
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
}

fn shared_view(shared: &Shared) -> SharedView<'_> {
    SharedView {
        plan: &shared.plan,
        tls: shared.tls.as_ref(),
        gates: shared.gates.clone(),
        started: shared.started,
    }
}

/// Runs the plan until a stop signal; returns when every worker has stopped.
pub fn run(plan: Plan) -> Result<(), Box<dyn std::error::Error>> {
    crate::wiring::check(&plan)?;
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
    let mut shared = Shared {
        plan,
        tls,
        gates: Vec::new(),
        started: Instant::now(),
    };
    let scratch = SharedRegistry::default();
    let gates: Vec<(&'static str, RateGate)> = listeners(&shared, &scratch)
        .iter()
        .map(|l| gate_for(l.scheme, l.endpoint, &shared.plan).map(|g| (l.scheme, g)))
        .collect::<Result<_, _>>()?;
    shared.gates = gates;
    if let Some(path) = &shared.plan.pid_file {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
    }
    let shared = Arc::new(shared);
    let workers = shared.plan.workers.max(1);
    let mut threads = Vec::new();
    for i in 1..workers {
        let s = Arc::clone(&shared);
        let t = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || worker(i, &s).map_err(|e| e.to_string()))?;
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
    if let Some(path) = &shared.plan.pid_file {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn worker(index: usize, shared: &Shared) -> Result<(), Box<dyn std::error::Error>> {
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
    for (spec, (_, gate)) in specs.iter().zip(&shared.gates) {
        let addrs: Vec<SocketAddr> = resolve_listen_host(&spec.endpoint.host, spec.endpoint.port)?;
        for addr in addrs {
            let options = ListenOptions {
                reuse_port: plan.workers > 1,
                gate: Some(Box::new(gate.clone())),
                tls: spec.tls.clone(),
                ..ListenOptions::default()
            };
            let id = if addr.port() == 0 {
                // Bind first to learn the port the factory must know.
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
                let port = listener.local_addr()?.port();
                let factory = BoxedFactory((spec.make_factory)(port));
                reactor.adopt_tcp_listener(listener, factory, options)?
            } else {
                let factory = BoxedFactory((spec.make_factory)(addr.port()));
                reactor.listen_with(addr, factory, options)?
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
            if index == 0 {
                let bound = reactor
                    .local_addr(id)
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                // Printed too (not only logged) so scripts and tests can
                // find ports chosen with 0.
                eprintln!("torsion: {} listening on {bound}", spec.scheme);
                log::info!("listening: {}://{bound}/", spec.scheme);
            }
        }
    }
    reactor.stop_on_signals()?;
    if index == 0 {
        if let Some(tls) = &shared.tls {
            let store = tls.store.clone();
            reactor.on_signal(libc::SIGHUP, move |_ctx| match store.reload() {
                Ok(n) => log::info!("SIGHUP: reloaded {n} certificate(s)"),
                Err(e) => log::error!("SIGHUP: {e} (the old certificates stay in use)"),
            })?;
        }
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
