//! The artifact writes the state machine applies, the records it keeps, and why it refuses.

use serde::{Deserialize, Serialize};

use super::kind::ArtifactKind;
use super::names::{ArtifactVersion, DistTag};
use crate::cluster::NodeId;
use crate::command::ManifestRecord;
use crate::digest::Digest;
use crate::name::RepoName;
use crate::version_range::VersionRange;

/// A new version: its OCI manifest, the artifact's typed facts, and the dist-tag to move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishVersion {
    /// The artifact.
    pub repo: RepoName,
    /// The version; must never have been published before.
    pub version: ArtifactVersion,
    /// The artifact's type; must match the type of earlier versions.
    pub kind: ArtifactKind,
    /// The document (config blob), already durable in the blob store, linked by this command.
    pub document: Digest,
    /// The document's size in bytes.
    pub document_size: u64,
    /// The OCI manifest recorded for the version and tagged with the version.
    pub manifest: ManifestRecord,
    /// What the version depends on.
    pub dependencies: Vec<(RepoName, VersionRange)>,
    /// The one-line description, for listings.
    pub description: String,
    /// Who published it.
    pub publisher: String,
    /// When, in seconds since the Unix epoch, by the proposer's clock.
    pub published_at: u64,
    /// The dist-tag to point at this version; `None` moves `latest` when this version is the
    /// highest release (or the artifact has no `latest` yet).
    pub dist_tag: Option<DistTag>,
}

/// Downloads of one version on one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadCount {
    /// The version.
    pub version: ArtifactVersion,
    /// The day, as days since the Unix epoch (UTC).
    pub day: u32,
    /// How many.
    pub count: u64,
}

/// A write to an artifact's typed state; applied by the shard that holds its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "artifact_op", rename_all = "snake_case")]
pub enum ArtifactCommand {
    /// Publishes a version (boxed: it dwarfs the others).
    Publish(Box<PublishVersion>),
    /// Points a dist-tag at an existing version.
    SetDistTag {
        /// The artifact.
        repo: RepoName,
        /// The tag.
        tag: DistTag,
        /// The version.
        version: ArtifactVersion,
    },
    /// Removes a dist-tag (never `latest`).
    RemoveDistTag {
        /// The artifact.
        repo: RepoName,
        /// The tag.
        tag: DistTag,
    },
    /// Sets (or, with `None`, clears) the deprecation message of versions.
    Deprecate {
        /// The artifact.
        repo: RepoName,
        /// The versions.
        versions: Vec<ArtifactVersion>,
        /// The message.
        message: Option<String>,
    },
    /// Withdraws a version published less than 72 hours ago that nothing depends on. The version
    /// number stays taken forever.
    Unpublish {
        /// The artifact.
        repo: RepoName,
        /// The version.
        version: ArtifactVersion,
        /// The proposer's clock, seconds since the Unix epoch.
        at: u64,
    },
    /// Adds download counts. Idempotent: a batch is identified by the counting node, the time
    /// that node started (`epoch`) and a sequence number, and a batch seen before is ignored, so
    /// a retried proposal never counts twice.
    RecordDownloads {
        /// The artifact.
        repo: RepoName,
        /// The counting node.
        node: NodeId,
        /// When the counting process started, milliseconds since the Unix epoch.
        epoch: u64,
        /// The batch's sequence number within that process.
        seq: u64,
        /// The counts.
        counts: Vec<DownloadCount>,
    },
}

impl ArtifactCommand {
    /// The artifact written.
    pub fn repo(&self) -> &RepoName {
        match self {
            ArtifactCommand::Publish(p) => &p.repo,
            ArtifactCommand::SetDistTag { repo, .. }
            | ArtifactCommand::RemoveDistTag { repo, .. }
            | ArtifactCommand::Deprecate { repo, .. }
            | ArtifactCommand::Unpublish { repo, .. }
            | ArtifactCommand::RecordDownloads { repo, .. } => repo,
        }
    }
}

/// What the state machine keeps about one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The version.
    pub version: ArtifactVersion,
    /// The artifact's type.
    pub kind: ArtifactKind,
    /// The OCI manifest's digest; kept after unpublish so the number can never be reused.
    pub manifest: Digest,
    /// The document's digest.
    pub document: Digest,
    /// Dependencies.
    pub dependencies: Vec<(RepoName, VersionRange)>,
    /// The description.
    pub description: String,
    /// Who published it.
    pub publisher: String,
    /// When, seconds since the Unix epoch.
    pub published_at: u64,
    /// Total size of the files and the document, in bytes.
    pub size: u64,
    /// The deprecation message, when deprecated.
    pub deprecated: Option<String>,
    /// Whether it was unpublished (its content is gone, its number stays taken).
    pub unpublished: bool,
}

/// Why an artifact write was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "artifact_reason", rename_all = "snake_case")]
pub enum ArtifactRejection {
    /// The version was published before (perhaps unpublished since): versions are immutable.
    VersionExists {
        /// Whether it has since been unpublished.
        unpublished: bool,
    },
    /// The artifact exists with another type.
    KindMismatch {
        /// Its type.
        existing: ArtifactKind,
    },
    /// The artifact does not exist.
    ArtifactUnknown,
    /// The version does not exist (or was unpublished).
    VersionUnknown {
        /// The version.
        version: ArtifactVersion,
    },
    /// The dist-tag does not exist.
    DistTagUnknown,
    /// `latest` can be moved but not removed.
    LatestIsPermanent,
    /// The unpublish window has closed; deprecate instead.
    UnpublishWindowClosed {
        /// When the version was published.
        published_at: u64,
    },
    /// Other artifacts depend on the version; deprecate instead.
    HasDependents {
        /// Some of them (`repo@version`).
        dependents: Vec<String>,
    },
}
