//! Header reading and writing shared by the OCI handlers.

use axum::http::{HeaderMap, HeaderValue, header};
use gati_core::{Digest, RepoName, TagCondition, UploadId};

/// `Docker-Content-Digest`.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// `Docker-Upload-UUID`.
pub const DOCKER_UPLOAD_UUID: &str = "docker-upload-uuid";
/// `OCI-Subject`, returned when a pushed manifest has a subject.
pub const OCI_SUBJECT: &str = "oci-subject";
/// `OCI-Filters-Applied`, returned when the referrers list was filtered.
pub const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";

/// Returns a header as text, if present and valid.
pub fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Returns the media type of `Content-Type` without parameters.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    text(headers, header::CONTENT_TYPE).map(|ct| ct.split(';').next().unwrap_or_default().trim().to_owned())
}

/// Formats the `Range` of an upload holding `offset` bytes. The distribution API writes the range of
/// held bytes inclusively, and `0-0` for an empty upload, which is what clients parse.
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// The relative URL of an upload session.
pub fn upload_location(repo: &RepoName, id: &UploadId) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

/// Builds a header value from text that is known to be valid (digests, numbers, our own URLs).
pub fn value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).expect("generated header values are visible ASCII")
}

/// The `ETag` of content with this digest.
pub fn etag(digest: &Digest) -> HeaderValue {
    value(format!("\"{digest}\""))
}

/// Parses one list-valued conditional header into the digests it names, or `None` for `*`.
/// Entity tags that are not digests can never match a tag's target, so they are dropped.
fn entity_tags(raw: &str) -> Option<Vec<Digest>> {
    let mut digests = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item == "*" {
            return None;
        }
        let item = item.strip_prefix("W/").unwrap_or(item);
        if let Ok(d) = item.trim_matches('"').parse() {
            digests.push(d);
        }
    }
    Some(digests)
}

/// Reads `If-Match` / `If-None-Match` into the precondition of a tag update.
pub fn tag_condition(headers: &HeaderMap) -> Option<TagCondition> {
    if let Some(raw) = text(headers, header::IF_MATCH) {
        return Some(match entity_tags(raw) {
            None => TagCondition::IfMatchAny,
            Some(digests) => TagCondition::IfMatch { digests },
        });
    }
    text(headers, header::IF_NONE_MATCH).map(|raw| match entity_tags(raw) {
        None => TagCondition::IfNoneMatchAny,
        Some(digests) => TagCondition::IfNoneMatch { digests },
    })
}

/// Request header choosing how fresh a tag read must be: `linearizable` (the default) or `stale`.
pub const READ_CONSISTENCY: &str = "gati-read-consistency";

/// Parses [`READ_CONSISTENCY`]; an unknown value is refused rather than silently weakened.
pub fn read_consistency(headers: &HeaderMap) -> Result<crate::registry::ReadConsistency, super::error::OciError> {
    use crate::registry::ReadConsistency;
    match text(headers, READ_CONSISTENCY).map(str::trim) {
        None => Ok(ReadConsistency::Linearizable),
        Some(v) if v.eq_ignore_ascii_case("linearizable") => Ok(ReadConsistency::Linearizable),
        Some(v) if v.eq_ignore_ascii_case("stale") => Ok(ReadConsistency::Stale),
        Some(v) => Err(super::error::OciError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            format!("{READ_CONSISTENCY} must be `linearizable` or `stale`, not {v:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_headers() {
        let d = format!("sha256:{}", "b".repeat(64));
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, value(format!("\"{d}\", \"junk\"")));
        assert_eq!(tag_condition(&h), Some(TagCondition::IfMatch { digests: vec![d.parse().unwrap()] }));
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, value("*".into()));
        assert_eq!(tag_condition(&h), Some(TagCondition::IfNoneMatchAny));
        assert_eq!(tag_condition(&HeaderMap::new()), None);
    }

    #[test]
    fn upload_ranges() {
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(10), "0-9");
    }
}
