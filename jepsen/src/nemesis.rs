//! Nemeses: the faults injected into the cluster while the clients run, scheduled from the run's
//! seed so that a seed replays the same faults against the same nodes at the same moments.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::JepsenError;
use crate::cluster::Cluster;
use crate::rng::Rng;

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisKind {
    /// No faults: the baseline.
    None,
    /// A random majority cut off from the minority.
    PartitionMajority,
    /// Two halves that cannot talk, and one node that talks to both.
    PartitionBridge,
    /// The nodes split into two random groups.
    PartitionHalves,
    /// The leader of the workloads' shard cut off from every other node.
    IsolateLeader,
    /// `kill -9` of one or two nodes, restarted when the fault ends.
    Kill,
    /// `SIGSTOP` of one or two nodes, `SIGCONT` when the fault ends.
    Pause,
    /// A node removed from the cluster, then a fresh node added in its place.
    Membership,
    /// One or two of the above at once, chosen at random each time.
    Mixed,
}

impl NemesisKind {
    /// Every nemesis that injects faults, in the order a suite runs them.
    pub const ALL: [NemesisKind; 8] = [
        NemesisKind::PartitionMajority,
        NemesisKind::PartitionBridge,
        NemesisKind::PartitionHalves,
        NemesisKind::IsolateLeader,
        NemesisKind::Kill,
        NemesisKind::Pause,
        NemesisKind::Membership,
        NemesisKind::Mixed,
    ];

    /// The command-line and report name.
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Option<NemesisKind> {
        serde_json::from_value(serde_json::Value::from(name)).ok()
    }

    /// Whether it cuts network links (needs network namespaces).
    pub fn needs_partitions(self) -> bool {
        matches!(
            self,
            NemesisKind::PartitionMajority
                | NemesisKind::PartitionBridge
                | NemesisKind::PartitionHalves
                | NemesisKind::IsolateLeader
                | NemesisKind::Mixed
        )
    }
}

/// How to undo an injected fault.
#[derive(Debug)]
enum Undo {
    Heal,
    Restart(Vec<usize>),
    Resume(Vec<usize>),
    FinishRemoval(usize),
    AddBack(usize),
}

/// A fault in force.
#[derive(Debug)]
pub struct Fault {
    /// What was done, for the report.
    pub description: String,
    undo: Vec<Undo>,
}

/// One fault window of a run, for the report (times in ns since the run started).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Window {
    /// When the fault started.
    pub start_ns: u64,
    /// When it was undone.
    pub end_ns: u64,
    /// What it was.
    pub description: String,
}

/// The schedule's timing: quiet gaps and fault durations are drawn from these ranges.
pub const QUIET: (Duration, Duration) = (Duration::from_millis(1_000), Duration::from_millis(3_000));
/// See [`QUIET`].
pub const FAULT: (Duration, Duration) = (Duration::from_millis(2_000), Duration::from_millis(6_000));

/// A duration drawn uniformly from `range`.
pub fn draw(rng: &mut Rng, range: (Duration, Duration)) -> Duration {
    let span = range.1.saturating_sub(range.0).as_millis() as u64;
    range.0 + Duration::from_millis(rng.below(span + 1))
}

fn set(nodes: &[usize]) -> BTreeSet<usize> {
    nodes.iter().copied().collect()
}

fn names(nodes: &[usize]) -> String {
    nodes.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(",")
}

