//! The one error enum of `gati-meta`.

use gati_core::ErrorCode;
use thiserror::Error;

/// Failures of the metadata store. Deterministic refusals of a command are not errors: they are
/// [`gati_core::command::Rejection`]s inside a successful apply.
#[derive(Debug, Error)]
pub enum MetaError {
    /// The storage engine failed (IO, disk full, corruption detected by the engine).
    #[error("metadata storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// Reading or writing the log's files failed.
    #[error("metadata log file access failed: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode as what they must be.
    #[error("metadata store is corrupt: {0}")]
    Corrupt(String),
    /// A value could not be encoded or decoded.
    #[error("metadata codec failed: {0}")]
    Codec(String),
}

impl MetaError {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

/// The result type of `gati-meta`.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;
