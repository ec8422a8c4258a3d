//! [`S3UploadWriter`]: the writing end of one upload session.
//!
//! Accepted chunks go to the running SHA-256 ([`HashLane`], on blocking threads) and to the part
//! being assembled ([`PartBuffer`]). Each full part is uploaded by a task of its own while the
//! writer keeps accepting bytes, at most `parts_in_flight` at a time; a writer that would exceed
//! that waits for the oldest. Memory therefore stays under `(parts_in_flight + 1)` parts.
//!
//! Durability (`sync`): wait for every part in flight, write the bytes after the last part as a
//! tail segment (`tail.rs` decides which segments are rewritten), then rewrite the session record
//! with the parts and their `ETags`, the tail, the offset, the hash state and a renewed lease. The
//! record write is conditional on the version this writer last wrote, so a writer that lost its
//! lease learns it here (`UploadBusy`) and is poisoned instead of clobbering the new owner.
//!
//! Ownership: the lease is renewed by every record write, and by a record rewrite in `write` once
//! half of it has passed, so a long streaming PATCH keeps its session. Dropping the writer
//! releases the lease in the background (see `shared.rs`).
//!
//! May call `bucket.rs` through `Shared`, `record.rs` for record writes and `commit.rs` to
//! finish; must not touch committed blobs itself.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use gati_blob::{BlobError, BlobErrorKind, Result, UploadWriter};
use gati_core::{Digest, UploadId};
use tokio::task::JoinHandle;

use crate::bucket::PutCondition;
use crate::commit::{self, Finishing};
use crate::hash_lane::HashLane;
use crate::keys::tail_segment_name;
use crate::part_buffer::{PartBuffer, concat};
use crate::parts::{MAX_PARTS, part_len};
use crate::record::{self, Lease, PartRecord, SessionRecord, StoredRecord, TailSegment, encode_hasher, unix_now_ms};
use crate::shared::Shared;
use crate::tail::segments_to_keep;

/// A part being uploaded by its own task.
struct InFlightPart {
    number: i32,
    len: u64,
    job: JoinHandle<Result<String>>,
}

enum WriterState {
    Open,
    /// Refuses everything: an earlier failure left parts, tail or record in an unknown state.
    Poisoned(String),
    /// Handed over to `finish`; nothing left to release on drop.
    Closed,
}

/// [`UploadWriter`] of the S3 backend.
pub(crate) struct S3UploadWriter {
    shared: Arc<Shared>,
    id: UploadId,
    /// This writer's lease token; also names its tail segments.
    holder: String,
    /// The record as this writer last stored it: the base (and `If-Match`) of every rewrite.
    stored: StoredRecord,
    lease_renew_at: Instant,
    /// Every uploaded part, recorded or not yet, in order.
    parts: Vec<PartRecord>,
    in_flight: VecDeque<InFlightPart>,
    /// The bytes after the last part, of which the first `tail` segments' worth are durable.
    current: PartBuffer,
    tail: Vec<TailSegment>,
    /// Tail segments whose bytes went into a part or a merged segment; deleted once a record
    /// without them is stored.
    obsolete_tails: Vec<String>,
    tail_seq: u64,
    hash: HashLane,
    offset: u64,
    state: WriterState,
}

