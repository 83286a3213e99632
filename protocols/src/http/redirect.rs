//! Deciding where a request is redirected, and writing that `Location`.
//!
//! The model is nginx's `return 301 https://$host$request_uri`: keep the
//! path and query, swap the scheme, drop the client's port for ours. Gate
//! One's redirect reused the raw `Host` with its port and dropped the path;
//! this one does neither.
//!
//! The host is, in order: the configured canonical host; the authority of
//! an absolute-form target (RFC 9112 §3.2.2 says it overrides `Host`); the
//! validated `Host` header; the configured fallback (HTTP/1.0 without
//! `Host`). Hosts are written lowercased, IPv6 literals with brackets.
//!
//! The path comes from the request target, never unencoded: bytes that are
//! not allowed in a URL (controls, space, `" < > \ ^ { | }`, backtick,
//! DEL, non-ASCII) are percent-encoded, existing `%XX` escapes are kept, and a
//! `%` that starts no escape becomes `%25`.

use super::host::{parse_host, HostError, HostName};
use super::request::{HttpError, RequestHead};

/// The default HTTPS port, left out of `Location`.
const HTTPS_PORT: u16 = 443;

/// Which permanent redirect to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectCode {
    /// 301: understood by every client; browsers may turn POST into GET.
    #[default]
    MovedPermanently,
    /// 308: like 301 but the method and body must be kept.
    PermanentRedirect,
}

impl RedirectCode {
    /// The code for a status number, as given to `--redirect-code`: `301`
    /// or `308`; anything else is `None`.
    pub fn from_status(status: u16) -> Option<Self> {
        match status {
            301 => Some(RedirectCode::MovedPermanently),
            308 => Some(RedirectCode::PermanentRedirect),
            _ => None,
        }
    }

    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            RedirectCode::MovedPermanently => 301,
            RedirectCode::PermanentRedirect => 308,
        }
    }

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self {
            RedirectCode::MovedPermanently => "Moved Permanently",
            RedirectCode::PermanentRedirect => "Permanent Redirect",
        }
    }
}

/// How the HTTP listener redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectConfig {
    /// 301 or 308.
    pub code: RedirectCode,
    /// Always redirect to this host, whatever the client asked for.
    pub canonical_host: Option<String>,
    /// The HTTPS port to redirect to (omitted from `Location` when 443).
    pub target_port: u16,
    /// The host for HTTP/1.0 requests without `Host` when no canonical host
    /// is set.
    pub fallback_host: String,
}

impl Default for RedirectConfig {
    fn default() -> Self {
        RedirectConfig {
            code: RedirectCode::MovedPermanently,
            canonical_host: None,
            target_port: HTTPS_PORT,
            fallback_host: "localhost".to_owned(),
        }
    }
}

impl RedirectConfig {
    /// Checks the configured hosts are plain hosts (no port, no junk);
    /// call when loading the configuration. [`redirect_for`] re-checks
    /// anyway, so a bad value can never reach a `Location` header.
    pub fn validate(&self) -> Result<(), HostError> {
        let hosts = self
            .canonical_host
            .iter()
            .chain(std::iter::once(&self.fallback_host));
        for host in hosts {
            if parse_host(host.as_bytes())?.port().is_some() {
                return Err(HostError::BadPort);
            }
        }
        if self.target_port == 0 {
            return Err(HostError::BadPort);
        }
        Ok(())
    }
}

/// The parts of a request target that a redirect keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetParts<'a> {
    /// The authority of an absolute-form target, validated.
    pub authority: Option<HostName<'a>>,
    /// Path and query as sent. Empty or starting with `?` only in
    /// absolute-form (`http://h`, `http://h?q`), where the path is `/`.
    pub path_and_query: &'a [u8],
}

/// Splits a request target into what a redirect keeps: origin-form as is,
/// absolute-form (`http://host/path?q`, `https` too) into authority and
/// path-and-query. `*`, authority-form and other
/// schemes are `BadTarget`; a bad authority is `BadHost`.
pub fn split_target(target: &[u8]) -> Result<TargetParts<'_>, HttpError> {
    if target.first() == Some(&b'/') {
        return Ok(TargetParts {
            authority: None,
            path_and_query: target,
        });
    }
    let rest = strip_prefix_ignore_case(target, b"http://")
        .or_else(|| strip_prefix_ignore_case(target, b"https://"))
        .ok_or(HttpError::BadTarget)?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, path_and_query) = rest.split_at(end);
    if authority.is_empty() {
        return Err(HttpError::BadTarget);
    }
    let authority = parse_host(authority).map_err(HttpError::BadHost)?;
    Ok(TargetParts {
        authority: Some(authority),
        path_and_query,
    })
}

/// `s` without `prefix`, compared ASCII-case-insensitively.
fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (head, tail) = s.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

