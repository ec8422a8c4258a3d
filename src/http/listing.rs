//! `/v2/<name>/tags/list`, `/v2/_catalog` and `/v2/<name>/referrers/<digest>`.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gati_core::{Digest, RepoName};
use serde_json::json;

use super::error::OciError;
use super::headers::{self, OCI_FILTERS_APPLIED};
use crate::registry::{Page, Registry, RegistryError};

type Query = HashMap<String, String>;

/// The most tags or repositories one page returns, whatever `n` asks for.
const MAX_PAGE: usize = 10_000;
/// The most referrers one page returns: about 0.5 MB of descriptors, well under the 4 MiB that
/// clients such as oras-go accept for a referrers response.
const MAX_REFERRERS_PAGE: usize = 1_000;

/// Reads `n` (page size, at most `max`) and `last` (exclusive start). Without `n`, `max`.
fn pagination(query: &Query, max: usize) -> Result<(usize, Option<&str>), OciError> {
    let n = match query.get("n") {
        None => max,
        Some(n) => n.parse::<usize>().map_err(|_| {
            OciError::new(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID", format!("invalid page size {n:?}"))
        })?,
    };
    Ok((n.min(max), query.get("last").map(String::as_str)))
}

/// The `Link` to the page after `page`, when more follow; `base` ends with `?` or `&`.
fn next_link<T>(page: &Page<T>, base: &str, n: usize, key: impl Fn(&T) -> String) -> Option<String> {
    let last = page.items.last().filter(|_| page.more)?;
    Some(format!("<{base}n={n}&last={}>; rel=\"next\"", key(last)))
}

/// Percent-encodes a query value (media types carry `+`, which a query would read as a space).
fn query_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A JSON page with a `Link` to the next one when more follow.
fn page_response<T: ToString>(body: serde_json::Value, page: &Page<T>, base: &str, n: usize) -> Response {
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(link) = next_link(page, &format!("{base}?"), n, T::to_string) {
        response.headers_mut().insert(header::LINK, headers::value(link));
    }
    response
}

/// Lists a repository's tags.
pub async fn list_tags(
    registry: &Registry,
    repo: &RepoName,
    query: &Query,
    request_headers: &HeaderMap,
) -> Result<Response, OciError> {
    let (n, last) = pagination(query, MAX_PAGE)?;
    let consistency = headers::read_consistency(request_headers)?;
    let page = registry.list_tags(repo, last, n, consistency).await?;
    let tags: Vec<&str> = page.items.iter().map(|t| t.as_str()).collect();
    let body = json!({ "name": repo.as_str(), "tags": tags });
    Ok(page_response(body, &page, &format!("/v2/{repo}/tags/list"), n))
}

/// Lists repositories.
pub async fn catalog(registry: &Registry, query: &Query) -> Result<Response, OciError> {
    let (n, last) = pagination(query, MAX_PAGE)?;
    let page = registry.catalog(last, n).await?;
    let repositories: Vec<&str> = page.items.iter().map(|r| r.as_str()).collect();
    Ok(page_response(json!({ "repositories": repositories }), &page, "/v2/_catalog", n))
}

/// Lists the referrers of a manifest as an OCI image index (OCI distribution spec 1.1).
pub async fn referrers(
    registry: &Registry,
    repo: &RepoName,
    subject: &Digest,
    query: &Query,
) -> Result<Response, OciError> {
    let artifact_type = query.get("artifactType").map(String::as_str);
    let (n, last) = pagination(query, MAX_REFERRERS_PAGE)?;
    let after = last.map(|l| l.parse::<Digest>()).transpose().map_err(|e| OciError::from(RegistryError::from(e)))?;
    let page = registry.referrers(repo, subject, artifact_type, after.as_ref(), n).await?;
    let manifests: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|r| {
            let mut d = json!({ "mediaType": r.media_type.as_str(), "digest": r.digest.to_string(), "size": r.size });
            if let Some(at) = &r.artifact_type {
                d["artifactType"] = json!(at.as_str());
            }
            if !r.annotations.is_empty() {
                d["annotations"] = json!(r.annotations);
            }
            d
        })
        .collect();
    let body = json!({
        "schemaVersion": 2,
        "mediaType": gati_core::media_type::OCI_INDEX,
        "manifests": manifests,
    });
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, headers::value(gati_core::media_type::OCI_INDEX.to_owned()));
    // The next page applies the same filter.
    let filter = artifact_type.map(|a| format!("artifactType={}&", query_encode(a))).unwrap_or_default();
    let base = format!("/v2/{repo}/referrers/{subject}?{filter}");
    if let Some(link) = next_link(&page, &base, n, |r| r.digest.to_string()) {
        response.headers_mut().insert(header::LINK, headers::value(link));
    }
    if artifact_type.is_some() {
        response.headers_mut().insert(OCI_FILTERS_APPLIED, headers::value("artifactType".into()));
    }
    Ok(response)
}
