//! The one error enum of the client.

use thiserror::Error;

/// A problem the registry reported (`application/problem+json`) or a failure to reach it.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The registry answered with an error.
    #[error("{detail}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The problem's title.
        title: String,
        /// The problem's detail.
        detail: String,
        /// Problems with single fields, `(field, message)`.
        errors: Vec<(String, String)>,
    },
    /// The registry could not be reached or the connection failed.
    #[error("cannot reach the registry: {0}")]
    Transport(String),
    /// A downloaded file does not match its checksum (and was discarded).
    #[error("{path}: {what} does not match; the download was discarded")]
    Checksum {
        /// The file.
        path: String,
        /// Which checksum or size.
        what: &'static str,
    },
    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The registry answered something this client does not understand.
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io { context: context.into(), source }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e.to_string())
    }
}

/// The result type of the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
