//! The cluster's vocabulary: node ids, shards, consensus groups, and the two pure functions that
//! decide where metadata lives.
//!
//! Owns the stable namespace → shard hash ([`ShardCount::shard_of`]) and shard placement
//! ([`place_shard`]). Both are deterministic functions of their inputs only, because every node must
//! compute the same answer without talking to the others, and both are part of the on-disk contract:
//! changing either would move existing namespaces to other shards. The algorithms are written out
//! here (not taken from a hashing crate) so that no dependency upgrade can change them.

use std::fmt;
use std::num::NonZeroU16;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::name::Namespace;

/// The id of a node of the cluster; unique for the cluster's lifetime (never reused after a node
/// leaves, or a stale replica could be mistaken for a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One shard of the metadata space: `0..ShardCount`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u16);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How many shards the metadata space is split into. Fixed when a cluster is created: changing it
/// would move namespaces between shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct ShardCount(NonZeroU16);

impl ShardCount {
    /// The shard count of a cluster created without one: enough groups to spread leaders and
    /// commit pipelines over seven nodes, few enough that an idle node's heartbeats stay cheap.
    pub const DEFAULT: ShardCount = ShardCount(NonZeroU16::new(16).expect("16 is not zero"));

    /// The most shards a cluster may have; each is a Raft group with its own heartbeats and log.
    pub const MAX: u16 = 1024;

    /// Returns the count as a number.
    pub fn get(self) -> u16 {
        self.0.get()
    }

    /// Every shard of the cluster, in order.
    pub fn shards(self) -> impl Iterator<Item = ShardId> {
        (0..self.get()).map(ShardId)
    }

    /// Returns the shard that holds `namespace`: FNV-1a (64-bit) of the namespace's UTF-8 bytes,
    /// modulo the shard count.
    ///
    /// FNV-1a because it is tiny, fully specified (offset basis 0xcbf29ce484222325, prime
    /// 0x100000001b3) and spreads short, similar strings (`users/a`, `users/b`) well. The hash is
    /// part of the on-disk contract: a namespace's records live in its shard's state machine.
    pub fn shard_of(self, namespace: &Namespace) -> ShardId {
        let hash = fnv1a64(namespace.as_str().as_bytes());
        ShardId((hash % u64::from(self.get())) as u16)
    }
}

impl fmt::Display for ShardCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl Default for ShardCount {
    fn default() -> Self {
        ShardCount::DEFAULT
    }
}

impl TryFrom<u16> for ShardCount {
    type Error = CoreError;

    fn try_from(count: u16) -> Result<Self, CoreError> {
        match NonZeroU16::new(count) {
            Some(count) if count.get() <= ShardCount::MAX => Ok(ShardCount(count)),
            _ => Err(CoreError::ClusterInvalid(format!(
                "a cluster has between 1 and {} shards, not {count}",
                ShardCount::MAX
            ))),
        }
    }
}

impl From<ShardCount> for u16 {
    fn from(count: ShardCount) -> u16 {
        count.get()
    }
}

/// A consensus group: the cluster-wide `meta` group or one metadata shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupId {
    /// Cluster-wide data: membership and, later, users and organisations.
    Meta,
    /// One shard of the registry metadata.
    Shard(ShardId),
}

impl GroupId {
    /// Returns the group's stable name, used in storage tree names, metrics and logs
    /// (`meta`, `shard-0007`).
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupId::Meta => f.write_str("meta"),
            GroupId::Shard(shard) => write!(f, "shard-{:04}", shard.0),
        }
    }
}

impl FromStr for GroupId {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        if s == "meta" {
            return Ok(GroupId::Meta);
        }
        s.strip_prefix("shard-")
            .filter(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .map(|n| GroupId::Shard(ShardId(n)))
            .ok_or_else(|| CoreError::ClusterInvalid(format!("{s:?} is not a consensus group name")))
    }
}

/// Returns the nodes that should hold voting replicas of `shard`, best first: the first is the
/// shard's preferred leader.
///
/// Rendezvous (highest-random-weight) hashing: each node scores `fnv1a64(shard ‖ node)` mixed
/// through a 64-bit finaliser, and the `replicas` highest scores win. A node joining or leaving
/// moves only the shards whose winners it changes (about `replicas / nodes` of them), and the
/// preferred leaders spread evenly across nodes.
pub fn place_shard(shard: ShardId, nodes: &[NodeId], replicas: usize) -> Vec<NodeId> {
    let mut scored: Vec<(u64, NodeId)> = nodes
        .iter()
        .map(|&node| {
            let mut key = [0u8; 10];
            key[..2].copy_from_slice(&shard.0.to_be_bytes());
            key[2..].copy_from_slice(&node.0.to_be_bytes());
            (mix64(fnv1a64(&key)), node)
        })
        .collect();
    // Highest score first; the node id breaks (astronomically unlikely) ties deterministically.
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.dedup_by_key(|(_, node)| *node);
    scored.into_iter().take(replicas).map(|(_, node)| node).collect()
}

