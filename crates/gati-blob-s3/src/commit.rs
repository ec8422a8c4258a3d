//! Finishing an upload: verify the content, make it visible under its digest in one atomic step,
//! then remove the session.
//!
//! * Everything still in one part's worth of memory (no part uploaded: small blobs, empty blobs)
//!   is verified in memory and stored with one `PutObject` (`If-None-Match: *`), which S3 makes
//!   visible atomically.
//! * Otherwise the remaining bytes become the last part, the multipart upload is completed from
//!   exactly the parts this writer recorded (number and `ETag`) to `uploads/<id>/data`, the
//!   completed object's `ETag` is checked against the one those part `ETags` imply (`parts.rs`), and
//!   the object is copied server-side to the blob key: `CopyObject` up to `copy_part_size`,
//!   `UploadPartCopy` parts above it, each conditional on the staged object's `ETag` so exactly the
//!   verified object is copied. The blob key appears only when the copy completes.
//!
//! SHA-256 (what clients use) is verified before anything is completed, from the running hash.
//! SHA-512 is verified by reading the completed staging object back, before the copy.
//!
//! If the blob already exists the upload is dropped (deduplication); a mismatched digest or a
//! staged object that is not what the recorded parts imply discards the session and stores
//! nothing. Any other failure leaves the session, its lease released, for a retry or cleanup.

use std::sync::Arc;

use futures_util::StreamExt;
use gati_blob::{BlobError, BlobErrorKind, ContentHasher, Result};
use gati_core::{Digest, DigestAlgorithm, UploadId};

use crate::bucket::PutCondition;
use crate::error::Failure;
use crate::hash_lane::HashLane;
use crate::part_buffer::{PartBuffer, concat};
use crate::parts::{copy_ranges, expected_multipart_etag, is_multipart_etag, unquote};
use crate::read::sdk_body_stream;
use crate::record::{PartRecord, StoredRecord};
use crate::session::discard_session;
use crate::shared::Shared;
use crate::upload::release_lease;

/// Everything a writer hands over to be committed.
pub(crate) struct Finishing {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: UploadId,
    /// The record as the writer last stored it, holding its lease.
    pub(crate) stored: StoredRecord,
    /// Every uploaded part, in order, with the `ETags` the service returned for them.
    pub(crate) parts: Vec<PartRecord>,
    /// The bytes after the last part.
    pub(crate) rest: PartBuffer,
    /// SHA-256 of all `size` bytes.
    pub(crate) sha256: ContentHasher,
    pub(crate) size: u64,
}

/// How a commit attempt ended, when it did not store the blob.
enum Refusal {
    /// The content is wrong for the digest, or not what the recorded parts say: the session is
    /// of no further use and is discarded.
    Discard(BlobError),
    /// Something failed on the way; the session stays (lease released) for a retry or cleanup.
    Keep(BlobError),
}

impl From<BlobError> for Refusal {
    fn from(error: BlobError) -> Self {
        Refusal::Keep(error)
    }
}

/// Verifies and commits the upload as the blob `expected`; returns its size.
pub(crate) async fn finish(finishing: Finishing, expected: &Digest) -> Result<u64> {
    let Finishing { shared, id, stored, .. } = &finishing;
    let mut multipart_upload_done = false;
    let outcome = commit(&finishing, expected, &mut multipart_upload_done).await;
    // A completed multipart upload is gone; aborting it again would fail on some services.
    let to_abort = stored.record.multipart_upload_id.as_deref().filter(|_| !multipart_upload_done);
    match outcome {
        Ok(()) => {
            if let Err(error) = discard_session(shared, id, to_abort).await {
                // The blob is committed; the leftover session is garbage for upload cleanup.
                tracing::warn!(%error, upload = %id, "removing a finished upload session failed");
            }
            Ok(finishing.size)
        }
        Err(Refusal::Discard(refusal)) => {
            if let Err(error) = discard_session(shared, id, to_abort).await {
                tracing::warn!(%error, upload = %id, "discarding a refused upload session failed");
            }
            Err(refusal)
        }
        Err(Refusal::Keep(failure)) => {
            release_lease(shared, id, stored).await;
            Err(failure)
        }
    }
}

/// Commits the upload; sets `multipart_upload_done` once the session's multipart upload has been
/// completed, after which it no longer exists to be aborted.
async fn commit(finishing: &Finishing, expected: &Digest, multipart_upload_done: &mut bool) -> Result<(), Refusal> {
    if expected.algorithm() == DigestAlgorithm::Sha256 {
        check_digest(&finishing.id, finishing.sha256.current(), expected)?;
    }
    if finishing.parts.is_empty() {
        return commit_in_one_put(finishing, expected).await;
    }
    let shared = &finishing.shared;
    let blob_key = shared.keys.blob(expected);
    // The SHA-256 matched, so an existing blob holds these very bytes: skip completion and copy.
    if expected.algorithm() == DigestAlgorithm::Sha256
        && shared.bucket.head(&blob_key).await.map_err(|f| f.into_blob())?.is_some()
    {
        return Ok(());
    }
    let staged_etag = complete_staging_object(finishing, multipart_upload_done).await?;
    let data_key = shared.keys.upload_data(&finishing.id);
    if expected.algorithm() != DigestAlgorithm::Sha256 {
        let actual = hash_object(shared, &data_key, &staged_etag, expected.algorithm()).await?;
        check_digest(&finishing.id, actual, expected)?;
    }
    copy_to_blob(shared, &data_key, &staged_etag, finishing.size, &blob_key).await?;
    Ok(())
}

