//! The configuration file (`--config torsion.toml`): everything the flags
//! cannot say — several listeners per protocol, virtual hosts, gate quotas,
//! timeouts. Flags override the file. Unknown keys and bad values are
//! errors naming the file, the key and the line.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Process-wide settings.
    #[serde(default)]
    pub server: ServerSection,
    /// The default certificate for every TLS listener.
    #[serde(default)]
    pub tls: TlsSection,
    /// Accept-time limits shared by all listeners (per-listener quotas are
    /// in each listener's table).
    #[serde(default)]
    pub gate: GateSection,
    /// Echo listeners (`[[echo]]`).
    #[serde(default)]
    pub echo: Vec<EchoListener>,
    /// Gemini listeners (`[[gemini]]`).
    #[serde(default)]
    pub gemini: Vec<GeminiListener>,
    /// HTTP redirect listeners (`[[http]]`).
    #[serde(default)]
    pub http: Vec<HttpListener>,
    /// WebSocket listeners (`[[websocket]]`).
    #[serde(default)]
    pub websocket: Vec<WebSocketListener>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Reactors (threads) to run, each with its own `SO_REUSEPORT` sockets.
    pub workers: Option<usize>,
    /// Grace period for open connections after SIGINT/SIGTERM.
    #[serde(default, deserialize_with = "opt_duration")]
    pub shutdown_timeout: Option<Duration>,
    /// Where generated certificates are kept.
    pub state_dir: Option<PathBuf>,
    /// Write the process id here once every listener is open.
    pub pid_file: Option<PathBuf>,
    /// Drop root privileges to this user after binding (`--user`).
    pub user: Option<String>,
    /// ...and to this group (`--group`; default: the user's primary group).
    pub group: Option<String>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain (Jetforce's `--tls-certfile`).
    pub certfile: Option<PathBuf>,
    /// PEM private key (Jetforce's `--tls-keyfile`).
    pub keyfile: Option<PathBuf>,
    /// CA certificate(s) authorising client certificates (`--tls-cafile`).
    pub cafile: Option<PathBuf>,
    /// Directory of CA certificates (`--tls-capath`).
    pub capath: Option<PathBuf>,
    /// TLS handshake deadline.
    #[serde(default, deserialize_with = "opt_duration")]
    pub handshake_timeout: Option<Duration>,
}

/// `[gate]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    /// Addresses or CIDRs never rate limited or capped.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Concurrent connections per client (0 = no cap).
    pub max_conns_per_ip: Option<usize>,
    /// Global connection cap (0 = derived from `RLIMIT_NOFILE`).
    pub max_conns: Option<usize>,
    /// IPv6 clients are keyed by this prefix length.
    pub ipv6_prefix: Option<u8>,
}

/// Defines a listener table: the settings every listener accepts (address,
/// gate, PROXY protocol) plus its own. A macro rather than
/// `#[serde(flatten)]`, because flattening makes toml report errors at the
/// table header instead of the offending key's line.
macro_rules! listener_table {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Address to bind: an IP, a name, `""` for all interfaces.
            pub host: Option<String>,
            /// Port to bind (0: any free port).
            pub port: Option<u16>,
            /// Jetforce-style quota, e.g. `60/5m`.
            pub rate_limit: Option<String>,
            /// Burst for the quota (default: the quota's count).
            pub rate_burst: Option<u32>,
            /// What a client over quota gets: `reply` or `drop`.
            pub refusal: Option<String>,
            /// Expect a PROXY protocol (v1 or v2) header on every connection.
            #[serde(default)]
            pub proxy_protocol: bool,
            /// Proxies allowed to send PROXY headers.
            #[serde(default)]
            pub proxy_from: Vec<String>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// The settings shared by every listener table.
            pub fn common(&self) -> Common<'_> {
                Common {
                    host: self.host.as_deref(),
                    port: self.port,
                    rate_limit: self.rate_limit.as_deref(),
                    rate_burst: self.rate_burst,
                    refusal: self.refusal.as_deref(),
                    proxy_protocol: self.proxy_protocol,
                    proxy_from: &self.proxy_from,
                }
            }
        }
    };
}

