//! The durable consensus log of one group: opaque entries by index, plus a few named slots.
//!
//! Owns the group's directory, `<meta dir>/raft-log/<group>/`: append-only segment files
//! (`<sequence as 16 hex digits>.log`) holding a stream of checksummed records, and the current
//! snapshot in its own file (`snapshot`, replaced by rename). It knows nothing about Raft: entry
//! bodies and slot values are encoded by the consensus adapter (`src/raft/` of the root crate),
//! which is also the one that upholds Raft's rules (no holes, vote before append, ...).
//!
//! Why files and not sled, which holds the state machines: a sled flush hands the write to sled's
//! IO thread pool, and every job on that pool wakes all of its idle threads. At one flush per
//! replicated entry, those wake-ups were a third of a cluster node's CPU. Here a flush is one
//! `fdatasync` on the caller's thread, and an append is one positioned write into the page cache.
//!
//! Durability contract: every write is visible to readers as soon as the call returns, and is
//! durable only after a later [`LogStore::flush`] returns. A flush covers every earlier write of
//! this log, and after a crash the log recovers a prefix of its writes in the order they were made
//! (records are appended to one file at a time, and a segment is synced before the next one is
//! started): callers rely on that order, e.g. by persisting a purge watermark before purging. A
//! record torn by a crash is cut off when the log is opened. The snapshot slot is the exception:
//! [`LogStore::put_slot`] makes it durable before it returns.
//! A crash never leaves half of a record behind: `truncate_from`, `purge_through` and each slot
//! write are one record each, so atomic; of one `append` it may keep a prefix of the entries,
//! which is still a log without holes (and the append was never reported durable).
//!
//! Logs written by earlier versions into sled trees (`<group>/raft_log`, `<group>/raft_slots`) are
//! moved here, once, when the log is first opened.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::error::{MetaError, Result};

use gati_core::GroupId;

/// The sled tree that held a group's log entries before the log moved to files.
const LEGACY_ENTRIES_TREE: &str = "raft_log";
/// The sled tree that held a group's named slots before the log moved to files.
const LEGACY_SLOTS_TREE: &str = "raft_slots";

/// A new segment is started once the active one has grown past this (small in tests, so that
/// they cross segment boundaries).
const SEGMENT_BYTES: u64 = if cfg!(test) { 16 << 10 } else { 64 << 20 };
/// The largest record the log accepts; a length field above it can only be damage.
const MAX_RECORD_BYTES: usize = 1 << 30;
/// Bytes before a record's payload: its length (u32), its CRC-32 (u32) and its kind (u8).
const HEADER_BYTES: usize = 9;
/// The file holding the snapshot slot.
const SNAPSHOT_FILE: &str = "snapshot";

/// What a record is. Stable: these bytes are on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// An entry: its index (u64, little-endian) and its body.
    Entry = 1,
    /// Every entry at this index (u64) or above is gone.
    Truncate = 2,
    /// Every entry at this index (u64) or below is gone.
    Purge = 3,
    /// A slot (one byte, [`Slot::code`]) now holds the rest of the payload.
    SlotSet = 4,
    /// A slot (one byte) is now empty.
    SlotClear = 5,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Entry,
            2 => Kind::Truncate,
            3 => Kind::Purge,
            4 => Kind::SlotSet,
            5 => Kind::SlotClear,
            _ => return None,
        })
    }
}

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

/// The slots kept in the record stream (the snapshot has its own file).
const STREAM_SLOTS: [Slot; 3] = [Slot::Vote, Slot::Committed, Slot::LastPurged];

impl Slot {
    /// The slot's byte in a record. Stable: it is on disk.
    fn code(self) -> u8 {
        match self {
            Slot::Vote => 1,
            Slot::Committed => 2,
            Slot::LastPurged => 3,
            Slot::Snapshot => 4,
        }
    }

    fn from_code(code: u8) -> Option<Slot> {
        STREAM_SLOTS.into_iter().find(|s| s.code() == code)
    }

    /// The slot's key in the legacy sled slots tree.
    fn legacy_key(self) -> &'static [u8] {
        match self {
            Slot::Vote => b"vote",
            Slot::Committed => b"committed",
            Slot::LastPurged => b"last_purged",
            Slot::Snapshot => b"snapshot",
        }
    }
}

/// One segment file.
struct Segment {
    seq: u64,
    file: Arc<File>,
    /// Bytes written so far, which is where the next record goes.
    len: u64,
}

