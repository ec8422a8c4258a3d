//! The Gati REST API (`/api/v1`), identity part: accounts, sign-in, API keys, organisations,
//! teams and namespace policies. Errors are `application/problem+json` (RFC 9457).
//!
//! Every handler authenticates the request the same way as the OCI API (a session access token,
//! an API key, or Basic credentials) and calls the identity facade, which makes the decisions.

use std::cell::RefCell;
use std::collections::BTreeSet;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use gati_core::identity::{
    AccountName, Grantee, KeyPermission, NamespaceSettings, OrgRole, Role, UserChange, Visibility,
};
use gati_core::{Namespace, RepoName};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::HttpState;
use super::auth::credential;
use super::limits::Class;
use crate::identity::{AuditEntry, IdentityError, NewApiKeyRequest, NewUser, Principal, TokenPair, UserView};

/// The largest JSON body an identity request may have.
const MAX_BODY: usize = 64 * 1024;

/// An `application/problem+json` error.
#[derive(Debug)]
pub(super) struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    challenge: bool,
    /// Seconds to wait, for `429`.
    retry_after: Option<u64>,
    /// Problems with single fields of the request (`errors`: `[{field, message}]`).
    errors: Vec<gati_core::artifact::FieldError>,
}

impl Problem {
    pub(super) fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, title, detail: detail.into(), challenge: false, retry_after: None, errors: Vec::new() }
    }

    /// The problem with each field listed in the body.
    pub(super) fn with_errors(mut self, errors: Vec<gati_core::artifact::FieldError>) -> Problem {
        self.errors = errors;
        self
    }

    /// A `401` with a challenge.
    pub(super) fn unauthenticated(detail: impl Into<String>) -> Problem {
        Problem { challenge: true, ..Problem::new(StatusCode::UNAUTHORIZED, "Authentication required", detail) }
    }

    pub(super) fn too_many(wait: std::time::Duration) -> Problem {
        let secs = super::limits::retry_after_secs(wait);
        Problem {
            retry_after: Some(secs),
            ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests", format!("retry in {secs} s"))
        }
    }

    pub(super) fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "Bad request", detail)
    }
}

impl From<IdentityError> for Problem {
    fn from(e: IdentityError) -> Problem {
        let detail = e.to_string();
        match e {
            IdentityError::Invalid(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid input", detail),
            IdentityError::Taken(_) => Problem::new(StatusCode::CONFLICT, "Already taken", detail),
            IdentityError::Conflict(_) => Problem::new(StatusCode::CONFLICT, "Conflict", detail),
            IdentityError::Unauthenticated(_) => {
                Problem { challenge: true, ..Problem::new(StatusCode::UNAUTHORIZED, "Authentication required", detail) }
            }
            IdentityError::Forbidden(_) | IdentityError::SignupDisabled => {
                Problem::new(StatusCode::FORBIDDEN, "Forbidden", detail)
            }
            IdentityError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "Not found", detail),
            IdentityError::Unavailable(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", detail),
            IdentityError::RateLimited(wait) => Problem::too_many(wait),
            IdentityError::Internal => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", detail),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response();
        if self.challenge
            && let Ok(value) = "Bearer realm=\"gati-registry\"".parse()
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(secs) = self.retry_after
            && let Ok(value) = secs.to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

pub(super) type ApiResult = Result<Response, Problem>;

/// Parses a JSON body, refusing bodies that are too large, not JSON, or of the wrong shape.
pub(super) fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &Bytes) -> Result<T, Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "send application/json",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| Problem::bad_request(format!("invalid JSON body: {e}")))
}

/// Reads a request's JSON body up to [`MAX_BODY`].
async fn read_body(request: Request) -> Result<(HeaderMap, Bytes), Problem> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large", "the body is too large"))?;
    Ok((parts.headers, bytes))
}

tokio::task_local! {
    /// Who the request being served authenticated as, for its audit entry.
    static ACTOR: RefCell<Option<(Principal, String)>>;
}

