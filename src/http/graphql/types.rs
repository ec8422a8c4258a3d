//! The object types: `Artifact`, `Version`, `Dependency`, `Dependent`, `Publisher` and
//! `DistTag`. Each holds only what it was reached with (a name, a version record) and reads the
//! rest through the request's [`Reader`] when a query asks for it, so a field nobody asks for
//! costs no store read.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Object, Result, SimpleObject};
use gati_core::artifact::{ArtifactVersion, DistTag, VersionRecord};
use gati_core::{RepoName, VersionRange};

use super::paging::{CursorList, DEFAULT_PAGE, decode_cursor, encode_cursor, page, page_cost, page_size, read_cost};
use super::reader::{Reader, bad_input};
use crate::identity::UserView;
use crate::registry::artifacts::{ArtifactInfo, VersionSelector};
use gati_core::time::rfc3339;

/// A page of versions, with the length of the whole list.
pub(super) type VersionConnection = Connection<String, Version, Counted>;
/// A page of dependents, with the length of the whole list.
pub(super) type DependentConnection = Connection<String, Dependent, Counted>;
/// A page of artifacts. Search filters by scanning, so it has no cheap total.
pub(super) type ArtifactConnection = Connection<String, Artifact, EmptyFields>;

/// The request's reader, which the handler always provides.
pub(super) fn reader<'a>(ctx: &Context<'a>) -> Result<&'a Reader> {
    ctx.data::<Reader>()
}

/// The extra field of counted connections.
#[derive(SimpleObject)]
pub(super) struct Counted {
    /// How many items the whole list holds, across all pages.
    total_count: usize,
}

/// A Gati artifact: a named, typed package with versions.
#[derive(Clone, Debug)]
pub(super) struct Artifact {
    repo: RepoName,
}

impl Artifact {
    /// An artifact the caller may see (the caller checked).
    pub(super) fn new(repo: RepoName) -> Artifact {
        Artifact { repo }
    }

    async fn info(&self, ctx: &Context<'_>) -> Result<Arc<ArtifactInfo>> {
        reader(ctx)?.known_artifact(&self.repo).await
    }
}

/// A Gati artifact: a named, typed package with versions.
#[Object]
impl Artifact {
    /// The full name, `namespace/name` (`users/krishna/user-auth`).
    async fn name(&self) -> &str {
        self.repo.as_str()
    }

    /// The namespace: `users/<user>`, `orgs/<org>`, or a single component.
    async fn namespace(&self) -> String {
        self.repo.namespace().to_string()
    }

    /// The type, as documents name it (`module-wasm`, `model`, `agent`, ...).
    #[graphql(name = "type")]
    async fn kind(&self, ctx: &Context<'_>) -> Result<&'static str> {
        Ok(self.info(ctx).await?.kind.as_str())
    }

    /// When its first version was published (RFC 3339, UTC).
    async fn created_at(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(rfc3339(self.info(ctx).await?.created_at))
    }

    /// Its dist-tags, by name.
    async fn dist_tags(&self, ctx: &Context<'_>) -> Result<Vec<DistTagPointer>> {
        let info = self.info(ctx).await?;
        Ok(info
            .dist_tags
            .iter()
            .map(|(tag, version)| DistTagPointer { tag: tag.to_string(), version: version.to_string() })
            .collect())
    }

    /// The version the `latest` dist-tag points at.
    async fn latest(&self, ctx: &Context<'_>) -> Result<Option<Version>> {
        let info = self.info(ctx).await?;
        Ok(info.dist_tags.get(&DistTag::latest()).and_then(|v| published(&info, v)))
    }

    /// One published version, by number (`1.2.0`) or by dist-tag (`beta`); null when there is
    /// none.
    async fn version(&self, ctx: &Context<'_>, version: String) -> Result<Option<Version>> {
        let selector = VersionSelector::parse(&version).map_err(|e| bad_input(e.to_string()))?;
        let info = self.info(ctx).await?;
        Ok(match selector {
            VersionSelector::Version(v) => published(&info, &v),
            VersionSelector::Tag(tag) => info.dist_tags.get(&tag).and_then(|v| published(&info, v)),
        })
    }

    /// Its versions, highest first; unpublished ones only when asked for. `first` is 0 to 100.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn versions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_PAGE")] first: i32,
        after: Option<String>,
        #[graphql(default = false)] include_unpublished: bool,
    ) -> Result<VersionConnection> {
        let size = page_size(first)?;
        let after: Option<ArtifactVersion> = after
            .map(|cursor| {
                let key = decode_cursor(CursorList::Versions, &cursor)?;
                key.parse().map_err(|_| bad_input(format!("after: {cursor:?} is not a cursor of this list")))
            })
            .transpose()?;
        let info = self.info(ctx).await?;
        let listed: Vec<&VersionRecord> =
            info.versions.iter().filter(|r| include_unpublished || !r.unpublished).collect();
        // Versions are listed highest first, so "after" a cursor means "lower than" it.
        let (items, more) = page(listed.iter().copied(), size, |r| after.as_ref().is_none_or(|a| r.version < *a));
        let mut connection =
            Connection::with_additional_fields(after.is_some(), more, Counted { total_count: listed.len() });
        connection.edges.extend(items.into_iter().map(|r| {
            Edge::new(encode_cursor(CursorList::Versions, &r.version.to_string()), Version::new(&self.repo, r))
        }));
        Ok(connection)
    }

