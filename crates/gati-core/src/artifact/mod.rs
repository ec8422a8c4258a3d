//! Gati artifacts: the typed view the registry adds on top of OCI storage.
//!
//! An artifact is `namespace/name@version`: a published document (`gati.json`, see [`document`])
//! whose `type` is one of [`ArtifactKind`], stored as an OCI manifest whose config blob is that
//! document, byte for byte, and whose layers are the artifact's files. Versions are immutable
//! (a version number once published never carries other content, even after unpublish); dist-tags
//! such as `latest` are movable pointers to versions.

pub mod command;
pub mod config;
pub mod document;
mod kind;
mod names;
mod rules;

pub use crate::time::is_rfc3339;
pub use command::{ArtifactCommand, ArtifactRejection, DownloadCount, PublishVersion, VersionRecord};
pub use document::{ArtifactDocument, FieldError, FileEntry, ValidatedDocument};
pub use kind::ArtifactKind;
pub use names::{ArtifactRef, ArtifactVersion, DistTag, RefTarget, oci_tag_of};

/// The media type of an artifact's config blob: the published document.
pub const DOCUMENT_MEDIA_TYPE: &str = "application/vnd.gati.manifest.v1+json";

/// The media type of an artifact's file layers.
pub const FILE_MEDIA_TYPE: &str = "application/vnd.gati.file.v1";

/// The layer annotation naming a file's path inside the artifact (the one OCI clients such as
/// oras use to name pulled files).
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";

/// The layer annotation carrying a file's sha512 (hex), which OCI descriptors have no room for.
pub const SHA512_ANNOTATION: &str = "dev.gati.file.sha512";

/// How long after publishing a version may still be unpublished; after that it can only be
/// deprecated, because someone may depend on it.
pub const UNPUBLISH_WINDOW_SECS: u64 = 72 * 3600;
