//! `/v2/<name>/blobs/uploads/[<id>]`: start (POST, incl. monolithic push and cross-repository
//! mount), chunk (PATCH), status (GET), finish (PUT), cancel (DELETE).

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use gati_core::range::ContentRange;
use gati_core::{Digest, RepoName, UploadId};

use super::error::OciError;
use super::headers::{self, DOCKER_CONTENT_DIGEST, DOCKER_UPLOAD_UUID};
use crate::registry::{Registry, RegistryError};

type Query = HashMap<String, String>;

fn query_digest(query: &Query) -> Result<Option<Digest>, OciError> {
    query.get("digest").map(|d| d.parse::<Digest>().map_err(|e| OciError::from(RegistryError::from(e)))).transpose()
}

/// `201 Created` for a blob now in the repository.
fn blob_created(repo: &RepoName, digest: &Digest) -> Result<Response, OciError> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, headers::value(format!("/v2/{repo}/blobs/{digest}")))
        .header(DOCKER_CONTENT_DIGEST, headers::value(digest.to_string()))
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(|e| RegistryError::internal(&e, "building upload response").into())
}

/// The status of an upload session: where it is and how much it holds.
fn upload_state(status: StatusCode, repo: &RepoName, id: &UploadId, offset: u64) -> Result<Response, OciError> {
    Response::builder()
        .status(status)
        .header(header::LOCATION, headers::value(headers::upload_location(repo, id)))
        .header(header::RANGE, headers::value(headers::upload_range(offset)))
        .header(DOCKER_UPLOAD_UUID, headers::value(id.to_string()))
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(|e| RegistryError::internal(&e, "building upload response").into())
}

/// Reads `Content-Range` and checks it against `Content-Length`; returns the chunk's first byte.
fn chunk_start(request_headers: &HeaderMap) -> Result<Option<u64>, OciError> {
    let Some(raw) = headers::text(request_headers, header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let range = ContentRange::parse(raw).map_err(|e| RegistryError::UploadInvalid(e.to_string()))?;
    let announced = headers::text(request_headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|len| len != range.len()) {
        return Err(RegistryError::SizeInvalid(format!(
            "Content-Range covers {} bytes but Content-Length is {}",
            range.len(),
            announced.unwrap_or_default()
        ))
        .into());
    }
    Ok(Some(range.start))
}

/// POST: a cross-repository mount, a monolithic push (`?digest=`), or the start of a session.
pub async fn post_blob_upload(
    registry: &Registry,
    repo: RepoName,
    query: &Query,
    body: Body,
) -> Result<Response, OciError> {
    if let Some(mount) = query.get("mount") {
        let digest: Digest = mount.parse().map_err(|e| OciError::from(RegistryError::from(e)))?;
        // An unknown or malformed source is not an error: the client falls back to uploading.
        let mounted = match query.get("from").map(|from| from.parse::<RepoName>()) {
            Some(Ok(from)) => registry.mount_blob(&repo, &from, &digest).await?,
            Some(Err(_)) => None,
            None => registry.mount_blob_from_any(&repo, &digest).await?,
        };
        if mounted.is_some() {
            return blob_created(&repo, &digest);
        }
    } else if let Some(digest) = query_digest(query)? {
        registry.push_blob(&repo, &digest, super::byte_stream(body)).await?;
        return blob_created(&repo, &digest);
    }
    let id = registry.start_upload(&repo).await?;
    upload_state(StatusCode::ACCEPTED, &repo, &id, 0)
}

/// PATCH: appends a chunk.
pub async fn patch_blob_upload(
    registry: &Registry,
    repo: &RepoName,
    id: &UploadId,
    request_headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let start = chunk_start(request_headers)?;
    let offset = registry.append_upload(repo, id, start, super::byte_stream(body)).await?;
    upload_state(StatusCode::ACCEPTED, repo, id, offset)
}

/// GET: reports how much an upload holds.
pub async fn get_blob_upload(registry: &Registry, repo: &RepoName, id: &UploadId) -> Result<Response, OciError> {
    let offset = registry.upload_status(repo, id).await?;
    upload_state(StatusCode::NO_CONTENT, repo, id, offset)
}

/// PUT: appends an optional last chunk, verifies the digest and commits the blob.
pub async fn put_blob_upload(
    registry: &Registry,
    repo: &RepoName,
    id: &UploadId,
    query: &Query,
    request_headers: &HeaderMap,
    body: Body,
) -> Result<Response, OciError> {
    let digest = query_digest(query)?
        .ok_or_else(|| OciError::from(RegistryError::DigestInvalid("the digest query parameter is required".into())))?;
    let start = chunk_start(request_headers)?;
    registry.finish_upload(repo, id, start, Some(super::byte_stream(body)), &digest).await?;
    blob_created(repo, &digest)
}

/// DELETE: cancels an upload.
pub async fn delete_blob_upload(registry: &Registry, repo: &RepoName, id: &UploadId) -> Result<Response, OciError> {
    registry.cancel_upload(repo, id).await?;
    Ok(super::empty(StatusCode::NO_CONTENT))
}
