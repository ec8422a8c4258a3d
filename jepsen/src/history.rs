//! The history model: what the harness records about client operations, how it is stored (JSON
//! lines, one event per line) and how invocations are paired with their completions.
//!
//! Owns [`Event`], [`Op`], [`History`] and [`Operation`]. It calls nothing but serde; checkers read
//! paired [`Operation`]s and never re-pair events themselves.
//!
//! Order: the global event `index` is the real-time order the checkers use. An operation A precedes
//! B in real time when A's completion index is below B's invocation index. `time_ns` is informative
//! only (it orders events of one client but is taken before the recorder's lock).

use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::{JepsenError, Result};

/// Identifies a logical client. A process has at most one outstanding operation, and a client whose
/// operation ended `info` continues under a fresh process id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessId(pub u64);

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// The type of an event: an invocation or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client sent the request.
    Invoke,
    /// The operation definitely happened.
    Ok,
    /// The operation definitely did not happen (for a conditional tag update: the server answered 412).
    Fail,
    /// Indeterminate (timeout, lost answer): the operation may take effect at any time after its
    /// invocation, or never.
    Info,
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        })
    }
}

/// What a blob read observed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum BlobRead {
    /// The node served content: the hex sha256 of the bytes received (a `sha256:` prefix is
    /// accepted) and their length.
    Found {
        /// sha256 of the bytes received.
        sha256: String,
        /// Number of bytes received.
        size: u64,
    },
    /// The node answered that the blob does not exist.
    Missing,
}

/// The workload an operation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Tags as compare-and-set registers.
    Register,
    /// Per-key append-only lists.
    ListAppend,
    /// Blob puts and reads.
    Blobs,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Register => "register",
            Workload::ListAppend => "list-append",
            Workload::Blobs => "blobs",
        })
    }
}

/// A typed client operation; `f` names the function in JSON.
///
/// The invocation carries the arguments; an `ok` completion repeats them and, for reads, carries
/// the observed value (`value` is absent on the invocation).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum Op {
    /// Register: resolve tag `key`. The observed value is `Some(None)` when the tag does not exist
    /// (`"value": null` in JSON) and `Some(Some(digest))` otherwise.
    Read {
        /// Tag name.
        key: String,
        /// Observed manifest digest; absent until the read completes `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "observed_tag")]
        value: Option<Option<String>>,
    },
    /// Register: unconditional PUT of manifest `value` under tag `key`.
    Write {
        /// Tag name.
        key: String,
        /// Manifest digest written.
        value: String,
    },
    /// Register: conditional PUT (`If-Match: expected`, or `If-None-Match: *` when `expected` is None).
    Cas {
        /// Tag name.
        key: String,
        /// Digest the tag must hold; None = the tag must not exist.
        expected: Option<String>,
        /// Digest written when the precondition holds.
        new: String,
    },
    /// List-append: append `element` to list `key`.
    Append {
        /// List name.
        key: String,
        /// Appended element; unique per key within a test.
        element: u64,
    },
    /// List-append: read list `key`.
    ReadList {
        /// List name.
        key: String,
        /// Observed list, in order; absent until the read completes `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<Vec<u64>>,
    },
    /// Blobs: upload a blob.
    PutBlob {
        /// Digest of the blob (`sha256:<hex>`).
        digest: String,
        /// Size in bytes.
        size: u64,
    },
    /// Blobs: download a blob.
    GetBlob {
        /// Digest requested.
        digest: String,
        /// What the node served; absent until the read completes `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<BlobRead>,
    },
}

/// Serde helper telling an absent register read value (not observed yet) from `null` (the tag does
/// not exist).
mod observed_tag {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Option<Option<String>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
}

impl Op {
    /// Returns a register read invocation of tag `key`.
    pub fn read(key: impl Into<String>) -> Op {
        Op::Read { key: key.into(), value: None }
    }

