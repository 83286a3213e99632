//! The `Date` header value (IMF-fixdate, RFC 9110 §5.6.7), without a date
//! library, cached per second.
//!
//! At 100k responses per second, formatting a date for each one is waste;
//! [`DateCache`] formats once per second and hands out the same bytes.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;

/// Last second with a four-digit year (9999-12-31T23:59:59Z); later clocks
/// are clamped so the format keeps its fixed width.
const MAX_SECS: u64 = 253_402_300_799;

/// Seconds in a day.
const DAY: u64 = 86_400;

/// Day names, indexed from Sunday.
const WEEKDAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];

/// Month names, indexed from January.
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// (year, month 1..=12, day 1..=31) of a day counted from 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`, restricted to days on or after the
/// epoch so that it works in unsigned arithmetic.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days end each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Formats `secs` since the Unix epoch as an IMF-fixdate.
pub fn format_imf_fixdate(secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    let secs = secs.min(MAX_SECS);
    let days = secs / DAY;
    let in_day = secs % DAY;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[((days + 4) % 7) as usize];
    let month = MONTHS[(month - 1) as usize];

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(weekday);
    two_digits(&mut out[5..7], day);
    out[8..11].copy_from_slice(month);
    two_digits(&mut out[12..14], year / 100);
    two_digits(&mut out[14..16], year % 100);
    two_digits(&mut out[17..19], in_day / 3600);
    two_digits(&mut out[20..22], in_day / 60 % 60);
    two_digits(&mut out[23..25], in_day % 60);
    out
}

/// Writes `n` (< 100) as two ASCII digits into `out`.
fn two_digits(out: &mut [u8], n: u64) {
    let n = n % 100;
    out.copy_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

/// Keeps the formatted `Date` of the current second.
#[derive(Debug, Clone)]
pub struct DateCache {
    /// The second `text` was formatted for; `None` before the first use.
    secs: Option<u64>,
    /// The formatted date.
    text: [u8; IMF_FIXDATE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DateCache {
    /// An empty cache; the first [`DateCache::get`] formats.
    pub fn new() -> Self {
        DateCache {
            secs: None,
            text: format_imf_fixdate(0),
        }
    }

    /// The IMF-fixdate of `now`, re-formatted only when the second changed.
    /// Clocks before 1970 read as the epoch.
    pub fn get(&mut self, now: SystemTime) -> &[u8; IMF_FIXDATE_LEN] {
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.secs != Some(secs) {
            self.text = format_imf_fixdate(secs);
            self.secs = Some(secs);
        }
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fmt(secs: u64) -> String {
        String::from_utf8(format_imf_fixdate(secs).to_vec()).unwrap()
    }

    #[test]
    fn known_dates() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(fmt(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
        assert_eq!(fmt(1_709_251_200), "Fri, 01 Mar 2024 00:00:00 GMT");
        assert_eq!(fmt(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(fmt(1_704_067_199), "Sun, 31 Dec 2023 23:59:59 GMT");
    }

    #[test]
    fn century_rules() {
        // 2100 is not a leap year: 28 Feb is followed by 1 Mar.
        assert_eq!(fmt(4_107_456_000), "Sun, 28 Feb 2100 00:00:00 GMT");
        assert_eq!(fmt(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        // 2400 is.
        assert_eq!(fmt(13_574_563_200), "Tue, 29 Feb 2400 00:00:00 GMT");
    }

    #[test]
    fn far_future_is_clamped() {
        assert_eq!(fmt(MAX_SECS), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(fmt(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn every_day_for_a_few_years_round_trips() {
        // Walk day by day and check the calendar advances by exactly one.
        let mut prev = civil_from_days(0);
        // 1970..=1974 holds one leap year (1972): 5 * 365 + 1 days.
        for days in 1..(5 * 365 + 1) {
            let next = civil_from_days(days);
            let (y, m, d) = prev;
            let advanced = next == (y, m, d + 1) || next == (y, m + 1, 1) || next == (y + 1, 1, 1);
            assert!(advanced, "{prev:?} -> {next:?}");
            prev = next;
        }
        assert_eq!(prev, (1974, 12, 31));
    }

    #[test]
    fn cache_reformats_only_on_new_second() {
        let mut cache = DateCache::new();
        let t = UNIX_EPOCH + Duration::from_millis(784_111_777_100);
        assert_eq!(cache.get(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            cache.get(t + Duration::from_millis(800)),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            cache.get(t + Duration::from_millis(900)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
        // Before the epoch: clamped, no panic.
        assert_eq!(
            cache.get(UNIX_EPOCH - Duration::from_secs(5)),
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(DateCache::default().get(UNIX_EPOCH).len(), IMF_FIXDATE_LEN);
    }
}
