//! Cluster administration over gRPC (`gati.cluster.v1.Admin`): join, leave, status.
//!
//! Owns both ends. Membership lives in the `meta` group's own Raft membership (node ids and their
//! gRPC addresses), so joining is "add to meta" and leaving is "remove from meta"; the shard
//! leaders' reconcilers (`reconcile`) then move shard replicas to match. Only the meta leader
//! changes membership; every other node answers with a redirect, and the client follows it.
//! Both operations are idempotent, so a client retries freely after a lost answer.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gati_core::NodeId;
use gati_proto::cluster::admin_client::AdminClient;
use gati_proto::cluster::admin_server::{Admin, AdminServer};
use gati_proto::cluster::{
    AdminReply, Done, JoinRequest, LeaveRequest, Redirect, StatusReply, StatusRequest, admin_reply,
};
use tonic::{Request, Response, Status};

use super::Cluster;
use super::status::NodeStatus;
use crate::raft::{Peers, RaftError};

/// The meta group keeps at most this many voters (Raft quorums beyond 7 only slow commits down);
/// further nodes follow it as learners.
const MAX_META_VOTERS: usize = 7;

/// How long an administrative call keeps following redirects and retrying before giving up.
const ADMIN_DEADLINE: Duration = Duration::from_secs(60);

/// The `Admin` gRPC service of one node.
#[derive(Clone, Default)]
pub struct AdminService {
    cluster: Arc<OnceLock<Cluster>>,
}

impl AdminService {
    /// Makes the service answer; until then every call is `UNAVAILABLE`.
    pub fn attach(&self, cluster: Cluster) {
        let _ = self.cluster.set(cluster);
    }

    /// Returns the tonic service.
    pub fn server(&self) -> AdminServer<AdminService> {
        AdminServer::new(self.clone())
    }

    fn cluster(&self) -> Result<&Cluster, Status> {
        self.cluster.get().ok_or_else(|| Status::unavailable("node is starting"))
    }
}

fn done() -> Response<AdminReply> {
    Response::new(AdminReply { outcome: Some(admin_reply::Outcome::Done(Done {})) })
}

fn redirect(cluster: &Cluster) -> Response<AdminReply> {
    let leader = cluster.meta().leader();
    Response::new(AdminReply {
        outcome: Some(admin_reply::Outcome::Redirect(Redirect {
            leader: leader.as_ref().map(|(id, _)| id.0),
            rpc: leader.map(|(_, addr)| addr),
        })),
    })
}

/// How long a voter change may take to commit before the caller is told its outcome is unknown:
/// it needs a quorum of the old and the new voters, which a partition can withhold indefinitely.
const CHANGE_DEADLINE: Duration = Duration::from_secs(30);

/// Runs a voter change, bounded by [`CHANGE_DEADLINE`].
async fn within_deadline(
    change: impl std::future::Future<Output = crate::raft::Result<()>>,
) -> Result<crate::raft::Result<()>, Status> {
    tokio::time::timeout(CHANGE_DEADLINE, change).await.map_err(|_| {
        Status::deadline_exceeded(format!(
            "the membership change did not commit within {CHANGE_DEADLINE:?} (no quorum reachable?); it may still take effect"
        ))
    })
}

/// Maps a failed membership change: "not the leader" becomes a redirect, anything else is
/// retryable (`UNAVAILABLE`), since both operations are idempotent.
fn change_failed(cluster: &Cluster, error: RaftError) -> Result<Response<AdminReply>, Status> {
    if error.forward_to().is_some() {
        return Ok(redirect(cluster));
    }
    Err(Status::unavailable(format!("membership change failed: {error}")))
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<AdminReply>, Status> {
        let cluster = self.cluster()?;
        let JoinRequest { node_id, rpc, shards } = request.into_inner();
        if node_id == 0 || rpc.is_empty() {
            return Err(Status::invalid_argument("a joining node needs an id of at least 1 and an address"));
        }
        if shards != u32::from(cluster.shard_count().get()) {
            return Err(Status::failed_precondition(format!(
                "the cluster has {} shards, the joining node is configured with {shards}",
                cluster.shard_count()
            )));
        }
        let meta = cluster.meta();
        if !meta.is_leader() {
            return Ok(redirect(cluster));
        }
        let node = NodeId(node_id);
        let members = meta.members();
        if let Some(addr) = members.voters.get(&node).or_else(|| members.learners.get(&node)) {
            if *addr != rpc {
                return Err(Status::already_exists(format!("node id {node_id} is already a member at {addr}")));
            }
            let promoted_as_far_as_it_goes =
                members.voters.contains_key(&node) || members.voters.len() >= MAX_META_VOTERS;
            if promoted_as_far_as_it_goes {
                return Ok(done());
            }
        }
        tracing::info!(node = node_id, %rpc, "adding node to the cluster");
        if let Err(e) = meta.add_learner(node, &rpc, true).await {
            return change_failed(cluster, e);
        }
        if members.voters.len() < MAX_META_VOTERS {
            let mut voters: BTreeSet<NodeId> = members.voters.keys().copied().collect();
            voters.insert(node);
            if let Err(e) = within_deadline(meta.set_voters(voters, true)).await? {
                return change_failed(cluster, e);
            }
        }
        Ok(done())
    }

    async fn leave(&self, request: Request<LeaveRequest>) -> Result<Response<AdminReply>, Status> {
        let cluster = self.cluster()?;
        let node = NodeId(request.into_inner().node_id);
        let meta = cluster.meta();
        if !meta.is_leader() {
            return Ok(redirect(cluster));
        }
        let members = meta.members();
        let outcome = if members.voters.contains_key(&node) {
            if members.voters.len() == 1 {
                return Err(Status::failed_precondition("the last member of a cluster cannot leave it"));
            }
            tracing::info!(node = node.0, "removing node from the cluster");
            let voters = members.voters.keys().copied().filter(|id| *id != node).collect();
            within_deadline(meta.set_voters(voters, false)).await?
        } else if members.learners.contains_key(&node) {
            tracing::info!(node = node.0, "removing non-voting node from the cluster");
            within_deadline(meta.remove_learners(BTreeSet::from([node]))).await?
        } else {
            return Ok(done());
        };
        match outcome {
            Ok(()) => Ok(done()),
            Err(e) => change_failed(cluster, e),
        }
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let status = self.cluster()?.status();
        let json = serde_json::to_vec(&status).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(StatusReply { json }))
    }
}

