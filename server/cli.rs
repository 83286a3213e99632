//! The command line: every flag defined once, in one table that drives both
//! parsing and `--help`. Jetforce's flags work unchanged, so a Jetforce
//! user can switch by changing the command name.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::parse_duration;

/// What the command line said. `None` means "not given": the config file
/// or the default decides.
#[derive(Debug, Default)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub check_config: bool,
    // Gemini (Jetforce's flags).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub hostname: Option<String>,
    pub tls_certfile: Option<PathBuf>,
    pub tls_keyfile: Option<PathBuf>,
    pub tls_cafile: Option<PathBuf>,
    pub tls_capath: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub cgi_dir: Option<String>,
    pub index_file: Option<String>,
    pub default_lang: Option<String>,
    pub rate_limit: Option<String>,
    pub proxy_protocol: bool,
    pub proxy_from: Vec<String>,
    pub no_gemini: bool,
    // HTTP redirect.
    pub http_host: Option<String>,
    pub http_port: Option<u16>,
    pub no_http: bool,
    pub redirect_code: Option<u16>,
    pub redirect_host: Option<String>,
    pub redirect_port: Option<u16>,
    pub acme_dir: Option<PathBuf>,
    // WebSocket / HTTPS.
    pub ws_host: Option<String>,
    pub ws_port: Option<u16>,
    pub ws_plain: bool,
    pub no_ws: bool,
    pub ws_origins: Vec<String>,
    pub ws_max_message: Option<usize>,
    pub broadcast_file: Option<PathBuf>,
    // Echo.
    pub echo: Vec<String>,
    // Process.
    pub workers: Option<usize>,
    pub shutdown_timeout: Option<Duration>,
    pub state_dir: Option<PathBuf>,
    pub gate_allow: Vec<String>,
    pub max_conns_per_ip: Option<usize>,
    pub max_conns: Option<usize>,
    pub pid_file: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
}

/// What to do instead of serving.
#[derive(Debug)]
pub enum Action {
    /// Serve (or check the configuration) with these options.
    Serve(Box<Options>),
    /// Print this text to stdout and exit 0 (`--help`, `--version`).
    Print(String),
}

pub use crate::flags::UsageError;
use crate::flags::{flag, Flag};

const GEMINI: &str = "Gemini (Jetforce-compatible)";
const HTTP: &str = "HTTP redirect";
const WS: &str = "HTTPS / WebSocket";
const PROCESS: &str = "Process";

