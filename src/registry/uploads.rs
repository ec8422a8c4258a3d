//! Upload operations of the facade: begin, append, status, finish, cancel, monolithic push.

use gati_blob::ByteStream;
use gati_core::{Digest, RepoName, UploadId};

use super::Registry;
use super::error::Result;

impl Registry {
    /// Begins a resumable upload session in `repo`.
    pub async fn start_upload(&self, repo: &RepoName) -> Result<UploadId> {
        Ok(self.inner.uploads.begin(repo).await?)
    }

    /// Appends a chunk; `start` is the chunk's claimed first byte. Returns the new size.
    pub async fn append_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        Ok(self.inner.uploads.append(repo, id, start, body).await?)
    }

    /// Returns how many bytes an upload holds.
    pub async fn upload_status(&self, repo: &RepoName, id: &UploadId) -> Result<u64> {
        Ok(self.inner.uploads.status(repo, id).await?)
    }

    /// Appends an optional last chunk, verifies the content against `digest`, stores it and links
    /// it into the repository. Replies only once the link is applied.
    pub async fn finish_upload(
        &self,
        repo: &RepoName,
        id: &UploadId,
        start: Option<u64>,
        body: Option<ByteStream>,
        digest: &Digest,
    ) -> Result<u64> {
        let size = self.inner.uploads.finish(repo, id, start, body, digest.clone()).await?;
        self.link_blob(repo, digest, size).await?;
        Ok(size)
    }

    /// Discards an upload.
    pub async fn cancel_upload(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        Ok(self.inner.uploads.cancel(repo, id).await?)
    }

    /// Pushes a whole blob in one request.
    pub async fn push_blob(&self, repo: &RepoName, digest: &Digest, body: ByteStream) -> Result<u64> {
        let id = self.start_upload(repo).await?;
        let outcome = self.finish_upload(repo, &id, None, Some(body), digest).await;
        if outcome.is_err() {
            // A one-shot push has no client that could resume it; do not leave the session behind.
            let _ = self.cancel_upload(repo, &id).await;
        }
        outcome
    }
}
