//! [`HashLane`]: a running hash fed on tokio's blocking pool, one batch at a time.
//!
//! Hashing a part's worth of bytes takes milliseconds, far past what an async worker may spend
//! without yielding, so each batch is hashed by a `spawn_blocking` job while the writer goes on
//! accepting bytes and uploading parts. Batches are hashed strictly in order: a new batch first
//! waits for the previous job and takes the hasher back.

use bytes::Bytes;
use gati_blob::{BlobError, BlobErrorKind, ContentHasher, Result};
use tokio::task::JoinHandle;

/// Bytes collected before a batch is handed to a hashing job: big enough to amortise the job,
/// small enough to keep memory flat.
pub(crate) const HASH_BATCH: usize = 1024 * 1024;

/// A hasher that is either idle or owned by the job hashing the latest batch.
pub(crate) struct HashLane {
    idle: Option<ContentHasher>,
    busy: Option<JoinHandle<ContentHasher>>,
    pending: Vec<Bytes>,
    pending_len: usize,
}

impl HashLane {
    pub(crate) fn new(hasher: ContentHasher) -> Self {
        HashLane { idle: Some(hasher), busy: None, pending: Vec::new(), pending_len: 0 }
    }

    /// Queues `chunk`; starts a hashing job once a batch is full.
    pub(crate) async fn update(&mut self, chunk: Bytes) -> Result<()> {
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= HASH_BATCH { self.dispatch().await } else { Ok(()) }
    }

    /// Hashes everything queued and returns the hasher, which then covers every byte given.
    pub(crate) async fn settle(&mut self) -> Result<&ContentHasher> {
        self.dispatch().await?;
        let hasher = self.reclaim().await?;
        Ok(self.idle.insert(hasher))
    }

    /// Hands the queued batch to a job, after the previous job is done.
    async fn dispatch(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut hasher = self.reclaim().await?;
        let batch = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        self.busy = Some(tokio::task::spawn_blocking(move || {
            batch.iter().for_each(|chunk| hasher.update(chunk));
            hasher
        }));
        Ok(())
    }

    async fn reclaim(&mut self) -> Result<ContentHasher> {
        if let Some(job) = self.busy.take() {
            let hasher =
                job.await.map_err(|e| BlobError::with_source(BlobErrorKind::Internal, "hashing job failed", e))?;
            return Ok(hasher);
        }
        self.idle.take().ok_or_else(|| BlobError::new(BlobErrorKind::Internal, "hasher lost by an earlier failure"))
    }
}

#[cfg(test)]
mod tests {
    use gati_blob::digest_of;
    use gati_core::DigestAlgorithm;

    use super::*;

    #[tokio::test]
    async fn hashes_every_byte_in_order() {
        let data: Vec<u8> = (0..3 * HASH_BATCH + 17).map(|i| (i % 251) as u8).collect();
        let mut lane = HashLane::new(ContentHasher::new(DigestAlgorithm::Sha256));
        for chunk in data.chunks(100_000) {
            lane.update(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        let digest = lane.settle().await.unwrap().current();
        assert_eq!(digest, digest_of(DigestAlgorithm::Sha256, &data));
        lane.update(Bytes::from_static(b"more")).await.unwrap();
        let mut all = data.clone();
        all.extend_from_slice(b"more");
        assert_eq!(lane.settle().await.unwrap().current(), digest_of(DigestAlgorithm::Sha256, &all));
    }
}
