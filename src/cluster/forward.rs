//! Forwarding between nodes: a write proposed where its shard's leader is not, and a follower's
//! read-index request, both sent to the leader over gRPC (`gati.cluster.v1.Forwarding`).
//!
//! Owns both ends: the client calls ([`propose`], [`read_index`]) and [`ForwardingService`]. The
//! one rule that matters here is telling apart "not sent" from "sent, answer lost": a call that
//! failed to connect can be retried elsewhere, a call that may have reached the leader cannot be
//! retried blindly (a conditional tag update could then apply twice), so it is reported as
//! [`ClusterError::Indeterminate`]. The server therefore never answers `UNAVAILABLE` once it has
//! handed a command to consensus.

use std::sync::{Arc, OnceLock};

use gati_core::{Applied, Command, GroupId};
use gati_proto::cluster::forwarding_client::ForwardingClient;
use gati_proto::cluster::forwarding_server::{Forwarding, ForwardingServer};
use gati_proto::cluster::{
    GroupReadIndex, NotLeader, ProposeReply, ProposeRequest, ReadIndexReply, ReadIndexRequest, WaitAppliedReply,
    WaitAppliedRequest, group_read_index, propose_reply,
};
use tonic::{Request, Response, Status};

use super::error::ClusterError;
use super::{Cluster, LEADER_DEADLINE};
use crate::actors::{ActorError, NamespaceDirectory};
use crate::raft::Peers;

/// What the leader said to a forwarded write.
#[derive(Debug)]
pub enum Proposed {
    /// The command was applied (or deterministically rejected) with this outcome.
    Applied(Applied),
    /// The node is not the leader (any more); nothing was proposed.
    NotLeader,
}

/// Why a forwarded call failed.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The call never reached the peer (no connection); safe to retry.
    #[error("peer at {addr} unreachable: {why}")]
    NotSent {
        /// The peer.
        addr: String,
        /// The transport's reason.
        why: String,
    },
    /// The call may have reached the peer; its effect is unknown.
    #[error(transparent)]
    Failed(#[from] ClusterError),
}

/// What the leader said about one group of a read-index request.
#[derive(Clone, Debug)]
pub enum ReadIndex {
    /// Reads are linearizable once the local replica has applied this index.
    Index(u64),
    /// The node is not the leader (any more).
    NotLeader,
    /// The leader could not confirm its leadership, and why.
    Failed(String),
}

fn client(peers: &Peers, addr: &str) -> std::result::Result<ForwardingClient<crate::raft::PeerChannel>, ForwardError> {
    peers
        .channel(addr)
        .map(ForwardingClient::new)
        .ok_or_else(|| ForwardError::NotSent { addr: addr.to_owned(), why: "not a valid address".into() })
}

/// Whether a failed call certainly did not reach the peer's handler. tonic reports a failed
/// connection as `UNAVAILABLE`, and the server below never uses that code after proposing.
fn not_sent(status: &Status) -> bool {
    status.code() == tonic::Code::Unavailable
}

/// Forwards `command` for `group` to the node at `addr` (believed to lead it).
pub async fn propose(
    peers: &Peers,
    addr: &str,
    leader: u64,
    group: GroupId,
    command: &Command,
) -> std::result::Result<Proposed, ForwardError> {
    let mut client = client(peers, addr)?;
    let command = serde_json::to_vec(command).map_err(|e| ClusterError::Protocol(e.to_string()))?;
    let mut request = Request::new(ProposeRequest { group: group.name(), command });
    request.set_timeout(LEADER_DEADLINE);
    match client.propose(request).await {
        Ok(reply) => match reply.into_inner().outcome {
            Some(propose_reply::Outcome::Applied(bytes)) => serde_json::from_slice(&bytes)
                .map(Proposed::Applied)
                .map_err(|e| ClusterError::Protocol(format!("undecodable outcome: {e}")).into()),
            Some(propose_reply::Outcome::NotLeader(_)) => Ok(Proposed::NotLeader),
            None => Err(ClusterError::Protocol("empty propose reply".into()).into()),
        },
        Err(status) if not_sent(&status) => {
            Err(ForwardError::NotSent { addr: addr.to_owned(), why: status.message().to_owned() })
        }
        Err(status) => Err(ClusterError::Indeterminate { leader, why: status.to_string() }.into()),
    }
}

