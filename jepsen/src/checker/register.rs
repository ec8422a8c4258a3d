//! Linearizability of tags as compare-and-set registers.
//!
//! Property (Herlihy & Wing): every `ok` operation on a tag takes effect atomically at one point
//! between its invocation and its completion, and the resulting sequence is legal for a register
//! with compare-and-set; `fail` operations never take effect; `info` operations take effect at one
//! point after their invocation, or never. Tags are independent objects, so each key is checked
//! alone (P-compositionality: a history is linearizable iff every per-object sub-history is).
//!
//! Search: Wing–Gong with Lowe's memoisation ("Testing for linearizability", 2017; as in Knossos
//! and Porcupine): a depth-first search over configurations (set of linearized operations, register
//! value), where an operation may be linearized next when it was invoked before the earliest
//! completion among the `ok` operations not linearized yet. Four reductions keep it fast, each
//! argued where it is implemented: a read matching the current value is linearized without
//! branching; an `info` update is never followed directly by a blind write; a configuration is
//! pruned when a visited one has the same `ok` operations, value and last step kind and a subset
//! of its `info` operations linearized; an `info` update whose value nobody observes is dropped up
//! front. A search that exceeds its state or time budget answers Unknown.
//!
//! On a violation the key's history is shrunk by delta debugging (Zeller's ddmin) to a failing
//! sub-history from which no single operation can be removed, then explained from the frontier of
//! a search over that sub-history.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use super::{Anomaly, BlockedOp, FrontierConfig, Stats, Undecided, Verdict, elapsed_ns};
use crate::history::{Op, Operation, TagValue, Workload};

/// Settings of the register checker.
#[derive(Clone, Debug)]
pub struct RegisterConfig {
    /// Configurations one key's search may visit before the key is declared undecided.
    pub max_states_per_key: u64,
    /// Wall-clock budget of the whole check; keys not decided by then are undecided. Shrinking an
    /// anomaly stops at this deadline too (the anomaly is then reported unshrunk or partly shrunk).
    pub time_limit: Option<Duration>,
    /// Whether to shrink a failing key history to a minimal failing sub-history.
    pub shrink: bool,
    /// Sub-histories shrinking may check, per failing key.
    pub max_shrink_checks: u32,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            max_states_per_key: 1_000_000,
            time_limit: Some(Duration::from_secs(600)),
            shrink: true,
            max_shrink_checks: 2_000,
        }
    }
}

/// Checks that every tag's operations are linearizable.
///
/// Considers the register operations (`read`, `write`, `cas`) among `operations` and ignores the
/// others.
pub fn check(operations: &[Operation], config: &RegisterConfig) -> Verdict {
    let start = Instant::now();
    let deadline = config.time_limit.map(|limit| start + limit);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for operation in operations.iter().filter(|o| o.op.workload() == Workload::Register) {
        by_key.entry(operation.op.key()).or_default().push(operation);
    }
    let mut stats = Stats { keys: by_key.len() as u64, ..Stats::default() };
    stats.ops_checked = by_key.values().map(|ops| ops.len() as u64).sum();
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();
    for (key, source) in by_key {
        let history = KeyHistory::build(key, source);
        match history.check(config, deadline, &mut stats.states_explored) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::NotLinearizable(anomaly) => anomalies.push(*anomaly),
            KeyVerdict::Undecided(reason) => undecided.push(Undecided { key: key.to_owned(), reason }),
        }
    }
    stats.elapsed_ns = elapsed_ns(start);
    Verdict::from_findings(anomalies, undecided, stats)
}

enum KeyVerdict {
    Linearizable,
    NotLinearizable(Box<Anomaly>),
    Undecided(String),
}

/// Value id of the register: 0 is "the tag does not exist", others index `KeyHistory::values`.
type ValueId = u32;
const ABSENT: ValueId = 0;

/// The effect of an operation on the register model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Read(ValueId),
    Write(ValueId),
    Cas { expected: ValueId, new: ValueId },
}

impl Step {
    /// Returns the register value after this step from `state`, or None when the step is illegal
    /// there (a read of another value, a compare-and-set whose precondition fails).
    fn apply(self, state: ValueId) -> Option<ValueId> {
        match self {
            Step::Read(value) => (value == state).then_some(state),
            Step::Write(value) => Some(value),
            Step::Cas { expected, new } => (expected == state).then_some(new),
        }
    }

    /// Returns the value the step requires the register to hold, if any.
    fn requires(self) -> Option<ValueId> {
        match self {
            Step::Read(value) | Step::Cas { expected: value, .. } => Some(value),
            Step::Write(_) => None,
        }
    }

