use super::*;

/// Tests return errors rather than unwrap: `?` reports which call failed.
type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A temporary directory holding a sled database and the log root beside it.
struct Fixture {
    dir: tempfile::TempDir,
    db: sled::Db,
}

impl Fixture {
    fn new() -> TestResult<Fixture> {
        let dir = tempfile::tempdir()?;
        let db = sled::Config::new().path(dir.path().join("db")).open()?;
        Ok(Fixture { dir, db })
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("raft-log")
    }

    fn log(&self, group: GroupId) -> Result<LogStore> {
        LogStore::open(&self.root(), &self.db, group)
    }

    fn segments(&self, group: GroupId) -> TestResult<Vec<PathBuf>> {
        let mut found: Vec<PathBuf> = fs::read_dir(self.root().join(group.to_string()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        found.retain(|p| p.extension().is_some_and(|x| x == "log"));
        found.sort();
        Ok(found)
    }
}

fn body(i: u64) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

fn filled(fx: &Fixture, indices: std::ops::RangeInclusive<u64>) -> Result<LogStore> {
    let log = fx.log(GroupId::Meta)?;
    log.append(indices.map(|i| (i, body(i))))?;
    Ok(log)
}

fn indices(entries: &[(u64, Vec<u8>)]) -> Vec<u64> {
    entries.iter().map(|(i, _)| *i).collect()
}

#[test]
fn an_empty_log_has_no_entries_and_no_slots() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.log(GroupId::Meta)?;
    assert_eq!(log.first()?, None);
    assert_eq!(log.last()?, None);
    assert!(log.range(..)?.is_empty());
    for slot in [Slot::Vote, Slot::Committed, Slot::LastPurged, Slot::Snapshot] {
        assert_eq!(log.get_slot(slot)?, None);
    }
    Ok(())
}

#[test]
fn appended_entries_come_back_in_index_order() -> TestResult {
    let fx = Fixture::new()?;
    let log = filled(&fx, 1..=3)?;
    log.append([(4, body(4)), (5, body(5))])?;
    assert_eq!(indices(&log.range(..)?), vec![1, 2, 3, 4, 5]);
    assert_eq!(log.get(3)?, Some(body(3)));
    assert_eq!(log.get(6)?, None);
    assert_eq!(log.first()?, Some((1, body(1))));
    assert_eq!(log.last()?, Some((5, body(5))));
    Ok(())
}

#[test]
fn range_accepts_every_bound_shape_including_empty_and_inverted_ones() -> TestResult {
    let fx = Fixture::new()?;
    let log = filled(&fx, 1..=5)?;
    assert_eq!(indices(&log.range(2..4)?), vec![2, 3]);
    assert_eq!(indices(&log.range(2..=4)?), vec![2, 3, 4]);
    assert_eq!(indices(&log.range(..3)?), vec![1, 2]);
    assert_eq!(indices(&log.range(4..)?), vec![4, 5]);
    assert_eq!(indices(&log.range((Bound::Excluded(1), Bound::Excluded(4)))?), vec![2, 3]);
    assert!(log.range(3..3)?.is_empty());
    assert!(log.range(..0)?.is_empty());
    #[allow(clippy::reversed_empty_ranges, reason = "an inverted range is part of what is tested")]
    let inverted = log.range(4..2)?;
    assert!(inverted.is_empty());
    assert!(log.range((Bound::Excluded(u64::MAX), Bound::Unbounded))?.is_empty());
    assert_eq!(indices(&log.range(0..=u64::MAX)?), vec![1, 2, 3, 4, 5]);
    Ok(())
}

#[test]
fn range_limited_stops_at_the_byte_budget_but_always_returns_one_entry() -> TestResult {
    let fx = Fixture::new()?;
    let log = filled(&fx, 1..=5)?;
    let each = body(1).len();
    assert_eq!(indices(&log.range_limited(.., each * 2)?), vec![1, 2]);
    assert_eq!(indices(&log.range_limited(.., 1)?), vec![1]);
    assert_eq!(indices(&log.range_limited(3.., 0)?), vec![3]);
    assert_eq!(indices(&log.range_limited(.., usize::MAX)?), vec![1, 2, 3, 4, 5]);
    Ok(())
}

#[test]
fn truncate_removes_the_tail_and_purge_removes_the_head() -> TestResult {
    let fx = Fixture::new()?;
    let log = filled(&fx, 1..=10)?;
    log.truncate_from(8)?;
    assert_eq!(log.last()?, Some((7, body(7))));
    log.purge_through(3)?;
    assert_eq!(log.first()?, Some((4, body(4))));
    assert_eq!(indices(&log.range(..)?), vec![4, 5, 6, 7]);
    // Both accept positions beyond what is stored.
    log.truncate_from(100)?;
    log.purge_through(2)?;
    assert_eq!(indices(&log.range(..)?), vec![4, 5, 6, 7]);
    log.purge_through(u64::MAX - 1)?;
    assert_eq!(log.last()?, None);
    Ok(())
}

#[test]
fn an_append_over_the_tail_replaces_it() -> TestResult {
    let fx = Fixture::new()?;
    let log = filled(&fx, 1..=5)?;
    log.truncate_from(4)?;
    log.append([(4, b"new-4".to_vec())])?;
    assert_eq!(log.last()?, Some((4, b"new-4".to_vec())));
    // Overwriting from 3 drops 4 as well, as a follower's conflicting suffix must go.
    log.append([(3, b"new-3".to_vec())])?;
    assert_eq!(indices(&log.range(..)?), vec![1, 2, 3]);
    assert_eq!(log.get(3)?, Some(b"new-3".to_vec()));
    // One append's entries must be consecutive; nothing of a refused one is written.
    assert!(matches!(log.append([(4, body(4)), (6, body(6))]), Err(MetaError::Corrupt(_))));
    assert_eq!(indices(&log.range(..)?), vec![1, 2, 3]);
    // After everything is purged, the log continues past the purge point (a snapshot's end).
    log.purge_through(10)?;
    log.append([(11, body(11))])?;
    assert_eq!(indices(&log.range(..)?), vec![11]);
    Ok(())
}

#[test]
fn slots_are_independent_and_can_be_replaced_and_removed() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.log(GroupId::Meta)?;
    log.put_slot(Slot::Vote, b"v1")?;
    log.put_slot(Slot::Committed, b"c1")?;
    log.put_slot(Slot::Vote, b"v2")?;
    log.put_slot(Slot::Snapshot, b"snap")?;
    assert_eq!(log.get_slot(Slot::Vote)?, Some(b"v2".to_vec()));
    assert_eq!(log.get_slot(Slot::Committed)?, Some(b"c1".to_vec()));
    assert_eq!(log.get_slot(Slot::LastPurged)?, None);
    assert_eq!(log.get_slot(Slot::Snapshot)?, Some(b"snap".to_vec()));
    log.remove_slot(Slot::Committed)?;
    log.remove_slot(Slot::Snapshot)?;
    assert_eq!(log.get_slot(Slot::Committed)?, None);
    assert_eq!(log.get_slot(Slot::Snapshot)?, None);
    Ok(())
}