/// Splits `nodes` (shuffled) into the first `k` and the rest.
fn split(rng: &mut Rng, nodes: &[usize], k: usize) -> (Vec<usize>, Vec<usize>) {
    let mut all = nodes.to_vec();
    rng.shuffle(&mut all);
    let rest = all.split_off(k.min(all.len()));
    let (mut a, mut b) = (all, rest);
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

/// Injects one fault of `kind` (for `Mixed`, one or two random kinds) and returns how to undo it,
/// or `None` when the cluster's current state does not allow it (e.g. no leader known).
/// `leader` finds the slot leading the workloads' shard.
pub fn inject(
    kind: NemesisKind,
    cluster: &mut Cluster,
    rng: &mut Rng,
    leader: &dyn Fn(&Cluster) -> Option<usize>,
) -> Result<Option<Fault>, JepsenError> {
    let nodes = cluster.members();
    let fault = match kind {
        NemesisKind::None => None,
        NemesisKind::PartitionMajority => {
            let (minority, majority) = split(rng, &nodes, (nodes.len() - 1) / 2);
            cluster.net().cut(&set(&minority), &set(&majority))?;
            Some(Fault {
                description: format!("partition majority {} | {}", names(&majority), names(&minority)),
                undo: vec![Undo::Heal],
            })
        }
        NemesisKind::PartitionBridge => {
            let (bridge, rest) = split(rng, &nodes, 1);
            let (a, b) = split(rng, &rest, rest.len() / 2);
            cluster.net().cut(&set(&a), &set(&b))?;
            Some(Fault {
                description: format!("bridge {} | {} | {}", names(&a), names(&bridge), names(&b)),
                undo: vec![Undo::Heal],
            })
        }
        NemesisKind::PartitionHalves => {
            let k = 1 + rng.below(nodes.len() as u64 - 1) as usize;
            let (a, b) = split(rng, &nodes, k);
            cluster.net().cut(&set(&a), &set(&b))?;
            Some(Fault { description: format!("partition {} | {}", names(&a), names(&b)), undo: vec![Undo::Heal] })
        }
        NemesisKind::IsolateLeader => match leader(cluster) {
            None => None,
            Some(l) => {
                let rest: Vec<usize> = nodes.iter().copied().filter(|&n| n != l).collect();
                cluster.net().cut(&set(&[l]), &set(&rest))?;
                Some(Fault { description: format!("isolate leader n{l}"), undo: vec![Undo::Heal] })
            }
        },
        NemesisKind::Kill => {
            let count = 1 + rng.below(2) as usize;
            let (victims, _) = split(rng, &cluster.up(), count);
            for &v in &victims {
                cluster.kill(v);
            }
            Some(Fault { description: format!("kill -9 {}", names(&victims)), undo: vec![Undo::Restart(victims)] })
        }
        NemesisKind::Pause => {
            let count = 1 + rng.below(2) as usize;
            let (victims, _) = split(rng, &cluster.up(), count);
            for &v in &victims {
                cluster.pause(v);
            }
            Some(Fault { description: format!("pause {}", names(&victims)), undo: vec![Undo::Resume(victims)] })
        }
        NemesisKind::Membership => {
            let up = cluster.up();
            let candidates: Vec<usize> = nodes.iter().copied().filter(|n| up.contains(n)).collect();
            if candidates.len() < 4 {
                None
            } else {
                let victim = *rng.pick(&candidates);
                match cluster.remove(victim) {
                    Ok(true) => Some(Fault {
                        description: format!("remove n{victim}, then add a fresh node"),
                        undo: vec![Undo::AddBack(victim)],
                    }),
                    Ok(false) => Some(Fault {
                        description: format!("remove n{victim} (not committed in time; settled after healing)"),
                        undo: vec![Undo::FinishRemoval(victim), Undo::AddBack(victim)],
                    }),
                    Err(e) => {
                        eprintln!("jepsen: membership change refused: {e}");
                        None
                    }
                }
            }
        }
        NemesisKind::Mixed => {
            let mut kinds = NemesisKind::ALL[..NemesisKind::ALL.len() - 1].to_vec();
            rng.shuffle(&mut kinds);
            let count = 1 + rng.below(2) as usize;
            let mut description = Vec::new();
            let mut undo = Vec::new();
            for &k in kinds.iter().take(count) {
                // Two partitions at once would merge into one; keep one network fault.
                if k.needs_partitions() && undo.iter().any(|u| matches!(u, Undo::Heal)) {
                    continue;
                }
                if let Some(f) = inject(k, cluster, rng, leader)? {
                    description.push(f.description);
                    undo.extend(f.undo);
                }
            }
            (!undo.is_empty()).then(|| Fault { description: description.join(" + "), undo })
        }
    };
    Ok(fault)
}

/// Undoes `fault`; the network heals first, so that pending membership changes can commit.
pub fn undo(fault: Fault, cluster: &mut Cluster) -> Result<(), JepsenError> {
    let (heal, rest): (Vec<Undo>, Vec<Undo>) = fault.undo.into_iter().partition(|u| matches!(u, Undo::Heal));
    for step in heal.into_iter().chain(rest) {
        match step {
            Undo::Heal => cluster.net().heal()?,
            Undo::Restart(nodes) => {
                for n in nodes {
                    cluster.restart(n)?;
                }
            }
            Undo::Resume(nodes) => {
                for n in nodes {
                    cluster.resume(n);
                }
            }
            Undo::FinishRemoval(n) => cluster.finish_removal(n)?,
            Undo::AddBack(n) => cluster.add(n)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{NemesisKind, split};
    use crate::rng::Rng;

    #[test]
    fn names_round_trip_and_splits_partition_the_nodes() {
        for kind in NemesisKind::ALL {
            assert_eq!(NemesisKind::parse(&kind.name()), Some(kind));
        }
        assert_eq!(NemesisKind::parse("partition-majority"), Some(NemesisKind::PartitionMajority));
        let mut rng = Rng::new(1);
        let (a, b) = split(&mut rng, &[1, 2, 3, 4, 5], 2);
        assert_eq!(a.len(), 2);
        let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 3, 4, 5]);
    }
}
