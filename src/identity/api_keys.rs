//! API keys: created for the signed-in user, shown once, stored hashed, listed and revoked.

use std::collections::BTreeSet;

use gati_auth::policy::Principal;
use gati_auth::{NewApiKey, RepoPattern};
use gati_core::identity::{ApiKeyId, ApiKeyRecord, IdentityCommand, KeyPermission};
use serde::Serialize;

use super::error::{IdentityError, Result};
use super::{Identity, now};

/// The longest label of a key.
const MAX_LABEL: usize = 100;
/// The most repository patterns one key may carry.
const MAX_PATTERNS: usize = 32;
/// The most live keys one user may hold.
const MAX_KEYS: usize = 100;

/// What creating a key needs.
#[derive(Clone, Debug)]
pub struct NewApiKeyRequest {
    /// A label for people.
    pub label: String,
    /// What it may do.
    pub permissions: BTreeSet<KeyPermission>,
    /// Repository patterns it is limited to; empty for all the owner can reach.
    pub repositories: Vec<String>,
    /// Seconds until it expires; `None` never.
    pub expires_in: Option<u64>,
}

/// A key as listed (never the secret).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    /// Its id.
    pub id: ApiKeyId,
    /// Its label.
    pub label: String,
    /// What it may do.
    pub permissions: BTreeSet<KeyPermission>,
    /// The repositories it is limited to.
    pub repositories: Vec<String>,
    /// When it was created (unix seconds).
    pub created_at: u64,
    /// When it expires (unix seconds).
    pub expires_at: Option<u64>,
    /// When it was revoked (unix seconds).
    pub revoked_at: Option<u64>,
    /// When it was last used (unix seconds), recorded within a few seconds of the use.
    pub last_used_at: Option<u64>,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(key: ApiKeyRecord) -> Self {
        ApiKeyView {
            id: key.id,
            label: key.label,
            permissions: key.permissions,
            repositories: key.repositories,
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            last_used_at: key.last_used_at,
        }
    }
}

/// The signed-in user when the credential carries their full rights: managing the account
/// (keys, organisations, sessions) needs a password or a session, never an API key or a
/// registry token, so a leaked narrow credential cannot widen itself.
pub(super) fn owner_with_full_rights(principal: &Principal) -> Result<&gati_core::identity::AccountName> {
    match (principal.with_full_rights(), principal) {
        (Some(name), _) => Ok(name),
        (None, Principal::User { .. }) => Err(IdentityError::Forbidden(
            "API keys and registry tokens cannot manage accounts; sign in with a password or a session".into(),
        )),
        (None, Principal::Anonymous) => Err(IdentityError::Unauthenticated("sign in first".into())),
    }
}

/// How often a node writes the last uses of API keys it saw.
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// A key's use is written again only after this many seconds (uses in between change little).
const TOUCH_RESOLUTION_SECS: u64 = 60;

/// The uses of API keys a node saw and has not written yet, and when it last wrote each key.
#[derive(Default)]
pub(crate) struct KeyUses {
    pending: std::collections::HashMap<ApiKeyId, u64>,
    written: std::collections::HashMap<ApiKeyId, u64>,
}

impl Identity {
    /// Notes a use of API key `id` at `at`; written with the node's next batch.
    pub(crate) fn note_key_use(&self, id: &ApiKeyId, at: u64) {
        let mut uses = self.inner.key_uses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if uses.written.get(id).is_some_and(|last| at < last.saturating_add(TOUCH_RESOLUTION_SECS)) {
            return;
        }
        uses.pending.insert(id.clone(), at);
    }

    /// Writes the noted key uses every couple of seconds, for as long as the node runs.
    pub async fn run_key_use_writer(self) {
        loop {
            tokio::time::sleep(TOUCH_EVERY).await;
            let used: Vec<(ApiKeyId, u64)> = {
                let mut uses = self.inner.key_uses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let pending: Vec<_> = uses.pending.drain().collect();
                for (id, at) in &pending {
                    uses.written.insert(id.clone(), *at);
                }
                // Forget keys not used for a while, so the table stays as small as the live set.
                let horizon = now().saturating_sub(2 * TOUCH_RESOLUTION_SECS);
                uses.written.retain(|_, at| *at >= horizon);
                pending
            };
            if used.is_empty() {
                continue;
            }
            if let Err(e) = self.cluster().propose_meta(IdentityCommand::TouchApiKeys { used }).await {
                tracing::debug!(error = %e, "API key uses not recorded this time");
            }
        }
    }

    /// Creates a key for the signed-in user; returns it with its full text, shown only now.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        request: NewApiKeyRequest,
    ) -> Result<(ApiKeyView, String)> {
        let owner = owner_with_full_rights(principal)?.clone();
        if request.label.trim().is_empty()
            || request.label.chars().count() > MAX_LABEL
            || request.label.chars().any(char::is_control)
        {
            return Err(IdentityError::Invalid(format!("a label is 1 to {MAX_LABEL} printable characters")));
        }
        if request.permissions.is_empty() {
            return Err(IdentityError::Invalid("a key needs at least one permission".into()));
        }
        if request.repositories.len() > MAX_PATTERNS {
            return Err(IdentityError::Invalid(format!("at most {MAX_PATTERNS} repository patterns")));
        }
        for pattern in &request.repositories {
            pattern.parse::<RepoPattern>().map_err(|e| IdentityError::Invalid(e.to_string()))?;
        }
        let live = self.state().api_keys_of(&owner)?.into_iter().filter(|k| k.revoked_at.is_none()).count();
        if live >= MAX_KEYS {
            return Err(IdentityError::Conflict(format!("at most {MAX_KEYS} live keys; revoke one first")));
        }
        let key = NewApiKey::generate().map_err(|e| IdentityError::internal(&e, "API key generation"))?;
        let now = now();
        let record = ApiKeyRecord {
            id: key.id.clone(),
            owner,
            label: request.label,
            secret_sha256: key.hash.as_str().to_owned(),
            permissions: request.permissions,
            repositories: request.repositories,
            expires_at: request.expires_in.map(|s| now.saturating_add(s)),
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        self.write(IdentityCommand::CreateApiKey { key: Box::new(record.clone()) }).await?;
        Ok((record.into(), key.text))
    }

    /// The signed-in user's keys, revoked ones included.
    pub fn api_keys(&self, principal: &Principal) -> Result<Vec<ApiKeyView>> {
        let owner = owner_with_full_rights(principal)?;
        Ok(self.state().api_keys_of(owner)?.into_iter().map(Into::into).collect())
    }

    /// Revokes one of the signed-in user's keys; it stops working on every node.
    pub async fn revoke_api_key(&self, principal: &Principal, id: &str) -> Result<()> {
        let owner = owner_with_full_rights(principal)?;
        let id: ApiKeyId = id.parse().map_err(|_| IdentityError::NotFound("API key"))?;
        match self.state().api_key(&id)? {
            Some(key) if &key.owner == owner => self.write(IdentityCommand::RevokeApiKey { id, at: now() }).await,
            _ => Err(IdentityError::NotFound("API key")),
        }
    }
}