#[test]
fn log_and_slots_survive_reopening() -> TestResult {
    let fx = Fixture::new()?;
    {
        let log = filled(&fx, 1..=20)?;
        log.purge_through(4)?;
        log.truncate_from(18)?;
        log.put_slot(Slot::Vote, b"vote")?;
        log.put_slot(Slot::Committed, b"c")?;
        log.remove_slot(Slot::Committed)?;
        log.put_slot(Slot::Snapshot, &[0, 1, 2, 255])?;
        log.flush()?;
    }
    let log = fx.log(GroupId::Meta)?;
    assert_eq!(indices(&log.range(..)?), (5..=17).collect::<Vec<_>>());
    assert_eq!(log.get(10)?, Some(body(10)));
    assert_eq!(log.get_slot(Slot::Vote)?, Some(b"vote".to_vec()));
    assert_eq!(log.get_slot(Slot::Committed)?, None);
    assert_eq!(log.get_slot(Slot::Snapshot)?, Some(vec![0, 1, 2, 255]));
    log.append([(18, body(18))])?;
    assert_eq!(log.last()?, Some((18, body(18))));
    Ok(())
}

#[test]
fn groups_have_separate_logs_and_two_opens_share_one() -> TestResult {
    let fx = Fixture::new()?;
    let log = filled(&fx, 1..=3)?;
    let other_group = fx.log(GroupId::Shard(gati_core::ShardId(1)))?;
    other_group.append([(4, body(4))])?;
    assert_eq!(indices(&log.range(..)?), vec![1, 2, 3]);
    assert_eq!(indices(&other_group.range(..)?), vec![4]);
    let again = fx.log(GroupId::Meta)?;
    again.append([(4, body(4))])?;
    assert_eq!(indices(&log.range(..)?), vec![1, 2, 3, 4]);
    Ok(())
}

#[test]
fn a_record_torn_by_a_crash_is_cut_off_and_the_log_goes_on() -> TestResult {
    let fx = Fixture::new()?;
    {
        let log = filled(&fx, 1..=3)?;
        log.flush()?;
    }
    let segment = fx.segments(GroupId::Meta)?.pop().ok_or("no segment")?;
    let whole = fs::read(&segment)?;
    // Half of a fourth record: a header promising more bytes than follow.
    let mut torn = Vec::new();
    encode(&mut torn, Kind::Entry, &[&4u64.to_le_bytes()[..], &body(4)].concat());
    let mut damaged = whole.clone();
    damaged.extend_from_slice(&torn[..torn.len() - 3]);
    fs::write(&segment, &damaged)?;
    let log = fx.log(GroupId::Meta)?;
    assert_eq!(indices(&log.range(..)?), vec![1, 2, 3]);
    assert_eq!(fs::metadata(&segment)?.len(), whole.len() as u64);
    log.append([(4, body(4))])?;
    log.flush()?;
    drop(log);
    // A flipped byte in the last record fails its checksum: cut off too.
    let mut flipped = fs::read(&segment)?;
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    fs::write(&segment, &flipped)?;
    assert_eq!(indices(&fx.log(GroupId::Meta)?.range(..)?), vec![1, 2, 3]);
    Ok(())
}

