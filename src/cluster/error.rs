//! The one error enum of the cluster layer.

use gati_core::{ErrorCode, GroupId};

use crate::raft::RaftError;

/// Why a cluster operation (routing a write or a read to the right replica) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Consensus failed on this node.
    #[error(transparent)]
    Raft(Box<RaftError>),
    /// No leader of the group could be reached before the deadline (election in progress,
    /// partition, or too many nodes down). Nothing was written; retrying later may succeed.
    #[error("group {group} has no reachable leader: {why}")]
    NoLeader {
        /// The group.
        group: GroupId,
        /// The last obstacle seen.
        why: String,
    },
    /// A write was forwarded to the leader but its answer was lost: it may or may not have been
    /// applied. Clients must re-read before retrying a conditional write.
    #[error("the outcome of a write forwarded to node {leader} is unknown: {why}")]
    Indeterminate {
        /// The leader the write was sent to.
        leader: u64,
        /// What failed.
        why: String,
    },
    /// A peer answered with something this node cannot decode: a version mismatch or a bug.
    #[error("peer sent an invalid reply: {0}")]
    Protocol(String),
}

impl From<RaftError> for ClusterError {
    fn from(e: RaftError) -> Self {
        ClusterError::Raft(Box::new(e))
    }
}

impl ClusterError {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClusterError::Raft(e) => e.code(),
            ClusterError::NoLeader { .. } | ClusterError::Indeterminate { .. } => ErrorCode::Unavailable,
            ClusterError::Protocol(_) => ErrorCode::Internal,
        }
    }
}

/// The result type of the cluster layer.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
