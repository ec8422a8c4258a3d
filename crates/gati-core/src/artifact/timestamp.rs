//! RFC 3339 timestamps and calendar dates, checked without a clock or a time library.

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
pub(crate) fn is_date(s: &str) -> bool {
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
}
