//! Content-addressed blob storage of Gati Registry.
//!
//! Owns blob bytes and upload sessions: the [`BlobStore`] / [`UploadWriter`] contract, the local
//! filesystem backend [`FsBlobStore`] (an S3 backend follows), content hashing, and the
//! [`test_suite`](fn@test_suite) every backend must pass. Streaming throughout: neither a push
//! nor a pull holds a blob in memory.
//!
//! May call `gati-core` for digests, ids and names. Must not call the root crate, HTTP, Raft or
//! `gati-meta`: which repository links which blob is metadata, not storage.
//!
//! The invariant all of this protects: a blob is served under a digest only if its bytes hash to
//! that digest.
#![warn(missing_docs)]

mod error;
mod fs;
mod hashing;
mod store;
mod test_suite;

pub use error::{BlobError, BlobErrorKind, Result};
pub use fs::FsBlobStore;
pub use hashing::{ContentHasher, digest_of};
pub use store::{BlobRead, BlobStore, ByteStream, UploadInfo, UploadWriter, resolve_read_range};
pub use test_suite::test_suite;