    /// Returns the value the step writes, if any.
    fn writes(self) -> Option<ValueId> {
        match self {
            Step::Write(value) | Step::Cas { new: value, .. } => Some(value),
            Step::Read(_) => None,
        }
    }
}

/// An operation the search may linearize.
#[derive(Clone, Copy, Debug)]
struct RegOp {
    /// Position in `KeyHistory::source`.
    source: usize,
    step: Step,
    /// Invocation index.
    call: u64,
    /// Completion index of an `ok` operation; None for `info` (it may linearize at any later
    /// point, or never).
    ret: Option<u64>,
}

/// The operations of one tag, prepared for the search.
struct KeyHistory<'a> {
    key: &'a str,
    source: Vec<&'a Operation>,
    values: Vec<Option<String>>,
    /// Candidates for linearization, in invocation order.
    ops: Vec<RegOp>,
    /// Values some operation of the key writes (including dropped ones).
    written: HashSet<ValueId>,
}

impl<'a> KeyHistory<'a> {
    fn build(key: &'a str, source: Vec<&'a Operation>) -> Self {
        let mut ids: HashMap<&str, ValueId> = HashMap::new();
        let mut values: Vec<Option<String>> = vec![None];
        let mut intern = |value: Option<&'a str>| -> ValueId {
            let Some(value) = value else { return ABSENT };
            *ids.entry(value).or_insert_with(|| {
                values.push(Some(value.to_owned()));
                ValueId::try_from(values.len() - 1).expect("fewer than 2^32 distinct digests per tag")
            })
        };
        let mut ops = Vec::new();
        for (position, operation) in source.iter().enumerate() {
            // A `fail` definitely did not happen; it constrains nothing.
            if operation.is_fail() {
                continue;
            }
            let step = match &operation.op {
                Op::Read { value: Some(value), .. } if operation.is_ok() => Step::Read(intern(value.as_deref())),
                // An indeterminate read observed nothing and changes nothing.
                Op::Read { .. } => continue,
                Op::Write { value, .. } => Step::Write(intern(Some(value))),
                Op::Cas { expected, new, .. } => {
                    Step::Cas { expected: intern(expected.as_deref()), new: intern(Some(new)) }
                }
                _ => continue,
            };
            let ret = if operation.is_ok() { operation.completion_index } else { None };
            ops.push(RegOp { source: position, step, call: operation.invoke_index, ret });
        }
        let written: HashSet<ValueId> = ops.iter().filter_map(|o| o.step.writes()).collect();
        drop_unobserved_info_updates(&mut ops);
        KeyHistory { key, source, values, ops, written }
    }

    fn check(&self, config: &RegisterConfig, deadline: Option<Instant>, states: &mut u64) -> KeyVerdict {
        let limits = Limits { max_states: config.max_states_per_key, deadline };
        let (outcome, explored) = Search::new(&self.ops).run(&limits, None);
        *states += explored;
        match outcome {
            SearchOutcome::Linearizable => KeyVerdict::Linearizable,
            SearchOutcome::Limit(limit) => KeyVerdict::Undecided(format!(
                "{} reached after {explored} states over {} operations",
                limit.describe(config),
                self.ops.len()
            )),
            SearchOutcome::NotLinearizable => {
                let (failing, minimal) = if config.shrink {
                    let per_check = Limits {
                        max_states: config.max_states_per_key.min(explored.saturating_mul(4).max(100_000)),
                        deadline,
                    };
                    self.shrink(self.ops.clone(), &per_check, config.max_shrink_checks, states)
                } else {
                    (self.ops.clone(), false)
                };
                let mut frontier = Vec::new();
                let explain_limits = Limits { max_states: config.max_states_per_key, deadline: None };
                let (_, explored) = Search::new(&failing).run(&explain_limits, Some(&mut frontier));
                *states += explored;
                KeyVerdict::NotLinearizable(Box::new(self.anomaly(&failing, minimal, &frontier)))
            }
        }
    }

    /// Returns true when `ops` keeps every write (of the key's full history) of every value that
    /// a kept operation requires. Shrinking only keeps such sub-histories, because then each
    /// removal is sound: a removed update's value is required by nobody left, so in any
    /// linearization of the larger history only unconditional writes can follow it before the
    /// next update, and dropping it leaves a linearization of the smaller one. Hence the shrunk
    /// history is non-linearizable only if the real one is, for the same reason. Keeping merely
    /// *one* write of each required value is not enough: with two writes of `v`, dropping the
    /// earlier one turns a read of `v` that followed it into a read of a value not yet written.
    fn is_closed(&self, ops: &[RegOp]) -> bool {
        let count = |ops: &[RegOp]| {
            let mut counts: HashMap<ValueId, usize> = HashMap::new();
            for v in ops.iter().filter_map(|o| o.step.writes()) {
                *counts.entry(v).or_default() += 1;
            }
            counts
        };
        let (kept, all) = (count(ops), count(&self.ops));
        ops.iter()
            .filter(|o| o.ret.is_some())
            .filter_map(|o| o.step.requires())
            .all(|v| v == ABSENT || kept.get(&v) == all.get(&v))
    }

    /// Shrinks a non-linearizable sub-history by ddmin. Returns the result and whether it is known
    /// 1-minimal (no check was undecided and the budget sufficed).
    fn shrink(&self, ops: Vec<RegOp>, limits: &Limits, max_checks: u32, states: &mut u64) -> (Vec<RegOp>, bool) {
        let mut checks_left = max_checks;
        let mut complete = true;
        let mut fails = |candidate: &[RegOp], complete: &mut bool| -> bool {
            if !self.is_closed(candidate) {
                return false;
            }
            if checks_left == 0 || limits.deadline.is_some_and(|d| Instant::now() >= d) {
                *complete = false;
                return false;
            }
            checks_left -= 1;
            let (outcome, explored) = Search::new(candidate).run(limits, None);
            *states += explored;
            match outcome {
                SearchOutcome::NotLinearizable => true,
                SearchOutcome::Linearizable => false,
                SearchOutcome::Limit(_) => {
                    *complete = false;
                    false
                }
            }
        };
        let mut current = ops;
        let mut chunks = 2usize;
        while current.len() >= 2 {
            let size = current.len().div_ceil(chunks);
            let starts: Vec<usize> = (0..current.len()).step_by(size).collect();
            let mut reduced = false;
            // Later chunks first: what follows a violation rarely matters to it.
            for &start in starts.iter().rev() {
                let end = (start + size).min(current.len());
                let candidate: Vec<RegOp> = current[..start].iter().chain(&current[end..]).copied().collect();
                if fails(&candidate, &mut complete) {
                    current = candidate;
                    chunks = chunks.saturating_sub(1).max(2);
                    reduced = true;
                    break;
                }
            }
            if !reduced {
                if chunks >= current.len() {
                    break;
                }
                chunks = (chunks * 2).min(current.len());
            }
        }
        (current, complete)
    }

    fn value(&self, id: ValueId) -> TagValue<'_> {
        TagValue(self.values[id as usize].as_deref())
    }

    fn anomaly(&self, failing: &[RegOp], minimal: bool, frontier: &[Stuck]) -> Anomaly {
        let frontier_configs: Vec<FrontierConfig> = frontier
            .iter()
            .map(|stuck| FrontierConfig {
                linearized: stuck.path.iter().map(|&i| failing[i].call).collect(),
                state: self.values[stuck.state as usize].clone(),
                blocked: stuck
                    .blocked
                    .iter()
                    .map(|&i| BlockedOp {
                        invoke_index: failing[i].call,
                        reason: self.blocked_reason(&failing[i], stuck.state),
                    })
                    .collect(),
            })
            .collect();
        Anomaly::NonLinearizable {
            key: self.key.to_owned(),
            ops: failing.iter().map(|o| self.source[o.source].clone()).collect(),
            minimal,
            explanation: self.explain(failing, frontier),
            frontier: frontier_configs,
        }
    }

    fn blocked_reason(&self, op: &RegOp, state: ValueId) -> String {
        match op.step {
            Step::Read(value) => format!("read returned {} but the tag holds {}", self.value(value), self.value(state)),
            Step::Cas { expected, .. } => {
                format!("cas expected {} but the tag holds {}", self.value(expected), self.value(state))
            }
            Step::Write(_) => "write cannot be blocked".to_owned(),
        }
    }

    fn explain(&self, failing: &[RegOp], frontier: &[Stuck]) -> String {
        let never_written = failing
            .iter()
            .find(|o| o.ret.is_some() && o.step.requires().is_some_and(|v| v != ABSENT && !self.written.contains(&v)));
        if let Some(op) = never_written {
            return format!(
                "{}, a value no update that may have taken effect wrote to tag {}",
                self.requirement(op),
                self.key
            );
        }
        let Some(deepest) = frontier.first() else {
            return format!("no linearization of these {} operations exists", failing.len());
        };
        let blocked: Vec<String> = deepest.blocked.iter().map(|&i| self.requirement(&failing[i])).collect();
        let states: BTreeSet<ValueId> = frontier.iter().map(|s| s.state).collect();
        let at = if states.len() == 1 {
            format!("every furthest linearization has the tag at {}", self.value(deepest.state))
        } else {
            let list: Vec<String> = states.iter().map(|&s| self.value(s).to_string()).collect();
            format!("the furthest linearizations have the tag at one of {}", list.join(", "))
        };
        let path = if deepest.path.is_empty() {
            "before any operation takes effect".to_owned()
        } else {
            let ops: Vec<String> = deepest.path.iter().map(|&i| self.short(&failing[i])).collect();
            format!("e.g. after {}", ops.join(", then "))
        };
        format!("{}, but {at} ({path})", blocked.join(" and "))
    }

    /// Describes an operation briefly, e.g. `cas d1 -> d2 by p5 [#17..#28]`.
    fn short(&self, op: &RegOp) -> String {
        let operation = self.source[op.source];
        let what = match op.step {
            Step::Read(_) => "read".to_owned(),
            Step::Write(value) => format!("write {}", self.value(value)),
            Step::Cas { expected, new } => format!("cas {} -> {}", self.value(expected), self.value(new)),
        };
        let info = if operation.is_info() { " (info)" } else { "" };
        let end = operation.completion_index.map(|c| format!("#{c}")).unwrap_or_default();
        format!("{what} by {}{info} [#{}..{end}]", operation.process, operation.invoke_index)
    }

    /// Describes what an operation needs the register to hold, e.g. `read by p3 [#4..#5] returned d1`.
    fn requirement(&self, op: &RegOp) -> String {
        match op.step {
            Step::Read(value) => format!("{} returned {}", self.short(op), self.value(value)),
            Step::Cas { expected, .. } => format!("{} expected {}", self.short(op), self.value(expected)),
            Step::Write(_) => self.short(op),
        }
    }
}

