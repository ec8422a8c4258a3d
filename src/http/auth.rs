//! Authentication and authorisation at the HTTP edge: reading credentials from requests, the
//! access check in front of every `/v2` operation with Docker's token challenge, the token
//! endpoint (`/token`, as the distribution token-auth specification and OAuth2 describe it), and
//! the public signing keys (`/.well-known/jwks.json`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gati_auth::parse_scopes;
use gati_auth::policy::Limits;
use gati_core::RepoName;
use serde_json::json;

use super::HttpState;
use super::endpoint::Endpoint;
use super::error::OciError;
use super::limits::Class;
use crate::identity::{Action, AuditEntry, Credential, Decision, IdentityError, Principal, Target};

/// The largest `Authorization` header accepted; a token is at most 8 KiB.
const MAX_AUTHORIZATION: usize = 10 * 1024;
/// The largest token request body (`POST /token`).
const MAX_TOKEN_FORM: usize = 64 * 1024;

/// The client's address, when the server was started with connection info.
pub(super) fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip())
}

/// Reads the `Authorization` header. A malformed header is an error, not anonymous access.
pub(super) fn credential(headers: &HeaderMap) -> Result<Credential, &'static str> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(Credential::None) };
    if value.len() > MAX_AUTHORIZATION {
        return Err("the Authorization header is too large");
    }
    let value = value.to_str().map_err(|_| "the Authorization header is not text")?;
    let (scheme, rest) = value.split_once(' ').ok_or("malformed Authorization header")?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err("empty bearer token");
        }
        return Ok(Credential::Bearer(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest).ok_or("the Basic credentials are not base64")?;
        let text = String::from_utf8(decoded).map_err(|_| "the Basic credentials are not UTF-8")?;
        let (user, secret) = text.split_once(':').ok_or("the Basic credentials have no ':'")?;
        return Ok(Credential::Basic { user: user.to_owned(), secret: secret.to_owned() });
    }
    Err("unsupported authorization scheme")
}

/// Standard base64 (with or without padding), as HTTP Basic uses.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    STANDARD.decode(text).or_else(|_| STANDARD_NO_PAD.decode(text)).ok()
}

