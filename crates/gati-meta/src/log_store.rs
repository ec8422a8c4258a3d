//! The durable consensus log: opaque entries by index, plus a few named slots of opaque bytes.
//!
//! Owns two sled trees per consensus group in the node's database: `<group>/raft_log` (entries
//! keyed by their index as a big-endian `u64`, so key order is index order) and `<group>/raft_slots`
//! (one value per [`Slot`]).
//! It may call sled and nothing else. It must not touch the state machine's tree, and it knows
//! nothing about Raft: entry bodies and slot values are encoded by the consensus adapter
//! (`src/raft/` of the root crate), which is also the one that upholds Raft's rules (no holes,
//! vote before append, ...). Keeping those rules out of here is what makes this API small enough to
//! re-implement on another engine.
//!
//! Durability contract: every write is visible to readers as soon as the call returns, and is
//! durable only after a later [`LogStore::flush`] or [`LogStore::flush_async`] returns. A flush
//! covers every earlier write of the whole database (sled flushes its shared page cache), and
//! after a crash sled recovers a prefix of the writes in the order they were made; callers rely
//! on that order, e.g. by persisting a purge watermark before purging
//! (see [`LogStore::purge_through`]).
//! Each single call is atomic: a crash never leaves half of one `append`, `truncate_from` or
//! `purge_through` behind.

use std::ops::{Bound, RangeBounds};

use crate::error::{MetaError, Result};

use gati_core::GroupId;

/// The tree holding a group's log entries, after the group's name and a slash.
const ENTRIES_TREE: &str = "raft_log";
/// The tree holding a group's named slots, after the group's name and a slash.
const SLOTS_TREE: &str = "raft_slots";

/// A named place for one opaque value kept next to the log.
///
/// The set is closed on purpose: every slot is a piece of consensus state whose durability rules
/// the adapter documents, not a general key-value store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The last vote cast (term and candidate); must be durable before it is acted upon.
    Vote,
    /// The last known committed position; an optimisation for restart, never required for safety.
    Committed,
    /// The position of the last entry removed by [`LogStore::purge_through`].
    LastPurged,
    /// The current snapshot: its metadata and data together, so one write replaces both.
    Snapshot,
}

impl Slot {
    /// Returns the key of the slot in the slots tree. Stable: these bytes are on disk.
    fn key(self) -> &'static [u8] {
        match self {
            Slot::Vote => b"vote",
            Slot::Committed => b"committed",
            Slot::LastPurged => b"last_purged",
            Slot::Snapshot => b"snapshot",
        }
    }
}

/// A handle to the durable log of one consensus group; cheap to clone (clones share the trees).
#[derive(Clone)]
pub struct LogStore {
    entries: sled::Tree,
    slots: sled::Tree,
}

impl LogStore {
    /// Opens (or creates) the log of consensus group `group` in `db`. Each group has its own trees,
    /// so groups never see each other's entries, while one flush covers them all.
    pub fn open(db: &sled::Db, group: GroupId) -> Result<Self> {
        Ok(LogStore {
            entries: db.open_tree(format!("{group}/{ENTRIES_TREE}"))?,
            slots: db.open_tree(format!("{group}/{SLOTS_TREE}"))?,
        })
    }

    /// Writes entries (index, body) in one atomic batch, replacing any entry at the same index.
    ///
    /// The entries are readable when this returns but durable only after a flush. Indices within
    /// one call must be consecutive and ascending: the log never has holes, and a gap inside one
    /// batch can only be a caller bug.
    pub fn append(&self, entries: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut previous: Option<u64> = None;
        for (index, body) in entries {
            debug_assert!(
                previous.is_none_or(|p| p.checked_add(1) == Some(index)),
                "log entries of one append must be consecutive: {previous:?} then {index}"
            );
            previous = Some(index);
            batch.insert(&index.to_be_bytes(), body);
        }
        self.entries.apply_batch(batch)?;
        Ok(())
    }

