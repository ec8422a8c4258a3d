//! `/v2/<name>/blobs/<digest>`: GET (with single ranges), HEAD, DELETE.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gati_core::range::ByteRange;
use gati_core::{Digest, RepoName};

use super::error::OciError;
use super::headers::{self, DOCKER_CONTENT_DIGEST};
use crate::registry::{Registry, RegistryError};

/// Streams a blob (GET), one range of it (GET with `Range`), or its headers (HEAD).
pub async fn get_blob(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    request_headers: &HeaderMap,
    head: bool,
) -> Result<Response, OciError> {
    let common = Response::builder()
        .header(DOCKER_CONTENT_DIGEST, headers::value(digest.to_string()))
        .header(header::ETAG, headers::etag(digest))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    let built = if head {
        let size = registry.stat_blob(repo, digest).await?;
        common.status(StatusCode::OK).header(header::CONTENT_LENGTH, size).body(Body::empty())
    } else {
        // An unparseable Range is ignored and the whole blob served (RFC 9110 §14.2).
        let range = headers::text(request_headers, header::RANGE).and_then(|r| ByteRange::parse(r).ok());
        // Whole-blob pulls may go straight to the object store (ranged ones are served here, so
        // their 206/416 semantics stay exactly ours).
        if range.is_none()
            && let Some(url) = registry.blob_redirect(repo, digest).await?
        {
            return common
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, headers::value(url))
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty())
                .map_err(|e| RegistryError::internal(&e, "building blob redirect").into());
        }
        let content = registry.get_blob(repo, digest, range).await?;
        match content.range {
            Some((start, end)) => common
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, headers::value(format!("bytes {start}-{end}/{}", content.size)))
                .header(header::CONTENT_LENGTH, end - start + 1)
                .body(Body::from_stream(content.stream)),
            None => common
                .status(StatusCode::OK)
                .header(header::CONTENT_LENGTH, content.size)
                .body(Body::from_stream(content.stream)),
        }
    };
    built.map_err(|e| RegistryError::internal(&e, "building blob response").into())
}

/// Removes a blob from a repository.
pub async fn delete_blob(registry: &Registry, repo: &RepoName, digest: &Digest) -> Result<Response, OciError> {
    registry.delete_blob(repo, digest).await?;
    Ok(super::empty(StatusCode::ACCEPTED))
}
