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

/// Who is asking, and what they have read so far.
pub(super) struct Reader {
    registry: Registry,
    identity: Identity,
    principal: Principal,
    client: Option<IpAddr>,
    /// Artifacts read, `None` for names that turned out unknown.
    artifacts: Mutex<HashMap<RepoName, Option<Arc<ArtifactInfo>>>>,
    /// Dependents read, per artifact.
    dependents: Mutex<HashMap<RepoName, Arc<Vec<Dependent>>>>,
    /// Accounts read, per name (`None`: no such account).
    accounts: Mutex<HashMap<String, Option<UserView>>>,
    reads: AtomicUsize,
}

/// Locks a per-request cache; a cache of immutable snapshots cannot be left torn by a panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Reader {
    pub(super) fn new(registry: Registry, identity: Identity, principal: Principal, client: Option<IpAddr>) -> Reader {
        Reader {
            registry,
            identity,
            principal,
            client,
            artifacts: Mutex::new(HashMap::new()),
            dependents: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
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
        if let Some(known) = self.memo().get(repo) {
            return Ok(known.clone());
        }
        // Charged before the visibility check, so that what a query may read never tells an
        // invisible artifact from an unknown one.
        self.spend_read()?;
        if !self.can_read(repo) {
            return Ok(self.memo().entry(repo.clone()).or_insert(None).clone());
        }
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
    ///
    /// Read once per artifact and query, and charged by its length: the list comes from a scan
    /// of every shard's reverse index.
    pub(super) async fn dependents(&self, repo: &RepoName) -> async_graphql::Result<Arc<Vec<Dependent>>> {
        if let Some(known) = lock(&self.dependents).get(repo) {
            return Ok(known.clone());
        }
        self.spend_read()?;
        let all = self.registry.artifact_dependents(repo).await.map_err(registry_error)?;
        self.spend(all.len() / 64)?;
        let visible: Vec<Dependent> = all.into_iter().filter(|d| self.can_read(&d.repo)).collect();
        Ok(lock(&self.dependents).entry(repo.clone()).or_insert_with(|| Arc::new(visible)).clone())
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
        // Rounds go on until the page is full or the list ends, each charged by how many
        // artifacts it went through; a query matching almost nothing in a large registry runs
        // out of budget with an error rather than scanning without end.
        loop {
            self.spend_read()?;
            let page = self.registry.search_artifacts(&query, &visible).await.map_err(registry_error)?;
            self.spend(page.examined / 256)?;
            query.limit -= page.items.len().min(query.limit);
            items.extend(page.items);
            match page.next {
                Some(next) if query.limit > 0 => query.after = Some(next),
                Some(_) => return Ok((items, true)),
                None => return Ok((items, false)),
            }
        }
    }

    /// The public profile of the account `name`, if there is one.
    /// Read once per name and query.
    pub(super) fn account(&self, name: &str) -> async_graphql::Result<Option<UserView>> {
        if let Some(known) = lock(&self.accounts).get(name) {
            return Ok(known.clone());
        }
        self.spend_read()?;
        let account = match self.identity.user(&self.principal, name) {
            Ok(user) => Some(user),
            Err(IdentityError::NotFound(_)) => None,
            Err(e @ IdentityError::Unavailable(_)) => return Err(coded(e.to_string(), "UNAVAILABLE")),
            // Identity logs its internal errors where they arise.
            Err(e) => return Err(coded(e.to_string(), "INTERNAL")),
        };
        Ok(lock(&self.accounts).entry(name.to_owned()).or_insert(account).clone())
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<RepoName, Option<Arc<ArtifactInfo>>>> {
        // The map is a cache of immutable snapshots: a panic elsewhere cannot leave it torn.
        self.artifacts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn spend_read(&self) -> async_graphql::Result<()> {
        self.spend(1)
    }

    /// Charges `units` of reading against the request's budget.
    fn spend(&self, units: usize) -> async_graphql::Result<()> {
        if units == 0 {
            return Ok(());
        }
        if self.reads.fetch_add(units, Ordering::Relaxed).saturating_add(units) > MAX_STORE_READS {
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
