//! The one error enum of `src/raft`, [`RaftError`], and its protocol-neutral [`ErrorCode`].
//!
//! Owns the mapping from openraft's typed errors to registry outcomes. openraft's types are kept
//! intact inside the variants (a `ForwardToLeader` still says where the leader is) so the actor
//! layer can forward or redirect; only `code()` flattens them. It may use openraft's and
//! `gati-meta`'s error types; nothing here performs IO.

use std::time::Duration;

use gati_core::ErrorCode;
use openraft::BasicNode;
use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, Fatal, ForwardToLeader, NotInMembers, QuorumNotEnough,
    RaftError as OpenRaftError,
};

/// Why a metadata-group operation failed. Deterministic refusals of a command are not errors: they
/// come back as `Applied::Rejected` from a successful [`propose`](super::RaftNode::propose).
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// This node is not the leader; the request belongs to `leader_id` (at `leader_node`) when
    /// known. Retrying on the leader may succeed. With one member it only happens while the node
    /// is starting or stopping.
    #[error(transparent)]
    ForwardToLeader(ForwardToLeader<u64, BasicNode>),
    /// The leader could not confirm its leadership with a quorum; the read must not proceed.
    #[error(transparent)]
    QuorumNotEnough(QuorumNotEnough<u64>),
    /// This node did not become leader within `waited` after starting.
    #[error("node did not become raft leader within {waited:?}")]
    NoLeader {
        /// How long the start waited.
        waited: Duration,
    },
    /// This follower had not applied the read index `index` within `waited`: it is partitioned
    /// from the leader or far behind.
    #[error("this replica has not applied index {index} within {waited:?}")]
    Lagging {
        /// The read index waited for.
        index: u64,
        /// How long it waited.
        waited: Duration,
    },
    /// A membership change was refused (another one is in progress, or it names unknown nodes).
    #[error(transparent)]
    ChangeMembership(ChangeMembershipError<u64>),
    /// The group's stored membership does not contain this node: the database belongs to another
    /// node or group.
    #[error(transparent)]
    NotInMembers(Box<NotInMembers<u64, BasicNode>>),
    /// The Raft configuration is invalid (a bug in its construction).
    #[error("invalid raft configuration: {0}")]
    Config(#[source] openraft::ConfigError),
    /// The log store could not be opened.
    #[error("raft log store failed to open: {0}")]
    Storage(#[source] gati_meta::MetaError),
    /// The Raft node has stopped: it was shut down (`Fatal::Stopped`), or storage failed or a
    /// task panicked, after which openraft refuses all work until restart.
    #[error(transparent)]
    Fatal(Box<Fatal<u64>>),
}

/// The result type of `src/raft`.
pub type Result<T, E = RaftError> = std::result::Result<T, E>;

impl RaftError {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            RaftError::ForwardToLeader(_)
            | RaftError::QuorumNotEnough(_)
            | RaftError::NoLeader { .. }
            | RaftError::Lagging { .. } => ErrorCode::Unavailable,
            RaftError::ChangeMembership(ChangeMembershipError::InProgress(_)) => ErrorCode::Conflict,
            RaftError::ChangeMembership(_) => ErrorCode::Invalid,
            // A node that was shut down is unavailable, not broken: a retry elsewhere may succeed.
            RaftError::Fatal(fatal) if matches!(**fatal, Fatal::Stopped) => ErrorCode::Unavailable,
            RaftError::Fatal(_) | RaftError::NotInMembers(_) | RaftError::Config(_) | RaftError::Storage(_) => {
                ErrorCode::Internal
            }
        }
    }

    /// Returns the leader to retry on when this node is not the leader.
    pub fn forward_to(&self) -> Option<&ForwardToLeader<u64, BasicNode>> {
        match self {
            RaftError::ForwardToLeader(forward) => Some(forward),
            _ => None,
        }
    }
}

impl RaftError {
    /// The error of a call on a node that has stopped.
    pub fn stopped() -> Self {
        Fatal::<u64>::Stopped.into()
    }
}

impl From<Fatal<u64>> for RaftError {
    fn from(fatal: Fatal<u64>) -> Self {
        RaftError::Fatal(Box::new(fatal))
    }
}

impl From<OpenRaftError<u64, ClientWriteError<u64, BasicNode>>> for RaftError {
    fn from(error: OpenRaftError<u64, ClientWriteError<u64, BasicNode>>) -> Self {
        match error {
            OpenRaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => RaftError::ForwardToLeader(forward),
            OpenRaftError::APIError(ClientWriteError::ChangeMembershipError(change)) => {
                RaftError::ChangeMembership(change)
            }
            OpenRaftError::Fatal(fatal) => fatal.into(),
        }
    }
}

impl From<OpenRaftError<u64, CheckIsLeaderError<u64, BasicNode>>> for RaftError {
    fn from(error: OpenRaftError<u64, CheckIsLeaderError<u64, BasicNode>>) -> Self {
        match error {
            OpenRaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => {
                RaftError::ForwardToLeader(forward)
            }
            OpenRaftError::APIError(CheckIsLeaderError::QuorumNotEnough(quorum)) => RaftError::QuorumNotEnough(quorum),
            OpenRaftError::Fatal(fatal) => fatal.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_being_leader_and_being_stopped_are_unavailable_storage_failure_is_internal() {
        let forward = RaftError::ForwardToLeader(ForwardToLeader { leader_id: Some(2), leader_node: None });
        assert_eq!(forward.code(), ErrorCode::Unavailable);
        assert_eq!(forward.forward_to().and_then(|f| f.leader_id), Some(2));
        assert_eq!(RaftError::from(Fatal::<u64>::Stopped).code(), ErrorCode::Unavailable);
        assert_eq!(RaftError::from(Fatal::<u64>::Panicked).code(), ErrorCode::Internal);
        let storage = openraft::StorageIOError::<u64>::write_logs(openraft::AnyError::error("disk"));
        let fatal = RaftError::from(Fatal::StorageError(storage.into()));
        assert_eq!(fatal.code(), ErrorCode::Internal);
        assert!(fatal.forward_to().is_none());
        assert_eq!(RaftError::NoLeader { waited: Duration::from_secs(1) }.code(), ErrorCode::Unavailable);
    }

    #[test]
    fn client_write_errors_keep_their_openraft_type() {
        let error: OpenRaftError<u64, ClientWriteError<u64, BasicNode>> =
            OpenRaftError::APIError(ClientWriteError::ForwardToLeader(ForwardToLeader::empty()));
        assert!(matches!(RaftError::from(error), RaftError::ForwardToLeader(f) if f.leader_id.is_none()));
    }
}
