//! What a checker returns: the [`Verdict`], the [`Anomaly`] kinds every checker may report, and
//! their human-readable forms. Pure data; calls nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::{Operation, TagValue};

/// Whether a history satisfies the property checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// No anomaly exists (for the register: a linearization was found for every key).
    Valid,
    /// At least one anomaly was found.
    Invalid,
    /// The check ran out of budget before deciding; never to be read as valid.
    Unknown,
}

impl Validity {
    /// Returns the validity of two checks together: any anomaly makes the whole invalid, any
    /// undecided part makes an otherwise clean whole unknown.
    pub fn and(self, other: Validity) -> Validity {
        match (self, other) {
            (Validity::Invalid, _) | (_, Validity::Invalid) => Validity::Invalid,
            (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
            _ => Validity::Valid,
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Validity::Valid => "valid",
            Validity::Invalid => "INVALID",
            Validity::Unknown => "UNKNOWN",
        })
    }
}

/// Counters of one check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Operations of the checker's workload in the history (every outcome).
    pub ops_checked: u64,
    /// Distinct keys (tags, lists or blob digests).
    pub keys: u64,
    /// Search states explored (register checker, including shrinking); 0 for the other checkers.
    pub states_explored: u64,
    /// Wall-clock time of the check.
    pub elapsed_ns: u64,
}

/// A part of the history the checker could not decide, with why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undecided {
    /// The key left undecided.
    pub key: String,
    /// Why, e.g. which search limit was hit.
    pub reason: String,
}

/// The outcome of one checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The overall validity.
    pub valid: Validity,
    /// Every anomaly found.
    pub anomalies: Vec<Anomaly>,
    /// Keys the checker could not decide; non-empty only when `valid` is not `Valid`.
    pub undecided: Vec<Undecided>,
    /// Counters.
    pub stats: Stats,
}

impl Verdict {
    /// Returns the verdict for these findings: invalid with any anomaly, else unknown with any
    /// undecided key, else valid.
    pub fn from_findings(anomalies: Vec<Anomaly>, undecided: Vec<Undecided>, stats: Stats) -> Verdict {
        let valid = if !anomalies.is_empty() {
            Validity::Invalid
        } else if !undecided.is_empty() {
            Validity::Unknown
        } else {
            Validity::Valid
        };
        Verdict { valid, anomalies, undecided, stats }
    }

    /// Returns true only when the history was proven to satisfy the property.
    pub fn is_valid(&self) -> bool {
        self.valid == Validity::Valid
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} ops, {} keys, {} states, {:.1} ms)",
            self.valid,
            self.stats.ops_checked,
            self.stats.keys,
            self.stats.states_explored,
            self.stats.elapsed_ns as f64 / 1e6
        )?;
        for anomaly in &self.anomalies {
            write!(f, "\n  - {anomaly}")?;
        }
        for undecided in &self.undecided {
            write!(f, "\n  - undecided: key {}: {}", undecided.key, undecided.reason)?;
        }
        Ok(())
    }
}

/// A configuration where the linearizability search got stuck: after linearizing some operations,
/// none of the pending ones can take effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontierConfig {
    /// Invocation indices of the operations linearized, in linearization order.
    pub linearized: Vec<u64>,
    /// The register's value there (None: the tag does not exist).
    pub state: Option<String>,
    /// Operations that would have to take effect next but cannot, with why.
    pub blocked: Vec<BlockedOp>,
}

/// An operation that cannot take effect in a [`FrontierConfig`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedOp {
    /// Invocation index of the operation.
    pub invoke_index: u64,
    /// Why it cannot take effect there.
    pub reason: String,
}

/// A violation found by a checker. Each carries the operations involved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anomaly {
    /// Register: no linearization of the key's operations exists.
    NonLinearizable {
        /// The tag.
        key: String,
        /// A failing sub-history of the key, shrunk by removing operations while it stays
        /// non-linearizable.
        ops: Vec<Operation>,
        /// True when no single operation of `ops` can be removed (shrinking ran to completion).
        minimal: bool,
        /// Why no linearization exists, for humans.
        explanation: String,
        /// The furthest configurations the search reached on `ops`.
        frontier: Vec<FrontierConfig>,
    },
    /// List-append: an element appears more than once in one read.
    DuplicateElements {
        /// The list.
        key: String,
        /// The repeated elements.
        elements: Vec<u64>,
        /// The read.
        read: Operation,
    },
    /// List-append: two reads disagree on the order (neither is a prefix of the other).
    IncompatibleOrder {
        /// The list.
        key: String,
        /// A read.
        read: Operation,
        /// The longest read of the key, which `read` is not a prefix of.
        other: Operation,
        /// First position where they differ.
        position: usize,
    },
    /// List-append: an element whose append failed is visible.
    FailedAppendVisible {
        /// The list.
        key: String,
        /// The element.
        element: u64,
        /// The failed append.
        append: Operation,
        /// A read showing it.
        read: Operation,
    },
    /// List-append: a read shows an element nobody appended to this key.
    PhantomElement {
        /// The list.
        key: String,
        /// The element.
        element: u64,
        /// The read.
        read: Operation,
    },
    /// List-append: a read misses elements whose appends completed `ok` before it was invoked.
    StaleRead {
        /// The list.
        key: String,
        /// The read.
        read: Operation,
        /// The missing elements.
        missing: Vec<u64>,
        /// Their appends, in the order of `missing`.
        appends: Vec<Operation>,
    },
    /// List-append: a read invoked after another read completed shows fewer elements.
    ReadRegression {
        /// The list.
        key: String,
        /// The earlier, longer read.
        earlier: Operation,
        /// The later, shorter read.
        later: Operation,
    },
    /// List-append: a read completed before an element's append was invoked, yet shows it.
    ElementBeforeAppend {
        /// The list.
        key: String,
        /// The element.
        element: u64,
        /// The append.
        append: Operation,
        /// The read.
        read: Operation,
    },
    /// List-append: an `ok` append is missing from the key's final read.
    LostAppend {
        /// The list.
        key: String,
        /// The element.
        element: u64,
        /// The append.
        append: Operation,
        /// The key's final read.
        final_read: Operation,
    },
    /// Blobs: an acknowledged blob cannot be read from a node.
    BlobMissing {
        /// The blob.
        digest: String,
        /// The node read.
        node: Option<String>,
        /// The acknowledged upload.
        put: Operation,
        /// The read that found nothing; None when the history has no `ok` final read of it there.
        read: Option<Operation>,
        /// True for the final reads after healing, false for a read-after-write during the test.
        final_read: bool,
    },
    /// Blobs: a node served content that does not match the digest or the acknowledged size.
    BlobCorrupt {
        /// The blob.
        digest: String,
        /// The node read.
        node: Option<String>,
        /// The read.
        read: Operation,
        /// The size acknowledged by an `ok` upload, if any.
        expected_size: Option<u64>,
        /// sha256 of the bytes served.
        observed_sha256: String,
        /// Length of the bytes served.
        observed_size: u64,
    },
}