    /// The published versions of other visible artifacts that depend on this one, ordered by
    /// artifact then version. `first` is 0 to 100.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn dependents(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "DEFAULT_PAGE")] first: i32,
        after: Option<String>,
    ) -> Result<DependentConnection> {
        let size = page_size(first)?;
        let after = after.map(|cursor| dependent_key(&cursor)).transpose()?;
        let all = reader(ctx)?.dependents(&self.repo).await?;
        let total_count = all.len();
        let (items, more) = page(all.iter().cloned(), size, |d| {
            after.as_ref().is_none_or(|(repo, v)| (&d.repo, &d.version) > (repo, v))
        });
        let mut connection = Connection::with_additional_fields(after.is_some(), more, Counted { total_count });
        connection.edges.extend(items.into_iter().map(|d| {
            let cursor = encode_cursor(CursorList::Dependents, &format!("{}@{}", d.repo, d.version));
            Edge::new(cursor, Dependent { repo: d.repo, version: d.version, range: d.range })
        }));
        Ok(connection)
    }
}

/// The `(artifact, version)` a dependents cursor stands for.
fn dependent_key(cursor: &str) -> Result<(RepoName, ArtifactVersion)> {
    let key = decode_cursor(CursorList::Dependents, cursor)?;
    let invalid = || bad_input(format!("after: {cursor:?} is not a cursor of this list"));
    let (repo, version) = key.rsplit_once('@').ok_or_else(invalid)?;
    Ok((repo.parse().map_err(|_| invalid())?, version.parse().map_err(|_| invalid())?))
}

/// The version `v` of `info`, unless it was unpublished.
fn published(info: &ArtifactInfo, v: &ArtifactVersion) -> Option<Version> {
    info.versions.iter().find(|r| r.version == *v && !r.unpublished).map(|r| Version::new(&info.repo, r))
}

/// A dist-tag and the version it points at.
#[derive(SimpleObject)]
#[graphql(name = "DistTag")]
pub(super) struct DistTagPointer {
    /// The tag (`latest`, `beta`).
    tag: String,
    /// The version it points at.
    version: String,
}

/// One version of an artifact.
#[derive(Clone, Debug)]
pub(super) struct Version {
    repo: RepoName,
    record: VersionRecord,
}

impl Version {
    fn new(repo: &RepoName, record: &VersionRecord) -> Version {
        Version { repo: repo.clone(), record: record.clone() }
    }
}

/// One version of an artifact.
#[Object]
impl Version {
    /// The version number (SemVer).
    async fn version(&self) -> String {
        self.record.version.to_string()
    }

    /// The one-line description from its document.
    async fn description(&self) -> &str {
        &self.record.description
    }

    /// When it was published (RFC 3339, UTC).
    async fn published_at(&self) -> String {
        rfc3339(self.record.published_at)
    }

    /// Its files and document together, in bytes. May exceed 32 bits.
    async fn size(&self) -> u64 {
        self.record.size
    }

    /// Whether it is deprecated.
    async fn deprecated(&self) -> bool {
        self.record.deprecated.is_some()
    }

    /// Why it is deprecated; null when it is not.
    async fn deprecation_message(&self) -> Option<&str> {
        self.record.deprecated.as_deref()
    }

    /// Whether it was unpublished: its number stays taken, its content is gone.
    async fn unpublished(&self) -> bool {
        self.record.unpublished
    }

