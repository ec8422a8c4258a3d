//! The openraft glue of the metadata group: one Raft group whose log and state machine live in the
//! node's `gati-meta` database.
//!
//! Owns the type configuration ([`GatiRaft`]), the storage adapters (`log_store`, `state_machine`)
//! over `gati_meta::{LogStore, StateMachine}`, the transport (`network`; none yet), the Raft
//! configuration and [`RaftNode`], the handle the actor layer uses to propose commands and to make
//! reads linearizable. It may call `gati-meta`, `gati-core` and openraft; it must not call the HTTP
//! layer, the actors or the blob store, and nothing outside `src/raft` sees openraft's `Raft`.
//!
//! Today the group has exactly one member, so it needs no network. Issue #3 adds the tonic
//! transport and several groups (shards): the adapters are per group already (they hold only
//! cheap handles), and [`RaftNode::start`] is where membership and transport will be passed in.

mod batcher;
mod error;
mod log_store;
mod network;
mod state_machine;
mod storage_io;
mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use batcher::Batcher;
use gati_core::{Applied, Command};
use gati_meta::StateMachine;
use gati_meta::log_store::LogStore;
use openraft::error::{Fatal, InitializeError, RaftError as OpenRaftError};
use openraft::metrics::WaitError;
use openraft::{ServerState, SnapshotPolicy};

pub use error::{RaftError, Result};
pub use types::GatiRaft;

use log_store::LogAdapter;
use network::NoTransport;
use state_machine::StateMachineAdapter;
use storage_io::{AdaptersGone, adapter_liveness};
use types::Raft;

/// How long [`RaftNode::start`] waits for this node to become leader. A fresh group elects at once;
/// a restarted one either resumes its committed leadership at once or, if the crash came between
/// an election and its vote being stored, needs one election timeout.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// Returns the Raft configuration of the metadata group.
fn raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "gati-meta".into(),
        // Generous for a single node, and sane on a LAN once there are peers: a follower waits
        // 5-10 heartbeats before campaigning, so one slow fsync does not trigger an election.
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        // Snapshot every 10k entries; keep 1k already-snapshotted entries so a briefly lagging
        // follower catches up from the log rather than needing a snapshot transfer.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
        max_in_snapshot_log_to_keep: 1_000,
        // Purge in chunks: each purge rewrites the purge watermark and deletes a key range.
        purge_batch_size: 1_024,
        // openraft's advice: larger than the snapshot interval, or a learner that is behind by
        // less than one snapshot would never count as caught up.
        replication_lag_threshold: 20_000,
        ..openraft::Config::default()
    }
}

/// How long [`RaftNode::shutdown`] waits for openraft's background tasks to release the storage
/// adapters. They finish the step they are in (an apply batch, a snapshot build) and exit.
const ADAPTERS_RELEASE_WAIT: Duration = Duration::from_secs(30);

/// A running member of the metadata group; cheap to clone (clones share the node).
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft,
    batcher: Batcher,
    node_id: u64,
    log: LogStore,
    adapters_gone: Arc<tokio::sync::Mutex<AdaptersGone>>,
}

impl RaftNode {
    /// Starts the group's Raft node with id `node_id` over `db`, applying to `sm`, and returns once
    /// this node is the leader.
    ///
    /// On the first start it creates a group whose only member is this node; on later starts it
    /// resumes from the stored log, vote and state (a group that already exists is not
    /// re-initialised). `sm` must be the state machine in the same database as `db`'s log, or
    /// recovery would replay the log onto unrelated state.
    pub async fn start(node_id: u64, db: &sled::Db, sm: StateMachine) -> Result<Self> {
        let db = db.clone();
        let log = match tokio::task::spawn_blocking(move || LogStore::open(&db)).await {
            Ok(opened) => opened.map_err(RaftError::Storage)?,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // The runtime is shutting down under us.
            Err(_) => return Err(Fatal::Stopped.into()),
        };
        let config = raft_config().validate().map_err(RaftError::Config)?;
        let (alive, adapters_gone) = adapter_liveness();
        let raft = Raft::new(
            node_id,
            Arc::new(config),
            NoTransport,
            LogAdapter::new(log.clone(), alive.clone()),
            StateMachineAdapter::new(sm, log.clone(), alive),
        )
        .await?;
        let adapters_gone = Arc::new(tokio::sync::Mutex::new(adapters_gone));
        let batcher = Batcher::start(raft.clone());
        let node = RaftNode { raft, batcher, node_id, log, adapters_gone };
        if let Err(error) = node.initialize_and_lead().await {
            node.shutdown().await;
            return Err(error);
        }
        Ok(node)
    }

