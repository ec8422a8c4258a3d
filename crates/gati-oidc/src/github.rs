//! Sign-in with GitHub (or GitHub Enterprise Server), which speaks OAuth 2.0 but not OpenID
//! Connect: the authorization-code flow with PKCE against `<web>/login/oauth/*`, then who signed
//! in from the REST API (`<api>/user`, and `<api>/user/emails` for the primary verified address).
//! The stable subject is GitHub's numeric user id, never the login, which users can rename.

use openidconnect::url::{Url, form_urlencoded};
use openidconnect::{CsrfToken, PkceCodeChallenge};
use serde::Deserialize;

use crate::error::{OidcError, Result};
use crate::http_client::HttpClient;
use crate::{Begun, ExternalUser, ProviderConfig};

/// The REST API base for a GitHub web base URL: `api.github.com` for github.com, `/api/v3` on
/// GitHub Enterprise Server.
pub(crate) fn default_api_url(web: &str) -> String {
    let web = web.trim_end_matches('/');
    if web == "https://github.com" { "https://api.github.com".to_owned() } else { format!("{web}/api/v3") }
}

pub(crate) fn begin(config: &ProviderConfig, redirect_uri: &str) -> Result<Begun> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = CsrfToken::new_random();
    let mut url = Url::parse(&format!("{}/login/oauth/authorize", config.issuer.trim_end_matches('/')))
        .map_err(|e| OidcError::Config(e.to_string()))?;
    url.query_pairs_mut()
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &config.effective_scopes().join(" "))
        .append_pair("state", state.secret())
        .append_pair("code_challenge", challenge.as_str())
        .append_pair("code_challenge_method", "S256");
    Ok(Begun {
        url: url.to_string(),
        state: state.secret().clone(),
        nonce: String::new(),
        pkce_verifier: verifier.secret().clone(),
    })
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: u64,
    login: String,
    email: Option<String>,
}

#[derive(Deserialize)]
struct UserEmail {
    email: String,
    primary: bool,
    verified: bool,
}

fn json<T: for<'de> Deserialize<'de>>(what: &str, status: u16, body: &[u8]) -> Result<T> {
    if !(200..300).contains(&status) {
        let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
        return Err(OidcError::Rejected(format!("{what} answered {status}: {text}")));
    }
    serde_json::from_slice(body).map_err(|e| OidcError::Provider(format!("{what} answered with unexpected JSON: {e}")))
}

pub(crate) async fn finish(
    config: &ProviderConfig,
    http: &HttpClient,
    redirect_uri: &str,
    code: &str,
    pkce_verifier: &str,
) -> Result<ExternalUser> {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &config.client_id)
        .append_pair("client_secret", &config.client_secret)
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_verifier", pkce_verifier)
        .finish();
    let token_url = format!("{}/login/oauth/access_token", config.issuer.trim_end_matches('/'));
    let headers = [("accept", "application/json"), ("content-type", "application/x-www-form-urlencoded")];
    let (status, body) = http.exchange("POST", &token_url, &headers, form.into_bytes()).await?;
    let answer: TokenAnswer = json("the token endpoint", status, &body)?;
    let token = match (answer.access_token, answer.error) {
        (Some(token), None) => token,
        (_, error) => {
            let why = answer.error_description.or(error).unwrap_or_else(|| "no access token".into());
            return Err(OidcError::Rejected(format!("the code was not accepted: {why}")));
        }
    };
    let api = config.api_url.clone().unwrap_or_else(|| default_api_url(&config.issuer));
    let api = api.trim_end_matches('/');
    let bearer = format!("Bearer {token}");
    let headers = [("accept", "application/vnd.github+json"), ("authorization", bearer.as_str())];
    let (status, body) = http.exchange("GET", &format!("{api}/user"), &headers, Vec::new()).await?;
    let user: User = json("the user API", status, &body)?;
    let (status, body) = http.exchange("GET", &format!("{api}/user/emails"), &headers, Vec::new()).await?;
    let emails: Vec<UserEmail> = json("the emails API", status, &body)?;
    let verified = emails.into_iter().find(|e| e.primary && e.verified).map(|e| e.email);
    let email_verified = verified.is_some();
    Ok(ExternalUser {
        issuer: config.issuer.trim_end_matches('/').to_owned(),
        subject: user.id.to_string(),
        email: verified.or(user.email),
        email_verified,
        preferred_username: Some(user.login),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_lives_where_github_puts_it() {
        assert_eq!(default_api_url("https://github.com/"), "https://api.github.com");
        assert_eq!(default_api_url("https://ghe.example.com"), "https://ghe.example.com/api/v3");
    }
}
