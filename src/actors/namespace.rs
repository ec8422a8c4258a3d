//! Namespace actors: one per namespace, created on demand and stopped when idle.
//!
//! A namespace actor serialises the *validation* of its namespace's writes, not their commits: it
//! checks a command against the applied state it can see, rejects early what must fail, proposes the
//! rest to Raft and goes on with its next message while the proposal commits. The state machine
//! re-checks every precondition in `apply`, so a stale view here can only cause a clean rejection,
//! never a broken invariant. Reads never go through this actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gati_core::command::Rejection;
use gati_core::{Applied, Command, Namespace};
use gati_meta::StateMachine;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::debug;

use super::error::{ActorError, Result};
use super::upload::call;
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
    raft: Arc<RaftNode>,
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
                    Ok(None) => {
                        let raft = state.raft.clone();
                        tokio::spawn(async move {
                            let _ = reply.send(raft.propose(command).await.map_err(ActorError::from));
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
}

/// Routes each write to its namespace's actor, starting the actor on demand.
#[derive(Clone)]
pub struct NamespaceDirectory {
    state: StateMachine,
    raft: Arc<RaftNode>,
    idle_timeout: Duration,
    live: LiveNamespaces,
}

impl NamespaceDirectory {
    /// Creates a directory; actors stop after `idle_timeout` without writes.
    pub fn new(state: StateMachine, raft: Arc<RaftNode>, idle_timeout: Duration) -> Self {
        NamespaceDirectory { state, raft, idle_timeout, live: LiveNamespaces::default() }
    }

    async fn actor(&self, namespace: &Namespace) -> Result<ActorRef<NamespaceMsg>> {
        if let Some(actor) = self.live.0.lock().expect("live namespaces lock poisoned").get(namespace) {
            return Ok(actor.clone());
        }
        let args = NamespaceState {
            namespace: namespace.clone(),
            state: self.state.clone(),
            raft: self.raft.clone(),
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

    /// Returns how many namespace actors are running.
    pub fn live_namespaces(&self) -> usize {
        self.live.0.lock().expect("live namespaces lock poisoned").len()
    }

    /// Proposes a write through its namespace's actor and waits until it is applied or refused.
    pub async fn propose(&self, command: Command) -> Result<Applied> {
        let namespace = command.repo().namespace();
        // An actor that idled out between lookup and send is replaced once.
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