    /// Creates the one-member group if the store is pristine, then waits for leadership.
    async fn initialize_and_lead(&self) -> Result<()> {
        match self.raft.initialize(BTreeSet::from([self.node_id])).await {
            Ok(()) => tracing::info!(node_id = self.node_id, "initialized a new single-member raft group"),
            // The log or vote is not pristine: the group exists and this is a restart.
            Err(OpenRaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::info!(node_id = self.node_id, "resuming the existing raft group")
            }
            Err(OpenRaftError::APIError(InitializeError::NotInMembers(e))) => {
                return Err(RaftError::NotInMembers(Box::new(e)));
            }
            Err(OpenRaftError::Fatal(fatal)) => return Err(fatal.into()),
        }
        let wait = self.raft.wait(Some(LEADER_WAIT));
        let node_id = self.node_id;
        let leading =
            wait.metrics(|m| m.state == ServerState::Leader && m.current_leader == Some(node_id), "raft node start");
        match leading.await {
            Ok(_) => Ok(()),
            Err(WaitError::Timeout(waited, _)) => Err(RaftError::NoLeader { waited }),
            Err(WaitError::ShuttingDown) => Err(Fatal::Stopped.into()),
        }
    }

    /// Returns this node's id in the group.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Proposes a command, and returns its outcome once it is committed and applied.
    ///
    /// `Ok` includes deterministic refusals (`Applied::Rejected`). An `Err` other than
    /// [`RaftError::ForwardToLeader`] leaves the outcome unknown: the command may still commit,
    /// so callers must treat it as indeterminate, not as "not applied".
    ///
    /// Concurrent proposals are grouped into one log entry (see [`batcher`]).
    pub async fn propose(&self, command: Command) -> Result<Applied> {
        self.batcher.propose(command).await
    }

    /// Returns once reads of the local state machine are linearizable: this node is still the
    /// leader and has applied everything committed before the call (Raft's read index, §6.4).
    ///
    /// With one member this is a round trip to the Raft task plus, rarely, a wait for apply; with
    /// peers it will cost one heartbeat round to a quorum per call.
    pub async fn ensure_linearizable(&self) -> Result<()> {
        self.raft.ensure_linearizable().await?;
        Ok(())
    }

    /// Stops the Raft node, waits until openraft has released the database, and flushes it.
    /// Later calls on any clone fail with [`RaftError::Fatal`] (`Stopped`). Idempotent.
    ///
    /// Once it returns, and the clones of this node and of the `StateMachine` passed to
    /// [`RaftNode::start`] are dropped, the database can be reopened in this process.
    pub async fn shutdown(&self) {
        let node_id = self.node_id;
        if let Err(error) = self.raft.shutdown().await {
            tracing::error!(%error, node_id, "raft task failed while shutting down");
        }
        let mut adapters_gone = self.adapters_gone.lock().await;
        if tokio::time::timeout(ADAPTERS_RELEASE_WAIT, adapters_gone.wait()).await.is_err() {
            tracing::warn!(node_id, "raft background tasks still hold the metadata store after shutdown");
        }
        // Not needed for safety (the log is durable and replay is exact); it shortens replay.
        if let Err(error) = self.log.flush_async().await {
            tracing::error!(%error, node_id, "flushing metadata at raft shutdown failed");
        }
    }
}
