//! openraft's log storage ([`RaftLogStorage`], [`RaftLogReader`]) over `gati_meta::LogStore`.
//!
//! Owns the Raft rules the engine-neutral log does not know: entries are JSON-encoded
//! [`Entry`]s keyed by their index; the vote is durable before `save_vote` returns; an append is
//! reported flushed (the `LogFlushed` callback) only after the log has fsynced it; the purge
//! watermark is written before the entries it covers are removed (in the background). It may call
//! `gati_meta::log_store` and must not call the state machine: the log and the state machine meet
//! only inside openraft (and in the state machine's durability check before it applies).
//!
//! Threads: appends, truncations, slot writes and reads run on the calling task. They are
//! positioned reads and writes of the page cache, a few microseconds, and a hand-off to another
//! thread for each would cost more than the call (on a busy node, thread wake-ups were the largest
//! cost of replication). What can block for long runs elsewhere: the fsync behind every append on
//! the group's flusher thread, the vote's fsync and a purge (which syncs and deletes files) on
//! tokio's blocking pool.
//!
//! Errors keep openraft's typing: every failure is a `StorageError` whose subject names what was
//! being touched (`Vote`, `Logs`, `Log(id)`, `LogIndex(i)`, `Store`) and whose verb names the
//! operation, because openraft stops the node on any of them and the subject is what an operator
//! reads first.
#![allow(
    clippy::result_large_err,
    reason = "openraft's storage traits fix `StorageError` (over 200 bytes) as the error type"
)]

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use gati_meta::log_store::{LogStore, Slot};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, StorageIOError};
use tokio::sync::mpsc;

use super::storage_io::{AdaptersAlive, DurableState, DurableWatch, decode, encode, run_blocking, storage_error};
use super::types::{Entry, GatiRaft, LogId, StorageError, Vote};

/// Makes appended entries durable, in order, and reports each append once it is. Runs on its own
/// thread (one per group) and ends once every sender is dropped.
///
/// One fsync covers every append written before it started, so appends that queue up while a
/// flush runs share the next one: group commit at the storage level. Callbacks fire in append
/// order, after the flush that covers them.
fn flush_appends(log: LogStore, mut waiting: mpsc::UnboundedReceiver<LogFlushed<GatiRaft>>) {
    let mut batch = Vec::new();
    while let Some(first) = waiting.blocking_recv() {
        batch.push(first);
        while let Ok(next) = waiting.try_recv() {
            batch.push(next);
        }
        let outcome = log.flush().map_err(|e| e.to_string());
        for callback in batch.drain(..) {
            callback.log_io_completed(outcome.clone().map_err(io::Error::other));
        }
    }
}

/// The purge watermark: written to the log's `LastPurged` slot, and the lowest index readers may
/// see. Shared by the adapter's clones and the background purger, which may both raise it; it only
/// ever moves up, so a late writer of an older watermark cannot lower it.
struct Watermark {
    log: LogStore,
    /// The watermark written last.
    written: std::sync::Mutex<Option<LogId>>,
    /// One past it: the lowest index that may still be read. Entries below it may linger until
    /// the background removal reaches them and must never be returned.
    first_live: AtomicU64,
}

impl Watermark {
    /// Writes `id` as the watermark unless an equal or newer one was written already.
    fn raise(&self, id: LogId) -> Result<(), StorageError> {
        let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *written >= Some(id) {
            return Ok(());
        }
        write_slot(&self.log, Slot::LastPurged, &id, ErrorSubject::Logs)?;
        *written = Some(id);
        self.first_live.fetch_max(id.index + 1, Ordering::SeqCst);
        Ok(())
    }

    /// Takes note of a watermark read from the log.
    fn note(&self, purged: Option<LogId>) {
        if let Some(id) = purged {
            let mut written = self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *written = (*written).max(Some(id));
            self.first_live.fetch_max(id.index + 1, Ordering::SeqCst);
        }
    }
}

/// Encodes and writes a slot holding consensus metadata; durable only after a flush.
fn write_slot<T: serde::Serialize>(
    log: &LogStore,
    slot: Slot,
    value: &T,
    subject: ErrorSubject<u64>,
) -> Result<(), StorageError> {
    let bytes = encode(value).map_err(|e| storage_error(subject.clone(), ErrorVerb::Write, &e))?;
    log.put_slot(slot, &bytes).map_err(|e| storage_error(subject, ErrorVerb::Write, &e))
}

