//! Sign-in with external OpenID Connect providers (`[[auth.oidc]]`): the first sign-in creates
//! an account linked to the provider's stable subject id; later ones find it by that link.
//!
//! The browser's round trip is stateless across nodes: the PKCE verifier, nonce and `state` are
//! sealed with the registry's signing key into a short-lived cookie, so the provider may send the
//! browser back to any node. A provider's email address is never used to take over an existing
//! account: an address already in use refuses the sign-in.

use std::collections::BTreeMap;
use std::sync::Arc;

use gati_auth::Sealed;
use gati_core::identity::{AccountName, Email, ExternalIdentity, IdentityCommand, UserRecord};
use gati_oidc::{Provider, ProviderConfig};
use serde::{Deserialize, Serialize};

use super::accounts::UserView;
use super::error::{IdentityError, Result};
use super::tokens::TokenPair;
use super::{Identity, now};

/// How long a sign-in may take at the provider.
const ROUND_TRIP_SECS: u64 = 600;

/// What the sign-in cookie carries.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
}

/// The configured providers, by name.
pub(crate) fn providers(configs: &[ProviderConfig]) -> std::result::Result<BTreeMap<String, Arc<Provider>>, String> {
    let mut providers = BTreeMap::new();
    for config in configs {
        let provider = Provider::new(config.clone()).map_err(|e| e.to_string())?;
        if providers.insert(config.name.clone(), Arc::new(provider)).is_some() {
            return Err(format!("two OpenID Connect providers are named {:?}", config.name));
        }
    }
    Ok(providers)
}

fn oidc_failure(e: gati_oidc::OidcError) -> IdentityError {
    match e {
        gati_oidc::OidcError::Rejected(why) => IdentityError::Unauthenticated(why),
        gati_oidc::OidcError::Provider(why) => IdentityError::Unavailable(why),
        gati_oidc::OidcError::Config(why) => {
            tracing::error!(why, "OpenID Connect provider misconfigured");
            IdentityError::Internal
        }
    }
}

/// Turns a provider's user name into a valid account name: lowercase, runs of anything else
/// become one hyphen, at most 32 characters (room for a suffix).
fn slug(text: &str) -> Option<String> {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(32).collect();
    let out = out.trim_end_matches('-').to_owned();
    (out.len() >= 2).then_some(out)
}

impl Identity {
    fn provider(&self, name: &str) -> Result<&Arc<Provider>> {
        self.inner.oidc.get(name).ok_or(IdentityError::NotFound("sign-in provider"))
    }

    /// The audience of sign-in cookies.
    fn oidc_audience(&self) -> String {
        format!("{}/oidc", self.inner.config.service)
    }

    /// Starts a sign-in with `provider`: returns the URL to send the browser to, and the sealed
    /// value to keep in a cookie until it comes back to `redirect_uri`.
    pub async fn oidc_begin(&self, provider: &str, redirect_uri: &str) -> Result<(String, String)> {
        let begun = self.provider(provider)?.begin(redirect_uri).await.map_err(oidc_failure)?;
        let pending = Pending {
            provider: provider.to_owned(),
            state: begun.state,
            nonce: begun.nonce,
            verifier: begun.pkce_verifier,
        };
        let sealed = Sealed { aud: self.oidc_audience(), exp: now().saturating_add(ROUND_TRIP_SECS), value: pending };
        let cookie = self.keyring()?.seal(&sealed).map_err(|e| IdentityError::internal(&e, "sealing sign-in state"))?;
        Ok((begun.url, cookie))
    }

    /// Completes a sign-in: checks the cookie and `state`, redeems `code`, and signs the
    /// provider's user in (creating their account the first time).
    pub async fn oidc_finish(
        &self,
        provider: &str,
        redirect_uri: &str,
        code: &str,
        state: &str,
        cookie: &str,
    ) -> Result<(UserView, TokenPair)> {
        let expired =
            || IdentityError::Unauthenticated("the sign-in expired or was started elsewhere; start again".into());
        let pending: Pending = self.keyring()?.open(cookie, now(), &self.oidc_audience()).map_err(|_| expired())?;
        if pending.provider != provider || !super::mail::same(&pending.state, state) {
            return Err(expired());
        }
        let client = self.provider(provider)?;
        let external =
            client.finish(redirect_uri, code, &pending.verifier, &pending.nonce).await.map_err(oidc_failure)?;
        let identity = ExternalIdentity { issuer: external.issuer.clone(), subject: external.subject.clone() };
        let state = self.fresh().await?;
        let user = match state.user_by_external(&identity)? {
            Some(user) => self.usable_user(state, &user.name, u64::MAX)?,
            None => self.create_external_user(&external, identity).await?,
        };
        let tokens = self.start_session(&user).await?;
        Ok((UserView::of(&user, true), tokens))
    }

    async fn create_external_user(
        &self,
        external: &gati_oidc::ExternalUser,
        identity: ExternalIdentity,
    ) -> Result<UserRecord> {
        let email: Email = external
            .email
            .as_deref()
            .ok_or_else(|| {
                IdentityError::Invalid("the provider shared no email address; allow the email scope".into())
            })?
            .parse()?;
        if !external.email_verified {
            return Err(IdentityError::Invalid(
                "the provider has not verified this email address; verify it there first".into(),
            ));
        }
        if self.state().user_by_email(&email)?.is_some() {
            return Err(IdentityError::Taken(
                "an account already uses this email address; sign in to it and link the provider instead".into(),
            ));
        }
        let base = external
            .preferred_username
            .as_deref()
            .and_then(slug)
            .or_else(|| slug(email.local_part()))
            .unwrap_or_else(|| "user".to_owned());
        for attempt in 0..5 {
            let candidate = if attempt == 0 { base.clone() } else { format!("{base}-{:04x}", rand::random::<u16>()) };
            let Ok(name) = candidate.parse::<AccountName>() else { continue };
            if name.is_reserved() {
                continue;
            }
            let user = UserRecord {
                name,
                email: email.clone(),
                email_verified: true,
                password: None,
                registry_admin: false,
                verified_publisher: false,
                disabled: false,
                external: [identity.clone()].into(),
                tokens_valid_after: 0,
                created_at: now(),
            };
            match self.write(IdentityCommand::CreateUser { user: Box::new(user.clone()) }).await {
                Ok(()) => {
                    tracing::info!(user = %user.name, issuer = %identity.issuer, "account created by external sign-in");
                    return Ok(user);
                }
                Err(IdentityError::Taken(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(IdentityError::Taken("no free account name for this user; try again".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn provider_names_become_account_names() {
        assert_eq!(slug("Alice.Smith").as_deref(), Some("alice-smith"));
        assert_eq!(slug("__bob__").as_deref(), Some("bob"));
        assert_eq!(slug("Ünïcode Üser").as_deref(), Some("n-code-ser"));
        assert_eq!(slug("x"), None);
        assert_eq!(slug("---"), None);
        assert_eq!(slug(&"a".repeat(80)).map(|s| s.len()), Some(32));
    }
}