/// Drops every `info` update whose value no operation requires: in any linearization that
/// includes it, the stretch where the register holds its value contains no read or
/// compare-and-set (they would require that value), so removing it leaves a linearization too.
/// Keeping it would only multiply the search space.
fn drop_unobserved_info_updates(ops: &mut Vec<RegOp>) {
    let observed: HashSet<ValueId> = ops.iter().filter_map(|o| o.step.requires()).collect();
    ops.retain(|o| o.ret.is_some() || o.step.writes().is_some_and(|v| observed.contains(&v)));
}

/// Budget of one search.
struct Limits {
    max_states: u64,
    deadline: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    States,
    Time,
}

impl Limit {
    fn describe(self, config: &RegisterConfig) -> String {
        match self {
            Limit::States => format!("search limit of {} states", config.max_states_per_key),
            Limit::Time => format!("time limit of {:?}", config.time_limit.unwrap_or_default()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SearchOutcome {
    Linearizable,
    NotLinearizable,
    Limit(Limit),
}

/// A dead end of the search: after linearizing `path` the register holds `state` and every
/// operation that may go next is illegal there (`blocked`: the `ok` ones). Positions index the
/// searched ops.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stuck {
    path: Vec<usize>,
    state: ValueId,
    blocked: Vec<usize>,
}

/// Dead ends kept for the explanation, all at the greatest depth seen.
const FRONTIER_SIZE: usize = 3;

/// One DFS level: the configuration reached by linearizing `via`, and the candidates tried from it.
struct Frame {
    state: ValueId,
    via: Option<usize>,
    candidates: Vec<usize>,
    next: usize,
    /// First op (invocation order) not linearized yet; only grows along a path.
    call_cursor: usize,
    /// First `ok` op (completion order) not linearized yet; only grows along a path.
    ret_cursor: usize,
    /// `ok` ops linearized so far.
    linearized_ok: usize,
}

struct Search<'a> {
    ops: &'a [RegOp],
    /// Bit of each op in `ok_bits` or `info_bits`.
    slot: Vec<usize>,
    /// `ok` ops in completion order.
    by_ret: Vec<usize>,
    ok_count: usize,
    ok_bits: Bitset,
    info_bits: Bitset,
    memo: Memo,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [RegOp]) -> Self {
        let mut slot = Vec::with_capacity(ops.len());
        let (mut ok_count, mut info_count) = (0, 0);
        for op in ops {
            if op.ret.is_some() {
                slot.push(ok_count);
                ok_count += 1;
            } else {
                slot.push(info_count);
                info_count += 1;
            }
        }
        let mut by_ret: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ret.is_some()).collect();
        by_ret.sort_by_key(|&i| ops[i].ret);
        debug_assert!(ops.windows(2).all(|w| w[0].call < w[1].call), "ops are in invocation order");
        Search {
            ops,
            slot,
            by_ret,
            ok_count,
            ok_bits: Bitset::new(ok_count),
            info_bits: Bitset::new(info_count),
            memo: Memo::default(),
        }
    }

