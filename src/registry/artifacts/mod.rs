//! Gati artifact operations of the facade: publish, read, list, resolve, and the writes that
//! manage versions (dist-tags, deprecation, unpublish).
//!
//! An artifact lives in the OCI repository `namespace/name`; its typed state (versions,
//! dist-tags, dependents, downloads) lives beside the OCI records in the same shard, so one
//! command publishes both atomically. Reads come from the local replica after a read-index round,
//! like tag reads: a version published through any node is visible at once everywhere.

mod publish;
mod read;
mod resolve;
mod write;

use gati_core::RepoName;
use gati_core::artifact::{ArtifactKind, ArtifactVersion, DistTag, VersionRecord};

pub use publish::{PublishRequest, Published};
pub use read::{ArtifactInfo, ArtifactSummary, DownloadDay, SearchPage, SearchQuery, VersionView};
pub use resolve::{ResolvedGraph, ResolvedPackage};

/// Seconds since the Unix epoch by this node's clock.
pub fn now_secs() -> u64 {
    now()
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs a synchronous scan of the local replicas (search, dependents) without stalling the
/// runtime's other tasks: on the multi-threaded runtime the worker hands its queue to others
/// for the duration.
pub(crate) fn scan<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Days since the Unix epoch (UTC), the unit of download statistics.
pub fn day_of(secs: u64) -> u32 {
    u32::try_from(secs / 86_400).unwrap_or(u32::MAX)
}

/// A dist-tag or version reference to one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionSelector {
    /// An exact version.
    Version(ArtifactVersion),
    /// A dist-tag.
    Tag(DistTag),
}

impl VersionSelector {
    /// Parses `1.2.3` as a version and anything else as a dist-tag.
    pub fn parse(text: &str) -> Result<VersionSelector, super::RegistryError> {
        if let Ok(v) = text.parse::<ArtifactVersion>() {
            return Ok(VersionSelector::Version(v));
        }
        text.parse::<DistTag>().map(VersionSelector::Tag).map_err(|_| {
            super::RegistryError::ArtifactRequestInvalid(format!("{text:?} is neither a version nor a dist-tag"))
        })
    }
}

/// A version's record with the artifact it belongs to.
#[derive(Clone, Debug)]
pub struct VersionOf {
    /// The artifact.
    pub repo: RepoName,
    /// The artifact's type.
    pub kind: ArtifactKind,
    /// The record.
    pub record: VersionRecord,
}
