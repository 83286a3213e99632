//! Host normalisation and the "is this request for us?" check.
//!
//! The `url` crate leaves the host of a non-special scheme such as `gemini:`
//! exactly as written: `GEMINI://LocalHost./` has the host `LocalHost.` and
//! `gemini://%6cocalhost/` the host `%6cocalhost`. Comparing those strings
//! with a configured name would refuse good requests and, worse, let two
//! spellings of one name be treated differently. [`normalise_host`] gives the
//! one canonical form; [`HostPolicy`] compares it with the configuration.
//!
//! No IDNA mapping is done: a Unicode name is kept (ASCII letters lowercased
//! only) and so never equals its punycode form. Configure, and have clients
//! send, the `xn--` form, as the Gemini specification asks of clients.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::percent;
use super::request::Request;
use super::status::Status;

/// Longest host name accepted, in bytes: the DNS limit for a name written as
/// text (RFC 1035 §2.3.4 less the root dot), so nothing longer can resolve.
pub const MAX_HOST_LEN: usize = 253;

/// Longest label (the part between dots) accepted, in bytes: the DNS limit
/// (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// A request's host in canonical form, ready to compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name: percent-decoded, ASCII-lowercased, without a trailing dot.
    Domain(String),
    /// A dotted-quad IPv4 literal (written bare in URLs).
    Ipv4(Ipv4Addr),
    /// An IPv6 literal (written in brackets in URLs).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Whether this is an IP literal rather than a name.
    pub fn is_ip(&self) -> bool {
        !matches!(self, Host::Domain(_))
    }

    /// The name, if this is a DNS name.
    pub fn as_domain(&self) -> Option<&str> {
        match self {
            Host::Domain(name) => Some(name),
            Host::Ipv4(_) | Host::Ipv6(_) => None,
        }
    }
}

/// Writes the host as it appears in a URL (IPv6 in brackets).
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ipv4(addr) => write!(f, "{addr}"),
            Host::Ipv6(addr) => write!(f, "[{addr}]"),
        }
    }
}

/// Why a host string is not a usable host.
///
/// In a request every variant means a malformed request: status 59. From
/// [`HostPolicy::new`] it means a bad configuration entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The host is empty (or only a dot).
    Empty,
    /// A `%` is not followed by two hex digits.
    InvalidPercentEncoding,
    /// The percent-decoded host is not UTF-8.
    NotUtf8,
    /// A character that cannot appear in a host name (ASCII other than
    /// letters, digits, `-`, `_` and `.`; or a control or space character).
    InvalidCharacter,
    /// Two dots in a row, or a leading dot.
    EmptyLabel,
    /// A label longer than [`MAX_LABEL_LEN`].
    LabelTooLong,
    /// The name is longer than [`MAX_HOST_LEN`].
    TooLong,
    /// Brackets that do not hold a valid IPv6 address.
    InvalidIpLiteral,
    /// A configured pattern uses `*` other than as a whole leading label
    /// before a name (`*.example.org`). Never produced for a request.
    Wildcard,
}

impl HostError {
    /// The status to answer a request whose host fails to normalise.
    pub fn status(&self) -> Status {
        Status::BadRequest
    }

