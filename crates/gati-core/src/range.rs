//! HTTP byte ranges: the `Range` request header on blob GETs (RFC 9110 §14) and the
//! `Content-Range` header on chunked upload `PATCH` requests (OCI distribution spec, "Pushing a blob in
//! chunks", which writes it as `<start>-<end>` without the `bytes ` unit).

use crate::error::{CoreError, Result};

/// One byte range from a `Range: bytes=...` header, before the resource size is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-end`, both inclusive (unsatisfiable when `start > end`).
    FromTo(u64, u64),
    /// `bytes=start-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// The outcome of applying a range to a resource of known size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Satisfiable {
    /// Serve bytes `start..=end`.
    Range {
        /// First byte, inclusive.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// The range lies outside the resource: answer 416.
    Unsatisfiable,
}

fn number(s: &str, whole: &str) -> Result<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CoreError::RangeInvalid(whole.chars().take(80).collect()));
    }
    s.parse().map_err(|_| CoreError::RangeInvalid(whole.chars().take(80).collect()))
}

impl ByteRange {
    /// Parses a `Range` header value holding a single range. Multiple ranges are refused: blob
    /// pulls never need them and answering them needs multipart bodies.
    pub fn parse(header: &str) -> Result<ByteRange> {
        let bad = || CoreError::RangeInvalid(header.chars().take(80).collect());
        let spec = header.trim().strip_prefix("bytes=").ok_or_else(bad)?.trim();
        if spec.contains(',') {
            return Err(bad());
        }
        let (first, last) = spec.split_once('-').ok_or_else(bad)?;
        match (first.is_empty(), last.is_empty()) {
            (true, false) => Ok(ByteRange::Suffix(number(last, header)?)),
            (false, true) => Ok(ByteRange::From(number(first, header)?)),
            // `a > b` is well-formed but can never be satisfied; it resolves to 416.
            (false, false) => Ok(ByteRange::FromTo(number(first, header)?, number(last, header)?)),
            (true, true) => Err(bad()),
        }
    }

    /// Applies the range to a resource of `size` bytes.
    pub fn resolve(self, size: u64) -> Satisfiable {
        let range = match self {
            ByteRange::FromTo(a, b) if a <= b && a < size => Some((a, b.min(size - 1))),
            ByteRange::From(a) if a < size => Some((a, size - 1)),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Some((size - n.min(size), size - 1)),
            _ => None,
        };
        match range {
            Some((start, end)) => Satisfiable::Range { start, end },
            None => Satisfiable::Unsatisfiable,
        }
    }
}

/// A `Content-Range` on an upload chunk: the inclusive byte positions the chunk claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte, inclusive.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

impl ContentRange {
    /// Parses `<start>-<end>`, also accepting the RFC form `bytes <start>-<end>[/<total>]` that some
    /// clients send.
    pub fn parse(header: &str) -> Result<ContentRange> {
        let bad = || CoreError::RangeInvalid(header.chars().take(80).collect());
        let s = header.trim();
        let s = s.strip_prefix("bytes").map(str::trim_start).unwrap_or(s);
        let s = s.strip_prefix('=').unwrap_or(s);
        let s = s.split_once('/').map(|(r, _)| r).unwrap_or(s);
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (start, end) = (number(a.trim(), header)?, number(b.trim(), header)?);
        if start > end {
            return Err(bad());
        }
        Ok(ContentRange { start, end })
    }

    /// Returns the number of bytes the range covers.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a content range covers at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ranges() {
        assert_eq!(ByteRange::parse("bytes=0-9").unwrap(), ByteRange::FromTo(0, 9));
        assert_eq!(ByteRange::parse("bytes=5-").unwrap(), ByteRange::From(5));
        assert_eq!(ByteRange::parse("bytes=-3").unwrap(), ByteRange::Suffix(3));
        for bad in ["", "bytes=", "bytes=-", "bytes=0-1,3-4", "items=0-1", "bytes=a-b", "bytes=+1-2"] {
            assert!(ByteRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resolves_against_size() {
        let r = |s: &str, n| ByteRange::parse(s).unwrap().resolve(n);
        assert_eq!(r("bytes=0-9", 5), Satisfiable::Range { start: 0, end: 4 });
        assert_eq!(r("bytes=5-", 5), Satisfiable::Unsatisfiable);
        assert_eq!(r("bytes=-3", 5), Satisfiable::Range { start: 2, end: 4 });
        assert_eq!(r("bytes=-30", 5), Satisfiable::Range { start: 0, end: 4 });
        assert_eq!(r("bytes=-0", 5), Satisfiable::Unsatisfiable);
        assert_eq!(r("bytes=0-0", 0), Satisfiable::Unsatisfiable);
        assert_eq!(r("bytes=500-0", 2048), Satisfiable::Unsatisfiable);
    }

    #[test]
    fn parses_content_ranges() {
        assert_eq!(ContentRange::parse("0-99").unwrap(), ContentRange { start: 0, end: 99 });
        assert_eq!(ContentRange::parse("bytes 100-199/*").unwrap(), ContentRange { start: 100, end: 199 });
        assert_eq!(ContentRange::parse("bytes=5-5").unwrap().len(), 1);
        for bad in ["", "5", "9-1", "-1", "a-b", "1-"] {
            assert!(ContentRange::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn resolved_ranges_stay_inside(a in 0u64..1000, b in 0u64..1000, size in 0u64..1000) {
            for header in [format!("bytes={a}-{}", a + b), format!("bytes={a}-"), format!("bytes=-{b}")] {
                if let Satisfiable::Range { start, end } = ByteRange::parse(&header).unwrap().resolve(size) {
                    prop_assert!(start <= end && end < size);
                }
            }
        }

        #[test]
        fn arbitrary_headers_never_panic(s in ".{0,60}") {
            let _ = ByteRange::parse(&s);
            let _ = ContentRange::parse(&s);
        }
    }
}
