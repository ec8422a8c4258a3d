//! Reading artifacts: metadata, versions, documents, files, dependents, downloads and search.

use std::collections::BTreeMap;

use bytes::Bytes;
use gati_core::RepoName;
use gati_core::artifact::{ArtifactKind, ArtifactVersion, DistTag, FileEntry, VersionRecord};
use gati_meta::StateMachine;
use gati_meta::artifact::Dependent;

use super::super::error::{RegistryError, Result};
use super::super::{BlobContent, ReadConsistency, Registry};
use super::VersionSelector;

/// An artifact with its versions and dist-tags.
#[derive(Clone, Debug)]
pub struct ArtifactInfo {
    /// The artifact.
    pub repo: RepoName,
    /// Its type.
    pub kind: ArtifactKind,
    /// When its first version was published.
    pub created_at: u64,
    /// Its dist-tags.
    pub dist_tags: BTreeMap<DistTag, ArtifactVersion>,
    /// Every version, highest first; unpublished ones are marked.
    pub versions: Vec<VersionRecord>,
}

/// One version with its document and files.
#[derive(Clone, Debug)]
pub struct VersionView {
    /// The artifact.
    pub repo: RepoName,
    /// Its record.
    pub record: VersionRecord,
    /// The document, byte for byte as published.
    pub document: Bytes,
    /// The files, from the document's `contents`.
    pub files: Vec<FileEntry>,
}

/// A line of a search result.
#[derive(Clone, Debug)]
pub struct ArtifactSummary {
    /// The artifact.
    pub repo: RepoName,
    /// Its type.
    pub kind: ArtifactKind,
    /// The version `latest` points at.
    pub latest: Option<ArtifactVersion>,
    /// That version's description.
    pub description: String,
    /// When that version was published.
    pub updated_at: u64,
}

/// Simple filtering until full-text search lands: every given filter must hold.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    /// Words that must each appear in the name or the description (case-insensitive).
    pub text: Option<String>,
    /// Only this type.
    pub kind: Option<ArtifactKind>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Start after this artifact (the previous page's last).
    pub after: Option<RepoName>,
    /// At most this many.
    pub limit: usize,
}

/// Downloads of one version on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadDay {
    /// Days since the epoch.
    pub day: u32,
    /// The version.
    pub version: ArtifactVersion,
    /// How many.
    pub count: u64,
}

impl Registry {
    /// The replica holding `repo`, after a read-index round when asked for linearizable reads.
    pub(super) async fn fresh_state(&self, repo: &RepoName, consistency: ReadConsistency) -> Result<&StateMachine> {
        let shard = self.inner.cluster.shard_of_repo(repo);
        if consistency == ReadConsistency::Linearizable {
            self.inner.cluster.linearizable(shard).await?;
        }
        Ok(self.inner.cluster.state(shard))
    }

    /// Versions not unpublished, highest first.
    pub(super) async fn live_versions(&self, repo: &RepoName) -> Result<Vec<ArtifactVersion>> {
        let state = self.fresh_state(repo, ReadConsistency::Linearizable).await?;
        Ok(state.versions(repo)?.into_iter().filter(|r| !r.unpublished).map(|r| r.version).collect())
    }

    pub(super) async fn dist_tag_version(&self, repo: &RepoName, tag: &DistTag) -> Result<Option<ArtifactVersion>> {
        let state = self.fresh_state(repo, ReadConsistency::Linearizable).await?;
        Ok(state.dist_tags(repo)?.remove(tag))
    }

    /// An artifact's type, dist-tags and versions.
    pub async fn artifact_info(&self, repo: &RepoName) -> Result<ArtifactInfo> {
        let state = self.fresh_state(repo, ReadConsistency::Linearizable).await?;
        let record = state.artifact(repo)?.ok_or(RegistryError::ArtifactUnknown)?;
        Ok(ArtifactInfo {
            repo: repo.clone(),
            kind: record.kind,
            created_at: record.created_at,
            dist_tags: state.dist_tags(repo)?,
            versions: state.versions(repo)?,
        })
    }

