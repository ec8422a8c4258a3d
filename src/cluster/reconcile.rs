//! Shard placement, enforced: each shard leader keeps its group's membership equal to what
//! [`place_shard`] says for the current cluster members.
//!
//! Owns the reconcile loop. Desired state for a shard: voters = the `replicas` nodes placement
//! picks from the members of the `meta` group; every other member follows as a learner; nodes that
//! left the cluster are removed. The loop makes one membership change per shard per round, in an
//! order that never lowers the number of up-to-date replicas: add missing members as learners
//! first, swap voters only once every incoming voter has caught up (a removed voter stays on as a
//! learner), and only then drop members that left. Each change is a Raft joint-consensus change,
//! so the shard serves reads and writes throughout (no downtime while a node joins or leaves).
//!
//! Leadership is placed too: the first node of a shard's placement is its preferred leader, which
//! spreads leaders evenly over the nodes. After a failover the new leader, once its placement is
//! in order, it has led for [`SETTLED`] and the preferred leader has kept up with the log for as
//! long, hands the shard back (`RaftNode::hand_over`), so a node that restarts gets its share of
//! the write load back. A transfer that does not happen is retried after [`RETRY_AFTER`].

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use gati_core::{NodeId, ShardId, place_shard};

use super::Cluster;
use crate::raft::RaftError;

/// How often each node checks the shards it leads.
const ROUND: Duration = Duration::from_millis(500);

/// A learner within this many entries of the leader counts as caught up and may become a voter.
const CATCH_UP_SLACK: u64 = 100;

/// How long a node leads a shard, in one term, and how long the preferred leader must have kept up
/// with the log, before the shard is handed over. Longer than openraft's `leader_lease` (1 s),
/// which a transfer needs (see `RaftNode::hand_over`), and long enough that a preferred node that
/// just restarted has settled. Keeping up is judged from replication, which is what the leader
/// sees; a target still applying a backlog serves its first reads a moment later.
const SETTLED: Duration = Duration::from_secs(5);

/// How long a shard waits after a transfer that did not happen before trying again: each attempt
/// holds the shard's writes back for a moment.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// What the loop remembers of a shard this node leads.
struct Leading {
    /// The term this node leads in, and since when it has seen itself lead in it.
    term: u64,
    since: Instant,
    /// Since when the preferred leader has been caught up, without a break.
    target_ready: Option<(NodeId, Instant)>,
    /// No transfer before this.
    not_before: Option<Instant>,
}

/// Runs until the node stops, reconciling every shard this node leads each round.
pub async fn run(cluster: Cluster, replicas: usize) {
    let mut every = tokio::time::interval(ROUND);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading: HashMap<ShardId, Leading> = HashMap::new();
    loop {
        every.tick().await;
        for shard in cluster.shard_count().shards() {
            let raft = cluster.raft(shard);
            if !raft.is_leader() {
                leading.remove(&shard);
                continue;
            }
            let term = raft.term();
            let now = Instant::now();
            let state =
                leading.entry(shard).or_insert(Leading { term, since: now, target_ready: None, not_before: None });
            if state.term != term {
                *state = Leading { term, since: now, target_ready: None, not_before: None };
            }
            let preferred = match reconcile(&cluster, shard, replicas).await {
                Ok(Placement::Settled { preferred }) => preferred,
                Ok(_) => {
                    state.target_ready = None;
                    continue;
                }
                // Typically a change still in progress or a lost leadership; next round retries.
                Err(error) => {
                    tracing::debug!(%shard, %error, "shard membership change deferred");
                    continue;
                }
            };
            let ready_since = match state.target_ready {
                Some((node, since)) if node == preferred => since,
                _ => {
                    state.target_ready = Some((preferred, now));
                    now
                }
            };
            let due = state.since.elapsed() >= SETTLED
                && ready_since.elapsed() >= SETTLED
                && state.not_before.is_none_or(|at| now >= at);
            if !due {
                continue;
            }
            match raft.hand_over(preferred).await {
                Ok(true) => {}
                Ok(false) => state.not_before = Some(Instant::now() + RETRY_AFTER),
                Err(error) => {
                    tracing::debug!(%shard, %error, "leadership transfer failed");
                    state.not_before = Some(Instant::now() + RETRY_AFTER);
                }
            }
        }
    }
}

/// Where a shard's placement stands after a reconcile step.
enum Placement {
    /// A change was made or is waiting for a replica to catch up.
    Moving,
    /// Membership is as placed; `preferred`, a caught-up voter other than this node, should lead.
    Settled { preferred: NodeId },
    /// Membership is as placed and this node is the preferred leader (or none is caught up).
    Done,
}

/// Makes at most one membership change towards the desired placement of `shard`.
async fn reconcile(cluster: &Cluster, shard: ShardId, replicas: usize) -> Result<Placement, RaftError> {
    let raft = cluster.raft(shard);
    let cluster_members = cluster.members();
    let mut everyone = cluster_members.voters;
    everyone.extend(cluster_members.learners);
    if everyone.is_empty() {
        // The meta replica has not applied the cluster's membership yet.
        return Ok(Placement::Moving);
    }
    let ids: Vec<NodeId> = everyone.keys().copied().collect();
    let placed = place_shard(shard, &ids, replicas);
    let desired: BTreeSet<NodeId> = placed.iter().copied().collect();
    let current = raft.members();

    if let Some((node, addr)) =
        everyone.iter().find(|(id, _)| !current.voters.contains_key(id) && !current.learners.contains_key(id))
    {
        tracing::info!(%shard, node = node.0, "adding shard replica");
        return raft.add_learner(*node, addr, false).await.map(|()| Placement::Moving);
    }
    let voters: BTreeSet<NodeId> = current.voters.keys().copied().collect();
    if voters != desired {
        if desired.iter().all(|node| raft.caught_up(*node, CATCH_UP_SLACK)) {
            tracing::info!(%shard, ?voters, ?desired, "moving shard voters");
            return raft.set_voters(desired, true).await.map(|()| Placement::Moving);
        }
        return Ok(Placement::Moving);
    }
    let gone: BTreeSet<NodeId> = current.learners.keys().filter(|id| !everyone.contains_key(id)).copied().collect();
    if !gone.is_empty() {
        tracing::info!(%shard, ?gone, "removing replicas of nodes that left");
        return raft.remove_learners(gone).await.map(|()| Placement::Moving);
    }
    match placed.first() {
        Some(&preferred) if preferred != raft.node_id() && raft.caught_up(preferred, 0) => {
            Ok(Placement::Settled { preferred })
        }
        _ => Ok(Placement::Done),
    }
}