fn check_digest(id: &UploadId, actual: Digest, expected: &Digest) -> Result<(), Refusal> {
    if actual == *expected {
        return Ok(());
    }
    Err(Refusal::Discard(BlobError::new(
        BlobErrorKind::DigestMismatch,
        format!("upload {id} has digest {actual}, not {expected}"),
    )))
}

/// Stores an upload that never filled a part with one conditional `PutObject`.
async fn commit_in_one_put(finishing: &Finishing, expected: &Digest) -> Result<(), Refusal> {
    let chunks: Vec<_> = finishing.rest.chunks().cloned().collect();
    let algorithm = expected.algorithm();
    let (body, actual) = tokio::task::spawn_blocking(move || {
        let body = concat(chunks);
        // SHA-256 was checked from the running hash; other algorithms hash the bytes here.
        let actual = (algorithm != DigestAlgorithm::Sha256).then(|| gati_blob::digest_of(algorithm, &body));
        (body, actual)
    })
    .await
    .map_err(|e| BlobError::with_source(BlobErrorKind::Internal, "assemble small blob", e))?;
    if let Some(actual) = actual {
        check_digest(&finishing.id, actual, expected)?;
    }
    debug_assert_eq!(body.len() as u64, finishing.size, "a partless upload is all in memory");
    put_verified_blob(&finishing.shared, expected, body).await.map_err(Refusal::from)
}

/// Above this size a blob is looked for before it is sent: a `HEAD` costs less than sending a
/// mebibyte that the service would only refuse.
const LOOK_FIRST_LIMIT: usize = 1 << 20;

/// Stores `body`, already verified to hash to `digest`, under the blob key in one conditional
/// `PutObject`; succeeds when the blob already exists.
///
/// Blob keys are content-addressed and only ever written with verified bytes, so an existing
/// object under the key holds exactly these bytes. That also settles a write whose connection
/// broke: some services answer `412` to `If-None-Match: *` as soon as they read the headers and
/// close the connection while the body is still being sent, so a writer racing another writer of
/// the same content sees a broken pipe on every attempt instead of the `412`. Looking at the key
/// afterwards tells the two cases apart: present means stored (by either writer), absent means
/// the write really failed.
pub(crate) async fn put_verified_blob(shared: &Shared, digest: &Digest, body: bytes::Bytes) -> Result<()> {
    let key = shared.keys.blob(digest);
    let size = body.len() as u64;
    if body.len() > LOOK_FIRST_LIMIT && is_stored(shared, &key, size).await? {
        return Ok(());
    }
    match shared.bucket.put(&key, body, PutCondition::IfAbsent).await {
        Ok(_) => Ok(()),
        Err(failure) if failure.failure == Failure::PreconditionFailed => Ok(()),
        Err(failure)
            if matches!(failure.failure, Failure::Other | Failure::Timeout)
                && is_stored(shared, &key, size).await? =>
        {
            tracing::debug!(key, error = ?failure, "blob write broke off but the blob is stored");
            Ok(())
        }
        Err(failure) => Err(failure.into_blob()),
    }
}

/// Whether the blob at `key` exists; one of another size is corruption, not a duplicate.
async fn is_stored(shared: &Shared, key: &str, size: u64) -> Result<bool> {
    match shared.bucket.head(key).await.map_err(|f| f.into_blob())? {
        None => Ok(false),
        Some((stored, _)) if stored == size => Ok(true),
        Some((stored, _)) => Err(BlobError::new(
            BlobErrorKind::Internal,
            format!("blob {key} holds {stored} bytes where its content has {size}"),
        )),
    }
}

