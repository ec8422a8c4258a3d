//! openraft's state machine ([`RaftStateMachine`], [`RaftSnapshotBuilder`]) over
//! `gati_meta::StateMachine`.
//!
//! Owns the consensus position of the state machine (last applied entry and membership, stored as
//! opaque bytes in the same atomic write as each command's effects, see [`AppliedPosition`]) and
//! the current snapshot, kept in the log store's `Snapshot` slot so that it survives restarts.
//! It may call `gati_meta::StateMachine`, and of `gati_meta::LogStore` the snapshot slot and
//! `make_durable_through`, all through the blocking pool (see `storage_io`); it must not touch log
//! entries or the vote.
//!
//! Durability: `apply` does not flush the state. It first makes sure the entries it applies are
//! durable in this node's log (the state may be written out at any time, and must never be ahead
//! of the log after a crash), and the position moves atomically with the state, so after a crash
//! the stored state is exactly "applied through the stored position" and openraft re-applies the
//! rest from the log. The state is flushed when a snapshot is saved, because the log entries the
//! snapshot covers may be purged right after.
//!
//! Consistency of snapshots: openraft builds a snapshot in its own task while the state machine
//! worker keeps applying. The exported state and the position in the snapshot's metadata must be
//! the same point in time, so every apply batch, export and import here holds one exclusive guard.
#![allow(
    clippy::result_large_err,
    reason = "openraft's storage traits fix `StorageError` (over 200 bytes) as the error type"
)]

use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use gati_core::ProposalOutcome;
use gati_meta::StateMachine;
use gati_meta::log_store::{LogStore, Slot};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, StorageIOError};
use serde::{Deserialize, Serialize};

use super::storage_io::{AdaptersAlive, DurableState, decode, encode, run_blocking, storage_error};
use super::types::{Entry, GatiRaft, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership};

/// Marks the start of a stored snapshot record (see [`encode_snapshot_record`]); the last two
/// bytes are the record format version.
const SNAPSHOT_RECORD_MAGIC: &[u8; 8] = b"GATISN01";

/// The consensus position stored with the state: the last applied entry and the membership in
/// force after it. Opaque to `gati-meta`; encoded with `storage_io::encode`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct AppliedPosition {
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// openraft's view of the metadata state machine; cheap to clone, clones share the stores.
#[derive(Clone)]
pub(super) struct StateMachineAdapter {
    sm: StateMachine,
    /// Holds the current snapshot in [`Slot::Snapshot`]; nothing else of the log is touched here.
    log: LogStore,
    /// Makes apply batches, exports and imports mutually exclusive (see the module docs).
    exclusive: Arc<Mutex<()>>,
    /// Serialises snapshot saves and holds the position of the last one saved: openraft builds
    /// snapshots in their own task while its state machine worker may install one, and a build
    /// that finishes late must not replace a newer installed snapshot.
    saved: Arc<tokio::sync::Mutex<Option<LogId>>>,
    /// The position up to which the stored state is known to be durable, for the log's purges
    /// (see [`DurableState`]).
    durable: DurableState,
    _alive: AdaptersAlive,
}

impl StateMachineAdapter {
    /// Wraps the state machine and the log store whose snapshot slot it uses; `alive` tells the
    /// node when openraft has dropped every clone.
    ///
    /// The state as stored when this is called is durable (it was just read from disk), so its
    /// position starts [`StateMachineAdapter::durable_state`].
    pub(super) fn new(sm: StateMachine, log: LogStore, alive: AdaptersAlive) -> Self {
        let stored = read_position(&sm).ok().and_then(|p| p.last_applied).map_or(0, |id| id.index);
        StateMachineAdapter {
            sm,
            log,
            exclusive: Arc::new(Mutex::new(())),
            saved: Arc::new(tokio::sync::Mutex::new(None)),
            durable: DurableState::new(stored),
            _alive: alive,
        }
    }

    /// Follows how far the stored state is durable; the log adapter purges no further.
    pub(super) fn durable_state(&self) -> DurableState {
        self.durable.clone()
    }