/// The flag table: the single source for parsing and for `--help`.
const FLAGS: &[Flag] = &[
    flag("host", Some("HOST"), GEMINI, "Gemini listen address: an IP, a name, \"\" for all interfaces, \"::\" for IPv6 (dual-stack) [default: 127.0.0.1]"),
    flag("port", Some("PORT"), GEMINI, "Gemini port [default: 1965]"),
    flag("hostname", Some("NAME"), GEMINI, "The capsule's host name: requests for other hosts get 53, and the generated certificate is made for it [default: localhost]"),
    flag("tls-certfile", Some("FILE"), GEMINI, "PEM certificate chain for every TLS listener [default: generated once and kept in the state directory]"),
    flag("tls-keyfile", Some("FILE"), GEMINI, "PEM private key (PKCS#8, PKCS#1 or SEC1) [default: generated]"),
    flag("tls-cafile", Some("FILE"), GEMINI, "PEM CA certificate(s): client certificates signed by them are reported as authorised"),
    flag("tls-capath", Some("DIR"), GEMINI, "Directory of PEM/DER CA certificates, as --tls-cafile"),
    flag("dir", Some("DIR"), GEMINI, "Root directory of the capsule [default: /var/gemini; if it does not exist and --dir was not given, a small capsule built into the binary is served]"),
    flag("cgi-dir", Some("DIR"), GEMINI, "CGI directory, relative to --dir [default: cgi-bin]"),
    flag("index-file", Some("NAME"), GEMINI, "File served for a directory [default: index.gmi]"),
    flag("default-lang", Some("LANG"), GEMINI, "Adds `; lang=LANG` to text/gemini responses"),
    flag("rate-limit", Some("QUOTA"), GEMINI, "Per-client connection quota on the Gemini listener, Jetforce syntax: 60/5m, 10/s, 1000/1h"),
    flag("proxy-protocol", None, GEMINI, "Expect a PROXY protocol header (v1 or v2, as HAProxy's send-proxy or nginx's proxy_protocol send) on every Gemini connection: the gate, logs and CGI see the client it names; connections without one are closed. Needs --proxy-from"),
    flag("proxy-from", Some("CIDR"), GEMINI, "A proxy allowed to send PROXY headers (repeatable), e.g. 127.0.0.1/32; connections from anywhere else are closed"),
    flag("no-gemini", None, GEMINI, "Do not run the Gemini listener"),
    flag("http-host", Some("HOST"), HTTP, "HTTP redirect listen address [default: 127.0.0.1]"),
    flag("http-port", Some("PORT"), HTTP, "HTTP redirect port [default: 8080]"),
    flag("no-http", None, HTTP, "Do not run the HTTP redirect listener"),
    flag("redirect-code", Some("301|308"), HTTP, "Redirect status; 308 keeps the method [default: 301]"),
    flag("redirect-host", Some("NAME"), HTTP, "Always redirect to this host name, whatever the request's Host says"),
    flag("redirect-port", Some("PORT"), HTTP, "HTTPS port to redirect to [default: --ws-port]"),
    flag("acme-dir", Some("DIR"), HTTP, "Serve /.well-known/acme-challenge/<token> from DIR (Let's Encrypt http-01)"),
    flag("ws-host", Some("HOST"), WS, "HTTPS/WebSocket listen address [default: 127.0.0.1]"),
    flag("ws-port", Some("PORT"), WS, "HTTPS/WebSocket port [default: 8443]"),
    flag("ws-plain", None, WS, "Serve ws:// and http:// on that listener, without TLS (behind a proxy, or for tests)"),
    flag("no-ws", None, WS, "Do not run the HTTPS/WebSocket listener"),
    flag("ws-origins", Some("ORIGIN"), WS, "Allowed browser Origin (repeatable; * allows any) [default: the listener's own origin]"),
    flag("ws-max-message", Some("BYTES"), WS, "Largest WebSocket message accepted [default: 1048576]"),
    flag("broadcast-file", Some("FILE"), WS, "Text written to FILE is pushed to every /chat client"),
    flag("echo", Some("ADDR"), PROCESS, "Also run an echo listener (RFC 862) on ADDR, e.g. 127.0.0.1:7000 (repeatable)"),
    flag("config", Some("FILE"), PROCESS, "Read settings from a TOML file (see torsion.example.toml); flags override it"),
    flag("check-config", None, PROCESS, "Validate the configuration (file and flags) and exit"),
    flag("workers", Some("N"), PROCESS, "Reactors (threads) to run, each with its own SO_REUSEPORT sockets [default: 1]"),
    flag("shutdown-timeout", Some("DURATION"), PROCESS, "After SIGINT/SIGTERM, let open connections finish for up to this long (\"10s\", \"500ms\") [default: 10s]"),
    flag("state-dir", Some("DIR"), PROCESS, "Where generated certificates are kept [default: $STATE_DIRECTORY, $XDG_STATE_HOME/torsion or ~/.local/state/torsion]"),
    flag("gate-allow", Some("CIDR"), PROCESS, "Never rate limit or cap these clients (repeatable), e.g. 10.0.0.0/8"),
    flag("max-conns-per-ip", Some("N"), PROCESS, "Concurrent connections per client (IPv6: per /64); 0 = no cap [default: 256]"),
    flag("max-conns", Some("N"), PROCESS, "Global connection cap; 0 = derived from RLIMIT_NOFILE [default: 0]"),
    flag("pid-file", Some("FILE"), PROCESS, "Write the process id to FILE once every listener is open (removed at exit when still possible)"),
    flag("user", Some("NAME"), PROCESS, "After binding every listener and reading the certificates, drop root privileges to this user (name or uid), in every thread"),
    flag("group", Some("NAME"), PROCESS, "Group to switch to with --user (name or gid) [default: the user's primary group]"),
    Flag { long: "help", short: Some('h'), value: None, group: PROCESS, help: "Print this help" },
    Flag { long: "version", short: Some('V'), value: None, group: PROCESS, help: "Print the version" },
];