/// The settings every listener table accepts, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Common<'a> {
    /// See the listener tables.
    pub host: Option<&'a str>,
    /// See the listener tables.
    pub port: Option<u16>,
    /// See the listener tables.
    pub rate_limit: Option<&'a str>,
    /// See the listener tables.
    pub rate_burst: Option<u32>,
    /// See the listener tables.
    pub refusal: Option<&'a str>,
    /// See the listener tables.
    pub proxy_protocol: bool,
    /// See the listener tables.
    pub proxy_from: &'a [String],
}

listener_table! {
    /// `[[echo]]`
    EchoListener {}
}

listener_table! {
    /// `[[gemini]]`
    GeminiListener {
        /// The capsule's host name (Jetforce's `--hostname`).
        hostname: Option<String>,
        /// Root directory (`--dir`).
        dir: Option<PathBuf>,
        /// CGI directory relative to the root (`--cgi-dir`).
        cgi_dir: Option<String>,
        /// Index file name (`--index-file`).
        index_file: Option<String>,
        /// `lang` for text/gemini (`--default-lang`).
        default_lang: Option<String>,
        /// CGI scripts running longer are killed.
        #[serde(default, deserialize_with = "opt_duration")]
        cgi_timeout: Option<Duration>,
        /// A request line must arrive within this long.
        #[serde(default, deserialize_with = "opt_duration")]
        request_timeout: Option<Duration>,
        /// Virtual hosts (`[[gemini.vhost]]`).
        #[serde(default)]
        vhost: Vec<VirtualHost>,
    }
}

/// `[[gemini.vhost]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// Host name(s) this virtual host answers to.
    pub hostname: Vec<String>,
    /// Its root directory.
    pub dir: PathBuf,
    /// Its CGI directory relative to its root.
    pub cgi_dir: Option<String>,
    /// Its index file name.
    pub index_file: Option<String>,
    /// Its `lang`.
    pub default_lang: Option<String>,
    /// Its certificate (chosen by SNI); default: generated for its names.
    pub certfile: Option<PathBuf>,
    /// Its key.
    pub keyfile: Option<PathBuf>,
}

listener_table! {
    /// `[[http]]`
    HttpListener {
        /// 301 (default) or 308.
        redirect_code: Option<u16>,
        /// Always redirect to this host name.
        redirect_host: Option<String>,
        /// The HTTPS port to redirect to (default: the first WebSocket/HTTPS
        /// listener's port).
        redirect_port: Option<u16>,
        /// Serve `/.well-known/acme-challenge/` from here.
        acme_dir: Option<PathBuf>,
        /// A request head must be complete this long after its first byte.
        #[serde(default, deserialize_with = "opt_duration")]
        head_timeout: Option<Duration>,
        /// A keep-alive connection may sit idle (or a body trickle) this long.
        #[serde(default, deserialize_with = "opt_duration")]
        idle_timeout: Option<Duration>,
        /// After an error answer, unread input is drained for this long.
        #[serde(default, deserialize_with = "opt_duration")]
        linger: Option<Duration>,
        /// Requests answered on one connection before it is closed.
        max_requests: Option<u32>,
    }
}

listener_table! {
    /// `[[websocket]]`
    WebSocketListener {
        /// Serve ws:// (no TLS), e.g. behind a proxy.
        #[serde(default)]
        plain: bool,
        /// Allowed `Origin`s (`*` for any).
        #[serde(default)]
        origins: Vec<String>,
        /// Largest message accepted, in bytes.
        max_message: Option<usize>,
        /// Text written to this file is pushed to every `/chat` client.
        broadcast_file: Option<PathBuf>,
        /// Idle connections are pinged this often.
        #[serde(default, deserialize_with = "opt_duration")]
        ping_interval: Option<Duration>,
    }
}

