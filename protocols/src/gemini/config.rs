//! Settings of a Gemini listener, with defaults, filled by the server from
//! its Jetforce-compatible command line (`--hostname --dir --cgi-dir
//! --index-file --default-lang`, one virtual host) or from the TOML config
//! file (several virtual hosts).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::host::{HostError, HostPolicy};

/// Port a Gemini server listens on unless told otherwise (the
/// specification's, Jetforce's `--port`).
pub const DEFAULT_PORT: u16 = 1965;

/// Host name served unless told otherwise (Jetforce's `--hostname`).
pub const DEFAULT_HOSTNAME: &str = "localhost";

/// Directory served unless told otherwise (Jetforce's `--dir`).
pub const DEFAULT_ROOT: &str = "/var/gemini";

/// File served for a directory URL when it exists (Jetforce's
/// `--index-file`).
pub const DEFAULT_INDEX_FILE: &str = "index.gmi";

/// Directory, relative to the root, whose executables are run as CGI
/// scripts (Jetforce's `--cgi-dir`).
pub const DEFAULT_CGI_DIR: &str = "cgi-bin";

/// Time a client has, once the TLS handshake is done, to send its whole
/// request line: a real client sends it at once; a silent or trickling peer
/// must not hold a descriptor (Jetforce 1.0 uses 10 s too).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A CGI script still running after this long is killed and the connection
/// closed (Jetforce's default), so a stuck script cannot pin a process and a
/// connection forever.
pub const DEFAULT_CGI_TIMEOUT: Duration = Duration::from_secs(30);

/// While a body is being sent, a client that takes none of it for this long
/// is dropped: a reader that stopped reading must not hold a file and a
/// descriptor forever.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes read from a file (or asked of a stream) per step while the socket
/// drains: large enough for few system calls, small enough that one
/// connection's step is short and its queue stays near the high water mark.
pub const DEFAULT_CHUNK_SIZE: usize = 32 * 1024;

/// Entries shown in one auto-generated directory listing: bounds the work
/// and the memory one request can cost; beyond it the listing says it was
/// cut.
pub const MAX_LISTING_ENTRIES: usize = 10_000;

/// What a virtual host serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// Files under this directory (`--dir`), and CGI scripts under its
    /// [`VirtualHost::cgi_dir`].
    Dir(PathBuf),
    /// The small capsule embedded in the binary (served when no `--dir` was
    /// given and the default directory does not exist).
    Embedded,
}

/// One virtual host: the names it answers for and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHost {
    /// Names (or IP literals, or `*.example.org` wildcards) this host answers
    /// for, matched case-insensitively against the URL's host. The first
    /// is `SERVER_NAME`/`HOSTNAME` for CGI. At least one.
    pub hostnames: Vec<String>,
    /// What is served.
    pub root: Root,
    /// CGI directory relative to the root (`cgi-bin`, or nested `a/cgi-bin`);
    /// `None` turns CGI off for this host.
    pub cgi_dir: Option<String>,
    /// Served for a directory URL when present; otherwise a listing.
    pub index_file: String,
    /// Added as `; lang=xx` to every `text/gemini` answer when set.
    pub default_lang: Option<String>,
    /// Generate listings for directories without an index file. On by
    /// default, as Jetforce does.
    pub listings: bool,
}

impl VirtualHost {
    /// A host serving `root` for `hostname` with Jetforce's defaults.
    pub fn new(hostname: impl Into<String>, root: Root) -> Self {
        VirtualHost {
            hostnames: vec![hostname.into()],
            root,
            cgi_dir: Some(DEFAULT_CGI_DIR.to_string()),
            index_file: DEFAULT_INDEX_FILE.to_string(),
            default_lang: None,
            listings: true,
        }
    }

    /// The name given to CGI scripts as `SERVER_NAME` and `HOSTNAME`.
    pub fn primary_hostname(&self) -> &str {
        self.hostnames
            .first()
            .map(String::as_str)
            .unwrap_or(DEFAULT_HOSTNAME)
    }
}