impl S3UploadWriter {
    /// Returns a writer continuing from `stored`, a record this writer's `holder` just wrote,
    /// with `tail_chunks` the contents of its tail segments.
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: UploadId,
        holder: String,
        stored: StoredRecord,
        tail_chunks: Vec<Bytes>,
    ) -> Result<Self> {
        let record = &stored.record;
        let hash = HashLane::new(record.hasher()?);
        let current = PartBuffer::from_chunks(tail_chunks);
        debug_assert_eq!(current.len(), record.tail.iter().map(|s| s.len).sum::<u64>(), "tail loaded whole");
        Ok(S3UploadWriter {
            lease_renew_at: renew_time(&shared),
            parts: record.parts.clone(),
            tail: record.tail.clone(),
            offset: record.offset,
            current,
            hash,
            in_flight: VecDeque::new(),
            obsolete_tails: Vec::new(),
            tail_seq: 0,
            state: WriterState::Open,
            shared,
            id,
            holder,
            stored,
        })
    }

    fn check_usable(&self) -> Result<()> {
        match &self.state {
            WriterState::Open => Ok(()),
            WriterState::Poisoned(reason) => {
                Err(BlobError::new(BlobErrorKind::Io, format!("upload {} failed earlier: {reason}", self.id)))
            }
            WriterState::Closed => Err(BlobError::new(BlobErrorKind::Internal, "upload writer used after finish")),
        }
    }

    /// Poisons the writer on failure: after any error its parts, tail or record may be in a
    /// state it does not know, and only a resume (which reads the record back) can continue.
    fn note<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.state = WriterState::Poisoned(error.to_string());
        }
        result
    }

    fn part_size(&self) -> u64 {
        self.stored.record.part_size
    }

    fn next_part_number(&self) -> i32 {
        (self.parts.len() + self.in_flight.len()) as i32 + 1
    }

    async fn write_chunk(&mut self, chunk: Bytes) -> Result<()> {
        if Instant::now() >= self.lease_renew_at {
            self.rewrite_record(|_| {}).await?;
        }
        self.offset += chunk.len() as u64;
        self.hash.update(chunk.clone()).await?;
        self.current.push(chunk);
        loop {
            let number = self.next_part_number();
            if number > MAX_PARTS {
                // Part sizes grow so that this is past S3's 5 TB object limit anyway.
                return Err(BlobError::new(BlobErrorKind::Io, format!("upload {} exceeds S3's 10,000 parts", self.id)));
            }
            let len = part_len(self.part_size(), number);
            if self.current.len() < len {
                return Ok(());
            }
            let part = self.current.take_front(len);
            // The tail's bytes are now in this part; its segments go once a record says so.
            self.obsolete_tails.extend(self.tail.drain(..).map(|segment| segment.name));
            self.start_part_upload(number, len, part).await?;
        }
    }

    /// Starts uploading part `number`, first waiting for the oldest part if enough are in flight.
    async fn start_part_upload(&mut self, number: i32, len: u64, chunks: Vec<Bytes>) -> Result<()> {
        let upload_id = self.ensure_multipart_upload().await?;
        while self.in_flight.len() >= self.shared.config.parts_in_flight {
            self.collect_oldest_part().await?;
        }
        let shared = Arc::clone(&self.shared);
        let key = self.shared.keys.upload_data(&self.id);
        let job = tokio::spawn(async move {
            let body = tokio::task::spawn_blocking(move || concat(chunks))
                .await
                .map_err(|e| BlobError::with_source(BlobErrorKind::Internal, "assemble part", e))?;
            shared.bucket.upload_part(&key, &upload_id, number, body).await.map_err(|f| f.into_blob())
        });
        self.in_flight.push_back(InFlightPart { number, len, job });
        Ok(())
    }

    async fn collect_oldest_part(&mut self) -> Result<()> {
        let Some(part) = self.in_flight.pop_front() else { return Ok(()) };
        let etag = part.job.await.map_err(|e| {
            BlobError::with_source(BlobErrorKind::Internal, format!("upload part {}", part.number), e)
        })??;
        debug_assert_eq!(part.number as usize, self.parts.len() + 1, "parts complete in order");
        self.parts.push(PartRecord { number: part.number, len: part.len, etag });
        Ok(())
    }

    async fn collect_all_parts(&mut self) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.collect_oldest_part().await?;
        }
        Ok(())
    }

    /// Returns the session's multipart upload id, creating the upload (and recording it at once,
    /// so an abort from any node can find it) with the first part.
    async fn ensure_multipart_upload(&mut self) -> Result<String> {
        if let Some(upload_id) = &self.stored.record.multipart_upload_id {
            return Ok(upload_id.clone());
        }
        let key = self.shared.keys.upload_data(&self.id);
        let upload_id = self.shared.bucket.create_multipart(&key).await.map_err(|f| f.into_blob())?;
        let recorded = upload_id.clone();
        if let Err(error) = self.rewrite_record(move |record| record.multipart_upload_id = Some(recorded)).await {
            if let Err(abort) = self.shared.bucket.abort_multipart(&key, &upload_id).await {
                tracing::warn!(error = %abort.into_blob(), upload = %self.id, "aborting an unrecorded multipart upload failed");
            }
            return Err(error);
        }
        Ok(upload_id)
    }

    /// Rewrites the record from the last stored one changed by `change`, renewing the lease.
    async fn rewrite_record(&mut self, change: impl FnOnce(&mut SessionRecord)) -> Result<()> {
        let mut record = self.stored.record.clone();
        change(&mut record);
        record.revision += 1;
        record.lease = Some(lease_for(&self.shared, &self.holder));
        self.stored = record::replace(&self.shared, &self.id, &self.stored, record).await?;
        self.lease_renew_at = renew_time(&self.shared);
        Ok(())
    }

    async fn sync_all(&mut self) -> Result<()> {
        self.collect_all_parts().await?;
        let tail_len: u64 = self.tail.iter().map(|segment| segment.len).sum();
        if self.current.len() > tail_len {
            let lens: Vec<u64> = self.tail.iter().map(|segment| segment.len).collect();
            let keep = segments_to_keep(&lens, self.current.len() - tail_len);
            let start: u64 = lens[..keep].iter().sum();
            let chunks = self.current.slice_from(start);
            let body = tokio::task::spawn_blocking(move || concat(chunks))
                .await
                .map_err(|e| BlobError::with_source(BlobErrorKind::Internal, "assemble tail segment", e))?;
            let name = tail_segment_name(&self.holder, self.tail_seq);
            self.tail_seq += 1;
            let len = body.len() as u64;
            let key = self.shared.keys.upload_tail(&self.id, &name);
            // Nobody else writes this key (it carries our holder token), so no condition needed.
            // If the record write below fails the segment is garbage, removed with the session.
            let etag = self.shared.bucket.put(&key, body, PutCondition::Always).await.map_err(|f| f.into_blob())?;
            self.obsolete_tails.extend(self.tail.drain(keep..).map(|segment| segment.name));
            self.tail.push(TailSegment { name, len, etag });
        }
        let sha256_state = encode_hasher(self.hash.settle().await?)?;
        let (parts, tail, offset) = (self.parts.clone(), self.tail.clone(), self.offset);
        debug_assert_eq!(
            offset,
            parts.iter().map(|p| p.len).sum::<u64>() + self.current.len(),
            "offset counts every byte"
        );
        self.rewrite_record(move |record| {
            record.parts = parts;
            record.tail = tail;
            record.offset = offset;
            record.sha256_state = sha256_state;
        })
        .await?;
        self.delete_obsolete_tails().await;
        Ok(())
    }

    /// Deletes tail segments no stored record refers to any more. Best effort: a leftover is
    /// removed with the session.
    async fn delete_obsolete_tails(&mut self) {
        let names = std::mem::take(&mut self.obsolete_tails);
        let bucket = &self.shared.bucket;
        let deletes = names.iter().map(|name| {
            let key = self.shared.keys.upload_tail(&self.id, name);
            async move { (bucket.delete(&key).await, key) }
        });
        for (result, key) in futures_util::future::join_all(deletes).await {
            if let Err(failure) = result {
                tracing::warn!(error = %failure.into_blob(), %key, "deleting an obsolete tail segment failed");
            }
        }
    }

    /// Waits for every part, checks the lease is still ours by renewing it, and hands everything
    /// the commit needs over.
    async fn prepare_finish(&mut self) -> Result<Finishing> {
        self.collect_all_parts().await?;
        let sha256 = self.hash.settle().await?.clone();
        self.rewrite_record(|_| {}).await?;
        Ok(Finishing {
            shared: Arc::clone(&self.shared),
            id: self.id.clone(),
            stored: self.stored.clone(),
            parts: std::mem::take(&mut self.parts),
            rest: std::mem::take(&mut self.current),
            sha256,
            size: self.offset,
        })
    }
}

