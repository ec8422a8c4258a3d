//! Versions, dist-tags and references to artifacts.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::name::{Namespace, RepoName};
use crate::reference::Tag;
use crate::version_range::VersionRange;

/// The longest version text accepted.
const MAX_VERSION_LEN: usize = 128;

/// A published version number: `SemVer` 2.0, ordered by `SemVer` precedence (build metadata
/// breaks ties so that the order stays total and consistent with equality).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactVersion(semver::Version);

impl ArtifactVersion {
    /// The version as `semver` sees it.
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }

    /// Whether this is a pre-release (`1.0.0-beta.1`).
    pub fn is_prerelease(&self) -> bool {
        !self.0.pre.is_empty()
    }
}

impl From<semver::Version> for ArtifactVersion {
    fn from(v: semver::Version) -> Self {
        ArtifactVersion(v)
    }
}

impl Ord for ArtifactVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for ArtifactVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for ArtifactVersion {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() > MAX_VERSION_LEN {
            return Err(CoreError::VersionInvalid { version: s.chars().take(80).collect(), reason: "too long" });
        }
        semver::Version::parse(s).map(ArtifactVersion).map_err(|_| CoreError::VersionInvalid {
            version: s.chars().take(80).collect(),
            reason: "not a SemVer 2.0 version such as 1.2.3 or 2.0.0-beta.1",
        })
    }
}

impl TryFrom<String> for ArtifactVersion {
    type Error = CoreError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ArtifactVersion> for String {
    fn from(v: ArtifactVersion) -> String {
        v.0.to_string()
    }
}

impl fmt::Display for ArtifactVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ArtifactVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactVersion({})", self.0)
    }
}

/// The OCI tag a version is also reachable by, so that OCI clients can pull `repo:1.2.3`.
/// `SemVer` build metadata uses `+`, which tags cannot hold; it becomes `_`, as Helm does.
pub fn oci_tag_of(version: &ArtifactVersion) -> Tag {
    let text = version.to_string().replace('+', "_");
    text.parse().expect("a SemVer version with '+' replaced is ASCII alphanumerics, '.', '-' and '_', starts with a digit and is at most 128 long: a valid tag")
}

/// A movable name for a version (`latest`, `next`, `beta`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DistTag(String);

crate::newtype::string_newtype!(DistTag);

impl DistTag {
    /// The tag every artifact with a version has.
    pub fn latest() -> DistTag {
        DistTag("latest".to_owned())
    }

    /// Whether this is `latest`.
    pub fn is_latest(&self) -> bool {
        self.0 == "latest"
    }
}

impl FromStr for DistTag {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let ok_chars =
            bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
        let invalid = |reason| CoreError::DistTagInvalid { tag: s.chars().take(80).collect(), reason };
        if bytes.is_empty() || bytes.len() > 64 || !ok_chars {
            return Err(invalid("a dist-tag is 1 to 64 lowercase letters, digits, '.', '-' or '_'"));
        }
        if !bytes[0].is_ascii_lowercase() {
            return Err(invalid("a dist-tag starts with a letter"));
        }
        // `v1` or `x` would read as a version or a range where one is expected.
        if s.parse::<VersionRange>().is_ok() {
            return Err(invalid("a dist-tag must not read as a version or a version range"));
        }
        Ok(DistTag(s.to_owned()))
    }
}

/// What a reference selects among an artifact's versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefTarget {
    /// Nothing named: `latest`.
    Latest,
    /// One exact version.
    Version(ArtifactVersion),
    /// A dist-tag.
    Tag(DistTag),
    /// The highest version in a range.
    Range(VersionRange),
}

/// A reference to an artifact as users write it: `name`, `name@1.2.3`, `name@^1.2`, `name:latest`,
/// `users/krishna/user-auth@2.1.0`, or with the public host in front (`gati.dev/users/...`), which
/// is dropped: the host is configuration, never part of a stored name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactRef {
    /// The artifact's repository (`namespace/name`).
    pub repo: RepoName,
    /// Which version.
    pub target: RefTarget,
}

impl ArtifactRef {
    /// Parses a reference; a bare name (no `/`) is taken to be in namespace `relative_to`.
    pub fn parse(text: &str, relative_to: Option<&Namespace>) -> Result<ArtifactRef> {
        let invalid = |reason| CoreError::ArtifactRefInvalid { reference: text.chars().take(120).collect(), reason };
        let trimmed = text.trim();
        let without_host = strip_host(trimmed);
        let (name, target) = split_target(without_host).map_err(invalid)?;
        let full = if name.contains('/') {
            name.to_owned()
        } else {
            let ns = relative_to.ok_or_else(|| invalid("a bare name needs a namespace: write namespace/name"))?;
            format!("{ns}/{name}")
        };
        let repo = artifact_repo(&full).map_err(|_| invalid("not namespace/name with a valid name"))?;
        Ok(ArtifactRef { repo, target })
    }
}

