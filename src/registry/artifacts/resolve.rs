//! Resolving dependencies against the registry's state, with the resolver of `gati-core`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use gati_core::artifact::{ArtifactKind, ArtifactVersion};
use gati_core::resolve::{Candidate, Index, ResolveError, resolve};
use gati_core::{Digest, RepoName, VersionRange};

use super::super::error::{RegistryError, Result};
use super::super::{ReadConsistency, Registry};

/// The most artifacts one resolution may visit.
const MAX_PACKAGES: usize = 2_000;

/// One artifact of a resolved graph.
#[derive(Clone, Debug)]
pub struct ResolvedPackage {
    /// The artifact.
    pub repo: RepoName,
    /// The version chosen.
    pub version: ArtifactVersion,
    /// Its type.
    pub kind: ArtifactKind,
    /// Its OCI manifest.
    pub manifest: Digest,
    /// Its document.
    pub document: Digest,
    /// The version chosen for each of its dependencies.
    pub dependencies: BTreeMap<RepoName, ArtifactVersion>,
    /// Its deprecation message, if deprecated.
    pub deprecated: Option<String>,
}

/// A resolved dependency graph: one version per artifact.
#[derive(Clone, Debug)]
pub struct ResolvedGraph {
    /// The artifacts, in name order.
    pub packages: Vec<ResolvedPackage>,
}

impl Registry {
    /// Resolves `roots` to one consistent set of versions, or explains why there is none.
    /// Artifacts `visible` refuses are treated as unknown.
    pub async fn resolve_dependencies(
        &self,
        roots: &[(RepoName, VersionRange)],
        visible: &(dyn Fn(&RepoName) -> bool + Sync),
    ) -> Result<ResolvedGraph> {
        let mut index: Index<RepoName> = Index::new();
        let mut facts: BTreeMap<(RepoName, ArtifactVersion), (ArtifactKind, Digest, Digest)> = BTreeMap::new();
        let mut queue: VecDeque<RepoName> = roots.iter().map(|(r, _)| r.clone()).collect();
        let mut seen: BTreeSet<RepoName> = BTreeSet::new();
        while let Some(repo) = queue.pop_front() {
            if !seen.insert(repo.clone()) {
                continue;
            }
            if seen.len() > MAX_PACKAGES {
                return Err(RegistryError::Unresolvable(format!(
                    "the dependency graph reaches more than {MAX_PACKAGES} artifacts"
                )));
            }
            if !visible(&repo) {
                continue;
            }
            let state = self.fresh_state(&repo, ReadConsistency::Linearizable).await?;
            let records = state.versions(&repo)?;
            if records.is_empty() {
                continue;
            }
            let mut candidates = Vec::new();
            for r in records.into_iter().filter(|r| !r.unpublished) {
                for (dep, _) in &r.dependencies {
                    if !seen.contains(dep) {
                        queue.push_back(dep.clone());
                    }
                }
                facts.insert((repo.clone(), r.version.clone()), (r.kind, r.manifest.clone(), r.document.clone()));
                candidates.push(Candidate {
                    version: r.version.semver().clone(),
                    dependencies: r.dependencies.clone(),
                    deprecated: r.deprecated.clone(),
                });
            }
            index.insert(repo, candidates);
        }
        // An artifact nobody (visible to the caller) published is "not found"; everything else
        // that stops a resolution is a conflict the message explains.
        // The search is CPU work bounded by its step limit: it runs off the async workers.
        let roots_owned = roots.to_vec();
        let resolution = tokio::task::spawn_blocking(move || resolve(&roots_owned, &index))
            .await
            .map_err(|e| RegistryError::internal(&e, "dependency resolution"))?
            .map_err(|e| match e {
                ResolveError::Unknown { .. } => RegistryError::VersionUnknown(e.to_string()),
                other => RegistryError::Unresolvable(other.to_string()),
            })?;
        let mut packages = Vec::with_capacity(resolution.packages.len());
        for (repo, chosen) in resolution.packages {
            let version = ArtifactVersion::from(chosen.version);
            let (kind, manifest, document) =
                facts.get(&(repo.clone(), version.clone())).cloned().ok_or(RegistryError::Internal)?;
            packages.push(ResolvedPackage {
                repo,
                version,
                kind,
                manifest,
                document,
                dependencies: chosen.dependencies.into_iter().map(|(r, v)| (r, ArtifactVersion::from(v))).collect(),
                deprecated: chosen.deprecated,
            });
        }
        Ok(ResolvedGraph { packages })
    }
}