    /// Returns a completed register read of tag `key` that observed `value` (None: no such tag).
    pub fn read_ok(key: impl Into<String>, value: Option<&str>) -> Op {
        Op::Read { key: key.into(), value: Some(value.map(str::to_owned)) }
    }

    /// Returns an unconditional write of digest `value` to tag `key`.
    pub fn write(key: impl Into<String>, value: impl Into<String>) -> Op {
        Op::Write { key: key.into(), value: value.into() }
    }

    /// Returns a compare-and-set of tag `key` from `expected` (None: the tag must not exist) to `new`.
    pub fn cas(key: impl Into<String>, expected: Option<&str>, new: impl Into<String>) -> Op {
        Op::Cas { key: key.into(), expected: expected.map(str::to_owned), new: new.into() }
    }

    /// Returns an append of `element` to list `key`.
    pub fn append(key: impl Into<String>, element: u64) -> Op {
        Op::Append { key: key.into(), element }
    }

    /// Returns a list read invocation of `key`.
    pub fn read_list(key: impl Into<String>) -> Op {
        Op::ReadList { key: key.into(), value: None }
    }

    /// Returns a completed list read of `key` that observed `value`.
    pub fn read_list_ok(key: impl Into<String>, value: Vec<u64>) -> Op {
        Op::ReadList { key: key.into(), value: Some(value) }
    }

    /// Returns a blob upload.
    pub fn put_blob(digest: impl Into<String>, size: u64) -> Op {
        Op::PutBlob { digest: digest.into(), size }
    }

    /// Returns a blob read invocation.
    pub fn get_blob(digest: impl Into<String>) -> Op {
        Op::GetBlob { digest: digest.into(), value: None }
    }

    /// Returns a completed blob read that received `size` bytes hashing to `sha256`.
    pub fn get_blob_found(digest: impl Into<String>, sha256: impl Into<String>, size: u64) -> Op {
        Op::GetBlob { digest: digest.into(), value: Some(BlobRead::Found { sha256: sha256.into(), size }) }
    }

    /// Returns a completed blob read whose node answered that the blob does not exist.
    pub fn get_blob_missing(digest: impl Into<String>) -> Op {
        Op::GetBlob { digest: digest.into(), value: Some(BlobRead::Missing) }
    }

    /// Returns the function name, as written in the `f` field.
    pub fn f(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Write { .. } => "write",
            Op::Cas { .. } => "cas",
            Op::Append { .. } => "append",
            Op::ReadList { .. } => "read_list",
            Op::PutBlob { .. } => "put_blob",
            Op::GetBlob { .. } => "get_blob",
        }
    }

    /// Returns the workload the operation belongs to.
    pub fn workload(&self) -> Workload {
        match self {
            Op::Read { .. } | Op::Write { .. } | Op::Cas { .. } => Workload::Register,
            Op::Append { .. } | Op::ReadList { .. } => Workload::ListAppend,
            Op::PutBlob { .. } | Op::GetBlob { .. } => Workload::Blobs,
        }
    }

    /// Returns the object the operation addresses: the tag, the list key or the blob digest.
    pub fn key(&self) -> &str {
        match self {
            Op::Read { key, .. }
            | Op::Write { key, .. }
            | Op::Cas { key, .. }
            | Op::Append { key, .. }
            | Op::ReadList { key, .. } => key,
            Op::PutBlob { digest, .. } | Op::GetBlob { digest, .. } => digest,
        }
    }

    /// Returns true for reads, whose `ok` completion must carry the observed value.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read { .. } | Op::ReadList { .. } | Op::GetBlob { .. })
    }

    /// Returns true when a read carries its observed value (always true for non-reads).
    pub fn has_result(&self) -> bool {
        match self {
            Op::Read { value, .. } => value.is_some(),
            Op::ReadList { value, .. } => value.is_some(),
            Op::GetBlob { value, .. } => value.is_some(),
            _ => true,
        }
    }

    /// Returns the operation with any observed value removed: what was invoked.
    pub fn without_result(&self) -> Op {
        match self {
            Op::Read { key, .. } => Op::Read { key: key.clone(), value: None },
            Op::ReadList { key, .. } => Op::ReadList { key: key.clone(), value: None },
            Op::GetBlob { digest, .. } => Op::GetBlob { digest: digest.clone(), value: None },
            other => other.clone(),
        }
    }
}

