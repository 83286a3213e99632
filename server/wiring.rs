//! The protocol table: how each planned listener becomes a protocol factory.
//! Adding a protocol means one more block here (and its module in
//! torsion-protocols).

use std::rc::Rc;
use std::sync::Arc;

use torsion_protocols::gemini::{GeminiConfig, GeminiFactory, Root, VirtualHost};
use torsion_protocols::http::{HttpConfig, HttpFactory, RedirectCode};
use torsion_protocols::websocket::{OriginPolicy, WsConfig, WsFactory};

use crate::plan::{GeminiPlan, HttpPlan, Plan, WsPlan};
use crate::run::{ListenerSpec, SharedView};
use crate::status::{ServerStatus, SharedRegistry};

fn gemini_config(g: &GeminiPlan) -> GeminiConfig {
    let root = match &g.dir {
        Some(d) => Root::Dir(d.clone()),
        None => Root::Embedded,
    };
    let mut main = VirtualHost::new(g.hostname.clone(), root);
    if let Some(c) = &g.cgi_dir {
        main.cgi_dir = Some(c.clone());
    }
    if let Some(i) = &g.index_file {
        main.index_file = i.clone();
    }
    main.default_lang = g.default_lang.clone();
    let mut config = GeminiConfig::single(main);
    for v in &g.vhosts {
        let mut vh = VirtualHost::new(
            v.hostnames.first().cloned().unwrap_or_default(),
            Root::Dir(v.dir.clone()),
        );
        vh.hostnames = v.hostnames.clone();
        if let Some(c) = &v.cgi_dir {
            vh.cgi_dir = Some(c.clone());
        }
        if let Some(i) = &v.index_file {
            vh.index_file = i.clone();
        }
        vh.default_lang = v.default_lang.clone();
        config.vhosts.push(vh);
    }
    if let Some(t) = g.cgi_timeout {
        config.cgi_timeout = t;
    }
    if let Some(t) = g.request_timeout {
        config.request_timeout = t;
    }
    config
}

fn ws_config(w: &WsPlan) -> Result<WsConfig, String> {
    let mut c = WsConfig::default();
    if let Some(m) = w.max_message {
        c.max_message = m;
    }
    if !w.origins.is_empty() {
        c.origins = OriginPolicy::new(w.origins.iter())
            .map_err(|e| format!("websocket listener on port {}: {e}", w.endpoint.port))?;
    }
    c.broadcast_file = w.broadcast_file.clone();
    if let Some(p) = w.ping_interval {
        c.ping_interval = p;
    }
    Ok(c)
}

fn http_config(h: &HttpPlan, plan: &Plan) -> HttpConfig {
    let mut config = HttpConfig::default();
    config.redirect.code = if h.redirect_code == 308 {
        RedirectCode::PermanentRedirect
    } else {
        RedirectCode::MovedPermanently
    };
    config.redirect.canonical_host = h.redirect_host.clone();
    // 0: filled in with the HTTPS listener's bound port at start.
    config.redirect.target_port = h.redirect_port.unwrap_or(0);
    config.redirect.fallback_host = plan
        .gemini
        .first()
        .map(|g| g.hostname.clone())
        .unwrap_or_else(|| "localhost".into());
    config.acme_dir = h.acme_dir.clone();
    if let Some(t) = h.head_timeout {
        config.head_timeout = t;
    }
    if let Some(t) = h.idle_timeout {
        config.idle_timeout = t;
    }
    if let Some(t) = h.linger {
        config.linger = t;
    }
    if let Some(n) = h.max_requests {
        config.max_requests = n;
    }
    config
}

/// Adds the listeners of every protocol module to `out`.
pub fn protocol_listeners<'a>(
    view: SharedView<'a>,
    registry: &SharedRegistry,
    out: &mut Vec<ListenerSpec<'a>>,
) {
    let plan = view.plan;
    for g in &plan.gemini {
        let config = gemini_config(g);
        let registry = Rc::clone(registry);
        out.push(ListenerSpec {
            scheme: "gemini",
            endpoint: &g.endpoint,
            tls: view.tls.map(|t| t.gemini.clone()),
            client_speaks_first: true,
            make_factory: Box::new(move |port| match GeminiFactory::new(config.clone(), port) {
                Ok(f) => {
                    registry.borrow_mut().gemini.push(f.requests());
                    Box::new(f)
                }
                // `check` validated the config before any listener opened.
                Err(e) => unreachable_config(e),
            }),
        });
    }
    for w in &plan.websocket {
        // `check` has validated the origins; an invalid list cannot get here.
        let Ok(config) = ws_config(w) else { continue };
        let tls = if w.plain {
            None
        } else {
            view.tls.map(|t| t.https.clone())
        };
        let registry = Rc::clone(registry);
        let gates = view.gates.clone();
        let started = view.started;
        let board = Arc::clone(&view.board);
        out.push(ListenerSpec {
            scheme: if w.plain { "ws" } else { "https" },
            endpoint: &w.endpoint,
            tls,
            client_speaks_first: true,
            make_factory: Box::new(move |_port| {
                let source = ServerStatus::new(
                    started,
                    Rc::clone(&registry),
                    gates.clone(),
                    Arc::clone(&board),
                );
                let factory = WsFactory::with_status_source(config.clone(), source);
                registry.borrow_mut().ws.push(factory.handle());
                Box::new(factory)
            }),
        });
    }
    for h in &plan.http {
        let config = http_config(h, plan);
        let registry = Rc::clone(registry);
        out.push(ListenerSpec {
            scheme: "http",
            endpoint: &h.endpoint,
            tls: None,
            client_speaks_first: true,
            make_factory: Box::new(move |_port| {
                let mut config = config.clone();
                if config.redirect.target_port == 0 {
                    // No --redirect-port: use the port the HTTPS listener
                    // got (port 0, or a socket inherited from systemd);
                    // WebSocket/HTTPS listeners are opened first for this.
                    config.redirect.target_port = registry.borrow().https_port.unwrap_or(443);
                }
                let factory = HttpFactory::new(config);
                registry.borrow_mut().http.push(factory.stats());
                Box::new(factory)
            }),
        });
    }
}

/// Validates what the plan says beyond syntax (`--check-config`, and at
/// start): redirect hosts, quotas, CIDRs.
pub fn check(plan: &Plan) -> Result<(), String> {
    for h in &plan.http {
        let mut config = http_config(h, plan);
        if config.redirect.target_port == 0 {
            // Filled in with the HTTPS listener's bound port at start.
            config.redirect.target_port = 443;
        }
        config
            .validate()
            .map_err(|e| format!("http listener on port {}: {e}", h.endpoint.port))?;
    }
    for w in &plan.websocket {
        ws_config(w)?;
    }
    for g in &plan.gemini {
        gemini_config(g)
            .validate()
            .map_err(|e| format!("gemini listener on port {}: {e}", g.endpoint.port))?;
    }
    let endpoints = plan
        .echo
        .iter()
        .chain(plan.gemini.iter().map(|g| &g.endpoint))
        .chain(plan.http.iter().map(|h| &h.endpoint))
        .chain(plan.websocket.iter().map(|w| &w.endpoint));
    for e in endpoints {
        crate::run::gate_for("check", e, plan)?;
    }
    Ok(())
}

/// A configuration that `check` accepted but a factory refused: a bug, not
/// bad input. Logged and the process stops rather than serving wrongly.
fn unreachable_config(e: impl std::fmt::Display) -> ! {
    log::error!("configuration accepted by check() was refused later: {e}");
    std::process::exit(2);
}
