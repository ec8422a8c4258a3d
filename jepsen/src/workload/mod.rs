//! The workloads: what the clients do to the registry, through its public HTTP API only.
//!
//! Each workload owns a repository under the `jepsen` namespace, prepares it before faults start
//! ([`Workload::setup`]), generates operations from a client's random stream, executes one
//! operation against one node, and names the final reads that run against every node once the
//! cluster has healed.

pub mod append;
pub mod blobs;
pub mod oci;
pub mod register;

use crate::client::Http;
use crate::history::{History, Op};
use crate::rng::Rng;

pub use oci::Answer;

/// One workload.
pub trait Workload: Send + Sync {
    /// Its name in reports and on the command line.
    fn name(&self) -> &'static str;
    /// Prepares the repository through `http` (no faults are active yet).
    fn setup(&mut self, http: &Http) -> Result<(), String>;
    /// The next operation of a client.
    fn generate(&self, rng: &mut Rng) -> Op;
    /// Runs `op` against `http`; an `Ok` carries the op with its observed value.
    fn execute(&self, http: &Http, op: &Op) -> Answer<Op>;
    /// The reads to run against every node after the cluster healed, given the history so far.
    fn final_reads(&self, history: &History) -> Vec<Op>;
}

/// The workload called `name`.
pub fn by_name(name: &str, seed: u64) -> Option<Box<dyn Workload>> {
    match name {
        "register" => Some(Box::new(register::Register::new())),
        "append" => Some(Box::new(append::Append::new())),
        "blobs" => Some(Box::new(blobs::Blobs::new(seed))),
        _ => None,
    }
}

/// Every workload's name.
pub const ALL: &[&str] = &["register", "append", "blobs"];
