//! Certificate serial numbers as text, from the DER integer's bytes.
//!
//! Written here rather than through `num-bigint`'s `Display` because that
//! is the binary's only use of `libm` (`log2`, to size its output): without
//! it `libm.so` is not loaded at all, a third of a MiB of resident memory
//! less at idle (issue 8's footprint goal). It also bounds the work: a
//! client can present a self-signed certificate with a serial thousands of
//! octets long, and decimal conversion is quadratic in that length.

use super::certs::push_hex_upper;

/// Longest serial (in octets, after leading zeros) given in decimal.
/// RFC 5280 allows 20; CAs that forget the sign rule send 21.
pub(crate) const MAX_DECIMAL_OCTETS: usize = 64;

/// The serial's magnitude: its big-endian bytes without leading zeros (a
/// DER integer starts with 0x00 when its top bit is set).
fn magnitude(be: &[u8]) -> &[u8] {
    let first = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    be.get(first..).unwrap_or_default()
}

/// Upper-case hex without leading zeros (`"0"` for zero), as Jetforce
/// applications print it (`f"{serial:X}"`).
pub(crate) fn hex(be: &[u8]) -> String {
    let m = magnitude(be);
    let mut out = String::with_capacity(m.len() * 2);
    push_hex_upper(&mut out, m);
    match out.find(|c| c != '0') {
        Some(0) => out,
        Some(i) => out.split_off(i),
        None => "0".to_string(),
    }
}

/// Decimal digits (`"0"` for zero), as Jetforce's `TLS_CLIENT_SERIAL_NUMBER`
/// (a Python int). `None` when the serial is longer than
/// [`MAX_DECIMAL_OCTETS`].
pub(crate) fn decimal(be: &[u8]) -> Option<String> {
    const CHUNK: u64 = 1_000_000_000; // nine decimal digits per division
    let m = magnitude(be);
    if m.len() > MAX_DECIMAL_OCTETS {
        return None;
    }
    // Big-endian base-2^32 limbs; each pass divides the whole number by
    // 10^9 and keeps the remainder as the next nine digits.
    let mut limbs: Vec<u32> = Vec::with_capacity(m.len().div_ceil(4));
    let head = m.len() % 4;
    if head != 0 {
        limbs.push(
            m.iter()
                .take(head)
                .fold(0, |acc, &b| acc << 8 | u32::from(b)),
        );
    }
    for word in m.get(head..).unwrap_or_default().chunks_exact(4) {
        limbs.push(word.iter().fold(0, |acc, &b| acc << 8 | u32::from(b)));
    }
    let mut chunks: Vec<u32> = Vec::new(); // least significant first
    while limbs.iter().any(|&l| l != 0) {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut() {
            let cur = rem << 32 | u64::from(*limb);
            // cur < CHUNK * 2^32, so the quotient fits in 32 bits.
            *limb = u32::try_from(cur / CHUNK).unwrap_or(u32::MAX);
            rem = cur % CHUNK;
        }
        chunks.push(u32::try_from(rem).unwrap_or(0));
        let zeros = limbs.iter().take_while(|&&l| l == 0).count();
        limbs.drain(..zeros);
    }
    let Some((top, rest)) = chunks.split_last() else {
        return Some("0".to_string());
    };
    let mut out = top.to_string();
    for chunk in rest.iter().rev() {
        out.push_str(&format!("{chunk:09}"));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_match_the_integers() {
        for v in [
            0u128,
            1,
            9,
            10,
            255,
            256,
            999_999_999,
            1_000_000_000,
            0x0001_ABCD_EF42,
        ] {
            let be = v.to_be_bytes();
            assert_eq!(decimal(&be).unwrap(), v.to_string(), "{v}");
            assert_eq!(hex(&be), format!("{v:X}"), "{v}");
        }
        assert_eq!(decimal(&[]).unwrap(), "0");
        assert_eq!(hex(&[]), "0");
    }

    #[test]
    fn twenty_octets_with_a_sign_byte() {
        // The largest serial RFC 5280 allows, DER-encoded with its 0x00.
        let mut be = vec![0x00];
        be.extend([0xFF; 20]);
        assert_eq!(
            decimal(&be).unwrap(),
            "1461501637330902918203684832716283019655932542975" // 2^160 - 1
        );
        assert_eq!(hex(&be), "F".repeat(40));
    }

    #[test]
    fn every_width_agrees_with_u128() {
        let mut x: u128 = 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210;
        for _ in 0..128 {
            let be = x.to_be_bytes();
            assert_eq!(decimal(&be).unwrap(), x.to_string());
            assert_eq!(hex(&be), format!("{x:X}"));
            x >>= 1;
        }
    }

    #[test]
    fn absurdly_long_serials_get_hex_only() {
        let be = vec![0x7F; MAX_DECIMAL_OCTETS + 1];
        assert_eq!(decimal(&be), None);
        assert_eq!(hex(&be).len(), 2 * (MAX_DECIMAL_OCTETS + 1));
        assert!(decimal(&be[1..]).is_some());
    }
}
