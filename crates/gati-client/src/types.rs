//! What the REST API answers, as the client reads it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A file of a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the artifact.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// SHA-512, hex.
    pub sha512: String,
}

/// A version as listed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionSummary {
    /// The version.
    pub version: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// Who published it.
    pub publisher: String,
    /// Total size in bytes.
    pub size: u64,
    /// Deprecation message.
    pub deprecated: Option<String>,
    /// Whether it was unpublished.
    #[serde(default)]
    pub unpublished: bool,
    /// Dependencies and their ranges.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// The OCI manifest's digest.
    pub manifest_digest: String,
}

/// An artifact.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactInfo {
    /// `namespace/name`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// When its first version was published.
    pub created_at: String,
    /// Dist-tags.
    pub dist_tags: BTreeMap<String, String>,
    /// Versions, highest first.
    pub versions: Vec<VersionSummary>,
}

/// One version with its document and files.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDetail {
    /// `namespace/name`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The summary fields.
    #[serde(flatten)]
    pub summary: VersionSummary,
    /// The document's digest.
    pub document_digest: String,
    /// The files.
    pub files: Vec<FileEntry>,
    /// The document.
    pub document: serde_json::Value,
}

/// A search hit.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// `namespace/name`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The latest version.
    pub latest: Option<String>,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// When it last changed.
    pub updated_at: String,
}

/// A page of search hits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchPage {
    /// The hits.
    pub results: Vec<SearchHit>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

/// One artifact of a resolution.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedPackage {
    /// `namespace/name`.
    pub name: String,
    /// The version chosen.
    pub version: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its OCI manifest.
    pub manifest_digest: String,
    /// Its document.
    pub document_digest: String,
    /// Versions chosen for its dependencies.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Deprecation message.
    pub deprecated: Option<String>,
}

/// A resolution.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resolution {
    /// The artifacts.
    pub packages: Vec<ResolvedPackage>,
}

/// What a publish stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    /// `namespace/name`.
    pub name: String,
    /// The version.
    pub version: String,
    /// The OCI manifest's digest.
    pub manifest_digest: String,
    /// The document's digest.
    pub document_digest: String,
}
