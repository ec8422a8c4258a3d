//! List-append: per-key append-only lists, each read returning the whole list.
//!
//! Properties (after Jepsen's Elle list-append, restricted to single-key operations), per key:
//! - no element appears twice in a read (duplicate);
//! - all `ok` reads are prefixes of one another: the appends have one total order;
//! - an element whose append failed never appears, and neither does an element nobody appended;
//! - real time: a read contains every element whose append completed `ok` before the read was
//!   invoked (stale read), shows no fewer elements than a read that completed before it was invoked
//!   (read regression), and shows no element whose append was invoked only after it completed;
//! - every `ok` append appears in the key's final read, the last read invoked (lost append). Only
//!   appends that completed before that read was invoked are required, so the runner should take
//!   the final reads after the cluster healed and the clients stopped.
//!
//! `info` appends may appear or not. Operates on paired [`Operation`]s only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use super::{Anomaly, Stats, Verdict, elapsed_ns};
use crate::history::{Op, Operation, Outcome, Workload};

/// Checks every list of the history; ignores operations of other workloads.
pub fn check(operations: &[Operation]) -> Verdict {
    let start = Instant::now();
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for operation in operations.iter().filter(|o| o.op.workload() == Workload::ListAppend) {
        by_key.entry(operation.op.key()).or_default().push(operation);
    }
    let mut stats = Stats { keys: by_key.len() as u64, ..Stats::default() };
    stats.ops_checked = by_key.values().map(|ops| ops.len() as u64).sum();
    let mut anomalies = Vec::new();
    for (key, ops) in by_key {
        check_key(key, &ops, &mut anomalies);
    }
    stats.elapsed_ns = elapsed_ns(start);
    Verdict::from_findings(anomalies, Vec::new(), stats)
}

/// An `ok` read with its list.
struct Read<'a> {
    operation: &'a Operation,
    list: &'a [u64],
}

impl Read<'_> {
    fn completion(&self) -> u64 {
        self.operation.completion_index.expect("ok operations have a completion")
    }
}

fn check_key(key: &str, ops: &[&Operation], anomalies: &mut Vec<Anomaly>) {
    let mut appends: HashMap<u64, Vec<&Operation>> = HashMap::new();
    let mut reads: Vec<Read<'_>> = Vec::new();
    for &operation in ops {
        match &operation.op {
            Op::Append { element, .. } => appends.entry(*element).or_default().push(operation),
            Op::ReadList { value: Some(list), .. } if operation.is_ok() => reads.push(Read { operation, list }),
            _ => {}
        }
    }
    // The strongest outcome of an element's appends (the harness appends each element once).
    let status = |element: u64| -> Option<Outcome> {
        let appends = appends.get(&element)?;
        if appends.iter().any(|a| a.is_ok()) {
            Some(Outcome::Ok)
        } else if appends.iter().any(|a| a.is_info()) {
            Some(Outcome::Info)
        } else {
            Some(Outcome::Fail)
        }
    };
    let key = key.to_owned();

    for read in &reads {
        let mut seen = HashSet::new();
        let mut duplicates = Vec::new();
        for &element in read.list {
            if !seen.insert(element) && !duplicates.contains(&element) {
                duplicates.push(element);
            }
            match status(element) {
                None => {
                    anomalies.push(Anomaly::PhantomElement { key: key.clone(), element, read: read.operation.clone() })
                }
                Some(Outcome::Fail) => anomalies.push(Anomaly::FailedAppendVisible {
                    key: key.clone(),
                    element,
                    append: appends[&element][0].clone(),
                    read: read.operation.clone(),
                }),
                Some(_) => {
                    let first_append = appends[&element].iter().min_by_key(|a| a.invoke_index).expect("non-empty");
                    if read.completion() < first_append.invoke_index {
                        anomalies.push(Anomaly::ElementBeforeAppend {
                            key: key.clone(),
                            element,
                            append: (*first_append).clone(),
                            read: read.operation.clone(),
                        });
                    }
                }
            }
        }
        if !duplicates.is_empty() {
            anomalies.push(Anomaly::DuplicateElements {
                key: key.clone(),
                elements: duplicates,
                read: read.operation.clone(),
            });
        }
    }

    // One total order: every read is a prefix of the longest one.
    if let Some(longest) = reads.iter().max_by_key(|r| (r.list.len(), std::cmp::Reverse(r.operation.invoke_index))) {
        for read in &reads {
            if let Some(position) = read.list.iter().zip(longest.list).position(|(a, b)| a != b) {
                anomalies.push(Anomaly::IncompatibleOrder {
                    key: key.clone(),
                    read: read.operation.clone(),
                    other: longest.operation.clone(),
                    position,
                });
            }
        }
    }

    // Real time: appends acknowledged before a read began are in it; the final read's misses are
    // lost appends.
    let mut acknowledged: Vec<(u64, u64, &Operation)> = appends
        .iter()
        .flat_map(|(&element, ops)| ops.iter().filter(|a| a.is_ok()).map(move |a| (element, *a)))
        .map(|(element, a)| (a.completion_index.expect("ok operations have a completion"), element, a))
        .collect();
    acknowledged.sort_by_key(|&(completion, element, _)| (completion, element));
    let final_read = reads.iter().max_by_key(|r| r.operation.invoke_index).map(|r| r.operation.invoke_index);
    for read in &reads {
        let contents: HashSet<u64> = read.list.iter().copied().collect();
        let missing: Vec<(u64, &Operation)> = acknowledged
            .iter()
            .take_while(|(completion, _, _)| *completion < read.operation.invoke_index)
            .filter(|(_, element, _)| !contents.contains(element))
            .map(|&(_, element, append)| (element, append))
            .collect();
        if missing.is_empty() {
            continue;
        }
        if Some(read.operation.invoke_index) == final_read {
            for (element, append) in missing {
                anomalies.push(Anomaly::LostAppend {
                    key: key.clone(),
                    element,
                    append: append.clone(),
                    final_read: read.operation.clone(),
                });
            }
        } else {
            anomalies.push(Anomaly::StaleRead {
                key: key.clone(),
                read: read.operation.clone(),
                missing: missing.iter().map(|(e, _)| *e).collect(),
                appends: missing.iter().map(|(_, a)| (*a).clone()).collect(),
            });
        }
    }

    // Real time between reads: a read shows at least what any read completed before it showed.
    let mut by_completion: Vec<&Read<'_>> = reads.iter().collect();
    by_completion.sort_by_key(|r| r.completion());
    let mut by_invocation: Vec<&Read<'_>> = reads.iter().collect();
    by_invocation.sort_by_key(|r| r.operation.invoke_index);
    let mut longest_before: Option<&Read<'_>> = None;
    let mut next = 0;
    for later in by_invocation {
        while next < by_completion.len() && by_completion[next].completion() < later.operation.invoke_index {
            let candidate = by_completion[next];
            if longest_before.is_none_or(|l| candidate.list.len() > l.list.len()) {
                longest_before = Some(candidate);
            }
            next += 1;
        }
        if let Some(earlier) = longest_before
            && later.list.len() < earlier.list.len()
        {
            anomalies.push(Anomaly::ReadRegression {
                key: key.clone(),
                earlier: earlier.operation.clone(),
                later: later.operation.clone(),
            });
        }
    }
}
