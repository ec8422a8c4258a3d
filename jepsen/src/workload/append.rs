//! Referrers lists as append-only lists: an append pushes a new manifest whose `subject` is one of
//! a few base manifests (the element is in its annotations); a read lists the base's referrers.
//! Checked for lost, duplicated, phantom and stale elements.
//!
//! The referrers API returns a set (in digest order), not a sequence. Every state of a
//! linearizable list of appends contains the states before it, so the reads of a correct
//! system form a chain under inclusion. The workload turns each read into a list by ordering
//! elements by the smallest read they appear in (then by value): for a chain this yields lists
//! that are prefixes of one another, and reads that do not form a chain come out as lists that
//! are not, which the list checker reports.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Workload;
use super::oci::{self, Answer};
use crate::client::Http;
use crate::history::{EventType, History, Op};
use crate::rng::Rng;

const REPO: &str = "jepsen/append";
const KEYS: usize = 3;
const ELEMENT: &str = "org.gati.jepsen.element";
const ARTIFACT: &str = "application/vnd.gati.jepsen.element.v1";

/// The append workload.
pub struct Append {
    /// Key -> (digest, size) of its base manifest.
    bases: Vec<(String, String, usize)>,
    next: AtomicU64,
}

impl Append {
    /// A workload with no bases yet (see `setup`).
    pub fn new() -> Append {
        Append { bases: Vec::new(), next: AtomicU64::new(1) }
    }

    fn base(&self, key: &str) -> Option<&(String, String, usize)> {
        self.bases.iter().find(|(k, _, _)| k == key)
    }

    fn read(&self, http: &Http, digest: &str) -> Answer<BTreeSet<u64>> {
        let mut elements = BTreeSet::new();
        let mut path = format!("/v2/{REPO}/referrers/{digest}");
        // Bounded: a run appends a few thousand elements at most.
        for _ in 0..1_000 {
            let sent = http.request("GET", &path, &[("Accept", "application/vnd.oci.image.index.v1+json")], &[]);
            let page = oci::read_outcome(sent, |r| {
                if r.status != 200 {
                    return None;
                }
                let index: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
                let next = r.header("link").and_then(|l| l.split(['<', '>']).nth(1)).map(str::to_owned);
                Some((index, next))
            });
            let (index, next) = match page {
                Answer::Ok(page) => page,
                Answer::Fail(e) => return Answer::Fail(e),
                Answer::Info(e) => return Answer::Info(e),
            };
            for m in index["manifests"].as_array().into_iter().flatten() {
                match m["annotations"][ELEMENT].as_str().map(str::parse::<u64>) {
                    Some(Ok(e)) => {
                        elements.insert(e);
                    }
                    _ => return Answer::Fail(format!("a referrer without an element: {m}")),
                }
            }
            match next {
                Some(next) => path = next,
                None => return Answer::Ok(elements),
            }
        }
        Answer::Fail("referrers pagination did not end".into())
    }
}

impl Default for Append {
    fn default() -> Self {
        Append::new()
    }
}

impl Workload for Append {
    fn name(&self) -> &'static str {
        "append"
    }

    fn setup(&mut self, http: &Http) -> Result<(), String> {
        oci::retry(50, || oci::push_empty_config(http, REPO))?;
        for k in 0..KEYS {
            let key = format!("k{k}");
            let bytes = oci::manifest(&[("org.gati.jepsen.base", key.as_str())], None, None);
            let digest = oci::seed_manifest(http, REPO, &bytes)?;
            self.bases.push((key, digest, bytes.len()));
        }
        Ok(())
    }

    fn generate(&self, rng: &mut Rng) -> Op {
        let key = format!("k{}", rng.below(KEYS as u64));
        if rng.chance(0.5) { Op::append(key, self.next.fetch_add(1, Ordering::Relaxed)) } else { Op::read_list(key) }
    }

    fn execute(&self, http: &Http, op: &Op) -> Answer<Op> {
        match op {
            Op::Append { key, element } => {
                let Some((_, base, size)) = self.base(key) else { return Answer::Fail(format!("unknown key {key}")) };
                let element = element.to_string();
                let bytes = oci::manifest(&[(ELEMENT, element.as_str())], Some((base, *size)), Some(ARTIFACT));
                let digest = oci::digest_of(&bytes);
                match oci::put_manifest(http, REPO, &digest, &bytes, &[]) {
                    Answer::Ok(()) => Answer::Ok(op.clone()),
                    Answer::Fail(e) => Answer::Fail(e),
                    Answer::Info(e) => Answer::Info(e),
                }
            }
            Op::ReadList { key, .. } => {
                let Some((_, base, _)) = self.base(key) else { return Answer::Fail(format!("unknown key {key}")) };
                match self.read(http, base) {
                    // Ordered later, once every read is known (see `order_reads`).
                    Answer::Ok(set) => Answer::Ok(Op::read_list_ok(key.clone(), set.into_iter().collect())),
                    Answer::Fail(e) => Answer::Fail(e),
                    Answer::Info(e) => Answer::Info(e),
                }
            }
            other => Answer::Fail(format!("not an append operation: {other:?}")),
        }
    }

    fn final_reads(&self, _history: &History) -> Vec<Op> {
        (0..KEYS).map(|k| Op::read_list(format!("k{k}"))).collect()
    }
}

/// Rewrites every `ok` list read of `history` from a set into the canonical order described in
/// the module documentation. Reads are recorded in ascending element order until then.
pub fn order_reads(history: &mut History) {
    // Per key: element -> size of the smallest read containing it.
    let mut first_seen: HashMap<String, HashMap<u64, usize>> = HashMap::new();
    for event in history.events() {
        if let (EventType::Ok, Op::ReadList { key, value: Some(list) }) = (event.kind, &event.op) {
            let seen = first_seen.entry(key.clone()).or_default();
            for &e in list {
                let rank = seen.entry(e).or_insert(list.len());
                *rank = (*rank).min(list.len());
            }
        }
    }
    for event in history.events_mut() {
        if let (EventType::Ok, Op::ReadList { key, value: Some(list) }) = (event.kind, &mut event.op) {
            let seen = &first_seen[key.as_str()];
            list.sort_by_key(|e| (seen[e], *e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::order_reads;
    use crate::history::{EventType, History, Op, ProcessId};

    fn with_reads(reads: &[&[u64]]) -> History {
        let mut h = History::new();
        for (p, r) in reads.iter().enumerate() {
            h.record(EventType::Invoke, ProcessId(p as u64), 0, Op::read_list("k0"));
            h.record(EventType::Ok, ProcessId(p as u64), 1, Op::read_list_ok("k0", r.to_vec()));
        }
        h
    }

    fn lists(h: &History) -> Vec<Vec<u64>> {
        h.events()
            .iter()
            .filter_map(|e| match (&e.kind, &e.op) {
                (EventType::Ok, Op::ReadList { value: Some(v), .. }) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_chain_of_sets_becomes_lists_that_are_prefixes_and_a_fork_does_not() {
        // 5 committed before 4: sets {5}, {1,5}, {1,4,5}.
        let mut h = with_reads(&[&[1, 4, 5], &[5], &[1, 5]]);
        order_reads(&mut h);
        assert_eq!(lists(&h), vec![vec![5, 1, 4], vec![5], vec![5, 1]]);
        // {1} and {2} cannot both be states of one list.
        let mut h = with_reads(&[&[1], &[2]]);
        order_reads(&mut h);
        let l = lists(&h);
        assert!(!l[0].starts_with(&l[1]) && !l[1].starts_with(&l[0]));
    }
}
