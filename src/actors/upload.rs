//! Upload-session actors: one per live chunked upload, owning that upload's writer.
//!
//! A session's chunks must be appended in order and never concurrently, so each session is an
//! actor. A whole request body is handed over in one message and consumed by the actor, which
//! gives natural backpressure (the body is read only as fast as the writer accepts it) and keeps
//! bytes out of the unbounded ractor mailbox. Sessions stop after an idle period and are resumed
//! from the blob store on demand, which is also how uploads survive a server restart.
//!
//! In a cluster, consecutive requests of one upload may arrive at different nodes (behind a load
//! balancer, or after a node died). There the actor releases its writer, and with it the store's
//! ownership of the session, at the end of every request, and takes it back from the store at the
//! start of the next: the session's state lives in the shared store, never only in one node's
//! memory, so any node can continue it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gati_blob::{BlobErrorKind, BlobStore, ByteStream, UploadWriter};
use gati_core::{Digest, RepoName, UploadId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{debug, warn};

use super::error::{ActorError, Result};

/// Messages of an [`UploadSessionActor`].
pub enum UploadSessionMsg {
    /// Appends a request body; `start` is the chunk's claimed first byte, if the client sent one.
    /// Replies with the new offset.
    Append {
        /// The claimed first byte (`Content-Range` start).
        start: Option<u64>,
        /// The chunk's bytes.
        body: ByteStream,
        /// Receives the new offset.
        reply: RpcReplyPort<Result<u64>>,
    },
    /// Replies with the number of bytes the session holds.
    Status {
        /// Receives the offset.
        reply: RpcReplyPort<Result<u64>>,
    },
    /// Appends an optional last chunk, verifies against `expected` and commits the blob; the
    /// session ends whatever the outcome. Replies with the blob size.
    Finish {
        /// The last chunk, if the PUT carried one.
        body: Option<ByteStream>,
        /// The claimed first byte of that chunk.
        start: Option<u64>,
        /// The digest the client says the content has.
        expected: Digest,
        /// Receives the size.
        reply: RpcReplyPort<Result<u64>>,
    },
    /// Discards the session.
    Cancel {
        /// Receives the outcome.
        reply: RpcReplyPort<Result<()>>,
    },
    /// Periodic check that stops the actor after its idle period.
    IdleCheck,
}

/// The actor owning one upload session.
pub struct UploadSessionActor;

/// Start-up arguments of an [`UploadSessionActor`].
pub struct UploadSessionArgs {
    id: UploadId,
    writer: Box<dyn UploadWriter>,
    blobs: Arc<dyn BlobStore>,
    idle_timeout: Duration,
    release_writer: bool,
    live: LiveSessions,
}

/// State of an [`UploadSessionActor`].
pub struct UploadSessionState {
    id: UploadId,
    /// `None` between requests when writers are released, and once the session has ended.
    writer: Option<Box<dyn UploadWriter>>,
    /// Whether the session was finished or cancelled: it cannot be resumed any more.
    ended: bool,
    blobs: Arc<dyn BlobStore>,
    idle_timeout: Duration,
    /// Whether the writer is released at the end of every request (cluster mode).
    release_writer: bool,
    last_used: Instant,
    live: LiveSessions,
}

/// How long a request waits for a session's writer that another node (or a writer of this node
/// still flushing) holds; a client sending one request at a time never waits this long.
const TAKE_OVER_WAIT: Duration = Duration::from_secs(5);

impl UploadSessionState {
    /// Returns the session's writer, taking the session back from the store if it was released.
    async fn writer(&mut self) -> Result<&mut Box<dyn UploadWriter>> {
        if self.writer.is_none() {
            if self.ended {
                return Err(ActorError::UploadUnknown(self.id.clone()));
            }
            let writer = resume(self.blobs.as_ref(), &self.id).await?;
            self.writer = Some(writer.1);
        }
        self.writer.as_mut().ok_or_else(|| ActorError::UploadUnknown(self.id.clone()))
    }

    /// Ends a request: in cluster mode, hands the session back to the store.
    fn request_done(&mut self) {
        if self.release_writer {
            self.writer = None;
        }
    }
}

/// Takes a session over from the store, waiting while its previous writer (on this node or
/// another) lets go of it.
async fn resume(blobs: &dyn BlobStore, id: &UploadId) -> Result<(gati_blob::UploadInfo, Box<dyn UploadWriter>)> {
    let deadline = Instant::now() + TAKE_OVER_WAIT;
    loop {
        match blobs.resume_upload(id).await {
            Ok(Some(resumed)) => return Ok(resumed),
            Ok(None) => return Err(ActorError::UploadUnknown(id.clone())),
            Err(e) if e.kind() == BlobErrorKind::UploadBusy && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) if e.kind() == BlobErrorKind::UploadBusy => {
                return Err(ActorError::Unavailable(format!("upload {id} is busy elsewhere")));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn append(writer: &mut dyn UploadWriter, start: Option<u64>, mut body: ByteStream) -> Result<u64> {
    if let Some(start) = start
        && start != writer.offset()
    {
        return Err(ActorError::ChunkOutOfOrder { start, offset: writer.offset() });
    }
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(ActorError::BodyFailed)?;
        if !chunk.is_empty() {
            writer.write(chunk).await?;
        }
    }
    // Acknowledged bytes must survive a crash: a client resumes from the offset we report.
    writer.sync().await?;
    Ok(writer.offset())
}

impl Actor for UploadSessionActor {
    type Msg = UploadSessionMsg;
    type State = UploadSessionState;
    type Arguments = UploadSessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: UploadSessionArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        super::schedule_idle_checks(&myself, args.idle_timeout, || UploadSessionMsg::IdleCheck);
        Ok(UploadSessionState {
            id: args.id,
            writer: Some(args.writer),
            ended: false,
            blobs: args.blobs,
            idle_timeout: args.idle_timeout,
            release_writer: args.release_writer,
            last_used: Instant::now(),
            live: args.live,
        })
    }

    async fn post_stop(&self, _myself: ActorRef<Self::Msg>, state: &mut Self::State) -> Result<(), ActorProcessingErr> {
        state.live.remove(&state.id);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(msg, UploadSessionMsg::IdleCheck) {
            state.last_used = Instant::now();
        }
        match msg {
            UploadSessionMsg::Append { start, body, reply } => {
                let outcome = match state.writer().await {
                    Ok(writer) => append(writer.as_mut(), start, body).await,
                    Err(e) => Err(e),
                };
                if let Err(ActorError::Blob(e)) = &outcome {
                    // A failed writer is poisoned; drop it so the next request resumes from disk.
                    warn!(upload = %state.id, error = %e, "upload write failed");
                    state.writer = None;
                    myself.stop(None);
                }
                state.request_done();
                let _ = reply.send(outcome);
            }
            UploadSessionMsg::Status { reply } => {
                let offset = match &state.writer {
                    Some(writer) => Ok(writer.offset()),
                    // Released: the store's record holds every acknowledged byte.
                    None => match state.blobs.upload_info(&state.id).await {
                        Ok(Some(info)) => Ok(info.offset),
                        Ok(None) => Err(ActorError::UploadUnknown(state.id.clone())),
                        Err(e) => Err(e.into()),
                    },
                };
                let _ = reply.send(offset);
            }
            UploadSessionMsg::Finish { body, start, expected, reply } => {
                let taken = match state.writer().await {
                    Ok(_) => state.writer.take(),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return Ok(());
                    }
                };
                state.ended = true;
                let outcome = match taken {
                    None => Err(ActorError::UploadUnknown(state.id.clone())),
                    Some(mut writer) => {
                        let appended = match body {
                            Some(body) => append(writer.as_mut(), start, body).await.map(|_| ()),
                            None => Ok(()),
                        };
                        match appended {
                            Ok(()) => writer.finish(&expected).await.map_err(|e| match e.kind() {
                                BlobErrorKind::DigestMismatch => ActorError::DigestMismatch(expected.clone()),
                                _ => ActorError::Blob(e),
                            }),
                            Err(e) => {
                                // Keep the session resumable: the client may retry the last chunk.
                                state.writer = Some(writer);
                                state.ended = false;
                                state.request_done();
                                let _ = reply.send(Err(e));
                                return Ok(());
                            }
                        }
                    }
                };
                let _ = reply.send(outcome);
                myself.stop(None);
            }
            UploadSessionMsg::Cancel { reply } => {
                state.writer = None;
                state.ended = true;
                let _ = reply.send(state.blobs.abort_upload(&state.id).await.map_err(ActorError::from));
                myself.stop(None);
            }
            UploadSessionMsg::IdleCheck => {
                if state.last_used.elapsed() >= state.idle_timeout {
                    debug!(upload = %state.id, "upload session idle, parking it");
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}

/// The live session actors by id, shared with the actors so they can deregister when they stop.
#[derive(Clone, Default)]
struct LiveSessions(Arc<Mutex<HashMap<UploadId, LiveSession>>>);

/// A running session actor and the repository its upload belongs to.
#[derive(Clone)]
struct LiveSession {
    repo: RepoName,
    actor: ActorRef<UploadSessionMsg>,
}

impl LiveSessions {
    fn get(&self, id: &UploadId) -> Option<LiveSession> {
        self.0.lock().expect("live sessions lock poisoned").get(id).cloned()
    }

    fn insert(&self, id: UploadId, repo: RepoName, actor: ActorRef<UploadSessionMsg>) {
        self.0.lock().expect("live sessions lock poisoned").insert(id, LiveSession { repo, actor });
    }

    fn remove(&self, id: &UploadId) {
        self.0.lock().expect("live sessions lock poisoned").remove(id);
    }
}

/// Finds or starts the actor of an upload session.
#[derive(Clone)]
pub struct UploadDirectory {
    blobs: Arc<dyn BlobStore>,
    live: LiveSessions,
    idle_timeout: Duration,
    release_writers: bool,
}

impl UploadDirectory {
    /// Creates a directory over a blob store; sessions park after `idle_timeout` without requests.
    /// With `release_writers` (a cluster sharing its blob store), a session is handed back to the
    /// store after every request, so the next one can be served by any node.
    pub fn new(blobs: Arc<dyn BlobStore>, idle_timeout: Duration, release_writers: bool) -> Self {
        UploadDirectory { blobs, live: LiveSessions::default(), idle_timeout, release_writers }
    }

    async fn spawn(
        &self,
        id: UploadId,
        repo: RepoName,
        writer: Box<dyn UploadWriter>,
    ) -> Result<ActorRef<UploadSessionMsg>> {
        let args = UploadSessionArgs {
            id: id.clone(),
            writer,
            blobs: self.blobs.clone(),
            idle_timeout: self.idle_timeout,
            release_writer: self.release_writers,
            live: self.live.clone(),
        };
        let (actor, _) =
            Actor::spawn(None, UploadSessionActor, args).await.map_err(|e| ActorError::Unavailable(e.to_string()))?;
        self.live.insert(id, repo, actor.clone());
        Ok(actor)
    }

    /// Returns how many session actors are running (parked sessions excluded).
    pub fn live_sessions(&self) -> usize {
        self.live.0.lock().expect("live sessions lock poisoned").len()
    }

    /// Discards every parked session begun at least `max_age` ago; returns how many.
    ///
    /// Clients abandon uploads (a crashed CI job, a cancelled push); their bytes would otherwise stay
    /// on disk forever. Running sessions are left alone. A client that resumes a session in the
    /// instant it is discarded gets `BLOB_UPLOAD_UNKNOWN` and starts over, as after any expiry.
    pub async fn purge_expired(&self, max_age: Duration) -> Result<usize> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut purged = 0;
        for id in self.blobs.list_uploads().await? {
            if self.live.get(&id).is_some() {
                continue;
            }
            let Some(info) = self.blobs.upload_info(&id).await? else { continue };
            if now.saturating_sub(info.started_at_unix_secs) < max_age.as_secs() {
                continue;
            }
            match self.blobs.abort_upload(&id).await {
                Ok(()) => purged += 1,
                Err(e) if e.kind() == BlobErrorKind::UploadUnknown => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(purged)
    }

    /// Begins a new upload session in `repo`.
    pub async fn begin(&self, repo: &RepoName) -> Result<UploadId> {
        let id = UploadId::from_random(rand::random());
        let writer = self.blobs.begin_upload(&id, repo).await?;
        if self.release_writers {
            // The next request may go to any node: leave the session with the store.
            drop(writer);
            return Ok(id);
        }
        self.spawn(id.clone(), repo.clone(), writer).await?;
        Ok(id)
    }

    /// Returns the actor of a session of `repo`, resuming a parked session from the blob store.
    async fn session(&self, repo: &RepoName, id: &UploadId) -> Result<ActorRef<UploadSessionMsg>> {
        if let Some(live) = self.live.get(id) {
            if &live.repo != repo {
                return Err(ActorError::UploadUnknown(id.clone()));
            }
            return Ok(live.actor);
        }
        // A parked actor may still be dropping its writer; `resume` waits for it to let go.
        let (info, writer) = resume(self.blobs.as_ref(), id).await?;
        if &info.repo != repo {
            return Err(ActorError::UploadUnknown(id.clone()));
        }
        self.spawn(id.clone(), info.repo, writer).await
    }

    /// Appends a chunk to a session; returns the new offset.
    pub async fn append(&self, repo: &RepoName, id: &UploadId, start: Option<u64>, body: ByteStream) -> Result<u64> {
        let actor = self.session(repo, id).await?;
        call(&actor, |reply| UploadSessionMsg::Append { start, body, reply }).await?
    }

    /// Returns how many bytes a session holds.
    pub async fn status(&self, repo: &RepoName, id: &UploadId) -> Result<u64> {
        let actor = self.session(repo, id).await?;
        call(&actor, |reply| UploadSessionMsg::Status { reply }).await?
    }

    /// Appends an optional last chunk, verifies and commits the blob; returns its size.
    pub async fn finish(
        &self,
        repo: &RepoName,
        id: &UploadId,
        start: Option<u64>,
        body: Option<ByteStream>,
        expected: Digest,
    ) -> Result<u64> {
        let actor = self.session(repo, id).await?;
        call(&actor, |reply| UploadSessionMsg::Finish { body, start, expected, reply }).await?
    }

    /// Discards a session.
    pub async fn cancel(&self, repo: &RepoName, id: &UploadId) -> Result<()> {
        let actor = self.session(repo, id).await?;
        call(&actor, |reply| UploadSessionMsg::Cancel { reply }).await?
    }
}

/// Sends a request to an actor and waits for its reply, turning a stopped actor into
/// [`ActorError::Unavailable`].
pub(crate) async fn call<M, T>(actor: &ActorRef<M>, msg: impl FnOnce(RpcReplyPort<T>) -> M) -> Result<T>
where
    M: ractor::Message,
    T: Send + 'static,
{
    match actor.call(msg, None).await {
        Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
        Ok(ractor::rpc::CallResult::Timeout) => Err(ActorError::Unavailable("actor timed out".into())),
        Ok(ractor::rpc::CallResult::SenderError) => {
            Err(ActorError::Unavailable("actor stopped before replying".into()))
        }
        Err(e) => Err(ActorError::Unavailable(e.to_string())),
    }
}
