//! Who counts as one client, and which clients are exempt.
//!
//! An IPv4 client is its address. An IPv6 client is its /64 (configurable):
//! a single host is routinely given a whole /64, so keying by full address
//! would let one machine rotate through 2^64 keys. An IPv4-mapped IPv6
//! address (`::ffff:1.2.3.4`, what a dual-stack socket or a PROXY header may
//! report) is the IPv4 client it maps.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// IPv6 clients are keyed by this many leading bits unless configured
/// otherwise: /64 is the smallest block a site is normally given.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The rate limiter's key for one client: an IPv4 address, or an IPv6
/// address with everything after the configured prefix zeroed.
///
/// Kept as byte arrays (17 bytes, alignment 1) so that the limiter's table
/// of millions of keys stays small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 client (including IPv4-mapped IPv6).
    V4([u8; 4]),
    /// An IPv6 client's network prefix, host bits zeroed.
    V6([u8; 16]),
}

impl ClientKey {
    /// The key for `ip`: IPv4 (and IPv4-mapped IPv6) by address, other IPv6
    /// by its first `ipv6_prefix` bits (values above 128 mean 128).
    pub fn from_ip(ip: IpAddr, ipv6_prefix: u8) -> ClientKey {
        match canonical_ip(ip) {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let masked = v6.to_bits() & prefix_mask_v6(ipv6_prefix);
                ClientKey::V6(masked.to_be_bytes())
            }
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(o) => write!(f, "{}", Ipv4Addr::from(*o)),
            ClientKey::V6(o) => write!(f, "{}/prefix", Ipv6Addr::from(*o)),
        }
    }
}

/// IPv4-mapped IPv6 becomes plain IPv4; everything else is unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn prefix_mask_v4(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

fn prefix_mask_v6(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - u32::from(p)),
    }
}

/// An address block such as `10.0.0.0/8`, `2001:db8::/32` or a single
/// address (`192.0.2.7` = `/32`, `::1` = `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    /// An IPv4 block: network bits and mask.
    V4 {
        /// The network address (host bits zero).
        network: u32,
        /// The prefix length, 0..=32.
        prefix: u8,
    },
    /// An IPv6 block: network bits and mask.
    V6 {
        /// The network address (host bits zero).
        network: u128,
        /// The prefix length, 0..=128.
        prefix: u8,
    },
}