/// FNV-1a, 64-bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The splitmix64 finaliser: FNV's low bits correlate for keys that differ in one byte, which
/// would make rendezvous scores of neighbouring shards agree; mixing decorrelates them.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ns(s: &str) -> Namespace {
        format!("{s}/repo").parse::<crate::RepoName>().expect("valid repo").namespace()
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_shard_of_a_namespace_is_stable() {
        // Pinned values: a change here moves stored namespaces to other shards.
        let count = ShardCount::DEFAULT;
        let got: Vec<u16> = ["library", "users/krishna", "orgs/gati-official", "acme"]
            .iter()
            .map(|n| count.shard_of(&ns(n)).0)
            .collect();
        assert_eq!(got, [0, 6, 2, 15]);
    }

    #[test]
    fn namespaces_spread_over_shards() {
        let count = ShardCount::DEFAULT;
        let mut per_shard = BTreeMap::new();
        for i in 0..1600 {
            *per_shard.entry(count.shard_of(&ns(&format!("users/u{i}")))).or_insert(0) += 1;
        }
        assert_eq!(per_shard.len(), 16);
        assert!(per_shard.values().all(|&n| (50..=150).contains(&n)), "{per_shard:?}");
    }

    #[test]
    fn shard_counts_are_bounded() {
        assert!(ShardCount::try_from(0).is_err());
        assert!(ShardCount::try_from(ShardCount::MAX + 1).is_err());
        assert_eq!(ShardCount::try_from(1).map(ShardCount::get).ok(), Some(1));
        assert_eq!(ShardCount::DEFAULT.shards().count(), 16);
    }

    #[test]
    fn group_names_round_trip() {
        for group in [GroupId::Meta, GroupId::Shard(ShardId(0)), GroupId::Shard(ShardId(1023))] {
            assert_eq!(group.name().parse::<GroupId>().ok(), Some(group));
        }
        assert_eq!(GroupId::Shard(ShardId(7)).name(), "shard-0007");
        for bad in ["", "shard-", "shard-7", "shard-00007", "shard-abcd", "Meta", "shard--001"] {
            assert!(bad.parse::<GroupId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn placement_picks_distinct_nodes_and_all_when_fewer() {
        let nodes: Vec<NodeId> = (1..=5).map(NodeId).collect();
        for shard in ShardCount::DEFAULT.shards() {
            let placed = place_shard(shard, &nodes, 3);
            assert_eq!(placed.len(), 3);
            let mut unique = placed.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 3);
            assert_eq!(place_shard(shard, &nodes[..2], 3).len(), 2);
        }
    }

    #[test]
    fn placement_moves_few_shards_when_a_node_joins() {
        let three: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let four: Vec<NodeId> = (1..=4).map(NodeId).collect();
        let count = ShardCount::try_from(64).expect("valid count");
        let mut moved = 0;
        for shard in count.shards() {
            let before = place_shard(shard, &three, 3);
            let after = place_shard(shard, &four, 3);
            // Only the new node can enter a replica set; the others keep their places.
            let entered: Vec<_> = after.iter().filter(|n| !before.contains(n)).collect();
            assert!(entered.iter().all(|n| **n == NodeId(4)), "{before:?} -> {after:?}");
            moved += entered.len();
        }
        // Node 4 enters about 3/4 of the replica sets (3 of 4 nodes hold each shard).
        assert!((32..=60).contains(&moved), "{moved} of 64 shards moved a replica");
    }

    #[test]
    fn preferred_leaders_spread_over_nodes() {
        let nodes: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let mut leads = BTreeMap::new();
        for shard in ShardCount::DEFAULT.shards() {
            *leads.entry(place_shard(shard, &nodes, 3)[0]).or_insert(0) += 1;
        }
        assert_eq!(leads.len(), 3, "{leads:?}");
        assert!(leads.values().all(|&n| n >= 2), "{leads:?}");
    }
}
