//! Media types: a validated newtype plus the manifest kinds the registry understands.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 signed manifest: recognised only to be refused with a clear error.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema 1 unsigned manifest: refused likewise.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// The OCI empty descriptor's media type (`{}`), used as the config of artifacts.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A validated media type (`type/subtype`, RFC 6838 restricted names, no parameters).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MediaType(String);

crate::newtype::string_newtype!(MediaType);

impl MediaType {
    /// Returns the manifest kind of this media type, if it names one.
    pub fn manifest_kind(&self) -> Option<ManifestKind> {
        ManifestKind::from_media_type(&self.0)
    }
}

fn restricted_name_is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 127
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(c))
}

impl FromStr for MediaType {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('/') {
            Some((t, sub)) if restricted_name_is_valid(t) && restricted_name_is_valid(sub) => {
                Ok(MediaType(s.to_owned()))
            }
            _ => Err(CoreError::ManifestInvalid(format!(
                "invalid media type {:?}",
                s.chars().take(140).collect::<String>()
            ))),
        }
    }
}

/// The manifest formats the registry stores and serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.manifest.v1+json`.
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`.
    OciIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`.
    DockerManifestList,
}

impl ManifestKind {
    /// Returns the kind named by a media type string, if any.
    pub fn from_media_type(s: &str) -> Option<Self> {
        match s {
            OCI_MANIFEST => Some(ManifestKind::OciManifest),
            OCI_INDEX => Some(ManifestKind::OciIndex),
            DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }

    /// Returns the media type string of this kind.
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => OCI_MANIFEST,
            ManifestKind::OciIndex => OCI_INDEX,
            ManifestKind::DockerManifest => DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => DOCKER_MANIFEST_LIST,
        }
    }

    /// Returns whether this kind lists child manifests rather than blobs.
    pub fn is_index(self) -> bool {
        matches!(self, ManifestKind::OciIndex | ManifestKind::DockerManifestList)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_media_types() {
        for ok in [OCI_MANIFEST, OCI_EMPTY, "text/plain", "application/vnd.gati.module+tar"] {
            assert!(ok.parse::<MediaType>().is_ok(), "{ok}");
        }
        for bad in ["", "text", "/x", "x/", "a b/c", "text/plain; charset=utf-8", "a/b/c"] {
            assert!(bad.parse::<MediaType>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn manifest_kinds_round_trip() {
        for k in [
            ManifestKind::OciManifest,
            ManifestKind::OciIndex,
            ManifestKind::DockerManifest,
            ManifestKind::DockerManifestList,
        ] {
            assert_eq!(ManifestKind::from_media_type(k.media_type()), Some(k));
        }
        assert_eq!(ManifestKind::from_media_type(DOCKER_SCHEMA1_SIGNED), None);
    }
}
