//! Parsing of `/v2/...` paths into a typed [`Endpoint`].
//!
//! Repository names contain slashes, so the router has one wildcard route and this module splits
//! the path from the right: the operation's fixed segments (`manifests`, `blobs`, `tags/list`, ...)
//! end the path and can never appear in a digest or tag, so the last occurrence is the right one.

use gati_core::{Digest, Reference, RepoName, UploadId};

use crate::registry::RegistryError;

/// The OCI distribution endpoint a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`.
    Manifest(RepoName, Reference),
    /// `/v2/<name>/blobs/<digest>`.
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`.
    StartUpload(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`.
    Upload(RepoName, UploadId),
    /// `/v2/<name>/referrers/<digest>`.
    Referrers(RepoName, Digest),
}

impl Endpoint {
    /// Returns the methods the endpoint supports, as an `Allow` header value.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Endpoint::Base => "GET, HEAD",
            Endpoint::Catalog | Endpoint::Tags(_) | Endpoint::Referrers(..) => "GET",
            Endpoint::Manifest(..) => "GET, HEAD, PUT, DELETE",
            Endpoint::Blob(..) => "GET, HEAD, DELETE",
            Endpoint::StartUpload(_) => "POST",
            Endpoint::Upload(..) => "GET, PATCH, PUT, DELETE",
        }
    }
}

fn name(s: &str) -> Result<RepoName, RegistryError> {
    Ok(s.parse::<RepoName>()?)
}

/// Parses the part of the path after `/v2/`. `None` means no endpoint has this shape.
pub fn parse(rest: &str) -> Option<Result<Endpoint, RegistryError>> {
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Ok(Endpoint::Base));
    }
    if rest == "_catalog" {
        return Some(Ok(Endpoint::Catalog));
    }
    if let Some(repo) = rest.strip_suffix("/tags/list") {
        return Some(name(repo).map(Endpoint::Tags));
    }
    if let Some(repo) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Some(name(repo).map(Endpoint::StartUpload));
    }
    if let Some((repo, id)) = rest.rsplit_once("/blobs/uploads/") {
        return Some(name(repo).and_then(|repo| {
            let id = id.parse::<UploadId>().map_err(|_| RegistryError::UploadUnknown)?;
            Ok(Endpoint::Upload(repo, id))
        }));
    }
    let (head, last) = rest.rsplit_once('/')?;
    let (repo, kind) = head.rsplit_once('/')?;
    Some(match kind {
        "manifests" => name(repo).and_then(|repo| Ok(Endpoint::Manifest(repo, last.parse()?))),
        "blobs" => name(repo).and_then(|repo| Ok(Endpoint::Blob(repo, last.parse()?))),
        "referrers" => name(repo).and_then(|repo| Ok(Endpoint::Referrers(repo, last.parse()?))),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(path: &str) -> Endpoint {
        parse(path).unwrap().unwrap()
    }

    #[test]
    fn parses_every_endpoint() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(ok(""), Endpoint::Base);
        assert_eq!(ok("_catalog"), Endpoint::Catalog);
        assert!(matches!(ok("a/b/tags/list"), Endpoint::Tags(r) if r.as_str() == "a/b"));
        assert!(matches!(ok("a/b/manifests/latest"), Endpoint::Manifest(r, Reference::Tag(_)) if r.as_str() == "a/b"));
        assert!(matches!(ok(&format!("a/manifests/{d}")), Endpoint::Manifest(_, Reference::Digest(_))));
        assert!(matches!(ok(&format!("a/blobs/{d}")), Endpoint::Blob(..)));
        assert!(matches!(ok("a/blobs/uploads/"), Endpoint::StartUpload(_)));
        assert!(matches!(ok("a/blobs/uploads"), Endpoint::StartUpload(_)));
        let id = "0123456789abcdef0123456789abcdef";
        assert!(matches!(ok(&format!("a/blobs/uploads/{id}")), Endpoint::Upload(..)));
        assert!(matches!(ok(&format!("x/referrers/{d}")), Endpoint::Referrers(..)));
    }

    #[test]
    fn names_may_contain_operation_words() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(
            matches!(ok(&format!("blobs/manifests/blobs/{d}")), Endpoint::Blob(r, _) if r.as_str() == "blobs/manifests")
        );
        assert!(matches!(ok("tags/list/tags/list"), Endpoint::Tags(r) if r.as_str() == "tags/list"));
    }

    #[test]
    fn hostile_paths_are_errors_not_endpoints() {
        assert!(parse("../etc/manifests/latest").unwrap().is_err());
        assert!(parse("A/manifests/latest").unwrap().is_err());
        assert!(parse("a/blobs/sha256:nothex").unwrap().is_err());
        assert!(parse("a/blobs/uploads/../../x").unwrap().is_err());
        assert!(parse("a/manifests/bad tag").unwrap().is_err());
        assert!(parse("nothing").is_none());
        assert!(parse("a/unknown/x").is_none());
    }
}