/// The token endpoint clients are sent to: the configured realm, or this host's `/token`.
fn realm(state: &HttpState, headers: &HeaderMap) -> String {
    if let Some(realm) = state.identity.realm() {
        return realm;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("http://{host}/token")
}

/// The `401` that sends a client to the token endpoint for `scope`.
fn challenge(state: &HttpState, headers: &HeaderMap, scope: Option<String>, insufficient: bool, why: &str) -> OciError {
    let mut value = format!("Bearer realm=\"{}\",service=\"{}\"", realm(state, headers), state.identity.service());
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    if insufficient {
        value.push_str(",error=\"insufficient_scope\"");
    }
    OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", why.to_owned()).with_header(header::WWW_AUTHENTICATE, value)
}

/// The repository and action a `/v2` operation needs, or the registry itself.
fn requirement(endpoint: &Endpoint, method: &Method) -> (Option<RepoName>, Action) {
    let write = |read: Action, write: Action| if matches!(*method, Method::GET | Method::HEAD) { read } else { write };
    match endpoint {
        Endpoint::Base => (None, Action::Pull),
        Endpoint::Catalog => (None, Action::Admin),
        Endpoint::Tags(repo) | Endpoint::Referrers(repo, _) => (Some(repo.clone()), Action::Pull),
        Endpoint::Manifest(repo, _) | Endpoint::Blob(repo, _) => {
            let action = if *method == Method::DELETE { Action::Delete } else { write(Action::Pull, Action::Push) };
            (Some(repo.clone()), action)
        }
        Endpoint::StartUpload(repo) | Endpoint::Upload(repo, _) => (Some(repo.clone()), Action::Push),
    }
}

/// The scope a client needs a token for, in the challenge: pushing also reads (clients check
/// what exists before they upload).
fn scope_for(repo: &RepoName, action: Action) -> String {
    let actions = match action {
        Action::Pull => "pull",
        Action::Push => "pull,push",
        Action::Delete => "delete",
        Action::Admin => "*",
    };
    format!("repository:{repo}:{actions}")
}

/// The OCI `429` after a spent budget or a sign-in lockout.
fn too_many(wait: std::time::Duration) -> OciError {
    let secs = super::limits::retry_after_secs(wait);
    OciError::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", format!("too many requests; retry in {secs} s"))
        .with_header(header::RETRY_AFTER, secs.to_string())
}

fn identity_failure(state: &HttpState, headers: &HeaderMap, scope: Option<String>, e: IdentityError) -> OciError {
    match e {
        IdentityError::Unauthenticated(why) => challenge(state, headers, scope, false, &why),
        IdentityError::RateLimited(wait) => too_many(wait),
        IdentityError::Unavailable(why) => OciError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", why),
        other => OciError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", other.to_string()),
    }
}

/// An authorised `/v2` request, with the audit entry to complete once it is answered.
pub(super) struct Authorized {
    audit: Option<AuditEntry>,
}

impl Authorized {
    /// Records the request in the audit log (writes, and reads of private content) with the
    /// status it was answered with.
    pub(super) fn finish(self, state: &HttpState, status: StatusCode) {
        if let Some(mut entry) = self.audit {
            entry.status = status.as_u16();
            state.identity.audit(entry);
        }
    }
}

/// Checks that the request may do what `endpoint` and `method` mean. A cross-repository mount
/// from a repository the principal may not pull is dropped from `query` (the client then
/// uploads, as the specification allows), and so is a mount that names no source, which would
/// otherwise reach any repository holding the digest. Refusals of audited requests are
/// recorded here; allowed ones by [`Authorized::finish`].
pub(super) async fn authorize(
    state: &HttpState,
    endpoint: &Endpoint,
    method: &Method,
    headers: &HeaderMap,
    query: &mut HashMap<String, String>,
    client: Option<IpAddr>,
) -> Result<Authorized, OciError> {
    let (repo, action) = requirement(endpoint, method);
    let scope = repo.as_ref().map(|r| scope_for(r, action));
    let identity = &state.identity;
    // Writes and private reads are audited. Requests by nobody in particular (anonymous, or
    // credentials that did not check out) are recorded only against private namespaces, so
    // strangers cannot fill the replicated log with made-up namespaces.
    let private = repo.as_ref().is_some_and(|r| identity.is_private(r).unwrap_or(true));
    let entry = |principal: &Principal, credential: String| {
        let audited = private || (action != Action::Pull && principal.user_name().is_some());
        repo.as_ref().filter(|_| audited).map(|r| AuditEntry {
            namespace: r.namespace(),
            principal: principal.clone(),
            credential,
            action: action.scope_name().replace('*', "admin"),
            target: r.to_string(),
            client,
            status: 0,
        })
    };
    let refuse = |entry: Option<AuditEntry>, error: OciError| {
        if let Some(mut entry) = entry {
            entry.status = error.status().as_u16();
            identity.audit(entry);
        }
        error
    };
    let credential = match credential(headers) {
        Ok(credential) => credential,
        Err(why) => {
            let error = challenge(state, headers, scope.clone(), false, why);
            return Err(refuse(entry(&Principal::Anonymous, "malformed".into()), error));
        }
    };
    let principal = match identity.authenticate(&credential).await {
        Ok(principal) => principal,
        Err(e) => {
            let error = identity_failure(state, headers, scope.clone(), e);
            return Err(refuse(entry(&Principal::Anonymous, credential.kind()), error));
        }
    };
    let pending = entry(&principal, credential.kind());
    if let (Some(limits), Some(name)) = (&state.limits, principal.user_name()) {
        let class = if matches!(*method, Method::GET | Method::HEAD) { Class::Read } else { Class::Write };
        if let Err(wait) = limits.charge_principal(name.as_str(), class) {
            return Err(refuse(pending, too_many(wait)));
        }
    }
    let target = repo.as_ref().map_or(Target::Registry, Target::Repo);
    let decision = match identity.decide(&principal, target, action, client) {
        Ok(decision) => decision,
        Err(e) => return Err(refuse(pending, identity_failure(state, headers, scope.clone(), e))),
    };
    let refusal = match decision {
        Decision::Allow => None,
        Decision::Unauthenticated { insufficient_scope } => {
            let why =
                if insufficient_scope { "the token does not cover this operation" } else { "authentication required" };
            Some(challenge(state, headers, scope, insufficient_scope, why))
        }
        Decision::Forbidden { reason } => Some(OciError::new(StatusCode::FORBIDDEN, "DENIED", reason)),
        Decision::NotFound => {
            Some(OciError::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "repository name not known to registry"))
        }
    };
    if let Some(error) = refusal {
        return Err(refuse(pending, error));
    }
    if matches!(endpoint, Endpoint::StartUpload(_)) && query.contains_key("mount") {
        let source = query.get("from").and_then(|from| from.parse::<RepoName>().ok());
        let readable = match &source {
            Some(from) => {
                identity.decide(&principal, Target::Repo(from), Action::Pull, client).ok() == Some(Decision::Allow)
            }
            None => false,
        };
        if !readable {
            query.remove("mount");
            query.remove("from");
        }
    }
    Ok(Authorized { audit: pending })
}