/// A decided redirect: everything needed to write `Location`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect<'a> {
    /// 301 or 308.
    pub code: RedirectCode,
    /// The host, validated; written lowercased.
    pub host: HostName<'a>,
    /// The HTTPS port.
    pub port: u16,
    /// Path and query from the request, not yet encoded; a missing leading
    /// `/` (absolute-form with empty path) is added when written.
    pub path_and_query: &'a [u8],
}

/// Decides the redirect for a request head parsed from `buf`.
pub fn redirect_for<'a>(
    config: &'a RedirectConfig,
    head: &RequestHead,
    buf: &'a [u8],
) -> Result<Redirect<'a>, HttpError> {
    let target = split_target(head.target(buf))?;
    let host = match &config.canonical_host {
        Some(canonical) => parse_host(canonical.as_bytes()).map_err(HttpError::BadHost)?,
        None => match target.authority.or_else(|| head.host(buf)) {
            Some(host) => host,
            None => parse_host(config.fallback_host.as_bytes()).map_err(HttpError::BadHost)?,
        },
    };
    Ok(Redirect {
        code: config.code,
        host,
        port: config.target_port,
        path_and_query: target.path_and_query,
    })
}

impl Redirect<'_> {
    /// Appends `https://host[:port]/path?query` to `out`, the path
    /// percent-encoded where needed.
    pub fn write_location(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"https://");
        self.host.write_lowercase(out);
        if self.port != HTTPS_PORT {
            out.push(b':');
            super::response::write_decimal(out, u64::from(self.port));
        }
        if self.path_and_query.first() != Some(&b'/') {
            out.push(b'/');
        }
        write_encoded_path(out, self.path_and_query);
    }

    /// An upper bound of the bytes [`Redirect::write_location`] writes.
    pub fn location_len_bound(&self) -> usize {
        "https://".len()
            + self.host.as_bytes().len()
            + ":65535/".len()
            + 3 * self.path_and_query.len()
    }
}

/// Whether `b` must be percent-encoded in a `Location` path or query.
fn must_encode(b: u8) -> bool {
    b <= 0x20 || b >= 0x7F || b"\"<>\\^`{|}".contains(&b)
}

