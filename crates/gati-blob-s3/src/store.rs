//! [`S3BlobStore`]: the [`BlobStore`] implementation, delegating to the module that owns each
//! concern (reads, sessions, commits) and owning only what is too small to split: `stat`,
//! `put_verified`, `delete` and presigning.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use gati_blob::{BlobError, BlobErrorKind, BlobRead, BlobStore, Result, UploadInfo, UploadWriter, digest_of};
use gati_core::{Digest, RepoName, UploadId};

use crate::bucket::{Bucket, PutCondition, S3Result};
use crate::commit::put_verified_blob;
use crate::config::S3Config;
use crate::error::Failure;
use crate::keys::Keys;
use crate::read::read_blob;
use crate::session;
use crate::shared::Shared;

/// Above this size `put_verified` hashes on a blocking thread rather than inline.
const INLINE_HASH_LIMIT: usize = 64 * 1024;

/// A [`BlobStore`] over an S3 bucket, shared by every node of a cluster.
///
/// Cheap to clone; clones share the client and the registry of lease releases.
#[derive(Clone, Debug)]
pub struct S3BlobStore {
    shared: Arc<Shared>,
}

impl S3BlobStore {
    /// Validates `config`, builds the client and checks that the bucket exists and the
    /// credentials may use it.
    ///
    /// Fails with [`BlobErrorKind::Io`] naming the problem: an invalid setting, a bucket that
    /// does not exist, refused credentials, or an endpoint that does not answer.
    pub async fn connect(config: &S3Config) -> Result<Self> {
        config
            .validate()
            .map_err(|message| BlobError::new(BlobErrorKind::Io, format!("invalid S3 configuration: {message}")))?;
        let bucket = Bucket::new(config);
        bucket.head_bucket().await.map_err(|failure| match failure.failure {
            Failure::NoSuchBucket => {
                let note =
                    format!("bucket {:?} does not exist at {}; create it first", bucket.name(), bucket.endpoint());
                failure.into_blob_as(BlobErrorKind::Io, &note)
            }
            _ => failure.into_blob(),
        })?;
        if !honours_conditional_writes(&bucket, &Keys::new(&config.key_prefix)).await.map_err(|f| f.into_blob())? {
            if !config.allow_unconditional_writes {
                return Err(BlobError::new(
                    BlobErrorKind::Io,
                    format!(
                        "the object store at {} ignores conditional writes (If-None-Match: *), so upload \
                         sessions could not be kept to one writer; use a store that honours them (AWS S3, \
                         MinIO, Ceph RGW, s3s-fs) or accept the risk with allow_unconditional_writes = true",
                        bucket.endpoint()
                    ),
                ));
            }
            tracing::warn!(
                endpoint = bucket.endpoint(),
                "the object store ignores conditional writes: concurrent writers of one upload session are not excluded"
            );
        }
        Ok(S3BlobStore { shared: Arc::new(Shared::new(bucket, config.clone())) })
    }

    /// Waits until the leases of every writer this store dropped have been released in S3, so
    /// other nodes can resume those sessions at once; a node calls it before it stops. (Without
    /// it they can still resume them once the leases expire.)
    pub async fn settle_lease_releases(&self) {
        self.shared.settle_lease_releases().await;
    }
}

/// Whether a second create-only write of one key is refused, as upload leases and blob commits
/// rely on. Some S3 implementations accept `If-None-Match` and ignore it.
async fn honours_conditional_writes(bucket: &Bucket, keys: &Keys) -> S3Result<bool> {
    let key = keys.probe();
    let probe = Bytes::from_static(b"gati conditional-write probe");
    bucket.put(&key, probe.clone(), PutCondition::Always).await?;
    match bucket.put(&key, probe, PutCondition::IfAbsent).await {
        Ok(_) => Ok(false),
        Err(failure) if failure.failure == Failure::PreconditionFailed => Ok(true),
        Err(failure) => Err(failure),
    }
}

fn mismatch(actual: &Digest, claimed: &Digest) -> BlobError {
    BlobError::new(BlobErrorKind::DigestMismatch, format!("content has digest {actual}, not {claimed}"))
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        let key = self.shared.keys.blob(digest);
        let head = self.shared.bucket.head(&key).await.map_err(|f| f.into_blob())?;
        Ok(head.map(|(size, _)| size))
    }

    async fn read(&self, digest: &Digest, range: Option<(u64, u64)>) -> Result<BlobRead> {
        read_blob(&self.shared, digest, range).await
    }

    async fn put_verified(&self, digest: &Digest, bytes: Bytes) -> Result<()> {
        let algorithm = digest.algorithm();
        let actual = if bytes.len() <= INLINE_HASH_LIMIT {
            digest_of(algorithm, &bytes)
        } else {
            let hashed = bytes.clone();
            tokio::task::spawn_blocking(move || digest_of(algorithm, &hashed))
                .await
                .map_err(|e| BlobError::with_source(BlobErrorKind::Internal, "hash blob", e))?
        };
        if actual != *digest {
            return Err(mismatch(&actual, digest));
        }
        put_verified_blob(&self.shared, digest, bytes).await
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let key = self.shared.keys.blob(digest);
        self.shared.bucket.delete(&key).await.map_err(|f| f.into_blob())
    }

    async fn begin_upload(&self, id: &UploadId, repo: &RepoName) -> Result<Box<dyn UploadWriter>> {
        Ok(Box::new(session::begin(&self.shared, id, repo).await?))
    }

    async fn resume_upload(&self, id: &UploadId) -> Result<Option<(UploadInfo, Box<dyn UploadWriter>)>> {
        let resumed = session::resume(&self.shared, id).await?;
        Ok(resumed.map(|(info, writer)| (info, Box::new(writer) as Box<dyn UploadWriter>)))
    }

    async fn upload_info(&self, id: &UploadId) -> Result<Option<UploadInfo>> {
        session::info(&self.shared, id).await
    }

    async fn abort_upload(&self, id: &UploadId) -> Result<()> {
        session::abort(&self.shared, id).await
    }

    async fn list_uploads(&self) -> Result<Vec<UploadId>> {
        session::list(&self.shared).await
    }

    /// Presigns a `GetObject` when `redirect_reads` is on, living `expires_in` but never longer
    /// than `redirect_expiry_secs`. Signing is local: no request is made.
    async fn presigned_read_url(&self, digest: &Digest, expires_in: Duration) -> Result<Option<String>> {
        let config = &self.shared.config;
        if !config.redirect_reads {
            return Ok(None);
        }
        let lifetime = expires_in.min(Duration::from_secs(config.redirect_expiry_secs));
        let key = self.shared.keys.blob(digest);
        let url = self.shared.bucket.presign_get(&key, lifetime).await.map_err(|f| f.into_blob())?;
        Ok(Some(url))
    }
}