    /// Makes every earlier write of the database durable (fsync), without blocking the caller's
    /// thread: the flush runs on sled's IO thread pool and this future waits for it.
    pub async fn flush_async(&self) -> Result<()> {
        self.entries.flush_async().await?;
        Ok(())
    }

    /// Makes every earlier write of the database durable (fsync), blocking until it is.
    pub fn flush(&self) -> Result<()> {
        self.entries.flush()?;
        Ok(())
    }

    /// Returns the body of the entry at `index`, if present.
    pub fn get(&self, index: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.entries.get(index.to_be_bytes())?.map(|v| v.to_vec()))
    }

    /// Returns the present entries whose index is in `range`, in index order. Missing indices are
    /// skipped, not reported.
    pub fn range(&self, range: impl RangeBounds<u64>) -> Result<Vec<(u64, Vec<u8>)>> {
        self.range_limited(range, usize::MAX)
    }

    /// Like [`LogStore::range`], but stops once the bodies returned add up to `max_bytes` or more.
    ///
    /// It returns at least one entry whenever the range holds one, however large, so that a reader
    /// paging through the log always makes progress.
    pub fn range_limited(&self, range: impl RangeBounds<u64>, max_bytes: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let Some((first, last)) = inclusive_bounds(&range) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for item in self.entries.range(first.to_be_bytes()..=last.to_be_bytes()) {
            if !out.is_empty() && bytes >= max_bytes {
                break;
            }
            let (key, value) = item?;
            bytes = bytes.saturating_add(value.len());
            out.push((decode_index(&key)?, value.to_vec()));
        }
        Ok(out)
    }

    /// Returns the entry with the lowest index, if the log holds any.
    pub fn first(&self) -> Result<Option<(u64, Vec<u8>)>> {
        self.entries.first()?.map(|(k, v)| Ok((decode_index(&k)?, v.to_vec()))).transpose()
    }

    /// Returns the entry with the highest index, if the log holds any.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>> {
        self.entries.last()?.map(|(k, v)| Ok((decode_index(&k)?, v.to_vec()))).transpose()
    }

    /// Removes every entry with an index of `index` or more, atomically.
    pub fn truncate_from(&self, index: u64) -> Result<()> {
        self.remove_keys(self.entries.range(index.to_be_bytes()..))
    }

    /// Removes every entry with an index of `index` or less, atomically.
    ///
    /// A caller that keeps a purge watermark (e.g. in [`Slot::LastPurged`]) must write it before
    /// calling this: a crash in between then leaves a few already-purged entries behind, which the
    /// next purge removes, instead of a log whose first entry is past the watermark's successor.
    pub fn purge_through(&self, index: u64) -> Result<()> {
        self.remove_keys(self.entries.range(..=index.to_be_bytes()))
    }

    /// Removes every key an iterator yields, in one atomic batch.
    fn remove_keys(&self, keys: sled::Iter) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in keys.keys() {
            batch.remove(key?);
        }
        self.entries.apply_batch(batch)?;
        Ok(())
    }

    /// Stores `value` in `slot`, replacing what was there. Durable only after a flush.
    pub fn put_slot(&self, slot: Slot, value: &[u8]) -> Result<()> {
        self.slots.insert(slot.key(), value)?;
        Ok(())
    }

    /// Returns the value in `slot`, if one was stored.
    pub fn get_slot(&self, slot: Slot) -> Result<Option<Vec<u8>>> {
        Ok(self.slots.get(slot.key())?.map(|v| v.to_vec()))
    }

    /// Empties `slot`. Durable only after a flush.
    pub fn remove_slot(&self, slot: Slot) -> Result<()> {
        self.slots.remove(slot.key())?;
        Ok(())
    }
}

/// Turns any range of indices into `(first, last)`, both inclusive, or `None` if it is empty.
/// Working with inclusive ends avoids overflow at `u64::MAX` and hands sled only ranges whose
/// start is not after their end.
fn inclusive_bounds(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let first = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let last = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (first <= last).then_some((first, last))
}