    fn is_linearized(&self, i: usize) -> bool {
        if self.ops[i].ret.is_some() { self.ok_bits.get(self.slot[i]) } else { self.info_bits.get(self.slot[i]) }
    }

    fn set_linearized(&mut self, i: usize, on: bool) {
        if self.ops[i].ret.is_some() {
            self.ok_bits.set(self.slot[i], on);
        } else {
            self.info_bits.set(self.slot[i], on);
        }
    }

    /// Returns the earliest completion among `ok` ops not linearized yet, advancing `ret_cursor`.
    fn earliest_pending_return(&self, ret_cursor: &mut usize) -> u64 {
        while *ret_cursor < self.by_ret.len() && self.is_linearized(self.by_ret[*ret_cursor]) {
            *ret_cursor += 1;
        }
        self.by_ret.get(*ret_cursor).and_then(|&i| self.ops[i].ret).unwrap_or(u64::MAX)
    }

    /// Returns the ops (positions) that may be linearized next from `state`: not linearized,
    /// invoked before every pending `ok` op's completion, and legal from `state`.
    ///
    /// A legal read is returned alone: if a configuration can be completed at all, it can be
    /// completed with that read first, since a read leaves the value unchanged and everything
    /// linearized before it in a completion may as well follow it (it is enabled now, so no
    /// pending op had to precede it). `ok` ops come before `info` ops, which are optional.
    ///
    /// Right after an `info` update no write is a candidate: an `info` update directly followed by
    /// a write is observed by nobody and may be dropped from any linearization (it need not take
    /// effect at all), so some linearization avoids the pattern whenever one exists. Without this,
    /// chains of unobserved `info` writes make the search exponential.
    fn candidates(
        &self,
        state: ValueId,
        after_info_update: bool,
        call_cursor: &mut usize,
        ret_cursor: &mut usize,
    ) -> Vec<usize> {
        let horizon = self.earliest_pending_return(ret_cursor);
        while *call_cursor < self.ops.len() && self.is_linearized(*call_cursor) {
            *call_cursor += 1;
        }
        let mut ok_ops = Vec::new();
        let mut info_ops = Vec::new();
        for i in *call_cursor..self.ops.len() {
            let op = &self.ops[i];
            if op.call >= horizon {
                break;
            }
            if self.is_linearized(i)
                || op.step.apply(state).is_none()
                || (after_info_update && matches!(op.step, Step::Write(_)))
            {
                continue;
            }
            if matches!(op.step, Step::Read(_)) {
                return vec![i];
            }
            if op.ret.is_some() {
                ok_ops.push(i);
            } else {
                info_ops.push(i);
            }
        }
        ok_ops.extend(info_ops);
        ok_ops
    }