/// Parses `namespace/name` and checks that it is exactly one name below its namespace.
pub(crate) fn artifact_repo(full: &str) -> Result<RepoName> {
    let repo: RepoName = full.parse()?;
    let ns = repo.namespace();
    let rest = repo.as_str().strip_prefix(ns.as_str()).and_then(|r| r.strip_prefix('/'));
    match rest {
        Some(name) if !name.contains('/') => Ok(repo),
        _ => Err(CoreError::NameInvalid {
            name: full.chars().take(80).collect(),
            reason: "an artifact is one name below its namespace (users/<user>/<name>, orgs/<org>/<name> or <namespace>/<name>)",
        }),
    }
}

/// Drops a leading registry host (`gati.dev/`, `localhost:5000/`): a first component with a dot
/// or a colon, or `localhost`, followed by more.
pub(crate) fn strip_host(text: &str) -> &str {
    match text.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => rest,
        _ => text,
    }
}

/// `gati.dev`, `registry.example.com:443`, `localhost`, `127.0.0.1:5000`: labels of letters,
/// digits and `-` joined by single dots, with an optional port. Repository components have no
/// `:` and no capital letters, but may hold dots, so only a dotted name or a port counts.
fn looks_like_host(first: &str) -> bool {
    let (host, port) = match first.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (first, None),
    };
    let labels_ok = !host.is_empty()
        && host.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && port_ok && (host.contains('.') || port.is_some() || host == "localhost")
}

fn split_target(text: &str) -> std::result::Result<(&str, RefTarget), &'static str> {
    if let Some((name, v)) = text.split_once('@') {
        return Ok((name, target_of(v)?));
    }
    // A `:` after the last `/` separates a tag or version, OCI style.
    let last_slash = text.rfind('/').map_or(0, |i| i + 1);
    if let Some(i) = text[last_slash..].find(':') {
        let (name, v) = text.split_at(last_slash + i);
        return Ok((name, target_of(&v[1..])?));
    }
    Ok((text, RefTarget::Latest))
}

fn target_of(v: &str) -> std::result::Result<RefTarget, &'static str> {
    if v.is_empty() {
        return Err("an empty version after '@' or ':'");
    }
    if let Ok(version) = v.parse::<ArtifactVersion>() {
        return Ok(RefTarget::Version(version));
    }
    if let Ok(tag) = v.parse::<DistTag>() {
        return Ok(if tag.is_latest() { RefTarget::Latest } else { RefTarget::Tag(tag) });
    }
    v.parse::<VersionRange>().map(RefTarget::Range).map_err(|_| "not a version, a version range or a dist-tag")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ArtifactVersion {
        s.parse().unwrap()
    }

    #[test]
    fn versions_order_by_semver_precedence() {
        assert!(v("1.0.0-alpha") < v("1.0.0"));
        assert!(v("1.10.0") > v("1.9.0"));
        assert!("01.0.0".parse::<ArtifactVersion>().is_err());
        assert!("1.0".parse::<ArtifactVersion>().is_err());
        assert_eq!(oci_tag_of(&v("1.0.0+build.5")).as_str(), "1.0.0_build.5");
        assert_eq!(oci_tag_of(&v("2.0.0-rc.1")).as_str(), "2.0.0-rc.1");
    }

    #[test]
    fn dist_tags_never_read_as_versions() {
        for ok in ["latest", "next", "beta", "canary-2", "lts.v2"] {
            assert!(ok.parse::<DistTag>().is_ok(), "{ok}");
        }
        for bad in ["", "1.0.0", "v1", "x", "Latest", "a b", "^1", "-next", &"a".repeat(65)] {
            assert!(bad.parse::<DistTag>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references_parse_as_users_write_them() {
        let ns: Namespace = "users/krishna/x".parse::<RepoName>().unwrap().namespace();
        let r = ArtifactRef::parse("gati.dev/users/openai/gpt-4:latest", None).unwrap();
        assert_eq!(r.repo.as_str(), "users/openai/gpt-4");
        assert_eq!(r.target, RefTarget::Latest);
        let r = ArtifactRef::parse("gati.dev/users/ml-researcher/code-embeddings:2.0.0", None).unwrap();
        assert_eq!(r.target, RefTarget::Version(v("2.0.0")));
        let r = ArtifactRef::parse("crypto-utils@^1.0.0", Some(&ns)).unwrap();
        assert_eq!(r.repo.as_str(), "users/krishna/crypto-utils");
        assert!(matches!(r.target, RefTarget::Range(_)));
        let r = ArtifactRef::parse("orgs/acme/db@next", None).unwrap();
        assert_eq!(r.target, RefTarget::Tag("next".parse().unwrap()));
        let r = ArtifactRef::parse("localhost:5000/library/tool", None).unwrap();
        assert_eq!(r.repo.as_str(), "library/tool");
        for bad in ["crypto-utils", "users/a/b/c", "users/a", "a@", "a/b@!!", "../x/y", "a/B"] {
            assert!(ArtifactRef::parse(bad, None).is_err(), "{bad:?}");
        }
    }
}
