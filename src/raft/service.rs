//! The server side of the Raft transport: the `RaftTransport` gRPC service.
//!
//! Owns [`GroupTable`], the node's running groups by id, and [`RaftTransportService`], which
//! decodes each request, hands it to the named group's openraft node and encodes its answer,
//! openraft errors included (the client returns them as `RemoteError`). A request for a group this
//! node does not run is `NOT_FOUND`, which the client treats as unreachable: the group may be
//! starting here, or this node may have left it. It may call openraft's RPC entry points; it must
//! not call storage.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use gati_core::GroupId;
use gati_proto::cluster::raft_transport_server::{RaftTransport, RaftTransportServer};
use gati_proto::cluster::{RaftMessage, SnapshotChunk};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use super::network::{MAX_MESSAGE_BYTES, TimeoutNow};
use super::read_index::VOTE_QUIET;
use super::types::{GatiRaft, Raft};

/// The node's running consensus groups; cheap to clone, clones share the table.
#[derive(Clone, Default)]
pub struct GroupTable {
    groups: Arc<RwLock<HashMap<GroupId, Running>>>,
}

/// A group running on this node, and when it started here.
#[derive(Clone)]
struct Running {
    raft: Raft,
    started: Instant,
}

impl GroupTable {
    pub(super) fn insert(&self, group: GroupId, raft: Raft) {
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(group, Running { raft, started: Instant::now() });
    }

    pub(super) fn remove(&self, group: GroupId) {
        self.groups.write().unwrap_or_else(PoisonError::into_inner).remove(&group);
    }

    /// The group's node, provided the request was meant for this node.
    fn get(&self, group: &str, target: u64) -> Result<Raft, Status> {
        self.running(group, target).map(|running| running.raft)
    }

    fn running(&self, group: &str, target: u64) -> Result<Running, Status> {
        let running = self.lookup(group)?;
        let me = running.raft.metrics().borrow().id;
        if me != target {
            // Treated as unreachable by the sender, like a group this node does not run.
            return Err(Status::not_found(format!("this is node {me}, not node {target}")));
        }
        Ok(running)
    }

    fn lookup(&self, group: &str) -> Result<Running, Status> {
        let id: GroupId = group.parse().map_err(|e| Status::invalid_argument(format!("{e}")))?;
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("this node does not run group {id}")))
    }

    /// Returns the gRPC service answering peers' Raft RPCs for every group in this table.
    pub fn service(&self) -> RaftTransportServer<RaftTransportService> {
        RaftTransportServer::new(RaftTransportService { table: self.clone() })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// The `RaftTransport` gRPC service of one node.
pub struct RaftTransportService {
    table: GroupTable,
}

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(payload).map_err(|e| Status::invalid_argument(format!("undecodable raft request: {e}")))
}

fn reply<T: Serialize>(group: String, answer: &T) -> Result<Response<RaftMessage>, Status> {
    let payload = serde_json::to_vec(answer).map_err(|e| Status::internal(format!("unencodable raft reply: {e}")))?;
    Ok(Response::new(RaftMessage { group, payload, target: 0 }))
}

#[tonic::async_trait]
impl RaftTransport for RaftTransportService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let RaftMessage { group, payload, target } = request.into_inner();
        let raft = self.table.get(&group, target)?;
        let rpc: AppendEntriesRequest<GatiRaft> = decode(&payload)?;
        reply(group, &raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let RaftMessage { group, payload, target } = request.into_inner();
        let Running { raft, started } = self.table.running(&group, target)?;
        // A restarted voter has forgotten when it last heard from the leader, so it would grant
        // a vote inside that leader's lease. Staying silent for one lease keeps reads served under
        // the lease linearizable across restarts (see `read_index`). Candidates retry.
        if started.elapsed() < VOTE_QUIET {
            return Err(Status::unavailable(format!("group {group} started here less than {VOTE_QUIET:?} ago")));
        }
        let rpc: VoteRequest<u64> = decode(&payload)?;
        reply(group, &raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<SnapshotChunk>) -> Result<Response<RaftMessage>, Status> {
        let SnapshotChunk { group, request, data, target } = request.into_inner();
        let raft = self.table.get(&group, target)?;
        let mut rpc: InstallSnapshotRequest<GatiRaft> = decode(&request)?;
        rpc.data = data;
        reply(group, &raft.install_snapshot(rpc).await)
    }

    async fn timeout_now(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let RaftMessage { group, payload, target } = request.into_inner();
        let raft = self.table.get(&group, target)?;
        let TimeoutNow { term, leader, last_log } = decode(&payload)?;
        let following = {
            let metrics = raft.metrics();
            let metrics = metrics.borrow();
            metrics.state == openraft::ServerState::Follower
                && metrics.current_term == term
                && metrics.current_leader == Some(leader)
                && metrics.last_log_index.unwrap_or(0) == last_log
                && metrics.membership_config.membership().voter_ids().any(|id| id == target)
        };
        // Anything else is stale: a newer term, another leader, a log that is not exactly the one
        // the leader held writes back at (behind it, the vote would be refused; past it, the
        // leader gave up and appended more), or this node no longer votes.
        let started = following && raft.trigger().elect().await.is_ok();
        if started {
            tracing::info!(%group, from = leader, term, "campaigning: the leader hands the group over");
        }
        reply(group, &started)
    }
}
