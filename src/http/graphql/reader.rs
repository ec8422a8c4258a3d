//! The per-request view of the registry that every resolver reads through.
//!
//! It knows who is asking, and hides private artifacts from principals without a role on their
//! namespace with exactly the decision the REST API makes (`Pull` on the repository), so an
//! invisible artifact and an unknown one look the same. It remembers each artifact it has read,
//! so a query sees one state of each artifact however many paths reach it, and reaching the same
//! artifact again costs no store read. And it counts store reads against [`MAX_STORE_READS`]:
//! the static cost analysis bounds what a query may ask for, this bounds what it may actually
//! cost when lists turn out long.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::ErrorExtensions as _;
use gati_core::{ErrorCode, RepoName};
use gati_meta::artifact::Dependent;

use crate::identity::{Action, Decision, Identity, IdentityError, Principal, Target, UserView};
use crate::registry::artifacts::{ArtifactInfo, ArtifactSummary, SearchQuery};
use crate::registry::{Registry, RegistryError};

/// The most store reads (artifacts, dependents lists, accounts) one request may make.
pub(super) const MAX_STORE_READS: usize = 1_000;

/// Registry searches one `artifacts` page may take to fill itself.
const SEARCH_ROUNDS: usize = 8;

/// Who is asking, and what they have read so far.
pub(super) struct Reader {
    registry: Registry,
    identity: Identity,
    principal: Principal,
    client: Option<IpAddr>,
    /// Artifacts read, `None` for names that turned out unknown.
    artifacts: Mutex<HashMap<RepoName, Option<Arc<ArtifactInfo>>>>,
    reads: AtomicUsize,
}

impl Reader {
    pub(super) fn new(registry: Registry, identity: Identity, principal: Principal, client: Option<IpAddr>) -> Reader {
        Reader {
            registry,
            identity,
            principal,
            client,
            artifacts: Mutex::new(HashMap::new()),
            reads: AtomicUsize::new(0),
        }
    }

    /// Whether the caller may see `repo`. With authentication off everyone sees everything.
    pub(super) fn can_read(&self, repo: &RepoName) -> bool {
        !self.identity.enabled()
            || self.identity.decide(&self.principal, Target::Repo(repo), Action::Pull, self.client).ok()
                == Some(Decision::Allow)
    }

    /// The artifact, or `None` when it does not exist or the caller may not see it.
    pub(super) async fn artifact(&self, repo: &RepoName) -> async_graphql::Result<Option<Arc<ArtifactInfo>>> {
        if !self.can_read(repo) {
            return Ok(None);
        }
        if let Some(known) = self.memo().get(repo) {
            return Ok(known.clone());
        }
        self.spend_read()?;
        let read = match self.registry.artifact_info(repo).await {
            Ok(info) => Some(Arc::new(info)),
            Err(RegistryError::ArtifactUnknown) => None,
            Err(e) => return Err(registry_error(e)),
        };
        // Two resolvers may read the same artifact concurrently; the first answer stays, so
        // everything this query shows of the artifact agrees.
        Ok(self.memo().entry(repo.clone()).or_insert(read).clone())
    }

    /// The artifact, which the caller reached through something visible and so must exist.
    pub(super) async fn known_artifact(&self, repo: &RepoName) -> async_graphql::Result<Arc<ArtifactInfo>> {
        self.artifact(repo).await?.ok_or_else(|| not_found(format!("artifact {repo} not found")))
    }

    /// The visible versions depending on `repo`, ordered by artifact and version.
    pub(super) async fn dependents(&self, repo: &RepoName) -> async_graphql::Result<Vec<Dependent>> {
        self.spend_read()?;
        let all = self.registry.artifact_dependents(repo).await.map_err(registry_error)?;
        Ok(all.into_iter().filter(|d| self.can_read(&d.repo)).collect())
    }

    /// Artifacts matching `query` that the caller may see, and whether more follow.
    ///
    /// One registry search examines a bounded number of artifacts and may stop short of a full
    /// page; a few rounds fill the page (each spends a store read), so that a page's end cursor
    /// is always one of its edges.
    pub(super) async fn search(&self, query: &SearchQuery) -> async_graphql::Result<(Vec<ArtifactSummary>, bool)> {
        let visible = |repo: &RepoName| self.can_read(repo);
        let mut query = query.clone();
        let mut items = Vec::new();
        for _ in 0..SEARCH_ROUNDS {
            self.spend_read()?;
            let page = self.registry.search_artifacts(&query, &visible).await.map_err(registry_error)?;
            query.limit -= page.items.len().min(query.limit);
            items.extend(page.items);
            match page.next {
                Some(next) if query.limit > 0 => query.after = Some(next),
                Some(_) => return Ok((items, true)),
                None => return Ok((items, false)),
            }
        }
        Ok((items, true))
    }

    /// The public profile of the account `name`, if there is one.
    pub(super) fn account(&self, name: &str) -> async_graphql::Result<Option<UserView>> {
        self.spend_read()?;
        match self.identity.user(&self.principal, name) {
            Ok(user) => Ok(Some(user)),
            Err(IdentityError::NotFound(_)) => Ok(None),
            Err(e @ IdentityError::Unavailable(_)) => Err(coded(e.to_string(), "UNAVAILABLE")),
            // Identity logs its internal errors where they arise.
            Err(e) => Err(coded(e.to_string(), "INTERNAL")),
        }
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<RepoName, Option<Arc<ArtifactInfo>>>> {
        // The map is a cache of immutable snapshots: a panic elsewhere cannot leave it torn.
        self.artifacts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spend_read(&self) -> async_graphql::Result<()> {
        if self.reads.fetch_add(1, Ordering::Relaxed) >= MAX_STORE_READS {
            return Err(coded(
                format!("the query reads more than {MAX_STORE_READS} records; ask for less, or page through it"),
                "QUERY_TOO_EXPENSIVE",
            ));
        }
        Ok(())
    }
}

/// A GraphQL error with `extensions.code`, so clients can branch without parsing messages.
pub(super) fn coded(message: impl Into<String>, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, extensions| extensions.set("code", code))
}

pub(super) fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    coded(message, "BAD_USER_INPUT")
}

pub(super) fn not_found(message: impl Into<String>) -> async_graphql::Error {
    coded(message, "NOT_FOUND")
}

/// A facade error as a GraphQL error. Internal errors were logged where they arose, and their
/// message says no more than "internal error".
pub(super) fn registry_error(e: RegistryError) -> async_graphql::Error {
    let code = match e.code() {
        ErrorCode::NotFound => "NOT_FOUND",
        ErrorCode::Invalid => "BAD_USER_INPUT",
        ErrorCode::Conflict => "CONFLICT",
        ErrorCode::Unauthorized => "FORBIDDEN",
        ErrorCode::Unavailable => "UNAVAILABLE",
        ErrorCode::Timeout => "TIMEOUT",
        ErrorCode::Internal => "INTERNAL",
    };
    coded(e.to_string(), code)
}