/// Why a configuration file could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type,
    /// bad value); the message names the key and line.
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, with line, column and a snippet.
        message: String,
    },
    /// A value parsed but makes no sense (e.g. an unknown refusal policy).
    Invalid {
        /// The file (or `command line`).
        path: PathBuf,
        /// The key, dotted (`gemini[0].refusal`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(f, "{}: {source}", path.display()),
            ConfigError::Parse { path, message } => write!(f, "{}: {message}", path.display()),
            ConfigError::Invalid { path, key, message } => {
                write!(f, "{}: {key}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses a configuration file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses configuration text (`path` is only used in messages).
pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    let config: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    validate(&config, path)?;
    Ok(config)
}

fn validate(config: &FileConfig, path: &Path) -> Result<(), ConfigError> {
    let invalid = |key: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let commons = config
        .echo
        .iter()
        .map(|l| ("echo", l.common()))
        .chain(config.gemini.iter().map(|l| ("gemini", l.common())))
        .chain(config.http.iter().map(|l| ("http", l.common())))
        .chain(config.websocket.iter().map(|l| ("websocket", l.common())));
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (table, common) in commons {
        let i = seen.entry(table).or_default();
        let key = |field: &str| format!("{table}[{i}].{field}");
        if let Some(r) = common.refusal {
            if r != "reply" && r != "drop" {
                return Err(invalid(
                    key("refusal"),
                    format!("{r:?} is not \"reply\" or \"drop\""),
                ));
            }
        }
        if common.proxy_protocol && common.proxy_from.is_empty() {
            return Err(invalid(
                key("proxy_from"),
                "proxy_protocol is on, so list the proxies allowed to send headers".into(),
            ));
        }
        *i += 1;
    }
    for (i, l) in config.http.iter().enumerate() {
        if let Some(code) = l.redirect_code {
            if code != 301 && code != 308 {
                return Err(invalid(
                    format!("http[{i}].redirect_code"),
                    format!("{code} is not 301 or 308"),
                ));
            }
        }
    }
    if config.server.workers == Some(0) {
        return Err(invalid(
            "server.workers".into(),
            "must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Parses a duration like `10s`, `500ms`, `5m`, `1h`, or a bare number of
/// seconds (`2.5`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let value: f64 = num.trim().parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return None,
    };
    if !seconds.is_finite() || !(0.0..=31_536_000.0).contains(&seconds) {
        return None;
    }
    Some(Duration::from_secs_f64(seconds))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration like \"10s\", \"500ms\", \"5m\""
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<FileConfig, ConfigError> {
        parse(text, Path::new("test.toml"))
    }

    #[test]
    fn example_config_parses() {
        let text = include_str!("../torsion.example.toml");
        let c = parse_str(text).expect("torsion.example.toml must parse");
        assert!(!c.gemini.is_empty());
        assert!(!c.http.is_empty());
        assert!(!c.websocket.is_empty());
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let err = parse_str("[server]\nworkers = 1\n\n[[gemini]]\nprot = 1965\n")
            .expect_err("unknown key must fail")
            .to_string();
        assert!(err.contains("test.toml"), "{err}");
        assert!(err.contains("prot"), "{err}");
        assert!(err.contains("line 5"), "{err}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let err = parse_str("[[gemini]]\nport = 99999\n")
            .expect_err("bad port")
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse_str("[[http]]\nredirect_code = 302\n")
            .expect_err("bad code")
            .to_string();
        assert!(err.contains("http[0].redirect_code"), "{err}");
        let err = parse_str("[server]\nshutdown_timeout = \"soon\"\n")
            .expect_err("bad duration")
            .to_string();
        assert!(err.contains("line 2") && err.contains("soon"), "{err}");
    }

    #[test]
    fn http_timeouts_and_request_limit() {
        let c = parse_str(
            "[[http]]\nhead_timeout = \"3s\"\nidle_timeout = \"1m\"\n\
             linger = \"500ms\"\nmax_requests = 10\n",
        )
        .unwrap();
        let h = &c.http[0];
        assert_eq!(h.head_timeout, Some(Duration::from_secs(3)));
        assert_eq!(h.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(h.linger, Some(Duration::from_millis(500)));
        assert_eq!(h.max_requests, Some(10));
        let err = parse_str("[[http]]\nlinger = 2\n")
            .expect_err("a number is not a duration")
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn server_user_and_group() {
        let c = parse_str("[server]\nuser = \"nobody\"\ngroup = \"nogroup\"\n").unwrap();
        assert_eq!(c.server.user.as_deref(), Some("nobody"));
        assert_eq!(c.server.group.as_deref(), Some("nogroup"));
        let err = parse_str("[server]\nuser = 65534\n")
            .expect_err("a number is not a name")
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2.5"), Some(Duration::from_millis(2500)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration(""), None);
    }
}
