//! The boundary between openraft's async storage calls and the synchronous `gati-meta` stores.
//!
//! Owns what both storage adapters need: running a store call off the async worker threads, and the
//! byte encoding of consensus metadata kept in the stores' opaque values (entries, votes, log ids,
//! applied positions). It may call tokio's blocking pool and `serde_json`; it must not call sled
//! (that stays behind `gati-meta`).
//!
//! Why `spawn_blocking` rather than `block_in_place`: sled calls can block on disk IO (page-ins,
//! segment rotation), and a stalled worker thread on this 2-core machine would stall every task
//! scheduled on it, including openraft's core loop. `block_in_place` avoids a thread hop but panics
//! on a current-thread runtime (the default of `#[tokio::test]`) and makes tokio hand the worker's
//! other tasks to a freshly started worker on every call; `spawn_blocking` works on every runtime
//! flavour and only costs a hand-off to the blocking pool, small next to the fsync that follows
//! every log write.
#![allow(
    clippy::result_large_err,
    reason = "openraft's storage traits fix `StorageError` (over 200 bytes) as the error type"
)]

use openraft::{ErrorSubject, ErrorVerb, StorageIOError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::StorageError;

/// Runs a synchronous store call on tokio's blocking pool and returns its result.
///
/// A panic in `f` is resumed here, in the caller's task, so a bug surfaces as the panic it is
/// rather than as a storage error. If the runtime is shutting down and the call never ran, the
/// result is a storage error with the given `verb`.
pub(super) async fn run_blocking<T, F>(verb: ErrorVerb, f: F) -> Result<T, StorageError>
where
    F: FnOnce() -> Result<T, StorageError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => Err(StorageIOError::new(ErrorSubject::Store, verb, &join).into()),
    }
}

/// Encodes consensus metadata for storage. JSON: small values, readable in a debugger, and the
/// same encoding openraft's serde derives were written for.
pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(value)
}

/// Decodes what [`encode`] wrote.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Builds the storage error openraft expects from any error: what was touched, how, and why.
pub(super) fn storage_error<E>(subject: ErrorSubject<u64>, verb: ErrorVerb, error: &E) -> StorageError
where
    E: std::error::Error + 'static,
{
    StorageIOError::new(subject, verb, error).into()
}

/// Creates the pair that lets a node learn when openraft has let go of its storage adapters.
///
/// openraft 0.9's `Raft::shutdown` joins only its core task; the state-machine worker and any
/// snapshot build still running hold adapter clones, hence database handles, a little longer.
/// Every adapter carries an [`AdaptersAlive`]; [`AdaptersGone::wait`] returns once all are
/// dropped, so a node can be stopped and its database reopened in the same process.
pub(super) fn adapter_liveness() -> (AdaptersAlive, AdaptersGone) {
    let (alive, gone) = tokio::sync::mpsc::channel(1);
    (AdaptersAlive(alive), AdaptersGone(gone))
}

/// Held by every storage adapter clone; dropping the last one completes [`AdaptersGone::wait`].
/// Nothing is ever sent: only the channel closing carries information.
#[derive(Clone)]
pub(super) struct AdaptersAlive(
    #[allow(dead_code, reason = "held only for its drop")] tokio::sync::mpsc::Sender<std::convert::Infallible>,
);

/// Learns when every [`AdaptersAlive`] is gone.
pub(super) struct AdaptersGone(tokio::sync::mpsc::Receiver<std::convert::Infallible>);

impl AdaptersGone {
    /// Returns once every adapter is dropped; at once if they already are.
    pub(super) async fn wait(&mut self) {
        match self.0.recv().await {
            None => {}
            Some(never) => match never {},
        }
    }
}

/// How far the state machine's stored state is known to be durable (the index of the last entry
/// it reflects), shared by the state machine adapter, which advances it, and the log adapter,
/// which waits on it before purging.
///
/// The state and the log are separate stores, and after a crash the state must never be older
/// than the log's first entry, or the entries in between could not be re-applied. openraft
/// purges the log right after installing a snapshot, without waiting for the install to finish,
/// so the purge waits here until the installed state is durable.
#[derive(Clone)]
pub(super) struct DurableState(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl DurableState {
    pub(super) fn new(index: u64) -> Self {
        DurableState(std::sync::Arc::new(tokio::sync::watch::Sender::new(index)))
    }

    /// Records that the state is durable through `index` (never moves back).
    pub(super) fn advance(&self, index: u64) {
        self.0.send_if_modified(|durable| {
            let moved = index > *durable;
            *durable = (*durable).max(index);
            moved
        });
    }

    /// Whether the state is durable through `index` now.
    pub(super) fn covers(&self, index: u64) -> bool {
        *self.0.borrow() >= index
    }

    /// A watcher for the background purger. It holds no sender, so once every adapter is gone
    /// its waits end (with `false`) instead of keeping the purger, and the store, alive.
    pub(super) fn watch(&self) -> DurableWatch {
        DurableWatch(self.0.subscribe())
    }
}

/// Waits on a [`DurableState`] without keeping it alive.
pub(super) struct DurableWatch(tokio::sync::watch::Receiver<u64>);

impl DurableWatch {
    /// Returns `true` once the state is durable through `index`, or `false` if every adapter was
    /// dropped first.
    pub(super) async fn reached(&mut self, index: u64) -> bool {
        self.0.wait_for(|durable| *durable >= index).await.is_ok()
    }
}