    /// The record of the version a selector names; unpublished versions are not found.
    pub async fn artifact_version_record(&self, repo: &RepoName, selector: &VersionSelector) -> Result<VersionRecord> {
        let state = self.fresh_state(repo, ReadConsistency::Linearizable).await?;
        if state.artifact(repo)?.is_none() {
            return Err(RegistryError::ArtifactUnknown);
        }
        let version = match selector {
            VersionSelector::Version(v) => v.clone(),
            VersionSelector::Tag(tag) => state
                .dist_tags(repo)?
                .remove(tag)
                .ok_or_else(|| RegistryError::VersionUnknown(format!("{repo} has no dist-tag {tag}")))?,
        };
        state
            .version(repo, &version)?
            .filter(|r| !r.unpublished)
            .ok_or_else(|| RegistryError::VersionUnknown(format!("{repo} has no published version {version}")))
    }

    /// One version with its document and files.
    pub async fn artifact_version(&self, repo: &RepoName, selector: &VersionSelector) -> Result<VersionView> {
        let record = self.artifact_version_record(repo, selector).await?;
        let document = self.read_document(&record).await?;
        let files = files_of(&document)?;
        Ok(VersionView { repo: repo.clone(), record, document, files })
    }

    /// A version's document: from the manifest cache (documents are small and immutable, and
    /// every file download reads one), else from the blob store.
    async fn read_document(&self, record: &VersionRecord) -> Result<Bytes> {
        if let Some(bytes) = self.inner.manifest_cache.get(&record.document) {
            return Ok(bytes);
        }
        // The size is only a capacity hint: documents are at most 1 MiB.
        let bytes = self.read_small_blob(&record.document, 0).await?;
        self.inner.manifest_cache.insert(record.document.clone(), bytes.clone());
        Ok(bytes)
    }

    /// Streams one file of a version, or a byte range of it.
    pub async fn artifact_file(
        &self,
        repo: &RepoName,
        selector: &VersionSelector,
        path: &str,
        range: Option<gati_core::ByteRange>,
    ) -> Result<(FileEntry, BlobContent)> {
        let view = self.artifact_version(repo, selector).await?;
        let file = view.files.into_iter().find(|f| f.path == path).ok_or_else(|| {
            RegistryError::VersionUnknown(format!("{repo}@{} has no file {path}", view.record.version))
        })?;
        let digest = format!("sha256:{}", file.sha256).parse()?;
        let content = self.get_blob(repo, &digest, range).await?;
        Ok((file, content))
    }

    /// The live versions, in every shard this node holds, that depend on `repo`.
    pub async fn artifact_dependents(&self, repo: &RepoName) -> Result<Vec<Dependent>> {
        super::scan(|| {
            let mut out = Vec::new();
            for state in self.inner.cluster.states() {
                out.extend(state.dependents(repo)?);
            }
            out.sort_by(|a, b| (&a.repo, &a.version).cmp(&(&b.repo, &b.version)));
            Ok(out)
        })
    }

    /// Downloads per version and day for days `from..=to`.
    pub async fn artifact_downloads(&self, repo: &RepoName, from: u32, to: u32) -> Result<Vec<DownloadDay>> {
        let state = self.fresh_state(repo, ReadConsistency::Linearizable).await?;
        if state.artifact(repo)?.is_none() {
            return Err(RegistryError::ArtifactUnknown);
        }
        Ok(state
            .downloads(repo, from, to)?
            .into_iter()
            .map(|(day, version, count)| DownloadDay { day, version, count })
            .collect())
    }

    /// Artifacts matching `query`, in name order, that `visible` admits, and whether more follow.
    pub async fn search_artifacts(
        &self,
        query: &SearchQuery,
        visible: &(dyn Fn(&RepoName) -> bool + Sync),
    ) -> Result<SearchPage> {
        super::scan(|| self.search_now(query, visible))
    }

