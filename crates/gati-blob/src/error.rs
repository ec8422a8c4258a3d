//! The one error type of `gati-blob`: a [`BlobErrorKind`] that retry policy and protocol mapping
//! branch on, plus a human message and the underlying source when there is one.
//!
//! Backends turn their library errors into a kind here, at the crate edge; callers never match on
//! message text.

use std::fmt;
use std::io;

use gati_core::ErrorCode;
use thiserror::Error;

/// What went wrong, independent of the backend. Callers decide retries and protocol codes by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlobErrorKind {
    /// No blob is stored under the digest.
    NotFound,
    /// The bytes do not hash to the digest the caller claimed; nothing was stored.
    DigestMismatch,
    /// No upload session with that id exists (never begun, finished, aborted or cleaned up).
    UploadUnknown,
    /// An upload session with that id already exists.
    UploadExists,
    /// Another writer owns the upload session right now.
    UploadBusy,
    /// The requested byte range does not overlap the blob.
    RangeNotSatisfiable,
    /// The backend asked us to slow down; retrying later may succeed.
    Throttled,
    /// The backend did not answer in time.
    Timeout,
    /// Stored state is not what this crate writes (for example an unreadable session record).
    Corrupt,
    /// An I/O failure of the storage medium or the network.
    Io,
    /// A bug: a worker panicked or an invariant broke.
    Internal,
}

impl BlobErrorKind {
    /// Returns the protocol-neutral class of this kind.
    pub fn code(self) -> ErrorCode {
        match self {
            BlobErrorKind::NotFound | BlobErrorKind::UploadUnknown => ErrorCode::NotFound,
            BlobErrorKind::DigestMismatch | BlobErrorKind::RangeNotSatisfiable => ErrorCode::Invalid,
            BlobErrorKind::UploadExists | BlobErrorKind::UploadBusy => ErrorCode::Conflict,
            BlobErrorKind::Throttled => ErrorCode::Unavailable,
            BlobErrorKind::Timeout => ErrorCode::Timeout,
            BlobErrorKind::Corrupt | BlobErrorKind::Io | BlobErrorKind::Internal => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for BlobErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BlobErrorKind::NotFound => "blob not found",
            BlobErrorKind::DigestMismatch => "digest mismatch",
            BlobErrorKind::UploadUnknown => "upload unknown",
            BlobErrorKind::UploadExists => "upload exists",
            BlobErrorKind::UploadBusy => "upload busy",
            BlobErrorKind::RangeNotSatisfiable => "range not satisfiable",
            BlobErrorKind::Throttled => "throttled",
            BlobErrorKind::Timeout => "timeout",
            BlobErrorKind::Corrupt => "corrupt state",
            BlobErrorKind::Io => "i/o error",
            BlobErrorKind::Internal => "internal error",
        };
        f.write_str(name)
    }
}

/// An error from a [`BlobStore`](crate::BlobStore) or an [`UploadWriter`](crate::UploadWriter).
#[derive(Debug, Error)]
#[error("{kind}: {message}")]
pub struct BlobError {
    kind: BlobErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl BlobError {
    /// Builds an error of `kind` with a message and no underlying source.
    pub fn new(kind: BlobErrorKind, message: impl Into<String>) -> Self {
        BlobError { kind, message: message.into(), source: None }
    }

    /// Builds an error of `kind` that wraps the backend's own error.
    pub fn with_source(
        kind: BlobErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        BlobError { kind, message: message.into(), source: Some(source.into()) }
    }

    /// Wraps an I/O error, saying what was being done; `NotFound` I/O errors stay `Io` on purpose,
    /// because a missing file the caller did not ask about is a storage fault, not a 404.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        BlobError::with_source(BlobErrorKind::Io, context, source)
    }

    /// Returns what went wrong.
    pub fn kind(&self) -> BlobErrorKind {
        self.kind
    }

    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        self.kind.code()
    }

    /// Returns the message, without the kind prefix or the source.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The result type of `gati-blob`.
pub type Result<T, E = BlobError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_kinds_to_codes() {
        assert_eq!(BlobError::new(BlobErrorKind::NotFound, "x").code(), ErrorCode::NotFound);
        assert_eq!(BlobError::new(BlobErrorKind::UploadUnknown, "x").code(), ErrorCode::NotFound);
        assert_eq!(BlobError::new(BlobErrorKind::DigestMismatch, "x").code(), ErrorCode::Invalid);
        assert_eq!(BlobErrorKind::RangeNotSatisfiable.code(), ErrorCode::Invalid);
        assert_eq!(BlobErrorKind::UploadBusy.code(), ErrorCode::Conflict);
        assert_eq!(BlobErrorKind::Throttled.code(), ErrorCode::Unavailable);
        assert_eq!(BlobErrorKind::Io.code(), ErrorCode::Internal);
    }

    #[test]
    fn display_carries_kind_and_message_and_keeps_source() {
        let err = BlobError::io("write upload data", io::Error::other("disk full"));
        assert_eq!(err.to_string(), "i/o error: write upload data");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk full"));
    }
}
