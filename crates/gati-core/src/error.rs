//! The one error enum of `gati-core`, and the small protocol-neutral [`ErrorCode`] that every domain
//! error in the workspace maps to. Each protocol (OCI HTTP today, gRPC later) maps `ErrorCode` once,
//! in one file.

use thiserror::Error;

/// A protocol-neutral classification of failures; deliberately small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The thing asked for does not exist.
    NotFound,
    /// The request is malformed or violates a rule.
    Invalid,
    /// A precondition or a concurrent write made the request lose.
    Conflict,
    /// The caller is not authenticated or not allowed.
    Unauthorized,
    /// The service cannot take the request now; retrying may succeed.
    Unavailable,
    /// The request took too long.
    Timeout,
    /// A bug or an unexpected storage failure.
    Internal,
}

/// Errors from parsing and validating registry values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// A digest is not `algorithm:hex` with the right length and alphabet.
    #[error("invalid digest {0:?}")]
    DigestInvalid(String),
    /// A digest names an algorithm the registry cannot verify.
    #[error("unsupported digest algorithm {0:?}")]
    DigestUnsupported(String),
    /// A repository name does not follow the distribution-spec grammar.
    #[error("invalid repository name {name:?}: {reason}")]
    NameInvalid {
        /// The rejected name, cut to a printable length.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A tag does not follow `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    #[error("invalid tag {0:?}")]
    TagInvalid(String),
    /// A manifest body is not valid JSON of the claimed media type, or breaks a spec rule.
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    /// A manifest's media type is not one the registry stores.
    #[error("unsupported manifest media type {0:?}")]
    ManifestUnsupported(String),
    /// An upload session id is not one this server could have issued.
    #[error("invalid upload id {0:?}")]
    UploadIdInvalid(String),
    /// A `Range` or `Content-Range` header cannot be parsed.
    #[error("invalid range {0:?}")]
    RangeInvalid(String),
    /// An identity value (account name, email, key id, network) is malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    IdentityInvalid {
        /// What kind of value it is.
        what: &'static str,
        /// The rejected value, cut to a printable length.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A version range is not npm range syntax.
    #[error("invalid version range {range:?}: {reason}")]
    VersionRangeInvalid {
        /// The rejected range, cut to a printable length.
        range: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A version is not `SemVer` 2.0.
    #[error("invalid version {version:?}: {reason}")]
    VersionInvalid {
        /// The rejected version, cut to a printable length.
        version: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A dist-tag is malformed.
    #[error("invalid dist-tag {tag:?}: {reason}")]
    DistTagInvalid {
        /// The rejected tag, cut to a printable length.
        tag: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An artifact reference cannot be parsed.
    #[error("invalid artifact reference {reference:?}: {reason}")]
    ArtifactRefInvalid {
        /// The rejected reference, cut to a printable length.
        reference: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An artifact type is not one of the product's.
    #[error("unknown artifact type {kind:?}")]
    ArtifactKindUnknown {
        /// The rejected type, cut to a printable length.
        kind: String,
    },
    /// A cluster setting (shard count, group name, node id) is out of its domain.
    #[error("invalid cluster setting: {0}")]
    ClusterInvalid(String),
}

impl CoreError {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Invalid
    }
}

/// The result type of `gati-core`.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