/// An OAuth2-style error of the token endpoint.
fn token_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({ "error": error, "error_description": description }))).into_response()
}

fn token_failure(e: IdentityError) -> Response {
    match e {
        IdentityError::RateLimited(wait) => super::limits::too_many("/token", wait),
        IdentityError::Unauthenticated(why) => token_error(StatusCode::UNAUTHORIZED, "invalid_grant", &why),
        IdentityError::Unavailable(why) => {
            token_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", &why)
        }
        IdentityError::Invalid(why) => token_error(StatusCode::BAD_REQUEST, "invalid_request", &why),
        other => token_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &other.to_string()),
    }
}

/// Issues a registry token for `principal` covering what it may do of `scope_values`.
async fn issue(
    state: &HttpState,
    principal: &Principal,
    scope_values: &[&str],
    client: Option<IpAddr>,
    refresh_token: Option<String>,
) -> Response {
    let scopes = match parse_scopes(scope_values.iter().copied()) {
        Ok(scopes) => scopes,
        Err(e) => return token_error(StatusCode::BAD_REQUEST, "invalid_scope", &e.to_string()),
    };
    let identity = &state.identity;
    let access = match identity.grant_scopes(principal, &scopes, client) {
        Ok(access) => access,
        Err(e) => return token_failure(e),
    };
    let (user, key) = match principal {
        Principal::User { user, limits: Limits::ApiKey { id, .. } } => (Some(user.as_ref()), Some(id.clone())),
        Principal::User { user, .. } => (Some(user.as_ref()), None),
        Principal::Anonymous => (None, None),
    };
    match identity.registry_token(user, access, key) {
        Ok(token) => {
            let issued_at = crate::identity::now();
            let mut body = json!({
                "token": token,
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": identity.access_token_secs(),
                "issued_at": gati_core::time::rfc3339(issued_at),
            });
            if let Some(refresh) = refresh_token {
                body["refresh_token"] = json!(refresh);
            }
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
        }
        Err(e) => token_failure(e),
    }
}

fn wrong_service(state: &HttpState, service: Option<&String>) -> Option<Response> {
    service
        .filter(|s| s.as_str() != state.identity.service())
        .map(|_| token_error(StatusCode::BAD_REQUEST, "invalid_request", "the token is requested for another service"))
}

