//! The one error enum of `gati-auth` and its [`Result`] alias.
//!
//! Every message here may reach a client (as an OCI `UNAUTHORIZED`/`DENIED` body or a form error), so
//! no variant carries a password, a secret, a private key or a whole token: only short, cut and
//! escaped pieces of what the client itself sent (a key id, a scope) and fixed reasons.

use gati_core::ErrorCode;
use thiserror::Error;

/// The longest piece of client input echoed back in an error message.
const MAX_ECHO_CHARS: usize = 80;

/// Errors from password, token, API-key, scope and pattern handling.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// A new password breaks the password policy.
    #[error("password too weak: {reason}")]
    WeakPassword {
        /// Which rule it breaks; never the password itself.
        reason: &'static str,
    },
    /// A bearer token is malformed, badly signed, or its claims do not fit this server.
    #[error("invalid token: {reason}")]
    TokenInvalid {
        /// Why it was refused.
        reason: &'static str,
    },
    /// A token to be issued would exceed the size the verifier accepts (too many or too long scopes).
    #[error("token would be too large; request fewer scopes")]
    TokenTooLarge,
    /// A token's `exp` is in the past (beyond the clock-skew leeway).
    #[error("token expired")]
    TokenExpired,
    /// A token's `nbf` is in the future (beyond the clock-skew leeway).
    #[error("token not yet valid")]
    TokenNotYetValid,
    /// A token names a signing key (`kid`) this server does not accept, or names none.
    #[error("unknown token signing key {kid:?}")]
    UnknownKey {
        /// The key id from the token header, cut to a printable length; empty when absent.
        kid: String,
    },
    /// Key material (a PKCS#8 document, a public key, a key id) is malformed or inconsistent.
    #[error("invalid key: {reason}")]
    KeyInvalid {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A token scope does not follow `type[(class)]:name:actions`, or names an unknown resource type.
    #[error("invalid scope {scope:?}: {reason}")]
    ScopeInvalid {
        /// The offending scope, cut to a printable length.
        scope: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A presented API key is not of the form `gati_<id>_<secret>`.
    #[error("malformed API key")]
    ApiKeyMalformed,
    /// A repository pattern uses characters or wildcards outside its grammar.
    #[error("invalid repository pattern {pattern:?}: {reason}")]
    PatternInvalid {
        /// The offending pattern, cut to a printable length.
        pattern: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The cryptographic library or the random source failed; an internal error.
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}

impl AuthError {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::WeakPassword { .. }
            | AuthError::KeyInvalid { .. }
            | AuthError::TokenTooLarge
            | AuthError::ScopeInvalid { .. }
            | AuthError::PatternInvalid { .. } => ErrorCode::Invalid,
            AuthError::TokenInvalid { .. }
            | AuthError::TokenExpired
            | AuthError::TokenNotYetValid
            | AuthError::UnknownKey { .. }
            | AuthError::ApiKeyMalformed => ErrorCode::Unauthorized,
            AuthError::Crypto(_) => ErrorCode::Internal,
        }
    }
}

/// Cuts client input to a length that is safe to echo in an error message.
pub(crate) fn echo(input: &str) -> String {
    input.chars().take(MAX_ECHO_CHARS).collect()
}

/// The result type of `gati-auth`.
pub type Result<T, E = AuthError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_input_is_cut_and_escaped_in_messages() {
        let long = format!("repository:a\n{}:pull", "a".repeat(500));
        let error = AuthError::ScopeInvalid { scope: echo(&long), reason: "too long" };
        let message = error.to_string();
        assert!(message.len() < 120, "{message}");
        assert!(!message.contains('\n'));
        assert_eq!(error.code(), ErrorCode::Invalid);
    }

    #[test]
    fn token_failures_are_unauthorized_and_crypto_is_internal() {
        assert_eq!(AuthError::TokenExpired.code(), ErrorCode::Unauthorized);
        assert_eq!(AuthError::UnknownKey { kid: String::new() }.code(), ErrorCode::Unauthorized);
        assert_eq!(AuthError::ApiKeyMalformed.code(), ErrorCode::Unauthorized);
        assert_eq!(AuthError::Crypto("rng".into()).code(), ErrorCode::Internal);
    }
}