/// Asks the node at `addr` (believed to lead `groups`) for each group's read index, in one call.
/// Reads change nothing, so every failure is safe to retry.
pub async fn read_index(
    peers: &Peers,
    addr: &str,
    groups: &[GroupId],
) -> std::result::Result<Vec<ReadIndex>, ForwardError> {
    let mut client = client(peers, addr)?;
    let mut request = Request::new(ReadIndexRequest { groups: groups.iter().map(|g| g.name()).collect() });
    request.set_timeout(LEADER_DEADLINE);
    let reply = match client.read_index(request).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(ForwardError::NotSent { addr: addr.to_owned(), why: status.to_string() }),
    };
    if reply.outcomes.len() != groups.len() {
        return Err(ClusterError::Protocol(format!(
            "{} read indexes for {} groups",
            reply.outcomes.len(),
            groups.len()
        ))
        .into());
    }
    reply
        .outcomes
        .into_iter()
        .map(|answer| match answer.outcome {
            Some(group_read_index::Outcome::Index(index)) => Ok(ReadIndex::Index(index)),
            Some(group_read_index::Outcome::NotLeader(_)) => Ok(ReadIndex::NotLeader),
            Some(group_read_index::Outcome::Failed(why)) => Ok(ReadIndex::Failed(why)),
            None => Err(ClusterError::Protocol("empty read-index outcome".into()).into()),
        })
        .collect()
}

/// Asks the node at `addr` to apply `group`'s log up to `index` within `timeout`; returns
/// whether it did.
pub async fn wait_applied(
    peers: &Peers,
    addr: &str,
    group: GroupId,
    index: u64,
    timeout: std::time::Duration,
) -> std::result::Result<bool, ForwardError> {
    let mut client = client(peers, addr)?;
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let mut request = Request::new(WaitAppliedRequest { group: group.name(), index, timeout_ms });
    request.set_timeout(timeout + std::time::Duration::from_secs(1));
    match client.wait_applied(request).await {
        Ok(reply) => Ok(reply.into_inner().applied),
        Err(status) => Err(ForwardError::NotSent { addr: addr.to_owned(), why: status.to_string() }),
    }
}

