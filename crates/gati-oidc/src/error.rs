//! The one error enum of `gati-oidc`.

/// Why a sign-in with a provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider's configuration is unusable (bad issuer or redirect URL).
    #[error("OpenID Connect configuration: {0}")]
    Config(String),
    /// The provider could not be reached or answered nonsense.
    #[error("OpenID Connect provider: {0}")]
    Provider(String),
    /// The provider refused the code, or its ID token did not verify.
    #[error("OpenID Connect sign-in refused: {0}")]
    Rejected(String),
}

/// The result type of `gati-oidc`.
pub type Result<T, E = OidcError> = std::result::Result<T, E>;