    fn search_now(&self, query: &SearchQuery, visible: &(dyn Fn(&RepoName) -> bool + Sync)) -> Result<SearchPage> {
        let words: Vec<String> =
            query.text.as_deref().unwrap_or_default().split_whitespace().map(str::to_lowercase).collect();
        let states: Vec<&StateMachine> = self.inner.cluster.states().collect();
        // A request examines a bounded number of artifacts the caller may see, shared among
        // the shards, however few match: a query matching nothing ends with a cursor instead
        // of a full scan. Only visible artifacts count, so that where a page stops, and so its
        // cursor, is always a name the caller may see.
        let per_shard = (SEARCH_EXAMINED / states.len().max(1)).max(query.limit + 1);
        let mut examined_total = 0usize;
        let mut found = Vec::new();
        // The smallest name at which a shard stopped for lack of budget: everything up to it
        // has been examined in every shard, nothing after it in that one.
        let mut cut: Option<RepoName> = None;
        for state in states {
            let mut after = query.after.clone();
            let (before, mut examined) = (found.len(), 0usize);
            'shard: loop {
                let (page, more) = state.artifacts(after.as_ref(), 256)?;
                for (repo, record) in &page {
                    if !visible(repo) {
                        continue;
                    }
                    examined += 1;
                    if let Some(summary) = self.matching(state, repo, record, query, &words)? {
                        found.push(summary);
                    }
                    if examined >= per_shard && found.len() - before <= query.limit {
                        // Out of budget: this shard has been examined up to here and no
                        // further. More rows of this page may follow; they are not looked at.
                        cut = Some(cut.map_or(repo.clone(), |c| c.min(repo.clone())));
                        break 'shard;
                    }
                }
                after = page.last().map(|(r, _)| r.clone());
                // Each shard lists in name order, so its first `limit + 1` matches are all that
                // one page of the merged result can need from it.
                if !more || found.len() - before > query.limit {
                    break;
                }
            }
            examined_total += examined;
        }
        found.sort_by(|a, b| a.repo.cmp(&b.repo));
        if let Some(cut) = &cut {
            found.retain(|a| a.repo <= *cut);
        }
        let truncated = found.len() > query.limit;
        found.truncate(query.limit);
        let next = if truncated { found.last().map(|a| a.repo.clone()) } else { cut };
        Ok(SearchPage { items: found, next, examined: examined_total })
    }

    /// The summary of `repo` if it passes every filter of `query`.
    fn matching(
        &self,
        state: &StateMachine,
        repo: &RepoName,
        record: &gati_meta::artifact::ArtifactRecord,
        query: &SearchQuery,
        words: &[String],
    ) -> Result<Option<ArtifactSummary>> {
        if query.kind.is_some_and(|k| k != record.kind)
            || query.namespace.as_deref().is_some_and(|ns| repo.namespace().as_str() != ns)
        {
            return Ok(None);
        }
        let latest = state.dist_tags(repo)?.remove(&DistTag::latest());
        let latest_record = match &latest {
            Some(v) => state.version(repo, v)?,
            None => None,
        };
        let description = latest_record.as_ref().map(|r| r.description.clone()).unwrap_or_default();
        let haystack = format!("{} {}", repo.as_str(), description.to_lowercase());
        if !words.iter().all(|w| haystack.contains(w.as_str())) {
            return Ok(None);
        }
        Ok(Some(ArtifactSummary {
            repo: repo.clone(),
            kind: record.kind,
            latest,
            description,
            updated_at: latest_record.map_or(record.created_at, |r| r.published_at),
        }))
    }
}

/// Artifacts one search request examines at most, over all shards.
const SEARCH_EXAMINED: usize = 4096;

/// A page of search results.
#[derive(Clone, Debug)]
pub struct SearchPage {
    /// The matches, in name order.
    pub items: Vec<ArtifactSummary>,
    /// Where the next page starts (`after`), when there may be more: always an artifact the
    /// caller may see.
    pub next: Option<RepoName>,
    /// How many visible artifacts the search went through, a measure of its cost.
    pub examined: usize,
}

/// The `contents` of a stored document (already validated when it was published).
fn files_of(document: &[u8]) -> Result<Vec<FileEntry>> {
    #[derive(serde::Deserialize)]
    struct Contents {
        #[serde(default)]
        contents: Vec<FileEntry>,
    }
    serde_json::from_slice::<Contents>(document)
        .map(|c| c.contents)
        .map_err(|e| RegistryError::internal(&e, "reading a stored document"))
}