/// How long the leader gives each group of a read-index request to confirm its leadership.
const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the forwarding service needs, set once the node is fully wired (the gRPC server starts
/// before the groups, so that founders can reach each other while they bootstrap).
struct Target {
    cluster: Cluster,
    namespaces: NamespaceDirectory,
}

/// The `Forwarding` gRPC service of one node.
#[derive(Clone, Default)]
pub struct ForwardingService {
    target: Arc<OnceLock<Target>>,
}

impl ForwardingService {
    /// Makes the service answer; until then every call is `UNAVAILABLE` (and retried).
    pub fn attach(&self, cluster: Cluster, namespaces: NamespaceDirectory) {
        let _ = self.target.set(Target { cluster, namespaces });
    }

    /// Returns the tonic service.
    pub fn server(&self) -> ForwardingServer<ForwardingService> {
        ForwardingServer::new(self.clone())
    }

    fn target(&self) -> std::result::Result<&Target, Status> {
        self.target.get().ok_or_else(|| Status::unavailable("node is starting"))
    }
}

fn group_of(group: &str, cluster: &Cluster) -> std::result::Result<GroupId, Status> {
    match group.parse::<GroupId>() {
        Ok(GroupId::Shard(shard)) if shard.0 < cluster.shard_count().get() => Ok(GroupId::Shard(shard)),
        Ok(GroupId::Meta) => Ok(GroupId::Meta),
        _ => Err(Status::invalid_argument(format!("{group:?} is not a group of this cluster"))),
    }
}

fn not_leader(leader: Option<gati_core::NodeId>) -> NotLeader {
    NotLeader { leader: leader.map(|n| n.0) }
}

#[tonic::async_trait]
impl Forwarding for ForwardingService {
    async fn propose(&self, request: Request<ProposeRequest>) -> std::result::Result<Response<ProposeReply>, Status> {
        let target = self.target()?;
        let ProposeRequest { group, command } = request.into_inner();
        let group = group_of(&group, &target.cluster)?;
        let command: Command = serde_json::from_slice(&command)
            .map_err(|e| Status::invalid_argument(format!("undecodable command: {e}")))?;
        let in_group = match command.repo() {
            Some(repo) => group == GroupId::Shard(target.cluster.shard_of_repo(repo)),
            None => group == GroupId::Meta,
        };
        if !in_group {
            return Err(Status::invalid_argument("the command does not belong to this group"));
        }
        let raft = target.cluster.group(group);
        let proposed = match group {
            GroupId::Meta => raft.propose(command).await.map_err(ActorError::from),
            GroupId::Shard(_) => target.namespaces.propose_here(command).await,
        };
        let outcome = match proposed {
            Ok(applied) => {
                let bytes = serde_json::to_vec(&applied).map_err(|e| Status::internal(e.to_string()))?;
                propose_reply::Outcome::Applied(bytes)
            }
            Err(e) if e.is_not_leader() => propose_reply::Outcome::NotLeader(not_leader(raft.leader().map(|l| l.0))),
            // Handed to consensus and then failed: the outcome is unknown, never UNAVAILABLE.
            Err(e @ ActorError::Raft(_)) => return Err(Status::unknown(e.to_string())),
            Err(e) => return Err(Status::internal(e.to_string())),
        };
        Ok(Response::new(ProposeReply { outcome: Some(outcome) }))
    }

    async fn wait_applied(
        &self,
        request: Request<WaitAppliedRequest>,
    ) -> std::result::Result<Response<WaitAppliedReply>, Status> {
        let target = self.target()?;
        let WaitAppliedRequest { group, index, timeout_ms } = request.into_inner();
        let group = group_of(&group, &target.cluster)?;
        // Bounded: a caller cannot hold a server task for long.
        let timeout = std::time::Duration::from_millis(u64::from(timeout_ms).min(10_000));
        let applied = target.cluster.group(group).wait_applied(index, timeout).await.is_ok();
        Ok(Response::new(WaitAppliedReply { applied }))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> std::result::Result<Response<ReadIndexReply>, Status> {
        let target = self.target()?;
        let names = request.into_inner().groups;
        // At most every group of the cluster, each once: a request cannot make this node run
        // more confirmations than it has groups.
        if names.len() > usize::from(target.cluster.shard_count().get()) + 1 {
            return Err(Status::invalid_argument("more groups than the cluster has"));
        }
        let groups = names.iter().map(|name| group_of(name, &target.cluster)).collect::<Result<Vec<_>, _>>()?;
        // Each group's confirmation is shared with the reads waiting on this node (see `read_index`).
        // Each group gets its own deadline, so one stalled group does not hold up the others'
        // reads: its readers are told to retry.
        let confirmations = groups.iter().map(|&group| async move {
            let raft = target.cluster.group(group);
            let outcome = match tokio::time::timeout(CONFIRM_WAIT, raft.read_index()).await {
                Ok(Ok(index)) => group_read_index::Outcome::Index(index),
                Ok(Err(e)) if e.forward_to().is_some() => {
                    group_read_index::Outcome::NotLeader(not_leader(raft.leader().map(|l| l.0)))
                }
                Ok(Err(e)) => group_read_index::Outcome::Failed(e.to_string()),
                Err(_) => group_read_index::Outcome::Failed(format!("{group} not confirmed within {CONFIRM_WAIT:?}")),
            };
            GroupReadIndex { outcome: Some(outcome) }
        });
        let outcomes = futures_util::future::join_all(confirmations).await;
        Ok(Response::new(ReadIndexReply { outcomes }))
    }
}
