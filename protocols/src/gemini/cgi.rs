//! CGI as Jetforce runs it: executables under the CGI directory answer the
//! request; what they print (a Gemini header, then for 20 the body) is the
//! response.
//!
//! This module decides *what* to run and with which environment (a pure
//! function of the request, [`cgi_env`]); the protocol runs it through the
//! reactor ([`Transport::spawn`](torsion_reactor::Transport::spawn):
//! non-blocking pipes, output paused while the client is slow, no zombies),
//! checks the header, enforces the timeout and logs stderr.
//!
//! The script is found by walking the path below the CGI directory: the
//! first segment that is an executable regular file is the script
//! (`SCRIPT_NAME`), and the rest of the path is `PATH_INFO`
//! (`/cgi-bin/app.py/a/b` runs `cgi-bin/app.py` with `PATH_INFO=/a/b`). A
//! path with no executable on it falls through to the fallback handler
//! (normally the static files), as Jetforce does.
//!
//! The script runs with an empty environment plus exactly the variables of
//! [`cgi_env`] and `PATH`, in its own directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use super::app::{Handler, Request, Response};
use super::config::{cgi_dir_segments, GeminiConfigError, Root, VirtualHost};
use super::path::safe_segments;
use super::static_files::{lookup, refusal, Lookup};

/// `SERVER_SOFTWARE`: this server and its version.
pub const SERVER_SOFTWARE: &str = concat!("torsion/", env!("CARGO_PKG_VERSION"));

/// `GATEWAY_INTERFACE`, as the Jetforce documentation names it.
pub const GATEWAY_INTERFACE: &str = "GCI/1.1";

/// The environment of a CGI script for `request`, in a fixed order:
/// `GATEWAY_INTERFACE`, `SERVER_PROTOCOL`, `SERVER_SOFTWARE`, `GEMINI_URL`,
/// `SCRIPT_NAME`, `PATH_INFO`, `QUERY_STRING` (as sent, still
/// percent-encoded; empty without `?`), `SERVER_NAME` and `HOSTNAME` (the
/// virtual host's name), `SERVER_PORT`, `REMOTE_HOST` and `REMOTE_ADDR` (the
/// client's IP), `TLS_CIPHER` (OpenSSL's name) and `TLS_VERSION`; with a
/// client certificate also `AUTH_TYPE=CERTIFICATE`, `REMOTE_USER` (subject
/// CN), `TLS_CLIENT_HASH` (`SHA256:HEX`), `TLS_CLIENT_NOT_BEFORE`,
/// `TLS_CLIENT_NOT_AFTER` (RFC 3339 UTC), `TLS_CLIENT_SERIAL_NUMBER`
/// (decimal; empty for a serial over 64 octets) and
/// `TLS_CLIENT_AUTHORISED` (`1` when it chains to the
/// configured CA, else `0`).
pub fn cgi_env(
    request: &Request,
    script_name: &str,
    path_info: &str,
) -> Vec<(&'static str, String)> {
    let ip = request
        .peer()
        .ip()
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let mut env = vec![
        ("GATEWAY_INTERFACE", GATEWAY_INTERFACE.to_string()),
        ("SERVER_PROTOCOL", "GEMINI".to_string()),
        ("SERVER_SOFTWARE", SERVER_SOFTWARE.to_string()),
        ("GEMINI_URL", request.as_str().to_string()),
        ("SCRIPT_NAME", script_name.to_string()),
        ("PATH_INFO", path_info.to_string()),
        ("QUERY_STRING", request.query().unwrap_or("").to_string()),
        ("SERVER_NAME", request.server_name().to_string()),
        ("HOSTNAME", request.server_name().to_string()),
        ("SERVER_PORT", request.port().to_string()),
        ("REMOTE_HOST", ip.clone()),
        ("REMOTE_ADDR", ip),
    ];
    if let Some(tls) = request.tls() {
        env.push(("TLS_CIPHER", tls.cipher_openssl.to_string()));
        env.push(("TLS_VERSION", tls.version.to_string()));
        if let Some(cert) = &tls.peer_cert {
            env.push(("AUTH_TYPE", "CERTIFICATE".to_string()));
            env.push(("REMOTE_USER", cert.common_name.clone()));
            env.push(("TLS_CLIENT_HASH", cert.hash.clone()));
            env.push(("TLS_CLIENT_NOT_BEFORE", cert.not_before.clone()));
            env.push(("TLS_CLIENT_NOT_AFTER", cert.not_after.clone()));
            env.push(("TLS_CLIENT_SERIAL_NUMBER", cert.serial.clone()));
            let authorised = if cert.authorised { "1" } else { "0" };
            env.push(("TLS_CLIENT_AUTHORISED", authorised.to_string()));
        }
    }
    env
}

/// Whether a file's mode lets someone execute it.
fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}

