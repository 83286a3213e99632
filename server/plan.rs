//! Turns the command line and the config file into one plan: which
//! listeners, with what settings. Flags override the file; for a protocol
//! with several listeners in the file, the flags apply to the first.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::Options;
use crate::config::{Common, ConfigError, FileConfig};
use crate::tls_setup::{default_state_dir, TlsOptions};

/// Default Gemini port (the protocol's registered port).
pub const GEMINI_PORT: u16 = 1965;
/// Default HTTP redirect port (8080, not 80, so it runs without root).
pub const HTTP_PORT: u16 = 8080;
/// Default HTTPS/WebSocket port (8443, not 443, likewise).
pub const WS_PORT: u16 = 8443;
/// Default listen address: loopback, so a first run exposes nothing.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Jetforce's default root directory.
pub const DEFAULT_DIR: &str = "/var/gemini";

/// Settings shared by every kind of listener.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// Host as given (`""` = all interfaces).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Jetforce-style quota.
    pub rate_limit: Option<String>,
    /// Quota burst.
    pub rate_burst: Option<u32>,
    /// `reply` or `drop`.
    pub refusal: Option<String>,
    /// Expect a PROXY protocol header (v1 or v2) on every connection.
    pub proxy_protocol: bool,
    /// The proxies (addresses or CIDRs) allowed to send PROXY headers.
    pub proxy_from: Vec<String>,
}

/// A Gemini virtual host.
#[derive(Debug, Clone)]
pub struct VhostPlan {
    pub hostnames: Vec<String>,
    pub dir: PathBuf,
    pub cgi_dir: Option<String>,
    pub index_file: Option<String>,
    pub default_lang: Option<String>,
    pub cert: Option<(PathBuf, PathBuf)>,
}

/// A Gemini listener.
#[derive(Debug, Clone)]
pub struct GeminiPlan {
    pub endpoint: Endpoint,
    pub hostname: String,
    /// `None`: serve the capsule built into the binary.
    pub dir: Option<PathBuf>,
    pub cgi_dir: Option<String>,
    pub index_file: Option<String>,
    pub default_lang: Option<String>,
    pub cgi_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub vhosts: Vec<VhostPlan>,
}

/// An HTTP redirect listener.
#[derive(Debug, Clone)]
pub struct HttpPlan {
    pub endpoint: Endpoint,
    pub redirect_code: u16,
    pub redirect_host: Option<String>,
    /// `None`: the port the first HTTPS listener actually serves on (it
    /// may be 0 in the plan, or a socket inherited from systemd on another
    /// port), else 443.
    pub redirect_port: Option<u16>,
    pub acme_dir: Option<PathBuf>,
    /// Timeouts and the per-connection request limit; `None` keeps the
    /// protocol's default.
    pub head_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub linger: Option<Duration>,
    pub max_requests: Option<u32>,
}

/// An HTTPS/WebSocket listener.
#[derive(Debug, Clone)]
pub struct WsPlan {
    pub endpoint: Endpoint,
    pub plain: bool,
    pub origins: Vec<String>,
    pub max_message: Option<usize>,
    pub broadcast_file: Option<PathBuf>,
    pub ping_interval: Option<Duration>,
}

/// Everything the binary will run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: usize,
    pub shutdown_timeout: Duration,
    pub pid_file: Option<PathBuf>,
    /// Drop root privileges to this user after binding (`--user`).
    pub user: Option<String>,
    /// ...and this group (`--group`).
    pub group: Option<String>,
    pub tls: TlsOptions,
    pub handshake_timeout: Option<Duration>,
    pub gate_allow: Vec<String>,
    pub max_conns_per_ip: Option<usize>,
    pub max_conns: Option<usize>,
    pub ipv6_prefix: Option<u8>,
    pub gemini: Vec<GeminiPlan>,
    pub http: Vec<HttpPlan>,
    pub websocket: Vec<WsPlan>,
    pub echo: Vec<Endpoint>,
}

fn endpoint(host: Option<&str>, port: Option<u16>, default_port: u16) -> Endpoint {
    Endpoint {
        host: host.unwrap_or(DEFAULT_HOST).to_string(),
        port: port.unwrap_or(default_port),
        ..Endpoint::default()
    }
}

