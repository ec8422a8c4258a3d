//! The one error enum of the identity facade.

use gati_core::identity::IdentityRejection;
use gati_core::{CoreError, ErrorCode};
use thiserror::Error;
use tracing::error;

use crate::cluster::ClusterError;

/// Why an identity operation failed, in terms every API surface can map.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// The request is malformed or breaks a rule (name, email, password policy, role).
    #[error("{0}")]
    Invalid(String),
    /// The name, a name confusable with it, or the email address is taken.
    #[error("{0}")]
    Taken(String),
    /// The credentials are wrong, expired or revoked. Deliberately vague.
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// The account, organisation, key or team does not exist (or is not visible).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The write lost to the state (the last owner, a member missing).
    #[error("{0}")]
    Conflict(String),
    /// Accounts cannot be created through the API on this registry.
    #[error("sign-up is disabled on this registry")]
    SignupDisabled,
    /// Too many failed sign-ins for this account name: try again after the wait.
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    /// The cluster cannot take the request now.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected storage failure; details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl IdentityError {
    /// Returns the protocol-neutral class of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            IdentityError::Invalid(_) => ErrorCode::Invalid,
            IdentityError::Taken(_) | IdentityError::Conflict(_) => ErrorCode::Conflict,
            IdentityError::Unauthenticated(_) | IdentityError::Forbidden(_) | IdentityError::SignupDisabled => {
                ErrorCode::Unauthorized
            }
            IdentityError::NotFound(_) => ErrorCode::NotFound,
            IdentityError::Unavailable(_) | IdentityError::RateLimited(_) => ErrorCode::Unavailable,
            IdentityError::Internal => ErrorCode::Internal,
        }
    }

    /// Logs an unexpected failure once, where it is turned into [`IdentityError::Internal`].
    pub(crate) fn internal(source: &dyn std::error::Error, context: &'static str) -> Self {
        error!(error = %source, context, "internal error");
        IdentityError::Internal
    }

    /// The error for a state-machine refusal.
    pub(crate) fn refused(rejection: IdentityRejection) -> Self {
        match rejection {
            IdentityRejection::NameTaken { holder } => {
                IdentityError::Taken(format!("the name is taken or too similar to the taken name \"{holder}\""))
            }
            IdentityRejection::EmailTaken => {
                IdentityError::Taken("the email address belongs to another account".into())
            }
            IdentityRejection::UserUnknown { .. } => IdentityError::NotFound("user"),
            IdentityRejection::OrgUnknown { .. } => IdentityError::NotFound("organisation"),
            IdentityRejection::NotAMember { user } => {
                IdentityError::Conflict(format!("{user} is not a member of the organisation"))
            }
            IdentityRejection::LastOwner => {
                IdentityError::Conflict("an organisation must keep at least one owner".into())
            }
            IdentityRejection::TeamUnknown => IdentityError::NotFound("team"),
            IdentityRejection::ApiKeyUnknown => IdentityError::NotFound("API key"),
            IdentityRejection::IdTaken => IdentityError::Conflict("the id is already in use; try again".into()),
            IdentityRejection::SessionUnknown => IdentityError::NotFound("session"),
            IdentityRejection::NamespaceUnknown => IdentityError::NotFound("namespace"),
            IdentityRejection::TokenUnusable => {
                IdentityError::Invalid("the link is invalid, expired or already used".into())
            }
        }
    }
}

impl From<CoreError> for IdentityError {
    fn from(e: CoreError) -> Self {
        IdentityError::Invalid(e.to_string())
    }
}

impl From<ClusterError> for IdentityError {
    fn from(e: ClusterError) -> Self {
        match e.code() {
            ErrorCode::Unavailable => IdentityError::Unavailable(e.to_string()),
            _ => IdentityError::internal(&e, "identity write"),
        }
    }
}

impl From<gati_meta::MetaError> for IdentityError {
    fn from(e: gati_meta::MetaError) -> Self {
        IdentityError::internal(&e, "identity state")
    }
}

/// The result type of the identity facade.
pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