    /// A short, fixed explanation, safe to send as the response meta.
    pub fn reason(&self) -> &'static str {
        match self {
            HostError::Empty => "Empty host",
            HostError::InvalidPercentEncoding => "Bad percent-encoding in host",
            HostError::NotUtf8 => "Host is not UTF-8",
            HostError::InvalidCharacter => "Invalid character in host",
            HostError::EmptyLabel => "Empty label in host",
            HostError::LabelTooLong => "Host label too long",
            HostError::TooLong => "Host too long",
            HostError::InvalidIpLiteral => "Invalid IP literal",
            HostError::Wildcard => "Misplaced wildcard in host pattern",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HostError {}

/// Turns a host as written in a URL into its canonical [`Host`].
///
/// Accepts `[v6]` for IPv6; otherwise percent-decodes, lowercases ASCII,
/// strips one trailing dot, and classifies a dotted quad as IPv4. Forms such
/// as `127.1` or `0x7f.0.0.1` are not IPv4 here: they stay names, which will
/// not match a configured address.
pub fn normalise_host(raw: &str) -> Result<Host, HostError> {
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(HostError::InvalidIpLiteral)?;
        return inner
            .parse::<Ipv6Addr>()
            .map(Host::Ipv6)
            .map_err(|_| HostError::InvalidIpLiteral);
    }
    let mut bytes = Vec::new();
    percent::decode_into(raw.as_bytes(), &mut bytes)
        .map_err(|_| HostError::InvalidPercentEncoding)?;
    let mut name = String::from_utf8(bytes).map_err(|_| HostError::NotUtf8)?;
    name.make_ascii_lowercase();
    if name.ends_with('.') {
        name.pop();
    }
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if let Ok(addr) = name.parse::<Ipv4Addr>() {
        return Ok(Host::Ipv4(addr));
    }
    check_name(&name)?;
    Ok(Host::Domain(name))
}

/// Checks a lowercased name without its trailing dot, label by label.
fn check_name(name: &str) -> Result<(), HostError> {
    if name.len() > MAX_HOST_LEN {
        return Err(HostError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelTooLong);
        }
        if !label.chars().all(is_name_char) {
            return Err(HostError::InvalidCharacter);
        }
    }
    Ok(())
}

/// Whether `c` may appear in a label. Non-ASCII is allowed (it is kept, not
/// mapped); `_` is allowed because real service names use it.
fn is_name_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '-' || c == '_'
    } else {
        !c.is_control() && !c.is_whitespace()
    }
}

/// One configured host pattern, normalised once at configuration time.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Matches exactly this host.
    Exact(Host),
    /// `*.example.org`: matches one extra label before this suffix, which is
    /// stored with its leading dot (`.example.org`).
    OneLabelUnder(String),
}

/// Why a well-formed request is not for this listener: status 53.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostRefusal {
    /// The host is a name that no configured pattern matches.
    UnknownHost,
    /// The host is an IP literal, and IP literals are not configured.
    IpLiteral,
    /// The URL names a port other than the one the listener serves.
    WrongPort {
        /// The port the listener serves.
        expected: u16,
        /// The port the URL names.
        requested: u16,
    },
}

impl HostRefusal {
    /// The status to answer with: always 53, proxy request refused.
    pub fn status(&self) -> Status {
        Status::ProxyRequestRefused
    }

    /// A short, fixed explanation, safe to send as the response meta.
    pub fn reason(&self) -> &'static str {
        match self {
            HostRefusal::UnknownHost => "Proxy request refused: unknown host",
            HostRefusal::IpLiteral => "Proxy request refused: IP address not served",
            HostRefusal::WrongPort { .. } => "Proxy request refused: wrong port",
        }
    }
}

impl fmt::Display for HostRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRefusal::WrongPort {
                expected,
                requested,
            } => write!(
                f,
                "request for port {requested}, listener serves {expected}"
            ),
            HostRefusal::UnknownHost | HostRefusal::IpLiteral => f.write_str(self.reason()),
        }
    }
}

impl std::error::Error for HostRefusal {}

/// Which hosts and port one Gemini listener answers for.
///
/// Built once from configuration; [`HostPolicy::check`] then costs a few
/// string comparisons per request and allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// Configured hosts, in canonical form.
    patterns: Vec<Pattern>,
    /// The port the listener is bound to; a URL naming another is refused.
    port: u16,
    /// Whether any IP literal is accepted, not just configured ones.
    allow_ip_literals: bool,
}

impl HostPolicy {
    /// A policy answering for `hostnames` on `port`, refusing IP literals
    /// that are not listed.
    ///
    /// Each entry is a name (any case, trailing dot allowed), an IPv4
    /// address, an IPv6 address with or without brackets, or a wildcard
    /// `*.example.org`, which matches exactly one label before the suffix
    /// (like a TLS wildcard certificate): `a.example.org`, not
    /// `example.org` nor `a.b.example.org`. An empty list matches no name.
    pub fn new<I, S>(hostnames: I, port: u16) -> Result<Self, HostError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = hostnames
            .into_iter()
            .map(|entry| parse_pattern(entry.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HostPolicy {
            patterns,
            port,
            allow_ip_literals: false,
        })
    }