/// A handler running the executables of one CGI directory.
#[derive(Clone)]
pub struct Cgi {
    /// Canonical root the CGI directory is relative to.
    root: PathBuf,
    /// The CGI directory's path segments below the root.
    dir: Vec<String>,
    /// Answers paths that name no script.
    fallback: Option<Rc<dyn Handler>>,
}

impl std::fmt::Debug for Cgi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cgi")
            .field("root", &self.root)
            .field("dir", &self.dir)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl Cgi {
    /// Runs scripts under `vhost`'s CGI directory; `None` when the host has
    /// CGI turned off or serves the embedded capsule.
    pub fn new(vhost: &VirtualHost) -> Result<Option<Self>, GeminiConfigError> {
        let (Root::Dir(root), Some(dir)) = (&vhost.root, &vhost.cgi_dir) else {
            return Ok(None);
        };
        Cgi::with_dir(root, dir).map(Some)
    }

    /// Runs scripts under `root/cgi_dir`. The CGI directory need not exist
    /// (then nothing is a script).
    pub fn with_dir(root: impl AsRef<Path>, cgi_dir: &str) -> Result<Self, GeminiConfigError> {
        let root = root.as_ref();
        let dir = cgi_dir_segments(cgi_dir)
            .ok_or_else(|| GeminiConfigError::BadCgiDir(cgi_dir.into()))?;
        let root = std::fs::canonicalize(root).map_err(|error| GeminiConfigError::Root {
            path: root.to_path_buf(),
            error,
        })?;
        Ok(Cgi {
            root,
            dir,
            fallback: None,
        })
    }

    /// Answers paths that name no script with `handler` (otherwise `51`).
    pub fn fallback(mut self, handler: impl Handler + 'static) -> Self {
        self.fallback = Some(Rc::new(handler));
        self
    }

    fn pass(&self, request: &Request) -> Response {
        match &self.fallback {
            Some(h) => h.handle(request),
            None => Response::not_found(),
        }
    }
}

impl Handler for Cgi {
    fn handle(&self, request: &Request) -> Response {
        let Ok(safe) = safe_segments(request.path()) else {
            return self.pass(request);
        };
        let segments: Vec<&str> = safe.segments().collect();
        let depth = self.dir.len();
        let under_dir = segments.len() > depth
            && segments
                .iter()
                .zip(&self.dir)
                .all(|(have, want)| *have == want.as_str());
        if !under_dir {
            return self.pass(request);
        }
        let mut relative = PathBuf::new();
        for segment in segments.iter().take(depth) {
            relative.push(segment);
        }
        for (i, segment) in segments.iter().enumerate().skip(depth) {
            relative.push(segment);
            let (path, meta) = match lookup(&self.root, &relative) {
                Lookup::Found(path, meta) => (path, meta),
                Lookup::Missing => return self.pass(request),
                other => return refusal(&other, request),
            };
            if meta.is_dir() {
                continue;
            }
            if !meta.is_file() || !is_executable(&meta) {
                return self.pass(request);
            }
            let (script, rest) = segments.split_at(i + 1);
            let script_name = format!("/{}", script.join("/"));
            let mut path_info = String::new();
            for part in rest {
                path_info.push('/');
                path_info.push_str(part);
            }
            if safe.is_directory_form() {
                path_info.push('/');
            }
            return Response::process(
                command(&path, request, &script_name, &path_info),
                script_name,
            );
        }
        self.pass(request)
    }
}

/// The command running `script` for `request`: empty environment but
/// [`cgi_env`] and `PATH`, working directory the script's own.
fn command(script: &Path, request: &Request, script_name: &str, path_info: &str) -> Command {
    let mut command = Command::new(script);
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(cgi_env(request, script_name, path_info));
    if let Some(parent) = script.parent() {
        command.current_dir(parent);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use torsion_reactor::PeerAddr;

    #[test]
    fn env_without_tls_has_the_base_variables_in_order() {
        let req = Request::parse(
            "gemini://example.org/cgi-bin/env/x?a%20b",
            PeerAddr::Tcp("192.0.2.1:3333".parse().unwrap()),
        )
        .unwrap();
        let env = cgi_env(&req, "/cgi-bin/env", "/x");
        let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "GATEWAY_INTERFACE",
                "SERVER_PROTOCOL",
                "SERVER_SOFTWARE",
                "GEMINI_URL",
                "SCRIPT_NAME",
                "PATH_INFO",
                "QUERY_STRING",
                "SERVER_NAME",
                "HOSTNAME",
                "SERVER_PORT",
                "REMOTE_HOST",
                "REMOTE_ADDR"
            ]
        );
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("GATEWAY_INTERFACE"), "GCI/1.1");
        assert_eq!(
            get("GEMINI_URL"),
            "gemini://example.org/cgi-bin/env/x?a%20b"
        );
        assert_eq!(get("QUERY_STRING"), "a%20b");
        assert_eq!(get("SERVER_PORT"), "1965");
        assert_eq!(get("REMOTE_ADDR"), "192.0.2.1");
        assert_eq!(get("SERVER_SOFTWARE"), SERVER_SOFTWARE);
    }
}
