//! Which browser origins may open a WebSocket (RFC 6455 section 10.2).
//!
//! Browsers send the page's origin in every handshake, and a page from any
//! site can open a socket to any server; checking Origin is what stops a
//! foreign page from using a visitor's browser against the endpoint. Clients
//! that are not browsers (curl, the bench harness, scripts) send no Origin
//! and could send any value they like, so a request *without* Origin is
//! allowed: the check protects browser users, it does not authenticate.

use std::fmt;

use url::Url;

/// An origin normalised for comparison: scheme, lower-case host, and port
/// with the scheme's default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is tolerated); anything
    /// with a path, query, fragment or credentials is not an origin.
    fn parse(text: &str) -> Option<Self> {
        let url = Url::parse(text.trim()).ok()?;
        let bare = matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !bare {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_owned(),
            // The url crate lower-cases hosts of http(s)/ws(s) URLs but not of
            // other schemes.
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default(),
        })
    }
}

/// A configured origin that is not of the form `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin(pub String);

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an origin (scheme://host[:port]): {:?}", self.0)
    }
}

impl std::error::Error for InvalidOrigin {}

/// The origins allowed to open sockets on an endpoint. A refused origin is
/// answered with [`Rejection::Forbidden`](super::Rejection::Forbidden) (403).
///
/// Matching is exact on scheme, host and port, with the host compared
/// case-insensitively and a default port equal to its absence
/// (`https://a.example` is `https://a.example:443`). `*` allows every origin.
/// The opaque origin `null` (sandboxed frames, `file:` pages) is allowed only
/// by `*`. Requests without an Origin header are always allowed (see the
/// module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<Origin>,
}

impl OriginPolicy {
    /// A policy allowing every origin; fine for public, credential-free
    /// endpoints such as echo.
    pub fn allow_any() -> Self {
        Self {
            any: true,
            allowed: Vec::new(),
        }
    }

    /// A policy allowing exactly the listed origins (`*` among them allows
    /// all). An empty list allows only clients that send no Origin.
    pub fn new<I, S>(origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut policy = Self::default();
        for origin in origins {
            let text = origin.as_ref();
            if text.trim() == "*" {
                policy.any = true;
            } else {
                let parsed = Origin::parse(text).ok_or_else(|| InvalidOrigin(text.to_owned()))?;
                policy.allowed.push(parsed);
            }
        }
        Ok(policy)
    }

    /// Whether a handshake with this Origin header (or none) may proceed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        if self.any {
            return true;
        }
        Origin::parse(origin).is_some_and(|o| self.allowed.contains(&o))
    }
}

/// Whether a browser's `Origin` names the host the request was sent to (its
/// `Host` header): a page served by this very listener. Scheme-default
/// ports count as equal (`http://h` and `Host: h:80`); the Host must be a
/// bare `host[:port]`.
pub fn is_same_origin(origin: &str, host: &str) -> bool {
    let Some(origin) = Origin::parse(origin) else {
        return false;
    };
    // Host headers never hold these; refusing them keeps `url` from reading
    // a path, credentials or a second authority into the value.
    if host.is_empty() || host.contains(['/', '\\', '@', '?', '#']) {
        return false;
    }
    Origin::parse(&format!("{}://{host}", origin.scheme)).is_some_and(|target| target == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_with_case_and_default_ports() {
        let p = OriginPolicy::new(["https://Example.com", "http://localhost:8080"]).unwrap();
        assert!(p.allows(Some("https://example.com")));
        assert!(p.allows(Some("https://EXAMPLE.COM")));
        assert!(p.allows(Some("https://example.com:443")));
        assert!(p.allows(Some("http://localhost:8080")));
        assert!(!p.allows(Some("http://example.com")));
        assert!(!p.allows(Some("https://example.com:8443")));
        assert!(!p.allows(Some("https://evil.example.com")));
        assert!(!p.allows(Some("https://example.com.evil")));
        assert!(!p.allows(Some("http://localhost")));
        assert!(!p.allows(Some("null")));
        assert!(!p.allows(Some("")));
        assert!(!p.allows(Some("https://example.com/path")));
    }

    #[test]
    fn missing_origin_is_allowed() {
        assert!(OriginPolicy::new(Vec::<String>::new())
            .unwrap()
            .allows(None));
        assert!(OriginPolicy::new(["https://a.example"])
            .unwrap()
            .allows(None));
    }

    #[test]
    fn star_allows_everything() {
        let p = OriginPolicy::new(["https://a.example", "*"]).unwrap();
        assert!(p.allows(Some("null")));
        assert!(p.allows(Some("https://b.example")));
        assert!(OriginPolicy::allow_any().allows(Some("http://x")));
    }

    #[test]
    fn empty_list_refuses_browsers() {
        let p = OriginPolicy::new(Vec::<String>::new()).unwrap();
        assert!(!p.allows(Some("https://a.example")));
    }

    #[test]
    fn bad_configured_origins_are_reported() {
        for bad in [
            "example.com",
            "https://a.example/app",
            "https://u@a.example",
            "null",
        ] {
            assert_eq!(
                OriginPolicy::new([bad]),
                Err(InvalidOrigin(bad.to_owned())),
                "{bad}"
            );
        }
        assert!(OriginPolicy::new(["https://a.example/"]).is_ok());
    }

    #[test]
    fn same_origin_matches_host_and_port() {
        assert!(is_same_origin("http://127.0.0.1:8443", "127.0.0.1:8443"));
        assert!(is_same_origin("https://Example.com", "example.COM:443"));
        assert!(is_same_origin("http://example.com", "example.com"));
        assert!(is_same_origin("http://[::1]:9000", "[::1]:9000"));
        assert!(!is_same_origin("http://example.com", "example.com:8080"));
        assert!(!is_same_origin("http://evil.example", "example.com"));
        assert!(!is_same_origin("http://example.com", "example.com/x"));
        assert!(!is_same_origin("http://example.com", "evil@example.com"));
        assert!(!is_same_origin("http://example.com", ""));
        assert!(!is_same_origin("null", "example.com"));
    }
}
