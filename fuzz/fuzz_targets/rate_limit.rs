//! The accept gate's text syntaxes: `--rate-limit` quotas
//! (`RateQuota::parse`, Jetforce's `60/5m`), `--allow` / `proxy_from`
//! blocks (`Cidr::parse`, `AllowList::parse`) and `--refusal`.
//!
//! Input: the text of a flag value (non-UTF-8 input is skipped: flags and
//! the TOML file are text).
//!
//! Properties:
//! - never panics;
//! - a parsed quota is sane (count >= 1, 0 < interval, period within a
//!   year, burst = count, interval * count <= period) and its `Display`
//!   parses back to an equal quota; with another burst its `Display` (minus
//!   the burst note) still gives the base quota;
//! - a parsed CIDR's `Display` parses back to it, and it contains its own
//!   network address;
//! - an allow-list of comma-separated entries is the list of their CIDRs,
//!   or names the first entry that fails with that entry's own error.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use torsion_reactor::gate::quota::{MAX_QUOTA_PERIOD, MAX_QUOTA_TEXT};
use torsion_reactor::gate::{AllowList, Cidr, RateQuota, RefusalPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    match RateQuota::parse(text) {
        Ok(q) => check_quota(text, q),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    assert_eq!(text.parse::<RateQuota>(), RateQuota::parse(text));

    if let Ok(cidr) = Cidr::parse(text) {
        check_cidr(cidr);
    }

    let entries: Vec<&str> = text.split(',').collect();
    match AllowList::parse(entries.iter().copied()) {
        Ok(list) => {
            assert_eq!(list.blocks().len(), entries.len());
            for (entry, block) in entries.iter().zip(list.blocks()) {
                assert_eq!(Cidr::parse(entry), Ok(*block));
            }
        }
        Err((entry, error)) => {
            let at = entries
                .iter()
                .position(|e| *e == entry)
                .expect("the failing entry is one of the entries");
            assert!(entries[..at].iter().all(|e| Cidr::parse(e).is_ok()));
            assert_eq!(Cidr::parse(&entry), Err(error));
        }
    }

    let _ = text.parse::<RefusalPolicy>();
});

fn check_quota(text: &str, q: RateQuota) {
    assert!(text.trim().len() <= MAX_QUOTA_TEXT);
    assert!(q.count() >= 1);
    assert_eq!(q.burst(), q.count());
    assert!(q.interval() > Duration::ZERO);
    assert!(q.period() > Duration::ZERO && q.period() <= MAX_QUOTA_PERIOD);
    assert!(q.interval() * q.count() <= q.period());
    assert_eq!(q.window(), q.interval() * q.burst());
    let _ = q.to_governor();

    let shown = q.to_string();
    assert_eq!(
        RateQuota::parse(&shown),
        Ok(q),
        "{text:?} shown as {shown:?}"
    );

    // Another burst is shown as a note after the quota.
    let burst = q.count().wrapping_add(1).max(1);
    if let Ok(b) = q.with_burst(burst) {
        assert_eq!(b.burst(), burst);
        let shown = b.to_string();
        let base = shown.split(" (burst ").next().unwrap_or_default();
        assert_eq!(RateQuota::parse(base), Ok(q), "{shown:?}");
        let _ = b.to_governor();
        let _ = b.window();
    }
    assert!(q.with_burst(0).is_err());
}

fn check_cidr(cidr: Cidr) {
    let shown = cidr.to_string();
    assert_eq!(Cidr::parse(&shown), Ok(cidr), "{shown:?}");
    let network = match cidr {
        Cidr::V4 { network, prefix } => {
            assert!(prefix <= 32);
            IpAddr::V4(Ipv4Addr::from_bits(network))
        }
        Cidr::V6 { network, prefix } => {
            assert!(prefix <= 128);
            IpAddr::V6(Ipv6Addr::from_bits(network))
        }
    };
    assert!(
        cidr.contains(network),
        "{shown} does not contain its network"
    );
}