/// Uploads the rest as the last part and completes the multipart upload from the recorded parts;
/// returns the staged object's `ETag`.
async fn complete_staging_object(finishing: &Finishing, done: &mut bool) -> Result<String, Refusal> {
    let shared = &finishing.shared;
    let id = &finishing.id;
    let data_key = shared.keys.upload_data(id);
    let upload_id = finishing.stored.record.multipart_upload_id.as_deref().ok_or_else(|| {
        BlobError::new(BlobErrorKind::Internal, format!("upload {id} has parts but no multipart upload"))
    })?;
    let mut parts: Vec<(i32, String)> = finishing.parts.iter().map(|p| (p.number, p.etag.clone())).collect();
    if !finishing.rest.is_empty() {
        let number = parts.len() as i32 + 1;
        let chunks: Vec<_> = finishing.rest.chunks().cloned().collect();
        let body = tokio::task::spawn_blocking(move || concat(chunks))
            .await
            .map_err(|e| BlobError::with_source(BlobErrorKind::Internal, "assemble last part", e))?;
        let etag = shared.bucket.upload_part(&data_key, upload_id, number, body).await.map_err(|f| f.into_blob())?;
        parts.push((number, etag));
    }
    let implied = expected_multipart_etag(parts.iter().map(|(_, etag)| etag.as_str()));
    let completed = shared.bucket.complete_multipart(&data_key, upload_id, parts).await;
    *done = completed.is_ok();
    let staged = completed.map_err(|failure| {
        // Gone means another writer of the session completed or aborted it first.
        let kind = if failure.failure == Failure::NoSuchUpload { BlobErrorKind::UploadBusy } else { BlobErrorKind::Io };
        Refusal::Keep(failure.into_blob_as(kind, "the session's multipart upload could not be completed"))
    })?;
    if let Some(implied) = implied
        && is_multipart_etag(&staged)
        && unquote(&staged) != implied
    {
        // A part was replaced after this writer recorded it: a stale writer of the session.
        return Err(Refusal::Discard(BlobError::new(
            BlobErrorKind::Corrupt,
            format!(
                "upload {id}: completed object {staged} is not the recorded parts' {implied}; a part was overwritten"
            ),
        )));
    }
    Ok(staged)
}

/// Streams the staged object through a `algorithm` hasher on blocking threads.
async fn hash_object(shared: &Shared, key: &str, etag: &str, algorithm: DigestAlgorithm) -> Result<Digest, Refusal> {
    let read = shared.bucket.get(key, None).await.map_err(|f| f.into_blob())?;
    if read.etag.as_deref().map(unquote) != Some(unquote(etag)) {
        return Err(Refusal::Discard(BlobError::new(
            BlobErrorKind::Corrupt,
            format!("{key} changed after completion"),
        )));
    }
    let mut lane = HashLane::new(ContentHasher::new(algorithm));
    let mut body = sdk_body_stream(read.body, read.size_total, key.to_owned());
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| BlobError::io(format!("read back {key}"), e))?;
        lane.update(chunk).await?;
    }
    Ok(lane.settle().await?.current())
}

/// Copies the verified staged object to the blob key, unless the blob already exists.
async fn copy_to_blob(shared: &Shared, data_key: &str, etag: &str, size: u64, blob_key: &str) -> Result<(), Refusal> {
    let bucket = &shared.bucket;
    if size > shared.config.copy_part_size {
        // No conditional write exists for a multipart completion's target on every service, so
        // look first; a concurrent identical upload at worst copies the same bytes twice.
        if bucket.head(blob_key).await.map_err(|f| f.into_blob())?.is_some() {
            return Ok(());
        }
        return copy_in_parts(shared, data_key, etag, size, blob_key).await.map_err(Refusal::Keep);
    }
    match bucket.copy_if_absent(data_key, etag, blob_key).await {
        Ok(()) => Ok(()),
        // Either the blob exists (deduplication), or the staged object changed (refuse).
        Err(failure) if failure.failure == Failure::PreconditionFailed => {
            match bucket.head(blob_key).await.map_err(|f| f.into_blob())? {
                Some(_) => Ok(()),
                None => {
                    Err(Refusal::Discard(failure.into_blob_as(BlobErrorKind::Corrupt, "the staged object changed")))
                }
            }
        }
        Err(failure) => Err(failure.into_blob().into()),
    }
}

/// Copies an object larger than one `CopyObject` may copy, with `UploadPartCopy`.
async fn copy_in_parts(shared: &Shared, data_key: &str, etag: &str, size: u64, blob_key: &str) -> Result<()> {
    let bucket = &shared.bucket;
    let upload_id = bucket.create_multipart(blob_key).await.map_err(|f| f.into_blob())?;
    let copied = async {
        let mut parts = Vec::new();
        for (index, range) in copy_ranges(size, shared.config.copy_part_size).into_iter().enumerate() {
            let number = index as i32 + 1;
            let part_etag = bucket.upload_part_copy(blob_key, &upload_id, number, data_key, etag, range).await?;
            parts.push((number, part_etag));
        }
        bucket.complete_multipart(blob_key, &upload_id, parts).await
    }
    .await;
    match copied {
        Ok(_) => Ok(()),
        Err(failure) => {
            if let Err(abort) = bucket.abort_multipart(blob_key, &upload_id).await {
                tracing::warn!(error = %abort.into_blob(), key = %blob_key, "aborting a failed blob copy failed");
            }
            Err(failure.into_blob())
        }
    }
}
