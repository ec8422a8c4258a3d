//! Download statistics: a worker actor counts downloads per artifact, version and day in memory
//! and writes them to the artifacts' shards every few seconds, so a download costs the request
//! one channel send.
//!
//! Each write is a batch identified by this node, the time the process started and a sequence
//! number; a batch that failed is retried with the same identity until it is applied, and the
//! state machine ignores a batch it has seen, so counts are written at least once and counted
//! exactly once. Counts still in memory when the process dies are lost: statistics, unlike
//! pushes, are not acknowledged to anyone.

use std::collections::BTreeMap;
use std::time::Duration;

use gati_core::artifact::{ArtifactCommand, ArtifactVersion, DownloadCount};
use gati_core::{Applied, Command, NodeId, RepoName};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, warn};

use crate::actors::NamespaceDirectory;

/// How often counts are written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Counted but not yet written downloads are capped, so a flood of distinct versions cannot
/// exhaust memory while the shards are unavailable; past the cap new counts are dropped.
const MAX_PENDING_KEYS: usize = 100_000;

/// Messages of the [`DownloadCounter`].
pub enum DownloadMsg {
    /// One download of `version` of `repo` on `day`.
    Count {
        /// The artifact.
        repo: RepoName,
        /// The version.
        version: ArtifactVersion,
        /// Days since the epoch.
        day: u32,
    },
    /// Write what has been counted.
    Flush,
}

/// The actor.
pub struct DownloadCounter;

/// What the counter needs.
pub struct DownloadCounterArgs {
    /// Where writes are proposed.
    pub namespaces: NamespaceDirectory,
    /// This node.
    pub node: NodeId,
    /// This process's batch epoch: greater than every epoch this node used before (see
    /// [`next_epoch`]), so the state machine's "seen before" check never drops a new batch.
    pub epoch: u64,
}

/// How long one write of counts may take before it is left for the next round.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// The epoch of a new process: the wall clock in milliseconds, but always above the epoch
/// recorded in `file` by the previous process (a clock stepped back must not make the state
/// machine ignore new batches as old ones), recorded for the next.
pub fn next_epoch(file: &std::path::Path) -> std::io::Result<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let previous = match std::fs::read_to_string(file) {
        Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let epoch = now.max(previous + 1);
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, epoch.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, file)?;
    Ok(epoch)
}

/// A batch on its way to a shard.
struct Batch {
    repo: RepoName,
    seq: u64,
    counts: Vec<DownloadCount>,
}

/// The counter's state.
pub struct CounterState {
    namespaces: NamespaceDirectory,
    node: NodeId,
    epoch: u64,
    next_seq: u64,
    counts: BTreeMap<RepoName, BTreeMap<(ArtifactVersion, u32), u64>>,
    /// Entries held, in `counts` and in unsettled batches together.
    keys: usize,
    /// Batches proposed without a definite answer: retried, with their identity, first.
    unsettled: Vec<Batch>,
}

impl Actor for DownloadCounter {
    type Msg = DownloadMsg;
    type State = CounterState;
    type Arguments = DownloadCounterArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        me.send_interval(FLUSH_EVERY, || DownloadMsg::Flush);
        Ok(CounterState {
            namespaces: args.namespaces,
            node: args.node,
            epoch: args.epoch,
            next_seq: 1,
            counts: BTreeMap::new(),
            keys: 0,
            unsettled: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DownloadMsg::Count { repo, version, day } => {
                let per_repo = state.counts.entry(repo).or_default();
                let key = (version, day);
                if let Some(n) = per_repo.get_mut(&key) {
                    *n += 1;
                } else if state.keys < MAX_PENDING_KEYS {
                    per_repo.insert(key, 1);
                    state.keys += 1;
                }
            }
            DownloadMsg::Flush => flush(state).await,
        }
        Ok(())
    }
}

async fn flush(state: &mut CounterState) {
    // A repository with a batch still unsettled keeps counting into `counts`: a new batch
    // behind it would only wait, and merging keeps one pending batch per repository at most.
    let waiting: std::collections::BTreeSet<RepoName> = state.unsettled.iter().map(|b| b.repo.clone()).collect();
    let counted = std::mem::take(&mut state.counts);
    for (repo, counts) in counted {
        if waiting.contains(&repo) {
            state.counts.insert(repo, counts);
            continue;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let counts = counts.into_iter().map(|((version, day), count)| DownloadCount { version, day, count }).collect();
        state.unsettled.push(Batch { repo, seq, counts });
    }
    // Batches of one repository must be applied in sequence order: a later batch applied first
    // would make the state machine ignore the earlier one. So once a batch of a repository is
    // left unsettled, its later batches wait behind it.
    let mut still = Vec::new();
    let mut blocked = std::collections::BTreeSet::new();
    for batch in std::mem::take(&mut state.unsettled) {
        if blocked.contains(&batch.repo) {
            still.push(batch);
            continue;
        }
        let command = Command::Artifact(ArtifactCommand::RecordDownloads {
            repo: batch.repo.clone(),
            node: state.node,
            epoch: state.epoch,
            seq: batch.seq,
            counts: batch.counts.clone(),
        });
        match tokio::time::timeout(PROPOSE_TIMEOUT, state.namespaces.propose(command)).await {
            Ok(Ok(Applied::ArtifactChanged)) => {
                debug!(repo = %batch.repo, seq = batch.seq, "download counts written");
                state.keys = state.keys.saturating_sub(batch.counts.len());
            }
            Ok(Ok(other)) => {
                warn!(repo = %batch.repo, ?other, "download counts refused; dropped");
                state.keys = state.keys.saturating_sub(batch.counts.len());
            }
            Ok(Err(e)) => {
                debug!(repo = %batch.repo, error = %e, "download counts not written yet; retrying");
                blocked.insert(batch.repo.clone());
                still.push(batch);
            }
            Err(_) => {
                // Perhaps applied, perhaps not: the same batch (same identity) goes again, and
                // the state machine counts it once either way.
                debug!(repo = %batch.repo, "writing download counts timed out; retrying");
                blocked.insert(batch.repo.clone());
                still.push(batch);
            }
        }
    }
    state.unsettled = still;
}

/// A cheap handle that counts downloads; counting never waits.
#[derive(Clone)]
pub struct DownloadCounterHandle {
    actor: ActorRef<DownloadMsg>,
}

impl DownloadCounterHandle {
    /// Starts the counter.
    pub async fn start(namespaces: NamespaceDirectory, node: NodeId, epoch: u64) -> Result<Self, ractor::SpawnErr> {
        let (actor, _) = Actor::spawn(None, DownloadCounter, DownloadCounterArgs { namespaces, node, epoch }).await?;
        Ok(DownloadCounterHandle { actor })
    }

    /// Counts one download.
    pub fn count(&self, repo: RepoName, version: ArtifactVersion, day: u32) {
        if self.actor.cast(DownloadMsg::Count { repo, version, day }).is_err() {
            debug!("download counter stopped; a download was not counted");
        }
    }

    /// Writes what has been counted now (tests and shutdown).
    pub fn flush(&self) {
        let _ = self.actor.cast(DownloadMsg::Flush);
    }

    /// Stops the counter.
    pub fn stop(&self) {
        self.actor.stop(None);
    }
}
