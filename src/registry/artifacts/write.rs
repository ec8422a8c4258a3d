//! Managing published versions: dist-tags, deprecation, unpublish.

use gati_core::artifact::{ArtifactCommand, ArtifactRejection, ArtifactVersion, DistTag};
use gati_core::{Applied, Command, Rejection, RepoName, VersionRange};

use super::super::error::{RegistryError, Result};
use super::super::manifests::unexpected;
use super::super::{ReadConsistency, Registry};
use super::now;
use super::publish::rejection;

impl Registry {
    async fn artifact_write(&self, repo: &RepoName, version: &str, command: ArtifactCommand) -> Result<()> {
        match self.inner.namespaces.propose(Command::Artifact(command)).await? {
            Applied::ArtifactChanged => Ok(()),
            Applied::Rejected(Rejection::Artifact(r)) => Err(rejection(repo, version, r)),
            other => Err(unexpected(other)),
        }
    }

    /// Points a dist-tag at a published version.
    pub async fn set_dist_tag(&self, repo: &RepoName, tag: DistTag, version: ArtifactVersion) -> Result<()> {
        self.require_artifact(repo).await?;
        let text = version.to_string();
        self.artifact_write(repo, &text, ArtifactCommand::SetDistTag { repo: repo.clone(), tag, version }).await
    }

    /// Removes a dist-tag other than `latest`.
    pub async fn remove_dist_tag(&self, repo: &RepoName, tag: DistTag) -> Result<()> {
        self.require_artifact(repo).await?;
        self.artifact_write(repo, "", ArtifactCommand::RemoveDistTag { repo: repo.clone(), tag }).await
    }

    /// Deprecates the published versions in `range` with `message` (or lifts their deprecation
    /// when `message` is `None`); returns the versions changed.
    pub async fn deprecate(
        &self,
        repo: &RepoName,
        range: &VersionRange,
        message: Option<String>,
    ) -> Result<Vec<ArtifactVersion>> {
        self.require_artifact(repo).await?;
        let versions: Vec<ArtifactVersion> =
            self.live_versions(repo).await?.into_iter().filter(|v| range.matches(v.semver())).collect();
        if versions.is_empty() {
            return Err(RegistryError::VersionUnknown(format!("no published version of {repo} is in {range}")));
        }
        let command = ArtifactCommand::Deprecate { repo: repo.clone(), versions: versions.clone(), message };
        self.artifact_write(repo, range.as_str(), command).await?;
        Ok(versions)
    }

    /// Withdraws a version published less than 72 hours ago that nothing depends on.
    ///
    /// Dependents in other shards are looked for here, before proposing; the shard re-checks its
    /// own under consensus. A dependent published in another shard between the two checks is
    /// not caught: the same window every registry with sharded metadata has, closed by the 72-hour
    /// rule (after which only deprecation is possible).
    ///
    /// Dependents `visible` refuses are counted but not named.
    pub async fn unpublish(
        &self,
        repo: &RepoName,
        version: ArtifactVersion,
        visible: &(dyn Fn(&RepoName) -> bool + Sync),
    ) -> Result<()> {
        self.require_artifact(repo).await?;
        let dependents: Vec<(RepoName, String)> = self
            .artifact_dependents(repo)
            .await?
            .into_iter()
            .filter(|d| d.range.matches(version.semver()))
            .map(|d| (d.repo.clone(), format!("{}@{}", d.repo, d.version)))
            .collect();
        let text = version.to_string();
        if !dependents.is_empty() {
            return Err(has_dependents(repo, &text, dependents, visible));
        }
        let command = ArtifactCommand::Unpublish { repo: repo.clone(), version, at: now() };
        match self.inner.namespaces.propose(Command::Artifact(command)).await? {
            Applied::ArtifactChanged => Ok(()),
            Applied::Rejected(Rejection::Artifact(ArtifactRejection::HasDependents { dependents })) => {
                let named = dependents
                    .into_iter()
                    .filter_map(|d| {
                        let name = d.split_once('@').map_or(d.as_str(), |(n, _)| n).parse::<RepoName>().ok()?;
                        Some((name, d))
                    })
                    .collect();
                Err(has_dependents(repo, &text, named, visible))
            }
            Applied::Rejected(Rejection::Artifact(r)) => Err(rejection(repo, &text, r)),
            other => Err(unexpected(other)),
        }
    }

    async fn require_artifact(&self, repo: &RepoName) -> Result<()> {
        let state = self.fresh_state(repo, ReadConsistency::Linearizable).await?;
        state.artifact(repo)?.map(|_| ()).ok_or(RegistryError::ArtifactUnknown)
    }
}

/// "Deprecate instead", naming the dependents the caller may see and counting the others.
fn has_dependents(
    repo: &RepoName,
    version: &str,
    dependents: Vec<(RepoName, String)>,
    visible: &(dyn Fn(&RepoName) -> bool + Sync),
) -> RegistryError {
    let total = dependents.len();
    let seen: Vec<String> = dependents.into_iter().filter(|(r, _)| visible(r)).map(|(_, d)| d).collect();
    let hidden = total - seen.len();
    let mut who = seen.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if seen.len() > 5 {
        who.push_str(&format!(" and {} more", seen.len() - 5));
    }
    if hidden > 0 {
        if !who.is_empty() {
            who.push_str(" and ");
        }
        who.push_str(&format!("{hidden} other version(s) you cannot see"));
    }
    RegistryError::ArtifactConflict(format!("{repo}@{version} is a dependency of {who}; deprecate it instead"))
}