#[test]
fn segments_roll_keep_their_slots_and_go_once_purged() -> TestResult {
    let fx = Fixture::new()?;
    let big = vec![7u8; 1000];
    {
        let log = fx.log(GroupId::Meta)?;
        log.put_slot(Slot::Vote, b"vote")?;
        log.append((1..=40).map(|i| (i, big.clone())))?;
        for i in 41..=60 {
            log.append([(i, big.clone())])?;
        }
        log.flush()?;
        assert!(fx.segments(GroupId::Meta)?.len() >= 2, "the log never started a second segment");
        log.put_slot(Slot::LastPurged, b"purged-50")?;
        log.purge_through(50)?;
        assert_eq!(indices(&log.range(..)?), (51..=60).collect::<Vec<_>>());
    }
    // The first segment held only entries at or below 50 and is gone; what it held of the
    // slots lives on in the later segments' opening records.
    let remaining = fx.segments(GroupId::Meta)?;
    assert!(!remaining.iter().any(|p| p.ends_with("0000000000000001.log")), "{remaining:?}");
    let log = fx.log(GroupId::Meta)?;
    assert_eq!(indices(&log.range(..)?), (51..=60).collect::<Vec<_>>());
    assert_eq!(log.get(55)?, Some(big));
    assert_eq!(log.get_slot(Slot::Vote)?, Some(b"vote".to_vec()));
    assert_eq!(log.get_slot(Slot::LastPurged)?, Some(b"purged-50".to_vec()));
    Ok(())
}

#[test]
fn damage_before_the_last_segment_is_reported_as_corruption() -> TestResult {
    let fx = Fixture::new()?;
    {
        let log = fx.log(GroupId::Meta)?;
        log.append((1..=20).map(|i| (i, vec![1u8; 1000])))?;
        log.append([(21, body(21))])?;
        log.flush()?;
    }
    let first = fx.segments(GroupId::Meta)?.into_iter().next().ok_or("no segment")?;
    let mut bytes = fs::read(&first)?;
    bytes[HEADER_BYTES + 20] ^= 0xff;
    fs::write(&first, &bytes)?;
    assert!(matches!(fx.log(GroupId::Meta), Err(MetaError::Corrupt(_))));
    Ok(())
}

#[test]
fn make_durable_through_flushes_only_what_is_not_yet_on_disk() -> TestResult {
    let fx = Fixture::new()?;
    let log = filled(&fx, 1..=3)?;
    let pending = |log: &LogStore, index: u64| -> TestResult<bool> {
        let state = log.state()?;
        let at = state.location(index).ok_or("entry not held")?;
        Ok(state.durable < (at.seq, at.end))
    };
    assert!(pending(&log, 3)?);
    log.make_durable_through(2)?;
    assert!(!pending(&log, 3)?, "one sync covers every earlier write");
    log.append([(4, body(4))])?;
    assert!(pending(&log, 4)?);
    log.make_durable_through(99)?; // not held: nothing to do
    assert!(pending(&log, 4)?);
    log.make_durable_through(4)?;
    assert!(!pending(&log, 4)?);
    Ok(())
}

#[test]
fn a_log_kept_in_sled_by_an_earlier_version_moves_to_files_once() -> TestResult {
    let fx = Fixture::new()?;
    let group = GroupId::Shard(gati_core::ShardId(2));
    let entries = fx.db.open_tree(format!("{group}/{LEGACY_ENTRIES_TREE}"))?;
    for i in 3..=6u64 {
        entries.insert(i.to_be_bytes(), body(i))?;
    }
    let slots = fx.db.open_tree(format!("{group}/{LEGACY_SLOTS_TREE}"))?;
    slots.insert(b"vote", &b"old-vote"[..])?;
    slots.insert(b"last_purged", &b"old-purged"[..])?;
    slots.insert(b"snapshot", &b"old-snapshot"[..])?;
    drop((entries, slots));
    {
        let log = fx.log(group)?;
        assert_eq!(indices(&log.range(..)?), vec![3, 4, 5, 6]);
        assert_eq!(log.get(5)?, Some(body(5)));
        assert_eq!(log.get_slot(Slot::Vote)?, Some(b"old-vote".to_vec()));
        assert_eq!(log.get_slot(Slot::LastPurged)?, Some(b"old-purged".to_vec()));
        assert_eq!(log.get_slot(Slot::Snapshot)?, Some(b"old-snapshot".to_vec()));
        log.append([(7, body(7))])?;
        log.flush()?;
    }
    let names = fx.db.tree_names();
    assert!(!names.iter().any(|n| n.starts_with(format!("{group}/").as_bytes())), "the sled trees were left behind");
    let log = fx.log(group)?;
    assert_eq!(indices(&log.range(..)?), vec![3, 4, 5, 6, 7]);
    assert_eq!(log.get_slot(Slot::Vote)?, Some(b"old-vote".to_vec()));
    Ok(())
}
