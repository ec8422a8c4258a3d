//! `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gati_core::manifest::MAX_MANIFEST_BYTES;
use gati_core::media_type::{self, ManifestKind};
use gati_core::{Reference, RepoName};

use super::error::OciError;
use super::headers::{self, DOCKER_CONTENT_DIGEST, OCI_SUBJECT};
use crate::registry::{PutManifestRequest, Registry, RegistryError};

/// Returns whether a client that sent `accept` can take a manifest of `media_type`.
///
/// Clients that name no manifest type at all (curl, browsers, `*/*`) take whatever is stored. A
/// client that lists manifest types gets only one of those: serving it another format would be
/// misread, so it gets `MANIFEST_UNKNOWN`, as from distribution.
fn acceptable(headers: &HeaderMap, media_type: &str) -> bool {
    let mut names_manifest_types = false;
    for value in headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()) {
        for item in value.split(',') {
            let mt = item.split(';').next().unwrap_or_default().trim();
            if mt == media_type || mt == "*/*" || mt == "application/*" {
                return true;
            }
            if ManifestKind::from_media_type(mt).is_some()
                || mt == media_type::DOCKER_SCHEMA1
                || mt == media_type::DOCKER_SCHEMA1_SIGNED
            {
                names_manifest_types = true;
            }
        }
    }
    !names_manifest_types
}

/// Serves a manifest (GET) or its headers (HEAD).
pub async fn get_manifest(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
    request_headers: &HeaderMap,
    head: bool,
) -> Result<Response, OciError> {
    let consistency = headers::read_consistency(request_headers)?;
    let content = registry.get_manifest(repo, reference, consistency).await?;
    if !acceptable(request_headers, &content.media_type) {
        return Err(OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("manifest is {} which the client does not accept", content.media_type),
        ));
    }
    let etag = headers::etag(&content.digest);
    let not_modified = headers::text(request_headers, header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.to_str().unwrap_or_default()));
    let status = if not_modified { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let len = content.bytes.len();
    let body = if head || not_modified { Body::empty() } else { Body::from(content.bytes) };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, headers::value(content.media_type))
        .header(header::CONTENT_LENGTH, len)
        .header(DOCKER_CONTENT_DIGEST, headers::value(content.digest.to_string()))
        .header(header::ETAG, etag)
        .body(body)
        .map_err(|e| RegistryError::internal(&e, "building manifest response").into())
}

/// Reads a manifest body, refusing anything over the size limit without buffering it.
async fn read_manifest_body(request_headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, OciError> {
    let too_large = || OciError::from(RegistryError::ManifestTooLarge { limit: MAX_MANIFEST_BYTES });
    let announced = headers::text(request_headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_MANIFEST_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_MANIFEST_BYTES).await.map_err(|e| {
        let over_limit = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over_limit {
            too_large()
        } else {
            OciError::from(RegistryError::ManifestInvalid(format!("request body failed: {e}")))
        }
    })
}

/// Stores a manifest pushed by tag or digest.
pub async fn put_manifest(
    registry: &Registry,
    repo: RepoName,
    reference: Reference,
    request_headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let body = read_manifest_body(request_headers, body).await?;
    // Preconditions guard a tag; on a push by digest there is nothing mutable to guard.
    let condition = match reference {
        Reference::Tag(_) => headers::tag_condition(request_headers),
        Reference::Digest(_) => None,
    };
    let request = PutManifestRequest {
        repo: repo.clone(),
        reference,
        content_type: headers::content_type(request_headers),
        body,
        condition,
    };
    let pushed = registry.put_manifest(request).await?;
    let mut response = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, headers::value(format!("/v2/{repo}/manifests/{}", pushed.digest)))
        .header(DOCKER_CONTENT_DIGEST, headers::value(pushed.digest.to_string()))
        .header(header::ETAG, headers::etag(&pushed.digest))
        .header(header::CONTENT_LENGTH, 0);
    if let Some(subject) = pushed.subject {
        response = response.header(OCI_SUBJECT, headers::value(subject.to_string()));
    }
    response.body(Body::empty()).map_err(|e| RegistryError::internal(&e, "building manifest response").into())
}

/// Deletes a manifest by digest, or a tag.
pub async fn delete_manifest(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Response, OciError> {
    registry.delete_manifest(repo, reference).await?;
    Ok(super::empty(StatusCode::ACCEPTED))
}