    /// Returns the `ok` ops that are due (invoked before the horizon) but illegal from `state`.
    fn blocked(&self, state: ValueId, mut call_cursor: usize, mut ret_cursor: usize) -> Vec<usize> {
        let horizon = self.earliest_pending_return(&mut ret_cursor);
        while call_cursor < self.ops.len() && self.is_linearized(call_cursor) {
            call_cursor += 1;
        }
        (call_cursor..self.ops.len())
            .take_while(|&i| self.ops[i].call < horizon)
            .filter(|&i| self.ops[i].ret.is_some() && !self.is_linearized(i) && self.ops[i].step.apply(state).is_none())
            .collect()
    }

    /// Runs the search; returns the outcome and the number of configurations visited. With
    /// `frontier`, records the deepest dead ends.
    fn run(mut self, limits: &Limits, mut frontier: Option<&mut Vec<Stuck>>) -> (SearchOutcome, u64) {
        if self.ok_count == 0 {
            // Every remaining op is `info` and may never take effect.
            return (SearchOutcome::Linearizable, 0);
        }
        let mut states: u64 = 1;
        self.memo.insert(&self.ok_bits, &self.info_bits, ABSENT, false);
        let (mut call_cursor, mut ret_cursor) = (0, 0);
        let candidates = self.candidates(ABSENT, false, &mut call_cursor, &mut ret_cursor);
        let mut stack =
            vec![Frame { state: ABSENT, via: None, candidates, next: 0, call_cursor, ret_cursor, linearized_ok: 0 }];
        while let Some(top) = stack.last_mut() {
            if top.next == top.candidates.len() {
                if top.candidates.is_empty()
                    && let Some(frontier) = frontier.as_deref_mut()
                {
                    self.record_dead_end(&stack, frontier);
                }
                let frame = stack.pop().expect("the loop runs on a non-empty stack");
                if let Some(op) = frame.via {
                    self.set_linearized(op, false);
                }
                continue;
            }
            let op = top.candidates[top.next];
            top.next += 1;
            let Some(state) = self.ops[op].step.apply(top.state) else {
                debug_assert!(false, "candidates are legal from their frame's state");
                continue;
            };
            let linearized_ok = top.linearized_ok + usize::from(self.ops[op].ret.is_some());
            if linearized_ok == self.ok_count {
                // Any `info` op left over simply never took effect.
                return (SearchOutcome::Linearizable, states);
            }
            let (mut call_cursor, mut ret_cursor) = (top.call_cursor, top.ret_cursor);
            let after_info_update = self.ops[op].ret.is_none();
            self.set_linearized(op, true);
            if !self.memo.insert(&self.ok_bits, &self.info_bits, state, after_info_update) {
                self.set_linearized(op, false);
                continue;
            }
            states += 1;
            if states > limits.max_states {
                return (SearchOutcome::Limit(Limit::States), states);
            }
            if states.is_multiple_of(256) && limits.deadline.is_some_and(|d| Instant::now() >= d) {
                return (SearchOutcome::Limit(Limit::Time), states);
            }
            let candidates = self.candidates(state, after_info_update, &mut call_cursor, &mut ret_cursor);
            stack.push(Frame { state, via: Some(op), candidates, next: 0, call_cursor, ret_cursor, linearized_ok });
        }
        (SearchOutcome::NotLinearizable, states)
    }

