//! The openraft glue: one Raft group per consensus group (the `meta` group and every metadata
//! shard), each with its log and state machine in the node's `gati-meta` database, talking to its
//! peers over tonic.
//!
//! Owns the type configuration ([`GatiRaft`]), the storage adapters (`log_store`, `state_machine`)
//! over `gati_meta::{LogStore, StateMachine}`, the transport (`network` client, `service` server,
//! `peers` channels), the Raft configuration and [`RaftNode`], the handle the rest of the node uses
//! to propose commands, to make reads linearizable and to change membership. It may call
//! `gati-meta`, `gati-core`, `gati-proto` and openraft; it must not call the HTTP layer, the actors
//! or the blob store, and nothing outside `src/raft` sees openraft's `Raft`.

mod batcher;
mod error;
mod log_store;
mod network;
mod peers;
mod read_index;
mod service;
mod state_machine;
mod storage_io;
mod types;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use batcher::Batcher;
use gati_core::{Applied, Command, GroupId, NodeId};
use gati_meta::log_store::LogStore;
use gati_meta::{MetaStore, StateMachine};
use openraft::error::{Fatal, InitializeError, RaftError as OpenRaftError};
use openraft::metrics::WaitError;
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use read_index::ReadIndexer;

pub use error::{RaftError, Result};
pub use peers::{PeerChannel, Peers, RequireSecret};
pub use service::{GroupTable, RaftTransportService};
pub use types::GatiRaft;

use log_store::LogAdapter;
use network::GrpcNetwork;
use state_machine::StateMachineAdapter;
use storage_io::{AdaptersGone, adapter_liveness};
use types::Raft;

/// How long a solo group's start waits for this node to become leader. A fresh group elects at
/// once; a restarted one either resumes its committed leadership at once or, if the crash came
/// between an election and its vote being stored, needs one election timeout.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// How long a leadership transfer waits for the entries in flight, and then for the election.
const HANDOVER_WAIT: Duration = Duration::from_secs(2);

/// How long a leadership transfer holds writes back for its target to receive the last entries:
/// a few heartbeats. A target that kept up needs one append round.
const HANDOVER_CATCH_UP: Duration = Duration::from_millis(300);

/// How long a leader's linearizable read waits for its own state machine to apply the read
/// index: the entries are committed, so this is only an apply backlog.
const READ_APPLY_WAIT: Duration = Duration::from_secs(10);

/// Returns the Raft configuration of `group`.
fn raft_config(group: GroupId, tuning: RaftTuning) -> openraft::Config {
    let snapshot_entries = tuning.snapshot_entries.max(1);
    openraft::Config {
        cluster_name: format!("gati-{group}"),
        // Sane on a LAN: a follower waits 5-10 heartbeats before campaigning, so one slow fsync
        // does not trigger an election, and a dead leader is replaced in about a second.
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        // Snapshot every `snapshot_entries` (10k by default); keep a tenth of that already
        // snapshotted so a briefly lagging follower catches up from the log rather than needing a
        // snapshot transfer.
        snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_entries),
        max_in_snapshot_log_to_keep: snapshot_entries / 10,
        // Purge in chunks: each purge rewrites the purge watermark and deletes a key range. No
        // chunk larger than half a snapshot interval, or a small interval would never purge.
        purge_batch_size: (snapshot_entries / 2).clamp(1, 1_024),
        // openraft's advice: larger than the snapshot interval, or a learner that is behind by
        // less than one snapshot would never count as caught up.
        replication_lag_threshold: snapshot_entries * 2,
        // Snapshot transfers go in chunks well under the transport's message limit.
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        ..openraft::Config::default()
    }
}

/// How a group comes into existence on this node.
#[derive(Clone, Debug)]
pub enum Bootstrap {
    /// A one-member group of this node alone (the embedded single-node registry): initialised on
    /// the first start, and the start waits until this node leads.
    Solo,
    /// A group created with these voters (node id to its Raft address) if the store is pristine;
    /// only the group's designated initialiser passes this, every other member passes `Join`.
    Voters(BTreeMap<NodeId, String>),
    /// A member that waits to be contacted by the group's leader (a new replica, or a voter whose
    /// group another node initialises).
    Join,
}

/// What a node shares between all its groups: its peers' channels, the table the transport
/// server dispatches on, and the Raft tuning.
#[derive(Clone, Default)]
pub struct RaftShared {
    /// Channels to peers, by address.
    pub peers: Peers,
    /// The groups running on this node.
    pub table: GroupTable,
    /// Tuning applied to every group.
    pub tuning: RaftTuning,
}

