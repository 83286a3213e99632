//! The target: what the URL names (mode, host, port, path), resolved once
//! before the loop starts.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Longest Gemini request URL (the specification's limit).
pub const MAX_GEMINI_URL: usize = 1024;

/// The kind of load, from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `gemini://`: TLS, one request per connection.
    Gemini,
    /// `http://`.
    Http,
    /// `https://`.
    Https,
    /// `ws://`.
    Ws,
    /// `wss://`.
    Wss,
    /// `tcp://`: raw TCP connect or echo.
    Tcp,
}

impl Scheme {
    /// The scheme's name, as in the URL and the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Gemini => "gemini",
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Tcp => "tcp",
        }
    }

    /// Whether connections use TLS.
    pub fn tls(self) -> bool {
        matches!(self, Scheme::Gemini | Scheme::Https | Scheme::Wss)
    }

    /// The port used when the URL gives none (`None`: one must be given).
    pub fn default_port(self) -> Option<u16> {
        match self {
            Scheme::Gemini => Some(1965),
            Scheme::Http | Scheme::Ws => Some(80),
            Scheme::Https | Scheme::Wss => Some(443),
            Scheme::Tcp => None,
        }
    }
}

/// A parsed (not yet resolved) target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scheme.
    pub scheme: Scheme,
    /// The host without brackets: a name or an IP literal (for SNI and
    /// resolution).
    pub host: String,
    /// The IP address when the host is a literal.
    pub ip: Option<IpAddr>,
    /// The port.
    pub port: u16,
    /// The `Host` header value: host (bracketed if IPv6) and the port when
    /// it is not the scheme's default.
    pub authority: String,
    /// Path and query for HTTP and WebSocket requests (`/` when empty).
    pub path: String,
    /// The whole URL, normalised (the Gemini request line).
    pub url: String,
}

/// Parses a target URL.
pub fn parse_target(input: &str) -> Result<Target, String> {
    let url = url::Url::parse(input.trim()).map_err(|e| format!("{input:?}: {e}"))?;
    let scheme = match url.scheme() {
        "gemini" => Scheme::Gemini,
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        "tcp" => Scheme::Tcp,
        other => {
            return Err(format!(
                "unsupported scheme {other:?} (use gemini, http, https, ws, wss or tcp)"
            ))
        }
    };
    let (host, ip) = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => (d.to_string(), d.parse::<IpAddr>().ok()),
        Some(url::Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
        Some(url::Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
        _ => return Err(format!("{input:?}: no host")),
    };
    let port = match url.port().or(scheme.default_port()) {
        Some(p) => p,
        None => return Err(format!("{input:?}: {}:// needs a port", scheme.name())),
    };
    let bracketed = match ip {
        Some(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.clone(),
    };
    let authority = if Some(port) == scheme.default_port() {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    let mut path = url.path().to_string();
    if path.is_empty() {
        path.push('/');
    }
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let normalised = url.as_str().to_string();
    if scheme == Scheme::Gemini && normalised.len() > MAX_GEMINI_URL {
        return Err(format!("the URL is longer than {MAX_GEMINI_URL} bytes"));
    }
    Ok(Target {
        scheme,
        host,
        ip,
        port,
        authority,
        path,
        url: normalised,
    })
}

impl Target {
    /// Resolves the host once (blocking: call before the loop starts). The
    /// first address is used, as most clients do.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        if let Some(ip) = self.ip {
            return Ok(SocketAddr::new(ip, self.port));
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_defaults() {
        let t = parse_target("gemini://example.org").unwrap();
        assert_eq!(t.scheme, Scheme::Gemini);
        assert_eq!(t.host, "example.org");
        assert_eq!(t.port, 1965);
        assert_eq!(t.authority, "example.org");
        assert_eq!(t.path, "/");
        assert_eq!(t.url, "gemini://example.org");
        assert!(t.scheme.tls());
    }

    #[test]
    fn ports_paths_and_queries() {
        let t = parse_target("http://127.0.0.1:8080/a/b?x=1").unwrap();
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!(t.ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(t.port, 8080);
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path, "/a/b?x=1");
        let t = parse_target("wss://[::1]/echo").unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.port, 443);
        assert_eq!(t.authority, "[::1]");
        assert_eq!(t.path, "/echo");
        let t = parse_target("ws://[::1]:9000/echo").unwrap();
        assert_eq!(t.authority, "[::1]:9000");
        assert_eq!(
            t.resolve().unwrap(),
            "[::1]:9000".parse::<SocketAddr>().unwrap()
        );
        let t = parse_target("tcp://127.0.0.1:7000").unwrap();
        assert_eq!(t.scheme, Scheme::Tcp);
        assert_eq!(t.port, 7000);
        assert!(!t.scheme.tls());
    }

    #[test]
    fn refusals() {
        assert!(parse_target("ftp://x/").is_err());
        assert!(parse_target("tcp://127.0.0.1").is_err());
        assert!(parse_target("not a url").is_err());
        assert!(parse_target("http:///nohost").is_err() || parse_target("http:///").is_err());
        let long = format!("gemini://h/{}", "a".repeat(MAX_GEMINI_URL));
        assert!(parse_target(&long).is_err());
    }

    #[test]
    fn resolves_localhost() {
        let t = parse_target("tcp://localhost:7").unwrap();
        assert!(t.resolve().unwrap().ip().is_loopback());
    }
}
