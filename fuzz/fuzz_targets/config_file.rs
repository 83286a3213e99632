//! The TOML configuration file: `server/config.rs` (`parse`, `validate`,
//! `parse_duration`), included by path since it lives in the binary crate;
//! then what the server does with the values (quotas, allow-lists,
//! origins, Gemini host names).
//!
//! Input: the file's bytes. Non-UTF-8 input is skipped, as the server's
//! `read_to_string` refuses it before parsing.
//!
//! Properties:
//! - never panics, whatever the file holds (the values are handed to the
//!   quota, CIDR, origin and host-name parsers too, as the server does);
//! - a TOML or schema error (unknown key, wrong type, bad value) carries
//!   the file name and a line number;
//! - an accepted file passes every documented check: workers >= 1, refusal
//!   `reply` or `drop`, redirect code 301 or 308, `proxy_from` listed when
//!   `proxy_protocol` is on, durations within a year;
//! - `parse_duration` of any text is `None` or a duration within a year.

#![no_main]

#[allow(dead_code)]
#[path = "../../server/config.rs"]
mod config;

use std::path::Path;
use std::time::Duration;

use config::{parse, parse_duration, Common, ConfigError, FileConfig};
use libfuzzer_sys::fuzz_target;
use torsion_protocols::gemini::HostPolicy;
use torsion_protocols::websocket::OriginPolicy;
use torsion_reactor::gate::{AllowList, RateQuota};

const YEAR: Duration = Duration::from_secs(31_536_000);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(d) = parse_duration(text) {
        assert!(d <= YEAR, "{text:?} -> {d:?}");
    }
    match parse(text, Path::new("fuzz.toml")) {
        Ok(config) => check_config(&config),
        Err(ConfigError::Parse { path, message }) => {
            assert_eq!(path, Path::new("fuzz.toml"));
            assert!(has_line_number(&message), "no line number in: {message}");
        }
        Err(ConfigError::Invalid { key, message, .. }) => {
            assert!(!key.is_empty() && !message.is_empty());
        }
        Err(ConfigError::Read { .. }) => panic!("parse never reads a file"),
    }
});

/// Whether toml's message has the `line N` it puts in its first line.
fn has_line_number(message: &str) -> bool {
    message
        .split("line ")
        .skip(1)
        .any(|rest| rest.bytes().next().is_some_and(|b| b.is_ascii_digit()))
}

fn check_config(c: &FileConfig) {
    assert_ne!(c.server.workers, Some(0));
    for d in [c.server.shutdown_timeout, c.tls.handshake_timeout]
        .into_iter()
        .flatten()
    {
        assert!(d <= YEAR);
    }
    let _ = AllowList::parse(c.gate.allow.iter().map(String::as_str));

    let commons = c
        .echo
        .iter()
        .map(|l| l.common())
        .chain(c.gemini.iter().map(|l| l.common()))
        .chain(c.http.iter().map(|l| l.common()))
        .chain(c.websocket.iter().map(|l| l.common()));
    for common in commons {
        check_common(&common);
    }
    for g in &c.gemini {
        for d in [g.cgi_timeout, g.request_timeout].into_iter().flatten() {
            assert!(d <= YEAR);
        }
        let port = g.port.unwrap_or(1965);
        let _ = HostPolicy::new(g.hostname.iter(), port);
        for v in &g.vhost {
            let _ = HostPolicy::new(v.hostname.iter(), port);
        }
    }
    for h in &c.http {
        assert!(matches!(h.redirect_code, None | Some(301) | Some(308)));
    }
    for w in &c.websocket {
        if let Some(d) = w.ping_interval {
            assert!(d <= YEAR);
        }
        let _ = OriginPolicy::new(w.origins.iter());
    }
}

fn check_common(common: &Common<'_>) {
    assert!(matches!(
        common.refusal,
        None | Some("reply") | Some("drop")
    ));
    if common.proxy_protocol {
        assert!(!common.proxy_from.is_empty());
    }
    let _ = AllowList::parse(common.proxy_from.iter().map(String::as_str));
    if let Some(q) = common.rate_limit {
        if let Ok(quota) = RateQuota::parse(q) {
            if let Some(burst) = common.rate_burst {
                let _ = quota.with_burst(burst).map(|q| q.to_governor());
            }
        }
    }
}
