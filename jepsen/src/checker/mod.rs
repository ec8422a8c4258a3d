//! Checkers: each takes the paired operations of a history and returns a [`Verdict`].
//!
//! - [`register`]: tags are linearizable compare-and-set registers (WGL search, per key).
//! - [`list_append`]: per-key append-only lists read as a whole (duplicates, one total order, no
//!   lost, failed, phantom or stale elements).
//! - [`durability`]: every acknowledged blob is readable, intact, from every node after healing.
//!
//! [`check_all`] pairs a history, splits it by workload and runs each checker. Checkers only read
//! [`Operation`]s; they never talk to a cluster.

pub mod durability;
pub mod list_append;
pub mod register;
mod verdict;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use self::verdict::{Anomaly, BlockedOp, FrontierConfig, Stats, Undecided, Validity, Verdict};
use crate::Result;
use crate::history::{History, Operation, Workload};

/// Settings of [`check_all_with`].
#[derive(Clone, Debug, Default)]
pub struct CheckConfig {
    /// Settings of the register checker.
    pub register: register::RegisterConfig,
}

/// The verdicts of every workload present in a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// All verdicts combined (see [`Validity::and`]).
    pub valid: Validity,
    /// Register (tag) verdict, if the history has register operations.
    pub register: Option<Verdict>,
    /// List-append verdict, if the history has list operations.
    pub list_append: Option<Verdict>,
    /// Blob durability verdict, if the history has blob operations.
    pub durability: Option<Verdict>,
}

impl Report {
    /// Returns true only when every workload present was proven valid.
    pub fn is_valid(&self) -> bool {
        self.valid == Validity::Valid
    }

    /// Returns every anomaly of every workload.
    pub fn anomalies(&self) -> impl Iterator<Item = &Anomaly> {
        [&self.register, &self.list_append, &self.durability].into_iter().flatten().flat_map(|v| v.anomalies.iter())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts =
            [("register", &self.register), ("list-append", &self.list_append), ("durability", &self.durability)];
        for (name, verdict) in parts {
            if let Some(verdict) = verdict {
                writeln!(f, "{name}: {verdict}")?;
            }
        }
        write!(f, "overall: {}", self.valid)
    }
}

/// Checks every workload of a history with default settings.
///
/// Fails on a malformed history (see [`History::operations`]) instead of judging it.
pub fn check_all(history: &History) -> Result<Report> {
    check_all_with(history, &CheckConfig::default())
}

/// Checks every workload of a history.
pub fn check_all_with(history: &History, config: &CheckConfig) -> Result<Report> {
    let operations = history.operations()?;
    Ok(check_operations(&operations, config))
}

/// Checks every workload of already paired operations.
pub fn check_operations(operations: &[Operation], config: &CheckConfig) -> Report {
    let has = |workload: Workload| operations.iter().any(|o| o.op.workload() == workload);
    let register = has(Workload::Register).then(|| register::check(operations, &config.register));
    let list_append = has(Workload::ListAppend).then(|| list_append::check(operations));
    let durability = has(Workload::Blobs).then(|| durability::check(operations));
    let valid =
        [&register, &list_append, &durability].into_iter().flatten().fold(Validity::Valid, |acc, v| acc.and(v.valid));
    Report { valid, register, list_append, durability }
}

/// Returns nanoseconds elapsed since `start`, saturated.
pub(crate) fn elapsed_ns(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
