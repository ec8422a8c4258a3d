//! Namespace actors: one per namespace, living on the node that leads the namespace's shard,
//! created on demand and stopped when idle or when that node stops leading the shard.
//!
//! [`NamespaceDirectory::propose`] is where every write enters: on the shard's leader it goes to
//! the namespace's actor; on any other node it is forwarded over gRPC to the leader (which hands it
//! to its own actor), so clients never need to know the leader. A namespace actor serialises the *validation* of its namespace's writes, not their commits: it
//! checks a command against the applied state it can see, rejects early what must fail, proposes the
//! rest to Raft and goes on with its next message while the proposal commits. The state machine
//! re-checks every precondition in `apply`, so a stale view here can only cause a clean rejection,
//! never a broken invariant. Reads never go through this actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gati_core::command::Rejection;
use gati_core::{Applied, Command, GroupId, Namespace, ShardId};
use gati_meta::StateMachine;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::debug;

use super::error::{ActorError, Result};
use super::upload::call;
use crate::cluster::forward::{self, ForwardError, Proposed};
use crate::cluster::{Backoff, Cluster, ClusterError, LEADER_DEADLINE};
use crate::raft::RaftNode;

/// Messages of a [`NamespaceActor`].
pub enum NamespaceMsg {
    /// Validates and proposes a command; replies once it is applied (or refused).
    Propose {
        /// The write.
        command: Command,
        /// Receives the outcome.
        reply: RpcReplyPort<Result<Applied>>,
    },
    /// Periodic check that stops the actor after its idle period.
    IdleCheck,
}

/// The actor serialising one namespace's writes.
pub struct NamespaceActor;

/// Start-up arguments and state of a [`NamespaceActor`].
pub struct NamespaceState {
    namespace: Namespace,
    state: StateMachine,
    raft: RaftNode,
    idle_timeout: Duration,
    last_used: Instant,
    live: LiveNamespaces,
}

/// Refuses, without consensus, a command that the applied state already shows must fail. Only
/// checks that cannot be invalidated by a write still in flight from this same actor (blobs and
/// manifests are only ever added by earlier proposals, which commit in order before ours applies).
fn pre_validate(state: &StateMachine, command: &Command) -> Result<Option<Rejection>> {
    if let Command::PutManifest { repo, record, .. } = command {
        for blob in &record.blobs {
            if state.blob_link(repo, blob)?.is_none() {
                return Ok(Some(Rejection::BlobUnknown { digest: blob.clone() }));
            }
        }
        for child in &record.manifests {
            if state.manifest(repo, child)?.is_none() {
                return Ok(Some(Rejection::ManifestUnknown { digest: child.clone() }));
            }
        }
    }
    Ok(None)
}

