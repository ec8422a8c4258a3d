//! The registry facade: the typed operations every API surface calls.
//!
//! HTTP handlers (and later REST, GraphQL and gRPC) call [`Registry`] and nothing below it. Writes go
//! through the namespace actors to Raft; reads come from the local state-machine replica (tags
//! after a linearizable read-index check, content by digest directly, since it is immutable); bytes
//! come from the blob store. Must not know about HTTP.

mod blobs;
mod cache;
pub mod error;
mod manifests;
mod uploads;

use std::sync::Arc;

use gati_blob::BlobStore;
use gati_core::{RepoName, Tag};
use gati_meta::StateMachine;

pub use blobs::BlobContent;
pub use error::{RegistryError, Result};
pub use manifests::{ManifestContent, PushedManifest, PutManifestRequest};

use crate::actors::{NamespaceDirectory, UploadDirectory};
use crate::raft::RaftNode;
use cache::ManifestCache;

/// Handle to the registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    state: StateMachine,
    raft: Arc<RaftNode>,
    blobs: Arc<dyn BlobStore>,
    namespaces: NamespaceDirectory,
    uploads: UploadDirectory,
    manifest_cache: ManifestCache,
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
        state: StateMachine,
        raft: Arc<RaftNode>,
        blobs: Arc<dyn BlobStore>,
        namespaces: NamespaceDirectory,
        uploads: UploadDirectory,
        manifest_cache_bytes: usize,
    ) -> Self {
        Registry {
            inner: Arc::new(Inner {
                state,
                raft,
                blobs,
                namespaces,
                uploads,
                manifest_cache: ManifestCache::new(manifest_cache_bytes),
            }),
        }
    }

    /// Lists a repository's tags in lexical order, after `last`, at most `limit`.
    pub async fn list_tags(&self, repo: &RepoName, last: Option<&str>, limit: usize) -> Result<Page<Tag>> {
        self.inner.raft.ensure_linearizable().await.map_err(crate::actors::ActorError::from)?;
        let state = &self.inner.state;
        if !state.repo_exists(repo)? {
            return Err(RegistryError::NameUnknown);
        }
        let (items, more) = state.tags(repo, last, limit)?;
        Ok(Page { items, more })
    }

    /// Lists repositories in lexical order, after `last`, at most `limit`.
    pub async fn catalog(&self, last: Option<&str>, limit: usize) -> Result<Page<RepoName>> {
        let (items, more) = self.inner.state.catalog(last, limit)?;
        Ok(Page { items, more })
    }

    /// Returns whether the node can serve writes: consensus has a leader and storage answers.
    pub async fn ready(&self) -> bool {
        self.inner.raft.ensure_linearizable().await.is_ok()
    }
}
