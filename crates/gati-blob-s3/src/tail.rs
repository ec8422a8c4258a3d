//! Which tail segments a sync rewrites. Pure arithmetic, no IO.
//!
//! Bytes short of a full part cannot be a part yet (S3 wants 5 MiB or more for every part but the
//! last), so `sync` makes them durable as *tail segments*: small objects that, in order, hold the
//! start of the part being assembled. Rewriting the whole tail at every sync would cost a full
//! part of traffic per sync; writing only the new bytes would let the segment list (and the record
//! listing it) grow with every sync. The middle way is a binary counter: the new bytes become one
//! segment, which absorbs the previous segment for as long as that one is no longer than it. The
//! kept segments then strictly shrink from first to last, so a part never has more than
//! `log2(part length) + 1` segments, and each byte is rewritten at most that many times.

/// Returns how many of the `existing` segment lengths (in order) a sync of `new_len` more bytes
/// keeps; the segments after them are rewritten together with the new bytes as one segment.
pub(crate) fn segments_to_keep(existing: &[u64], new_len: u64) -> usize {
    let mut keep = existing.len();
    let mut merged = new_len;
    while keep > 0 && existing[keep - 1] <= merged {
        merged += existing[keep - 1];
        keep -= 1;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_like_a_binary_counter() {
        assert_eq!(segments_to_keep(&[], 5), 0);
        assert_eq!(segments_to_keep(&[8], 5), 1);
        assert_eq!(segments_to_keep(&[8, 4], 5), 0);
        assert_eq!(segments_to_keep(&[16, 4], 5), 1);
        assert_eq!(segments_to_keep(&[8, 4], 3), 2);
        assert_eq!(segments_to_keep(&[8, 4, 2], 2), 0);
    }

    proptest! {
        /// Whatever the sync sizes, segments strictly shrink, stay few, and the bytes rewritten
        /// stay within a logarithmic factor of the bytes synced.
        #[test]
        fn segments_stay_few_and_rewrites_stay_cheap(syncs in proptest::collection::vec(1u64..5000, 1..300)) {
            let mut segments: Vec<u64> = Vec::new();
            let mut uploaded = 0u64;
            for new_len in &syncs {
                let keep = segments_to_keep(&segments, *new_len);
                let merged: u64 = segments[keep..].iter().sum::<u64>() + new_len;
                uploaded += merged;
                segments.truncate(keep);
                segments.push(merged);
                prop_assert!(segments.windows(2).all(|w| w[0] > w[1]), "{segments:?}");
            }
            let total: u64 = syncs.iter().sum();
            prop_assert_eq!(segments.iter().sum::<u64>(), total);
            let log = u64::from(64 - total.leading_zeros());
            prop_assert!(segments.len() as u64 <= log + 1);
            prop_assert!(uploaded <= total * (log + 1), "{uploaded} bytes uploaded for {total}");
        }
    }
}
