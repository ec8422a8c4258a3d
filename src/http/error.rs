//! The one mapping from domain errors to OCI distribution error responses
//! (`{"errors":[{"code","message","detail"}]}` with the spec's status codes).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::registry::RegistryError;

/// An error response of the OCI API.
#[derive(Debug)]
pub struct OciError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: serde_json::Value,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl OciError {
    /// Builds an error with a spec code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError { status, code, message: message.into(), detail: serde_json::Value::Null, headers: Vec::new() }
    }

    /// Adds a header to the response.
    pub fn with_header(mut self, name: header::HeaderName, value: String) -> Self {
        if let Ok(value) = HeaderValue::from_str(&value) {
            self.headers.push((name, value));
        }
        self
    }

    /// Adds structured detail.
    fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// The answer for a method the endpoint does not support; `allow` lists those it does.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        OciError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "the operation is unsupported")
            .with_header(header::ALLOW, allow.to_owned())
    }

    /// The response; to a HEAD request, the status and headers without the body.
    pub fn into_response_for(self, head: bool) -> Response {
        let mut response = self.into_response();
        if head {
            *response.body_mut() = axum::body::Body::empty();
            response.headers_mut().remove(header::CONTENT_LENGTH);
        }
        response
    }

    /// The answer for a path that names no endpoint.
    pub fn not_found() -> Self {
        OciError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
    }

    /// Returns the HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        use RegistryError::*;
        let message = e.to_string();
        match e {
            NameUnknown => OciError::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", message),
            NameInvalid(_) => OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", message),
            // Only a push must name a valid tag; reads of a malformed one are answered in
            // `dispatch` as a manifest that does not exist.
            TagInvalid(_) => OciError::new(StatusCode::BAD_REQUEST, "TAG_INVALID", message),
            ManifestUnknown => OciError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", message),
            ManifestInvalid(_) => OciError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message),
            ManifestTooLarge { .. } => OciError::new(StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID", message),
            ManifestBlobUnknown(digest) => OciError::new(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN", message)
                .with_detail(json!({ "digest": digest.to_string() })),
            BlobUnknown => OciError::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", message),
            UploadUnknown => OciError::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", message),
            UploadInvalid(_) => OciError::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", message),
            ChunkOutOfOrder { offset } => {
                OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", message)
                    .with_header(header::RANGE, super::headers::upload_range(offset))
            }
            DigestInvalid(_) => OciError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message),
            SizeInvalid(_) => OciError::new(StatusCode::BAD_REQUEST, "SIZE_INVALID", message),
            RangeNotSatisfiable { size } => {
                OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_NOT_SATISFIABLE", message)
                    .with_header(header::CONTENT_RANGE, format!("bytes */{size}"))
            }
            PreconditionFailed { current } => {
                let err = OciError::new(StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED", message)
                    .with_detail(json!({ "current": current.as_ref().map(|d| d.to_string()) }));
                match current {
                    Some(d) => err.with_header(header::ETAG, format!("\"{d}\"")),
                    None => err,
                }
            }
            ArtifactInvalid(_) | ArtifactRequestInvalid(_) | Unresolvable(_) => {
                OciError::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
            }
            ArtifactUnknown | VersionUnknown(_) => OciError::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", message),
            ArtifactConflict(_) => OciError::new(StatusCode::CONFLICT, "DENIED", message),
            Unavailable(_) => OciError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message),
            Internal => OciError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", message),
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": self.detail }]
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
