//! The Rust client of Gati Registry (`RegistryClient`): sign-in, publish (with resumable file
//! uploads), fetch, search, metadata, versions, dist-tags, deprecation, unpublish and
//! dependency resolution, over the registry's REST API and, for file bytes, its OCI upload API.
//!
//! Downloads are streamed to disk and verified against both checksums before they are kept;
//! nothing unverified is ever left where a caller would read it.
#![warn(missing_docs)]

mod client;
mod error;
mod files;
pub mod types;
mod upload;

pub use client::{Auth, RegistryClient, Tokens};
pub use error::{ClientError, Result};
pub use files::{FileDigests, digest_file, digests_of, verify_file};
pub use upload::{LocalFile, UploadOptions, UploadProgress, UploadState};
