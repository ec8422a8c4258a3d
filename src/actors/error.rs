//! The one error enum of the actors layer.

use gati_blob::BlobError;
use gati_core::{Digest, ErrorCode, UploadId};
use gati_meta::MetaError;
use thiserror::Error;

use crate::cluster::ClusterError;
use crate::raft::RaftError;

/// Failures of actor-mediated operations. Domain outcomes keep their source's kind so the facade
/// can answer precisely (a digest mismatch is the client's fault, a disk error is ours).
#[derive(Debug, Error)]
pub enum ActorError {
    /// The blob store failed or refused.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Consensus failed (no leader, shutting down, storage). Boxed: openraft's errors are large
    /// and this enum travels through every reply port.
    #[error(transparent)]
    Raft(Box<RaftError>),
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// No upload session with this id exists in this repository.
    #[error("upload {0} is unknown")]
    UploadUnknown(UploadId),
    /// A chunk did not start where the session ends.
    #[error("chunk starts at {start} but the upload holds {offset} bytes")]
    ChunkOutOfOrder {
        /// Where the chunk claimed to start.
        start: u64,
        /// How many bytes the session holds.
        offset: u64,
    },
    /// The request body failed mid-stream (client went away, or sent less than it announced).
    #[error("request body failed: {0}")]
    BodyFailed(#[source] std::io::Error),
    /// The uploaded content does not hash to the digest the client named.
    #[error("upload content does not match {0}")]
    DigestMismatch(Digest),
    /// This node does not lead the namespace's shard; nothing was proposed.
    #[error("this node does not lead the namespace's shard")]
    NotLeader,
    /// Routing to the shard's leader failed.
    #[error(transparent)]
    Cluster(Box<ClusterError>),
    /// An actor stopped before it answered (shutdown, or a bug that panicked it).
    #[error("actor unavailable: {0}")]
    Unavailable(String),
}

impl From<RaftError> for ActorError {
    fn from(e: RaftError) -> Self {
        ActorError::Raft(Box::new(e))
    }
}

impl From<ClusterError> for ActorError {
    fn from(e: ClusterError) -> Self {
        ActorError::Cluster(Box::new(e))
    }
}

impl ActorError {
    /// Returns whether the write failed because this node does not lead its shard, so that
    /// nothing was proposed and it can be sent to the leader.
    pub fn is_not_leader(&self) -> bool {
        match self {
            ActorError::NotLeader => true,
            ActorError::Raft(e) => e.forward_to().is_some(),
            _ => false,
        }
    }

    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ActorError::Blob(e) => e.code(),
            ActorError::Raft(e) => e.code(),
            ActorError::Meta(e) => e.code(),
            ActorError::UploadUnknown(_) => ErrorCode::NotFound,
            ActorError::ChunkOutOfOrder { .. } | ActorError::DigestMismatch(_) => ErrorCode::Invalid,
            ActorError::BodyFailed(_) => ErrorCode::Invalid,
            ActorError::Unavailable(_) | ActorError::NotLeader => ErrorCode::Unavailable,
            ActorError::Cluster(e) => e.code(),
        }
    }
}

/// The result type of the actors layer.
pub type Result<T, E = ActorError> = std::result::Result<T, E>;