/// Formats an optional digest: `absent` stands for a tag that does not exist.
pub(crate) struct TagValue<'a>(pub(crate) Option<&'a str>);

impl fmt::Display for TagValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.unwrap_or("absent"))
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Read { key, value: None } => write!(f, "read {key}"),
            Op::Read { key, value: Some(v) } => write!(f, "read {key} -> {}", TagValue(v.as_deref())),
            Op::Write { key, value } => write!(f, "write {key} {value}"),
            Op::Cas { key, expected, new } => write!(f, "cas {key} {} -> {new}", TagValue(expected.as_deref())),
            Op::Append { key, element } => write!(f, "append {key} {element}"),
            Op::ReadList { key, value: None } => write!(f, "read_list {key}"),
            Op::ReadList { key, value: Some(v) } => write!(f, "read_list {key} -> {v:?}"),
            Op::PutBlob { digest, size } => write!(f, "put_blob {digest} ({size} B)"),
            Op::GetBlob { digest, value: None } => write!(f, "get_blob {digest}"),
            Op::GetBlob { digest, value: Some(BlobRead::Missing) } => write!(f, "get_blob {digest} -> missing"),
            Op::GetBlob { digest, value: Some(BlobRead::Found { sha256, size }) } => {
                write!(f, "get_blob {digest} -> {sha256} ({size} B)")
            }
        }
    }
}

/// One recorded event: an invocation or a completion.
///
/// JSON: `{"index":4,"type":"ok","process":3,"time_ns":1200,"node":"n1","f":"read","key":"t","value":null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Global sequence number; strictly increasing along the history.
    pub index: u64,
    /// Invocation or completion type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The client process.
    pub process: ProcessId,
    /// Monotonic nanoseconds since the test started.
    pub time_ns: u64,
    /// The server node the client talked to, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Error text of a `fail` or `info` completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The operation.
    #[serde(flatten)]
    pub op: Op,
}

impl Event {
    /// Returns an event without node and error.
    pub fn new(index: u64, kind: EventType, process: ProcessId, time_ns: u64, op: Op) -> Event {
        Event { index, kind, process, time_ns, node: None, error: None, op }
    }

    /// Returns the event with its node set.
    pub fn with_node(mut self, node: impl Into<String>) -> Event {
        self.node = Some(node.into());
        self
    }

    /// Returns the event with its error set.
    pub fn with_error(mut self, error: impl Into<String>) -> Event {
        self.error = Some(error.into());
        self
    }
}