    /// Accept (or not) requests addressed to any IP literal, not only the
    /// listed ones. Off by default: a capsule has names, and answering for
    /// raw addresses invites scanners and cross-vhost confusion.
    #[must_use]
    pub fn allow_ip_literals(mut self, allow: bool) -> Self {
        self.allow_ip_literals = allow;
        self
    }

    /// The port requests must name, if they name one.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether `host` is one this policy answers for (port aside).
    pub fn matches(&self, host: &Host) -> bool {
        if host.is_ip() && self.allow_ip_literals {
            return true;
        }
        self.patterns.iter().any(|pattern| match (pattern, host) {
            (Pattern::Exact(want), got) => want == got,
            (Pattern::OneLabelUnder(suffix), Host::Domain(name)) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            (Pattern::OneLabelUnder(_), Host::Ipv4(_) | Host::Ipv6(_)) => false,
        })
    }

    /// Accepts `request` or says why this listener will not serve it.
    pub fn check(&self, request: &Request) -> Result<(), HostRefusal> {
        self.check_host_port(request.host(), request.port())
    }

    /// Like [`HostPolicy::check`], for a host and port obtained elsewhere.
    /// The host is checked first.
    pub fn check_host_port(&self, host: &Host, port: Option<u16>) -> Result<(), HostRefusal> {
        if !self.matches(host) {
            return Err(if host.is_ip() {
                HostRefusal::IpLiteral
            } else {
                HostRefusal::UnknownHost
            });
        }
        match port {
            Some(requested) if requested != self.port => Err(HostRefusal::WrongPort {
                expected: self.port,
                requested,
            }),
            _ => Ok(()),
        }
    }
}

