//! The facade's error enum: the domain outcomes every API surface maps to its own protocol.

use gati_blob::{BlobError, BlobErrorKind};
use gati_core::{CoreError, Digest, ErrorCode};
use gati_meta::MetaError;
use thiserror::Error;
use tracing::error;

use crate::actors::ActorError;

/// What went wrong with a registry operation, in domain terms.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The repository has no content.
    #[error("repository name not known to registry")]
    NameUnknown,
    /// A name, tag or reference is malformed.
    #[error("{0}")]
    NameInvalid(String),
    /// A tag is malformed.
    #[error("{0}")]
    TagInvalid(String),
    /// The manifest (by tag or digest) is not in the repository.
    #[error("manifest unknown")]
    ManifestUnknown,
    /// The pushed manifest is malformed or unsupported.
    #[error("{0}")]
    ManifestInvalid(String),
    /// The pushed manifest exceeds the size limit.
    #[error("manifest exceeds {limit} bytes")]
    ManifestTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The pushed manifest references a blob or manifest the repository does not hold.
    #[error("manifest references {0}, which is unknown to the repository")]
    ManifestBlobUnknown(Digest),
    /// The blob is not in the repository.
    #[error("blob unknown to registry")]
    BlobUnknown,
    /// The upload session does not exist (or belongs to another repository).
    #[error("blob upload unknown to registry")]
    UploadUnknown,
    /// The upload request is malformed.
    #[error("{0}")]
    UploadInvalid(String),
    /// A chunk does not start at the end of the upload.
    #[error("chunk out of order: the upload holds {offset} bytes")]
    ChunkOutOfOrder {
        /// How many bytes the upload holds.
        offset: u64,
    },
    /// A digest is malformed, unsupported, or does not match the content.
    #[error("{0}")]
    DigestInvalid(String),
    /// A size or length does not match the content.
    #[error("{0}")]
    SizeInvalid(String),
    /// The requested range lies outside the blob.
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable {
        /// The blob's size.
        size: u64,
    },
    /// A conditional update lost: the tag pointed elsewhere.
    #[error("precondition failed: tag points at {}", current.as_ref().map_or("nothing".to_string(), |d| d.to_string()))]
    PreconditionFailed {
        /// What the tag pointed at.
        current: Option<Digest>,
    },
    /// A published artifact document breaks rules; each problem names its field.
    #[error("the artifact is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ArtifactInvalid(Vec<gati_core::artifact::FieldError>),
    /// The artifact does not exist (or is invisible to the caller).
    #[error("artifact not found")]
    ArtifactUnknown,
    /// The artifact exists but not the version or dist-tag asked for.
    #[error("{0}")]
    VersionUnknown(String),
    /// The write conflicts with what is stored (a version published before, another type, a
    /// dist-tag rule).
    #[error("{0}")]
    ArtifactConflict(String),
    /// A request about artifacts is malformed (a bad version, range, dist-tag or query).
    #[error("{0}")]
    ArtifactRequestInvalid(String),
    /// Dependencies cannot be resolved; the message explains why.
    #[error("{0}")]
    Unresolvable(String),
    /// The registry cannot take the request now (no leader, shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected storage failure; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl RegistryError {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        use RegistryError::*;
        match self {
            NameUnknown | ManifestUnknown | BlobUnknown | UploadUnknown => ErrorCode::NotFound,
            NameInvalid(_)
            | TagInvalid(_)
            | ManifestInvalid(_)
            | ManifestTooLarge { .. }
            | ManifestBlobUnknown(_)
            | UploadInvalid(_)
            | ChunkOutOfOrder { .. }
            | DigestInvalid(_)
            | SizeInvalid(_)
            | RangeNotSatisfiable { .. } => ErrorCode::Invalid,
            ArtifactInvalid(_) | ArtifactRequestInvalid(_) | Unresolvable(_) => ErrorCode::Invalid,
            ArtifactUnknown | VersionUnknown(_) => ErrorCode::NotFound,
            PreconditionFailed { .. } | ArtifactConflict(_) => ErrorCode::Conflict,
            Unavailable(_) => ErrorCode::Unavailable,
            Internal => ErrorCode::Internal,
        }
    }

    /// Logs an unexpected failure once, where it is turned into [`RegistryError::Internal`].
    pub(crate) fn internal(source: &dyn std::error::Error, context: &'static str) -> Self {
        error!(error = %source, context, "internal error");
        RegistryError::Internal
    }
}

