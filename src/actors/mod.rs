//! ractor actors: per-entity serialisation and orchestration.
//!
//! Owns the namespace actors (one per namespace, serialising validation of its writes and proposing
//! Commands to Raft) and the upload-session actors (one per live chunked upload, owning its writer).
//! May call `crate::raft`, `gati-meta` reads and `gati-blob`; must not know about HTTP.

pub mod error;
pub mod namespace;
pub mod upload;

#[cfg(test)]
mod tests;

pub use error::{ActorError, Result};

use std::time::Duration;

use ractor::{ActorRef, Message};

/// Makes an actor receive `check()` a few times per idle period, so it can stop itself once it has
/// been idle that long (at most a quarter period late).
fn schedule_idle_checks<M: Message>(actor: &ActorRef<M>, idle: Duration, check: fn() -> M) {
    let period = (idle / 4).max(Duration::from_millis(50));
    actor.send_interval(period, check);
}
pub use namespace::NamespaceDirectory;
pub use upload::UploadDirectory;
