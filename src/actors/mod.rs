//! ractor actors: per-entity serialisation and orchestration.
//!
//! Owns the namespace actors (one per namespace, serialising validation of its writes and proposing
//! Commands to Raft) and the upload-session actors (one per live chunked upload, owning its writer).
//! May call `crate::raft`, `gati-meta` reads and `gati-blob`; must not know about HTTP.

pub mod error;
pub mod namespace;
pub mod upload;

pub use error::{ActorError, Result};
pub use namespace::NamespaceDirectory;
pub use upload::UploadDirectory;
