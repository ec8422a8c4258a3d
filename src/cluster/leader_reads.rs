//! Follower reads' requests for their leaders' read indexes, batched per leader node.
//!
//! A linearizable read on a follower needs a read index that its group's leader confirmed after
//! the read arrived (Raft §6.4; see `crate::raft`). Reads waiting on the same leader node share
//! one `ReadIndex` call whatever their groups: while a call to a node is in flight, reads for that
//! node queue up, and the next call carries every group they need. A follower therefore sends at
//! most one call per leader node per round trip, however many shards that node leads and however
//! many reads wait, which keeps the leaders' share of follower reads small as shards and nodes
//! grow.
//!
//! Owns the batching task. It may call [`forward::read_index`]; the retry policy stays with the
//! caller ([`super::linearizable`]).

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use gati_core::GroupId;
use tokio::sync::{mpsc, oneshot};

use super::forward::{self, ReadIndex};
use crate::raft::Peers;

/// Reads waiting for a call; senders wait when it is full (backpressure).
const QUEUE_DEPTH: usize = 8_192;

/// A read waiting for its group's read index from the leader at `addr`.
struct Wanted {
    group: GroupId,
    addr: String,
    reply: oneshot::Sender<ReadIndex>,
}

/// Handle to the batching task; cheap to clone. The task ends when every handle is dropped.
#[derive(Clone)]
pub(super) struct LeaderReads {
    queue: mpsc::Sender<Wanted>,
}

impl LeaderReads {
    pub(super) fn start(peers: Peers) -> Self {
        let (queue, wanted) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(peers, wanted));
        LeaderReads { queue }
    }

    /// Returns `group`'s read index from the leader at `addr`, confirmed by a call that started
    /// after this one was made; `None` if the task has stopped (the runtime is shutting down).
    pub(super) async fn read_index(&self, group: GroupId, addr: String) -> Option<ReadIndex> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Wanted { group, addr, reply }).await.ok()?;
        answer.await.ok()
    }
}

/// One call's result: the leader's address, the reads it serves, the groups it asked for (in the
/// call's order) and the leader's answer.
type Answered = (String, Vec<Wanted>, Vec<GroupId>, Result<Vec<ReadIndex>, forward::ForwardError>);

async fn run(peers: Peers, mut queue: mpsc::Receiver<Wanted>) {
    let mut waiting: HashMap<String, Vec<Wanted>> = HashMap::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut calls: FuturesUnordered<BoxFuture<'static, Answered>> = FuturesUnordered::new();
    loop {
        let addr = tokio::select! {
            wanted = queue.recv() => {
                let Some(wanted) = wanted else { return };
                let addr = wanted.addr.clone();
                waiting.entry(addr.clone()).or_default().push(wanted);
                addr
            }
            Some((addr, served, groups, answer)) = calls.next(), if !calls.is_empty() => {
                reply(served, &groups, answer);
                in_flight.remove(&addr);
                addr
            }
        };
        // One call per leader node at a time; the reads that queued meanwhile go in the next.
        if in_flight.contains(&addr) {
            continue;
        }
        let Some(batch) = waiting.remove(&addr).filter(|batch| !batch.is_empty()) else { continue };
        let mut groups: Vec<GroupId> = batch.iter().map(|w| w.group).collect();
        groups.sort_unstable();
        groups.dedup();
        in_flight.insert(addr.clone());
        let peers = peers.clone();
        calls.push(Box::pin(async move {
            let answer = forward::read_index(&peers, &addr, &groups).await;
            (addr, batch, groups, answer)
        }));
    }
}

/// Hands each read its group's answer.
fn reply(served: Vec<Wanted>, groups: &[GroupId], answer: Result<Vec<ReadIndex>, forward::ForwardError>) {
    for wanted in served {
        let outcome = match &answer {
            Ok(indexes) => match groups.iter().position(|g| *g == wanted.group).and_then(|i| indexes.get(i)) {
                Some(outcome) => outcome.clone(),
                None => ReadIndex::Failed("the leader's answer left out a group".to_owned()),
            },
            Err(error) => ReadIndex::Failed(error.to_string()),
        };
        let _ = wanted.reply.send(outcome);
    }
}