/// Why a CIDR block was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CidrError {
    /// The part before `/` is not an IPv4 or IPv6 address.
    BadAddress,
    /// The part after `/` is not a decimal number.
    BadPrefix,
    /// The prefix is longer than the address (over 32 for IPv4, 128 for
    /// IPv6).
    PrefixTooLong,
    /// The address has bits set past the prefix (`10.1.2.3/8`): probably a
    /// typo for the network (`10.0.0.0/8`) or for a single host.
    HostBitsSet,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CidrError::BadAddress => {
                "not an IP address (expected e.g. 192.0.2.0/24 or 2001:db8::/32)"
            }
            CidrError::BadPrefix => "prefix length is not a number",
            CidrError::PrefixTooLong => "prefix length is longer than the address",
            CidrError::HostBitsSet => {
                "address has bits set after the prefix (write the network address, e.g. 10.0.0.0/8)"
            }
        })
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// Parses `ADDR` or `ADDR/PREFIX`. An IPv4-mapped IPv6 block
    /// (`::ffff:10.0.0.0/104`) is turned into the IPv4 block it covers.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress)?;
        let prefix = match prefix {
            None => None,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse::<u8>().map_err(|_| CidrError::PrefixTooLong)?)
            }
            Some(_) => return Err(CidrError::BadPrefix),
        };
        match ip {
            IpAddr::V4(v4) => Cidr::v4(v4, prefix.unwrap_or(32)),
            IpAddr::V6(v6) => match (v6.to_ipv4_mapped(), prefix) {
                (Some(v4), None) => Cidr::v4(v4, 32),
                (Some(v4), Some(p)) if p >= 96 => Cidr::v4(v4, p - 96),
                _ => Cidr::v6(v6, prefix.unwrap_or(128)),
            },
        }
    }

    fn v4(addr: Ipv4Addr, prefix: u8) -> Result<Cidr, CidrError> {
        if prefix > 32 {
            return Err(CidrError::PrefixTooLong);
        }
        let bits = addr.to_bits();
        if bits & !prefix_mask_v4(prefix) != 0 {
            return Err(CidrError::HostBitsSet);
        }
        Ok(Cidr::V4 {
            network: bits,
            prefix,
        })
    }

    fn v6(addr: Ipv6Addr, prefix: u8) -> Result<Cidr, CidrError> {
        if prefix > 128 {
            return Err(CidrError::PrefixTooLong);
        }
        let bits = addr.to_bits();
        if bits & !prefix_mask_v6(prefix) != 0 {
            return Err(CidrError::HostBitsSet);
        }
        Ok(Cidr::V6 {
            network: bits,
            prefix,
        })
    }

    /// True if `ip` is inside this block (IPv4-mapped IPv6 is matched as
    /// IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self, canonical_ip(ip)) {
            (Cidr::V4 { network, prefix }, IpAddr::V4(a)) => {
                a.to_bits() & prefix_mask_v4(*prefix) == *network
            }
            (Cidr::V6 { network, prefix }, IpAddr::V6(a)) => {
                a.to_bits() & prefix_mask_v6(*prefix) == *network
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cidr::parse(s)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4 { network, prefix } => write!(f, "{}/{prefix}", Ipv4Addr::from_bits(*network)),
            Cidr::V6 { network, prefix } => write!(f, "{}/{prefix}", Ipv6Addr::from_bits(*network)),
        }
    }
}

/// Addresses that are never rate limited nor capped (`--gate-allow`, e.g. a
/// monitoring host or the operator's own network).
///
/// A linear scan: allow-lists are a handful of entries, and a scan over a
/// few masks is faster than any tree at that size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    blocks: Vec<Cidr>,
}

impl AllowList {
    /// An empty list: nobody is exempt.
    pub fn new() -> AllowList {
        AllowList::default()
    }