fn help_text() -> String {
    let mut s = format!(
        "torsion {} — Gemini, HTTPS redirect and WebSocket from one small, single-threaded reactor\n\n\
         USAGE:\n  torsion [OPTIONS]            serve (with no options: Gemini on 1965, HTTPS/WSS on 8443,\n                               HTTP on 8080 redirecting to it, all on 127.0.0.1)\n  torsion bench URL [OPTIONS]  load generator (see `torsion bench --help`)\n",
        env!("CARGO_PKG_VERSION")
    );
    crate::flags::write_help(FLAGS, &mut s);
    s.push_str(
        "\nENVIRONMENT:\n  RUST_LOG    log filter (env_logger syntax) [default: info]\n\
         \x20 LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES\n              systemd socket activation: inherited sockets (fd 3 onwards) replace the\n              listeners they match by name (gemini, http, https, ws, echo) or port\n\
         \nSIGNALS:\n  SIGINT, SIGTERM  stop accepting, finish open connections (up to --shutdown-timeout), exit 0\n  SIGHUP           reload certificates without dropping connections\n\
         \nEXIT CODES:\n  0  stopped cleanly (or --check-config found no problem)\n  1  could not start (a port in use, unreadable certificate, failed privilege drop), or failed while running\n  2  bad command line or configuration (an unknown key, value, --user or --group)\n",
    );
    s
}

fn parse_port(flag: &str, v: &str) -> Result<u16, UsageError> {
    v.parse()
        .map_err(|_| UsageError(format!("--{flag}: {v:?} is not a port (0-65535)")))
}

fn parse_count(flag: &str, v: &str) -> Result<usize, UsageError> {
    v.parse()
        .map_err(|_| UsageError(format!("--{flag}: {v:?} is not a number")))
}