    fn record_dead_end(&self, stack: &[Frame], frontier: &mut Vec<Stuck>) {
        let Some(top) = stack.last() else { return };
        let depth = top.linearized_ok;
        let deepest = frontier.first().map(|s| s.path.iter().filter(|&&i| self.ops[i].ret.is_some()).count());
        if deepest.is_some_and(|d| d > depth) || (deepest == Some(depth) && frontier.len() >= FRONTIER_SIZE) {
            return;
        }
        if deepest.is_some_and(|d| d < depth) {
            frontier.clear();
        }
        frontier.push(Stuck {
            path: stack.iter().filter_map(|f| f.via).collect(),
            state: top.state,
            blocked: self.blocked(top.state, top.call_cursor, top.ret_cursor),
        });
    }
}

/// A fixed-size set of small integers.
#[derive(Clone, Debug)]
struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    fn new(len: usize) -> Self {
        Bitset { words: vec![0; len.div_ceil(64)] }
    }

    fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, on: bool) {
        if on {
            self.words[i / 64] |= 1 << (i % 64);
        } else {
            self.words[i / 64] &= !(1 << (i % 64));
        }
    }
}

fn is_subset(small: &[u64], large: &[u64]) -> bool {
    small.iter().zip(large).all(|(s, l)| s & !l == 0)
}

/// Visited configurations, keyed by (`ok` ops linearized, value, whether the last step was an
/// `info` update), each with the antichain of `info` op sets linearized with them.
///
/// Pruning by subset is sound: an `info` op has no completion deadline and may never take
/// effect, so a configuration with fewer `info` ops linearized (same `ok` ops, value and last step
/// kind) can mimic every step of one with more, and reaches the end whenever the other does. A DFS that
/// prunes a configuration dominated by any visited one (finished or still on the stack) still
/// finds a linearization when one exists: a good visited configuration minimising (pending `ok`
/// ops, distance to the end) would have a good child that is either visited or dominated by a
/// visited configuration that is no further from the end, a contradiction.
#[derive(Default)]
struct Memo {
    seen: HashMap<Vec<u64>, Vec<Vec<u64>>, BuildHasherDefault<WordHasher>>,
    key: Vec<u64>,
}