impl Actor for NamespaceActor {
    type Msg = NamespaceMsg;
    type State = NamespaceState;
    type Arguments = NamespaceState;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: NamespaceState,
    ) -> Result<Self::State, ActorProcessingErr> {
        super::schedule_idle_checks(&myself, args.idle_timeout, || NamespaceMsg::IdleCheck);
        Ok(args)
    }

    async fn post_stop(&self, myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.live.remove_if_same(&state.namespace, &myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NamespaceMsg::Propose { command, reply } => {
                state.last_used = Instant::now();
                match pre_validate(&state.state, &command) {
                    Ok(Some(rejection)) => {
                        let _ = reply.send(Ok(Applied::Rejected(rejection)));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(None) if !state.raft.is_leader() => {
                        // Leadership moved: this actor belongs on the new leader now.
                        debug!(namespace = %state.namespace, "namespace actor no longer on the shard leader, stopping");
                        let _ = reply.send(Err(ActorError::NotLeader));
                        myself.stop(None);
                    }
                    Ok(None) => {
                        let raft = state.raft.clone();
                        let myself = myself.clone();
                        tokio::spawn(async move {
                            let outcome = raft.propose(command).await.map_err(ActorError::from);
                            if outcome.as_ref().is_err_and(ActorError::is_not_leader) {
                                myself.stop(None);
                            }
                            let _ = reply.send(outcome);
                        });
                    }
                }
            }
            NamespaceMsg::IdleCheck => {
                if state.last_used.elapsed() >= state.idle_timeout {
                    debug!(namespace = %state.namespace, "namespace actor idle, stopping");
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Default)]
struct LiveNamespaces(Arc<Mutex<HashMap<Namespace, ActorRef<NamespaceMsg>>>>);

impl LiveNamespaces {
    fn remove_if_same(&self, namespace: &Namespace, actor: &ActorRef<NamespaceMsg>) {
        let mut live = self.0.lock().expect("live namespaces lock poisoned");
        if live.get(namespace).is_some_and(|a| a.get_id() == actor.get_id()) {
            live.remove(namespace);
        }
    }

    /// Stops the actors of every namespace `in_shard` accepts.
    fn stop_where(&self, in_shard: impl Fn(&Namespace) -> bool) {
        let live = self.0.lock().expect("live namespaces lock poisoned");
        for (namespace, actor) in live.iter() {
            if in_shard(namespace) {
                actor.stop(None);
            }
        }
    }
}

/// Routes each write to its namespace's actor on the shard's leader, starting the actor on demand
/// and forwarding to another node when this one does not lead.
#[derive(Clone)]
pub struct NamespaceDirectory {
    cluster: Cluster,
    idle_timeout: Duration,
    live: LiveNamespaces,
}

impl NamespaceDirectory {
    /// Creates a directory; actors stop after `idle_timeout` without writes, and the actors of a
    /// shard stop as soon as this node stops leading it.
    pub fn new(cluster: Cluster, idle_timeout: Duration) -> Self {
        let directory = NamespaceDirectory { cluster, idle_timeout, live: LiveNamespaces::default() };
        for shard in directory.cluster.shard_count().shards() {
            tokio::spawn(stop_actors_on_lost_leadership(directory.clone(), shard));
        }
        directory
    }

    async fn actor(&self, namespace: &Namespace) -> Result<ActorRef<NamespaceMsg>> {
        if let Some(actor) = self.live.0.lock().expect("live namespaces lock poisoned").get(namespace) {
            return Ok(actor.clone());
        }
        let shard = self.cluster.shard_of(namespace);
        let args = NamespaceState {
            namespace: namespace.clone(),
            state: self.cluster.state(shard).clone(),
            raft: self.cluster.raft(shard).clone(),
            idle_timeout: self.idle_timeout,
            last_used: Instant::now(),
            live: self.live.clone(),
        };
        let (actor, _) =
            Actor::spawn(None, NamespaceActor, args).await.map_err(|e| ActorError::Unavailable(e.to_string()))?;
        // Two requests may race to start the same namespace; the first registered wins and the
        // loser's actor simply idles out.
        let mut live = self.live.0.lock().expect("live namespaces lock poisoned");
        Ok(live.entry(namespace.clone()).or_insert(actor).clone())
    }

    /// Returns how many namespace actors are running on this node.
    pub fn live_namespaces(&self) -> usize {
        self.live.0.lock().expect("live namespaces lock poisoned").len()
    }

    /// Proposes a write and waits until it is applied or refused, wherever its shard's leader is:
    /// through the local actor when this node leads, forwarded to the leader otherwise. Rides out
    /// elections for up to [`LEADER_DEADLINE`]; a forwarded write whose answer is lost fails as
    /// indeterminate rather than being sent twice.
    pub async fn propose(&self, command: Command) -> Result<Applied> {
        let Some(repo) = command.repo() else { return Ok(Applied::Rejected(Rejection::WrongGroup)) };
        let shard = self.cluster.shard_of_repo(repo);
        let raft = self.cluster.raft(shard);
        let deadline = Instant::now() + LEADER_DEADLINE;
        let mut backoff = Backoff::new();
        loop {
            let why = if raft.is_leader() {
                match self.propose_here(command.clone()).await {
                    Err(e) if e.is_not_leader() => "leadership moved".to_owned(),
                    other => return other,
                }
            } else if let Some((leader, addr)) = raft.leader().filter(|(l, _)| *l != self.cluster.node_id()) {
                match forward::propose(
                    &self.cluster.transport().peers,
                    &addr,
                    leader.0,
                    GroupId::Shard(shard),
                    &command,
                )
                .await
                {
                    Ok(Proposed::Applied(applied)) => return Ok(applied),
                    Ok(Proposed::NotLeader) => format!("node {leader} no longer leads"),
                    Err(ForwardError::NotSent { addr, why }) => format!("leader {leader} at {addr}: {why}"),
                    Err(ForwardError::Failed(e)) => return Err(e.into()),
                }
            } else {
                "no leader elected".to_owned()
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::NoLeader { group: GroupId::Shard(shard), why }.into());
            }
            backoff.wait().await;
        }
    }

    /// Proposes a write through this node's actor of its namespace; fails with
    /// [`ActorError::NotLeader`] (nothing proposed) when this node does not lead the shard.
    pub async fn propose_here(&self, command: Command) -> Result<Applied> {
        let Some(repo) = command.repo() else { return Ok(Applied::Rejected(Rejection::WrongGroup)) };
        let namespace = repo.namespace();
        // An actor that stopped between lookup and send is replaced once.
        for attempt in 0..2 {
            let actor = self.actor(&namespace).await?;
            let cmd = command.clone();
            match call(&actor, |reply| NamespaceMsg::Propose { command: cmd, reply }).await {
                Err(ActorError::Unavailable(_)) if attempt == 0 => {
                    self.live.remove_if_same(&namespace, &actor);
                }
                other => return other?,
            }
        }
        Err(ActorError::Unavailable(format!("namespace {namespace} actor keeps stopping")))
    }
}

/// Stops a shard's namespace actors whenever this node stops leading the shard, so they live only
/// on the leader (a stale actor would be harmless, since `apply` re-checks everything, but it would
/// hold memory and answer every write with a redirect).
async fn stop_actors_on_lost_leadership(directory: NamespaceDirectory, shard: ShardId) {
    let raft = directory.cluster.raft(shard).clone();
    let mut metrics = raft.watch();
    let mut was_leader = raft.is_leader();
    while metrics.changed().await.is_ok() {
        let leads = raft.is_leader();
        if was_leader && !leads {
            let cluster = directory.cluster.clone();
            directory.live.stop_where(|namespace| cluster.shard_of(namespace) == shard);
        }
        was_leader = leads;
    }
}