/// Returns a lease for `holder` starting now.
pub(crate) fn lease_for(shared: &Shared, holder: &str) -> Lease {
    let lease_ms = u64::try_from(shared.config.upload_lease().as_millis()).unwrap_or(u64::MAX);
    Lease { holder: holder.to_owned(), expires_at_unix_ms: unix_now_ms().saturating_add(lease_ms) }
}

/// Returns when a lease taken now should be renewed: halfway through it.
fn renew_time(shared: &Shared) -> Instant {
    Instant::now() + shared.config.upload_lease() / 2
}

#[async_trait]
impl UploadWriter for S3UploadWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.check_usable()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let result = self.write_chunk(chunk).await;
        self.note(result)
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    async fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        let result = self.sync_all().await;
        self.note(result)
    }

    async fn finish(mut self: Box<Self>, expected: &Digest) -> Result<u64> {
        self.check_usable()?;
        let prepared = self.prepare_finish().await;
        let finishing = self.note(prepared)?;
        // From here on the commit owns the session, including releasing or discarding it.
        self.state = WriterState::Closed;
        drop(self);
        commit::finish(finishing, expected).await
    }
}

impl Drop for S3UploadWriter {
    fn drop(&mut self) {
        // A part still uploading belongs to no record; the next writer uploads its number again.
        self.in_flight.iter().for_each(|part| part.job.abort());
        if matches!(self.state, WriterState::Closed) {
            return;
        }
        // Outside a runtime nothing can be sent; the lease then simply expires.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let shared = Arc::clone(&self.shared);
        let (id, stored) = (self.id.clone(), self.stored.clone());
        let release = runtime.spawn(async move { release_lease(&shared, &id, &stored).await });
        self.shared.register_lease_release(self.id.clone(), release);
    }
}

/// Clears the lease of the record `stored` (as its holder last wrote it), so any node may resume
/// the session at once. Leaves the record alone if its lease names another holder: then it is
/// not ours to release.
pub(crate) async fn release_lease(shared: &Shared, id: &UploadId, stored: &StoredRecord) {
    let Some(holder) = stored.record.lease.as_ref().map(|lease| lease.holder.clone()) else { return };
    let Err(error) = clear_lease(shared, id, stored).await else { return };
    // Our last record write may have landed without our learning it (a cancelled or failed
    // request); if the stored record still names us, release from that version.
    match record::load(shared, id).await {
        Ok(Some(current)) if current.record.lease.as_ref().is_some_and(|lease| lease.holder == holder) => {
            if let Err(error) = clear_lease(shared, id, &current).await {
                tracing::debug!(%error, upload = %id, "upload lease not released; it will expire");
            }
        }
        Ok(_) => tracing::debug!(%error, upload = %id, "upload lease already taken over or session gone"),
        Err(load_error) => {
            tracing::debug!(error = %load_error, upload = %id, "upload lease not released; it will expire")
        }
    }
}

async fn clear_lease(shared: &Shared, id: &UploadId, stored: &StoredRecord) -> Result<()> {
    let mut record = stored.record.clone();
    record.revision += 1;
    record.lease = None;
    record::replace(shared, id, stored, record).await.map(drop)
}
