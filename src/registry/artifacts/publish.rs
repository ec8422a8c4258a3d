//! Publishing a version: check the document, its files and everything it refers to, build the
//! OCI manifest, and commit it all with one command.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::StreamExt;
use gati_blob::{ContentHasher, digest_of};
use gati_core::artifact::{
    self, ArtifactCommand, ArtifactDocument, ArtifactRejection, DistTag, FieldError, PublishVersion, RefTarget,
    ValidatedDocument, document::sums_listing,
};
use gati_core::manifest::parse_manifest;
use gati_core::media_type::OCI_MANIFEST;
use gati_core::{Applied, Command, Digest, DigestAlgorithm, Rejection, RepoName};
use serde_json::json;

use super::super::error::{RegistryError, Result};
use super::super::manifests::unexpected;
use super::super::{ReadConsistency, Registry};
use super::now;

/// Files whose sha512 is checked at once, bounding memory and disk pressure of a large publish.
const HASHING_AT_ONCE: usize = 4;

/// A publish: the document as written, and who publishes it.
#[derive(Debug)]
pub struct PublishRequest {
    /// The artifact named by the request path; must match the document.
    pub repo: RepoName,
    /// The version named by the request path; must match the document.
    pub version: String,
    /// The document bytes (`gati.json` with its `contents`).
    pub document: Bytes,
    /// Where to point a dist-tag; `None` moves `latest` when this is the highest release.
    pub dist_tag: Option<DistTag>,
    /// Who publishes (an account name, or `anonymous` on an open registry).
    pub publisher: String,
}

/// What a publish stored.
#[derive(Clone, Debug)]
pub struct Published {
    /// The OCI manifest's digest.
    pub manifest: Digest,
    /// The document's digest.
    pub document: Digest,
}

impl Registry {
    /// Publishes a version. Nothing is stored unless every check passes: the document's rules,
    /// each file uploaded with the size and both checksums the document states, the whole-artifact
    /// checksums, the dependencies (each has a published version in range) and the artifacts the
    /// type requires (an agent's models, a plugin's modules).
    ///
    /// Artifacts `visible` refuses (private ones of other tenants) count as not published, so a
    /// refusal never reveals them and nobody can depend on what they cannot read.
    pub async fn publish(
        &self,
        request: PublishRequest,
        visible: &(dyn Fn(&RepoName) -> bool + Sync),
    ) -> Result<Published> {
        let PublishRequest { repo, version, document, dist_tag, publisher } = request;
        let doc = ArtifactDocument::parse(&document).map_err(RegistryError::ArtifactInvalid)?;
        let view = &doc.view;
        if view.repo != repo {
            return Err(invalid("name", format!("the document publishes {}, not {repo}", view.repo)));
        }
        if view.version.to_string() != version {
            return Err(invalid("version", format!("the document publishes {}, not {version}", view.version)));
        }
        self.check_files(view).await?;
        self.check_references(view, visible).await?;

        let document_digest = digest_of(DigestAlgorithm::Sha256, &document);
        let manifest_bytes = oci_manifest(view, &document_digest, document.len() as u64, now());
        let parsed = parse_manifest(Some(OCI_MANIFEST), &manifest_bytes)?;
        let manifest_digest = digest_of(DigestAlgorithm::Sha256, &manifest_bytes);
        let record = parsed.into_record(manifest_digest.clone(), manifest_bytes.len() as u64)?;
        // Bytes before pointers: both blobs are durable before the command that names them.
        self.inner.blobs.put_verified(&document_digest, document.clone()).await?;
        self.inner.blobs.put_verified(&manifest_digest, Bytes::from(manifest_bytes)).await?;
        let command = Command::Artifact(ArtifactCommand::Publish(Box::new(PublishVersion {
            repo: repo.clone(),
            version: view.version.clone(),
            kind: view.kind,
            document: document_digest.clone(),
            document_size: document.len() as u64,
            manifest: record,
            dependencies: view.dependencies.iter().map(|d| (d.repo.clone(), d.range.clone())).collect(),
            description: view.description.chars().take(512).collect(),
            publisher,
            published_at: now(),
            dist_tag,
        })));
        match self.inner.namespaces.propose(command).await? {
            Applied::ArtifactChanged => Ok(Published { manifest: manifest_digest, document: document_digest }),
            Applied::Rejected(Rejection::Artifact(r)) => Err(rejection(&repo, &view.version.to_string(), r)),
            Applied::Rejected(Rejection::BlobUnknown { digest }) => {
                Err(invalid("contents", format!("{digest} was not uploaded to {repo}")))
            }
            other => Err(unexpected(other)),
        }
    }

