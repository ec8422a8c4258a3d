//! Pure types and parsers of Gati Registry.
//!
//! Owns the vocabulary every other crate speaks: repository names and namespaces, tags, references,
//! digests, media types, OCI manifest and index validation, identity and access records, HTTP byte ranges, and the `Command`s the
//! replicated state machine applies. No IO, no async, no clocks: everything here is deterministic so
//! that it can run inside the state machine and under property tests.
#![warn(missing_docs)]

pub mod artifact;
pub mod cluster;
pub mod command;
pub mod digest;
pub mod error;
pub mod identity;
pub mod manifest;
pub mod media_type;
pub mod name;
mod newtype;
pub mod range;
pub mod reference;
pub mod resolve;
pub mod time;
pub mod upload;
pub mod version_range;

pub use cluster::{GroupId, NodeId, ShardCount, ShardId, place_shard};
pub use command::{Applied, Command, ManifestRecord, Proposal, ProposalOutcome, Rejection, TagCondition};
pub use digest::{Digest, DigestAlgorithm};
pub use error::{CoreError, ErrorCode, Result};
pub use manifest::{Descriptor, ParsedManifest};
pub use media_type::MediaType;
pub use name::{Namespace, RepoName};
pub use range::{ByteRange, ContentRange};
pub use reference::{Reference, Tag};
pub use upload::UploadId;
pub use version_range::VersionRange;
