//! Gati's Jepsen-style harness: it runs a real cluster under faults, records every client operation
//! and checks the recorded history against the guarantees the registry promises.
//!
//! This crate owns the history model ([`history`]: events, operations, JSON lines) and the checkers
//! ([`checker`]: linearizable tag registers, list-append tag histories, blob durability). The runner,
//! clients and nemeses build on both. The harness is black-box: it may talk to the registry only
//! through its public HTTP APIs and must not import the server crates.
//!
//! Semantics every part relies on: an operation completes `ok` (it happened), `fail` (it definitely
//! did not happen) or `info` (indeterminate: it may take effect at any time after its invocation, or
//! never). An `info` is never counted as a failure.
#![warn(missing_docs)]

pub mod checker;
pub mod client;
pub mod cluster;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod report;
pub mod rng;
pub mod runner;
pub mod sim;
pub mod workload;

pub use checker::{
    Anomaly, CheckConfig, Report, Stats, Undecided, Validity, Verdict, check_all, check_all_with, check_operations,
    register::RegisterConfig,
};
pub use history::{BlobRead, Event, EventType, History, Op, Operation, Outcome, ProcessId, Workload};

/// Errors of the harness: unreadable or malformed histories.
///
/// A malformed history is a harness bug, never a finding about the registry, so checkers refuse it
/// instead of reporting a verdict on it.
#[derive(Debug, thiserror::Error)]
pub enum JepsenError {
    /// A JSON line of a history could not be decoded.
    #[error("history line {line}: {source}")]
    Decode {
        /// 1-based line number.
        line: usize,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// An event could not be encoded as JSON.
    #[error("event {index}: cannot encode: {source}")]
    Encode {
        /// Index of the event.
        index: u64,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading or writing a history file failed.
    #[error("history io: {0}")]
    Io(#[from] std::io::Error),
    /// Event indices must strictly increase along the history.
    #[error("event {index}: index does not increase (the previous event has index {previous})")]
    IndexNotIncreasing {
        /// Index of the offending event.
        index: u64,
        /// Index of the event before it.
        previous: u64,
    },
    /// A completion arrived on a process that has no outstanding invocation.
    #[error("event {index}: {kind} completion on {process}, which has no outstanding invocation")]
    CompletionWithoutInvoke {
        /// Index of the completion.
        index: u64,
        /// Its process.
        process: ProcessId,
        /// Its type.
        kind: EventType,
    },
    /// A process invoked an operation while another one of its operations was outstanding.
    #[error("event {index}: {process} invokes while its operation invoked at event {outstanding} is outstanding")]
    ConcurrentInvoke {
        /// Index of the second invocation.
        index: u64,
        /// The process.
        process: ProcessId,
        /// Index of the outstanding invocation.
        outstanding: u64,
    },
    /// A process invoked again after one of its operations ended `info`; the harness must give the
    /// client a fresh process id, since the indeterminate operation may still be in flight.
    #[error("event {index}: {process} invokes again after its operation ended info at event {info_index}")]
    ProcessReusedAfterInfo {
        /// Index of the invocation.
        index: u64,
        /// The process.
        process: ProcessId,
        /// Index of the `info` completion.
        info_index: u64,
    },
    /// A completion names a different operation than its invocation.
    #[error(
        "event {index}: completion `{completion}` does not match invocation `{invocation}` at event {invoke_index}"
    )]
    MismatchedCompletion {
        /// Index of the completion.
        index: u64,
        /// Index of the invocation.
        invoke_index: u64,
        /// The invoked operation.
        invocation: String,
        /// The completed operation.
        completion: String,
    },
    /// The harness could not set up its environment (network namespaces, processes, files).
    #[error("setup: {0}")]
    Setup(String),
    /// The cluster under test misbehaved in a way that stops the run (a node that never became
    /// ready, a membership command refused).
    #[error("cluster: {0}")]
    Cluster(String),
    /// An `ok` read carries no observed value.
    #[error("event {index}: ok completion of {f} carries no observed value")]
    MissingResult {
        /// Index of the completion.
        index: u64,
        /// The operation's function name.
        f: &'static str,
    },
}

/// Sleeps this thread. The harness is synchronous: its threads are its clients and its nemesis,
/// and there is no async runtime a sleep could block.
#[allow(clippy::disallowed_methods, reason = "synchronous harness threads, no async runtime")]
pub(crate) fn pause(duration: std::time::Duration) {
    std::thread::sleep(duration);
}

/// Result type of the harness.
pub type Result<T, E = JepsenError> = std::result::Result<T, E>;
