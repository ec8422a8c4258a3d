//! The leader's read index: quorum rounds shared by concurrent reads, and a leader lease that
//! lets reads skip the round entirely while it holds.
//!
//! A linearizable read needs a read index obtained by a quorum round that *started after the read
//! arrived* (Raft §6.4). openraft runs one heartbeat round per request, which would cap reads at
//! one round trip each, so rounds are coalesced ([`crate::coalesce`]): every read that arrives
//! while a round is in flight waits for the next one.
//!
//! **The lease.** A round that started at `t` and was acknowledged by a quorum proves more than
//! leadership at `t`: every voter that acknowledged it refuses to vote for anyone else until
//! `leader_lease` (openraft's `election_timeout_max`, 1 s) after it received the heartbeat, which
//! was after `t`. So no other leader can exist before `t + leader_lease`, and until then this
//! leader knows every committed entry without asking. Reads use the lease for [`LEASE`], half of
//! that, which leaves half a second for clock-rate differences between nodes and for a voter that
//! restarts (a restarted voter forgets when it last heard from the leader, which is why the
//! transport does not let a freshly started group vote for [`VOTE_QUIET`]; see `service`).
//!
//! Under the lease the read index is the leader's last log index: it covers every committed entry
//! (leader completeness) and every write acknowledged so far, since a write is acknowledged only
//! once applied on the leader. The lease is tied to the term and the membership it was confirmed
//! in: a new term or a membership change needs a fresh round.
//!
//! **Handing leadership over.** The lease argument counts on the voters that acknowledged a round;
//! the leader itself grants a vote once its own vote is older than `leader_lease`, and a
//! leadership transfer relies on exactly that. So while a transfer is under way the lease is
//! suspended ([`ReadIndexer::suspend_lease`]) and every read takes a quorum round (one that started
//! before this node voted for its successor may still succeed, and is linearized at its start). Outside a transfer, a follower that stops hearing the
//! leader (a one-way partition) can win the same way; the old leader then stops using its lease
//! as soon as its metrics show the new term (`leased_index` checks them on every read). A stale
//! read would need the new leader to commit a write, and a client to see it, inside that
//! metrics update: the one assumption here beyond the voters' refusals.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::error::{CheckIsLeaderError, Fatal, RaftError as OpenRaftError};
use openraft::{BasicNode, LogId, RaftMetrics, ServerState};

use super::error::{RaftError, Result};
use super::types::Raft;
use crate::coalesce::Rounds;

/// How long after a quorum round started reads may rely on it without another round.
pub(super) const LEASE: Duration = Duration::from_millis(500);

/// How long a group that just started on this node refuses to vote: a voter that restarts within
/// a leader's lease must not help elect a second leader before the lease ends. openraft's own
/// `leader_lease` (`election_timeout_max`).
pub(super) const VOTE_QUIET: Duration = Duration::from_millis(1_000);

type CheckError = OpenRaftError<u64, CheckIsLeaderError<u64, BasicNode>>;

/// What a lease was confirmed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeaseScope {
    term: u64,
    membership: Option<LogId<u64>>,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    until: Instant,
    scope: LeaseScope,
}

/// Handle to the read index of one Raft node.
#[derive(Clone)]
pub(super) struct ReadIndexer {
    raft: Raft,
    node_id: u64,
    lease: Arc<Mutex<Option<Lease>>>,
    /// Non-zero while leadership is being handed over: no read relies on the lease.
    suspended: Arc<AtomicUsize>,
    rounds: Rounds<std::result::Result<u64, CheckError>>,
}

/// While held, reads on this node take quorum rounds instead of the lease.
pub(super) struct LeaseSuspended {
    suspended: Arc<AtomicUsize>,
}

impl Drop for LeaseSuspended {
    fn drop(&mut self) {
        self.suspended.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ReadIndexer {
    /// Starts the round task; it ends when every handle is dropped.
    pub(super) fn start(raft: Raft, node_id: u64) -> Self {
        let lease = Arc::new(Mutex::new(None::<Lease>));
        let suspended = Arc::new(AtomicUsize::new(0));
        let rounds = Rounds::start({
            let (raft, lease, suspended) = (raft.clone(), lease.clone(), suspended.clone());
            move |readers| {
                let (raft, lease, suspended) = (raft.clone(), lease.clone(), suspended.clone());
                async move {
                    metrics::histogram!("gati_raft_reads_per_round").record(readers as f64);
                    let started = Instant::now();
                    let scope = scope_of(&raft);
                    let outcome = raft.get_read_log_id().await.map(|(read, _applied)| read.map_or(0, |id| id.index));
                    // Only a round that stayed in one term and membership proves the lease.
                    if outcome.is_ok() && scope_of(&raft) == scope {
                        // Checked under the lock `suspend_lease` clears the lease under, so a
                        // round that ends during a transfer never leaves a lease behind.
                        let mut held = lease.lock().unwrap_or_else(PoisonError::into_inner);
                        if suspended.load(Ordering::SeqCst) == 0 {
                            *held = Some(Lease { until: started + LEASE, scope });
                        }
                    }
                    outcome
                }
            }
        });
        ReadIndexer { raft, node_id, lease, suspended, rounds }
    }

    /// Stops reads from relying on the lease until the guard drops (see the module docs).
    pub(super) fn suspend_lease(&self) -> LeaseSuspended {
        let mut held = self.lease.lock().unwrap_or_else(PoisonError::into_inner);
        self.suspended.fetch_add(1, Ordering::SeqCst);
        *held = None;
        LeaseSuspended { suspended: self.suspended.clone() }
    }

    /// Returns an index such that a replica that has applied it serves linearizable reads: from
    /// the lease when it holds, otherwise from a quorum round that started after this call.
    pub(super) async fn read_index(&self) -> Result<u64> {
        if let Some(index) = self.leased_index() {
            return Ok(index);
        }
        match self.rounds.next().await {
            Some(outcome) => outcome.map_err(RaftError::from),
            None => Err(Fatal::<u64>::Stopped.into()),
        }
    }

    /// The read index under a valid lease, if this node holds one.
    fn leased_index(&self) -> Option<u64> {
        if self.suspended.load(Ordering::SeqCst) != 0 {
            return None;
        }
        let lease = (*self.lease.lock().unwrap_or_else(PoisonError::into_inner))?;
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leading = metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id);
        (leading && scope(&metrics) == lease.scope && Instant::now() < lease.until)
            .then(|| metrics.last_log_index.unwrap_or(0))
    }
}

fn scope_of(raft: &Raft) -> LeaseScope {
    scope(&raft.metrics().borrow())
}

fn scope(metrics: &RaftMetrics<u64, BasicNode>) -> LeaseScope {
    LeaseScope { term: metrics.current_term, membership: *metrics.membership_config.log_id() }
}
