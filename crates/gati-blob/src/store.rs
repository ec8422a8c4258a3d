//! The storage contract: [`BlobStore`] for content-addressed blobs and [`UploadWriter`] for one
//! upload session in progress. Every backend (local fs today, S3 next) implements these and must
//! pass [`crate::test_suite`](fn@crate::test_suite).
//!
//! Owns the contract only; no backend code lives here. Callers are the actors layer (upload
//! sessions, blob reads, GC); nothing here knows about HTTP, Raft or repositories beyond recording
//! which repository began an upload.
//!
//! Invariant every backend keeps: a blob is served under a digest only if its bytes hash to that
//! digest. Partial uploads live apart from committed blobs and become visible in one atomic step.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use gati_core::{Digest, RepoName, UploadId};

use crate::error::{BlobError, BlobErrorKind, Result};

/// A stream of blob bytes. Chunks are large (about 1 MiB) when the backend can choose, and the
/// stream holds a bounded amount of memory however large the blob is.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// The answer to [`BlobStore::read`].
pub struct BlobRead {
    /// Size of the whole blob, whatever range was asked for (the `/size` of a `Content-Range`).
    pub size_total: u64,
    /// The inclusive byte range the stream yields, after the requested end was clamped to the last
    /// byte; `None` when the whole blob was asked for.
    pub range: Option<(u64, u64)>,
    /// The requested bytes, in order.
    pub stream: ByteStream,
}

impl fmt::Debug for BlobRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobRead")
            .field("size_total", &self.size_total)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// What a store knows about an upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    /// The repository the upload was begun in; the blob is linked there when it is finished.
    pub repo: RepoName,
    /// When the session was begun, in seconds since the Unix epoch; cleanup expires old sessions.
    pub started_at_unix_secs: u64,
    /// How many bytes the store holds for the session. Bytes written but not yet covered by
    /// [`UploadWriter::sync`] may or may not be counted; while a writer is live, its
    /// [`UploadWriter::offset`] is the authoritative figure.
    pub offset: u64,
}

/// Content-addressed blob storage.
///
/// Blobs are immutable and keyed by their digest; the store verifies every digest it is handed, so
/// a digest read back always names exactly the bytes returned. Methods are safe to call
/// concurrently, including several uploads of the same content (the first to finish stores it,
/// the others deduplicate).
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Returns the size of the blob stored under `digest`, or `None` if there is none.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;

    /// Opens the blob for reading, optionally only the inclusive byte range `(start, end)`.
    ///
    /// An `end` past the last byte is clamped to it (RFC 9110 §14.1.2). Fails with
    /// [`BlobErrorKind::NotFound`] when the blob does not exist and with
    /// [`BlobErrorKind::RangeNotSatisfiable`] when `start` is not below the size or `start > end`.
    async fn read(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobRead>;

    /// Stores a small object held in memory (a manifest, a config) under `digest`.
    ///
    /// Hashes `bytes` first and fails with [`BlobErrorKind::DigestMismatch`] without storing
    /// anything if they do not match. Durable when it returns. Idempotent: storing content that is
    /// already present succeeds.
    async fn put_verified(&self, digest: &Digest, bytes: Bytes) -> Result<()>;

    /// Deletes the blob stored under `digest`. Succeeds when there is none, so GC may retry.
    ///
    /// Callers own the safety argument (a committed tombstone and a grace period): the store does
    /// not know which repositories or manifests still refer to the blob.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Begins an upload session for `repo` under a fresh `id` chosen by the caller.
    ///
    /// The session is durable when this returns. Fails with [`BlobErrorKind::UploadExists`] if a
    /// session with this id exists.
    async fn begin_upload(&self, id: &UploadId, repo: &RepoName) -> Result<Box<dyn UploadWriter>>;

    /// Reopens an existing session after its writer was dropped (typically a server restart),
    /// returning its record and a writer positioned at [`UploadInfo::offset`].
    ///
    /// Returns `None` if no such session exists. Fails with [`BlobErrorKind::UploadBusy`] when
    /// another writer still owns the session.
    async fn resume_upload(&self, id: &UploadId) -> Result<Option<(UploadInfo, Box<dyn UploadWriter>)>>;

    /// Returns the record of a session, or `None` if no such session exists.
    async fn upload_info(&self, id: &UploadId) -> Result<Option<UploadInfo>>;

    /// Discards a session and its bytes. Fails with [`BlobErrorKind::UploadUnknown`] when there is
    /// no such session. A live writer of the session must not be used afterwards.
    async fn abort_upload(&self, id: &UploadId) -> Result<()>;

    /// Lists the ids of every session the store holds, finished ones excepted, in no order.
    async fn list_uploads(&self) -> Result<Vec<UploadId>>;

    /// Returns a URL from which any HTTP client can GET the blob's bytes for about `expires_in`,
    /// so a pull can be answered with a redirect instead of streaming through the registry.
    ///
    /// `None` (the default) when the backend has no such URLs or they are turned off; callers
    /// then stream with [`read`](BlobStore::read). Does not check that the blob exists: callers
    /// resolve the digest first. A backend may shorten the lifetime to its configured maximum.
    async fn presigned_read_url(&self, digest: &Digest, expires_in: Duration) -> Result<Option<String>> {
        let _ = (digest, expires_in);
        Ok(None)
    }
}

