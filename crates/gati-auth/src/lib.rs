//! Identity and access of Gati Registry: password hashing, signed access tokens and their key
//! ring, API keys, token scopes, repository patterns, and the policy that decides who may do what.
//!
//! Pure logic with no IO beyond the operating system's random source: the replicated records
//! these functions read live in `gati-core` and the state machine; the server wires them to HTTP.
#![warn(missing_docs)]

pub mod api_key;
pub mod error;
pub mod password;
pub mod pattern;
pub mod policy;
pub mod scope;
pub mod signing;
pub mod token;

// The ids are `gati-core`'s, so the replicated records and this crate speak one type.
pub use gati_core::identity::{ApiKeyId, KeyId};

pub use api_key::{ApiKeySecret, NewApiKey, SecretHash, constant_time_eq, looks_like_api_key, parse_api_key};
pub use error::{AuthError, Result};
pub use password::{PasswordHash, check_password_policy, hash_password, verify_against_nothing, verify_password};
pub use pattern::RepoPattern;
pub use scope::{Scope, ScopeAction, ScopeResource, parse_scopes};
pub use signing::{Keyring, SigningKey, VerifyingKey};
pub use token::{Claims, ResourceAccess, Sealed, TokenKind};