impl Default for VirtualHost {
    /// `localhost` serving [`DEFAULT_ROOT`].
    fn default() -> Self {
        VirtualHost::new(DEFAULT_HOSTNAME, Root::Dir(PathBuf::from(DEFAULT_ROOT)))
    }
}

/// How a Gemini listener behaves. `GeminiConfig::default()` serves
/// `/var/gemini` as `localhost`; the server replaces `vhosts` from its flags
/// or config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeminiConfig {
    /// The virtual hosts, tried in order: the first whose names match the
    /// URL's host serves the request. At least one.
    pub vhosts: Vec<VirtualHost>,
    /// See [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`DEFAULT_CGI_TIMEOUT`].
    pub cgi_timeout: Duration,
    /// See [`DEFAULT_SEND_TIMEOUT`].
    pub send_timeout: Duration,
    /// See [`DEFAULT_CHUNK_SIZE`]. At least 1.
    pub chunk_size: usize,
}

impl Default for GeminiConfig {
    fn default() -> Self {
        GeminiConfig {
            vhosts: vec![VirtualHost::default()],
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            cgi_timeout: DEFAULT_CGI_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl GeminiConfig {
    /// One virtual host: what Jetforce's command line describes.
    pub fn single(vhost: VirtualHost) -> Self {
        GeminiConfig {
            vhosts: vec![vhost],
            ..GeminiConfig::default()
        }
    }

    /// Checks the settings without touching the file system (the factory
    /// checks the directories when it is built). Call it when loading the
    /// configuration so a bad value is reported at start-up.
    pub fn validate(&self) -> Result<(), GeminiConfigError> {
        if self.vhosts.is_empty() {
            return Err(GeminiConfigError::NoVirtualHost);
        }
        if self.chunk_size == 0 {
            return Err(GeminiConfigError::ZeroChunkSize);
        }
        for vhost in &self.vhosts {
            if vhost.hostnames.is_empty() {
                return Err(GeminiConfigError::NoHostname);
            }
            HostPolicy::new(&vhost.hostnames, DEFAULT_PORT).map_err(|error| {
                GeminiConfigError::BadHostname {
                    name: vhost.hostnames.join(", "),
                    error,
                }
            })?;
            if vhost.index_file.is_empty()
                || vhost.index_file.contains('/')
                || vhost.index_file.starts_with('.')
            {
                return Err(GeminiConfigError::BadIndexFile(vhost.index_file.clone()));
            }
            if let Some(cgi) = &vhost.cgi_dir {
                if cgi_dir_segments(cgi).is_none() {
                    return Err(GeminiConfigError::BadCgiDir(cgi.clone()));
                }
            }
            if let Some(lang) = &vhost.default_lang {
                if !valid_lang(lang) {
                    return Err(GeminiConfigError::BadLang(lang.clone()));
                }
            }
        }
        Ok(())
    }
}

/// The CGI directory as path segments (`/cgi-bin/` → `["cgi-bin"]`), or
/// `None` when it is empty or names something outside the root.
pub(crate) fn cgi_dir_segments(dir: &str) -> Option<Vec<String>> {
    let segments: Vec<String> = dir
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let ok = !segments.is_empty()
        && segments
            .iter()
            .all(|s| !s.starts_with('.') && !s.contains('\\') && !s.chars().any(char::is_control));
    ok.then_some(segments)
}

/// A language tag such as `en` or `pt-BR`: letters, digits and `-` (and
/// `,` for several), so it cannot break the meta.
fn valid_lang(lang: &str) -> bool {
    !lang.is_empty()
        && lang.len() <= 64
        && lang
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b',')
}

/// Why a Gemini configuration cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum GeminiConfigError {
    /// No virtual host is configured.
    NoVirtualHost,
    /// A virtual host has no host name.
    NoHostname,
    /// A host name is malformed.
    BadHostname {
        /// The virtual host's names, for the message.
        name: String,
        /// What is wrong with it.
        error: HostError,
    },
    /// The index file name is empty, has a `/` or starts with a dot.
    BadIndexFile(String),
    /// The CGI directory is empty or leaves the root.
    BadCgiDir(String),
    /// The default language is not a plain language tag.
    BadLang(String),
    /// `chunk_size` is 0.
    ZeroChunkSize,
    /// A served directory cannot be opened (missing, unreadable).
    Root {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

impl fmt::Display for GeminiConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeminiConfigError::NoVirtualHost => f.write_str("no Gemini virtual host configured"),
            GeminiConfigError::NoHostname => f.write_str("a Gemini virtual host has no hostname"),
            GeminiConfigError::BadHostname { name, error } => {
                write!(f, "bad Gemini hostname {name:?}: {error}")
            }
            GeminiConfigError::BadIndexFile(name) => write!(f, "bad index file name {name:?}"),
            GeminiConfigError::BadCgiDir(dir) => write!(f, "bad CGI directory {dir:?}"),
            GeminiConfigError::BadLang(lang) => write!(f, "bad default language {lang:?}"),
            GeminiConfigError::ZeroChunkSize => f.write_str("chunk size must be at least 1"),
            GeminiConfigError::Root { path, error } => {
                write!(f, "cannot serve {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for GeminiConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GeminiConfigError::BadHostname { error, .. } => Some(error),
            GeminiConfigError::Root { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_jetforce_s() {
        let c = GeminiConfig::default();
        assert_eq!(c.vhosts.len(), 1);
        let v = &c.vhosts[0];
        assert_eq!(v.hostnames, vec!["localhost".to_string()]);
        assert_eq!(v.root, Root::Dir(PathBuf::from("/var/gemini")));
        assert_eq!(v.cgi_dir.as_deref(), Some("cgi-bin"));
        assert_eq!(v.index_file, "index.gmi");
        assert_eq!(v.default_lang, None);
        assert_eq!(c.cgi_timeout, Duration::from_secs(30));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn validate_refuses_bad_values() {
        let mut c = GeminiConfig::default();
        c.vhosts.clear();
        assert!(matches!(
            c.validate(),
            Err(GeminiConfigError::NoVirtualHost)
        ));

        let mut c = GeminiConfig::default();
        c.vhosts[0].hostnames = vec!["bad host".into()];
        assert!(matches!(
            c.validate(),
            Err(GeminiConfigError::BadHostname { .. })
        ));

        let mut c = GeminiConfig::default();
        c.vhosts[0].index_file = "../x".into();
        assert!(matches!(
            c.validate(),
            Err(GeminiConfigError::BadIndexFile(_))
        ));

        let mut c = GeminiConfig::default();
        c.vhosts[0].cgi_dir = Some("../cgi".into());
        assert!(matches!(c.validate(), Err(GeminiConfigError::BadCgiDir(_))));

        let mut c = GeminiConfig::default();
        c.vhosts[0].default_lang = Some("en\r\n20 x".into());
        assert!(matches!(c.validate(), Err(GeminiConfigError::BadLang(_))));

        let c = GeminiConfig {
            chunk_size: 0,
            ..GeminiConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(GeminiConfigError::ZeroChunkSize)
        ));
    }

    #[test]
    fn cgi_dir_segments_strip_slashes() {
        assert_eq!(
            cgi_dir_segments("/cgi-bin/"),
            Some(vec!["cgi-bin".to_string()])
        );
        assert_eq!(
            cgi_dir_segments("a/cgi"),
            Some(vec!["a".to_string(), "cgi".to_string()])
        );
        assert_eq!(cgi_dir_segments(""), None);
        assert_eq!(cgi_dir_segments("/"), None);
        assert_eq!(cgi_dir_segments(".."), None);
    }
}
