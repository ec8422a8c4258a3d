//! Coalesced rounds: callers that arrive while a round is in flight share the next one.
//!
//! Some operations are as good for many callers as for one, provided the round *starts after*
//! each caller arrived: a Raft read index (a quorum confirmation that started after the read
//! arrived is valid for it, Raft §6.4) or a follower's request for that index. [`Rounds`] runs
//! such rounds back to back in one task; every caller that arrives while a round is in flight
//! waits for the next round, so a busy node runs one round per round trip instead of one per
//! caller, and a lone caller waits for no timer.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

/// Callers waiting for the next round; senders wait when it is full (backpressure).
const QUEUE_DEPTH: usize = 8_192;

/// Handle to one coalescing task; cheap to clone. The task ends when every handle is dropped.
pub struct Rounds<T> {
    queue: mpsc::Sender<oneshot::Sender<T>>,
}

impl<T> Clone for Rounds<T> {
    fn clone(&self) -> Self {
        Rounds { queue: self.queue.clone() }
    }
}

impl<T: Clone + Send + 'static> Rounds<T> {
    /// Starts the task. `round` is called with the number of callers that share the round, once
    /// per round, never concurrently with itself.
    pub fn start<F, Fut>(mut round: F) -> Self
    where
        F: FnMut(usize) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send,
    {
        let (queue, mut waiting) = mpsc::channel::<oneshot::Sender<T>>(QUEUE_DEPTH);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while waiting.recv_many(&mut batch, QUEUE_DEPTH).await > 0 {
                // Everyone in `batch` arrived before this round starts.
                let outcome = round(batch.len()).await;
                for caller in batch.drain(..) {
                    let _ = caller.send(outcome.clone());
                }
            }
        });
        Rounds { queue }
    }

    /// Waits for the outcome of a round that starts after this call; `None` if the task has
    /// stopped (its runtime is shutting down).
    pub async fn next(&self) -> Option<T> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(reply).await.ok()?;
        outcome.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Rounds;

    #[tokio::test]
    async fn callers_that_wait_together_share_a_round_that_started_after_they_arrived() {
        let started = Arc::new(AtomicUsize::new(0));
        let counter = started.clone();
        let rounds = Rounds::start(move |_| {
            let round = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                round
            }
        });
        // The first caller starts round 1 alone.
        let first = tokio::spawn({
            let rounds = rounds.clone();
            async move { rounds.next().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // These arrive while round 1 is in flight: they must not get its outcome.
        let late: Vec<_> = (0..20)
            .map(|_| {
                let rounds = rounds.clone();
                tokio::spawn(async move { rounds.next().await })
            })
            .collect();
        assert_eq!(first.await.expect("join"), Some(1));
        for caller in late {
            assert_eq!(caller.await.expect("join"), Some(2), "late callers share round 2");
        }
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }
}