/// Why an administrative call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The cluster refused the request (a wrong shard count, an id in use, the last member).
    #[error("refused: {0}")]
    Refused(String),
    /// No meta leader answered before the deadline.
    #[error("no leader of the cluster's meta group answered within {deadline:?}; last error: {last}")]
    Unreachable {
        /// How long the call tried.
        deadline: Duration,
        /// The last failure seen.
        last: String,
    },
}

/// One administrative request, sent to whichever node leads the meta group.
enum Call {
    Join(JoinRequest),
    Leave(LeaveRequest),
}

/// Sends `call` to the meta leader, starting from `seeds` and following redirects, until it is
/// done or the deadline passes.
async fn run(peers: &Peers, seeds: &[String], call: Call) -> Result<(), AdminError> {
    let deadline = Instant::now() + ADMIN_DEADLINE;
    let mut last = String::from("no seed address given");
    let mut next: Option<String> = None;
    let mut round = 0usize;
    while Instant::now() < deadline {
        let addr = next.take().unwrap_or_else(|| seeds[round % seeds.len().max(1)].clone());
        round += 1;
        let Some(channel) = peers.channel(&addr) else {
            last = format!("{addr} is not a valid address");
            continue;
        };
        let mut client = AdminClient::new(channel);
        let reply = match &call {
            Call::Join(request) => client.join(request.clone()).await,
            Call::Leave(request) => client.leave(*request).await,
        };
        match reply.map(|r| r.into_inner().outcome) {
            Ok(Some(admin_reply::Outcome::Done(_))) => return Ok(()),
            Ok(Some(admin_reply::Outcome::Redirect(Redirect { rpc: Some(rpc), .. }))) => {
                last = format!("{addr} redirected to {rpc}");
                next = Some(rpc);
                continue;
            }
            Ok(_) => last = format!("{addr} knows no meta leader yet"),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists | tonic::Code::InvalidArgument
                ) =>
            {
                return Err(AdminError::Refused(status.message().to_owned()));
            }
            Err(status) => last = format!("{addr}: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(AdminError::Unreachable { deadline: ADMIN_DEADLINE, last })
}

/// Asks the cluster reachable through `seeds` to add node `node` at `rpc`.
pub async fn join(peers: &Peers, seeds: &[String], node: NodeId, rpc: &str, shards: u16) -> Result<(), AdminError> {
    let request = JoinRequest { node_id: node.0, rpc: rpc.to_owned(), shards: u32::from(shards) };
    run(peers, seeds, Call::Join(request)).await
}

/// Asks the cluster reachable through `seeds` to remove node `node`.
pub async fn leave(peers: &Peers, seeds: &[String], node: NodeId) -> Result<(), AdminError> {
    run(peers, seeds, Call::Leave(LeaveRequest { node_id: node.0 })).await
}

/// Returns the status of the node at `addr`.
pub async fn status(peers: &Peers, addr: &str) -> Result<NodeStatus, AdminError> {
    let unreachable = |last: String| AdminError::Unreachable { deadline: Duration::ZERO, last };
    let channel = peers.channel(addr).ok_or_else(|| unreachable(format!("{addr} is not a valid address")))?;
    let reply = AdminClient::new(channel)
        .status(StatusRequest {})
        .await
        .map_err(|status| unreachable(format!("{addr}: {status}")))?;
    serde_json::from_slice(&reply.into_inner().json).map_err(|e| unreachable(format!("{addr}: invalid status: {e}")))
}
