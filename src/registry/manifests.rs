//! Manifest operations of the facade: push, pull, delete, referrers.

use bytes::Bytes;
use futures_util::StreamExt;
use gati_blob::digest_of;
use gati_core::command::Rejection;
use gati_core::manifest::{MAX_MANIFEST_BYTES, parse_manifest};
use gati_core::{Applied, Command, Digest, DigestAlgorithm, ManifestRecord, Reference, RepoName, TagCondition};

use super::error::{RegistryError, Result};
use super::{Page, ReadConsistency, Registry};

/// A manifest as served: its identity, media type and exact bytes.
#[derive(Clone, Debug)]
pub struct ManifestContent {
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The media type to serve it with.
    pub media_type: String,
    /// The bytes exactly as pushed.
    pub bytes: Bytes,
}

/// A manifest push.
#[derive(Debug)]
pub struct PutManifestRequest {
    /// The repository.
    pub repo: RepoName,
    /// The tag or digest it is pushed by.
    pub reference: Reference,
    /// The request's media type, without parameters.
    pub content_type: Option<String>,
    /// The manifest bytes.
    pub body: Bytes,
    /// The conditional-update precondition on the tag, if any.
    pub condition: Option<TagCondition>,
}

/// The outcome of a successful manifest push.
#[derive(Clone, Debug)]
pub struct PushedManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's `subject`, which the client is told about (`OCI-Subject`).
    pub subject: Option<Digest>,
}