    /// Parses each entry as a [`Cidr`]; the first bad entry is returned
    /// with its error.
    pub fn parse<'a, I>(entries: I) -> Result<AllowList, (String, CidrError)>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut list = AllowList::new();
        for e in entries {
            list.push(Cidr::parse(e).map_err(|err| (e.to_string(), err))?);
        }
        Ok(list)
    }

    /// Adds a block.
    pub fn push(&mut self, block: Cidr) {
        self.blocks.push(block);
    }

    /// True if `ip` is in any block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.blocks.is_empty() && self.blocks.iter().any(|b| b.contains(ip))
    }

    /// True if nobody is exempt.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The blocks, in the order given.
    pub fn blocks(&self) -> &[Cidr] {
        &self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_keyed_by_address() {
        let a = ClientKey::from_ip(ip("192.0.2.1"), 64);
        let b = ClientKey::from_ip(ip("192.0.2.2"), 64);
        assert_eq!(a, ClientKey::V4([192, 0, 2, 1]));
        assert_ne!(a, b);
    }

    #[test]
    fn ipv6_same_slash64_shares_a_key() {
        let a = ClientKey::from_ip(ip("2001:db8:1:2:aaaa::1"), 64);
        let b = ClientKey::from_ip(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 64);
        assert_eq!(a, b);
        assert_eq!(a, ClientKey::V6(ip6_bytes("2001:db8:1:2::")));
    }

    #[test]
    fn ipv6_different_slash64s_do_not() {
        let a = ClientKey::from_ip(ip("2001:db8:1:2::1"), 64);
        let b = ClientKey::from_ip(ip("2001:db8:1:3::1"), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn ipv6_prefix_is_configurable() {
        let a = ip("2001:db8:1:2::1");
        let b = ip("2001:db8:1:3::1");
        assert_eq!(ClientKey::from_ip(a, 48), ClientKey::from_ip(b, 48));
        assert_eq!(ClientKey::from_ip(a, 56), ClientKey::from_ip(b, 56));
        assert_ne!(ClientKey::from_ip(a, 64), ClientKey::from_ip(b, 64));
        let c = ip("2001:db8:1:2::2");
        assert_ne!(ClientKey::from_ip(a, 128), ClientKey::from_ip(c, 128));
        assert_ne!(ClientKey::from_ip(a, 200), ClientKey::from_ip(c, 200));
        assert_eq!(ClientKey::from_ip(a, 0), ClientKey::from_ip(ip("::1"), 0));
        // /61 splits inside a hex digit.
        let d = ip("2001:db8:1:7::1");
        let e = ip("2001:db8:1:8::1");
        assert_eq!(ClientKey::from_ip(c, 61), ClientKey::from_ip(d, 61));
        assert_ne!(ClientKey::from_ip(d, 61), ClientKey::from_ip(e, 61));
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let mapped = ClientKey::from_ip(ip("::ffff:198.51.100.7"), 64);
        assert_eq!(mapped, ClientKey::from_ip(ip("198.51.100.7"), 64));
        assert_eq!(mapped, ClientKey::V4([198, 51, 100, 7]));
        // Two mapped addresses in one /64 are still two IPv4 clients.
        assert_ne!(mapped, ClientKey::from_ip(ip("::ffff:198.51.100.8"), 64));
    }

    #[test]
    fn key_is_small() {
        assert_eq!(std::mem::size_of::<ClientKey>(), 17);
    }

    fn ip6_bytes(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(c.contains(ip("::ffff:10.1.1.1")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("::a00:1")));

        let h: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(h.to_string(), "192.0.2.7/32");
        assert!(h.contains(ip("192.0.2.7")));
        assert!(!h.contains(ip("192.0.2.8")));

        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));

        let one: Cidr = "[::1]".parse().unwrap();
        assert_eq!(one.to_string(), "::1/128");
        assert!(one.contains(ip("::1")));

        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));

        let mapped: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        let mapped_host: Cidr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(mapped_host, "10.0.0.1/32".parse().unwrap());
    }

    #[test]
    fn cidr_errors() {
        let cases: &[(&str, CidrError)] = &[
            ("", CidrError::BadAddress),
            ("localhost", CidrError::BadAddress),
            ("10.0.0/8", CidrError::BadAddress),
            ("10.0.0.0/", CidrError::BadPrefix),
            ("10.0.0.0/x", CidrError::BadPrefix),
            ("10.0.0.0/-1", CidrError::BadPrefix),
            ("10.0.0.0/33", CidrError::PrefixTooLong),
            ("10.0.0.0/999", CidrError::PrefixTooLong),
            ("::/129", CidrError::PrefixTooLong),
            ("10.1.2.3/8", CidrError::HostBitsSet),
            ("2001:db8::1/64", CidrError::HostBitsSet),
        ];
        for (text, want) in cases {
            assert_eq!(Cidr::parse(text), Err(*want), "{text:?}");
        }
    }

    #[test]
    fn allow_list() {
        let list = AllowList::parse(["127.0.0.0/8", "2001:db8::/48", "192.0.2.9"]).unwrap();
        assert_eq!(list.blocks().len(), 3);
        assert!(list.contains(ip("127.0.0.2")));
        assert!(list.contains(ip("::ffff:127.0.0.1")));
        assert!(list.contains(ip("2001:db8:0:ffff::1")));
        assert!(list.contains(ip("192.0.2.9")));
        assert!(!list.contains(ip("192.0.2.10")));
        assert!(!list.contains(ip("2001:db8:1::1")));
        assert!(!AllowList::new().contains(ip("127.0.0.1")));
        assert!(AllowList::new().is_empty());

        let err = AllowList::parse(["10.0.0.0/8", "nope"]).unwrap_err();
        assert_eq!(err, ("nope".to_string(), CidrError::BadAddress));
    }
}