/// A recorded history: events in index order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    /// Returns an empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Returns a history of these events (validated by [`History::operations`], not here).
    pub fn from_events(events: Vec<Event>) -> History {
        History { events }
    }

    /// Returns the events.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events, mutable: for a workload that post-processes its observations before checking.
    pub fn events_mut(&mut self) -> &mut [Event] {
        &mut self.events
    }

    /// Returns the number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Returns true when no event was recorded.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Returns the index the next recorded event gets from [`History::record`].
    pub fn next_index(&self) -> u64 {
        self.events.last().map_or(0, |e| e.index + 1)
    }

    /// Appends an event as it is.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Appends an event stamped with the next index and returns it, so that the caller can set its
    /// node or error.
    pub fn record(&mut self, kind: EventType, process: ProcessId, time_ns: u64, op: Op) -> &mut Event {
        let index = self.next_index();
        self.events.push(Event::new(index, kind, process, time_ns, op));
        let last = self.events.len() - 1;
        &mut self.events[last]
    }

    /// Reads a history written as JSON lines; blank lines are skipped.
    pub fn read_json_lines<R: BufRead>(reader: R) -> Result<History> {
        let mut events = Vec::new();
        for (number, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let event =
                serde_json::from_str(&line).map_err(|source| JepsenError::Decode { line: number + 1, source })?;
            events.push(event);
        }
        Ok(History { events })
    }

    /// Writes the history as JSON lines, one event per line.
    pub fn write_json_lines<W: Write>(&self, mut writer: W) -> Result<()> {
        for event in &self.events {
            serde_json::to_writer(&mut writer, event)
                .map_err(|source| JepsenError::Encode { index: event.index, source })?;
            writer.write_all(b"\n")?;
        }
        writer.flush()?;
        Ok(())
    }

    /// Pairs every invocation with its completion and validates the history.
    ///
    /// Returns the operations in invocation order. An invocation still outstanding at the end of
    /// the history becomes an `info` operation without completion. Rejects: non-increasing indices,
    /// a completion without outstanding invocation, a second invocation on a busy process, an
    /// invocation on a process whose previous operation ended `info`, a completion naming another
    /// operation than its invocation, and an `ok` read without observed value.
    pub fn operations(&self) -> Result<Vec<Operation>> {
        let mut operations: Vec<Operation> = Vec::new();
        // Slot in `operations` of each process's outstanding invocation.
        let mut outstanding: HashMap<ProcessId, usize> = HashMap::new();
        // Processes whose last operation ended `info`, with the index of that completion.
        let mut retired: HashMap<ProcessId, u64> = HashMap::new();
        let mut previous: Option<u64> = None;
        for event in &self.events {
            if let Some(previous) = previous
                && event.index <= previous
            {
                return Err(JepsenError::IndexNotIncreasing { index: event.index, previous });
            }
            previous = Some(event.index);
            if event.kind == EventType::Invoke {
                if let Some(&slot) = outstanding.get(&event.process) {
                    return Err(JepsenError::ConcurrentInvoke {
                        index: event.index,
                        process: event.process,
                        outstanding: operations[slot].invoke_index,
                    });
                }
                if let Some(&info_index) = retired.get(&event.process) {
                    return Err(JepsenError::ProcessReusedAfterInfo {
                        index: event.index,
                        process: event.process,
                        info_index,
                    });
                }
                outstanding.insert(event.process, operations.len());
                operations.push(Operation {
                    process: event.process,
                    outcome: Outcome::Info,
                    invoke_index: event.index,
                    completion_index: None,
                    invoke_time_ns: event.time_ns,
                    completion_time_ns: None,
                    node: event.node.clone(),
                    error: None,
                    op: event.op.without_result(),
                });
                continue;
            }
            let Some(slot) = outstanding.remove(&event.process) else {
                return Err(JepsenError::CompletionWithoutInvoke {
                    index: event.index,
                    process: event.process,
                    kind: event.kind,
                });
            };
            let operation = &mut operations[slot];
            if event.op.without_result() != operation.op {
                return Err(JepsenError::MismatchedCompletion {
                    index: event.index,
                    invoke_index: operation.invoke_index,
                    invocation: operation.op.to_string(),
                    completion: event.op.to_string(),
                });
            }
            operation.outcome = match event.kind {
                EventType::Ok => Outcome::Ok,
                EventType::Fail => Outcome::Fail,
                EventType::Info => Outcome::Info,
                EventType::Invoke => unreachable!("invocations are handled above"),
            };
            if operation.outcome == Outcome::Ok {
                if !event.op.has_result() {
                    return Err(JepsenError::MissingResult { index: event.index, f: event.op.f() });
                }
                operation.op = event.op.clone();
            }
            if operation.outcome == Outcome::Info {
                retired.insert(event.process, event.index);
            }
            operation.completion_index = Some(event.index);
            operation.completion_time_ns = Some(event.time_ns);
            if event.node.is_some() {
                operation.node = event.node.clone();
            }
            operation.error = event.error.clone();
        }
        Ok(operations)
    }
}

