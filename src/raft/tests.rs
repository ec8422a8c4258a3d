//! Tests of the metadata group over real metadata stores in temporary directories: openraft's
//! storage conformance suite, restart recovery of the adapters, and a node end to end.

use std::collections::BTreeSet;
use std::time::Duration;

use gati_core::command::Rejection;
use gati_core::{Applied, Command, Digest, GroupId, NodeId, RepoName, ShardId, Tag};
use gati_meta::{MetaStore, StateMachine};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, Membership};
use tempfile::TempDir;

use super::log_store::LogAdapter;
use super::state_machine::StateMachineAdapter;
use super::storage_io::{DurableState, adapter_liveness};
use super::types::{Entry, GatiRaft, LogId, StorageError, Vote};
use super::{Bootstrap, RaftError, RaftNode, RaftShared};

const GROUP: GroupId = GroupId::Shard(ShardId(3));

/// Opens the test node's metadata store (which waits a moment for a lock that background tasks
/// of a just-dropped node release once they notice).
fn open_db(dir: &TempDir) -> MetaStore {
    MetaStore::open(dir.path()).expect("temporary metadata store opens")
}

/// The two adapters as a node wires them: the log purges only as far as the state is durable.
fn adapters(db: &MetaStore) -> (LogAdapter, StateMachineAdapter) {
    let (sm, durable) = state_adapter(db);
    (log_adapter(db, durable), sm)
}

/// The two adapters with the log's purges not held back by the state machine: for tests of the
/// log's own purge contract (openraft's suite purges with no snapshot ever saved).
fn adapters_ungated(db: &MetaStore) -> (LogAdapter, StateMachineAdapter) {
    let (sm, _) = state_adapter(db);
    (log_adapter(db, DurableState::new(u64::MAX)), sm)
}

fn state_adapter(db: &MetaStore) -> (StateMachineAdapter, DurableState) {
    let log = db.log(GROUP).expect("log store opens");
    let sm = db.state_machine(GROUP).expect("state machine opens");
    // No node waits for these adapters to be dropped, so the receiving half is not kept.
    let (alive, _) = adapter_liveness();
    let sm = StateMachineAdapter::new(sm, log, alive);
    let durable = sm.durable_state();
    (sm, durable)
}

fn log_adapter(db: &MetaStore, durable: DurableState) -> LogAdapter {
    let (alive, _) = adapter_liveness();
    LogAdapter::new(db.log(GROUP).expect("log store opens"), alive, durable)
}

/// Builds a fresh log store and state machine in their own temporary database for every suite
/// case; the directory is the guard, removed when the case ends.
struct TempSledStores;

impl StoreBuilder<GatiRaft, LogAdapter, StateMachineAdapter, TempDir> for TempSledStores {
    async fn build(&self) -> Result<(TempDir, LogAdapter, StateMachineAdapter), StorageError> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (log, sm) = adapters_ungated(&open_db(&dir));
        Ok((dir, log, sm))
    }
}

#[test]
fn the_adapters_pass_openraft_storage_suite() {
    // The suite builds its own runtime per case, so this is a plain test.
    Suite::test_all(TempSledStores).expect("openraft storage suite passes");
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn repo() -> RepoName {
    "library/alpine".parse().expect("valid repository name")
}

fn digest(fill: char) -> Digest {
    format!("sha256:{}", fill.to_string().repeat(64)).parse().expect("valid digest")
}

fn proposal(command: Command) -> gati_core::Proposal {
    gati_core::Proposal { commands: vec![command] }
}

fn link(fill: char, size: u64) -> Command {
    Command::LinkBlob { repo: repo(), digest: digest(fill), size }
}

fn entries() -> Vec<Entry> {
    vec![
        Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], ())),
        },
        Entry { log_id: log_id(1, 2), payload: EntryPayload::Blank },
        Entry { log_id: log_id(2, 3), payload: EntryPayload::Normal(proposal(link('a', 7))) },
        Entry { log_id: log_id(2, 4), payload: EntryPayload::Normal(proposal(link('b', 9))) },
    ]
}

