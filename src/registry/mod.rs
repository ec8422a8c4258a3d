//! The registry facade: the typed operations every API surface calls.
//!
//! HTTP handlers (and later REST, GraphQL and gRPC) call [`Registry`] and nothing below it. Writes go
//! through the namespace actors to Raft; reads come from the local state-machine replica (tags
//! after a linearizable read-index check, content by digest directly, since it is immutable); bytes
//! come from the blob store. Must not know about HTTP.

pub mod artifacts;
mod blobs;
mod cache;
pub mod error;
mod manifests;
mod uploads;

use std::sync::Arc;

use gati_blob::BlobStore;
use gati_core::{RepoName, Tag};

pub use blobs::BlobContent;
pub use error::{RegistryError, Result};
pub use manifests::{ManifestContent, PushedManifest, PutManifestRequest};

use crate::actors::{NamespaceDirectory, UploadDirectory};
use crate::cluster::Cluster;
use cache::ManifestCache;

/// Handle to the registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    blobs: Arc<dyn BlobStore>,
    namespaces: NamespaceDirectory,
    uploads: UploadDirectory,
    manifest_cache: ManifestCache,
    /// Counts artifact downloads off the request path, once started.
    downloads: std::sync::OnceLock<crate::workers::DownloadCounterHandle>,
}

/// How fresh a tag read must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadConsistency {
    /// The default: the read reflects every tag update acknowledged anywhere before it began
    /// (one read-index round to the shard's leader).
    #[default]
    Linearizable,
    /// Served from this node's replica as it stands, with no consensus round: fastest, and
    /// available while the shard has no leader, but it may miss updates of the last moments.
    Stale,
}

/// A page of a listing and whether more follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page, in lexical order.
    pub items: Vec<T>,
    /// Whether items follow the last one of this page.
    pub more: bool,
}

impl Registry {
    /// Assembles the facade from its parts (see `crate::node` for the wiring).
    pub fn new(
        cluster: Cluster,
        blobs: Arc<dyn BlobStore>,
        namespaces: NamespaceDirectory,
        uploads: UploadDirectory,
        manifest_cache_bytes: usize,
    ) -> Self {
        Registry {
            inner: Arc::new(Inner {
                cluster,
                blobs,
                namespaces,
                uploads,
                manifest_cache: ManifestCache::new(manifest_cache_bytes),
                downloads: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Starts the facade's worker actors (download statistics); `epoch` identifies this process's
    /// writes of counts (see `workers::downloads::next_epoch`).
    pub async fn start_workers(&self, epoch: u64) -> Result<()> {
        let counter = crate::workers::DownloadCounterHandle::start(
            self.inner.namespaces.clone(),
            self.inner.cluster.node_id(),
            epoch,
        )
        .await
        .map_err(|e| RegistryError::internal(&e, "starting the download counter"))?;
        if let Err(counter) = self.inner.downloads.set(counter) {
            counter.stop();
        }
        Ok(())
    }

    /// Stops the worker actors, writing what they hold first where they can.
    pub fn stop_workers(&self) {
        if let Some(counter) = self.inner.downloads.get() {
            counter.flush();
            counter.stop();
        }
    }

    /// Counts a download of an artifact version (no-op before the workers start).
    pub fn count_download(&self, repo: &RepoName, version: &gati_core::artifact::ArtifactVersion) {
        if let Some(counter) = self.inner.downloads.get() {
            counter.count(repo.clone(), version.clone(), artifacts::day_of(artifacts::now()));
        }
    }

    /// Lists a repository's tags in lexical order, after `last`, at most `limit`.
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        limit: usize,
        consistency: ReadConsistency,
    ) -> Result<Page<Tag>> {
        let shard = self.inner.cluster.shard_of_repo(repo);
        if consistency == ReadConsistency::Linearizable {
            self.inner.cluster.linearizable(shard).await?;
        }
        let state = self.inner.cluster.state(shard);
        if !state.repo_exists(repo)? {
            return Err(RegistryError::NameUnknown);
        }
        let (items, more) = state.tags(repo, last, limit)?;
        Ok(Page { items, more })
    }

    /// Lists repositories in lexical order, after `last`, at most `limit`, from the local
    /// replicas of every shard (merged: each shard holds the repositories of its namespaces).
    pub async fn catalog(&self, last: Option<&str>, limit: usize) -> Result<Page<RepoName>> {
        let mut merged = Vec::new();
        let mut more = false;
        for state in self.inner.cluster.states() {
            let (items, shard_more) = state.catalog(last, limit)?;
            merged.extend(items);
            more |= shard_more;
        }
        merged.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        if merged.len() > limit {
            merged.truncate(limit);
            more = true;
        }
        Ok(Page { items: merged, more })
    }

    /// Returns the status of this node's consensus groups.
    pub fn cluster_status(&self) -> crate::cluster::status::NodeStatus {
        self.inner.cluster.status()
    }

    /// Returns whether the node can serve reads and writes: every consensus group knows a leader.
    pub async fn ready(&self) -> bool {
        self.inner.cluster.ready()
    }
}
