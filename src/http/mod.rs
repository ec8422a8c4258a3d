//! The HTTP surface (axum): the OCI distribution API under `/v2/`, the token endpoint (`/token`)
//! and the identity part of the REST API (`/api/v1`), and operations endpoints (`/healthz`,
//! `/readyz`, `/metrics`, `/cluster/status`).
//!
//! Owns path parsing into a typed [`endpoint::Endpoint`], protocol headers and error bodies. Calls
//! only the [`Registry`] facade; never Raft, sled or the blob store. The only layer that imports
//! axum and http types.

mod api;
mod artifacts;
mod auth;
mod blobs;
pub mod endpoint;
pub mod error;
mod graphql;
mod headers;
pub mod limits;
mod listing;
mod manifests;
mod openapi;
mod uploads;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures_util::TryStreamExt;
use gati_blob::ByteStream;
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use crate::identity::Identity;
use crate::registry::{Registry, RegistryError};
use endpoint::Endpoint;
use error::OciError;
use limits::RequestLimits;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpState {
    registry: Registry,
    identity: Identity,
    /// Request budgets, when enforced.
    limits: Option<Arc<RequestLimits>>,
    metrics: Option<PrometheusHandle>,
}

/// Builds the router over the facades; `limits` budgets requests when given; `metrics` renders
/// `/metrics` when a recorder is installed.
pub fn router(
    registry: Registry,
    identity: Identity,
    limits: Option<Arc<RequestLimits>>,
    metrics: Option<PrometheusHandle>,
) -> Router {
    let state = HttpState { registry, identity, limits, metrics };
    let auth_routes = if state.identity.enabled() {
        Router::new()
            .route("/token", get(auth::get_token).post(auth::post_token))
            .route("/.well-known/jwks.json", get(auth::jwks))
            .merge(api::routes().route_layer(middleware::from_fn_with_state(state.clone(), api::audit_writes)))
    } else {
        Router::new()
            .route("/token", any(auth::disabled))
            .route("/.well-known/jwks.json", any(auth::disabled))
            .route("/api/v1/{*rest}", any(api::disabled))
    };
    let artifact_routes = Router::new()
        .route("/api/v1/artifacts", get(artifacts::search))
        .route("/api/v1/artifacts/{*path}", any(artifacts::artifact_routes))
        .route("/api/v1/resolve", axum::routing::post(artifacts::resolve))
        .route("/api/v1/schemas/{kind}", get(artifacts::schema))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/graphql", get(graphql::handler).post(graphql::handler));
    Router::new()
        .merge(artifact_routes)
        .route("/v2", any(dispatch))
        .route("/v2/", any(dispatch))
        .route("/v2/{*rest}", any(dispatch))
        .merge(auth_routes)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/cluster/status", get(cluster_status))
        .fallback(|| async { OciError::not_found() })
        .layer(middleware::from_fn_with_state(state.clone(), limits::by_address))
        .layer(middleware::from_fn(observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}

/// The answer to a request whose handler panicked (a bug): a `500` with an error body in the
/// OCI format (which REST clients read as a failure too) instead of a dropped connection. The
/// panic itself is logged by the panic hook.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    OciError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", "internal error").into_response()
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.registry.ready().await && state.identity.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn cluster_status(State(state): State<HttpState>) -> Response {
    axum::Json(state.registry.cluster_status()).into_response()
}

async fn render_metrics(State(state): State<HttpState>) -> Response {
    match state.metrics {
        Some(handle) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed\n").into_response(),
    }
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

/// Gives each request an id and a tracing span, and records its outcome and latency.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
    let method = request.method().clone();
    let span = tracing::debug_span!("request", id, method = %method, path = %request.uri().path());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.in_scope(|| {
        tracing::debug!(status = status.as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "served")
    });
    metrics::counter!("gati_http_requests_total", "method" => method.to_string(), "status" => status.as_str().to_owned())
        .increment(1);
    metrics::histogram!("gati_http_request_duration_seconds", "method" => method.to_string())
        .record(started.elapsed().as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Turns a request body into the stream the facade consumes.
fn byte_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(io::Error::other))
}

/// An empty response with a status.
fn empty(status: StatusCode) -> Response {
    (status, [(header::CONTENT_LENGTH, "0")]).into_response()
}

/// Decodes `%XX` escapes in a path; names, tags and digests are validated after decoding.
fn percent_decode(path: &str) -> Option<String> {
    if !path.contains('%') {
        return Some(path.to_owned());
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The one `/v2` handler: parses the endpoint, then hands off to the resource's handler.
async fn dispatch(State(state): State<HttpState>, request: Request) -> Response {
    let client = auth::client_ip(request.extensions());
    let (parts, body) = request.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let head = method == Method::HEAD;
    let Some(path) = percent_decode(uri.path()) else {
        return OciError::not_found().into_response_for(head);
    };
    let rest = path.strip_prefix("/v2").unwrap_or_default();
    let endpoint = match endpoint::parse(rest) {
        None => return OciError::not_found().into_response_for(head),
        // No manifest has a malformed tag, so reading or deleting one finds nothing (the
        // conformance suite expects 404); pushing one is the client's error.
        Some(Err(RegistryError::TagInvalid(_))) if method != Method::PUT => {
            return OciError::from(RegistryError::ManifestUnknown).into_response_for(head);
        }
        Some(Err(e)) => return OciError::from(e).into_response_for(head),
        Some(Ok(endpoint)) => endpoint,
    };
    let mut query: HashMap<String, String> = Query::try_from_uri(&uri).map(|Query(q)| q).unwrap_or_default();
    let authorized = if state.identity.enabled() {
        match auth::authorize(&state, &endpoint, &method, &headers, &mut query, client).await {
            Ok(authorized) => Some(authorized),
            Err(e) => return e.into_response_for(head),
        }
    } else {
        None
    };
    let query = query;
    let registry = &state.registry;
    let outcome = match (endpoint, method) {
        (Endpoint::Base, Method::GET | Method::HEAD) => Ok(base()),
        (Endpoint::Catalog, Method::GET) => listing::catalog(registry, &query).await,
        (Endpoint::Tags(repo), Method::GET) => listing::list_tags(registry, &repo, &query, &headers).await,
        (Endpoint::Referrers(repo, digest), Method::GET) => listing::referrers(registry, &repo, &digest, &query).await,
        (Endpoint::Manifest(repo, reference), Method::GET | Method::HEAD) => {
            manifests::get_manifest(registry, &repo, &reference, &headers, head).await
        }
        (Endpoint::Manifest(repo, reference), Method::PUT) => {
            manifests::put_manifest(registry, repo, reference, &headers, body).await
        }
        (Endpoint::Manifest(repo, reference), Method::DELETE) => {
            manifests::delete_manifest(registry, &repo, &reference).await
        }
        (Endpoint::Blob(repo, digest), Method::GET | Method::HEAD) => {
            blobs::get_blob(registry, &repo, &digest, &headers, head).await
        }
        (Endpoint::Blob(repo, digest), Method::DELETE) => blobs::delete_blob(registry, &repo, &digest).await,
        (Endpoint::StartUpload(repo), Method::POST) => uploads::post_blob_upload(registry, repo, &query, body).await,
        (Endpoint::Upload(repo, id), Method::PATCH) => {
            uploads::patch_blob_upload(registry, &repo, &id, &headers, body).await
        }
        (Endpoint::Upload(repo, id), Method::PUT) => {
            uploads::put_blob_upload(registry, &repo, &id, &query, &headers, body).await
        }
        (Endpoint::Upload(repo, id), Method::GET) => uploads::get_blob_upload(registry, &repo, &id).await,
        (Endpoint::Upload(repo, id), Method::DELETE) => uploads::delete_blob_upload(registry, &repo, &id).await,
        (endpoint, _) => Err(OciError::method_not_allowed(endpoint.allowed_methods())),
    };
    let response = outcome.unwrap_or_else(|e| e.into_response_for(head));
    if let Some(authorized) = authorized {
        authorized.finish(&state, response.status());
    }
    response
}

/// `GET /v2/`: the API version check clients start with.
fn base() -> Response {
    (
        StatusCode::OK,
        [("docker-distribution-api-version", "registry/2.0"), (header::CONTENT_TYPE.as_str(), "application/json")],
        "{}",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/v2/a/blobs/sha256%3Aab").as_deref(), Some("/v2/a/blobs/sha256:ab"));
        assert_eq!(percent_decode("/plain").as_deref(), Some("/plain"));
        assert_eq!(percent_decode("/bad%zz"), None);
        assert_eq!(percent_decode("/short%4"), None);
    }
}

#[cfg(test)]
mod panic_tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_an_error_body() {
        #[allow(clippy::panic, reason = "the panic is what is tested")]
        async fn boom() -> &'static str {
            panic!("planted")
        }
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(super::panicked));
        let response = app.oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("UNKNOWN"));
    }
}
