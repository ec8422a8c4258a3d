//! Tags as compare-and-set registers: reads (`GET` a manifest by tag), unconditional writes (`PUT`
//! by tag) and conditional writes (`PUT` with `If-Match: "<digest>"`, or `If-None-Match: *` to
//! create), on a few tags of `jepsen/register`. Checked for linearizability.
//!
//! The values are manifests pushed by digest during setup; the history names them `v0`, `v1`, …
//! (any other digest a read returns appears as itself, and is then a value nobody wrote).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::Workload;
use super::oci::{self, Answer};
use crate::client::Http;
use crate::history::{History, Op};
use crate::rng::Rng;

const REPO: &str = "jepsen/register";
const TAGS: usize = 5;
const VALUES: usize = 100;

/// The register workload.
pub struct Register {
    /// Value name -> (digest, manifest bytes).
    values: Vec<(String, String, Vec<u8>)>,
    by_digest: HashMap<String, String>,
    /// The value each tag was last seen to hold by any client. Compare-and-sets expect it most of
    /// the time, so that many of them succeed (random expectations almost never would) and the
    /// history exercises successful and failed swaps alike.
    seen: Mutex<HashMap<String, Option<String>>>,
}

impl Register {
    /// A workload with no values yet (see `setup`).
    pub fn new() -> Register {
        Register { values: Vec::new(), by_digest: HashMap::new(), seen: Mutex::new(HashMap::new()) }
    }

    fn value(&self, name: &str) -> Option<&(String, String, Vec<u8>)> {
        self.values.iter().find(|(n, _, _)| n == name)
    }

    fn saw(&self, key: &str, value: Option<&str>) {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), value.map(str::to_owned));
    }
}

impl Default for Register {
    fn default() -> Self {
        Register::new()
    }
}

fn tag(i: u64) -> String {
    format!("t{i}")
}

impl Workload for Register {
    fn name(&self) -> &'static str {
        "register"
    }

    fn setup(&mut self, http: &Http) -> Result<(), String> {
        oci::retry(50, || oci::push_empty_config(http, REPO))?;
        for i in 0..VALUES {
            let name = format!("v{i}");
            let bytes = oci::manifest(&[("org.gati.jepsen.value", name.as_str())], None, None);
            let digest = oci::seed_manifest(http, REPO, &bytes)?;
            self.by_digest.insert(digest.clone(), name.clone());
            self.values.push((name, digest, bytes));
        }
        Ok(())
    }

    fn generate(&self, rng: &mut Rng) -> Op {
        let key = tag(rng.below(TAGS as u64));
        let value = |rng: &mut Rng| format!("v{}", rng.below(VALUES as u64));
        match rng.below(10) {
            0..=3 => Op::read(key),
            4..=5 => Op::write(key, value(rng)),
            6 => Op::cas(key, None, value(rng)),
            7 => {
                let expected = value(rng);
                Op::cas(key, Some(&expected), value(rng))
            }
            _ => {
                let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned().flatten();
                let expected = seen.unwrap_or_else(|| value(rng));
                Op::cas(key, Some(&expected), value(rng))
            }
        }
    }

    fn execute(&self, http: &Http, op: &Op) -> Answer<Op> {
        match op {
            Op::Read { key, .. } => {
                let path = format!("/v2/{REPO}/manifests/{key}");
                let sent = http.request("GET", &path, &[("Accept", oci::OCI_MANIFEST)], &[]);
                oci::read_outcome(sent, |r| match r.status {
                    200 => {
                        let digest = r.header("docker-content-digest")?;
                        let name = self.by_digest.get(digest).map_or(digest, String::as_str);
                        self.saw(key, Some(name));
                        Some(Op::read_ok(key.clone(), Some(name)))
                    }
                    404 => {
                        self.saw(key, None);
                        Some(Op::read_ok(key.clone(), None))
                    }
                    _ => None,
                })
            }
            Op::Write { key, value } => {
                let Some((_, _, bytes)) = self.value(value) else {
                    return Answer::Fail(format!("unknown value {value}"));
                };
                match oci::put_manifest(http, REPO, key, bytes, &[]) {
                    Answer::Ok(()) => {
                        self.saw(key, Some(value));
                        Answer::Ok(op.clone())
                    }
                    Answer::Fail(e) => Answer::Fail(e),
                    Answer::Info(e) => Answer::Info(e),
                }
            }
            Op::Cas { key, expected, new } => {
                let Some((_, _, bytes)) = self.value(new) else { return Answer::Fail(format!("unknown value {new}")) };
                let condition = match expected {
                    None => ("If-None-Match", "*".to_owned()),
                    Some(e) => match self.value(e) {
                        Some((_, digest, _)) => ("If-Match", format!("\"{digest}\"")),
                        None => return Answer::Fail(format!("unknown value {e}")),
                    },
                };
                match oci::put_manifest(http, REPO, key, bytes, &[(condition.0, condition.1.as_str())]) {
                    Answer::Ok(()) => {
                        self.saw(key, Some(new));
                        Answer::Ok(op.clone())
                    }
                    Answer::Fail(e) => Answer::Fail(e),
                    Answer::Info(e) => Answer::Info(e),
                }
            }
            other => Answer::Fail(format!("not a register operation: {other:?}")),
        }
    }

    fn final_reads(&self, _history: &History) -> Vec<Op> {
        (0..TAGS as u64).map(|i| Op::read(tag(i))).collect()
    }
}
