//! Request budgets at the HTTP edge: per client address for every request (reads, writes and
//! sign-in attempts counted apart), and per signed-in principal once the request is
//! authenticated. A spent budget is `429 Too Many Requests` with `Retry-After`, in the format
//! of the API asked (OCI error, problem+json, or an OAuth2 error at the token endpoint).

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpState;
use super::auth::client_ip;
use crate::config::LimitsConfig;
use crate::limits::{Limiter, Rate};

/// What a request spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// Reading (GET, HEAD).
    Read,
    /// Writing.
    Write,
    /// Trying credentials: token requests with credentials, logins, sign-ups, refreshes.
    Login,
}

impl Class {
    /// The class of a request by its method, path and whether it carries credentials.
    pub(super) fn of(method: &Method, path: &str, headers: &HeaderMap) -> Class {
        let sign_in = matches!(
            path,
            "/api/v1/auth/login"
                | "/api/v1/auth/refresh"
                | "/api/v1/auth/verify-email"
                | "/api/v1/auth/password-reset"
                | "/api/v1/auth/password-reset/confirm"
        ) || (path == "/api/v1/users" && *method == Method::POST)
            || (path == "/token" && (*method == Method::POST || headers.contains_key(header::AUTHORIZATION)));
        if sign_in || carries_password(headers) {
            Class::Login
        } else if matches!(*method, Method::GET | Method::HEAD) {
            Class::Read
        } else {
            Class::Write
        }
    }

    fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Login => "login",
        }
    }
}

/// Whether the request presents a password (HTTP Basic whose secret is not an API key): every
/// such request is a guess as far as budgets go, wherever it is sent.
fn carries_password(headers: &HeaderMap) -> bool {
    match super::auth::credential(headers) {
        Ok(crate::identity::Credential::Basic { secret, .. }) => !gati_auth::looks_like_api_key(&secret),
        _ => false,
    }
}

/// The budgets of one node.
pub struct RequestLimits {
    reads: Limiter,
    writes: Limiter,
    logins: Limiter,
    principal_reads: Limiter,
    principal_writes: Limiter,
}

impl RequestLimits {
    /// Budgets as configured.
    pub fn new(config: &LimitsConfig) -> RequestLimits {
        let rate = |per_second, burst| Limiter::new(Rate { per_second, burst });
        RequestLimits {
            reads: rate(config.reads_per_second, config.read_burst),
            writes: rate(config.writes_per_second, config.write_burst),
            logins: rate(config.logins_per_minute / 60.0, config.login_burst),
            principal_reads: rate(config.principal_reads_per_second, config.principal_read_burst),
            principal_writes: rate(config.principal_writes_per_second, config.principal_write_burst),
        }
    }

    fn by_address(&self, class: Class) -> &Limiter {
        match class {
            Class::Read => &self.reads,
            Class::Write => &self.writes,
            Class::Login => &self.logins,
        }
    }

    /// Spends one request of `principal`'s budget (sign-ins are budgeted by address only).
    pub(super) fn charge_principal(&self, principal: &str, class: Class) -> Result<(), Duration> {
        let limiter = match class {
            Class::Read => &self.principal_reads,
            Class::Write => &self.principal_writes,
            Class::Login => return Ok(()),
        };
        limiter.check(principal, Instant::now())
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least one.
pub(super) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The `429` for `path`, in the format of the API it belongs to.
pub(super) fn too_many(path: &str, wait: Duration) -> Response {
    let secs = retry_after_secs(wait);
    let detail = format!("too many requests; retry in {secs} s");
    let mut response = if path.starts_with("/v2") {
        let body = json!({ "errors": [{ "code": "TOOMANYREQUESTS", "message": detail, "detail": null }] });
        (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
    } else if path == "/token" {
        let body = json!({ "error": "slow_down", "error_description": detail });
        (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
    } else {
        let body = json!({ "type": "about:blank", "title": "Too many requests", "status": 429, "detail": detail });
        (StatusCode::TOO_MANY_REQUESTS, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string())
            .into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Spends one request of the client address's budget of its class. Requests whose address is
/// unknown (served without connection info, as in-process tests do) are not budgeted here.
pub(super) async fn by_address(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    if let (Some(limits), Some(ip)) = (&state.limits, client_ip(request.extensions())) {
        let class = Class::of(request.method(), request.uri().path(), request.headers());
        let key = format!("{ip}/{}", class.name());
        if let Err(wait) = limits.by_address(class).check(&key, Instant::now()) {
            metrics::counter!("gati_http_rate_limited_total", "by" => "address", "class" => class.name()).increment(1);
            return too_many(request.uri().path(), wait);
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classed_by_what_they_spend() {
        let none = HeaderMap::new();
        let mut with_auth = HeaderMap::new();
        with_auth.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic eDp5"));
        assert_eq!(Class::of(&Method::GET, "/v2/a/manifests/v1", &none), Class::Read);
        assert_eq!(Class::of(&Method::HEAD, "/v2/a/blobs/x", &none), Class::Read);
        assert_eq!(Class::of(&Method::PUT, "/v2/a/manifests/v1", &none), Class::Write);
        assert_eq!(Class::of(&Method::GET, "/token", &none), Class::Read, "anonymous tokens are reads");
        assert_eq!(Class::of(&Method::GET, "/token", &with_auth), Class::Login);
        assert_eq!(Class::of(&Method::POST, "/token", &none), Class::Login);
        assert_eq!(Class::of(&Method::POST, "/api/v1/auth/login", &none), Class::Login);
        assert_eq!(Class::of(&Method::POST, "/api/v1/users", &none), Class::Login);
        assert_eq!(Class::of(&Method::GET, "/api/v1/users/alice", &none), Class::Read);
        assert_eq!(Class::of(&Method::GET, "/v2/a/manifests/v1", &with_auth), Class::Login, "a password on /v2");
        let mut with_key = HeaderMap::new();
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:gati_abc");
        with_key.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {key}")).unwrap());
        assert_eq!(Class::of(&Method::GET, "/v2/a/manifests/v1", &with_key), Class::Read, "an API key is no guess");
    }

    #[test]
    fn the_refusal_speaks_each_api() {
        let oci = too_many("/v2/a/manifests/v1", Duration::from_millis(1500));
        assert_eq!(oci.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(oci.headers()[header::RETRY_AFTER], "2");
        let rest = too_many("/api/v1/user", Duration::from_millis(10));
        assert_eq!(rest.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(rest.headers()[header::RETRY_AFTER], "1");
    }
}