impl Memo {
    /// Records a configuration; returns false when a visited one dominates it.
    fn insert(&mut self, ok: &Bitset, info: &Bitset, state: ValueId, after_info_update: bool) -> bool {
        self.key.clear();
        self.key.extend_from_slice(&ok.words);
        self.key.push(u64::from(state) << 1 | u64::from(after_info_update));
        if let Some(info_sets) = self.seen.get_mut(self.key.as_slice()) {
            if info_sets.iter().any(|seen| is_subset(seen, &info.words)) {
                return false;
            }
            info_sets.retain(|seen| !is_subset(&info.words, seen));
            info_sets.push(info.words.clone());
            return true;
        }
        self.seen.insert(self.key.clone(), vec![info.words.clone()]);
        true
    }
}

/// A fast multiplicative hasher for bitset words (the mixing step of `FxHash`); the keys are not
/// attacker-controlled.
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes")));
        }
        let mut rest = [0u8; 8];
        let remainder = chunks.remainder();
        if !remainder.is_empty() {
            rest[..remainder.len()].copy_from_slice(remainder);
            self.mix(u64::from_le_bytes(rest));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.mix(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.mix(word as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(call: u64, ret: Option<u64>, step: Step) -> RegOp {
        RegOp { source: 0, step, call, ret }
    }

    fn search(ops: &[RegOp]) -> SearchOutcome {
        Search::new(ops).run(&Limits { max_states: 100_000, deadline: None }, None).0
    }

    /// Decides linearizability from the definition: some order of the `ok` ops and of a subset of
    /// the `info` ops is a legal register sequence and puts `a` before `b` whenever `a` completed
    /// before `b` was invoked.
    fn brute_force(ops: &[RegOp]) -> bool {
        fn extend(ops: &[RegOp], used: &mut Vec<bool>, order: &mut Vec<usize>, state: ValueId) -> bool {
            let all_ok_placed = ops.iter().zip(used.iter()).all(|(o, &u)| u || o.ret.is_none());
            if all_ok_placed {
                return true;
            }
            for i in 0..ops.len() {
                if used[i] {
                    continue;
                }
                // Every op that completed before `i` was invoked must already be placed.
                let respects_real_time = (0..ops.len()).all(|j| used[j] || ops[j].ret.is_none_or(|r| r > ops[i].call));
                let Some(next) = ops[i].step.apply(state) else { continue };
                if !respects_real_time {
                    continue;
                }
                used[i] = true;
                order.push(i);
                if extend(ops, used, order, next) {
                    return true;
                }
                order.pop();
                used[i] = false;
            }
            false
        }
        extend(ops, &mut vec![false; ops.len()], &mut Vec::new(), ABSENT)
    }

    /// Returns a random history of up to 7 ops over 3 values, `ok` or `info`, with random overlap.
    fn random_history(seed: &mut u64) -> Vec<RegOp> {
        let mut next = || {
            *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let n = 1 + (next() % 7) as usize;
        let mut calls = vec![0; n];
        let mut rets = vec![0; n];
        let (mut to_call, mut running): (Vec<usize>, Vec<usize>) = ((0..n).collect(), Vec::new());
        let mut time = 0;
        while !to_call.is_empty() || !running.is_empty() {
            let call = !to_call.is_empty() && (running.is_empty() || next() % 2 == 0);
            if call {
                let i = to_call.remove(0);
                calls[i] = time;
                running.push(i);
            } else {
                let i = running.swap_remove((next() % running.len() as u64) as usize);
                rets[i] = time;
            }
            time += 1;
        }
        let mut ops = Vec::new();
        for i in 0..n {
            let info = next() % 4 == 0;
            let value = |x: u64| (x % 3) as ValueId;
            let step = match next() % 3 {
                0 if info => continue,
                0 => Step::Read(value(next())),
                1 => Step::Write(1 + value(next())),
                _ => Step::Cas { expected: value(next()), new: 1 + value(next()) },
            };
            ops.push(RegOp { source: i, step, call: calls[i], ret: (!info).then_some(rets[i]) });
        }
        ops
    }

    #[test]
    fn search_agrees_with_the_definition_on_random_small_histories() {
        let mut seed = 1;
        let (mut valid, mut invalid) = (0, 0);
        for case in 0..20_000 {
            let ops = random_history(&mut seed);
            let expected = brute_force(&ops);
            let mut reduced = ops.clone();
            drop_unobserved_info_updates(&mut reduced);
            let outcome = search(&reduced);
            let want = if expected { SearchOutcome::Linearizable } else { SearchOutcome::NotLinearizable };
            assert_eq!(outcome, want, "case {case}: {ops:?}");
            if expected {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        assert!(valid > 2_000 && invalid > 2_000, "{valid} valid, {invalid} invalid cases");
    }

    #[test]
    fn step_models_a_cas_register() {
        assert_eq!(Step::Read(1).apply(1), Some(1));
        assert_eq!(Step::Read(1).apply(2), None);
        assert_eq!(Step::Write(3).apply(ABSENT), Some(3));
        assert_eq!(Step::Cas { expected: ABSENT, new: 1 }.apply(ABSENT), Some(1));
        assert_eq!(Step::Cas { expected: ABSENT, new: 1 }.apply(2), None);
    }

    #[test]
    fn memo_prunes_configurations_with_more_info_ops() {
        let mut memo = Memo::default();
        let ok = Bitset::new(3);
        let mut info = Bitset::new(70);
        info.set(65, true);
        assert!(memo.insert(&ok, &info, 1, false));
        info.set(2, true);
        assert!(!memo.insert(&ok, &info, 1, false), "a superset of a visited info set is dominated");
        assert!(memo.insert(&ok, &info, 2, false), "another value is another configuration");
        assert!(memo.insert(&ok, &info, 1, true), "another last step kind is another configuration");
        let empty = Bitset::new(70);
        assert!(memo.insert(&ok, &empty, 1, false), "a subset is new and replaces its supersets");
        assert_eq!(memo.seen.values().map(Vec::len).sum::<usize>(), 3);
    }

    #[test]
    fn info_write_may_never_take_effect() {
        // write 1 ok; write 2 info; read 1 ok after both.
        let ops = [op(0, Some(1), Step::Write(1)), op(2, None, Step::Write(2)), op(3, Some(4), Step::Read(1))];
        assert_eq!(search(&ops), SearchOutcome::Linearizable);
    }

    #[test]
    fn info_write_takes_effect_once() {
        // write 1 ok; info write 2; reads 2, 1, 2 in sequence: 2 cannot come back.
        let ops = [
            op(0, Some(1), Step::Write(1)),
            op(2, None, Step::Write(2)),
            op(3, Some(4), Step::Read(2)),
            op(5, Some(6), Step::Read(1)),
            op(7, Some(8), Step::Read(2)),
        ];
        assert_eq!(search(&ops), SearchOutcome::NotLinearizable);
    }

    #[test]
    fn many_unobserved_concurrent_info_writes_stay_cheap() {
        // 40 concurrent info writes whose values a read observes, then reads: dominance keeps the
        // search linear instead of exponential in the info ops.
        let mut ops = vec![op(0, Some(1), Step::Write(1))];
        for i in 0..40 {
            ops.push(op(2 + i, None, Step::Write(10 + i as u32)));
        }
        let mut t = 100;
        for i in 0..40 {
            ops.push(op(t, Some(t + 1), Step::Read(10 + i as u32)));
            t += 2;
        }
        let (outcome, states) = Search::new(&ops).run(&Limits { max_states: 1_000_000, deadline: None }, None);
        assert_eq!(outcome, SearchOutcome::Linearizable);
        assert!(states < 10_000, "{states} states");
        // Reading the first value back after the others took effect is impossible.
        ops.push(op(t, Some(t + 1), Step::Read(10)));
        let (outcome, states) = Search::new(&ops).run(&Limits { max_states: 1_000_000, deadline: None }, None);
        assert_eq!(outcome, SearchOutcome::NotLinearizable);
        assert!(states < 100_000, "{states} states");
    }

    #[test]
    fn state_limit_answers_unknown() {
        let ops = [op(0, Some(10), Step::Write(1)), op(1, Some(11), Step::Write(2)), op(12, Some(13), Step::Read(1))];
        let (outcome, _) = Search::new(&ops).run(&Limits { max_states: 1, deadline: None }, None);
        assert_eq!(outcome, SearchOutcome::Limit(Limit::States));
    }

    #[test]
    fn dead_ends_name_the_blocked_read() {
        let ops = [op(0, Some(1), Step::Write(1)), op(2, Some(3), Step::Write(2)), op(4, Some(5), Step::Read(1))];
        let mut frontier = Vec::new();
        let (outcome, _) = Search::new(&ops).run(&Limits { max_states: 100, deadline: None }, Some(&mut frontier));
        assert_eq!(outcome, SearchOutcome::NotLinearizable);
        assert_eq!(frontier, vec![Stuck { path: vec![0, 1], state: 2, blocked: vec![2] }]);
    }
}
