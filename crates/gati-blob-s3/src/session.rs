//! Session lifecycle at the store level: begin, resume (possibly on another node), inspect, list
//! and discard upload sessions. The writer itself lives in `upload.rs`.
//!
//! Resuming takes the lease: it is refused (`UploadBusy`) while another holder's lease is live,
//! and taken with a record rewrite conditional on the version just read, so of two nodes resuming
//! at once exactly one wins. The resumer then loads the tail segments back (checking each one's
//! length and `ETag` against the record) and continues the hash from the record's state.

use std::sync::Arc;

use bytes::Bytes;
use gati_blob::{BlobError, BlobErrorKind, Result, UploadInfo};
use gati_core::{RepoName, UploadId};

use crate::record::{self, SessionRecord, new_holder, unix_now_ms};
use crate::shared::Shared;
use crate::upload::{S3UploadWriter, lease_for};

/// Creates session `id` and returns its writer.
pub(crate) async fn begin(shared: &Arc<Shared>, id: &UploadId, repo: &RepoName) -> Result<S3UploadWriter> {
    let holder = new_holder();
    let record = SessionRecord::new(repo.clone(), shared.config.part_size, lease_for(shared, &holder));
    let stored = record::create(shared, id, record).await?;
    S3UploadWriter::new(Arc::clone(shared), id.clone(), holder, stored, Vec::new())
}

/// Takes session `id` over; `None` if it does not exist.
pub(crate) async fn resume(shared: &Arc<Shared>, id: &UploadId) -> Result<Option<(UploadInfo, S3UploadWriter)>> {
    // A writer of this very store dropped just before must have let go first.
    shared.settle_lease_release(id).await;
    let Some(previous) = record::load(shared, id).await? else {
        return Ok(None);
    };
    previous.record.validate(id)?;
    if let Some(holder) = previous.record.live_holder(unix_now_ms()) {
        return Err(BlobError::new(
            BlobErrorKind::UploadBusy,
            format!("upload {id} is owned by writer {holder} until its lease expires"),
        ));
    }
    let holder = new_holder();
    let mut record = previous.record.clone();
    record.revision += 1;
    record.lease = Some(lease_for(shared, &holder));
    let stored = record::replace(shared, id, &previous, record).await?;
    let tail = load_tail(shared, id, &stored.record).await?;
    let info = stored.record.info();
    let writer = S3UploadWriter::new(Arc::clone(shared), id.clone(), holder, stored, tail)?;
    Ok(Some((info, writer)))
}

/// Reads every tail segment of `record`, checking it is exactly the object the record names.
async fn load_tail(shared: &Shared, id: &UploadId, record: &SessionRecord) -> Result<Vec<Bytes>> {
    let mut chunks = Vec::with_capacity(record.tail.len());
    for segment in &record.tail {
        let key = shared.keys.upload_tail(id, &segment.name);
        let corrupt = |what: &str| BlobError::new(BlobErrorKind::Corrupt, format!("tail segment {key} {what}"));
        let (bytes, etag) =
            shared.bucket.get_small(&key).await.map_err(|f| f.into_blob())?.ok_or_else(|| corrupt("is missing"))?;
        if bytes.len() as u64 != segment.len || etag.as_deref() != Some(segment.etag.as_str()) {
            return Err(corrupt("is not the one the record names"));
        }
        chunks.push(bytes);
    }
    Ok(chunks)
}

/// Returns the record of session `id` as the API shows it.
pub(crate) async fn info(shared: &Shared, id: &UploadId) -> Result<Option<UploadInfo>> {
    Ok(record::load(shared, id).await?.map(|stored| stored.record.info()))
}

/// Discards session `id` at a caller's request; `UploadUnknown` if there is none.
pub(crate) async fn abort(shared: &Shared, id: &UploadId) -> Result<()> {
    let Some(stored) = record::load(shared, id).await? else {
        return Err(BlobError::new(BlobErrorKind::UploadUnknown, format!("upload {id}")));
    };
    discard_session(shared, id, stored.record.multipart_upload_id.as_deref()).await
}

/// Lists the sessions with a record.
pub(crate) async fn list(shared: &Shared) -> Result<Vec<UploadId>> {
    let listed = shared.bucket.list(&shared.keys.uploads()).await.map_err(|f| f.into_blob())?;
    Ok(listed.iter().filter_map(|object| shared.keys.parse_upload_record(&object.key)).collect())
}

/// Removes everything of session `id`: its multipart upload, then every object under its prefix
/// (staging object, tail segments, including a stale writer's unreferenced ones), and the record
/// last, so a failure part-way leaves a session that cleanup can still see and retry.
pub(crate) async fn discard_session(shared: &Shared, id: &UploadId, multipart_upload_id: Option<&str>) -> Result<()> {
    let data_key = shared.keys.upload_data(id);
    if let Some(upload_id) = multipart_upload_id {
        shared.bucket.abort_multipart(&data_key, upload_id).await.map_err(|f| f.into_blob())?;
    }
    let record_key = shared.keys.upload_record(id);
    let listed = shared.bucket.list(&shared.keys.upload_dir(id)).await.map_err(|f| f.into_blob())?;
    let deletes =
        listed.iter().filter(|object| object.key != record_key).map(|object| shared.bucket.delete(&object.key));
    for result in futures_util::future::join_all(deletes).await {
        result.map_err(|f| f.into_blob())?;
    }
    shared.bucket.delete(&record_key).await.map_err(|f| f.into_blob())
}