/// Raft settings an operator may change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTuning {
    /// A group snapshots its state, and may then purge its log, every this many entries.
    pub snapshot_entries: u64,
    /// Log entries proposed and not yet applied at once (see `batcher`).
    pub proposal_pipeline: usize,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning { snapshot_entries: 10_000, proposal_pipeline: 1 }
    }
}

/// Who is in a group: voters and learners, each with its Raft address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members {
    /// The members whose votes count, by node id.
    pub voters: BTreeMap<NodeId, String>,
    /// The members that replicate the log but do not vote.
    pub learners: BTreeMap<NodeId, String>,
}

/// How long [`RaftNode::shutdown`] waits for openraft's background tasks to release the storage
/// adapters. They finish the step they are in (an apply batch, a snapshot build) and exit.
const ADAPTERS_RELEASE_WAIT: Duration = Duration::from_secs(30);

/// This node's member of one consensus group; cheap to clone (clones share the node).
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft,
    batcher: Batcher,
    reads: ReadIndexer,
    group: GroupId,
    node_id: u64,
    log: LogStore,
    table: GroupTable,
    peers: Peers,
    adapters_gone: Arc<tokio::sync::Mutex<AdaptersGone>>,
}

fn basic_nodes(members: &BTreeMap<NodeId, String>) -> BTreeMap<u64, BasicNode> {
    members.iter().map(|(id, addr)| (id.0, BasicNode::new(addr))).collect()
}

impl RaftNode {
    /// Starts this node's member of `group` with id `node_id` over `store`, applying to `sm`, and
    /// registers it with the transport.
    ///
    /// A group that exists in the store resumes from its stored log, vote and state; otherwise
    /// `bootstrap` says whether to create it (see [`Bootstrap`]). With [`Bootstrap::Solo`] it
    /// returns once this node leads. `sm` must be the state machine of the same group in the same
    /// database as the log, or recovery would replay the log onto unrelated state.
    pub async fn start(
        group: GroupId,
        node_id: NodeId,
        store: &MetaStore,
        sm: StateMachine,
        transport: &RaftShared,
        bootstrap: Bootstrap,
    ) -> Result<Self> {
        let store = store.clone();
        let log = match tokio::task::spawn_blocking(move || store.log(group)).await {
            Ok(opened) => opened.map_err(RaftError::Storage)?,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // The runtime is shutting down under us.
            Err(_) => return Err(Fatal::Stopped.into()),
        };
        let config = raft_config(group, transport.tuning).validate().map_err(RaftError::Config)?;
        let (alive, adapters_gone) = adapter_liveness();
        let state = StateMachineAdapter::new(sm, log.clone(), alive.clone());
        let raft = Raft::new(
            node_id.0,
            Arc::new(config),
            GrpcNetwork::new(group, node_id.0, transport.peers.clone()),
            LogAdapter::new(log.clone(), alive.clone(), state.durable_state()),
            state,
        )
        .await?;
        transport.table.insert(group, raft.clone());
        let adapters_gone = Arc::new(tokio::sync::Mutex::new(adapters_gone));
        let batcher = Batcher::start(raft.clone(), group, transport.tuning.proposal_pipeline);
        let reads = ReadIndexer::start(raft.clone(), node_id.0);
        let table = transport.table.clone();
        let peers = transport.peers.clone();
        let node = RaftNode { raft, batcher, reads, group, node_id: node_id.0, log, table, peers, adapters_gone };
        if let Err(error) = node.bootstrap(bootstrap).await {
            node.shutdown().await;
            return Err(error);
        }
        Ok(node)
    }

    /// Creates the group if asked to and the store is pristine; for a solo group, waits to lead.
    async fn bootstrap(&self, bootstrap: Bootstrap) -> Result<()> {
        let (group, node_id) = (self.group, self.node_id);
        let voters = match &bootstrap {
            Bootstrap::Join => return Ok(()),
            Bootstrap::Solo => BTreeMap::from([(node_id, BasicNode::default())]),
            Bootstrap::Voters(voters) => basic_nodes(voters),
        };
        match self.raft.initialize(voters).await {
            Ok(()) => tracing::info!(%group, node_id, "initialized a new raft group"),
            // The log or vote is not pristine: the group exists and this is a restart.
            Err(OpenRaftError::APIError(InitializeError::NotAllowed(_))) => {
                tracing::debug!(%group, node_id, "resuming the existing raft group")
            }
            Err(OpenRaftError::APIError(InitializeError::NotInMembers(e))) => {
                return Err(RaftError::NotInMembers(Box::new(e)));
            }
            Err(OpenRaftError::Fatal(fatal)) => return Err(fatal.into()),
        }
        if !matches!(bootstrap, Bootstrap::Solo) {
            return Ok(());
        }
        let wait = self.raft.wait(Some(LEADER_WAIT));
        let leading =
            wait.metrics(|m| m.state == ServerState::Leader && m.current_leader == Some(node_id), "raft node start");
        match leading.await {
            Ok(_) => Ok(()),
            Err(WaitError::Timeout(waited, _)) => Err(RaftError::NoLeader { waited }),
            Err(WaitError::ShuttingDown) => Err(Fatal::Stopped.into()),
        }
    }