/// Decodes an entry key; anything but 8 bytes means the tree holds something this module never
/// wrote.
fn decode_index(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] =
        key.try_into().map_err(|_| MetaError::Corrupt(format!("log key of {} bytes, expected 8", key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests return errors rather than unwrap: `?` reports which call failed.
    type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn temp_db() -> TestResult<(tempfile::TempDir, sled::Db)> {
        let dir = tempfile::tempdir()?;
        let db = sled::Config::new().path(dir.path()).open()?;
        Ok((dir, db))
    }

    fn body(i: u64) -> Vec<u8> {
        format!("entry-{i}").into_bytes()
    }

    fn filled(db: &sled::Db, indices: std::ops::RangeInclusive<u64>) -> Result<LogStore> {
        let log = LogStore::open(db, GroupId::Meta)?;
        log.append(indices.map(|i| (i, body(i))))?;
        Ok(log)
    }

    fn indices(entries: &[(u64, Vec<u8>)]) -> Vec<u64> {
        entries.iter().map(|(i, _)| *i).collect()
    }

    /// Drives a future to completion on the current thread; enough for sled's flush future, which
    /// is completed by sled's own IO thread and needs no reactor.
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        use std::sync::Arc;
        use std::task::{Context, Poll, Wake, Waker};

        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    #[test]
    fn an_empty_log_has_no_entries_and_no_slots() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = LogStore::open(&db, GroupId::Meta)?;
        assert_eq!(log.first()?, None);
        assert_eq!(log.last()?, None);
        assert!(log.range(..)?.is_empty());
        assert_eq!(log.get(0)?, None);
        assert_eq!(log.get_slot(Slot::Vote)?, None);
        Ok(())
    }

    #[test]
    fn appended_entries_come_back_in_index_order() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = filled(&db, 1..=300)?;
        assert_eq!(log.first()?, Some((1, body(1))));
        assert_eq!(log.last()?, Some((300, body(300))));
        assert_eq!(log.get(256)?, Some(body(256)));
        // 255 -> 256 crosses a byte boundary: big-endian keys keep numeric order.
        assert_eq!(indices(&log.range(254..258)?), vec![254, 255, 256, 257]);
        assert_eq!(log.range(5..=5)?, vec![(5, body(5))]);
        Ok(())
    }

    #[test]
    fn range_accepts_every_bound_shape_including_empty_and_inverted_ones() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = filled(&db, 0..=9)?;
        assert_eq!(indices(&log.range(..)?), (0..=9).collect::<Vec<_>>());
        assert_eq!(indices(&log.range(7..)?), vec![7, 8, 9]);
        assert_eq!(indices(&log.range(..2)?), vec![0, 1]);
        assert_eq!(indices(&log.range(..=2)?), vec![0, 1, 2]);
        let excluded_start = (Bound::Excluded(7), Bound::Unbounded);
        assert_eq!(indices(&log.range(excluded_start)?), vec![8, 9]);
        assert!(log.range(3..3)?.is_empty());
        assert!(log.range(..0)?.is_empty());
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = 6..2;
        assert!(log.range(inverted)?.is_empty());
        assert!(log.range((Bound::Excluded(u64::MAX), Bound::Unbounded))?.is_empty());
        assert!(log.range(20..)?.is_empty());
        Ok(())
    }

    #[test]
    fn range_limited_stops_at_the_byte_budget_but_always_returns_one_entry() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = LogStore::open(&db, GroupId::Meta)?;
        log.append((1..=10).map(|i| (i, vec![0u8; 100])))?;
        assert_eq!(indices(&log.range_limited(1..=10, 250)?), vec![1, 2, 3]);
        assert_eq!(indices(&log.range_limited(4..=10, 1)?), vec![4]);
        assert_eq!(indices(&log.range_limited(4..=10, 0)?), vec![4]);
        assert!(log.range_limited(11.., 0)?.is_empty());
        Ok(())
    }

    #[test]
    fn truncate_removes_the_tail_and_purge_removes_the_head() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = filled(&db, 1..=10)?;
        log.truncate_from(8)?;
        assert_eq!(log.last()?, Some((7, body(7))));
        log.purge_through(3)?;
        assert_eq!(log.first()?, Some((4, body(4))));
        assert_eq!(indices(&log.range(..)?), vec![4, 5, 6, 7]);
        // Both accept positions beyond what is stored.
        log.truncate_from(100)?;
        log.purge_through(2)?;
        assert_eq!(indices(&log.range(..)?), vec![4, 5, 6, 7]);
        log.purge_through(u64::MAX)?;
        assert_eq!(log.last()?, None);
        Ok(())
    }

    #[test]
    fn append_after_truncate_replaces_the_tail() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = filled(&db, 1..=5)?;
        log.truncate_from(4)?;
        log.append([(4, b"new-4".to_vec())])?;
        assert_eq!(log.last()?, Some((4, b"new-4".to_vec())));
        Ok(())
    }

    #[test]
    fn slots_are_independent_and_can_be_replaced_and_removed() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = LogStore::open(&db, GroupId::Meta)?;
        log.put_slot(Slot::Vote, b"v1")?;
        log.put_slot(Slot::Committed, b"c1")?;
        log.put_slot(Slot::Vote, b"v2")?;
        assert_eq!(log.get_slot(Slot::Vote)?, Some(b"v2".to_vec()));
        assert_eq!(log.get_slot(Slot::Committed)?, Some(b"c1".to_vec()));
        assert_eq!(log.get_slot(Slot::LastPurged)?, None);
        log.remove_slot(Slot::Committed)?;
        assert_eq!(log.get_slot(Slot::Committed)?, None);
        Ok(())
    }

    #[test]
    fn log_and_slots_survive_reopening_the_database() -> TestResult {
        let dir = tempfile::tempdir()?;
        {
            let db = sled::Config::new().path(dir.path()).open()?;
            let log = filled(&db, 1..=20)?;
            log.purge_through(4)?;
            log.truncate_from(18)?;
            log.put_slot(Slot::Vote, b"vote")?;
            log.put_slot(Slot::Snapshot, &[0, 1, 2, 255])?;
            block_on(log.flush_async())?;
        }
        let db = sled::Config::new().path(dir.path()).open()?;
        let log = LogStore::open(&db, GroupId::Meta)?;
        assert_eq!(indices(&log.range(..)?), (5..=17).collect::<Vec<_>>());
        assert_eq!(log.get(10)?, Some(body(10)));
        assert_eq!(log.get_slot(Slot::Vote)?, Some(b"vote".to_vec()));
        assert_eq!(log.get_slot(Slot::Snapshot)?, Some(vec![0, 1, 2, 255]));
        Ok(())
    }

    #[test]
    fn the_log_does_not_share_keys_with_other_trees() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = filled(&db, 1..=3)?;
        db.open_tree("meta/state")?.insert(1u64.to_be_bytes(), &b"other"[..])?;
        db.insert(2u64.to_be_bytes(), &b"default tree"[..])?;
        let other_group = LogStore::open(&db, GroupId::Shard(gati_core::ShardId(1)))?;
        other_group.append([(4, body(4))])?;
        assert_eq!(indices(&log.range(..)?), vec![1, 2, 3]);
        assert_eq!(indices(&other_group.range(..)?), vec![4]);
        assert_eq!(log.get(1)?, Some(body(1)));
        Ok(())
    }

    #[test]
    fn a_foreign_key_in_the_log_tree_is_reported_as_corruption() -> TestResult {
        let (_dir, db) = temp_db()?;
        let log = filled(&db, 1..=2)?;
        db.open_tree(format!("meta/{ENTRIES_TREE}"))?.insert(b"bogus", &b""[..])?;
        assert!(matches!(log.range(..), Err(MetaError::Corrupt(_))));
        Ok(())
    }
}
