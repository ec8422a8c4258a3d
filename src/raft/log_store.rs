//! openraft's log storage ([`RaftLogStorage`], [`RaftLogReader`]) over `gati_meta::LogStore`.
//!
//! Owns the Raft rules the engine-neutral log does not know: entries are JSON-encoded
//! [`Entry`]s keyed by their index; the vote is durable before `save_vote` returns; an append is
//! reported flushed (the `LogFlushed` callback) only after sled has fsynced it; the purge
//! watermark is written before the entries it covers are removed. It may call
//! `gati_meta::log_store` (through the blocking pool, see `storage_io`) and must not call the state
//! machine: the log and the state machine meet only inside openraft.
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

use gati_meta::log_store::{LogStore, Slot};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, StorageIOError};
use tokio::sync::mpsc;

use super::storage_io::{AdaptersAlive, decode, encode, run_blocking, storage_error};
use super::types::{Entry, GatiRaft, LogId, StorageError, Vote};

/// Makes appended entries durable, in order, and reports each append once it is.
///
/// One fsync covers every append that was written before it started (sled flushes all earlier
/// writes), so appends that queue up while a flush runs share the next one: group commit at the
/// storage level. Callbacks fire in append order, after the flush that covers them.
async fn flush_appends(log: LogStore, mut waiting: mpsc::UnboundedReceiver<LogFlushed<GatiRaft>>) {
    let mut batch = Vec::new();
    while waiting.recv_many(&mut batch, 1024).await > 0 {
        let outcome = log.flush_async().await.map_err(|e| e.to_string());
        for callback in batch.drain(..) {
            callback.log_io_completed(outcome.clone().map_err(io::Error::other));
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
    _alive: AdaptersAlive,
}

impl LogAdapter {
    /// Wraps an open log store; `alive` tells the node when openraft has dropped every clone.
    /// Starts the group's flusher task, which ends once every clone is dropped.
    pub(super) fn new(log: LogStore, alive: AdaptersAlive) -> Self {
        let (flusher, waiting) = mpsc::unbounded_channel();
        tokio::spawn(flush_appends(log.clone(), waiting));
        LogAdapter { log, flusher, _alive: alive }
    }

    /// Reads and decodes a slot holding consensus metadata.
    async fn read_slot<T>(&self, slot: Slot, subject: ErrorSubject<u64>) -> Result<Option<T>, StorageError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let log = self.log.clone();
        run_blocking(ErrorVerb::Read, move || {
            match log.get_slot(slot).map_err(|e| storage_error(subject.clone(), ErrorVerb::Read, &e))? {
                None => Ok(None),
                Some(bytes) => decode(&bytes).map(Some).map_err(|e| storage_error(subject, ErrorVerb::Read, &e)),
            }
        })
        .await
    }

    /// Encodes and writes a slot holding consensus metadata; durable only after a flush.
    async fn write_slot<T: serde::Serialize>(
        &self,
        slot: Slot,
        value: &T,
        subject: ErrorSubject<u64>,
    ) -> Result<(), StorageError> {
        let bytes = encode(value).map_err(|e| storage_error(subject.clone(), ErrorVerb::Write, &e))?;
        let log = self.log.clone();
        run_blocking(ErrorVerb::Write, move || {
            log.put_slot(slot, &bytes).map_err(|e| storage_error(subject, ErrorVerb::Write, &e))
        })
        .await
    }

    /// Fsyncs every earlier write; `subject` names what the caller is making durable.
    async fn flush(&self, subject: ErrorSubject<u64>) -> Result<(), StorageError> {
        self.log.flush_async().await.map_err(|e| storage_error(subject, ErrorVerb::Write, &e))
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
        let bounds: (Bound<u64>, Bound<u64>) = (range.start_bound().cloned(), range.end_bound().cloned());
        let log = self.log.clone();
        run_blocking(ErrorVerb::Read, move || {
            let raw = log.range(bounds).map_err(|e| StorageIOError::read_logs(&e))?;
            raw.into_iter().map(|(index, body)| decode_entry(index, &body)).collect()
        })
        .await
    }

    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        let log = self.log.clone();
        run_blocking(ErrorVerb::Read, move || {
            let raw = log.range_limited(start..end, MAX_READ_BYTES).map_err(|e| StorageIOError::read_logs(&e))?;
            raw.into_iter().map(|(index, body)| decode_entry(index, &body)).collect()
        })
        .await
    }
}

impl RaftLogStorage<GatiRaft> for LogAdapter {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<GatiRaft>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_slot(Slot::LastPurged, ErrorSubject::Logs).await?;
        let log = self.log.clone();
        let last_entry =
            run_blocking(ErrorVerb::Read, move || match log.last().map_err(|e| StorageIOError::read_logs(&e))? {
                None => Ok(None),
                Some((index, body)) => Ok(Some(decode_entry(index, &body)?.log_id)),
            })
            .await?;
        // An empty log reports the purge watermark as its last id (openraft's contract). The max
        // also covers entries a crash left behind between writing the watermark and purging.
        let last_log_id = std::cmp::max(last_entry, last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_slot(Slot::Vote, vote, ErrorSubject::Vote).await?;
        // A vote acted upon and then forgotten in a crash lets this node vote twice in one term.
        self.flush(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_slot(Slot::Vote, ErrorSubject::Vote).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not flushed: it only lets a restart re-apply sooner. Losing it is harmless, and since
        // sled recovers a prefix of writes, a durable `committed` implies the entries it covers
        // are durable too.
        self.write_slot(Slot::Committed, &committed, ErrorSubject::Store).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_slot::<Option<LogId>>(Slot::Committed, ErrorSubject::Store).await?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<GatiRaft>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let log = self.log.clone();
        run_blocking(ErrorVerb::Write, move || {
            let mut encoded = Vec::with_capacity(entries.len());
            for entry in &entries {
                let body = encode(entry).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &e))?;
                encoded.push((entry.log_id.index, body));
            }
            log.append(encoded).map_err(|e| StorageIOError::write_logs(&e).into())
        })
        .await?;
        // Readable now; openraft may count these entries towards a quorum only once the callback
        // fires, so it fires after the fsync, never before. The fsync runs in the flusher, not
        // here: openraft's core waits for `append` to return, and holding it through an fsync
        // would keep the leader from replicating the entry while it is being made durable here.
        if let Err(refused) = self.flusher.send(callback) {
            // The flusher is gone only if the runtime is shutting down; flush inline instead.
            let outcome = self.log.flush_async().await.map_err(|e| io::Error::other(e.to_string()));
            refused.0.log_io_completed(outcome);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Not flushed: truncated entries were never committed, and the append that follows a
        // truncation is flushed, which makes the truncation durable first (sled's write order).
        let log = self.log.clone();
        run_blocking(ErrorVerb::Delete, move || {
            log.truncate_from(log_id.index).map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, &e))
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Watermark first: a crash between the two writes then leaves extra entries below the
        // watermark (removed by the next purge), never a hole above it.
        self.write_slot(Slot::LastPurged, &log_id, ErrorSubject::Logs).await?;
        let log = self.log.clone();
        run_blocking(ErrorVerb::Delete, move || {
            log.purge_through(log_id.index).map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Delete, &e))
        })
        .await
    }
}
