//! What this node knows about each of its consensus groups: for `GET /cluster/status`,
//! `gati-registry cluster status` and the per-group Prometheus gauges.
//!
//! Owns [`GroupStatus`] / [`NodeStatus`] (the JSON shape, stable for scripts) and the task that
//! publishes the gauges. Reads openraft metrics only; changes nothing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Cluster;
use crate::raft::RaftNode;

/// One group as seen from this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The group's name (`meta`, `shard-0007`).
    pub group: String,
    /// This node's role: `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The index of this node's last log entry.
    pub last_log_index: u64,
    /// The index of the last entry applied to this node's state machine (committed entries are
    /// applied as they commit, so on the leader this is the commit point).
    pub applied_index: u64,
    /// The index the latest snapshot covers.
    pub snapshot_index: u64,
    /// The index through which the log was compacted away (covered by the snapshot).
    pub purged_index: u64,
    /// Voting members.
    pub voters: Vec<u64>,
    /// Non-voting members.
    pub learners: Vec<u64>,
    /// On the leader: how many entries the furthest-behind member lags (0 when all caught up).
    pub replication_lag: Option<u64>,
}

/// Every group of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node answering.
    pub node_id: u64,
    /// Its groups, `meta` first, then shards in order.
    pub groups: Vec<GroupStatus>,
}

fn group_status(raft: &RaftNode) -> GroupStatus {
    let m = raft.metrics();
    let members = raft.members();
    let is_learner = members.learners.contains_key(&raft.node_id());
    let role = match m.state {
        openraft::ServerState::Leader => "leader",
        openraft::ServerState::Candidate => "candidate",
        _ if is_learner => "learner",
        _ => "follower",
    };
    let last_log_index = m.last_log_index.unwrap_or(0);
    let replication_lag = m.replication.as_ref().map(|replication| {
        replication
            .values()
            .map(|matched| last_log_index.saturating_sub(matched.map_or(0, |id| id.index)))
            .max()
            .unwrap_or(0)
    });
    GroupStatus {
        group: raft.group().name(),
        role: role.to_owned(),
        leader: m.current_leader,
        term: m.current_term,
        last_log_index,
        applied_index: m.last_applied.map_or(0, |id| id.index),
        snapshot_index: m.snapshot.map_or(0, |id| id.index),
        purged_index: m.purged.map_or(0, |id| id.index),
        voters: members.voters.keys().map(|n| n.0).collect(),
        learners: members.learners.keys().map(|n| n.0).collect(),
        replication_lag,
    }
}

impl Cluster {
    /// Returns the status of every group this node runs.
    pub fn status(&self) -> NodeStatus {
        NodeStatus { node_id: self.node_id().0, groups: self.groups().map(group_status).collect() }
    }
}

/// Renders a node's status as a fixed-width table, one group per line, for `cluster status`.
pub fn render_table(status: &NodeStatus) -> String {
    let ids = |ids: &[u64]| {
        if ids.is_empty() { "-".to_owned() } else { ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",") }
    };
    let mut out = format!("node {}\n", status.node_id);
    out.push_str(&format!(
        "{:<12} {:<10} {:>6} {:>6} {:>9} {:>9} {:>9} {:<14} {:<14} {:>5}\n",
        "GROUP", "ROLE", "LEADER", "TERM", "LAST_LOG", "APPLIED", "SNAPSHOT", "VOTERS", "LEARNERS", "LAG"
    ));
    for g in &status.groups {
        out.push_str(&format!(
            "{:<12} {:<10} {:>6} {:>6} {:>9} {:>9} {:>9} {:<14} {:<14} {:>5}\n",
            g.group,
            g.role,
            g.leader.map_or("-".to_owned(), |l| l.to_string()),
            g.term,
            g.last_log_index,
            g.applied_index,
            g.snapshot_index,
            ids(&g.voters),
            ids(&g.learners),
            g.replication_lag.map_or("-".to_owned(), |l| l.to_string()),
        ));
    }
    out
}

/// Publishes each group's status as Prometheus gauges once a second, until the node stops.
pub async fn publish_gauges(cluster: Cluster) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        for status in cluster.status().groups {
            let group = status.group;
            let leads = status.role == "leader";
            metrics::gauge!("gati_raft_is_leader", "group" => group.clone()).set(if leads { 1.0 } else { 0.0 });
            metrics::gauge!("gati_raft_leader", "group" => group.clone()).set(status.leader.map_or(0.0, |l| l as f64));
            metrics::gauge!("gati_raft_term", "group" => group.clone()).set(status.term as f64);
            metrics::gauge!("gati_raft_last_log_index", "group" => group.clone()).set(status.last_log_index as f64);
            metrics::gauge!("gati_raft_applied_index", "group" => group.clone()).set(status.applied_index as f64);
            metrics::gauge!("gati_raft_replication_lag", "group" => group)
                .set(status.replication_lag.map_or(0.0, |l| l as f64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_one_aligned_line_per_group() {
        let group = |name: &str, role: &str, lag| GroupStatus {
            group: name.into(),
            role: role.into(),
            leader: Some(2),
            term: 3,
            last_log_index: 120,
            applied_index: 119,
            snapshot_index: 0,
            purged_index: 0,
            voters: vec![1, 2, 3],
            learners: vec![],
            replication_lag: lag,
        };
        let status = NodeStatus {
            node_id: 2,
            groups: vec![group("meta", "leader", Some(4)), group("shard-0000", "follower", None)],
        };
        let table = render_table(&status);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "node 2");
        assert!(lines[1].starts_with("GROUP"));
        assert!(lines[2].starts_with("meta         leader"), "{}", lines[2]);
        assert!(lines[2].contains("1,2,3") && lines[2].trim_end().ends_with('4'), "{}", lines[2]);
        assert!(lines[3].trim_end().ends_with('-'), "{}", lines[3]);
        assert_eq!(lines[2].len(), lines[3].len(), "columns align");
    }
}