/// `GET /token`: Docker's token request, with Basic credentials (a password or an API key) or
/// none for anonymous access. `offline_token=true` with a password also returns a refresh token.
pub(super) async fn get_token(State(state): State<HttpState>, request: axum::extract::Request) -> Response {
    let client = client_ip(request.extensions());
    let pairs: Vec<(String, String)> =
        request.uri().query().map(|q| serde_urlencoded::from_str(q).unwrap_or_default()).unwrap_or_default();
    let first = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    if let Some(response) = wrong_service(&state, first("service").as_ref()) {
        return response;
    }
    let credential = match credential(request.headers()) {
        // A token is never exchanged for another: a chain of renewals would outlive every
        // revocation. Docker clients send Basic credentials here.
        Ok(Credential::Bearer(token)) if !gati_auth::looks_like_api_key(&token) => {
            return token_error(StatusCode::UNAUTHORIZED, "invalid_client", "use Basic credentials or an API key");
        }
        Ok(credential) => credential,
        Err(why) => return token_error(StatusCode::UNAUTHORIZED, "invalid_client", why),
    };
    let principal = match state.identity.authenticate(&credential).await {
        Ok(principal) => principal,
        Err(e) => return token_failure(e),
    };
    let offline = first("offline_token").as_deref() == Some("true");
    let refresh = match (&credential, &principal, offline) {
        (Credential::Basic { secret, .. }, Principal::User { user, .. }, true)
            if !gati_auth::looks_like_api_key(secret) =>
        {
            match state.identity.start_session(user).await {
                Ok(tokens) => Some(tokens.refresh_token),
                Err(e) => return token_failure(e),
            }
        }
        _ => None,
    };
    let scopes: Vec<&str> = pairs.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()).collect();
    issue(&state, &principal, &scopes, client, refresh).await
}

/// `POST /token`: the OAuth2 password and refresh-token grants, as Docker clients send them.
pub(super) async fn post_token(State(state): State<HttpState>, request: axum::extract::Request) -> Response {
    let client = client_ip(request.extensions());
    let body = match axum::body::to_bytes(request.into_body(), MAX_TOKEN_FORM).await {
        Ok(body) => body,
        Err(_) => return token_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the form is too large"),
    };
    let form: HashMap<String, String> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => return token_error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not a form"),
    };
    if let Some(response) = wrong_service(&state, form.get("service")) {
        return response;
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    let scopes: Vec<&str> = if scope.is_empty() { Vec::new() } else { vec![scope.as_str()] };
    let identity = &state.identity;
    match form.get("grant_type").map(String::as_str) {
        Some("password") => {
            let (Some(user), Some(password)) = (form.get("username"), form.get("password")) else {
                return token_error(StatusCode::BAD_REQUEST, "invalid_request", "username and password are required");
            };
            let credential = Credential::Basic { user: user.clone(), secret: password.clone() };
            let principal = match identity.authenticate(&credential).await {
                Ok(principal) => principal,
                Err(e) => return token_failure(e),
            };
            let refresh = match (&principal, form.get("access_type").map(String::as_str)) {
                (Principal::User { user, .. }, Some("offline")) if !gati_auth::looks_like_api_key(password) => {
                    match identity.start_session(user).await {
                        Ok(tokens) => Some(tokens.refresh_token),
                        Err(e) => return token_failure(e),
                    }
                }
                _ => None,
            };
            issue(&state, &principal, &scopes, client, refresh).await
        }
        Some("refresh_token") => {
            let Some(token) = form.get("refresh_token") else {
                return token_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
            };
            match identity.principal_of_refresh_token(token).await {
                Ok(principal) => issue(&state, &principal, &scopes, client, Some(token.clone())).await,
                Err(e) => token_failure(e),
            }
        }
        Some(_) => token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "use password or refresh_token"),
        None => token_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
}

/// `GET /.well-known/jwks.json`: the keys tokens are verified with.
pub(super) async fn jwks(State(state): State<HttpState>) -> Response {
    match state.identity.jwks() {
        Ok(keys) => axum::Json(keys).into_response(),
        Err(e) => token_failure(e),
    }
}

/// Rejects `/token` and friends when identity is switched off.
pub(super) async fn disabled() -> Response {
    token_error(StatusCode::NOT_FOUND, "invalid_request", "authentication is not enabled on this registry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic YWxpY2U6czNjcjN0OnBhc3M=".parse().unwrap());
        match credential(&headers).unwrap() {
            Credential::Basic { user, secret } => {
                assert_eq!((user.as_str(), secret.as_str()), ("alice", "s3cr3t:pass"))
            }
            other => panic!("{other:?}"),
        }
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(credential(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert!(credential(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(credential(&headers).is_err());
        assert!(matches!(credential(&HeaderMap::new()).unwrap(), Credential::None));
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("aGVsbG8===").is_none());
    }
}