    /// Makes the state durable, then writes `meta` and `data` as the current snapshot (durable
    /// when the write returns). The state goes first: once the snapshot is saved, openraft may
    /// purge the log entries it covers, and a restart must not find state older than the log.
    ///
    /// A snapshot older than the one already saved is not written (the state is still flushed).
    async fn save_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let record =
            encode_snapshot_record(meta, data).map_err(|e| storage_error(subject.clone(), ErrorVerb::Write, &e))?;
        let mut saved = self.saved.lock().await;
        let newer = saved.is_none_or(|previous| Some(previous) < meta.last_log_id);
        let (sm, log) = (self.sm.clone(), self.log.clone());
        run_blocking(ErrorVerb::Write, move || {
            sm.flush().map_err(|e| storage_error(subject.clone(), ErrorVerb::Write, &e))?;
            if newer {
                log.put_slot(Slot::Snapshot, &record).map_err(|e| storage_error(subject, ErrorVerb::Write, &e))?;
            }
            Ok(())
        })
        .await?;
        if newer {
            *saved = meta.last_log_id;
        }
        // The state was at least at the snapshot's position when it was flushed.
        if let Some(id) = meta.last_log_id {
            self.durable.advance(id.index);
        }
        Ok(())
    }
}

/// Takes the exclusive guard. Poisoning is ignored on purpose: the guard protects no data, only
/// ordering, and every store call is atomic by itself, so a panic mid-batch leaves a consistent
/// (if shorter) applied prefix behind.
fn exclusive(guard: &Mutex<()>) -> MutexGuard<'_, ()> {
    guard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads the stored position; a state machine that never applied anything is at the default.
fn read_position(sm: &StateMachine) -> Result<AppliedPosition, StorageError> {
    match sm.raft_state().map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, &e))? {
        None => Ok(AppliedPosition::default()),
        Some(bytes) => decode(&bytes).map_err(|e| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, &e)),
    }
}

/// Returns a fresh snapshot id. Ids only need to tell snapshots apart (openraft compares them
/// when a transfer resumes), so the position plus the build time is enough.
fn new_snapshot_id(last_applied: Option<LogId>) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    match last_applied {
        Some(id) => format!("{}-{}-{nanos:x}", id.leader_id, id.index),
        None => format!("empty-{nanos:x}"),
    }
}

/// Encodes a snapshot record: magic, the metadata's length (u32, big-endian), the metadata as
/// JSON, then the state bytes verbatim (they are binary; JSON would triple their size).
fn encode_snapshot_record(meta: &SnapshotMeta, data: &[u8]) -> Result<Vec<u8>, AnyError> {
    let meta_bytes = encode(meta).map_err(|e| AnyError::new(&e))?;
    let meta_len = u32::try_from(meta_bytes.len())
        .map_err(|_| AnyError::error(format!("snapshot metadata of {} bytes", meta_bytes.len())))?;
    let mut record = Vec::with_capacity(SNAPSHOT_RECORD_MAGIC.len() + 4 + meta_bytes.len() + data.len());
    record.extend_from_slice(SNAPSHOT_RECORD_MAGIC);
    record.extend_from_slice(&meta_len.to_be_bytes());
    record.extend_from_slice(&meta_bytes);
    record.extend_from_slice(data);
    Ok(record)
}

/// Decodes what [`encode_snapshot_record`] wrote into the metadata and the state bytes.
fn decode_snapshot_record(record: &[u8]) -> Result<(SnapshotMeta, Vec<u8>), AnyError> {
    let corrupt = |why: &str| AnyError::error(format!("stored snapshot record is corrupt: {why}"));
    let rest = record.strip_prefix(SNAPSHOT_RECORD_MAGIC.as_slice()).ok_or_else(|| corrupt("bad header"))?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(|| corrupt("truncated length"))?;
    let meta_len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| corrupt("length"))?;
    if rest.len() < meta_len {
        return Err(corrupt("truncated metadata"));
    }
    let (meta_bytes, data) = rest.split_at(meta_len);
    let meta = decode(meta_bytes).map_err(|e| AnyError::new(&e))?;
    Ok((meta, data.to_vec()))
}