impl Anomaly {
    /// Returns the anomaly's kind, as written in the `kind` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Anomaly::NonLinearizable { .. } => "non_linearizable",
            Anomaly::DuplicateElements { .. } => "duplicate_elements",
            Anomaly::IncompatibleOrder { .. } => "incompatible_order",
            Anomaly::FailedAppendVisible { .. } => "failed_append_visible",
            Anomaly::PhantomElement { .. } => "phantom_element",
            Anomaly::StaleRead { .. } => "stale_read",
            Anomaly::ReadRegression { .. } => "read_regression",
            Anomaly::ElementBeforeAppend { .. } => "element_before_append",
            Anomaly::LostAppend { .. } => "lost_append",
            Anomaly::BlobMissing { .. } => "blob_missing",
            Anomaly::BlobCorrupt { .. } => "blob_corrupt",
        }
    }
}

fn node_name(node: &Option<String>) -> &str {
    node.as_deref().unwrap_or("an unnamed node")
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::NonLinearizable { key, ops, minimal, explanation, .. } => {
                let shrunk = if *minimal { "minimal" } else { "shrunk" };
                write!(
                    f,
                    "non-linearizable tag {key}: {explanation}; {shrunk} failing sub-history ({} ops):",
                    ops.len()
                )?;
                for op in ops {
                    write!(f, "\n      {op}")?;
                }
                Ok(())
            }
            Anomaly::DuplicateElements { key, elements, read } => {
                write!(f, "duplicate elements {elements:?} in list {key}: {read}")
            }
            Anomaly::IncompatibleOrder { key, read, other, position } => {
                write!(f, "incompatible orders of list {key} at position {position}: {read} vs {other}")
            }
            Anomaly::FailedAppendVisible { key, element, append, read } => {
                write!(f, "failed append of {element} to list {key} is visible: {append}; seen by {read}")
            }
            Anomaly::PhantomElement { key, element, read } => {
                write!(f, "element {element} never appended to list {key} is visible: {read}")
            }
            Anomaly::StaleRead { key, read, missing, .. } => {
                write!(f, "stale read of list {key}: {read} misses {missing:?}, appended ok before it was invoked")
            }
            Anomaly::ReadRegression { key, earlier, later } => {
                write!(f, "read regression on list {key}: {later} shows less than the earlier {earlier}")
            }
            Anomaly::ElementBeforeAppend { key, element, append, read } => {
                write!(f, "element {element} of list {key} visible before its append was invoked: {read}; {append}")
            }
            Anomaly::LostAppend { key, element, append, final_read } => {
                write!(f, "lost append of {element} to list {key}: {append}; final read {final_read}")
            }
            Anomaly::BlobMissing { digest, node, read, final_read, .. } => {
                let when = if *final_read { "final read" } else { "read after an acknowledged put" };
                match read {
                    Some(read) => write!(f, "blob {digest} missing on {} ({when}): {read}", node_name(node)),
                    None => write!(f, "blob {digest} has no ok {when} on {}", node_name(node)),
                }
            }
            Anomaly::BlobCorrupt { digest, node, read, expected_size, observed_sha256, observed_size } => {
                write!(
                    f,
                    "blob {digest} corrupt on {}: served {observed_sha256} ({observed_size} B), expected size {}: {read}",
                    node_name(node),
                    expected_size.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                )
            }
        }
    }
}

impl fmt::Display for FrontierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "after {:?} the tag holds {}; blocked:", self.linearized, TagValue(self.state.as_deref()))?;
        for blocked in &self.blocked {
            write!(f, " #{}: {};", blocked.invoke_index, blocked.reason)?;
        }
        Ok(())
    }
}
