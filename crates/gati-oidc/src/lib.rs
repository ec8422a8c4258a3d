//! External sign-in for Gati Registry: OpenID Connect providers over the `openidconnect` crate,
//! and GitHub (OAuth 2.0 and its REST API, `github.rs`).
//!
//! Owns the protocol side of "sign in with an external provider": discovering a provider from
//! its issuer URL (cached after the first success), building the authorization URL of the
//! authorization-code flow with PKCE (S256), a random state and nonce, and redeeming the code:
//! the token exchange, then the ID token's signature (against the provider's published keys),
//! issuer, audience, expiry and nonce. What the registry does with the identity (find or create
//! the account, start a session) is the server's business; this crate never sees a user record.
//!
//! HTTP goes through hyper with rustls and the system's trust roots; plain `http://` issuers are
//! accepted only on loopback, for tests and local providers.
#![warn(missing_docs)]

mod error;
mod github;
mod http_client;

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse as _,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use tokio::sync::OnceCell;

pub use error::{OidcError, Result};
use http_client::HttpClient;

/// What protocol a provider speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect (Google, Keycloak, Okta, Entra ID, ...).
    #[default]
    Oidc,
    /// GitHub or GitHub Enterprise Server (OAuth 2.0 and its REST API).
    Github,
}

/// One configured provider.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The short name used in URLs (`/api/v1/auth/oidc/<name>/start`).
    pub name: String,
    /// The protocol.
    #[serde(default)]
    pub kind: ProviderKind,
    /// OpenID Connect: the issuer URL, whose `/.well-known/openid-configuration` is read at first
    /// use. GitHub: the web URL (`https://github.com`, or a GitHub Enterprise Server's).
    pub issuer: String,
    /// GitHub: the REST API base; by default `https://api.github.com` for github.com and
    /// `<issuer>/api/v3` for GitHub Enterprise Server.
    #[serde(default)]
    pub api_url: Option<String>,
    /// The client id registered with the provider.
    pub client_id: String,
    /// The client secret registered with the provider.
    pub client_secret: String,
    /// Scopes asked for (besides `openid` for OpenID Connect); by default `email profile`
    /// (OpenID Connect) or `read:user user:email` (GitHub).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl ProviderConfig {
    /// Checks the settings without contacting the provider: a URL-safe name, an `https` issuer
    /// (`http` only on loopback), a client id and secret.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(OidcError::Config(format!("provider {:?}: {why}", self.name)));
        if self.name.is_empty()
            || self.name.len() > 32
            || !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("the name must be 1 to 32 lowercase letters, digits and hyphens".into());
        }
        let issuer = match IssuerUrl::new(self.issuer.clone()) {
            Ok(issuer) => issuer,
            Err(e) => return bad(format!("issuer: {e}")),
        };
        let url = issuer.url();
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return bad(format!("the issuer {} must use https", self.issuer));
        }
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return bad("client_id and client_secret are required".into());
        }
        if let Some(api) = &self.api_url {
            match openidconnect::url::Url::parse(api) {
                Ok(url) if url.scheme() == "https" || (url.scheme() == "http" && loopback) => {}
                _ => return bad(format!("api_url {api} must be an https URL")),
            }
        }
        Ok(())
    }
}

impl ProviderConfig {
    /// The scopes asked for.
    pub fn effective_scopes(&self) -> Vec<String> {
        match (&self.scopes, self.kind) {
            (Some(scopes), _) => scopes.clone(),
            (None, ProviderKind::Oidc) => vec!["email".into(), "profile".into()],
            (None, ProviderKind::Github) => vec!["read:user".into(), "user:email".into()],
        }
    }
}

/// The start of a sign-in: where to send the browser, and what to remember until it returns.
#[derive(Clone, Debug)]
pub struct Begun {
    /// The provider's authorization URL.
    pub url: String,
    /// The `state` the provider will send back.
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier of the code.
    pub pkce_verifier: String,
}

/// Who the provider says signed in: from a verified ID token (OpenID Connect), or from the
/// provider's API called with the access token the code was exchanged for (GitHub).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalUser {
    /// The issuer.
    pub issuer: String,
    /// The provider's stable id for the user.
    pub subject: String,
    /// Their email address, if shared.
    pub email: Option<String>,
    /// Whether the provider verified that address.
    pub email_verified: bool,
    /// The name they go by at the provider, if shared.
    pub preferred_username: Option<String>,
}

/// A provider the registry signs users in with.
pub struct Provider {
    config: ProviderConfig,
    http: HttpClient,
    metadata: OnceCell<CoreProviderMetadata>,
}

impl Provider {
    /// A provider as configured; nothing is fetched until the first sign-in.
    pub fn new(config: ProviderConfig) -> Result<Provider> {
        config.validate()?;
        Ok(Provider { config, http: HttpClient::new()?, metadata: OnceCell::new() })
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    async fn metadata(&self) -> Result<&CoreProviderMetadata> {
        self.metadata
            .get_or_try_init(|| async {
                let issuer =
                    IssuerUrl::new(self.config.issuer.clone()).map_err(|e| OidcError::Config(e.to_string()))?;
                CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| OidcError::Provider(format!("discovery failed: {e}")))
            })
            .await
    }

    async fn client(
        &self,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        let metadata = self.metadata().await?.clone();
        let redirect = RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| OidcError::Config(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in whose browser comes back to `redirect_uri`.
    pub async fn begin(&self, redirect_uri: &str) -> Result<Begun> {
        if self.config.kind == ProviderKind::Github {
            return github::begin(&self.config, redirect_uri);
        }
        let client = self.client(redirect_uri).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in self.config.effective_scopes() {
            request = request.add_scope(Scope::new(scope));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Begun {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Redeems the code the browser brought back, and returns who signed in: the ID token is
    /// checked for its signature, issuer, audience, expiry and `nonce`.
    pub async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<ExternalUser> {
        if self.config.kind == ProviderKind::Github {
            return github::finish(&self.config, &self.http, redirect_uri, code, pkce_verifier).await;
        }
        let client = self.client(redirect_uri).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Provider(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Rejected(format!("the code was not accepted: {e}")))?;
        let _ = response.access_token();
        let id_token = response.id_token().ok_or_else(|| OidcError::Rejected("no ID token in the answer".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(nonce.to_owned()))
            .map_err(|e| OidcError::Rejected(format!("the ID token is not valid: {e}")))?;
        Ok(ExternalUser {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, issuer: &str) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            issuer: issuer.into(),
            client_id: "id".into(),
            client_secret: "secret".into(),
            kind: ProviderKind::Oidc,
            api_url: None,
            scopes: None,
        }
    }

    #[test]
    fn settings_are_checked_before_any_request() {
        assert!(config("google", "https://accounts.google.com").validate().is_ok());
        assert!(config("local", "http://127.0.0.1:9000").validate().is_ok());
        assert!(config("plain", "http://idp.example.com").validate().is_err(), "http off loopback");
        assert!(config("Bad Name", "https://idp.example.com").validate().is_err());
        assert!(config("x", "not a url").validate().is_err());
        let mut no_secret = config("x", "https://idp.example.com");
        no_secret.client_secret.clear();
        assert!(no_secret.validate().is_err());
    }
}
