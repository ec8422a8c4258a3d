//! Batched read index: concurrent linearizable reads share one leadership confirmation.
//!
//! A linearizable read needs a read index obtained by a quorum round that *started after the read
//! arrived* (Raft §6.4). openraft runs one heartbeat round per request, which would cap reads at
//! one round trip each. Here one task runs rounds back to back: every read that arrives while a
//! round is in flight waits for the next one, which starts after it arrived, so each read gets
//! an index that is safe for it while a busy leader confirms leadership once per round, not once
//! per read. No clocks or leases are involved.

use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, Fatal, RaftError as OpenRaftError};
use tokio::sync::{mpsc, oneshot};

use super::error::{RaftError, Result};
use super::types::Raft;

/// Reads waiting for the next round; senders wait when it is full (backpressure).
const QUEUE_DEPTH: usize = 8_192;

type CheckError = OpenRaftError<u64, CheckIsLeaderError<u64, BasicNode>>;
type Reply = oneshot::Sender<std::result::Result<u64, CheckError>>;

/// Handle to the read-index task of one Raft node.
#[derive(Clone)]
pub(super) struct ReadIndexer {
    queue: mpsc::Sender<Reply>,
}

impl ReadIndexer {
    /// Starts the task; it ends when every handle is dropped.
    pub(super) fn start(raft: Raft) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(raft, waiting));
        ReadIndexer { queue }
    }

    /// Returns a read index confirmed by a quorum round that started after this call.
    pub(super) async fn read_index(&self) -> Result<u64> {
        let (reply, index) = oneshot::channel();
        let stopped = || RaftError::from(Fatal::<u64>::Stopped);
        self.queue.send(reply).await.map_err(|_| stopped())?;
        match index.await {
            Ok(result) => result.map_err(RaftError::from),
            Err(_) => Err(stopped()),
        }
    }
}

async fn run(raft: Raft, mut waiting: mpsc::Receiver<Reply>) {
    let mut batch = Vec::new();
    while waiting.recv_many(&mut batch, QUEUE_DEPTH).await > 0 {
        // Every read in `batch` arrived before this round starts.
        let outcome = raft.get_read_log_id().await.map(|(read, _applied)| read.map_or(0, |id| id.index));
        metrics::histogram!("gati_raft_reads_per_round").record(batch.len() as f64);
        for reply in batch.drain(..) {
            let _ = reply.send(outcome.clone());
        }
    }
}
