//! The S3 backend of Gati Registry's blob store: [`S3BlobStore`], a [`gati_blob::BlobStore`] over
//! one bucket of any S3-compatible service, shared by every node of a cluster.
//!
//! It lives in its own crate because `aws-sdk-s3` is heavy; `gati-blob` keeps the contract, the
//! fs backend and the conformance suite, which this backend passes. May call `gati-blob` and
//! `gati-core`; must not know about repositories beyond recording who began an upload, nor about
//! HTTP or Raft.
//!
//! # Layout
//!
//! Under an optional key prefix, `blobs/<alg>/<first two hex>/<hex>` holds committed blobs
//! (content-addressed, so deduplicated across repositories) and `uploads/<id>/` everything of
//! one session: its record, its multipart upload's key, its tail segments (`keys.rs`).
//!
//! # Streaming and memory
//!
//! Reads are one (ranged) `GetObject` streamed through. Uploads are S3 multipart uploads: parts
//! of `part_size` (8 MiB by default) upload while the client keeps sending, at most
//! `parts_in_flight` at a time, so an upload holds at most `parts_in_flight + 1` parts in memory
//! whatever its size (`parts.rs` on part sizes past a thousand parts).
//!
//! # Sessions shared by all nodes
//!
//! No upload state lives only in one node's memory: `sync` makes every accepted byte durable in S3
//! (full parts in the multipart upload, the rest as tail segments) and writes the session record
//! (repository, start time, multipart upload id, parts with `ETags`, tail, durable offset, the
//! serialized SHA-256 state and the lease; `record.rs`). `resume_upload` on any node rebuilds the
//! writer from the record, so a chunked upload begun on node A is finished through node B. The
//! hash continues from the serialized state: S3 cannot read back an unfinished multipart upload's
//! parts, so re-hashing the durable prefix would not be possible.
//!
//! # Ownership without locks
//!
//! S3 has no locks, so a session has one owner at a time by a lease in its record: a holder token
//! and an expiry, renewed by every record write (every sync, and mid-stream once half the lease
//! has passed). `resume_upload` refuses with `UploadBusy` while another holder's lease is live,
//! and a dropped writer releases its lease. Leases keep honest nodes out of each other's way; they
//! rest on clocks and could be wrong. Safety does not rest on them:
//!
//! 1. Every record write is conditional on the `ETag` of the version its writer last saw
//!    (`If-Match`; `If-None-Match: *` to create). A writer whose lease was taken over fails its
//!    next record write with `UploadBusy` and is poisoned, so it can neither clobber the new
//!    owner's record nor finish (finishing starts with such a write).
//! 2. Tail segments are named after their writer's token and a sequence number, so no other
//!    writer ever overwrites a segment a record points to; a resumer checks each one's length and
//!    `ETag` against the record.
//! 3. Completion names exactly the parts the finisher recorded, with their `ETags`. S3 rejects a
//!    part whose `ETag` changed since (a stale writer re-uploaded that part number); for services
//!    that do not check, the finisher compares the completed object's `ETag` with the one its part
//!    `ETags` imply (`md5` of the part MD5s) and discards the session on a difference.
//! 4. The digest is the last line: SHA-256 is verified from the running hash, which covers
//!    exactly the bytes whose part `ETags` were recorded; SHA-512 by reading the completed object
//!    back. The staged object is copied to the blob key only if it still has the `ETag` that was
//!    verified (`x-amz-copy-source-if-match`). So no bytes but the verified ones ever appear under
//!    a digest, whatever a stale writer does.
//!
//! # Finishing
//!
//! Verify, then make the blob visible in one atomic step: a single conditional `PutObject` when no
//! part was ever filled (including empty blobs), otherwise complete the multipart upload to the
//! session's staging key and copy it server-side to the blob key (`CopyObject`, or
//! `UploadPartCopy` parts above `copy_part_size`), then remove the session. An existing blob means
//! deduplication: the upload is dropped. A mismatched digest discards the session and stores
//! nothing (`commit.rs`).
//!
//! # Failures
//!
//! The SDK retries throttling (with a longer backoff) and transient errors under its standard
//! retry strategy; what still fails maps once to a [`gati_blob::BlobErrorKind`] (`error.rs`).
//!
//! # Requirements on the service
//!
//! Conditional `PutObject` (`If-Match`, `If-None-Match`), which AWS S3 has had since 2024 and
//! s3s-fs (the test server) implements, and path-style addressing. A bucket lifecycle rule
//! aborting incomplete multipart uploads after some days is recommended: a node that dies between
//! creating a multipart upload and recording it leaves one behind.
#![warn(missing_docs)]

mod bucket;
mod commit;
mod config;
mod error;
mod hash_lane;
mod keys;
mod part_buffer;
mod parts;
mod read;
mod record;
mod session;
mod shared;
mod store;
mod tail;
mod upload;

pub use config::{DEFAULT_PART_SIZE, S3Config};
pub use store::S3BlobStore;