    /// The digest of its OCI manifest.
    async fn manifest_digest(&self) -> String {
        self.record.manifest.to_string()
    }

    /// The digest of its document (`gati.json`, the manifest's config blob).
    async fn document_digest(&self) -> String {
        self.record.document.to_string()
    }

    /// Who published it.
    async fn publisher(&self, ctx: &Context<'_>) -> Result<Publisher> {
        let account = reader(ctx)?.account(&self.record.publisher)?;
        Ok(Publisher { name: self.record.publisher.clone(), account })
    }

    /// The artifact it is a version of.
    async fn artifact(&self) -> Artifact {
        Artifact::new(self.repo.clone())
    }

    /// What it depends on, as its document lists them: the first `first` (0 to 100).
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn dependencies(&self, #[graphql(default = 20)] first: i32) -> Result<Vec<Dependency>> {
        let size = page_size(first)?;
        Ok(self
            .record
            .dependencies
            .iter()
            .take(size)
            .map(|(repo, range)| Dependency { repo: repo.clone(), range: range.clone() })
            .collect())
    }
}

/// Who published a version.
pub(super) struct Publisher {
    name: String,
    account: Option<UserView>,
}

/// Who published a version.
#[Object]
impl Publisher {
    /// The publishing account's name; `anonymous` for versions published while the registry ran
    /// without authentication.
    async fn name(&self) -> &str {
        &self.name
    }

    /// The account's namespace (`users/<name>`); null when no such account exists.
    async fn namespace(&self) -> Option<&str> {
        self.account.as_ref().map(|a| a.namespace.as_str())
    }

    /// Whether an administrator verified the account as a publisher.
    async fn verified(&self) -> bool {
        self.account.as_ref().is_some_and(|a| a.verified_publisher)
    }
}

/// A dependency of a version: an artifact and the versions of it accepted.
pub(super) struct Dependency {
    repo: RepoName,
    range: VersionRange,
}

/// A dependency of a version: an artifact and the versions of it accepted.
#[Object]
impl Dependency {
    /// The artifact depended on, `namespace/name`.
    async fn name(&self) -> &str {
        self.repo.as_str()
    }

    /// The versions accepted, as written (`^1.0.0`).
    async fn range(&self) -> &str {
        self.range.as_str()
    }

    /// The artifact; null when it does not exist or the caller may not see it.
    #[graphql(complexity = "read_cost(child_complexity)")]
    async fn artifact(&self, ctx: &Context<'_>) -> Result<Option<Artifact>> {
        Ok(reader(ctx)?.artifact(&self.repo).await?.map(|_| Artifact::new(self.repo.clone())))
    }

    /// The highest published version in the range, skipping deprecated versions while any
    /// other matches (as the resolver does); null when none matches or the artifact is not
    /// visible. This is the range's best match alone, not a resolution of the whole graph:
    /// `POST /api/v1/resolve` does that.
    #[graphql(complexity = "read_cost(child_complexity)")]
    async fn resolved(&self, ctx: &Context<'_>) -> Result<Option<Version>> {
        let Some(info) = reader(ctx)?.artifact(&self.repo).await? else { return Ok(None) };
        // Highest first, so the first match of each kind is the best.
        let mut matching =
            info.versions.iter().filter(|r| !r.unpublished && self.range.matches(r.version.semver())).peekable();
        let highest = matching.peek().copied();
        let best = matching.find(|r| r.deprecated.is_none()).or(highest);
        Ok(best.map(|r| Version::new(&info.repo, r)))
    }
}

/// A version of another artifact that depends on this one.
pub(super) struct Dependent {
    repo: RepoName,
    version: ArtifactVersion,
    range: VersionRange,
}

/// A version of another artifact that depends on this one.
#[Object]
impl Dependent {
    /// The depending artifact.
    #[graphql(complexity = "read_cost(child_complexity)")]
    async fn artifact(&self) -> Artifact {
        Artifact::new(self.repo.clone())
    }

    /// The depending version; null when it was unpublished between the reads of this query
    /// (the list of dependents and the artifact are read at different moments).
    #[graphql(complexity = "read_cost(child_complexity)")]
    async fn version(&self, ctx: &Context<'_>) -> Result<Option<Version>> {
        let Some(info) = reader(ctx)?.artifact(&self.repo).await? else { return Ok(None) };
        Ok(published(&info, &self.version))
    }

    /// The versions of this artifact it accepts, as written.
    async fn range(&self) -> &str {
        self.range.as_str()
    }
}
