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

use std::collections::BTreeSet;
use std::time::Duration;

use gati_core::{NodeId, ShardId, place_shard};

use super::Cluster;
use crate::raft::RaftError;

/// How often each node checks the shards it leads.
const ROUND: Duration = Duration::from_millis(500);

/// A learner within this many entries of the leader counts as caught up and may become a voter.
const CATCH_UP_SLACK: u64 = 100;

/// Runs until the node stops, reconciling every shard this node leads each round.
pub async fn run(cluster: Cluster, replicas: usize) {
    let mut every = tokio::time::interval(ROUND);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        for shard in cluster.shard_count().shards() {
            if !cluster.raft(shard).is_leader() {
                continue;
            }
            if let Err(error) = reconcile(&cluster, shard, replicas).await {
                // Typically a change still in progress or a lost leadership; next round retries.
                tracing::debug!(%shard, %error, "shard membership change deferred");
            }
        }
    }
}

/// Makes at most one membership change towards the desired placement of `shard`.
async fn reconcile(cluster: &Cluster, shard: ShardId, replicas: usize) -> Result<(), RaftError> {
    let raft = cluster.raft(shard);
    let cluster_members = cluster.members();
    let mut everyone = cluster_members.voters;
    everyone.extend(cluster_members.learners);
    if everyone.is_empty() {
        // The meta replica has not applied the cluster's membership yet.
        return Ok(());
    }
    let ids: Vec<NodeId> = everyone.keys().copied().collect();
    let desired: BTreeSet<NodeId> = place_shard(shard, &ids, replicas).into_iter().collect();
    let current = raft.members();

    if let Some((node, addr)) =
        everyone.iter().find(|(id, _)| !current.voters.contains_key(id) && !current.learners.contains_key(id))
    {
        tracing::info!(%shard, node = node.0, "adding shard replica");
        return raft.add_learner(*node, addr, false).await;
    }
    let voters: BTreeSet<NodeId> = current.voters.keys().copied().collect();
    if voters != desired {
        if desired.iter().all(|node| raft.caught_up(*node, CATCH_UP_SLACK)) {
            tracing::info!(%shard, ?voters, ?desired, "moving shard voters");
            return raft.set_voters(desired, true).await;
        }
        return Ok(());
    }
    let gone: BTreeSet<NodeId> = current.learners.keys().filter(|id| !everyone.contains_key(id)).copied().collect();
    if !gone.is_empty() {
        tracing::info!(%shard, ?gone, "removing replicas of nodes that left");
        return raft.remove_learners(gone).await;
    }
    Ok(())
}