    /// Each listed file must be uploaded with the stated size, and its bytes must hash to the
    /// stated sha512 (sha256 is its content address, checked when it was uploaded).
    async fn check_files(&self, view: &ValidatedDocument) -> Result<()> {
        let mut problems = Vec::new();
        let mut present = Vec::new();
        for (i, file) in view.contents.iter().enumerate() {
            let digest: Digest = format!("sha256:{}", file.sha256).parse()?;
            match self.stat_blob(&view.repo, &digest).await {
                Ok(size) if size == file.size => present.push((i, digest, file.sha512.clone())),
                Ok(size) => problems.push(FieldError {
                    field: format!("contents[{i}].size"),
                    message: format!("{} was uploaded with {size} bytes, not {}", file.path, file.size),
                }),
                Err(RegistryError::BlobUnknown) => problems.push(FieldError {
                    field: format!("contents[{i}]"),
                    message: format!("{} ({digest}) was not uploaded to {}", file.path, view.repo),
                }),
                Err(e) => return Err(e),
            }
        }
        // Each distinct blob is read and hashed once, however many paths list it: a document
        // naming one large blob thousands of times costs one pass, not thousands.
        let mut by_digest: BTreeMap<Digest, Vec<(usize, String)>> = BTreeMap::new();
        for (i, digest, expected) in present {
            by_digest.entry(digest).or_default().push((i, expected));
        }
        let checks = futures_util::stream::iter(by_digest.into_iter().map(|(digest, listed)| async move {
            let actual = self.sha512_of(&digest).await?;
            Ok::<_, RegistryError>(
                listed.into_iter().map(move |(i, expected)| (i, actual == expected)).collect::<Vec<_>>(),
            )
        }))
        .buffer_unordered(HASHING_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
        let mut results = Vec::new();
        for check in checks {
            results.extend(check?);
        }
        results.sort_unstable();
        for (i, ok) in results {
            if !ok {
                problems.push(FieldError {
                    field: format!("contents[{i}].sha512"),
                    message: format!("{} does not hash to the stated sha512", view.contents[i].path),
                });
            }
        }
        if let Some(sums) = &view.checksums {
            let listing = sums_listing(&view.contents, "sha256");
            if digest_of(DigestAlgorithm::Sha256, listing.as_bytes()).hex() != sums.sha256 {
                problems.push(FieldError::new("checksums.sha256", "not the sha256 of the contents' sha256sum listing"));
            }
            if let Some(sha512) = &sums.sha512 {
                let listing = sums_listing(&view.contents, "sha512");
                if digest_of(DigestAlgorithm::Sha512, listing.as_bytes()).hex() != *sha512 {
                    problems
                        .push(FieldError::new("checksums.sha512", "not the sha512 of the contents' sha512sum listing"));
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(RegistryError::ArtifactInvalid(problems)) }
    }

    async fn sha512_of(&self, digest: &Digest) -> Result<String> {
        let mut read = self.inner.blobs.read(digest, None).await?;
        let mut hasher = ContentHasher::new(DigestAlgorithm::Sha512);
        while let Some(chunk) = read.stream.next().await {
            let chunk = chunk.map_err(|e| RegistryError::internal(&e, "reading a published file"))?;
            hasher.update(&chunk);
        }
        Ok(hasher.finish().hex().to_owned())
    }

    /// Dependencies must have a published version in range; required artifacts must exist with
    /// an accepted type and the version they name.
    async fn check_references(
        &self,
        view: &ValidatedDocument,
        visible: &(dyn Fn(&RepoName) -> bool + Sync),
    ) -> Result<()> {
        let mut problems = Vec::new();
        for dep in &view.dependencies {
            let versions = if visible(&dep.repo) { self.live_versions(&dep.repo).await? } else { Vec::new() };
            if versions.is_empty() {
                problems.push(FieldError::new(format!("{}.name", dep.field), format!("{} is not published", dep.repo)));
            } else if !versions.iter().any(|v| dep.range.matches(v.semver())) {
                let list: Vec<String> = versions.iter().map(ToString::to_string).collect();
                problems.push(FieldError::new(
                    format!("{}.version", dep.field),
                    format!(
                        "no published version of {} is in {} (published: {})",
                        dep.repo,
                        dep.range,
                        list.join(", ")
                    ),
                ));
            }
        }
        for req in &view.required {
            let repo = &req.reference.repo;
            let kind = if visible(repo) { self.artifact_kind(repo).await? } else { None };
            let Some(kind) = kind else {
                problems.push(FieldError::new(&req.field, format!("{repo} is not published")));
                continue;
            };
            if !req.kinds.is_empty() && !req.kinds.contains(&kind) {
                let wanted: Vec<&str> = req.kinds.iter().map(|k| k.as_str()).collect();
                problems
                    .push(FieldError::new(&req.field, format!("{repo} is a {kind}, not a {}", wanted.join(" or "))));
                continue;
            }
            let found = match &req.reference.target {
                RefTarget::Latest => self.dist_tag_version(repo, &DistTag::latest()).await?.is_some(),
                RefTarget::Tag(tag) => self.dist_tag_version(repo, tag).await?.is_some(),
                RefTarget::Version(v) => self.live_versions(repo).await?.contains(v),
                RefTarget::Range(r) => self.live_versions(repo).await?.iter().any(|v| r.matches(v.semver())),
            };
            if !found {
                problems.push(FieldError::new(&req.field, format!("{repo} has no such version or tag")));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(RegistryError::ArtifactInvalid(problems)) }
    }

    pub(super) async fn artifact_kind(&self, repo: &RepoName) -> Result<Option<artifact::ArtifactKind>> {
        let state = self.fresh_state(repo, ReadConsistency::Linearizable).await?;
        Ok(state.artifact(repo)?.map(|a| a.kind))
    }
}

fn invalid(field: &str, message: String) -> RegistryError {
    RegistryError::ArtifactInvalid(vec![FieldError::new(field, message)])
}

/// The domain error of a refused artifact write.
pub(super) fn rejection(repo: &RepoName, version: &str, r: ArtifactRejection) -> RegistryError {
    match r {
        ArtifactRejection::VersionExists { unpublished: false } => RegistryError::ArtifactConflict(format!(
            "{repo}@{version} is already published; versions are immutable, publish a new version"
        )),
        ArtifactRejection::VersionExists { unpublished: true } => RegistryError::ArtifactConflict(format!(
            "{repo}@{version} was unpublished; a version number is never reused, publish a new version"
        )),
        ArtifactRejection::KindMismatch { existing } => {
            RegistryError::ArtifactConflict(format!("{repo} is a {existing}; its type cannot change"))
        }
        ArtifactRejection::ArtifactUnknown => RegistryError::ArtifactUnknown,
        ArtifactRejection::VersionUnknown { version } => {
            RegistryError::VersionUnknown(format!("{repo} has no published version {version}"))
        }
        ArtifactRejection::DistTagUnknown => RegistryError::VersionUnknown(format!("{repo} has no such dist-tag")),
        ArtifactRejection::LatestIsPermanent => {
            RegistryError::ArtifactConflict("latest can be moved but not removed".into())
        }
        ArtifactRejection::UnpublishWindowClosed { .. } => RegistryError::ArtifactConflict(format!(
            "{repo}@{version} was published more than 72 hours ago and can no longer be unpublished; deprecate it instead"
        )),
        ArtifactRejection::HasDependents { dependents } => RegistryError::ArtifactConflict(format!(
            "{repo}@{version} is a dependency of {}; deprecate it instead",
            dependents.join(", ")
        )),
    }
}

/// The OCI manifest of a version: the document as config, one layer per file titled with its
/// path (the annotation oras and other clients name pulled files by), and the version's facts
/// as annotations.
fn oci_manifest(view: &ValidatedDocument, document: &Digest, document_size: u64, at: u64) -> Vec<u8> {
    let layers: Vec<_> = view
        .contents
        .iter()
        .map(|f| {
            json!({
                "mediaType": artifact::FILE_MEDIA_TYPE,
                "digest": format!("sha256:{}", f.sha256),
                "size": f.size,
                "annotations": {
                    artifact::TITLE_ANNOTATION: f.path,
                    artifact::SHA512_ANNOTATION: f.sha512,
                }
            })
        })
        .collect();
    let mut annotations = BTreeMap::new();
    annotations.insert("org.opencontainers.image.version", view.version.to_string());
    annotations.insert("org.opencontainers.image.created", gati_core::time::rfc3339(at));
    annotations.insert("dev.gati.artifact.type", view.kind.to_string());
    if !view.description.is_empty() {
        annotations.insert("org.opencontainers.image.description", view.description.chars().take(512).collect());
    }
    if let Some(license) = &view.license {
        annotations.insert("org.opencontainers.image.licenses", license.clone());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": view.kind.artifact_type(),
        "config": { "mediaType": artifact::DOCUMENT_MEDIA_TYPE, "digest": document.to_string(), "size": document_size },
        "layers": layers,
        "annotations": annotations,
    });
    serde_json::to_vec(&manifest).expect("a JSON value always serialises")
}