/// Everything openraft reads at start-up, as one comparable value.
#[derive(Debug, PartialEq)]
struct Recovered {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    last_log: Option<LogId>,
    log: Vec<String>,
    applied: (Option<LogId>, super::types::StoredMembership),
    snapshot: Option<super::types::SnapshotMeta>,
}

async fn recover(log: &mut LogAdapter, sm: &mut StateMachineAdapter) -> Recovered {
    let state = log.get_log_state().await.expect("log state");
    Recovered {
        vote: log.read_vote().await.expect("vote"),
        committed: log.read_committed().await.expect("committed"),
        last_purged: state.last_purged_log_id,
        last_log: state.last_log_id,
        // Debug output compares entries of every payload kind without needing `PartialEq`.
        log: log.try_get_log_entries(..).await.expect("entries").iter().map(|e| format!("{e:?}")).collect(),
        applied: sm.applied_state().await.expect("applied state"),
        snapshot: sm.get_current_snapshot().await.expect("snapshot").map(|s| s.meta),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_vote_state_and_snapshot_survive_reopening_the_database() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let before = {
        let db = open_db(&dir);
        let (mut log, mut sm) = adapters(&db);
        log.save_vote(&Vote::new_committed(2, 1)).await.expect("save vote");
        log.blocking_append(entries()).await.expect("append");
        let outcomes = sm.apply(entries().into_iter().take(3)).await.expect("apply");
        let outcomes: Vec<Vec<Applied>> = outcomes.into_iter().map(|o| o.outcomes).collect();
        assert_eq!(outcomes, vec![vec![], vec![], vec![Applied::BlobLinked { created: true }]]);
        let snapshot = sm.get_snapshot_builder().await.build_snapshot().await.expect("snapshot");
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(2, 3)));
        log.save_committed(Some(log_id(2, 4))).await.expect("save committed");
        log.purge(log_id(1, 2)).await.expect("purge");
        let before = recover(&mut log, &mut sm).await;
        assert_eq!(before.log.len(), 2, "entries 3 and 4 remain after purging through 2");
        before
        // Every handle on the database is dropped here, as in a process exit.
    };
    let db = open_db(&dir);
    let (mut log, mut sm) = adapters(&db);
    let after = recover(&mut log, &mut sm).await;
    assert_eq!(after, before);
    assert_eq!(after.vote, Some(Vote::new_committed(2, 1)));
    assert_eq!(after.last_purged, Some(log_id(1, 2)));
    assert_eq!(after.last_log, Some(log_id(2, 4)));
    assert_eq!(after.applied.0, Some(log_id(2, 3)));
    let sm_handle = db.state_machine(GROUP).expect("state machine opens");
    assert_eq!(sm_handle.blob_link(&repo(), &digest('a')).expect("query"), Some(7));
    assert_eq!(sm_handle.blob_link(&repo(), &digest('b')).expect("query"), None, "entry 4 was never applied");
}

