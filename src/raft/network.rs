//! The Raft transport of the metadata group: for now, none.
//!
//! Owns [`NoTransport`], the `RaftNetworkFactory` of a one-member group. Such a group never sends
//! an RPC (it is its own quorum: elections, commits and `ensure_linearizable` all complete
//! locally), so every connection it hands out answers `Unreachable`; should openraft ever try one,
//! it backs off and retries rather than failing the node. Issue #3 replaces this module with a
//! tonic client and the matching `RaftService` server, and maps `ErrorCode` to `tonic::Code` here.
//! It may call openraft's network traits only; it must not call storage.

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};

use super::types::GatiRaft;

/// Why an RPC to a peer failed: this build has no transport.
#[derive(Debug, thiserror::Error)]
#[error("raft node {target} is unreachable: no raft transport is configured (single-member group)")]
struct NoTransportConfigured {
    target: u64,
}

/// The network factory of a one-member group: connections that reach nobody.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct NoTransport;

/// A connection to a peer that cannot be reached.
#[derive(Debug)]
pub(super) struct UnreachablePeer {
    target: u64,
}

impl UnreachablePeer {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<u64, BasicNode, E> {
        RPCError::Unreachable(Unreachable::new(&NoTransportConfigured { target: self.target }))
    }
}

impl RaftNetworkFactory<GatiRaft> for NoTransport {
    type Network = UnreachablePeer;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Self::Network {
        tracing::warn!(target, "raft tried to reach a peer, but this node has no raft transport");
        UnreachablePeer { target }
    }
}

impl RaftNetwork<GatiRaft> for UnreachablePeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<GatiRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<GatiRaft>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        Err(self.unreachable())
    }
}