impl Registry {
    /// Resolves a reference to a manifest record. Tags are read linearizably: after a successful
    /// tag update anywhere, no read returns the older target. A digest is served from the local
    /// replica; only a miss costs a read-index round, so that a manifest pushed through another
    /// node a moment ago is found here too.
    async fn resolve(
        &self,
        repo: &RepoName,
        reference: &Reference,
        consistency: ReadConsistency,
    ) -> Result<ManifestRecord> {
        let shard = self.inner.cluster.shard_of_repo(repo);
        let state = self.inner.cluster.state(shard);
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(tag) => {
                if consistency == ReadConsistency::Linearizable {
                    self.inner.cluster.linearizable(shard).await?;
                }
                state.tag(repo, tag)?.ok_or(RegistryError::ManifestUnknown)?
            }
        };
        if let Some(record) = state.manifest(repo, &digest)? {
            return Ok(record);
        }
        if matches!(reference, Reference::Digest(_)) && consistency == ReadConsistency::Linearizable {
            self.inner.cluster.linearizable(shard).await?;
        }
        state.manifest(repo, &digest)?.ok_or(RegistryError::ManifestUnknown)
    }

    /// Returns a manifest by tag or digest.
    pub async fn get_manifest(
        &self,
        repo: &RepoName,
        reference: &Reference,
        consistency: ReadConsistency,
    ) -> Result<ManifestContent> {
        let record = self.resolve(repo, reference, consistency).await?;
        let bytes = match self.inner.manifest_cache.get(&record.digest) {
            Some(bytes) => bytes,
            None => {
                let bytes = self.read_small_blob(&record.digest, record.size).await?;
                self.inner.manifest_cache.insert(record.digest.clone(), bytes.clone());
                bytes
            }
        };
        Ok(ManifestContent { digest: record.digest, media_type: record.media_type.to_string(), bytes })
    }

    /// Reads a small blob (a manifest or an artifact document) whole; `size` sizes the buffer.
    pub(super) async fn read_small_blob(&self, digest: &Digest, size: u64) -> Result<Bytes> {
        let mut read = self.inner.blobs.read(digest, None).await?;
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(MAX_MANIFEST_BYTES));
        while let Some(chunk) = read.stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::internal(&e, "reading manifest bytes"))?;
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    }

    /// Validates and stores a manifest, and points its tag at it when pushed by tag.
    ///
    /// The bytes are durable in the blob store before the command that refers to them is proposed
    /// ("bytes before pointers"), and the reply comes only after that command is applied.
    pub async fn put_manifest(&self, request: PutManifestRequest) -> Result<PushedManifest> {
        let PutManifestRequest { repo, reference, content_type, body, condition } = request;
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::ManifestTooLarge { limit: MAX_MANIFEST_BYTES });
        }
        let parsed = parse_manifest(content_type.as_deref(), &body)?;
        let (digest, tag) = match reference {
            Reference::Digest(claimed) => {
                let actual = digest_of(claimed.algorithm(), &body);
                if actual != claimed {
                    return Err(RegistryError::DigestInvalid(format!(
                        "manifest content has digest {actual}, not {claimed}"
                    )));
                }
                (claimed, None)
            }
            Reference::Tag(tag) => (digest_of(DigestAlgorithm::Sha256, &body), Some(tag)),
        };
        let subject = parsed.subject.as_ref().map(|s| s.digest.clone());
        let record = parsed.into_record(digest.clone(), body.len() as u64)?;
        // Re-tagging a manifest the repository already holds (promoting a build, moving
        // `latest`) needs no store write: its bytes were stored before its record was committed,
        // and garbage collection keeps bytes for a grace period after their last record goes.
        let known = self.inner.cluster.state_of(&repo).manifest(&repo, &digest)?.is_some();
        if !known {
            self.inner.blobs.put_verified(&digest, body.clone()).await?;
        }
        let command = Command::PutManifest { repo, record: Box::new(record), tag, condition };
        match self.inner.namespaces.propose(command).await? {
            Applied::ManifestPut { .. } => {
                self.inner.manifest_cache.insert(digest.clone(), body);
                Ok(PushedManifest { digest, subject })
            }
            Applied::Rejected(Rejection::BlobUnknown { digest })
            | Applied::Rejected(Rejection::ManifestUnknown { digest }) => {
                Err(RegistryError::ManifestBlobUnknown(digest))
            }
            Applied::Rejected(Rejection::TagConditionFailed { current }) => {
                Err(RegistryError::PreconditionFailed { current })
            }
            Applied::Rejected(Rejection::Artifact(_)) => Err(owned_by_version()),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a manifest (by digest, with every tag pointing at it) or one tag (by tag).
    pub async fn delete_manifest(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let command = match reference {
            Reference::Digest(digest) => Command::DeleteManifest { repo: repo.clone(), digest: digest.clone() },
            Reference::Tag(tag) => Command::DeleteTag { repo: repo.clone(), tag: tag.clone() },
        };
        match self.inner.namespaces.propose(command).await? {
            Applied::ManifestDeleted { .. } | Applied::TagDeleted => Ok(()),
            Applied::Rejected(Rejection::Artifact(_)) => Err(owned_by_version()),
            Applied::Rejected(_) => Err(RegistryError::ManifestUnknown),
            other => Err(unexpected(other)),
        }
    }

    /// Lists the manifests whose `subject` is `subject`, optionally only those of one artifact
    /// type, in digest order: up to `limit` after the referrer digest `after`.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Page<ManifestRecord>> {
        let shard = self.inner.cluster.shard_of_repo(repo);
        self.inner.cluster.linearizable(shard).await?;
        let state = self.inner.cluster.state(shard);
        let (items, more) = state.referrers(repo, subject, artifact_type, after, limit)?;
        Ok(Page { items, more })
    }
}

/// A plain OCI write refused because a published Gati artifact version owns what it touches.
pub(super) fn owned_by_version() -> RegistryError {
    RegistryError::ArtifactConflict(
        "a published artifact version owns this tag, manifest or blob: versions are immutable; \
         use the artifact API to unpublish or deprecate"
            .into(),
    )
}

/// An outcome the state machine never gives for the command that was proposed: a bug.
pub(super) fn unexpected(outcome: Applied) -> RegistryError {
    tracing::error!(?outcome, "state machine answered with an outcome of another command");
    RegistryError::Internal
}
