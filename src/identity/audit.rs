//! The audit log: every write, and every access decision on private content, recorded with who,
//! what, when, from where and how it ended, replicated through the `meta` group, and readable by
//! those who administer the namespace.
//!
//! Requests never wait for their entry to commit: entries go into a bounded in-memory queue that
//! one task per node drains into a single `AppendAudit` write every quarter second (or every
//! thousand entries). An entry therefore reaches every node within about a second; a node that
//! crashes loses at most that last quarter second of entries, and a queue that overflows (the
//! `meta` group unreachable for long) drops entries and counts them in
//! `gati_audit_dropped_total` rather than slowing requests down.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gati_core::Namespace;
use gati_core::identity::{AuditEvent, AuditOutcome, IdentityCommand};
use tokio::sync::mpsc;
use tracing::warn;

use super::error::Result;
use super::{Identity, Principal};
use crate::cluster::Cluster;

/// Entries a node holds before it drops new ones.
const QUEUE: usize = 50_000;
/// Entries per replicated write.
const BATCH: usize = 1_000;
/// How long entries wait to be batched.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// The sending end of a node's audit queue.
#[derive(Clone)]
pub(crate) struct AuditQueue {
    tx: mpsc::Sender<(Namespace, AuditEvent)>,
}

impl AuditQueue {
    /// Starts the task that replicates queued entries through `cluster`'s `meta` group.
    pub(crate) fn start(cluster: Cluster) -> AuditQueue {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(drain(cluster, rx));
        AuditQueue { tx }
    }
}

async fn drain(cluster: Cluster, mut rx: mpsc::Receiver<(Namespace, AuditEvent)>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let Some(first) = rx.recv().await else { return };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(entry)) => batch.push(entry),
                Ok(None) | Err(_) => break,
            }
        }
        let entries = std::mem::take(&mut batch);
        let count = entries.len();
        let mut attempt = 0;
        let command = IdentityCommand::AppendAudit { entries };
        loop {
            match cluster.propose_meta(command.clone()).await {
                Ok(_) => break,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    warn!(error = %e, count, attempt, "audit entries not replicated yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    warn!(error = %e, count, "audit entries dropped: the meta group is unreachable");
                    metrics::counter!("gati_audit_dropped_total").increment(count as u64);
                    break;
                }
            }
        }
    }
}

/// What one audited request did.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// The namespace whose log it belongs to.
    pub namespace: Namespace,
    /// Who asked.
    pub principal: Principal,
    /// The credential's kind, as [`super::Credential::kind`] names it.
    pub credential: String,
    /// What was asked.
    pub action: String,
    /// Of what.
    pub target: String,
    /// From where.
    pub client: Option<std::net::IpAddr>,
    /// The HTTP status answered.
    pub status: u16,
}

fn outcome(status: u16) -> AuditOutcome {
    match status {
        200..=399 => AuditOutcome::Allowed,
        401 | 403 | 404 | 429 => AuditOutcome::Denied,
        _ => AuditOutcome::Failed,
    }
}

impl Identity {
    /// Queues an entry for the audit log; never waits.
    pub fn audit(&self, entry: AuditEntry) {
        let Some(queue) = &self.inner.audit else { return };
        let event = AuditEvent {
            at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            actor: entry.principal.user_name().cloned(),
            credential: entry.credential,
            action: entry.action,
            target: entry.target,
            client: entry.client.map(|ip| ip.to_string()),
            outcome: outcome(entry.status),
            status: entry.status,
            node: self.cluster().node_id().0,
        };
        if queue.tx.try_send((entry.namespace, event)).is_err() {
            metrics::counter!("gati_audit_dropped_total").increment(1);
        }
    }

    /// A namespace's audit log for those who administer it: up to `limit` entries after
    /// sequence number `after`, oldest first, and whether more follow.
    pub async fn audit_log(
        &self,
        principal: &Principal,
        namespace: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<(u64, AuditEvent)>, bool)> {
        let namespace = self.namespace_admin(principal, namespace)?;
        let state = self.fresh().await?;
        Ok(state.audit(&namespace, after, limit.clamp(1, 1000))?)
    }
}
