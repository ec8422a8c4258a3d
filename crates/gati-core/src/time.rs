//! RFC 3339 timestamps and calendar dates, checked and formatted without a clock or a time
//! library (civil-from-days and days-from-civil, proleptic Gregorian). The one place the workspace
//! turns seconds since the epoch into dates and back.

/// Whether `s` is an RFC 3339 date-time such as `2025-11-23T10:00:00Z` or
/// `2025-11-23T10:00:00.123+05:30`.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    // `get` rather than slicing: byte 10 may fall inside a multi-byte character of hostile input.
    if b.len() < 20 || !s.get(..10).is_some_and(is_date) || !matches!(b[10], b'T' | b't') {
        return false;
    }
    let time = &b[11..];
    let two = |i: usize, max: u32| digits(&time[i..i + 2]).is_some_and(|n| n <= max);
    if time.len() < 9 || time[2] != b':' || time[5] != b':' || !two(0, 23) || !two(3, 59) || !two(6, 60) {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            digits(&[*h1, *h2]).is_some_and(|h| h <= 23) && digits(&[*m1, *m2]).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// Whether `s` is a calendar date `YYYY-MM-DD` that exists.
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(y), Some(m), Some(d)) = (digits(&b[0..4]), digits(&b[5..7]), digits(&b[8..10])) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp: `2025-11-23T10:00:00Z`.
pub fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since the epoch as a date: `2026-11-25`.
pub fn day_text(day: u32) -> String {
    let mut text = rfc3339(u64::from(day) * 86_400);
    text.truncate(10);
    text
}

/// A date `YYYY-MM-DD` (1970 or later) as days since the epoch.
pub fn parse_day(text: &str) -> Option<u32> {
    if !is_date(text) {
        return None;
    }
    let b = text.as_bytes();
    let (y, m, d) = (i64::from(digits(&b[0..4])?), i64::from(digits(&b[5..7])?), i64::from(digits(&b[8..10])?));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u32::try_from(era * 146_097 + doe - 719_468).ok()
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |n, c| n * 10 + u32::from(c - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        for ok in ["2025-11-23T10:00:00Z", "2024-02-29T23:59:60.5+05:30", "2025-01-01t00:00:00z"] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "2025-11-23",
            "2025-02-29T10:00:00Z",
            "2025-11-23T24:00:00Z",
            "2025-11-23T10:00:00",
            "2025-11-23T10:00:00.Z",
            "x",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
        assert!(is_date("2025-10-15"));
        assert!(!is_date("2025-13-01"));
    }

    #[test]
    fn formatting_and_day_numbers_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_764_064_800), "2025-11-25T10:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-11-25"), Some(20_782));
        assert_eq!(day_text(20_782), "2026-11-25");
        for bad in ["2026-02-30", "26-11-25", "1969-12-31", "2é26-11-2", "2026-1é-25"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        for day in [0, 59, 60, 365, 11_016, 20_782, 40_000] {
            assert_eq!(parse_day(&day_text(day)), Some(day));
        }
    }
}
