//! Exit statuses scripts can rely on, and the failure type every command returns.

use gati_client::ClientError;

/// The exit statuses, for `gati --help`.
pub const HELP: &str = "Exit status: 0 success · 1 other failure · 2 wrong usage · 3 not found · \
4 not signed in or not allowed · 5 conflict (version exists, unresolvable dependencies, rule refused) · \
6 invalid artifact or input · 7 registry unreachable or unavailable · 8 checksum mismatch · \
9 offline and not in the local cache";

/// Why a command failed, with the status it exits with.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub code: u8,
    /// What to say.
    pub message: String,
    /// Problems with single fields, `(field, message)`.
    pub errors: Vec<(String, String)>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), errors: Vec::new() }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Failure::new(1, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(2, message)
    }

    pub fn invalid(message: impl Into<String>, errors: Vec<(String, String)>) -> Self {
        Failure { code: 6, message: message.into(), errors }
    }

    pub fn offline(message: impl Into<String>) -> Self {
        Failure::new(9, message)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::Api { status, errors, .. } => {
                let code = match status {
                    404 => 3,
                    401 | 403 => 4,
                    409 | 412 => 5,
                    400 | 413 | 415 | 422 => 6,
                    429 | 500..=599 => 7,
                    _ => 1,
                };
                Failure { code, message, errors }
            }
            ClientError::Transport(_) => Failure::new(7, message),
            ClientError::Checksum { .. } => Failure::new(8, message),
            ClientError::Io { .. } | ClientError::Protocol(_) => Failure::other(message),
        }
    }
}

impl From<gati_core::CoreError> for Failure {
    fn from(e: gati_core::CoreError) -> Self {
        Failure::usage(e.to_string())
    }
}

/// An IO failure while doing `what`.
pub fn io(what: impl std::fmt::Display, e: std::io::Error) -> Failure {
    Failure::other(format!("{what}: {e}"))
}
