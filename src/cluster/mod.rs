//! This node's place in the cluster: its consensus groups, which shard a namespace lives in, and
//! how reads and writes reach the replica that can serve them.
//!
//! Owns [`Cluster`]: the `meta` group and one Raft group per metadata shard, each with its local
//! state-machine replica. Every node replicates every shard (as a voter on the `replicas` nodes
//! placement picks, as a non-voting learner elsewhere), so content by digest is always served
//! from the local replica with no consensus round, and a linearizable tag read costs one read-index
//! round trip to the shard's leader. Writes are routed by the namespace directory
//! (`crate::actors::namespace`), which forwards them over gRPC (`forward`) when this node does not
//! lead the shard.
//!
//! May call `crate::raft`, `gati-meta` reads and `gati-proto`; must not call HTTP or the blob store.

pub mod admin;
pub mod error;
pub mod forward;
mod leader_reads;
pub mod reconcile;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gati_core::identity::IdentityCommand;
use gati_core::{Applied, Command, GroupId, Namespace, NodeId, RepoName, ShardCount, ShardId, place_shard};
use gati_meta::{MetaStore, StateMachine};

pub use error::{ClusterError, Result};

use crate::raft::{Bootstrap, Members, RaftError, RaftNode, RaftShared};
use leader_reads::LeaderReads;

/// How long a read or write waits for a shard to have a reachable leader before it fails as
/// unavailable: a few election timeouts, so a failover is ridden out but a lost quorum is not
/// waited on forever.
pub const LEADER_DEADLINE: Duration = Duration::from_secs(10);

/// How a node takes part: alone, or as a member of a cluster.
#[derive(Clone, Debug)]
pub enum Membership {
    /// The embedded single-node registry: every group has this node as its only member.
    Solo,
    /// A founding member of a cluster created with `members` (node id to gRPC address).
    Founder {
        /// The founding members, this node included.
        members: BTreeMap<NodeId, String>,
        /// Voting replicas per shard.
        replicas: usize,
    },
    /// A node joining a running cluster (or restarting after it joined): it creates no group and
    /// waits for the groups' leaders to add it once it has asked to join.
    Joiner,
}

/// One group (a shard, or `meta`) as this node holds it.
struct Group {
    raft: RaftNode,
    state: StateMachine,
}

/// Handle to this node's groups; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: NodeId,
    shard_count: ShardCount,
    meta: Group,
    shards: Vec<Group>,
    transport: RaftShared,
    /// Follower reads' requests for leaders' read indexes, batched per leader node.
    leader_reads: LeaderReads,
    /// The harness's planted bug (`debug.planted_bug = "stale-tag-reads"`): when set,
    /// [`Cluster::linearizable`] returns at once. Only debug builds accept the setting.
    stale_tag_reads: std::sync::atomic::AtomicBool,
}

