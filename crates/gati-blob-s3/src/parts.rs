//! Multipart arithmetic: how long each part is, how a blob is cut into copy parts, and the `ETag` S3
//! gives a completed multipart object. Pure functions, no IO.
//!
//! Part sizes. Part `n` is `part_size << ((n - 1) / 1000)`, capped at 5 GiB: the configured size
//! for the first thousand parts (8 GB at the default 8 MiB), doubling every thousand after that,
//! so the 10,000-part limit of S3 is never what stops a push (the sizes reach S3's 5 TB object
//! limit first). Memory per upload is `(parts_in_flight + 1)` times the current part length: flat
//! for every blob up to a thousand parts, and growing only in steps beyond. The length depends
//! only on the part number, so a writer resuming a session on another node cuts parts exactly as
//! the first one did.
//!
//! Completed `ETags`. S3, and the compatible servers that copy its scheme (s3s among them), give a
//! completed multipart object the `ETag`
//! `md5(md5(part 1) ‖ … ‖ md5(part n))-n`, where each inner MD5 is that part's own `ETag`. The
//! finisher computes it from the `ETags` *it* recorded and compares: a part overwritten by a stale
//! writer after it was recorded changes the MD5 and is caught, even on a server that does not
//! check part `ETags` when completing.

use md5::{Digest as _, Md5};

/// The smallest part S3 accepts for any part but the last.
pub(crate) const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The largest part S3 accepts.
pub(crate) const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// S3's limit on parts per multipart upload; part numbers are `1..=MAX_PARTS`.
pub(crate) const MAX_PARTS: i32 = 10_000;

/// Parts per size step: the part length doubles after every this many parts.
const PARTS_PER_STEP: i32 = 1000;

/// Returns the length of part `number` (1-based) for a configured `part_size`.
pub(crate) fn part_len(part_size: u64, number: i32) -> u64 {
    debug_assert!((1..=MAX_PARTS).contains(&number), "part numbers are 1..=10000");
    let step = u32::try_from((number.max(1) - 1) / PARTS_PER_STEP).unwrap_or(0);
    part_size.checked_shl(step).unwrap_or(MAX_PART_SIZE).min(MAX_PART_SIZE)
}

/// Cuts `size` bytes into inclusive ranges of at most `copy_part_size` bytes, for `UploadPartCopy`.
pub(crate) fn copy_ranges(size: u64, copy_part_size: u64) -> Vec<(u64, u64)> {
    debug_assert!(copy_part_size > 0);
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < size {
        let end = (start + copy_part_size).min(size) - 1;
        ranges.push((start, end));
        start = end + 1;
    }
    ranges
}

/// Returns the `ETag` a multipart object completed from parts with these `ETags` should get, without
/// quotes; `None` if some part `ETag` is not a plain MD5 (SSE-KMS, some servers), in which case
/// only the server's own part check guards the completion.
pub(crate) fn expected_multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut outer = Md5::new();
    let mut count = 0usize;
    for etag in part_etags {
        let raw = unquote(etag);
        if raw.len() != 32 {
            return None;
        }
        outer.update(hex::decode(raw).ok()?);
        count += 1;
    }
    Some(format!("{}-{count}", hex::encode(outer.finalize())))
}

/// Whether `etag` has the multipart form `<32 hex>-<count>`, i.e. whether it can be compared
/// with [`expected_multipart_etag`].
pub(crate) fn is_multipart_etag(etag: &str) -> bool {
    unquote(etag).split_once('-').is_some_and(|(md5, count)| {
        md5.len() == 32
            && md5.bytes().all(|b| b.is_ascii_hexdigit())
            && !count.is_empty()
            && count.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Strips the double quotes S3 puts around `ETags`.
pub(crate) fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn part_lengths_double_every_thousand_parts_up_to_the_cap() {
        assert_eq!(part_len(8 * MIB, 1), 8 * MIB);
        assert_eq!(part_len(8 * MIB, 1000), 8 * MIB);
        assert_eq!(part_len(8 * MIB, 1001), 16 * MIB);
        assert_eq!(part_len(8 * MIB, 2001), 32 * MIB);
        assert_eq!(part_len(8 * MIB, MAX_PARTS), (8 * MIB) << 9);
        assert_eq!(part_len(MAX_PART_SIZE, MAX_PARTS), MAX_PART_SIZE);
        assert_eq!(part_len(3 * 1024 * MIB, 1001), MAX_PART_SIZE);
        let total: u64 = (1..=MAX_PARTS).map(|n| part_len(8 * MIB, n)).sum();
        assert!(total > 5 * 1024 * 1024 * MIB, "the part limit is never what stops a push");
    }

    #[test]
    fn copy_ranges_cover_the_object_exactly() {
        assert_eq!(copy_ranges(0, 5), vec![]);
        assert_eq!(copy_ranges(5, 5), vec![(0, 4)]);
        assert_eq!(copy_ranges(12, 5), vec![(0, 4), (5, 9), (10, 11)]);
        assert_eq!(copy_ranges(10, 5), vec![(0, 4), (5, 9)]);
    }

    #[test]
    fn multipart_etag_matches_the_s3_formula() {
        // Two parts whose contents are "a" and "b": md5("a") ‖ md5("b"), md5'd again.
        let a = format!("\"{}\"", hex::encode(Md5::digest(b"a")));
        let b = hex::encode(Md5::digest(b"b"));
        let mut joined = Md5::digest(b"a").to_vec();
        joined.extend_from_slice(&Md5::digest(b"b"));
        let want = format!("{}-2", hex::encode(Md5::digest(&joined)));
        assert_eq!(expected_multipart_etag([a.as_str(), b.as_str()]), Some(want.clone()));
        assert!(is_multipart_etag(&format!("\"{want}\"")));
        assert_eq!(expected_multipart_etag(["not-an-md5"]), None);
        assert!(!is_multipart_etag(&a));
        assert!(!is_multipart_etag("\"abc-1\""));
    }
}