/// A purge returns once the watermark is written; the entries are hidden from readers at once
/// and removed from the store in the background, so openraft's core never waits on the removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_entries_are_hidden_at_once_and_removed_in_the_background() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = open_db(&dir);
    let (mut log, _sm) = adapters_ungated(&db);
    log.blocking_append(entries()).await.expect("append");
    log.purge(log_id(1, 2)).await.expect("purge");
    let live: Vec<u64> = log.try_get_log_entries(..).await.expect("entries").iter().map(|e| e.log_id.index).collect();
    assert_eq!(live, vec![3, 4]);
    assert_eq!(log.limited_get_log_entries(1, 5).await.expect("entries").len(), 2);
    let raw = db.log(GROUP).expect("log store opens");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while raw.range(..).expect("raw entries").len() > 2 {
        assert!(std::time::Instant::now() < deadline, "purged entries were never removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A purge past what the stored state durably covers (openraft purges right after installing a
/// snapshot, before the install is saved) writes no watermark and removes nothing until the
/// state catches up; then it completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_waits_until_the_state_durably_covers_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = open_db(&dir);
    let durable = DurableState::new(0);
    let mut log = log_adapter(&db, durable.clone());
    log.blocking_append(entries()).await.expect("append");
    log.purge(log_id(1, 2)).await.expect("purge");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let raw = db.log(GROUP).expect("log store opens");
    assert_eq!(raw.range(..).expect("raw entries").len(), 4, "nothing may be removed yet");
    assert_eq!(log.get_log_state().await.expect("log state").last_purged_log_id, None, "no watermark yet");
    durable.advance(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while raw.range(..).expect("raw entries").len() > 2 {
        assert!(std::time::Instant::now() < deadline, "the purge never ran once the state was durable");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(log.get_log_state().await.expect("log state").last_purged_log_id, Some(log_id(1, 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installed_snapshot_replaces_the_state_and_becomes_current() {
    let leader_dir = tempfile::tempdir().expect("temporary directory");
    let follower_dir = tempfile::tempdir().expect("temporary directory");
    let (_, mut leader) = adapters(&open_db(&leader_dir));
    let follower_db = open_db(&follower_dir);
    let (_, mut follower) = adapters(&follower_db);
    leader.apply(entries()).await.expect("apply on leader");
    follower
        .apply([Entry { log_id: log_id(1, 1), payload: EntryPayload::Normal(proposal(link('c', 1))) }])
        .await
        .expect("apply");
    let snapshot = leader.get_snapshot_builder().await.build_snapshot().await.expect("build");
    let mut receiving = follower.begin_receiving_snapshot().await.expect("begin");
    *receiving = *snapshot.snapshot;
    follower.install_snapshot(&snapshot.meta, receiving).await.expect("install");
    assert_eq!(follower.applied_state().await.expect("applied").0, Some(log_id(2, 4)));
    let current = follower.get_current_snapshot().await.expect("current").expect("a snapshot");
    assert_eq!(current.meta, snapshot.meta);
    let sm = follower_db.state_machine(GROUP).expect("state machine opens");
    assert_eq!(sm.blob_link(&repo(), &digest('b')).expect("query"), Some(9));
    assert_eq!(sm.blob_link(&repo(), &digest('c')).expect("query"), None, "state before the snapshot is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_commits_reads_snapshots_and_restarts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let unknown_tag: Tag = "nope".parse().expect("valid tag");
    {
        let db = open_db(&dir);
        let sm = db.state_machine(GROUP).expect("state machine opens");
        let node = RaftNode::start(GROUP, NodeId(1), &db, sm.clone(), &RaftShared::default(), Bootstrap::Solo)
            .await
            .expect("node starts and leads");
        assert_eq!(node.propose(link('a', 7)).await.expect("commit"), Applied::BlobLinked { created: true });
        assert_eq!(node.propose(link('a', 7)).await.expect("commit"), Applied::BlobLinked { created: false });
        let refused = node.propose(Command::DeleteTag { repo: repo(), tag: unknown_tag.clone() }).await;
        assert_eq!(refused.expect("commit"), Applied::Rejected(Rejection::TagUnknown { tag: unknown_tag }));
        node.ensure_linearizable().await.expect("read index");
        assert_eq!(sm.blob_link(&repo(), &digest('a')).expect("query"), Some(7));

        // Snapshot and purge everything, so the restart must come back from the snapshot alone.
        let wait = node.raft.wait(Some(Duration::from_secs(10)));
        node.raft.trigger().snapshot().await.expect("trigger snapshot");
        // Compare within one metrics value: `last_applied` read separately may lag the snapshot.
        let covered = wait
            .metrics(|m| m.snapshot.is_some() && m.snapshot == m.last_applied, "snapshot of all")
            .await
            .expect("snapshot built")
            .snapshot
            .expect("a snapshot");
        node.raft.trigger().purge_log(covered.index).await.expect("trigger purge");
        wait.purged(Some(covered), "purge").await.expect("log purged");

        node.shutdown().await;
        let after_shutdown = node.propose(link('b', 1)).await.expect_err("a stopped node refuses work");
        assert!(matches!(after_shutdown, RaftError::Fatal(_)), "{after_shutdown:?}");
        assert_eq!(after_shutdown.code(), gati_core::ErrorCode::Unavailable);
    }
    let db = open_db(&dir);
    let sm = db.state_machine(GROUP).expect("state machine opens");
    let node = RaftNode::start(GROUP, NodeId(1), &db, sm.clone(), &RaftShared::default(), Bootstrap::Solo)
        .await
        .expect("node restarts and leads");
    node.ensure_linearizable().await.expect("read index");
    assert_eq!(sm.blob_link(&repo(), &digest('a')).expect("query"), Some(7));
    assert_eq!(node.propose(link('b', 3)).await.expect("commit"), Applied::BlobLinked { created: true });
    node.shutdown().await;
}

/// Starts a one-member group in `dir` and waits until it leads; returns it and its state machine.
async fn solo_node(dir: &TempDir) -> (RaftNode, StateMachine) {
    let db = open_db(dir);
    let sm = db.state_machine(GROUP).expect("state machine opens");
    let node = RaftNode::start(GROUP, NodeId(1), &db, sm.clone(), &RaftShared::default(), Bootstrap::Solo)
        .await
        .expect("node starts and leads");
    (node, sm)
}

fn last_log_index(node: &RaftNode) -> u64 {
    node.raft.metrics().borrow().last_log_index.unwrap_or(0)
}

/// Group commit: commands proposed together travel in shared log entries, and each still gets its
/// own outcome. On a current-thread runtime all 200 proposals are queued before the batcher runs,
/// so the grouping is deterministic.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_proposals_share_log_entries() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (node, sm) = solo_node(&dir).await;
    let before = last_log_index(&node);
    let blob = |i: u64| -> Digest { format!("sha256:{i:064x}").parse().expect("valid digest") };
    let proposals: Vec<_> = (0..200u64)
        .map(|i| {
            let node = node.clone();
            tokio::spawn(
                async move { node.propose(Command::LinkBlob { repo: repo(), digest: blob(i), size: i }).await },
            )
        })
        .collect();
    for proposal in proposals {
        let outcome = proposal.await.expect("task").expect("commit");
        assert_eq!(outcome, Applied::BlobLinked { created: true });
    }
    let entries = last_log_index(&node) - before;
    assert!(entries <= 2, "200 concurrent commands took {entries} log entries");
    for i in 0..200u64 {
        assert_eq!(sm.blob_link(&repo(), &blob(i)).expect("query"), Some(i));
    }
    node.shutdown().await;
}

/// A leadership transfer holds the log still: while the batcher is paused, proposals queue and no
/// entry is appended; once released they commit. An idle batcher pauses at once (it holds no
/// slot while it waits for work), and a transfer to a node that is not a voter changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_batcher_appends_nothing_until_released() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (node, sm) = solo_node(&dir).await;
    assert_eq!(node.propose(link('a', 1)).await.expect("commit"), Applied::BlobLinked { created: true });

    let paused = tokio::time::timeout(Duration::from_secs(5), node.batcher.pause())
        .await
        .expect("an idle batcher pauses without waiting for traffic")
        .expect("the batcher runs");
    let before = last_log_index(&node);
    let held = tokio::spawn({
        let node = node.clone();
        async move { node.propose(link('b', 2)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "a proposal committed through a paused batcher");
    assert_eq!(last_log_index(&node), before, "a paused batcher appended an entry");
    assert_eq!(sm.blob_link(&repo(), &digest('b')).expect("query"), None);

    drop(paused);
    assert_eq!(held.await.expect("task").expect("commit"), Applied::BlobLinked { created: true });
    assert_eq!(sm.blob_link(&repo(), &digest('b')).expect("query"), Some(2));

    assert!(!node.hand_over(NodeId(9)).await.expect("transfer"), "node 9 is not a voter of this group");
    assert!(node.is_leader(), "a refused transfer leaves the leader in place");
    assert_eq!(node.propose(link('c', 3)).await.expect("commit"), Applied::BlobLinked { created: true });
    node.shutdown().await;
}
