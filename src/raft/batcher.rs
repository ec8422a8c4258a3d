//! Group commit: concurrent proposals share one Raft log entry.
//!
//! openraft 0.9 appends and flushes each `client_write` on its own, so without grouping the write
//! rate is capped at one log flush per command. The batcher keeps `pipeline` entries in flight
//! (one by default); commands that arrive while every slot is busy queue up and travel together
//! in the next entry, so under load each flush and replication round commits many commands, while
//! a lone command waits for no timer. A deeper pipeline appends and replicates the next entry
//! while earlier ones commit, which pays off only when the network round trip dominates: every
//! entry costs each replica a message, an fsync and an apply, and on CPU-bound nodes four small
//! entries in flight measured slower than one large one (`bench/NOTES.md`). Commands keep their arrival
//! order, and the state machine applies an entry's commands in order and atomically
//! (`gati_meta::StateMachine::apply`), so grouping is invisible to callers.

use gati_core::{Applied, Command, GroupId, Proposal};
use openraft::BasicNode;
use openraft::error::{ClientWriteError, Fatal, RaftError as OpenRaftError};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::error::{RaftError, Result};
use super::types::Raft;

/// The most commands one log entry carries; bounds entry size and apply latency.
const MAX_COMMANDS_PER_ENTRY: usize = 512;
/// Proposals waiting for a batch; senders wait when it is full (backpressure).
const QUEUE_DEPTH: usize = 4_096;

type WriteError = OpenRaftError<u64, ClientWriteError<u64, BasicNode>>;

struct Waiting {
    command: Command,
    reply: oneshot::Sender<std::result::Result<Applied, WriteError>>,
}

/// Handle to the batching task of one Raft node.
#[derive(Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Waiting>,
    /// One permit per entry in flight; holding them all holds new entries back.
    slots: Arc<Semaphore>,
    pipeline: u32,
}

/// While held, the batcher submits no new log entry; proposals queue up and go when it drops.
pub(super) struct Paused {
    _slots: OwnedSemaphorePermit,
}

impl Batcher {
    /// Starts the batching task; it ends when every handle is dropped.
    pub(super) fn start(raft: Raft, group: GroupId, pipeline: usize) -> Self {
        let pipeline = u32::try_from(pipeline.max(1)).unwrap_or(u32::MAX);
        let (queue, waiting) = mpsc::channel(QUEUE_DEPTH);
        let slots = Arc::new(Semaphore::new(pipeline as usize));
        tokio::spawn(run(raft, group, slots.clone(), waiting));
        Batcher { queue, slots, pipeline }
    }

    /// Waits until every entry in flight has its outcome, then holds new entries back until the
    /// returned guard drops (a leadership transfer needs the log to stand still).
    pub(super) async fn pause(&self) -> Option<Paused> {
        let slots = self.slots.clone().acquire_many_owned(self.pipeline).await.ok()?;
        Some(Paused { _slots: slots })
    }

    /// Proposes one command and waits for its outcome.
    pub(super) async fn propose(&self, command: Command) -> Result<Applied> {
        let (reply, outcome) = oneshot::channel();
        let stopped = || RaftError::from(Fatal::<u64>::Stopped);
        self.queue.send(Waiting { command, reply }).await.map_err(|_| stopped())?;
        match outcome.await {
            Ok(result) => result.map_err(RaftError::from),
            Err(_) => Err(stopped()),
        }
    }
}

async fn run(raft: Raft, group: GroupId, slots: Arc<Semaphore>, mut waiting: mpsc::Receiver<Waiting>) {
    let mut batch = Vec::with_capacity(MAX_COMMANDS_PER_ENTRY);
    let entry_commands = metrics::histogram!("gati_raft_commands_per_entry", "group" => group.name());
    let commit_seconds = metrics::histogram!("gati_raft_proposal_seconds", "group" => group.name());
    loop {
        // A command first, then a free slot, then whatever has queued by then: while every slot
        // is busy, commands gather into the next entry. An idle batcher holds no slot, so
        // `pause` never waits for traffic.
        if waiting.recv_many(&mut batch, MAX_COMMANDS_PER_ENTRY).await == 0 {
            return;
        }
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        while batch.len() < MAX_COMMANDS_PER_ENTRY {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<Command>, Vec<_>) = batch.drain(..).map(|w| (w.command, w.reply)).unzip();
        let count = commands.len();
        entry_commands.record(count as f64);
        let started = std::time::Instant::now();
        // Submitted in order: the log order is the order commands left the queue.
        let submitted = raft.client_write_ff(Proposal { commands }).await;
        let commit_seconds = commit_seconds.clone();
        tokio::spawn(async move {
            let outcome: Result<_, WriteError> = match submitted {
                Err(fatal) => Err(OpenRaftError::Fatal(fatal)),
                Ok(receiver) => match receiver.await {
                    Ok(written) => written.map_err(OpenRaftError::APIError),
                    // The core dropped the request: it is shutting down.
                    Err(_) => Err(OpenRaftError::Fatal(Fatal::Stopped)),
                },
            };
            drop(slot);
            commit_seconds.record(started.elapsed().as_secs_f64());
            match outcome {
                Ok(response) => {
                    let outcomes = response.data.outcomes;
                    debug_assert_eq!(outcomes.len(), count, "one outcome per command");
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(Ok(outcome));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}