impl From<CoreError> for RegistryError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::DigestInvalid(_) | CoreError::DigestUnsupported(_) => {
                RegistryError::DigestInvalid(e.to_string())
            }
            CoreError::NameInvalid { .. }
            | CoreError::IdentityInvalid { .. }
            | CoreError::VersionRangeInvalid { .. } => RegistryError::NameInvalid(e.to_string()),
            CoreError::TagInvalid(_) => RegistryError::TagInvalid(e.to_string()),
            CoreError::ManifestInvalid(_) | CoreError::ManifestUnsupported(_) => {
                RegistryError::ManifestInvalid(e.to_string())
            }
            CoreError::UploadIdInvalid(_) => RegistryError::UploadUnknown,
            CoreError::RangeInvalid(_) => RegistryError::UploadInvalid(e.to_string()),
            CoreError::VersionInvalid { .. }
            | CoreError::DistTagInvalid { .. }
            | CoreError::ArtifactRefInvalid { .. }
            | CoreError::ArtifactKindUnknown { .. } => RegistryError::ArtifactRequestInvalid(e.to_string()),
            CoreError::ClusterInvalid(_) => RegistryError::internal(&e, "cluster settings"),
        }
    }
}

impl From<BlobError> for RegistryError {
    fn from(e: BlobError) -> Self {
        match e.kind() {
            BlobErrorKind::NotFound => RegistryError::BlobUnknown,
            BlobErrorKind::UploadUnknown => RegistryError::UploadUnknown,
            BlobErrorKind::DigestMismatch => RegistryError::DigestInvalid(e.to_string()),
            _ => RegistryError::internal(&e, "blob store"),
        }
    }
}

impl From<MetaError> for RegistryError {
    fn from(e: MetaError) -> Self {
        RegistryError::internal(&e, "metadata store")
    }
}

impl From<crate::cluster::ClusterError> for RegistryError {
    fn from(e: crate::cluster::ClusterError) -> Self {
        ActorError::from(e).into()
    }
}

impl From<ActorError> for RegistryError {
    fn from(e: ActorError) -> Self {
        match e {
            ActorError::Blob(e) => e.into(),
            ActorError::Meta(e) => e.into(),
            ActorError::Raft(e) => match e.code() {
                ErrorCode::Unavailable | ErrorCode::Timeout => RegistryError::Unavailable(e.to_string()),
                _ => RegistryError::internal(&e, "consensus"),
            },
            ActorError::UploadUnknown(_) => RegistryError::UploadUnknown,
            ActorError::ChunkOutOfOrder { offset, .. } => RegistryError::ChunkOutOfOrder { offset },
            ActorError::BodyFailed(e) => RegistryError::UploadInvalid(format!("request body failed: {e}")),
            ActorError::DigestMismatch(d) => RegistryError::DigestInvalid(format!("content does not match digest {d}")),
            ActorError::Cluster(e) => match e.code() {
                ErrorCode::Unavailable | ErrorCode::Timeout => RegistryError::Unavailable(e.to_string()),
                _ => RegistryError::internal(&e, "cluster"),
            },
            ActorError::Unavailable(m) => RegistryError::Unavailable(m),
            ActorError::NotLeader => RegistryError::Unavailable("this node does not lead the shard".into()),
        }
    }
}

/// The result type of the facade.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