/// Removes purged entries (and the segment files left holding nothing live) in the background.
///
/// Not done in `purge`: openraft's core waits for `purge` to return, and the removal syncs the
/// log and deletes files. Entries below the watermark are never read again, so removing them late
/// changes nothing but disk space.
///
/// It holds `_alive` so that a node shutting down waits for it to let go of the store.
async fn purge_in_background(
    log: LogStore,
    mut targets: mpsc::UnboundedReceiver<LogId>,
    watermark: Arc<Watermark>,
    mut durable: DurableWatch,
    _alive: AdaptersAlive,
) {
    while let Some(mut target) = targets.recv().await {
        while let Ok(next) = targets.try_recv() {
            target = target.max(next);
        }
        // Not before the state covers the purged entries durably (see `DurableState`): after an
        // installed snapshot that takes until the install has been saved.
        if !durable.reached(target.index).await {
            return; // every adapter is gone: the node is stopping
        }
        // Watermark first: the removal is written after it, so a crash in between leaves extra
        // entries below the watermark (removed by the next purge), never a hole above it.
        if let Err(error) = watermark.raise(target) {
            tracing::warn!(%error, %target, "writing the purge watermark failed; the next purge retries");
            continue;
        }
        let purger = log.clone();
        let index = target.index;
        match tokio::task::spawn_blocking(move || purger.purge_through(index)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, %target, "removing purged log entries failed; the next purge retries");
            }
            Err(_) => return,
        }
    }
}

/// How many bytes of entries one replication read returns at most (at least one entry is always
/// returned). Bounds the memory of a catching-up follower's batch; openraft also caps the entry
/// count with `max_payload_entries`.
const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

/// openraft's view of the durable log of one group; cheap to clone, clones share the store.
#[derive(Clone)]
pub(super) struct LogAdapter {
    log: LogStore,
    flusher: mpsc::UnboundedSender<LogFlushed<GatiRaft>>,
    purger: mpsc::UnboundedSender<LogId>,
    /// How far the state machine's stored state is durable; purges go no further.
    durable: DurableState,
    watermark: Arc<Watermark>,
    _alive: AdaptersAlive,
}

impl LogAdapter {
    /// Wraps an open log store; `alive` tells the node when openraft has dropped every clone.
    /// Starts the group's flusher thread, which ends once every clone is dropped.
    /// `durable` is the state machine adapter's [`DurableState`].
    pub(super) fn new(log: LogStore, alive: AdaptersAlive, durable: DurableState) -> Self {
        let (flusher, waiting) = mpsc::unbounded_channel();
        let flushed = log.clone();
        let spawned =
            std::thread::Builder::new().name("raft-log-flush".into()).spawn(move || flush_appends(flushed, waiting));
        if let Err(error) = spawned {
            // Without the thread, sending to it fails and each append flushes before returning.
            tracing::error!(%error, "could not start a raft log flusher thread; appends flush inline");
        }
        let (purger, targets) = mpsc::unbounded_channel();
        let watermark = Arc::new(Watermark {
            log: log.clone(),
            written: std::sync::Mutex::new(None),
            first_live: AtomicU64::new(0),
        });
        tokio::spawn(purge_in_background(log.clone(), targets, watermark.clone(), durable.watch(), alive.clone()));
        LogAdapter { log, flusher, purger, durable, watermark, _alive: alive }
    }

    /// `start` raised to the lowest readable index.
    fn live_start(&self, start: Bound<u64>) -> Bound<u64> {
        let first = self.watermark.first_live.load(Ordering::SeqCst);
        match start {
            Bound::Included(s) if s >= first => Bound::Included(s),
            Bound::Excluded(s) if s >= first => Bound::Excluded(s),
            _ if first == 0 => start,
            _ => Bound::Included(first),
        }
    }

    /// Reads and decodes a slot holding consensus metadata.
    fn read_slot<T: serde::de::DeserializeOwned>(
        &self,
        slot: Slot,
        subject: ErrorSubject<u64>,
    ) -> Result<Option<T>, StorageError> {
        match self.log.get_slot(slot).map_err(|e| storage_error(subject.clone(), ErrorVerb::Read, &e))? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(|e| storage_error(subject, ErrorVerb::Read, &e)),
        }
    }

    /// Fsyncs every earlier write; `subject` names what the caller is making durable.
    async fn flush(&self, subject: ErrorSubject<u64>) -> Result<(), StorageError> {
        let log = self.log.clone();
        run_blocking(ErrorVerb::Write, move || log.flush().map_err(|e| storage_error(subject, ErrorVerb::Write, &e)))
            .await
    }
}

