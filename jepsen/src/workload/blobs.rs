//! Blob durability: pushes (monolithic and chunked) of content generated from the seed, reads of
//! pushed blobs from any node during the run, and after the cluster heals a read of every pushed
//! blob from every node: each acknowledged blob must be there with exactly its bytes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::Workload;
use super::oci::{self, Answer};
use crate::client::Http;
use crate::history::{EventType, History, Op};
use crate::rng::Rng;

const REPO: &str = "jepsen/blobs";
/// Blob sizes: small ones and a few spanning several chunks and S3 parts.
const SIZES: &[usize] = &[1, 1_000, 64 * 1024, 300 * 1024, 1_500_000];

/// The blobs workload.
pub struct Blobs {
    seed: u64,
    /// Digest -> (content seed, size) of every blob a client started to push.
    pushed: Mutex<BTreeMap<String, (u64, usize)>>,
}

impl Blobs {
    /// A workload whose content derives from `seed`.
    pub fn new(seed: u64) -> Blobs {
        Blobs { seed, pushed: Mutex::new(BTreeMap::new()) }
    }
}

fn content(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(size + 8);
    while data.len() < size {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(size);
    data
}

impl Workload for Blobs {
    fn name(&self) -> &'static str {
        "blobs"
    }

    fn setup(&mut self, _http: &Http) -> Result<(), String> {
        Ok(())
    }

    fn generate(&self, rng: &mut Rng) -> Op {
        let mut pushed = self.pushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !pushed.is_empty() && rng.chance(0.5) {
            let i = rng.below(pushed.len() as u64) as usize;
            if let Some(digest) = pushed.keys().nth(i) {
                return Op::get_blob(digest.clone());
            }
        }
        let content_seed = self.seed ^ rng.next_u64();
        let size = *rng.pick(SIZES);
        let digest = oci::digest_of(&content(content_seed, size));
        pushed.insert(digest.clone(), (content_seed, size));
        Op::put_blob(digest, size as u64)
    }

    fn execute(&self, http: &Http, op: &Op) -> Answer<Op> {
        match op {
            Op::PutBlob { digest, .. } => {
                let found = self.pushed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(digest).copied();
                let Some((content_seed, size)) = found else { return Answer::Fail(format!("unknown blob {digest}")) };
                let data = content(content_seed, size);
                // Odd seeds go chunked, so both upload paths face the faults.
                let pushed = if content_seed % 2 == 1 && size > 1 {
                    oci::push_blob_chunked(http, REPO, &data, 3)
                } else {
                    oci::push_blob(http, REPO, &data)
                };
                match pushed {
                    Answer::Ok(_) => Answer::Ok(op.clone()),
                    Answer::Fail(e) => Answer::Fail(e),
                    Answer::Info(e) => Answer::Info(e),
                }
            }
            Op::GetBlob { digest, .. } => {
                let sent = http.request("GET", &format!("/v2/{REPO}/blobs/{digest}"), &[], &[]);
                oci::read_outcome(sent, |r| match r.status {
                    200 => Some(Op::get_blob_found(
                        digest.clone(),
                        hex::encode(Sha256::digest(&r.body)),
                        r.body.len() as u64,
                    )),
                    404 => Some(Op::get_blob_missing(digest.clone())),
                    _ => None,
                })
            }
            other => Answer::Fail(format!("not a blob operation: {other:?}")),
        }
    }

    fn final_reads(&self, history: &History) -> Vec<Op> {
        let mut digests: Vec<String> = history
            .events()
            .iter()
            .filter(|e| e.kind == EventType::Invoke)
            .filter_map(|e| match &e.op {
                Op::PutBlob { digest, .. } => Some(digest.clone()),
                _ => None,
            })
            .collect();
        digests.sort();
        digests.dedup();
        digests.into_iter().map(Op::get_blob).collect()
    }
}