/// Where an entry's body is.
#[derive(Clone, Copy)]
struct Location {
    seq: u64,
    offset: u64,
    len: u32,
    /// Where its record ends: the entry is durable once a flush has covered this far.
    end: u64,
}

/// A position in the record stream: (segment, byte offset).
type Position = (u64, u64);

struct State {
    /// Oldest first; the last one is the active segment, the only one written to.
    segments: VecDeque<Segment>,
    /// Live entries by index. Index order is also the order they were written in: an append at
    /// or below the last index first drops everything from there on.
    entries: BTreeMap<u64, Location>,
    slots: HashMap<Slot, Vec<u8>>,
    /// Everything before this position is on disk.
    durable: Position,
    /// Set by a failed write or sync. After one, what reached the disk is unknown, so every later
    /// call fails and the node stops; reopening the log recovers what is durable.
    failed: Option<String>,
}

/// A handle to the durable log of one consensus group; cheap to clone (clones share the log).
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
}

/// Logs open in this process, by directory: opening the same log twice (a node restarted inside
/// one process, a test reading what an adapter wrote) must share one writer.
fn open_logs() -> MutexGuard<'static, HashMap<PathBuf, Weak<Shared>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

impl LogStore {
    /// Opens (or creates) the log of consensus group `group` under `root` (one directory per
    /// group). `db` is the node's sled database, from which a log written by an earlier version is
    /// moved over the first time.
    pub fn open(root: &Path, db: &sled::Db, group: GroupId) -> Result<Self> {
        let dir = root.join(group.to_string());
        let mut open = open_logs();
        if let Some(shared) = open.get(&dir).and_then(Weak::upgrade) {
            return Ok(LogStore { shared });
        }
        if !dir.try_exists()? {
            migrate_from_sled(root, &dir, db, group)?;
        }
        drop_legacy_trees(db, group)?;
        let state = replay(&dir)?;
        let shared = Arc::new(Shared { dir: dir.clone(), state: Mutex::new(state) });
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(dir, Arc::downgrade(&shared));
        Ok(LogStore { shared })
    }

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        match &state.failed {
            Some(why) => Err(MetaError::Corrupt(format!("the log stopped after a failed write: {why}"))),
            None => Ok(state),
        }
    }

    /// Writes entries (index, body) in one batch, replacing any entry at the same index or above.
    ///
    /// The entries are readable when this returns but durable only after a flush. Indices within
    /// one call must be consecutive and ascending.
    pub fn append(&self, entries: impl IntoIterator<Item = (u64, Vec<u8>)>) -> Result<()> {
        let entries: Vec<(u64, Vec<u8>)> = entries.into_iter().collect();
        let Some(&(start, _)) = entries.first() else {
            return Ok(());
        };
        for pair in entries.windows(2) {
            if pair[0].0.checked_add(1) != Some(pair[1].0) {
                return Err(MetaError::Corrupt(format!(
                    "log entries of one append must be consecutive: {} then {}",
                    pair[0].0, pair[1].0
                )));
            }
        }
        if let Some((index, body)) = entries.iter().find(|(_, body)| body.len() + 8 > MAX_RECORD_BYTES) {
            return Err(MetaError::Codec(format!(
                "log entry {index} is {} bytes; a record holds at most {MAX_RECORD_BYTES}",
                body.len()
            )));
        }
        let mut state = self.state()?;
        let overwrites = state.last_index().is_some_and(|last| start <= last);
        let mut frames = Vec::new();
        if overwrites {
            encode(&mut frames, Kind::Truncate, &start.to_le_bytes());
        }
        let mut bodies = Vec::with_capacity(entries.len());
        for (index, body) in &entries {
            let before = frames.len();
            let mut payload = Vec::with_capacity(8 + body.len());
            payload.extend_from_slice(&index.to_le_bytes());
            payload.extend_from_slice(body);
            encode(&mut frames, Kind::Entry, &payload);
            bodies.push((before + HEADER_BYTES + 8, body.len(), frames.len()));
        }
        let (seq, base) = self.write(&mut state, &frames)?;
        if overwrites {
            state.truncate(start);
        }
        for (&(index, _), &(offset, len, end)) in entries.iter().zip(&bodies) {
            let location = Location { seq, offset: base + offset as u64, len: len as u32, end: base + end as u64 };
            state.entries.insert(index, location);
        }
        Ok(())
    }

    /// Makes every earlier write durable (`fdatasync`), blocking until it is.
    pub fn flush(&self) -> Result<()> {
        let (file, target) = {
            let state = self.state()?;
            let active = state.active();
            let target = (active.seq, active.len);
            if state.durable >= target {
                return Ok(());
            }
            (active.file.clone(), target)
        };
        if let Err(error) = file.sync_data() {
            return Err(self.shared.state.lock().unwrap_or_else(|e| e.into_inner()).fail("fsync", error));
        }
        let mut state = self.state()?;
        state.durable = state.durable.max(target);
        Ok(())
    }

    /// Makes the entry at `index` durable if it is held and not durable yet. An entry that is
    /// not held (purged, or never written) needs nothing.
    pub fn make_durable_through(&self, index: u64) -> Result<()> {
        let pending = {
            let state = self.state()?;
            match state.location(index) {
                Some(at) => state.durable < (at.seq, at.end),
                None => false,
            }
        };
        if pending { self.flush() } else { Ok(()) }
    }

    /// Returns the body of the entry at `index`, if present.
    pub fn get(&self, index: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.range(index..=index)?.pop().map(|(_, body)| body))
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
        // Locations and file handles are taken under the lock, the reads done outside it: a
        // segment deleted meanwhile stays readable through its open handle, and records are never
        // rewritten in place.
        let mut wanted = Vec::new();
        {
            let state = self.state()?;
            let mut bytes = 0usize;
            for (&index, &at) in state.entries.range(first..=last) {
                if !wanted.is_empty() && bytes >= max_bytes {
                    break;
                }
                bytes = bytes.saturating_add(at.len as usize);
                wanted.push((index, at, state.file(at.seq)?));
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (index, at, file) in wanted {
            let mut body = vec![0; at.len as usize];
            file.read_exact_at(&mut body, at.offset)?;
            out.push((index, body));
        }
        Ok(out)
    }

    /// Returns the entry with the lowest index, if the log holds any.
    pub fn first(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(first) = self.state()?.entries.keys().next().copied() else {
            return Ok(None);
        };
        Ok(self.range(first..=first)?.pop())
    }

    /// Returns the entry with the highest index, if the log holds any.
    pub fn last(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(last) = self.state()?.last_index() else {
            return Ok(None);
        };
        Ok(self.range(last..=last)?.pop())
    }

    /// Removes every entry with an index of `index` or more, atomically.
    pub fn truncate_from(&self, index: u64) -> Result<()> {
        let mut state = self.state()?;
        if state.last_index().is_none_or(|last| index > last) {
            return Ok(());
        }
        let mut frame = Vec::new();
        encode(&mut frame, Kind::Truncate, &index.to_le_bytes());
        self.write(&mut state, &frame)?;
        state.truncate(index);
        Ok(())
    }

    /// Removes every entry with an index of `index` or less, atomically, and deletes the segment
    /// files that then hold nothing live. Durable when it returns (the record is synced before
    /// any file is deleted).
    ///
    /// A caller that keeps a purge watermark (e.g. in [`Slot::LastPurged`]) must write it before
    /// calling this: a crash in between then leaves a few already-purged entries behind, which the
    /// next purge removes, instead of a log whose first entry is past the watermark's successor.
    pub fn purge_through(&self, index: u64) -> Result<()> {
        {
            let mut state = self.state()?;
            if state.entries.keys().next().is_none_or(|&first| first > index) {
                return Ok(());
            }
            let mut frame = Vec::new();
            encode(&mut frame, Kind::Purge, &index.to_le_bytes());
            self.write(&mut state, &frame)?;
            state.purge(index);
        }
        // A segment older than the one holding the first live entry holds nothing live (live
        // entries are in index order and were written in that order), and its slot values were
        // copied into every later segment. Only such a prefix goes: replaying what remains, in
        // order, rebuilds the same log.
        let doomed: Vec<u64> = {
            let mut state = self.state()?;
            let keep_from = state.entries.values().next().map_or(state.active().seq, |first| first.seq);
            let mut doomed = Vec::new();
            while state.segments.len() > 1 && state.segments[0].seq < keep_from {
                if let Some(segment) = state.segments.pop_front() {
                    doomed.push(segment.seq);
                }
            }
            doomed
        };
        // One sync after choosing makes the purge record durable, and with it the slot values
        // copied into the first segment kept: every segment before the active one was synced when
        // it was sealed, and this syncs the active one, however many rolls came in between.
        self.flush()?;
        for seq in doomed {
            let path = segment_path(&self.shared.dir, seq);
            if let Err(error) = fs::remove_file(&path) {
                // Harmless: replay drops its entries again (they are below the purge point).
                if error.kind() != std::io::ErrorKind::NotFound {
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Stores `value` in `slot`, replacing what was there. Durable only after a flush, except the
    /// snapshot, which is durable when this returns.
    pub fn put_slot(&self, slot: Slot, value: &[u8]) -> Result<()> {
        if slot == Slot::Snapshot {
            return write_file_atomically(&self.shared.dir, SNAPSHOT_FILE, value);
        }
        let mut state = self.state()?;
        let mut frame = Vec::new();
        encode_slot(&mut frame, slot, value);
        self.write(&mut state, &frame)?;
        state.slots.insert(slot, value.to_vec());
        Ok(())
    }

    /// Returns the value in `slot`, if one was stored.
    pub fn get_slot(&self, slot: Slot) -> Result<Option<Vec<u8>>> {
        if slot == Slot::Snapshot {
            return match fs::read(self.shared.dir.join(SNAPSHOT_FILE)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        Ok(self.state()?.slots.get(&slot).cloned())
    }

    /// Empties `slot`. Durable only after a flush, except the snapshot's, which is durable when
    /// this returns.
    pub fn remove_slot(&self, slot: Slot) -> Result<()> {
        if slot == Slot::Snapshot {
            match fs::remove_file(self.shared.dir.join(SNAPSHOT_FILE)) {
                Ok(()) => return sync_dir(&self.shared.dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        let mut state = self.state()?;
        let mut frame = Vec::new();
        encode(&mut frame, Kind::SlotClear, &[slot.code()]);
        self.write(&mut state, &frame)?;
        state.slots.remove(&slot);
        Ok(())
    }

    /// Appends encoded records to the active segment, starting a new segment first if the active
    /// one is full. Returns the segment and offset the records were written at.
    fn write(&self, state: &mut State, frames: &[u8]) -> Result<Position> {
        if state.active().len >= SEGMENT_BYTES {
            self.roll(state)?;
        }
        state.append_to_active(frames)
    }

    /// Seals the active segment (synced, so that a crash never keeps a later segment without an
    /// earlier one's records) and starts the next, which opens with every slot's value: older
    /// segments can then be deleted without losing them.
    fn roll(&self, state: &mut State) -> Result<()> {
        let sealed = state.active();
        let (file, target) = (sealed.file.clone(), (sealed.seq, sealed.len));
        if let Err(error) = file.sync_data() {
            return Err(state.fail("fsync", error));
        }
        state.durable = state.durable.max(target);
        let seq = target.0 + 1;
        let segment = create_segment(&self.shared.dir, seq)?;
        state.segments.push_back(segment);
        state.durable = state.durable.max((seq, 0));
        let mut frames = Vec::new();
        for slot in STREAM_SLOTS {
            if let Some(value) = state.slots.get(&slot) {
                encode_slot(&mut frames, slot, value);
            }
        }
        state.append_to_active(&frames).map(|_| ())
    }
}

impl State {
    fn empty() -> State {
        State {
            segments: VecDeque::new(),
            entries: BTreeMap::new(),
            slots: HashMap::new(),
            durable: (0, 0),
            failed: None,
        }
    }

    /// Writes encoded records at the end of the active segment; returns where they start.
    fn append_to_active(&mut self, frames: &[u8]) -> Result<Position> {
        let active = self.active();
        let (seq, at, file) = (active.seq, active.len, active.file.clone());
        if let Err(error) = file.write_all_at(frames, at) {
            return Err(self.fail("write", error));
        }
        if let Some(active) = self.segments.back_mut() {
            active.len += frames.len() as u64;
        }
        Ok((seq, at))
    }

    /// Stops the log after a failed write or sync (see `failed`) and returns the error.
    fn fail(&mut self, what: &str, error: std::io::Error) -> MetaError {
        self.failed = Some(format!("{what}: {error}"));
        error.into()
    }

    #[allow(clippy::expect_used, reason = "a replayed log always has an active segment")]
    fn active(&self) -> &Segment {
        self.segments.back().expect("the log always has an active segment")
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.keys().next_back().copied()
    }

    fn location(&self, index: u64) -> Option<Location> {
        self.entries.get(&index).copied()
    }

    fn file(&self, seq: u64) -> Result<Arc<File>> {
        self.segments
            .iter()
            .find(|s| s.seq == seq)
            .map(|s| s.file.clone())
            .ok_or_else(|| MetaError::Corrupt(format!("log segment {seq} is gone but holds a live entry")))
    }

    fn truncate(&mut self, from: u64) {
        self.entries.split_off(&from);
    }

    fn purge(&mut self, through: u64) {
        self.entries = match through.checked_add(1) {
            Some(keep) => self.entries.split_off(&keep),
            None => BTreeMap::new(),
        };
    }

    /// Applies one replayed record.
    fn replay(&mut self, kind: Kind, payload: &[u8], at: Location) -> Result<()> {
        match kind {
            Kind::Entry => {
                let index = read_u64(payload)?;
                // As a live append does: writing at or below the last index drops the rest.
                self.truncate(index);
                self.entries.insert(index, Location { offset: at.offset + 8, len: at.len - 8, ..at });
            }
            Kind::Truncate => self.truncate(read_u64(payload)?),
            Kind::Purge => self.purge(read_u64(payload)?),
            Kind::SlotSet | Kind::SlotClear => {
                let (&code, value) =
                    payload.split_first().ok_or_else(|| MetaError::Corrupt("log slot record is empty".into()))?;
                let slot = Slot::from_code(code)
                    .ok_or_else(|| MetaError::Corrupt(format!("log slot record names slot {code}")))?;
                if kind == Kind::SlotSet {
                    self.slots.insert(slot, value.to_vec());
                } else {
                    self.slots.remove(&slot);
                }
            }
        }
        Ok(())
    }
}

fn read_u64(payload: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| MetaError::Corrupt(format!("log record of {} bytes lacks its index", payload.len())))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Appends one record to `out`: length, CRC-32 of kind and payload, kind, payload.
fn encode(out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind as u8]);
    crc.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

/// Appends the record setting `slot` to `value`.
fn encode_slot(out: &mut Vec<u8>, slot: Slot, value: &[u8]) {
    let mut payload = Vec::with_capacity(1 + value.len());
    payload.push(slot.code());
    payload.extend_from_slice(value);
    encode(out, Kind::SlotSet, &payload);
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.log"))
}

fn create_segment(dir: &Path, seq: u64) -> Result<Segment> {
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(segment_path(dir, seq))?;
    // The new name must survive a crash along with what is later synced into the file.
    sync_dir(dir)?;
    Ok(Segment { seq, file: Arc::new(file), len: 0 })
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Replaces `dir/name` with `bytes`, durably: a crash leaves either the old file or the new one.
fn write_file_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    // A name of its own per write, so two writers never share a half-written file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.{}.{n}.tmp", std::process::id()));
    {
        let file = File::create(&tmp)?;
        file.write_all_at(bytes, 0)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Reads every segment of `dir` in order and rebuilds the log's state. A torn record at the end
/// of the last segment (a crash during a write) is cut off; damage anywhere else is corruption.
fn replay(dir: &Path) -> Result<State> {
    let mut seqs = Vec::new();
    for item in fs::read_dir(dir)? {
        let name = item?.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") {
            // A snapshot write that a crash interrupted before its rename.
            fs::remove_file(dir.join(name.as_ref()))?;
            continue;
        }
        if let Some(seq) = name.strip_suffix(".log").and_then(|hex| u64::from_str_radix(hex, 16).ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    let mut state = State::empty();
    let count = seqs.len();
    for (i, seq) in seqs.into_iter().enumerate() {
        let last = i + 1 == count;
        let path = segment_path(dir, seq);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let bytes = fs::read(&path)?;
        state.segments.push_back(Segment { seq, file: Arc::new(file), len: 0 });
        let mut at = 0usize;
        let valid_end = loop {
            let Some(header) = bytes.get(at..at + HEADER_BYTES) else {
                break at;
            };
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let Some(payload) =
                (len <= MAX_RECORD_BYTES).then(|| bytes.get(at + HEADER_BYTES..at + HEADER_BYTES + len)).flatten()
            else {
                break at;
            };
            let mut check = crc32fast::Hasher::new();
            check.update(&[header[8]]);
            check.update(payload);
            let (Some(kind), true) = (Kind::from_byte(header[8]), check.finalize() == crc) else {
                break at;
            };
            let end = (at + HEADER_BYTES + len) as u64;
            let location = Location { seq, offset: (at + HEADER_BYTES) as u64, len: len as u32, end };
            state.replay(kind, payload, location)?;
            at += HEADER_BYTES + len;
        };
        if valid_end != bytes.len() {
            if !last {
                return Err(MetaError::Corrupt(format!(
                    "log segment {} is damaged at byte {valid_end} of {}",
                    path.display(),
                    bytes.len()
                )));
            }
            tracing::warn!(
                segment = %path.display(),
                valid = valid_end,
                total = bytes.len(),
                "cutting off a record torn by a crash at the end of the raft log"
            );
            let segment = state.active();
            segment.file.set_len(valid_end as u64)?;
            segment.file.sync_all()?;
        }
        if let Some(segment) = state.segments.back_mut() {
            segment.len = valid_end as u64;
        }
    }
    if state.segments.is_empty() {
        state.segments.push_back(create_segment(dir, 1)?);
    }
    // What the last run wrote may still be only in the page cache (a killed process, not a lost
    // machine): sync it before calling it durable, or an apply could rely on it.
    let active = state.active();
    active.file.sync_data()?;
    sync_dir(dir)?;
    state.durable = (active.seq, active.len);
    Ok(state)
}

/// Moves a log written by an earlier version from sled into a new directory `dir`. The new log is
/// written beside it, synced, and renamed into place, so a crash leaves either no directory (and
/// the sled trees, so this runs again) or the whole log.
fn migrate_from_sled(root: &Path, dir: &Path, db: &sled::Db, group: GroupId) -> Result<()> {
    if !root.try_exists()? {
        fs::create_dir_all(root)?;
        if let Some(parent) = root.parent() {
            sync_dir(parent)?;
        }
    }
    let staging = root.join(format!("{group}.new"));
    if staging.try_exists()? {
        fs::remove_dir_all(&staging)?;
    }
    fs::create_dir(&staging)?;
    let names = db.tree_names();
    let has = |tree: &str| names.iter().any(|n| n.as_ref() == format!("{group}/{tree}").as_bytes());
    let mut frames = Vec::new();
    if has(LEGACY_SLOTS_TREE) {
        let slots = db.open_tree(format!("{group}/{LEGACY_SLOTS_TREE}"))?;
        for slot in STREAM_SLOTS {
            if let Some(value) = slots.get(slot.legacy_key())? {
                encode_slot(&mut frames, slot, &value);
            }
        }
        if let Some(snapshot) = slots.get(Slot::Snapshot.legacy_key())? {
            write_file_atomically(&staging, SNAPSHOT_FILE, &snapshot)?;
        }
    }
    if has(LEGACY_ENTRIES_TREE) {
        for item in db.open_tree(format!("{group}/{LEGACY_ENTRIES_TREE}"))?.iter() {
            let (key, body) = item?;
            let bytes: [u8; 8] = key
                .as_ref()
                .try_into()
                .map_err(|_| MetaError::Corrupt(format!("legacy log key of {} bytes, expected 8", key.len())))?;
            let mut payload = u64::from_be_bytes(bytes).to_le_bytes().to_vec();
            payload.extend_from_slice(&body);
            encode(&mut frames, Kind::Entry, &payload);
        }
    }
    let segment = create_segment(&staging, 1)?;
    segment.file.write_all_at(&frames, 0)?;
    segment.file.sync_all()?;
    sync_dir(&staging)?;
    fs::rename(&staging, dir)?;
    sync_dir(root)
}

/// Drops the sled trees of a log that now lives in files (left behind if a crash came between the
/// move and the drop).
fn drop_legacy_trees(db: &sled::Db, group: GroupId) -> Result<()> {
    let mut dropped = false;
    for tree in [LEGACY_ENTRIES_TREE, LEGACY_SLOTS_TREE] {
        dropped |= db.drop_tree(format!("{group}/{tree}"))?;
    }
    if dropped {
        db.flush()?;
    }
    Ok(())
}

/// Turns any range of indices into `(first, last)`, both inclusive, or `None` if it is empty.
/// Working with inclusive ends avoids overflow at `u64::MAX`.
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

#[cfg(test)]
mod tests;
