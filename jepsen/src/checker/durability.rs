//! Blob durability: an acknowledged upload is never lost and never served corrupted.
//!
//! Properties:
//! - after healing, every blob whose `put_blob` completed `ok` is readable, with its digest's
//!   content and its acknowledged size, from every node that appears in the final reads;
//! - read-after-write: a `get_blob` invoked after an `ok` `put_blob` of the digest completed never
//!   answers "missing" (content by digest is immutable, and a miss costs a linearizable round);
//! - any `ok` read that serves content serves the digest's bytes at the acknowledged size.
//!
//! The final reads are the `get_blob` operations with a node that were invoked after the last
//! `put_blob` event; for each blob and node the last `ok` one counts. `info` uploads may be
//! readable or not. Operates on paired [`Operation`]s only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use super::{Anomaly, Stats, Undecided, Verdict, elapsed_ns};
use crate::history::{BlobRead, Op, Operation, Workload};

/// Checks the blob operations of the history; ignores operations of other workloads.
pub fn check(operations: &[Operation]) -> Verdict {
    let start = Instant::now();
    let blob_ops: Vec<&Operation> = operations.iter().filter(|o| o.op.workload() == Workload::Blobs).collect();
    let mut puts: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    let mut reads: Vec<(&Operation, &str, &BlobRead)> = Vec::new();
    let mut last_put_event = None;
    for &operation in &blob_ops {
        match &operation.op {
            Op::PutBlob { digest, .. } => {
                puts.entry(digest).or_default().push(operation);
                let last = operation.completion_index.unwrap_or(operation.invoke_index);
                last_put_event = last_put_event.max(Some(last));
            }
            Op::GetBlob { digest, value: Some(read) } if operation.is_ok() => reads.push((operation, digest, read)),
            _ => {}
        }
    }
    let digests: BTreeSet<&str> = blob_ops.iter().map(|o| o.op.key()).collect();
    let mut stats = Stats { ops_checked: blob_ops.len() as u64, keys: digests.len() as u64, ..Stats::default() };
    let mut anomalies = Vec::new();
    let mut undecided = Vec::new();

    let acknowledged: BTreeMap<&str, &Operation> = puts
        .iter()
        .filter_map(|(&digest, ops)| {
            ops.iter().filter(|p| p.is_ok()).min_by_key(|p| p.completion_index).map(|p| (digest, *p))
        })
        .collect();
    let expected_size = |digest: &str| -> Option<u64> {
        let put =
            acknowledged.get(digest).copied().or_else(|| puts.get(digest).and_then(|ops| ops.first().copied()))?;
        match put.op {
            Op::PutBlob { size, .. } => Some(size),
            _ => None,
        }
    };

    // Content served, at any time.
    for &(read, digest, outcome) in &reads {
        if let BlobRead::Found { sha256, size } = outcome {
            let expected = expected_size(digest);
            if !same_sha256(digest, sha256) || expected.is_some_and(|e| e != *size) {
                anomalies.push(Anomaly::BlobCorrupt {
                    digest: digest.to_owned(),
                    node: read.node.clone(),
                    read: read.clone(),
                    expected_size: expected,
                    observed_sha256: sha256.clone(),
                    observed_size: *size,
                });
            }
        }
    }

    let is_final = |read: &Operation| read.node.is_some() && last_put_event.is_none_or(|last| read.invoke_index > last);

    // Read-after-write during the test.
    for &(read, digest, outcome) in &reads {
        if *outcome != BlobRead::Missing || is_final(read) {
            continue;
        }
        if let Some(put) = acknowledged.get(digest).filter(|put| put.precedes(read)) {
            anomalies.push(Anomaly::BlobMissing {
                digest: digest.to_owned(),
                node: read.node.clone(),
                put: (*put).clone(),
                read: Some(read.clone()),
                final_read: false,
            });
        }
    }

    // Final reads: every acknowledged blob on every node seen.
    let final_nodes: BTreeSet<&str> = blob_ops
        .iter()
        .filter(|o| matches!(o.op, Op::GetBlob { .. }) && is_final(o))
        .filter_map(|o| o.node.as_deref())
        .collect();
    if final_nodes.is_empty() && !acknowledged.is_empty() {
        undecided.push(Undecided {
            key: "*".to_owned(),
            reason: format!("{} blobs were acknowledged but the history has no final reads", acknowledged.len()),
        });
    }
    let mut last_final: HashMap<(&str, &str), (&Operation, &BlobRead)> = HashMap::new();
    for &(read, digest, outcome) in &reads {
        if let (true, Some(node)) = (is_final(read), read.node.as_deref()) {
            let slot = last_final.entry((digest, node)).or_insert((read, outcome));
            if read.invoke_index > slot.0.invoke_index {
                *slot = (read, outcome);
            }
        }
    }
    for (&digest, &put) in &acknowledged {
        for &node in &final_nodes {
            match last_final.get(&(digest, node)) {
                // Found content was judged above, once per read.
                Some((_, BlobRead::Found { .. })) => {}
                Some((read, BlobRead::Missing)) => anomalies.push(Anomaly::BlobMissing {
                    digest: digest.to_owned(),
                    node: Some(node.to_owned()),
                    put: put.clone(),
                    read: Some((*read).clone()),
                    final_read: true,
                }),
                None => anomalies.push(Anomaly::BlobMissing {
                    digest: digest.to_owned(),
                    node: Some(node.to_owned()),
                    put: put.clone(),
                    read: None,
                    final_read: true,
                }),
            }
        }
    }
    stats.elapsed_ns = elapsed_ns(start);
    Verdict::from_findings(anomalies, undecided, stats)
}

/// Returns true when a `sha256:<hex>` digest names the observed hex sha256 (which may carry the
/// prefix too).
fn same_sha256(digest: &str, observed: &str) -> bool {
    let expected = digest.strip_prefix("sha256:").unwrap_or(digest);
    let observed = observed.strip_prefix("sha256:").unwrap_or(observed);
    expected.eq_ignore_ascii_case(observed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_comparison_accepts_prefix_and_case() {
        assert!(same_sha256("sha256:ABcd", "abcd"));
        assert!(same_sha256("sha256:abcd", "sha256:abcd"));
        assert!(!same_sha256("sha256:abcd", "abce"));
    }
}
