//! The local-filesystem [`BlobStore`]: blobs as files under one root directory.
//!
//! Owns the on-disk layout (see `layout.rs`) and the crash-safety protocol: content is written to a
//! file outside `blobs/`, verified, fsynced, renamed into its digest path and the directory
//! fsynced, so a digest path only ever names complete, verified bytes. All filesystem calls run on
//! tokio's blocking pool; nothing here blocks an async worker thread.
//!
//! May call `gati-core` types, `std::fs` and tokio's blocking pool; must not know about
//! repositories beyond recording an upload's owner, nor about HTTP or Raft.

mod layout;
mod read;
mod upload;

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use gati_core::{Digest, RepoName, UploadId};

use crate::error::{BlobError, BlobErrorKind, Result};
use crate::hashing::digest_of;
use crate::store::{BlobRead, BlobStore, UploadInfo, UploadWriter, resolve_read_range};
use layout::{Layout, fsync_dir};
use read::FileRangeStream;

/// A [`BlobStore`] keeping blobs and upload sessions in a local directory.
///
/// One process owns a root at a time: opening it clears the staging directory, which would break
/// another process's writes in progress. Cheap to clone; clones share the root.
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    layout: Arc<Layout>,
}

impl FsBlobStore {
    /// Opens (creating if needed) a store rooted at `root` and drops any staging files a crash
    /// left.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let layout = Arc::new(Layout::new(root.into()));
        let prepared = Arc::clone(&layout);
        blocking(move || {
            prepared
                .prepare()
                .map_err(|e| BlobError::io(format!("prepare blob store at {}", prepared.root().display()), e))
        })
        .await?;
        Ok(FsBlobStore { layout })
    }

    /// Returns the root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Returns the path a committed blob lives at (whether or not it exists); for tests and tools.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.layout.blob_path(digest)
    }
}

/// Runs blocking filesystem work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlobError::with_source(BlobErrorKind::Internal, "blob store job failed", e))?
}

/// Moves `source`, an fsynced file on the store's filesystem whose bytes hash to `digest`, into the
/// digest path and makes the rename durable. If the blob already exists, `source` is removed and
/// the stored copy kept: both hash to the same digest, so they are the same bytes.
pub(crate) fn commit_verified_file(layout: &Layout, source: &Path, digest: &Digest) -> Result<()> {
    if blob_is_durably_present(layout, digest)? {
        return fs::remove_file(source).map_err(|e| BlobError::io("drop duplicate blob", e));
    }
    let shard = layout.ensure_shard_dir(digest).map_err(|e| BlobError::io("create blob shard", e))?;
    // A concurrent commit of the same digest may win between the check and here; rename replaces
    // atomically and the content is identical, so readers see one complete file or the other.
    fs::rename(source, layout.blob_path(digest)).map_err(|e| BlobError::io("commit blob", e))?;
    fsync_dir(&shard).map_err(|e| BlobError::io("sync blob shard", e))
}

/// Returns whether the blob exists, making sure its directory entry is durable first: a concurrent
/// commit may have renamed it into place without having fsynced the shard yet, and our caller is
/// about to report the blob as stored ("bytes before pointers").
pub(crate) fn blob_is_durably_present(layout: &Layout, digest: &Digest) -> Result<bool> {
    let present = layout.blob_path(digest).try_exists().map_err(|e| BlobError::io("check blob", e))?;
    if present {
        fsync_dir(&layout.shard_dir(digest)).map_err(|e| BlobError::io("sync blob shard", e))?;
    }
    Ok(present)
}

fn not_found(digest: &Digest) -> BlobError {
    BlobError::new(BlobErrorKind::NotFound, format!("blob {digest}"))
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.layout.blob_path(digest);
        blocking(move || match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::io("stat blob", e)),
        })
        .await
    }

    async fn read(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobRead> {
        let path = self.layout.blob_path(digest);
        let missing = not_found(digest);
        blocking(move || {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing),
                Err(e) => return Err(BlobError::io("open blob", e)),
            };
            let size_total = file.metadata().map_err(|e| BlobError::io("stat blob", e))?.len();
            let resolved = resolve_read_range(size_total, range)?;
            let (start, len) = match resolved {
                Some((start, end)) => (start, end - start + 1),
                None => (0, size_total),
            };
            if start > 0 {
                file.seek(SeekFrom::Start(start)).map_err(|e| BlobError::io("seek blob", e))?;
            }
            let stream = Box::pin(FileRangeStream::new(file, len));
            Ok(BlobRead { size_total, range: resolved, stream })
        })
        .await
    }

    async fn put_verified(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let layout = Arc::clone(&self.layout);
        let digest = digest.clone();
        blocking(move || {
            let actual = digest_of(digest.algorithm(), &bytes);
            if actual != digest {
                return Err(BlobError::new(
                    BlobErrorKind::DigestMismatch,
                    format!("content has digest {actual}, not {digest}"),
                ));
            }
            if blob_is_durably_present(&layout, &digest)? {
                return Ok(());
            }
            let staging = layout.fresh_tmp_path("put");
            let written = File::create_new(&staging).and_then(|mut file| {
                file.write_all(&bytes)?;
                file.sync_data()
            });
            let committed = written
                .map_err(|e| BlobError::io("write blob", e))
                .and_then(|()| commit_verified_file(&layout, &staging, &digest));
            if committed.is_err() {
                let _ = fs::remove_file(&staging);
            }
            committed
        })
        .await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.layout.blob_path(digest);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::io("delete blob", e)),
        })
        .await
    }

    async fn begin_upload(&self, id: &UploadId, repo: &RepoName) -> Result<Box<dyn UploadWriter>> {
        let layout = Arc::clone(&self.layout);
        let (id, repo) = (id.clone(), repo.clone());
        let writer = blocking(move || upload::begin_session(layout, &id, &repo)).await?;
        Ok(Box::new(writer))
    }

    async fn resume_upload(&self, id: &UploadId) -> Result<Option<(UploadInfo, Box<dyn UploadWriter>)>> {
        let resumed = upload::resume_session(Arc::clone(&self.layout), id).await?;
        Ok(resumed.map(|(info, writer)| (info, Box::new(writer) as Box<dyn UploadWriter>)))
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<UploadInfo>> {
        let layout = Arc::clone(&self.layout);
        let id = id.clone();
        blocking(move || upload::read_session_info(&layout, &id)).await
    }

    async fn abort_upload(&self, id: &UploadId) -> Result<()> {
        let layout = Arc::clone(&self.layout);
        let id = id.clone();
        blocking(move || upload::discard_session(&layout, &id)).await
    }

    async fn list_uploads(&self) -> Result<Vec<UploadId>> {
        let dir = self.layout.uploads_dir();
        blocking(move || {
            let entries = fs::read_dir(&dir).map_err(|e| BlobError::io("list uploads", e))?;
            let mut ids = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| BlobError::io("list uploads", e))?;
                // Anything that is not an id this crate created is ignored rather than reported.
                if let Some(id) = entry.file_name().to_str().and_then(|name| name.parse().ok()) {
                    ids.push(id);
                }
            }
            Ok(ids)
        })
        .await
    }
}