/// Decodes a stored entry, checking it sits at the index it claims: a mismatch means the tree was
/// written by something else or rewritten wrongly, and replaying it would corrupt the state.
fn decode_entry(index: u64, body: &[u8]) -> Result<Entry, StorageError> {
    let entry: Entry = decode(body).map_err(|e| StorageIOError::read_log_at_index(index, &e))?;
    if entry.log_id.index != index {
        let why = AnyError::error(format!("entry stored at index {index} has log id {}", entry.log_id));
        return Err(StorageIOError::read_log_at_index(index, why).into());
    }
    Ok(entry)
}

impl RaftLogReader<GatiRaft> for LogAdapter {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds: (Bound<u64>, Bound<u64>) =
            (self.live_start(range.start_bound().cloned()), range.end_bound().cloned());
        let raw = self.log.range(bounds).map_err(|e| StorageIOError::read_logs(&e))?;
        raw.into_iter().map(|(index, body)| decode_entry(index, &body)).collect()
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        let start = start.max(self.watermark.first_live.load(Ordering::SeqCst));
        let raw = self.log.range_limited(start..end, MAX_READ_BYTES).map_err(|e| StorageIOError::read_logs(&e))?;
        raw.into_iter().map(|(index, body)| decode_entry(index, &body)).collect()
    }
}

impl RaftLogStorage<GatiRaft> for LogAdapter {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<GatiRaft>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_slot(Slot::LastPurged, ErrorSubject::Logs)?;
        self.watermark.note(last_purged_log_id);
        let last_entry = match self.log.last().map_err(|e| StorageIOError::read_logs(&e))? {
            None => None,
            Some((index, body)) => Some(decode_entry(index, &body)?.log_id),
        };
        // An empty log reports the purge watermark as its last id (openraft's contract). The max
        // also covers entries a crash left behind between writing the watermark and purging.
        let last_log_id = std::cmp::max(last_entry, last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        write_slot(&self.log, Slot::Vote, vote, ErrorSubject::Vote)?;
        // A vote acted upon and then forgotten in a crash lets this node vote twice in one term.
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_slot(Slot::Vote, ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: it only lets a restart re-apply sooner. Losing it is harmless, and since
        // the log recovers a prefix of its writes, a durable `committed` implies the entries it
        // covers are durable too.
        write_slot(&self.log, Slot::Committed, &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_slot::<Option<LogId>>(Slot::Committed, ErrorSubject::Store)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<GatiRaft>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let body = encode(&entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
            encoded.push((entry.log_id.index, body));
        }
        self.log.append(encoded).map_err(|e| StorageIOError::write_logs(&e))?;
        // Readable now; openraft may count these entries towards a quorum only once the callback
        // fires, so it fires after the fsync, never before. The fsync runs in the flusher, not
        // here: openraft's core waits for `append` to return, and holding it through an fsync
        // would keep the leader from replicating the entry while it is being made durable here.
        if let Err(refused) = self.flusher.send(callback) {
            // No flusher thread (it could not be started): flush before returning instead.
            let log = self.log.clone();
            let outcome = match tokio::task::spawn_blocking(move || log.flush()).await {
                Ok(flushed) => flushed.map_err(|e| io::Error::other(e.to_string())),
                Err(join) => Err(io::Error::other(join.to_string())),
            };
            refused.0.log_io_completed(outcome);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Not flushed: truncated entries were never committed, and the append that follows a
        // truncation is flushed, which makes the truncation durable first (the log's write order).
        self.log
            .truncate_from(log_id.index)
            .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, &e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Usually the state already covers the purged entries durably (a snapshot was saved
        // first); then the watermark is written at once. After an installed snapshot, openraft
        // purges before the install has been saved, and the background task waits for it (see
        // `DurableState`). The removal itself always runs in the background
        // (see `purge_in_background`), behind the watermark.
        if self.durable.covers(log_id.index) {
            self.watermark.raise(log_id)?;
        }
        if self.purger.send(log_id).is_err() {
            // Shutting down: the next purge after a restart removes them.
            tracing::debug!(index = log_id.index, "purged log entries left for the next purge");
        }
        Ok(())
    }
}