impl Cluster {
    /// Starts this node's member of the `meta` group and of every shard over `store`.
    ///
    /// Founders create each group if it does not exist yet: the lowest founder id initialises
    /// `meta`, and each shard's preferred leader (see [`place_shard`]) initialises that shard
    /// with its placed voters, so first leaders spread over the nodes. Others wait to be
    /// contacted. Non-voting replicas are added later by the shard leaders.
    pub async fn start(
        node_id: NodeId,
        shard_count: ShardCount,
        store: &MetaStore,
        transport: RaftShared,
        membership: Membership,
    ) -> Result<Cluster> {
        let start_group = |group: GroupId, bootstrap: Bootstrap| {
            let transport = transport.clone();
            async move {
                let state = store.state_machine(group).map_err(RaftError::Storage)?;
                let raft = RaftNode::start(group, node_id, store, state.clone(), &transport, bootstrap).await?;
                Ok::<_, ClusterError>((raft, state))
            }
        };
        let meta_bootstrap = match &membership {
            Membership::Solo => Bootstrap::Solo,
            Membership::Founder { members, .. } if members.keys().next() == Some(&node_id) => {
                Bootstrap::Voters(members.clone())
            }
            Membership::Founder { .. } | Membership::Joiner => Bootstrap::Join,
        };
        let (raft, state) = start_group(GroupId::Meta, meta_bootstrap).await?;
        let meta = Group { raft, state };
        let mut shards = Vec::with_capacity(usize::from(shard_count.get()));
        for shard in shard_count.shards() {
            let bootstrap = match &membership {
                Membership::Solo => Bootstrap::Solo,
                Membership::Joiner => Bootstrap::Join,
                Membership::Founder { members, replicas } => {
                    let ids: Vec<NodeId> = members.keys().copied().collect();
                    let voters = place_shard(shard, &ids, *replicas);
                    if voters.first() == Some(&node_id) {
                        Bootstrap::Voters(voters.iter().map(|id| (*id, members[id].clone())).collect())
                    } else {
                        Bootstrap::Join
                    }
                }
            };
            match start_group(GroupId::Shard(shard), bootstrap).await {
                Ok((raft, state)) => shards.push(Group { raft, state }),
                Err(error) => {
                    for started in &shards {
                        started.raft.shutdown().await;
                    }
                    meta.raft.shutdown().await;
                    return Err(error);
                }
            }
        }
        Ok(Cluster {
            inner: Arc::new(Inner {
                node_id,
                shard_count,
                meta,
                shards,
                leader_reads: LeaderReads::start(transport.peers.clone()),
                transport,
                stale_tag_reads: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Returns this node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Returns the number of shards.
    pub fn shard_count(&self) -> ShardCount {
        self.inner.shard_count
    }

    /// Returns the shard holding `namespace`.
    pub fn shard_of(&self, namespace: &Namespace) -> ShardId {
        self.inner.shard_count.shard_of(namespace)
    }

    /// Returns the shard holding `repo`'s records.
    pub fn shard_of_repo(&self, repo: &RepoName) -> ShardId {
        self.shard_of(&repo.namespace())
    }

    fn shard(&self, shard: ShardId) -> &Group {
        // Every `ShardId` in this process comes from `shard_of` or `shards()` of this count.
        &self.inner.shards[usize::from(shard.0)]
    }

    /// Returns the local replica of `shard`'s state machine.
    pub fn state(&self, shard: ShardId) -> &StateMachine {
        &self.shard(shard).state
    }

    /// Returns the local replica of the state machine holding `repo`'s records.
    pub fn state_of(&self, repo: &RepoName) -> &StateMachine {
        self.state(self.shard_of_repo(repo))
    }

    /// Returns every shard's local state machine, in shard order.
    pub fn states(&self) -> impl Iterator<Item = &StateMachine> {
        self.inner.shards.iter().map(|s| &s.state)
    }

    /// Returns this node's member of `shard`'s group.
    pub fn raft(&self, shard: ShardId) -> &RaftNode {
        &self.shard(shard).raft
    }

    /// Returns this node's member of the `meta` group.
    pub fn meta(&self) -> &RaftNode {
        &self.inner.meta.raft
    }

    /// Returns the local replica of the `meta` group's state: identity and access records.
    pub fn meta_state(&self) -> &StateMachine {
        &self.inner.meta.state
    }

    /// Returns this node's member of `group`.
    pub fn group(&self, group: GroupId) -> &RaftNode {
        match group {
            GroupId::Meta => self.meta(),
            GroupId::Shard(shard) => self.raft(shard),
        }
    }

    /// Returns every group this node runs, `meta` first.
    pub fn groups(&self) -> impl Iterator<Item = &RaftNode> {
        std::iter::once(&self.inner.meta.raft).chain(self.inner.shards.iter().map(|s| &s.raft))
    }

    /// Returns the transport shared by this node's groups.
    pub fn transport(&self) -> &RaftShared {
        &self.inner.transport
    }

    /// Returns the cluster's members as the `meta` group knows them.
    pub fn members(&self) -> Members {
        self.inner.meta.raft.members()
    }

    /// Returns once reads of `shard`'s local replica are linearizable: this replica has applied
    /// everything the shard's leader had committed when the call was made (the leader's read
    /// index, confirmed by its lease or a quorum round). On the leader this is usually free; on
    /// any other node it is a share of one gRPC round trip to the leader plus, rarely, a wait for
    /// apply.
    pub async fn linearizable(&self, shard: ShardId) -> Result<()> {
        if self.inner.stale_tag_reads.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        linearizable(self.shard(shard), &self.inner.leader_reads).await
    }

    /// Returns once reads of the local `meta` replica are linearizable, as
    /// [`Cluster::linearizable`] does for a shard.
    pub async fn linearizable_meta(&self) -> Result<()> {
        linearizable(&self.inner.meta, &self.inner.leader_reads).await
    }

    /// Proposes an identity write to the `meta` group and waits until it is applied or refused,
    /// wherever the group's leader is. Rides out elections for up to [`LEADER_DEADLINE`]; a
    /// forwarded write whose answer is lost fails as indeterminate rather than being sent twice.
    pub async fn propose_meta(&self, command: IdentityCommand) -> Result<Applied> {
        let command = Command::Identity(command);
        let raft = self.meta();
        let deadline = Instant::now() + LEADER_DEADLINE;
        let mut backoff = Backoff::new();
        loop {
            let why = if raft.is_leader() {
                match raft.propose(command.clone()).await {
                    Err(e) if e.forward_to().is_some() => "leadership moved".to_owned(),
                    other => return other.map_err(Into::into),
                }
            } else if let Some((leader, addr)) = raft.leader().filter(|(l, _)| *l != self.node_id()) {
                match forward::propose(&self.transport().peers, &addr, leader.0, GroupId::Meta, &command).await {
                    Ok(forward::Proposed::Applied(applied)) => return Ok(applied),
                    Ok(forward::Proposed::NotLeader) => format!("node {leader} no longer leads"),
                    Err(forward::ForwardError::NotSent { addr, why }) => format!("leader {leader} at {addr}: {why}"),
                    Err(forward::ForwardError::Failed(e)) => return Err(e),
                }
            } else {
                "no leader elected".to_owned()
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::NoLeader { group: GroupId::Meta, why });
            }
            backoff.wait().await;
        }
    }

    /// Returns once every member of the cluster has applied the `meta` group's log as far as
    /// this node has after a linearizable read, or `timeout` passed; returns the members that
    /// did not confirm (down, partitioned, or too far behind). After a write, this makes it hold
    /// on every reachable node before the write is acknowledged.
    pub async fn settle_meta(&self, timeout: Duration) -> Result<Vec<NodeId>> {
        self.linearizable_meta().await?;
        let index = self.meta().metrics().last_applied.map_or(0, |id| id.index);
        let members = self.members();
        let others: Vec<(NodeId, String)> =
            members.voters.into_iter().chain(members.learners).filter(|(id, _)| *id != self.node_id()).collect();
        let peers = &self.transport().peers;
        let waits = others.iter().map(|(id, addr)| async move {
            let confirmed = forward::wait_applied(peers, addr, GroupId::Meta, index, timeout).await;
            (*id, matches!(confirmed, Ok(true)))
        });
        let outcomes = futures_util::future::join_all(waits).await;
        Ok(outcomes.into_iter().filter(|(_, confirmed)| !confirmed).map(|(id, _)| id).collect())
    }

    /// Plants the harness's stale-read bug (see `crate::config::PlantedBug`); debug builds only.
    pub fn plant_stale_tag_reads(&self) {
        self.inner.stale_tag_reads.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Returns whether every group this node runs knows a leader: the node can route reads and
    /// writes for every namespace.
    pub fn ready(&self) -> bool {
        self.groups().all(|g| g.leader().is_some())
    }

    /// Stops every group and flushes the store.
    pub async fn shutdown(&self) {
        for shard in &self.inner.shards {
            shard.raft.shutdown().await;
        }
        self.inner.meta.raft.shutdown().await;
    }
}

/// Returns once reads of `group`'s local replica are linearizable: on its leader through
/// [`RaftNode::ensure_linearizable`], elsewhere by waiting to apply the leader's read index.
async fn linearizable(group: &Group, leader_reads: &LeaderReads) -> Result<()> {
    {
        let raft = &group.raft;
        let deadline = Instant::now() + LEADER_DEADLINE;
        let mut backoff = Backoff::new();
        loop {
            let why = if raft.is_leader() {
                match raft.ensure_linearizable().await {
                    Ok(()) => return Ok(()),
                    Err(e) if e.forward_to().is_some() => "leadership moved".to_owned(),
                    Err(RaftError::QuorumNotEnough(q)) => q.to_string(),
                    Err(e) => return Err(e.into()),
                }
            } else {
                match raft.leader() {
                    None => "no leader elected".to_owned(),
                    Some((leader, _)) if leader == raft.node_id() => "leadership moved here".to_owned(),
                    Some((leader, addr)) => {
                        // Bounded by the read's own deadline, however long the call it joins takes.
                        let remaining = deadline.saturating_duration_since(Instant::now());
                        match tokio::time::timeout(remaining, leader_reads.read_index(raft.group(), addr)).await {
                            Ok(Some(forward::ReadIndex::Index(index))) => {
                                let remaining = deadline.saturating_duration_since(Instant::now());
                                return raft.wait_applied(index, remaining).await.map_err(Into::into);
                            }
                            Ok(Some(forward::ReadIndex::NotLeader)) => format!("node {leader} no longer leads"),
                            Ok(Some(forward::ReadIndex::Failed(why))) => why,
                            Ok(None) => return Err(RaftError::stopped().into()),
                            Err(_) => format!("node {leader} did not answer in time"),
                        }
                    }
                }
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::NoLeader { group: raft.group(), why });
            }
            backoff.wait().await;
        }
    }
}

/// Exponential backoff between attempts to reach a leader: starts short, because the common
/// case is a leader elected a moment ago, and caps low, because callers hold a request open.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: Duration::from_millis(10) }
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_millis(200));
    }
}
