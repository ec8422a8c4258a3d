//! Blob operations of the facade: stat, read, delete, cross-repository mount.

use gati_blob::ByteStream;
use gati_core::command::Rejection;
use gati_core::range::{ByteRange, Satisfiable};
use gati_core::{Applied, Command, Digest, RepoName};

use super::Registry;
use super::error::{RegistryError, Result};
use super::manifests::unexpected;

/// Blob bytes as served.
pub struct BlobContent {
    /// The blob's whole size.
    pub size: u64,
    /// The inclusive range served, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub stream: ByteStream,
}

/// How long a pull redirect stays valid: long enough for a slow client to start a large download,
/// short enough that a leaked URL soon expires.
const REDIRECT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Registry {
    /// Returns a blob's size if it is linked into the repository. Served from the local replica;
    /// a miss costs a read-index round, so a blob pushed through another node a moment ago is
    /// found here too.
    pub async fn stat_blob(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let shard = self.inner.cluster.shard_of_repo(repo);
        let state = self.inner.cluster.state(shard);
        if let Some(size) = state.blob_link(repo, digest)? {
            return Ok(size);
        }
        self.inner.cluster.linearizable(shard).await?;
        state.blob_link(repo, digest)?.ok_or(RegistryError::BlobUnknown)
    }

    /// Returns a URL the client may fetch the blob from directly (a presigned object-store URL),
    /// when the blob store offers one; `None` means serve the bytes through this node.
    pub async fn blob_redirect(&self, repo: &RepoName, digest: &Digest) -> Result<Option<String>> {
        self.stat_blob(repo, digest).await?;
        Ok(self.inner.blobs.presigned_read_url(digest, REDIRECT_LIFETIME).await?)
    }

    /// Streams a blob, or one byte range of it.
    pub async fn get_blob(&self, repo: &RepoName, digest: &Digest, range: Option<ByteRange>) -> Result<BlobContent> {
        let size = self.stat_blob(repo, digest).await?;
        let range = match range.map(|r| r.resolve(size)) {
            None => None,
            Some(Satisfiable::Range { start, end }) => Some((start, end)),
            Some(Satisfiable::Unsatisfiable) => return Err(RegistryError::RangeNotSatisfiable { size }),
        };
        let read = self.inner.blobs.read(digest, range).await?;
        Ok(BlobContent { size: read.size_total, range: read.range, stream: read.stream })
    }

    /// Removes a blob from a repository. The bytes are reclaimed by garbage collection once no
    /// repository links them.
    pub async fn delete_blob(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let command = Command::UnlinkBlob { repo: repo.clone(), digest: digest.clone() };
        match self.inner.namespaces.propose(command).await? {
            Applied::BlobUnlinked => Ok(()),
            Applied::Rejected(Rejection::BlobUnknown { .. }) => Err(RegistryError::BlobUnknown),
            Applied::Rejected(Rejection::Artifact(_)) => Err(super::manifests::owned_by_version()),
            other => Err(unexpected(other)),
        }
    }

    /// Links a blob that `from` holds into `repo` without moving bytes. Returns the size, or `None`
    /// when `from` does not hold it (the client then uploads normally).
    pub async fn mount_blob(&self, repo: &RepoName, from: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let size = match self.stat_blob(from, digest).await {
            Ok(size) => Some(size),
            Err(RegistryError::BlobUnknown) => None,
            Err(e) => return Err(e),
        };
        self.mount_linked(repo, digest, size).await
    }

    /// Links a blob that any repository holds into `repo` (a mount without `from`, the spec's
    /// automatic content discovery). Returns the size, or `None` when no repository holds it.
    ///
    /// Only linked content is found, never bytes that merely remain in the store awaiting garbage
    /// collection. Access control will narrow the candidates to repositories the caller can read.
    pub async fn mount_blob_from_any(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        // The target's own shard first (the likely holder: same namespace), then every other.
        let cluster = &self.inner.cluster;
        let own = cluster.shard_of_repo(repo);
        let others = cluster.shard_count().shards().filter(|shard| *shard != own);
        let mut size = None;
        for shard in std::iter::once(own).chain(others) {
            if let Some((_, found)) = cluster.state(shard).blob_holders(digest, 1)?.into_iter().next() {
                size = Some(found);
                break;
            }
        }
        self.mount_linked(repo, digest, size).await
    }

    /// Links into `repo` a blob that some repository links with `size` (`None`: none does), once
    /// the store confirms it still holds the bytes. Returns the size, or `None` if nothing mounted.
    async fn mount_linked(&self, repo: &RepoName, digest: &Digest, size: Option<u64>) -> Result<Option<u64>> {
        let Some(size) = size else { return Ok(None) };
        if self.inner.blobs.stat(digest).await?.is_none() {
            return Ok(None);
        }
        self.link_blob(repo, digest, size).await?;
        Ok(Some(size))
    }

    /// Proposes the link of verified, durable content into a repository.
    pub(super) async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        let command = Command::LinkBlob { repo: repo.clone(), digest: digest.clone(), size };
        match self.inner.namespaces.propose(command).await? {
            Applied::BlobLinked { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}