/// Appends `path`, percent-encoding bytes not allowed in a URL (controls,
/// space, `" < > \ ^ { | }`, backtick, DEL, non-ASCII) and any `%` that
/// does not start a `%XX` escape; existing escapes are kept as they are.
pub fn write_encoded_path(out: &mut Vec<u8>, path: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut rest = path;
    loop {
        let safe = rest
            .iter()
            .position(|&b| must_encode(b) || b == b'%')
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(safe);
        out.extend_from_slice(run);
        let Some((&b, after)) = tail.split_first() else {
            return;
        };
        let is_escape = b == b'%'
            && matches!(after, [h, l, ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit());
        if is_escape {
            out.push(b'%');
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0F)]]);
        }
        rest = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{parse_head, Parsed};

    fn head(input: &[u8]) -> RequestHead {
        match parse_head(input) {
            Ok(Parsed::Complete { head, .. }) => head,
            other => panic!("{other:?}"),
        }
    }

    fn location(config: &RedirectConfig, input: &[u8]) -> Result<String, HttpError> {
        let h = head(input);
        let r = redirect_for(config, &h, input)?;
        let mut out = Vec::new();
        r.write_location(&mut out);
        assert!(out.len() <= r.location_len_bound());
        Ok(String::from_utf8(out).unwrap())
    }

    fn encoded(path: &[u8]) -> String {
        let mut out = Vec::new();
        write_encoded_path(&mut out, path);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn host_header_and_path_are_kept() {
        let c = RedirectConfig::default();
        assert_eq!(
            location(
                &c,
                b"GET /a/b?c=d&e HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n"
            ),
            Ok("https://example.com/a/b?c=d&e".into())
        );
        assert_eq!(
            location(&c, b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
            Ok("https://[::1]/".into())
        );
        assert_eq!(
            location(&c, b"GET //evil.com/x HTTP/1.1\r\nHost: a.com\r\n\r\n"),
            Ok("https://a.com//evil.com/x".into())
        );
    }

    #[test]
    fn port_is_ours_and_omitted_when_443() {
        let c = RedirectConfig {
            target_port: 8443,
            ..RedirectConfig::default()
        };
        assert_eq!(
            location(&c, b"GET /x HTTP/1.1\r\nHost: a.com:8080\r\n\r\n"),
            Ok("https://a.com:8443/x".into())
        );
        assert_eq!(
            location(&c, b"GET /x HTTP/1.1\r\nHost: [2001:DB8::1]\r\n\r\n"),
            Ok("https://[2001:db8::1]:8443/x".into())
        );
    }

    #[test]
    fn canonical_and_fallback_hosts() {
        let canonical = RedirectConfig {
            canonical_host: Some("WWW.example.org".into()),
            ..RedirectConfig::default()
        };
        assert_eq!(
            location(&canonical, b"GET /p HTTP/1.1\r\nHost: other.net\r\n\r\n"),
            Ok("https://www.example.org/p".into())
        );
        assert_eq!(
            location(&canonical, b"GET /p HTTP/1.0\r\n\r\n"),
            Ok("https://www.example.org/p".into())
        );
        let fallback = RedirectConfig {
            fallback_host: "fallback.example".into(),
            ..RedirectConfig::default()
        };
        assert_eq!(
            location(&fallback, b"GET /p HTTP/1.0\r\n\r\n"),
            Ok("https://fallback.example/p".into())
        );
        assert_eq!(
            location(&fallback, b"GET /p HTTP/1.0\r\nHost: h.example\r\n\r\n"),
            Ok("https://h.example/p".into())
        );
    }

    #[test]
    fn bad_configured_hosts_never_reach_location() {
        let bad = RedirectConfig {
            canonical_host: Some("a.com\r\nSet-Cookie: x".into()),
            ..RedirectConfig::default()
        };
        assert!(bad.validate().is_err());
        assert!(matches!(
            location(&bad, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(HttpError::BadHost(_))
        ));
        let with_port = RedirectConfig {
            fallback_host: "a.com:443".into(),
            ..RedirectConfig::default()
        };
        assert_eq!(with_port.validate(), Err(HostError::BadPort));
        let zero = RedirectConfig {
            target_port: 0,
            ..RedirectConfig::default()
        };
        assert_eq!(zero.validate(), Err(HostError::BadPort));
        assert_eq!(RedirectConfig::default().validate(), Ok(()));
    }

    #[test]
    fn absolute_form_uses_its_authority_and_path() {
        let c = RedirectConfig::default();
        assert_eq!(
            location(
                &c,
                b"GET http://Target.example:80/a?b HTTP/1.1\r\nHost: other\r\n\r\n"
            ),
            Ok("https://target.example/a?b".into())
        );
        assert_eq!(
            location(&c, b"GET HTTP://t.example HTTP/1.1\r\nHost: other\r\n\r\n"),
            Ok("https://t.example/".into())
        );
        assert_eq!(
            location(
                &c,
                b"GET https://t.example?q HTTP/1.1\r\nHost: other\r\n\r\n"
            ),
            Ok("https://t.example/?q".into())
        );
        assert!(matches!(
            location(
                &c,
                b"GET http://a.com@evil.com/ HTTP/1.1\r\nHost: a\r\n\r\n"
            ),
            Err(HttpError::BadHost(HostError::InvalidByte))
        ));
        assert_eq!(
            location(&c, b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(HttpError::BadTarget)
        );
    }

    #[test]
    fn unredirectable_targets() {
        let c = RedirectConfig::default();
        for input in [
            &b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com\r\n\r\n",
            b"GET ftp://a.com/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(
                location(&c, input),
                Err(HttpError::BadTarget),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn path_encoding() {
        assert_eq!(encoded(b"/a/b?c=d&e=f#g"), "/a/b?c=d&e=f#g");
        assert_eq!(encoded(b"/a b"), "/a%20b");
        assert_eq!(encoded(b"/\"<>\\^`{|}"), "/%22%3C%3E%5C%5E%60%7B%7C%7D");
        assert_eq!(encoded(b"/\r\n\t\0\x7f"), "/%0D%0A%09%00%7F");
        assert_eq!(encoded("/caf\u{e9}".as_bytes()), "/caf%C3%A9");
        assert_eq!(encoded(b"/\xff"), "/%FF");
        assert_eq!(encoded(b"/%41%2f%zz%4%"), "/%41%2f%25zz%254%25");
        assert_eq!(encoded(b"/~!$&'()*+,;=:@-._"), "/~!$&'()*+,;=:@-._");
        assert_eq!(encoded(b""), "");
    }

    #[test]
    fn reflected_injection_is_encoded() {
        let c = RedirectConfig::default();
        let input = "GET /\"><script>alert(1)</script>\u{e9} HTTP/1.1\r\nHost: a.com\r\n\r\n";
        assert_eq!(
            location(&c, input.as_bytes()),
            Ok("https://a.com/%22%3E%3Cscript%3Ealert(1)%3C/script%3E%C3%A9".into())
        );
    }

    #[test]
    fn redirect_codes() {
        assert_eq!(RedirectCode::MovedPermanently.status(), 301);
        assert_eq!(RedirectCode::PermanentRedirect.status(), 308);
        assert_eq!(RedirectCode::default(), RedirectCode::MovedPermanently);
        assert_eq!(
            RedirectCode::from_status(308),
            Some(RedirectCode::PermanentRedirect)
        );
        assert_eq!(
            RedirectCode::from_status(301),
            Some(RedirectCode::MovedPermanently)
        );
        assert_eq!(RedirectCode::from_status(302), None);
        assert_eq!(
            RedirectCode::PermanentRedirect.reason(),
            "Permanent Redirect"
        );
    }
}