/// Normalises one configuration entry.
fn parse_pattern(entry: &str) -> Result<Pattern, HostError> {
    if let Some(suffix) = entry.strip_prefix("*.") {
        if suffix.contains('*') {
            return Err(HostError::Wildcard);
        }
        return match normalise_host(suffix)? {
            Host::Domain(name) => Ok(Pattern::OneLabelUnder(format!(".{name}"))),
            Host::Ipv4(_) | Host::Ipv6(_) => Err(HostError::Wildcard),
        };
    }
    if entry.contains('*') {
        return Err(HostError::Wildcard);
    }
    // Convenience for configuration files: a bare IPv6 address.
    if let Ok(addr) = entry.parse::<Ipv6Addr>() {
        return Ok(Pattern::Exact(Host::Ipv6(addr)));
    }
    normalise_host(entry).map(Pattern::Exact)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemini::request::{parse_request, Parsed, RequestError};

    fn domain(name: &str) -> Host {
        Host::Domain(name.to_owned())
    }

    /// Parses a whole request line and applies `policy`.
    fn verdict(policy: &HostPolicy, url: &str) -> Result<Result<(), HostRefusal>, RequestError> {
        let line = format!("{url}\r\n");
        match parse_request(line.as_bytes())? {
            Parsed::Complete { request, .. } => Ok(policy.check(&request)),
            Parsed::Partial => panic!("complete line reported partial"),
        }
    }

    fn localhost_policy() -> HostPolicy {
        HostPolicy::new(["localhost"], 1965).unwrap()
    }

    #[test]
    fn normalises_case_trailing_dot_and_percent_encoding() {
        assert_eq!(normalise_host("LocalHost."), Ok(domain("localhost")));
        assert_eq!(normalise_host("%6cocalhost"), Ok(domain("localhost")));
        assert_eq!(normalise_host("%4C%4fCALHOST"), Ok(domain("localhost")));
        assert_eq!(normalise_host("Example.ORG"), Ok(domain("example.org")));
        assert_eq!(normalise_host("_srv.example"), Ok(domain("_srv.example")));
    }

    #[test]
    fn classifies_ip_literals() {
        assert_eq!(
            normalise_host("127.0.0.1"),
            Ok(Host::Ipv4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            normalise_host("127.0.0.1."),
            Ok(Host::Ipv4(Ipv4Addr::LOCALHOST))
        );
        assert_eq!(normalise_host("[::1]"), Ok(Host::Ipv6(Ipv6Addr::LOCALHOST)));
        assert_eq!(
            normalise_host("[0:0:0:0:0:0:0:1]"),
            Ok(Host::Ipv6(Ipv6Addr::LOCALHOST))
        );
        // Shorthand and hex forms are not addresses here, only odd names.
        assert_eq!(normalise_host("127.1"), Ok(domain("127.1")));
        assert_eq!(normalise_host("0x7f.0.0.1"), Ok(domain("0x7f.0.0.1")));
    }

    #[test]
    fn keeps_unicode_names_unmapped() {
        assert_eq!(
            normalise_host("B%C3%BCcher.example"),
            Ok(domain("bücher.example"))
        );
        assert_ne!(
            normalise_host("bücher.example"),
            normalise_host("xn--bcher-kva.example")
        );
    }

    #[test]
    fn rejects_malformed_hosts() {
        let long_label = "a".repeat(MAX_LABEL_LEN + 1);
        let long_name = vec!["a".repeat(60); 5].join(".");
        let cases: [(&str, HostError); 16] = [
            ("", HostError::Empty),
            (".", HostError::Empty),
            ("%2e", HostError::Empty),
            ("host%", HostError::InvalidPercentEncoding),
            ("host%zz", HostError::InvalidPercentEncoding),
            ("%ff", HostError::NotUtf8),
            ("host%00", HostError::InvalidCharacter),
            ("ho%20st", HostError::InvalidCharacter),
            ("evil.com%2f", HostError::InvalidCharacter),
            ("a@b", HostError::InvalidCharacter),
            ("%5b::1%5d", HostError::InvalidCharacter),
            ("localhost..", HostError::EmptyLabel),
            (".localhost", HostError::EmptyLabel),
            (&long_label, HostError::LabelTooLong),
            (&long_name, HostError::TooLong),
            ("[::1", HostError::InvalidIpLiteral),
        ];
        for (raw, want) in cases {
            assert_eq!(normalise_host(raw), Err(want), "{raw:?}");
        }
        assert_eq!(
            normalise_host("[1.2.3.4]"),
            Err(HostError::InvalidIpLiteral)
        );
        assert_eq!(normalise_host("[]"), Err(HostError::InvalidIpLiteral));
    }

    #[test]
    fn accepts_configured_host_in_any_spelling() {
        let policy = localhost_policy();
        for url in [
            "gemini://localhost/",
            "GEMINI://LocalHost./",
            "gemini://%6cocalhost/",
            "gemini://localhost:1965/",
            "gemini://localhost",
            "gemini://LOCALHOST:1965/a?b",
        ] {
            assert_eq!(verdict(&policy, url), Ok(Ok(())), "{url}");
        }
    }

    #[test]
    fn refuses_other_hosts_ips_and_ports() {
        let policy = localhost_policy();
        let refused = [
            ("gemini://evil.com/", HostRefusal::UnknownHost),
            ("gemini://localhost.evil.com/", HostRefusal::UnknownHost),
            ("gemini://evil.localhost/", HostRefusal::UnknownHost),
            ("gemini://localhost%2eevil.com/", HostRefusal::UnknownHost),
            ("gemini://127.0.0.1/", HostRefusal::IpLiteral),
            ("gemini://[::1]/", HostRefusal::IpLiteral),
            (
                "gemini://localhost:1966/",
                HostRefusal::WrongPort {
                    expected: 1965,
                    requested: 1966,
                },
            ),
            (
                "gemini://localhost:0/",
                HostRefusal::WrongPort {
                    expected: 1965,
                    requested: 0,
                },
            ),
        ];
        for (url, want) in refused {
            assert_eq!(verdict(&policy, url), Ok(Err(want)), "{url}");
            assert_eq!(want.status().code(), 53);
        }
    }

    #[test]
    fn malformed_hosts_and_ports_fail_before_the_policy() {
        let policy = localhost_policy();
        assert_eq!(
            verdict(&policy, "gemini://localhost:65536/"),
            Err(RequestError::InvalidPort)
        );
        assert_eq!(
            verdict(&policy, "gemini://localhost%00/"),
            Err(RequestError::InvalidHost(HostError::InvalidCharacter))
        );
        assert_eq!(
            verdict(&policy, "gemini://local%host/"),
            Err(RequestError::InvalidHost(HostError::InvalidPercentEncoding))
        );
    }

    #[test]
    fn ip_literals_when_listed_or_allowed() {
        let listed = HostPolicy::new(["127.0.0.1", "::1"], 1965).unwrap();
        assert_eq!(verdict(&listed, "gemini://127.0.0.1/"), Ok(Ok(())));
        assert_eq!(verdict(&listed, "gemini://[::1]:1965/"), Ok(Ok(())));
        assert_eq!(
            verdict(&listed, "gemini://10.0.0.1/"),
            Ok(Err(HostRefusal::IpLiteral))
        );
        assert_eq!(
            verdict(&listed, "gemini://localhost/"),
            Ok(Err(HostRefusal::UnknownHost))
        );

        let any_ip = localhost_policy().allow_ip_literals(true);
        assert_eq!(verdict(&any_ip, "gemini://10.0.0.1/"), Ok(Ok(())));
        assert_eq!(verdict(&any_ip, "gemini://[2001:db8::1]/"), Ok(Ok(())));
        assert_eq!(
            verdict(&any_ip, "gemini://10.0.0.1:1966/"),
            Ok(Err(HostRefusal::WrongPort {
                expected: 1965,
                requested: 1966
            }))
        );
        // Allowing addresses does not widen names.
        assert_eq!(
            verdict(&any_ip, "gemini://evil.com/"),
            Ok(Err(HostRefusal::UnknownHost))
        );
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let policy = HostPolicy::new(["*.Example.ORG.", "example.org"], 1965).unwrap();
        assert!(policy.matches(&domain("a.example.org")));
        assert!(policy.matches(&domain("example.org")));
        assert!(!policy.matches(&domain("a.b.example.org")));
        assert!(!policy.matches(&domain("aexample.org")));
        assert!(!policy.matches(&domain("example.org.evil")));
        assert_eq!(verdict(&policy, "gemini://WWW.example.org./"), Ok(Ok(())));
    }

    #[test]
    fn configuration_entries_are_validated() {
        assert_eq!(HostPolicy::new(["*"], 1).unwrap_err(), HostError::Wildcard);
        assert_eq!(
            HostPolicy::new(["a.*.org"], 1).unwrap_err(),
            HostError::Wildcard
        );
        assert_eq!(
            HostPolicy::new(["*.*.org"], 1).unwrap_err(),
            HostError::Wildcard
        );
        assert_eq!(
            HostPolicy::new(["*.10.0.0.1"], 1).unwrap_err(),
            HostError::Wildcard
        );
        assert_eq!(
            HostPolicy::new(["a b"], 1).unwrap_err(),
            HostError::InvalidCharacter
        );
        assert_eq!(HostPolicy::new([""], 1).unwrap_err(), HostError::Empty);
        let empty = HostPolicy::new(Vec::<String>::new(), 1965).unwrap();
        assert!(!empty.matches(&domain("localhost")));
        assert_eq!(empty.port(), 1965);
    }

    #[test]
    fn display_uses_url_form() {
        assert_eq!(domain("a.b").to_string(), "a.b");
        assert_eq!(Host::Ipv4(Ipv4Addr::LOCALHOST).to_string(), "127.0.0.1");
        assert_eq!(Host::Ipv6(Ipv6Addr::LOCALHOST).to_string(), "[::1]");
    }
}