/// Parses the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action, UsageError> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut o = Options::default();
    let err = |e: lexopt::Error| UsageError(e.to_string());
    while let Some(arg) = parser.next().map_err(err)? {
        let name = match &arg {
            Long(l) => l.to_string(),
            Short('h') => "help".into(),
            Short('V') => "version".into(),
            _ => return Err(UsageError(arg.unexpected().to_string())),
        };
        let Some(spec) = crate::flags::find(FLAGS, &name) else {
            return Err(UsageError(arg.unexpected().to_string()));
        };
        let value = match spec.value {
            Some(_) => Some(parser.value().map_err(err)?.string().map_err(err)?),
            None => None,
        };
        let v = value.clone().unwrap_or_default();
        match spec.long {
            "help" => return Ok(Action::Print(help_text())),
            "version" => {
                return Ok(Action::Print(format!(
                    "torsion {}\n",
                    env!("CARGO_PKG_VERSION")
                )))
            }
            "config" => o.config = Some(v.into()),
            "check-config" => o.check_config = true,
            "host" => o.host = Some(v),
            "port" => o.port = Some(parse_port("port", &v)?),
            "hostname" => o.hostname = Some(v),
            "tls-certfile" => o.tls_certfile = Some(v.into()),
            "tls-keyfile" => o.tls_keyfile = Some(v.into()),
            "tls-cafile" => o.tls_cafile = Some(v.into()),
            "tls-capath" => o.tls_capath = Some(v.into()),
            "dir" => o.dir = Some(v.into()),
            "cgi-dir" => o.cgi_dir = Some(v),
            "index-file" => o.index_file = Some(v),
            "default-lang" => o.default_lang = Some(v),
            "rate-limit" => o.rate_limit = Some(v),
            "proxy-protocol" => o.proxy_protocol = true,
            "proxy-from" => o.proxy_from.push(v),
            "no-gemini" => o.no_gemini = true,
            "http-host" => o.http_host = Some(v),
            "http-port" => o.http_port = Some(parse_port("http-port", &v)?),
            "no-http" => o.no_http = true,
            "redirect-code" => {
                let code: u16 = v.parse().unwrap_or(0);
                if code != 301 && code != 308 {
                    return Err(UsageError(format!(
                        "--redirect-code: {v:?} is not 301 or 308"
                    )));
                }
                o.redirect_code = Some(code);
            }
            "redirect-host" => o.redirect_host = Some(v),
            "redirect-port" => o.redirect_port = Some(parse_port("redirect-port", &v)?),
            "acme-dir" => o.acme_dir = Some(v.into()),
            "ws-host" => o.ws_host = Some(v),
            "ws-port" => o.ws_port = Some(parse_port("ws-port", &v)?),
            "ws-plain" => o.ws_plain = true,
            "no-ws" => o.no_ws = true,
            "ws-origins" => o.ws_origins.push(v),
            "ws-max-message" => o.ws_max_message = Some(parse_count("ws-max-message", &v)?),
            "broadcast-file" => o.broadcast_file = Some(v.into()),
            "echo" => o.echo.push(v),
            "workers" => {
                let n = parse_count("workers", &v)?;
                if n == 0 {
                    return Err(UsageError("--workers: must be at least 1".into()));
                }
                o.workers = Some(n);
            }
            "shutdown-timeout" => {
                o.shutdown_timeout = Some(parse_duration(&v).ok_or_else(|| {
                    UsageError(format!(
                        "--shutdown-timeout: {v:?} is not a duration like 10s or 500ms"
                    ))
                })?)
            }
            "state-dir" => o.state_dir = Some(v.into()),
            "gate-allow" => o.gate_allow.push(v),
            "max-conns-per-ip" => o.max_conns_per_ip = Some(parse_count("max-conns-per-ip", &v)?),
            "max-conns" => o.max_conns = Some(parse_count("max-conns", &v)?),
            "pid-file" => o.pid_file = Some(v.into()),
            "user" => o.user = Some(v),
            "group" => o.group = Some(v),
            other => return Err(UsageError(format!("--{other} is not handled (a bug)"))),
        }
    }
    Ok(Action::Serve(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    fn serve(a: &[&str]) -> Options {
        match parse(args(a)) {
            Ok(Action::Serve(o)) => *o,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn no_arguments_means_defaults() {
        let o = serve(&[]);
        assert!(o.host.is_none() && o.port.is_none() && o.echo.is_empty());
        assert!(!o.no_gemini && !o.no_http && !o.no_ws);
    }

    #[test]
    fn jetforce_flags_parse() {
        let o = serve(&[
            "--host",
            "",
            "--port",
            "1966",
            "--hostname",
            "example.org",
            "--tls-certfile",
            "c.pem",
            "--tls-keyfile",
            "k.pem",
            "--tls-cafile",
            "ca.pem",
            "--tls-capath",
            "ca.d",
            "--dir",
            "/srv/gemini",
            "--cgi-dir",
            "cgi",
            "--index-file",
            "home.gmi",
            "--default-lang",
            "en",
            "--rate-limit",
            "60/5m",
        ]);
        assert_eq!(o.host.as_deref(), Some(""));
        assert_eq!(o.port, Some(1966));
        assert_eq!(o.hostname.as_deref(), Some("example.org"));
        assert_eq!(o.rate_limit.as_deref(), Some("60/5m"));
        assert_eq!(o.index_file.as_deref(), Some("home.gmi"));
    }

    #[test]
    fn user_and_group_parse() {
        let o = serve(&[
            "--user",
            "nobody",
            "--group",
            "nogroup",
            "--pid-file",
            "/run/t.pid",
        ]);
        assert_eq!(o.user.as_deref(), Some("nobody"));
        assert_eq!(o.group.as_deref(), Some("nogroup"));
        assert_eq!(o.pid_file, Some(PathBuf::from("/run/t.pid")));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            &["--port", "70000"][..],
            &["--redirect-code", "302"],
            &["--shutdown-timeout", "soon"],
            &["--workers", "0"],
            &["--bogus"],
            &["--port"],
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn help_lists_every_flag() {
        let Ok(Action::Print(h)) = parse(args(&["--help"])) else {
            panic!("expected help")
        };
        for f in FLAGS {
            assert!(h.contains(&format!("--{}", f.long)), "{} missing", f.long);
        }
    }
}