/// Authenticates the request and spends one request of the principal's budget of `class`.
pub(super) async fn principal(state: &HttpState, headers: &HeaderMap, class: Class) -> Result<Principal, Problem> {
    let credential = credential(headers).map_err(|why| Problem::from(IdentityError::Unauthenticated(why.into())))?;
    let principal = state.identity.authenticate(&credential).await?;
    if matches!(principal, Principal::User { limits: gati_auth::policy::Limits::Scoped { .. }, .. }) {
        return Err(IdentityError::Unauthenticated("registry tokens are for the OCI API only".into()).into());
    }
    let _ = ACTOR.try_with(|actor| *actor.borrow_mut() = Some((principal.clone(), credential.kind())));
    if let (Some(limits), Some(name)) = (&state.limits, principal.user_name()) {
        limits.charge_principal(name.as_str(), class).map_err(Problem::too_many)?;
    }
    Ok(principal)
}

pub(super) fn json_ok(status: StatusCode, value: serde_json::Value) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(value)).into_response()
}

fn tokens_json(user: Option<&UserView>, tokens: &TokenPair) -> serde_json::Value {
    let mut body = json!({
        "accessToken": tokens.access_token,
        "refreshToken": tokens.refresh_token,
        "tokenType": "Bearer",
        "expiresIn": tokens.expires_in,
    });
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    body
}

