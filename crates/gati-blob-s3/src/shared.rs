//! [`Shared`]: what a store and all its writers share — the bucket, the key layout, the config —
//! and the registry of lease releases still running after writers were dropped.
//!
//! A dropped writer cannot release its lease synchronously (that is a network write), so its
//! `Drop` spawns the release and registers it here. `resume_upload` on the same store waits for
//! the releases of that session first, so a drop followed by a resume on one node never sees its
//! own stale lease; [`Shared::settle_lease_releases`] lets a node hand its sessions over to
//! others before it stops.

use std::collections::HashMap;
use std::sync::Mutex;

use gati_core::UploadId;
use tokio::task::JoinHandle;

use crate::bucket::Bucket;
use crate::config::S3Config;
use crate::keys::Keys;

/// Everything a store and its writers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) bucket: Bucket,
    pub(crate) keys: Keys,
    pub(crate) config: S3Config,
    releases: Mutex<HashMap<UploadId, Vec<JoinHandle<()>>>>,
}

impl Shared {
    pub(crate) fn new(bucket: Bucket, config: S3Config) -> Self {
        Shared { bucket, keys: Keys::new(&config.key_prefix), config, releases: Mutex::new(HashMap::new()) }
    }

    /// Registers the release of a dropped writer's lease on session `id`.
    pub(crate) fn register_lease_release(&self, id: UploadId, release: JoinHandle<()>) {
        let mut releases = self.releases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Finished releases of sessions nobody resumed would otherwise pile up.
        releases.retain(|_, handles| {
            handles.retain(|handle| !handle.is_finished());
            !handles.is_empty()
        });
        releases.entry(id).or_default().push(release);
    }

    /// Waits until every lease release of session `id` registered so far has run.
    pub(crate) async fn settle_lease_release(&self, id: &UploadId) {
        let handles = {
            let mut releases = self.releases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            releases.remove(id).unwrap_or_default()
        };
        for handle in handles {
            // A release that panicked or was cancelled leaves the lease to expire; nothing to add.
            let _ = handle.await;
        }
    }

    /// Waits until every lease release registered so far has run.
    pub(crate) async fn settle_lease_releases(&self) {
        let handles: Vec<_> = {
            let mut releases = self.releases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            releases.drain().flat_map(|(_, handles)| handles).collect()
        };
        for handle in handles {
            let _ = handle.await;
        }
    }
}