/// The endpoint a listener table of the config file describes.
fn from_table(c: Common<'_>, default_port: u16) -> Endpoint {
    Endpoint {
        rate_limit: c.rate_limit.map(str::to_string),
        rate_burst: c.rate_burst,
        refusal: c.refusal.map(str::to_string),
        proxy_protocol: c.proxy_protocol,
        proxy_from: c.proxy_from.to_vec(),
        ..endpoint(c.host, c.port, default_port)
    }
}

/// Builds the plan. `file` is the parsed `--config` file, if any.
pub fn make(o: &Options, file: Option<FileConfig>) -> Result<Plan, ConfigError> {
    let file = file.unwrap_or_default();
    let state_dir = o
        .state_dir
        .clone()
        .or(file.server.state_dir.clone())
        .unwrap_or_else(default_state_dir);

    // Gemini: the file's tables, else one listener; flags patch the first.
    let mut gemini: Vec<GeminiPlan> = file
        .gemini
        .iter()
        .map(|g| {
            let c = g.common();
            GeminiPlan {
                endpoint: from_table(c, GEMINI_PORT),
                hostname: g.hostname.clone().unwrap_or_else(|| "localhost".into()),
                dir: g.dir.clone(),
                cgi_dir: g.cgi_dir.clone(),
                index_file: g.index_file.clone(),
                default_lang: g.default_lang.clone(),
                cgi_timeout: g.cgi_timeout,
                request_timeout: g.request_timeout,
                vhosts: g
                    .vhost
                    .iter()
                    .map(|v| VhostPlan {
                        hostnames: v.hostname.clone(),
                        dir: v.dir.clone(),
                        cgi_dir: v.cgi_dir.clone(),
                        index_file: v.index_file.clone(),
                        default_lang: v.default_lang.clone(),
                        cert: v.certfile.clone().zip(v.keyfile.clone()),
                    })
                    .collect(),
            }
        })
        .collect();
    if gemini.is_empty() {
        gemini.push(GeminiPlan {
            endpoint: endpoint(None, None, GEMINI_PORT),
            hostname: "localhost".into(),
            dir: None,
            cgi_dir: None,
            index_file: None,
            default_lang: None,
            cgi_timeout: None,
            request_timeout: None,
            vhosts: Vec::new(),
        });
    }
    if let Some(g) = gemini.first_mut() {
        if let Some(h) = &o.host {
            g.endpoint.host = h.clone();
        }
        if let Some(p) = o.port {
            g.endpoint.port = p;
        }
        if let Some(h) = &o.hostname {
            g.hostname = h.clone();
        }
        if let Some(d) = &o.dir {
            g.dir = Some(d.clone());
        } else if g.dir.is_none() {
            // Jetforce's default; absent on most hosts, and then the
            // built-in capsule is served instead (and the log says so).
            let default = PathBuf::from(DEFAULT_DIR);
            g.dir = default.is_dir().then_some(default);
        }
        if o.cgi_dir.is_some() {
            g.cgi_dir = o.cgi_dir.clone();
        }
        if o.index_file.is_some() {
            g.index_file = o.index_file.clone();
        }
        if o.default_lang.is_some() {
            g.default_lang = o.default_lang.clone();
        }
        if o.rate_limit.is_some() {
            g.endpoint.rate_limit = o.rate_limit.clone();
        }
        g.endpoint.proxy_protocol |= o.proxy_protocol;
        if !o.proxy_from.is_empty() {
            g.endpoint.proxy_from = o.proxy_from.clone();
        }
    }
    if o.no_gemini {
        gemini.clear();
    }

    // HTTPS / WebSocket.
    let mut websocket: Vec<WsPlan> = file
        .websocket
        .iter()
        .map(|w| {
            let c = w.common();
            WsPlan {
                endpoint: from_table(c, WS_PORT),
                plain: w.plain,
                origins: w.origins.clone(),
                max_message: w.max_message,
                broadcast_file: w.broadcast_file.clone(),
                ping_interval: w.ping_interval,
            }
        })
        .collect();
    if websocket.is_empty() {
        websocket.push(WsPlan {
            endpoint: endpoint(None, None, WS_PORT),
            plain: false,
            origins: Vec::new(),
            max_message: None,
            broadcast_file: None,
            ping_interval: None,
        });
    }
    if let Some(w) = websocket.first_mut() {
        if let Some(h) = &o.ws_host {
            w.endpoint.host = h.clone();
        }
        if let Some(p) = o.ws_port {
            w.endpoint.port = p;
        }
        w.plain |= o.ws_plain;
        if !o.ws_origins.is_empty() {
            w.origins = o.ws_origins.clone();
        }
        if o.ws_max_message.is_some() {
            w.max_message = o.ws_max_message;
        }
        if o.broadcast_file.is_some() {
            w.broadcast_file = o.broadcast_file.clone();
        }
    }
    if o.no_ws {
        websocket.clear();
    }

    // HTTP redirect.
    let mut http: Vec<HttpPlan> = file
        .http
        .iter()
        .map(|h| {
            let c = h.common();
            HttpPlan {
                endpoint: from_table(c, HTTP_PORT),
                redirect_code: h.redirect_code.unwrap_or(301),
                redirect_host: h.redirect_host.clone(),
                redirect_port: h.redirect_port,
                acme_dir: h.acme_dir.clone(),
                head_timeout: h.head_timeout,
                idle_timeout: h.idle_timeout,
                linger: h.linger,
                max_requests: h.max_requests,
            }
        })
        .collect();
    if http.is_empty() {
        http.push(HttpPlan {
            endpoint: endpoint(None, None, HTTP_PORT),
            redirect_code: 301,
            redirect_host: None,
            redirect_port: None,
            acme_dir: None,
            head_timeout: None,
            idle_timeout: None,
            linger: None,
            max_requests: None,
        });
    }
    if let Some(h) = http.first_mut() {
        if let Some(v) = &o.http_host {
            h.endpoint.host = v.clone();
        }
        if let Some(p) = o.http_port {
            h.endpoint.port = p;
        }
        if let Some(c) = o.redirect_code {
            h.redirect_code = c;
        }
        if o.redirect_host.is_some() {
            h.redirect_host = o.redirect_host.clone();
        }
        if o.redirect_port.is_some() {
            h.redirect_port = o.redirect_port;
        }
        if o.acme_dir.is_some() {
            h.acme_dir = o.acme_dir.clone();
        }
    }
    if o.no_http {
        http.clear();
    }
    // Echo.
    let mut echo: Vec<Endpoint> = file
        .echo
        .iter()
        .map(|e| {
            let c = e.common();
            from_table(c, 7)
        })
        .collect();
    for addr in &o.echo {
        let sa: std::net::SocketAddr = addr.parse().map_err(|_| ConfigError::Invalid {
            path: PathBuf::from("command line"),
            key: "--echo".into(),
            message: format!("{addr:?} is not an address like 127.0.0.1:7000"),
        })?;
        echo.push(Endpoint {
            host: sa.ip().to_string(),
            port: sa.port(),
            ..Endpoint::default()
        });
    }

    let hostnames: Vec<String> = {
        let mut names: Vec<String> = gemini.iter().map(|g| g.hostname.clone()).collect();
        if names.is_empty() {
            names.push("localhost".into());
        }
        names.dedup();
        names
    };
    let vhosts = gemini
        .iter()
        .flat_map(|g| g.vhosts.iter())
        .map(|v| (v.hostnames.clone(), v.cert.clone()))
        .collect();
    Ok(Plan {
        workers: o.workers.or(file.server.workers).unwrap_or(1),
        shutdown_timeout: o
            .shutdown_timeout
            .or(file.server.shutdown_timeout)
            .unwrap_or(Duration::from_secs(10)),
        pid_file: o.pid_file.clone().or(file.server.pid_file.clone()),
        user: o.user.clone().or(file.server.user.clone()),
        group: o.group.clone().or(file.server.group.clone()),
        tls: TlsOptions {
            certfile: o.tls_certfile.clone().or(file.tls.certfile.clone()),
            keyfile: o.tls_keyfile.clone().or(file.tls.keyfile.clone()),
            cafile: o.tls_cafile.clone().or(file.tls.cafile.clone()),
            capath: o.tls_capath.clone().or(file.tls.capath.clone()),
            state_dir,
            hostnames,
            vhosts,
        },
        handshake_timeout: file.tls.handshake_timeout,
        gate_allow: if o.gate_allow.is_empty() {
            file.gate.allow.clone()
        } else {
            o.gate_allow.clone()
        },
        max_conns_per_ip: o.max_conns_per_ip.or(file.gate.max_conns_per_ip),
        max_conns: o.max_conns.or(file.gate.max_conns),
        ipv6_prefix: file.gate.ipv6_prefix,
        gemini,
        http,
        websocket,
        echo,
    })
}