/// The identity routes under `/api/v1`.
pub(super) fn routes() -> Router<HttpState> {
    Router::new()
        .route("/api/v1/users", post(sign_up))
        .route("/api/v1/users/{name}", get(get_user))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/logout-everywhere", post(logout_everywhere))
        .route("/api/v1/auth/oidc/{provider}/start", get(oidc_start))
        .route("/api/v1/auth/oidc/{provider}/callback", get(oidc_callback))
        .route("/api/v1/auth/verify-email", post(verify_email))
        .route("/api/v1/auth/verify-email/resend", post(resend_verification))
        .route("/api/v1/auth/password-reset", post(password_reset))
        .route("/api/v1/auth/password-reset/confirm", post(password_reset_confirm))
        .route("/api/v1/user", get(whoami))
        .route("/api/v1/user/password", put(change_password))
        .route("/api/v1/user/keys", get(list_keys).post(create_key))
        .route("/api/v1/user/keys/{id}", delete(revoke_key))
        .route("/api/v1/orgs", post(create_org))
        .route("/api/v1/orgs/{org}", get(get_org))
        .route("/api/v1/orgs/{org}/members/{user}", put(put_member).delete(delete_member))
        .route("/api/v1/orgs/{org}/teams/{team}", put(put_team).delete(delete_team))
        .route("/api/v1/namespaces/{first}/policy", get(get_policy_1).put(put_policy_1))
        .route("/api/v1/namespaces/{first}/{second}/policy", get(get_policy_2).put(put_policy_2))
        .route("/api/v1/namespaces/{first}/grants", put(put_grant_1))
        .route("/api/v1/namespaces/{first}/{second}/grants", put(put_grant_2))
        .route("/api/v1/admin/users/{name}", put(administer_user))
        .route("/api/v1/admin/signing-keys/rotate", post(rotate_signing_key))
        .route("/api/v1/admin/orgs/{org}", put(administer_org))
        .route("/api/v1/orgs/{org}/audit", get(org_audit))
        .route("/api/v1/namespaces/{first}/audit", get(audit_1))
        .route("/api/v1/namespaces/{first}/{second}/audit", get(audit_2))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignUp {
    name: String,
    email: String,
    password: String,
}

async fn sign_up(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let SignUp { name, email, password } = body(&headers, &bytes)?;
    let user = state.identity.sign_up(NewUser { name, email, password }).await?;
    Ok(json_ok(StatusCode::CREATED, json!(user)))
}

async fn get_user(State(state): State<HttpState>, Path(name): Path<String>, headers: HeaderMap) -> ApiResult {
    let principal = principal(&state, &headers, Class::Read).await?;
    Ok(json_ok(StatusCode::OK, json!(state.identity.user(&principal, &name)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    /// A user name or an email address.
    login: String,
    password: String,
}

async fn login(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let Login { login, password } = body(&headers, &bytes)?;
    let (user, tokens) = state.identity.sign_in(&login, &password).await?;
    Ok(json_ok(StatusCode::OK, tokens_json(Some(&user), &tokens)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshToken {
    refresh_token: String,
}

async fn refresh(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let RefreshToken { refresh_token } = body(&headers, &bytes)?;
    let tokens = state.identity.refresh(&refresh_token).await?;
    Ok(json_ok(StatusCode::OK, tokens_json(None, &tokens)))
}

async fn logout(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let RefreshToken { refresh_token } = body(&headers, &bytes)?;
    state.identity.sign_out(&refresh_token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn logout_everywhere(State(state): State<HttpState>, headers: HeaderMap) -> ApiResult {
    let principal = principal(&state, &headers, Class::Write).await?;
    state.identity.sign_out_everywhere(&principal).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The cookie that carries an external sign-in's sealed state between start and callback.
const OIDC_COOKIE: &str = "gati_oidc";

fn oidc_cookie(state: &HttpState, value: &str, max_age: u64) -> String {
    let secure = if state.identity.public_url_is_https() { "; Secure" } else { "" };
    format!("{OIDC_COOKIE}={value}; Path=/api/v1/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// `GET /api/v1/auth/oidc/{provider}/start`: sends the browser to the provider.
async fn oidc_start(State(state): State<HttpState>, Path(provider): Path<String>) -> ApiResult {
    let callback = state.identity.oidc_callback_url(&provider);
    let (url, sealed) = state.identity.oidc_begin(&provider, &callback).await?;
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    let location = url.parse().map_err(|_| Problem::from(IdentityError::Internal))?;
    headers.insert(header::LOCATION, location);
    let cookie = oidc_cookie(&state, &sealed, 600).parse().map_err(|_| Problem::from(IdentityError::Internal))?;
    headers.insert(header::SET_COOKIE, cookie);
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /api/v1/auth/oidc/{provider}/callback`: the browser back from the provider; answers
/// with the session's tokens.
async fn oidc_callback(State(state): State<HttpState>, Path(provider): Path<String>, request: Request) -> ApiResult {
    let query: Callback = serde_urlencoded::from_str(request.uri().query().unwrap_or_default())
        .map_err(|e| Problem::bad_request(format!("invalid callback: {e}")))?;
    if let Some(error) = query.error {
        let why = query.error_description.unwrap_or_default();
        return Err(IdentityError::Unauthenticated(format!("the provider refused: {error} {why}")).into());
    }
    let (Some(code), Some(returned_state)) = (query.code, query.state) else {
        return Err(Problem::bad_request("code and state are required"));
    };
    let sealed = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == OIDC_COOKIE)
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| IdentityError::Unauthenticated("the sign-in cookie is missing; start again".into()))?;
    let callback = state.identity.oidc_callback_url(&provider);
    let (user, tokens) = state.identity.oidc_finish(&provider, &callback, &code, &returned_state, &sealed).await?;
    let mut response = json_ok(StatusCode::OK, tokens_json(Some(&user), &tokens));
    if let Ok(clear) = oidc_cookie(&state, "", 0).parse() {
        response.headers_mut().insert(header::SET_COOKIE, clear);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailToken {
    token: String,
}

async fn verify_email(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let EmailToken { token } = body(&headers, &bytes)?;
    state.identity.verify_email(&token).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn resend_verification(State(state): State<HttpState>, headers: HeaderMap) -> ApiResult {
    let principal = principal(&state, &headers, Class::Write).await?;
    state.identity.resend_verification(&principal).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

async fn password_reset(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let ResetRequest { email } = body(&headers, &bytes)?;
    state.identity.request_password_reset(&email).await?;
    // The same answer whether or not an account has the address.
    Ok(StatusCode::ACCEPTED.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetConfirm {
    token: String,
    password: String,
}

async fn password_reset_confirm(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let ResetConfirm { token, password } = body(&headers, &bytes)?;
    state.identity.reset_password(&token, &password).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn whoami(State(state): State<HttpState>, headers: HeaderMap) -> ApiResult {
    let principal = principal(&state, &headers, Class::Read).await?;
    Ok(json_ok(StatusCode::OK, json!(state.identity.whoami(&principal)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

async fn change_password(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let PasswordChange { current, new } = body(&headers, &bytes)?;
    state.identity.change_password(&principal, &current, &new).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_keys(State(state): State<HttpState>, headers: HeaderMap) -> ApiResult {
    let principal = principal(&state, &headers, Class::Read).await?;
    Ok(json_ok(StatusCode::OK, json!({ "keys": state.identity.api_keys(&principal)? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateKey {
    label: String,
    permissions: BTreeSet<KeyPermission>,
    #[serde(default)]
    repositories: Vec<String>,
    expires_in: Option<u64>,
}

async fn create_key(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let CreateKey { label, permissions, repositories, expires_in } = body(&headers, &bytes)?;
    let request = NewApiKeyRequest { label, permissions, repositories, expires_in };
    let (view, text) = state.identity.create_api_key(&principal, request).await?;
    let mut value = json!(view);
    value["key"] = json!(text);
    Ok(json_ok(StatusCode::CREATED, value))
}

async fn revoke_key(State(state): State<HttpState>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    let principal = principal(&state, &headers, Class::Write).await?;
    state.identity.revoke_api_key(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOrg {
    name: String,
}

async fn create_org(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let CreateOrg { name } = body(&headers, &bytes)?;
    Ok(json_ok(StatusCode::CREATED, json!(state.identity.create_org(&principal, &name).await?)))
}

async fn get_org(State(state): State<HttpState>, Path(org): Path<String>, headers: HeaderMap) -> ApiResult {
    let principal = principal(&state, &headers, Class::Read).await?;
    Ok(json_ok(StatusCode::OK, json!(state.identity.org(&principal, &org)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    role: OrgRole,
}

async fn put_member(
    State(state): State<HttpState>,
    Path((org, user)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let Member { role } = body(&headers, &bytes)?;
    state.identity.set_org_member(&principal, &org, &user, Some(role)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_member(
    State(state): State<HttpState>,
    Path((org, user)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let principal = principal(&state, &headers, Class::Write).await?;
    state.identity.set_org_member(&principal, &org, &user, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Team {
    members: Vec<String>,
}

async fn put_team(
    State(state): State<HttpState>,
    Path((org, team)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let Team { members } = body(&headers, &bytes)?;
    state.identity.set_team(&principal, &org, &team, Some(members)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_team(
    State(state): State<HttpState>,
    Path((org, team)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let principal = principal(&state, &headers, Class::Write).await?;
    state.identity.set_team(&principal, &org, &team, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    visibility: Visibility,
    #[serde(default)]
    settings: NamespaceSettings,
}

async fn get_policy(state: &HttpState, namespace: &str, headers: &HeaderMap) -> ApiResult {
    let principal = principal(state, headers, Class::Read).await?;
    let policy = state.identity.namespace_policy(&principal, namespace)?;
    let grants: Vec<_> =
        policy.grants.values().map(|(grantee, role)| json!({ "grantee": grantee, "role": role })).collect();
    Ok(json_ok(
        StatusCode::OK,
        json!({ "namespace": namespace, "visibility": policy.visibility, "settings": policy.settings, "grants": grants }),
    ))
}

async fn put_policy(state: &HttpState, namespace: &str, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(state, &headers, Class::Write).await?;
    let PolicyBody { visibility, settings } = body(&headers, &bytes)?;
    if settings.default_license.as_ref().is_some_and(|l| l.len() > 256) {
        return Err(Problem::bad_request("defaultLicense is longer than 256 characters"));
    }
    if settings.ip_allowlist.len() > 64 {
        return Err(Problem::bad_request("ipAllowlist holds at most 64 networks"));
    }
    state.identity.set_namespace_policy(&principal, namespace, visibility, settings).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    grantee: Grantee,
    role: Option<Role>,
}

async fn put_grant(state: &HttpState, namespace: &str, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(state, &headers, Class::Write).await?;
    let GrantBody { grantee, role } = body(&headers, &bytes)?;
    state.identity.set_namespace_grant(&principal, namespace, grantee, role).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_policy_1(State(state): State<HttpState>, Path(first): Path<String>, headers: HeaderMap) -> ApiResult {
    get_policy(&state, &first, &headers).await
}

async fn get_policy_2(
    State(state): State<HttpState>,
    Path((first, second)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    get_policy(&state, &format!("{first}/{second}"), &headers).await
}

async fn put_policy_1(State(state): State<HttpState>, Path(first): Path<String>, request: Request) -> ApiResult {
    put_policy(&state, &first, request).await
}

async fn put_policy_2(
    State(state): State<HttpState>,
    Path((first, second)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    put_policy(&state, &format!("{first}/{second}"), request).await
}

async fn put_grant_1(State(state): State<HttpState>, Path(first): Path<String>, request: Request) -> ApiResult {
    put_grant(&state, &first, request).await
}

async fn put_grant_2(
    State(state): State<HttpState>,
    Path((first, second)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    put_grant(&state, &format!("{first}/{second}"), request).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AdminChange {
    verified_publisher: Option<bool>,
    registry_admin: Option<bool>,
    disabled: Option<bool>,
    email_verified: Option<bool>,
}

async fn administer_user(State(state): State<HttpState>, Path(name): Path<String>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let AdminChange { verified_publisher, registry_admin, disabled, email_verified } = body(&headers, &bytes)?;
    let mut changes = Vec::new();
    if let Some(verified) = verified_publisher {
        changes.push(UserChange::SetVerifiedPublisher { verified });
    }
    if let Some(admin) = registry_admin {
        changes.push(UserChange::SetRegistryAdmin { admin });
    }
    if let Some(disabled) = disabled {
        changes.push(UserChange::SetDisabled { disabled, at: crate::identity::now() });
    }
    if email_verified == Some(true) {
        changes.push(UserChange::VerifyEmail);
    }
    if changes.is_empty() {
        return Err(Problem::bad_request("no change given"));
    }
    for change in changes {
        state.identity.administer_user(&principal, &name, change).await?;
    }
    Ok(json_ok(StatusCode::OK, json!(state.identity.user(&principal, &name)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Rotation {
    retire_previous_after_secs: u64,
}

async fn rotate_signing_key(State(state): State<HttpState>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let Rotation { retire_previous_after_secs } = body(&headers, &bytes)?;
    let kid = state.identity.rotate_signing_key(&principal, retire_previous_after_secs).await?;
    Ok(json_ok(StatusCode::OK, json!({ "kid": kid })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OrgChange {
    verified_publisher: bool,
}

async fn administer_org(State(state): State<HttpState>, Path(org): Path<String>, request: Request) -> ApiResult {
    let (headers, bytes) = read_body(request).await?;
    let principal = principal(&state, &headers, Class::Write).await?;
    let OrgChange { verified_publisher } = body(&headers, &bytes)?;
    Ok(json_ok(StatusCode::OK, json!(state.identity.verify_org(&principal, &org, verified_publisher).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    format: Option<String>,
}

/// A namespace's audit log: a JSON page (`entries`, `next`), or with `format=jsonl` one entry
/// per line for export.
async fn audit(state: &HttpState, namespace: &str, headers: &HeaderMap, query: Option<&str>) -> ApiResult {
    let query: AuditQuery = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| Problem::bad_request(format!("invalid query: {e}")))?;
    let principal = principal(state, headers, Class::Read).await?;
    let limit = query.limit.unwrap_or(100);
    let (entries, more) = state.identity.audit_log(&principal, namespace, query.after, limit).await?;
    let next = if more { entries.last().map(|(seq, _)| *seq) } else { None };
    match query.format.as_deref() {
        Some("jsonl") => {
            let mut out = String::new();
            for (seq, event) in &entries {
                let mut line = json!(event);
                line["seq"] = json!(seq);
                out.push_str(&line.to_string());
                out.push('\n');
            }
            let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "application/jsonl")], out).into_response();
            if let Some(next) = next
                && let Ok(value) =
                    format!("</api/v1/namespaces/{namespace}/audit?format=jsonl&after={next}>; rel=\"next\"").parse()
            {
                response.headers_mut().insert(header::LINK, value);
            }
            Ok(response)
        }
        None | Some("json") => {
            let entries: Vec<_> = entries
                .into_iter()
                .map(|(seq, event)| {
                    let mut value = json!(event);
                    value["seq"] = json!(seq);
                    value
                })
                .collect();
            Ok(json_ok(StatusCode::OK, json!({ "namespace": namespace, "entries": entries, "next": next })))
        }
        Some(other) => Err(Problem::bad_request(format!("unknown format {other:?}: use json or jsonl"))),
    }
}

async fn org_audit(State(state): State<HttpState>, Path(org): Path<String>, request: Request) -> ApiResult {
    audit(&state, &format!("orgs/{org}"), request.headers(), request.uri().query()).await
}

async fn audit_1(State(state): State<HttpState>, Path(first): Path<String>, request: Request) -> ApiResult {
    audit(&state, &first, request.headers(), request.uri().query()).await
}

async fn audit_2(
    State(state): State<HttpState>,
    Path((first, second)): Path<(String, String)>,
    request: Request,
) -> ApiResult {
    audit(&state, &format!("{first}/{second}"), request.headers(), request.uri().query()).await
}

/// The namespace whose audit log a REST write belongs to: the organisation, namespace or
/// account the path names, else the acting user's own.
fn namespace_of(path: &str, actor: Option<&AccountName>) -> Option<Namespace> {
    let rest = path.strip_prefix("/api/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let text = match parts.as_slice() {
        ["orgs", org, ..] | ["admin", "orgs", org, ..] => format!("orgs/{org}"),
        ["admin", "users", name, ..] => format!("users/{name}"),
        ["namespaces", first, second, "policy" | "grants"] => format!("{first}/{second}"),
        ["namespaces", first, ..] => (*first).to_owned(),
        _ => format!("users/{}", actor?),
    };
    let namespace = format!("{text}/x").parse::<RepoName>().ok()?.namespace();
    (namespace.as_str() == text).then_some(namespace)
}

/// Records every REST write in the audit log once it is answered.
pub(super) async fn audit_writes(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let client = super::auth::client_ip(request.extensions());
    let action = format!("{} {}", request.method(), request.uri().path());
    let path = request.uri().path().to_owned();
    let (response, actor) = ACTOR
        .scope(RefCell::new(None), async move {
            let response = next.run(request).await;
            (response, ACTOR.with(|actor| actor.borrow_mut().take()))
        })
        .await;
    // Only writes by someone who signed in are recorded: anonymous sign-ups and failed logins
    // would let strangers fill the replicated log.
    let Some((principal, credential)) = actor else { return response };
    if let Some(namespace) = namespace_of(&path, principal.user_name()) {
        state.identity.audit(AuditEntry {
            namespace,
            principal,
            credential,
            action,
            target: path,
            client,
            status: response.status().as_u16(),
        });
    }
    response
}

/// Answers every identity route while authentication is switched off.
pub(super) async fn disabled() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "Not found", "authentication is not enabled on this registry").into_response()
}