    /// Returns the group this node is a member of.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Returns this node's id.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.node_id)
    }

    /// Proposes a command, and returns its outcome once it is committed and applied.
    ///
    /// `Ok` includes deterministic refusals (`Applied::Rejected`). [`RaftError::ForwardToLeader`]
    /// means this node does not lead and nothing was proposed; any other `Err` leaves the outcome
    /// unknown: the command may still commit, so callers must treat it as indeterminate.
    ///
    /// Concurrent proposals are grouped into one log entry (see [`batcher`]).
    pub async fn propose(&self, command: Command) -> Result<Applied> {
        self.batcher.propose(command).await
    }

    /// Returns once reads of the local state machine are linearizable: this node is still the
    /// leader and has applied everything committed before the call (Raft's read index, §6.4).
    /// Free while the leader lease holds, otherwise a share of one heartbeat round to a quorum
    /// (see `read_index`).
    pub async fn ensure_linearizable(&self) -> Result<()> {
        let index = self.read_index().await?;
        self.wait_applied(index, READ_APPLY_WAIT).await
    }

    /// On the leader: returns the index a linearizable read must have applied, without waiting for
    /// this node's own apply; from the leader lease when it holds, otherwise after confirming
    /// leadership with a quorum (concurrent calls share rounds). A follower serves a linearizable read by asking the leader for this, then
    /// [`RaftNode::wait_applied`].
    pub async fn read_index(&self) -> Result<u64> {
        self.reads.read_index().await
    }

    /// Waits until this node has applied the entry at `index`, at most `timeout`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        if self.raft.metrics().borrow().last_applied.is_some_and(|id| id.index >= index) || index == 0 {
            return Ok(());
        }
        match self.raft.wait(Some(timeout)).applied_index_at_least(Some(index), "read index").await {
            Ok(_) => Ok(()),
            Err(WaitError::Timeout(waited, _)) => Err(RaftError::Lagging { index, waited }),
            Err(WaitError::ShuttingDown) => Err(Fatal::Stopped.into()),
        }
    }

    /// Returns the leader this node knows of and its Raft address, if any.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        let addr = metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone())?;
        Some((NodeId(leader), addr))
    }

    /// Returns whether this node currently believes it leads the group (no quorum check).
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id)
    }

    /// Returns the group's latest membership as this node knows it.
    pub fn members(&self) -> Members {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        let voter_ids: BTreeSet<u64> = membership.voter_ids().collect();
        let mut members = Members::default();
        for (id, node) in membership.nodes() {
            let side = if voter_ids.contains(id) { &mut members.voters } else { &mut members.learners };
            side.insert(NodeId(*id), node.addr.clone());
        }
        members
    }

    /// Returns a copy of openraft's metrics of this member, for `/metrics` and `cluster status`.
    pub fn metrics(&self) -> RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Returns a receiver that changes whenever this member's metrics do (leadership, terms,
    /// membership); for watchers that react to leadership changes.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<RaftMetrics<u64, BasicNode>> {
        self.raft.metrics()
    }

    /// On the leader: adds `node` at `addr` as a learner; with `wait`, returns only once it has
    /// caught up with the log.
    pub async fn add_learner(&self, node: NodeId, addr: &str, wait: bool) -> Result<()> {
        self.raft.add_learner(node.0, BasicNode::new(addr), wait).await?;
        Ok(())
    }

    /// On the leader: whether `node` has replicated the log to within `slack` entries of the
    /// leader's last entry (this node always has).
    pub fn caught_up(&self, node: NodeId, slack: u64) -> bool {
        if node.0 == self.node_id {
            return true;
        }
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let last = metrics.last_log_index.unwrap_or(0);
        let matched = metrics.replication.as_ref().and_then(|r| r.get(&node.0).copied().flatten());
        matched.is_some_and(|m| m.index.saturating_add(slack) >= last)
    }

    /// On the leader: makes exactly `voters` the voting members (each must already be a member),
    /// keeping removed voters as learners when `keep_removed` is true.
    pub async fn set_voters(&self, voters: BTreeSet<NodeId>, keep_removed: bool) -> Result<()> {
        let ids: BTreeSet<u64> = voters.into_iter().map(|n| n.0).collect();
        self.raft.change_membership(ChangeMembers::ReplaceAllVoters(ids), keep_removed).await?;
        Ok(())
    }

    /// On the leader: removes learners `nodes` from the group.
    pub async fn remove_learners(&self, nodes: BTreeSet<NodeId>) -> Result<()> {
        let ids: BTreeSet<u64> = nodes.into_iter().map(|n| n.0).collect();
        self.raft.change_membership(ChangeMembers::RemoveNodes(ids), false).await?;
        Ok(())
    }

    /// On the leader: hands leadership of the group to voter `to` (Raft's leadership transfer,
    /// §3.10) and returns whether `to` leads afterwards.
    ///
    /// New entries are held back (proposals wait, then go to whoever leads), reads stop relying
    /// on the lease, and once `to` holds every entry it is asked to campaign at once. It wins with
    /// this node's vote, which openraft grants once this node's own vote is older than
    /// `leader_lease`: call it only on a leader of at least that long in its current term, or
    /// `to`'s campaign fails and costs the group an election. Call it only once `to` has kept up
    /// with the log: the entries in flight get [`HANDOVER_WAIT`] to finish, and `to` then gets
    /// [`HANDOVER_CATCH_UP`] to hold every entry; past either, it gives up, changing nothing.
    pub async fn hand_over(&self, to: NodeId) -> Result<bool> {
        let (group, me) = (self.group, self.node_id);
        let Some(addr) = self.members().voters.get(&to).cloned() else { return Ok(false) };
        if to.0 == me || !self.is_leader() {
            return Ok(false);
        }
        // The entries in flight finish only once applied; a leader that lost its quorum would
        // hold this forever.
        let _paused = match tokio::time::timeout(HANDOVER_WAIT, self.batcher.pause()).await {
            Ok(Some(paused)) => paused,
            Ok(None) => return Err(Fatal::<u64>::Stopped.into()),
            Err(_) => return Ok(false),
        };
        let _no_lease = self.reads.suspend_lease();
        let deadline = tokio::time::Instant::now() + HANDOVER_CATCH_UP;
        while !self.caught_up(to, 0) {
            if tokio::time::Instant::now() >= deadline || !self.is_leader() {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let (term, last_log) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.current_term, metrics.last_log_index.unwrap_or(0))
        };
        let request = network::TimeoutNow { term, leader: me, last_log };
        match network::timeout_now(&self.peers, group, to.0, &addr, request).await {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(why) => {
                tracing::debug!(%group, to = to.0, why, "leadership transfer not delivered");
                return Ok(false);
            }
        }
        // The campaign takes a vote round; the guards hold until it is decided either way.
        let wait = self.raft.wait(Some(HANDOVER_WAIT));
        let decided =
            wait.metrics(|m| m.current_term > term && m.current_leader.is_some(), "leadership transfer").await;
        let moved = decided.is_ok_and(|m| m.current_leader == Some(to.0));
        tracing::info!(%group, from = me, to = to.0, moved, "leadership transfer");
        Ok(moved)
    }

    /// The current Raft term as this node knows it.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// Stops the Raft node, waits until openraft has released the database, and flushes it.
    /// Later calls on any clone fail with [`RaftError::Fatal`] (`Stopped`). Idempotent.
    ///
    /// Once it returns, and the clones of this node and of the `StateMachine` passed to
    /// [`RaftNode::start`] are dropped, the database can be reopened in this process.
    pub async fn shutdown(&self) {
        let (group, node_id) = (self.group, self.node_id);
        self.table.remove(group);
        if let Err(error) = self.raft.shutdown().await {
            tracing::error!(%error, %group, node_id, "raft task failed while shutting down");
        }
        let mut adapters_gone = self.adapters_gone.lock().await;
        if tokio::time::timeout(ADAPTERS_RELEASE_WAIT, adapters_gone.wait()).await.is_err() {
            tracing::warn!(%group, node_id, "raft background tasks still hold the metadata store after shutdown");
        }
        // Not needed for safety: what was reported durable is. It keeps what was appended since.
        let log = self.log.clone();
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || log.flush()).await {
            tracing::error!(%error, %group, node_id, "flushing the raft log at shutdown failed");
        }
    }
}