/// The writing end of one upload session.
///
/// Owned by exactly one session actor and never shared; dropping it without
/// [`finish`](UploadWriter::finish) leaves the session in the store, resumable with
/// [`BlobStore::resume_upload`], holding at least every byte covered by a successful
/// [`sync`](UploadWriter::sync).
#[async_trait]
pub trait UploadWriter: Send {
    /// Appends `chunk` to the session and feeds it to the running digest.
    ///
    /// May buffer: the bytes are durable only after [`sync`](UploadWriter::sync) or
    /// [`finish`](UploadWriter::finish). An error poisons the writer; every later call fails and
    /// the session must be resumed or aborted.
    async fn write(&mut self, chunk: Bytes) -> Result<()>;

    /// Returns how many bytes the session holds, counting every chunk accepted by `write`.
    fn offset(&self) -> u64;

    /// Makes every byte written so far durable, so an acknowledged chunk survives a crash.
    async fn sync(&mut self) -> Result<()>;

    /// Verifies the content against `expected`, then commits it as the blob `expected` and removes
    /// the session. Returns the blob size.
    ///
    /// On [`BlobErrorKind::DigestMismatch`] nothing is stored and the session is discarded. If the
    /// blob already exists, the upload is dropped and the existing blob kept (deduplication).
    async fn finish(self: Box<Self>, expected: &Digest) -> Result<u64>;
}

/// Resolves a requested inclusive range against a blob of `size_total` bytes, the way every
/// backend must: `None` stays `None`, `end` is clamped to the last byte, and a range that starts at
/// or past the end (or after its own end) is [`BlobErrorKind::RangeNotSatisfiable`].
pub fn resolve_read_range(size_total: u64, range: Option<(u64, u64)>) -> Result<Option<(u64, u64)>> {
    match range {
        None => Ok(None),
        Some((start, end)) if start <= end && start < size_total => Ok(Some((start, end.min(size_total - 1)))),
        Some((start, end)) => Err(BlobError::new(
            BlobErrorKind::RangeNotSatisfiable,
            format!("range {start}-{end} of a {size_total}-byte blob"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_ranges_like_http() {
        assert_eq!(resolve_read_range(10, None).unwrap(), None);
        assert_eq!(resolve_read_range(0, None).unwrap(), None);
        assert_eq!(resolve_read_range(10, Some((0, 0))).unwrap(), Some((0, 0)));
        assert_eq!(resolve_read_range(10, Some((9, 9))).unwrap(), Some((9, 9)));
        assert_eq!(resolve_read_range(10, Some((3, 100))).unwrap(), Some((3, 9)));
        assert_eq!(resolve_read_range(10, Some((0, u64::MAX))).unwrap(), Some((0, 9)));
        for bad in [(10, 10), (11, 20), (5, 4), (u64::MAX, u64::MAX)] {
            let err = resolve_read_range(10, Some(bad)).unwrap_err();
            assert_eq!(err.kind(), BlobErrorKind::RangeNotSatisfiable, "{bad:?}");
        }
        let err = resolve_read_range(0, Some((0, 0))).unwrap_err();
        assert_eq!(err.kind(), BlobErrorKind::RangeNotSatisfiable);
    }
}