impl RaftStateMachine<GatiRaft> for StateMachineAdapter {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let sm = self.sm.clone();
        let position = run_blocking(ErrorVerb::Read, move || read_position(&sm)).await?;
        Ok((position.last_applied, position.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ProposalOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let (sm, log) = (self.sm.clone(), self.log.clone());
        let guard = self.exclusive.clone();
        run_blocking(ErrorVerb::Write, move || {
            // The state may reach disk at any time (sled flushes in the background), and after a
            // crash it must not be ahead of this node's log: the log and the state are separate
            // stores. An entry can be committed by the others before this node's own copy is
            // synced, so make sure it is before applying it. Usually it already is.
            if let Some(last) = entries.last() {
                let last_id = last.log_id;
                log.make_durable_through(last_id.index).map_err(|e| StorageIOError::apply(last_id, &e))?;
            }
            let _exclusive = exclusive(&guard);
            let mut position = read_position(&sm)?;
            let mut outcomes = Vec::with_capacity(entries.len());
            for entry in entries {
                let log_id = entry.log_id;
                position.last_applied = Some(log_id);
                let commands = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Normal(proposal) => proposal.commands,
                    EntryPayload::Membership(membership) => {
                        position.membership = StoredMembership::new(Some(log_id), membership);
                        Vec::new()
                    }
                };
                let raft_state = encode(&position).map_err(|e| StorageIOError::apply(log_id, &e))?;
                let applied = sm.apply(&raft_state, &commands).map_err(|e| StorageIOError::apply(log_id, &e))?;
                outcomes.push(ProposalOutcome { outcomes: applied });
            }
            Ok(outcomes)
        })
        .await
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let sm = self.sm.clone();
        let guard = self.exclusive.clone();
        let expected = AppliedPosition { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        let data = run_blocking(ErrorVerb::Write, move || {
            let _exclusive = exclusive(&guard);
            sm.import_snapshot(&data).map_err(|e| storage_error(subject.clone(), ErrorVerb::Write, &e))?;
            // The position travels inside the state bytes; it must be the one the metadata
            // claims, or openraft would resume applying from the wrong entry.
            let imported = read_position(&sm)?;
            if imported != expected {
                let why =
                    AnyError::error(format!("snapshot data is at {imported:?}, its metadata claims {expected:?}"));
                return Err(StorageIOError::new(subject, ErrorVerb::Read, why).into());
            }
            Ok(data)
        })
        .await?;
        // Saved after the import: a crash in between leaves the new state with the previous
        // snapshot, which openraft tolerates (it re-snapshots per policy); the reverse order could
        // leave a snapshot claiming state the machine does not hold.
        self.save_snapshot(meta, &data).await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let log = self.log.clone();
        run_blocking(ErrorVerb::Read, move || {
            let subject = ErrorSubject::Snapshot(None);
            let Some(record) =
                log.get_slot(Slot::Snapshot).map_err(|e| storage_error(subject.clone(), ErrorVerb::Read, &e))?
            else {
                return Ok(None);
            };
            let (meta, data) =
                decode_snapshot_record(&record).map_err(|e| StorageIOError::new(subject, ErrorVerb::Read, e))?;
            Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
        })
        .await
    }
}

impl RaftSnapshotBuilder<GatiRaft> for StateMachineAdapter {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let sm = self.sm.clone();
        let guard = self.exclusive.clone();
        let (position, data) = run_blocking(ErrorVerb::Read, move || {
            let _exclusive = exclusive(&guard);
            let position = read_position(&sm)?;
            let data =
                sm.export_snapshot().map_err(|e| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Read, &e))?;
            Ok((position, data))
        })
        .await?;
        let meta = SnapshotMeta {
            last_log_id: position.last_applied,
            last_membership: position.membership,
            snapshot_id: new_snapshot_id(position.last_applied),
        };
        self.save_snapshot(&meta, &data).await?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_records_round_trip_including_binary_data() {
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(3, 1), 42)),
            last_membership: StoredMembership::default(),
            snapshot_id: "x".into(),
        };
        let data = vec![0u8, 255, b'{', 7];
        let record = encode_snapshot_record(&meta, &data).expect("metadata encodes");
        let (got_meta, got_data) = decode_snapshot_record(&record).expect("record decodes");
        assert_eq!(got_meta, meta);
        assert_eq!(got_data, data);
    }

    #[test]
    fn truncated_snapshot_records_are_rejected() {
        let meta = SnapshotMeta::default();
        let record = encode_snapshot_record(&meta, b"data").expect("metadata encodes");
        assert!(decode_snapshot_record(&record[..10]).is_err());
        assert!(decode_snapshot_record(b"GATISN02").is_err());
        assert!(decode_snapshot_record(b"").is_err());
    }
}