impl FromIterator<Event> for History {
    fn from_iter<I: IntoIterator<Item = Event>>(iter: I) -> History {
        History { events: iter.into_iter().collect() }
    }
}

impl<'a> IntoIterator for &'a History {
    type Item = &'a Event;
    type IntoIter = std::slice::Iter<'a, Event>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.iter()
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Indeterminate, including an invocation never completed.
    Info,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        })
    }
}

/// An invocation paired with its completion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The client process.
    pub process: ProcessId,
    /// How it ended.
    pub outcome: Outcome,
    /// Index of the invocation event.
    pub invoke_index: u64,
    /// Index of the completion event; None when the history ended first.
    pub completion_index: Option<u64>,
    /// `time_ns` of the invocation.
    pub invoke_time_ns: u64,
    /// `time_ns` of the completion.
    pub completion_time_ns: Option<u64>,
    /// The node named by the completion, else by the invocation.
    pub node: Option<String>,
    /// The completion's error text.
    pub error: Option<String>,
    /// The operation: the `ok` completion's (with the observed value), else the invocation's.
    #[serde(flatten)]
    pub op: Op,
}

impl Operation {
    /// Returns true when the operation happened.
    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }

    /// Returns true when the operation definitely did not happen.
    pub fn is_fail(&self) -> bool {
        self.outcome == Outcome::Fail
    }

    /// Returns true when the outcome is indeterminate.
    pub fn is_info(&self) -> bool {
        self.outcome == Outcome::Info
    }

    /// Returns the index by which the operation has taken effect, if it did: the completion of an
    /// `ok` operation. None for `info` (it may take effect at any later time) and `fail`.
    pub fn effective_by(&self) -> Option<u64> {
        if self.is_ok() { self.completion_index } else { None }
    }

    /// Returns true when this operation completed before `other` was invoked (real-time order).
    pub fn precedes(&self, other: &Operation) -> bool {
        !self.is_info() && self.completion_index.is_some_and(|c| c < other.invoke_index)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} [#{}..", self.process, self.outcome, self.op, self.invoke_index)?;
        if let Some(completion) = self.completion_index {
            write!(f, "#{completion}")?;
        }
        f.write_str("]")?;
        if let Some(node) = &self.node {
            write!(f, " on {node}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_read_value_tells_absent_field_from_null() {
        let invoke: Op = serde_json::from_str(r#"{"f":"read","key":"t"}"#).unwrap();
        assert_eq!(invoke, Op::read("t"));
        let absent: Op = serde_json::from_str(r#"{"f":"read","key":"t","value":null}"#).unwrap();
        assert_eq!(absent, Op::read_ok("t", None));
        assert_eq!(serde_json::to_string(&Op::read_ok("t", None)).unwrap(), r#"{"f":"read","key":"t","value":null}"#);
        assert_eq!(serde_json::to_string(&Op::read("t")).unwrap(), r#"{"f":"read","key":"t"}"#);
    }

    #[test]
    fn event_json_shape_has_type_and_f() {
        let event =
            Event::new(4, EventType::Ok, ProcessId(3), 1200, Op::read_ok("t", Some("sha256:aa"))).with_node("n1");
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(
            json,
            r#"{"index":4,"type":"ok","process":3,"time_ns":1200,"node":"n1","f":"read","key":"t","value":"sha256:aa"}"#
        );
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn completion_keeps_invocation_arguments() {
        let mut history = History::new();
        history.record(EventType::Invoke, ProcessId(1), 0, Op::read("t")).node = Some("n2".into());
        history.record(EventType::Ok, ProcessId(1), 5, Op::read_ok("t", Some("d")));
        let ops = history.operations().unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].op, Op::read_ok("t", Some("d")));
        assert_eq!(ops[0].node.as_deref(), Some("n2"));
        assert_eq!(ops[0].completion_index, Some(1));
        assert_eq!(ops[0].to_string(), "p1 ok read t -> d [#0..#1] on n2");
    }
}
