//! Gati artifact records in a shard's state: applying [`ArtifactCommand`]s, and the queries the
//! publish, install and listing paths read.
//!
//! Keys (in the state tree of the shard that holds the artifact's namespace): `a`+repo the
//! artifact (its type) · `v`+repo+NUL+version a [`VersionRecord`] (kept after unpublish, so a
//! version number is never reused) · `d`+repo+NUL+tag a dist-tag's version · `n`+dependency+NUL+
//! dependent+NUL+version the range a version of `dependent` requires of `dependency` (the reverse
//! index behind "what depends on this", for dependents in the same shard) · `s`+repo+NUL+day+NUL+
//! version the downloads of a day (day: 8 decimal digits since the epoch; value u64 big-endian) ·
//! `w`+repo+NUL+node the last download batch counted from that node (epoch and sequence, u64
//! big-endian each). Values are JSON unless said otherwise.

use std::collections::BTreeMap;

use gati_core::artifact::{
    ArtifactCommand, ArtifactKind, ArtifactRejection, ArtifactVersion, DistTag, DownloadCount, PublishVersion,
    UNPUBLISH_WINDOW_SECS, VersionRecord, oci_tag_of,
};
use gati_core::{Applied, NodeId, Rejection, RepoName, VersionRange};
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, Result};
use crate::keys;
use crate::keys::key;
use crate::state_machine::{Pending, StateMachine};

const ARTIFACT: u8 = b'a';
const VERSION: u8 = b'v';
const DIST_TAG: u8 = b'd';
const DEPENDENT: u8 = b'n';
const DOWNLOADS: u8 = b's';
const DOWNLOAD_BATCH: u8 = b'w';

fn prefix(kind: u8, parts: &[&str]) -> Vec<u8> {
    let mut k = key(kind, parts);
    k.push(0);
    k
}

fn day_text(day: u32) -> String {
    format!("{day:08}")
}

/// What is kept about an artifact as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// Its type, fixed by the first publish.
    pub kind: ArtifactKind,
    /// When its first version was published, seconds since the epoch.
    pub created_at: u64,
}

/// A version that requires another artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependent {
    /// The depending artifact.
    pub repo: RepoName,
    /// Its version.
    pub version: ArtifactVersion,
    /// The range it requires.
    pub range: VersionRange,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| MetaError::Codec(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt(e.to_string()))
}

fn text<T: std::str::FromStr>(bytes: &[u8]) -> Result<T> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt("stored artifact key or value".into()))
}

fn refused(r: ArtifactRejection) -> Result<Applied> {
    Ok(Applied::Rejected(Rejection::Artifact(r)))
}

impl Pending<'_> {
    pub(crate) fn decide_artifact(&mut self, command: &ArtifactCommand) -> Result<Applied> {
        match command {
            ArtifactCommand::Publish(p) => self.publish(p),
            ArtifactCommand::SetDistTag { repo, tag, version } => {
                if !self.live_version(repo, version)? {
                    return refused(ArtifactRejection::VersionUnknown { version: version.clone() });
                }
                self.put(key(DIST_TAG, &[repo.as_str(), tag.as_str()]), version.to_string());
                Ok(Applied::ArtifactChanged)
            }
            ArtifactCommand::RemoveDistTag { repo, tag } => {
                if tag.is_latest() {
                    return refused(ArtifactRejection::LatestIsPermanent);
                }
                let k = key(DIST_TAG, &[repo.as_str(), tag.as_str()]);
                if !self.contains(&k)? {
                    return refused(ArtifactRejection::DistTagUnknown);
                }
                self.delete(k);
                Ok(Applied::ArtifactChanged)
            }
            ArtifactCommand::Deprecate { repo, versions, message } => {
                let mut records = Vec::with_capacity(versions.len());
                for v in versions {
                    match self.version_record(repo, v)? {
                        Some(r) if !r.unpublished => records.push(r),
                        _ => return refused(ArtifactRejection::VersionUnknown { version: v.clone() }),
                    }
                }
                for mut r in records {
                    r.deprecated.clone_from(message);
                    self.put(key(VERSION, &[repo.as_str(), &r.version.to_string()]), encode(&r)?);
                }
                Ok(Applied::ArtifactChanged)
            }
            ArtifactCommand::Unpublish { repo, version, at } => self.unpublish(repo, version, *at),
            ArtifactCommand::RecordDownloads { repo, node, epoch, seq, counts } => {
                self.record_downloads(repo, *node, *epoch, *seq, counts)
            }
        }
    }

    fn version_record(&self, repo: &RepoName, version: &ArtifactVersion) -> Result<Option<VersionRecord>> {
        self.get(&key(VERSION, &[repo.as_str(), &version.to_string()]))?.map(|v| decode(&v)).transpose()
    }

    fn live_version(&self, repo: &RepoName, version: &ArtifactVersion) -> Result<bool> {
        Ok(self.version_record(repo, version)?.is_some_and(|r| !r.unpublished))
    }

    fn publish(&mut self, p: &PublishVersion) -> Result<Applied> {
        let repo = &p.repo;
        if let Some(existing) = self.version_record(repo, &p.version)? {
            return refused(ArtifactRejection::VersionExists { unpublished: existing.unpublished });
        }
        let artifact_key = key(ARTIFACT, &[repo.as_str()]);
        let artifact: Option<ArtifactRecord> = self.get(&artifact_key)?.map(|v| decode(&v)).transpose()?;
        if let Some(a) = &artifact
            && a.kind != p.kind
        {
            return refused(ArtifactRejection::KindMismatch { existing: a.kind });
        }
        // Every file must have been uploaded into the repository; the document is linked here.
        let mut size = p.document_size;
        for blob in &p.manifest.blobs {
            if *blob == p.document {
                continue;
            }
            match self.get(&keys::blob(repo, blob))? {
                Some(v) => {
                    size +=
                        u64::from_be_bytes(v.as_slice().try_into().map_err(|_| MetaError::Corrupt("blob size".into()))?)
                }
                None => return Ok(Applied::Rejected(Rejection::BlobUnknown { digest: blob.clone() })),
            }
        }
        if !p.manifest.manifests.is_empty() {
            return Ok(Applied::Rejected(Rejection::ManifestUnknown { digest: p.manifest.manifests[0].clone() }));
        }
        // From here on nothing is refused.
        self.put(keys::blob(repo, &p.document), p.document_size.to_be_bytes());
        self.put(keys::holder(&p.document, repo), p.document_size.to_be_bytes());
        let tag = oci_tag_of(&p.version);
        let outcome = self.decide_put_manifest(repo, &p.manifest, Some(&tag), None)?;
        if matches!(outcome, Applied::Rejected(_)) {
            return Err(MetaError::Corrupt("a checked manifest was refused".into()));
        }
        if artifact.is_none() {
            self.put(artifact_key, encode(&ArtifactRecord { kind: p.kind, created_at: p.published_at })?);
        }
        let record = VersionRecord {
            version: p.version.clone(),
            kind: p.kind,
            manifest: p.manifest.digest.clone(),
            document: p.document.clone(),
            dependencies: p.dependencies.clone(),
            description: p.description.clone(),
            publisher: p.publisher.clone(),
            published_at: p.published_at,
            size,
            deprecated: None,
            unpublished: false,
        };
        let version_text = p.version.to_string();
        self.put(key(VERSION, &[repo.as_str(), &version_text]), encode(&record)?);
        for (dep, range) in &p.dependencies {
            self.put(key(DEPENDENT, &[dep.as_str(), repo.as_str(), &version_text]), range.to_string());
        }
        // `latest` follows the highest release unless the publish names another tag; an
        // artifact's first version becomes `latest` whatever its tag, so every artifact with a
        // version has one.
        let latest_key = key(DIST_TAG, &[repo.as_str(), "latest"]);
        let current: Option<ArtifactVersion> = self.get(&latest_key)?.map(|v| text(&v)).transpose()?;
        let latest_moves = match (&p.dist_tag, &current) {
            (_, None) => true,
            (Some(tag), Some(_)) => tag.is_latest(),
            (None, Some(c)) => !p.version.is_prerelease() && (c.is_prerelease() || p.version > *c),
        };
        if let Some(tag) = p.dist_tag.as_ref().filter(|t| !t.is_latest()) {
            self.put(key(DIST_TAG, &[repo.as_str(), tag.as_str()]), version_text.clone());
        }
        if latest_moves {
            self.put(latest_key, version_text);
        }
        Ok(Applied::ArtifactChanged)
    }

    fn unpublish(&mut self, repo: &RepoName, version: &ArtifactVersion, at: u64) -> Result<Applied> {
        let Some(mut record) = self.version_record(repo, version)?.filter(|r| !r.unpublished) else {
            return refused(ArtifactRejection::VersionUnknown { version: version.clone() });
        };
        if at.saturating_sub(record.published_at) > UNPUBLISH_WINDOW_SECS {
            return refused(ArtifactRejection::UnpublishWindowClosed { published_at: record.published_at });
        }
        let dependents = self.dependents_of(repo, version, 5)?;
        if !dependents.is_empty() {
            return refused(ArtifactRejection::HasDependents { dependents });
        }
        let version_text = version.to_string();
        record.unpublished = true;
        self.put(key(VERSION, &[repo.as_str(), &version_text]), encode(&record)?);
        if self.contains(&keys::manifest(repo, &record.manifest))? {
            self.decide_delete_manifest(repo, &record.manifest)?;
        }
        for (dep, _) in &record.dependencies {
            self.delete(key(DEPENDENT, &[dep.as_str(), repo.as_str(), &version_text]));
        }
        let tag_prefix = prefix(DIST_TAG, &[repo.as_str()]);
        let mut latest_removed = false;
        for (k, v) in self.scan_prefix(&tag_prefix)? {
            if v == version_text.as_bytes() {
                latest_removed |= &k[tag_prefix.len()..] == b"latest";
                self.delete(k);
            }
        }
        if latest_removed {
            // `latest` falls back to the highest remaining release, else the highest remaining
            // pre-release; with no version left the artifact has no `latest`.
            let live: Vec<ArtifactVersion> = self
                .scan_prefix(&prefix(VERSION, &[repo.as_str()]))?
                .into_iter()
                .map(|(_, v)| decode::<VersionRecord>(&v))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|r| !r.unpublished)
                .map(|r| r.version)
                .collect();
            let best = live.iter().filter(|v| !v.is_prerelease()).max().or_else(|| live.iter().max());
            if let Some(best) = best {
                self.put(key(DIST_TAG, &[repo.as_str(), "latest"]), best.to_string());
            }
        }
        Ok(Applied::ArtifactChanged)
    }

    /// Live versions (in this shard) whose range admits `version`, as `repo@version`, at most
    /// `limit`.
    fn dependents_of(&self, repo: &RepoName, version: &ArtifactVersion, limit: usize) -> Result<Vec<String>> {
        let p = prefix(DEPENDENT, &[repo.as_str()]);
        let mut out = Vec::new();
        for (k, v) in self.scan_prefix(&p)? {
            let rest = &k[p.len()..];
            let Some(sep) = rest.iter().position(|b| *b == 0) else { continue };
            let dependent: RepoName = text(&rest[..sep])?;
            let dependent_version: ArtifactVersion = text(&rest[sep + 1..])?;
            let range: VersionRange = text(&v)?;
            if range.matches(version.semver()) && self.live_version(&dependent, &dependent_version)? {
                out.push(format!("{dependent}@{dependent_version}"));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn record_downloads(
        &mut self,
        repo: &RepoName,
        node: NodeId,
        epoch: u64,
        seq: u64,
        counts: &[DownloadCount],
    ) -> Result<Applied> {
        let marker_key = key(DOWNLOAD_BATCH, &[repo.as_str(), &node.to_string()]);
        if let Some(m) = self.get(&marker_key)? {
            let seen_epoch =
                u64::from_be_bytes(m[..8].try_into().map_err(|_| MetaError::Corrupt("batch marker".into()))?);
            let seen_seq =
                u64::from_be_bytes(m[8..16].try_into().map_err(|_| MetaError::Corrupt("batch marker".into()))?);
            if (epoch, seq) <= (seen_epoch, seen_seq) {
                return Ok(Applied::ArtifactChanged);
            }
        }
        let mut marker = epoch.to_be_bytes().to_vec();
        marker.extend_from_slice(&seq.to_be_bytes());
        self.put(marker_key, marker);
        for c in counts {
            let k = key(DOWNLOADS, &[repo.as_str(), &day_text(c.day), &c.version.to_string()]);
            let old = match self.get(&k)? {
                Some(v) => u64::from_be_bytes(v.as_slice().try_into().map_err(|_| MetaError::Corrupt("count".into()))?),
                None => 0,
            };
            self.put(k, (old + c.count).to_be_bytes());
        }
        Ok(Applied::ArtifactChanged)
    }
}

impl Pending<'_> {
    /// Why a plain OCI write may not touch what a published version owns, if it may not: the
    /// version's tag (a version is immutable, and its number is never reused), its manifest (only
    /// unpublish withdraws it) and its files and document (a live version must stay complete).
    /// `None` lets the write through; repositories that hold no artifact are never affected.
    pub(crate) fn artifact_guard(&self, repo: &RepoName, write: OciWrite<'_>) -> Result<Option<Applied>> {
        if !self.contains(&key(ARTIFACT, &[repo.as_str()]))? {
            return Ok(None);
        }
        let versions = self.scan_prefix(&prefix(VERSION, &[repo.as_str()]))?;
        for (_, value) in versions {
            let record: VersionRecord = decode(&value)?;
            let owned = match write {
                OciWrite::Tag(tag) => oci_tag_of(&record.version) == *tag,
                OciWrite::Manifest(digest) => !record.unpublished && record.manifest == *digest,
                OciWrite::Blob(digest) => {
                    !record.unpublished
                        && (record.document == *digest
                            || self.manifest(repo, &record.manifest)?.is_some_and(|m| m.blobs.contains(digest)))
                }
            };
            if owned {
                return refused(ArtifactRejection::VersionExists { unpublished: record.unpublished }).map(Some);
            }
        }
        Ok(None)
    }
}

/// A plain OCI write that [`Pending::artifact_guard`] checks.
#[derive(Clone, Copy)]
pub(crate) enum OciWrite<'a> {
    /// Pointing or deleting a tag.
    Tag(&'a gati_core::Tag),
    /// Deleting a manifest.
    Manifest(&'a gati_core::Digest),
    /// Unlinking a blob.
    Blob(&'a gati_core::Digest),
}

impl StateMachine {
    /// Returns an artifact's record, if any version of it was ever published.
    pub fn artifact(&self, repo: &RepoName) -> Result<Option<ArtifactRecord>> {
        self.tree().get(key(ARTIFACT, &[repo.as_str()]))?.map(|v| decode(&v)).transpose()
    }

    /// Returns up to `limit` artifacts after `after`, in name order, with their records, and
    /// whether more follow.
    pub fn artifacts(&self, after: Option<&RepoName>, limit: usize) -> Result<(Vec<(RepoName, ArtifactRecord)>, bool)> {
        let start = match after {
            Some(a) => {
                let mut k = key(ARTIFACT, &[a.as_str()]);
                k.push(0);
                k
            }
            None => vec![ARTIFACT],
        };
        let mut out = Vec::new();
        for entry in self.tree().range(start..vec![ARTIFACT + 1]) {
            let (k, v) = entry?;
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push((text(&k[1..])?, decode(&v)?));
        }
        Ok((out, false))
    }

    /// Returns every version record of an artifact (unpublished ones included), highest first.
    pub fn versions(&self, repo: &RepoName) -> Result<Vec<VersionRecord>> {
        let mut out = Vec::new();
        for entry in self.tree().scan_prefix(prefix(VERSION, &[repo.as_str()])) {
            let (_, v) = entry?;
            out.push(decode::<VersionRecord>(&v)?);
        }
        out.sort_by(|a, b| b.version.cmp(&a.version));
        Ok(out)
    }

    /// Returns one version's record.
    pub fn version(&self, repo: &RepoName, version: &ArtifactVersion) -> Result<Option<VersionRecord>> {
        self.tree().get(key(VERSION, &[repo.as_str(), &version.to_string()]))?.map(|v| decode(&v)).transpose()
    }

    /// Returns an artifact's dist-tags.
    pub fn dist_tags(&self, repo: &RepoName) -> Result<BTreeMap<DistTag, ArtifactVersion>> {
        let p = prefix(DIST_TAG, &[repo.as_str()]);
        let mut out = BTreeMap::new();
        for entry in self.tree().scan_prefix(&p) {
            let (k, v) = entry?;
            out.insert(text(&k[p.len()..])?, text(&v)?);
        }
        Ok(out)
    }

    /// Returns the live versions held by this shard that depend on `repo`, with their ranges.
    pub fn dependents(&self, repo: &RepoName) -> Result<Vec<Dependent>> {
        let p = prefix(DEPENDENT, &[repo.as_str()]);
        let mut out = Vec::new();
        for entry in self.tree().scan_prefix(&p) {
            let (k, v) = entry?;
            let rest = &k[p.len()..];
            let Some(sep) = rest.iter().position(|b| *b == 0) else { continue };
            let dependent = Dependent { repo: text(&rest[..sep])?, version: text(&rest[sep + 1..])?, range: text(&v)? };
            if self.version(&dependent.repo, &dependent.version)?.is_some_and(|r| !r.unpublished) {
                out.push(dependent);
            }
        }
        Ok(out)
    }

    /// Returns the download counts of an artifact for days `from..=to`, as (day, version, count).
    pub fn downloads(&self, repo: &RepoName, from: u32, to: u32) -> Result<Vec<(u32, ArtifactVersion, u64)>> {
        let p = prefix(DOWNLOADS, &[repo.as_str()]);
        let mut start = p.clone();
        start.extend_from_slice(day_text(from).as_bytes());
        let mut end = p.clone();
        end.extend_from_slice(day_text(to.saturating_add(1)).as_bytes());
        let mut out = Vec::new();
        for entry in self.tree().range(start..end) {
            let (k, v) = entry?;
            let rest = k.get(p.len()..).unwrap_or_default();
            let (Some(day), Some(version)) = (rest.get(..8), rest.get(9..)) else {
                return Err(MetaError::Corrupt("download key".into()));
            };
            let (day, version): (u32, ArtifactVersion) = (text(day)?, text(version)?);
            let count = u64::from_be_bytes(v.as_ref().try_into().map_err(|_| MetaError::Corrupt("count".into()))?);
            out.push((day, version, count));
        }
        Ok(out)
    }
}

/// Whether `kind` of an existing artifact may be required where `kinds` are accepted.
pub fn kind_accepted(kind: ArtifactKind, kinds: &[ArtifactKind]) -> bool {
    kinds.is_empty() || kinds.contains(&kind)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gati_core::artifact::{ArtifactCommand as A, ArtifactRejection as R};
    use gati_core::media_type::ManifestKind;
    use gati_core::{Command, Digest, GroupId, ManifestRecord, ShardId};

    use super::*;
    use crate::MetaStore;

    fn dg(n: u32) -> Digest {
        format!("sha256:{n:064x}").parse().unwrap()
    }

    fn v(s: &str) -> ArtifactVersion {
        s.parse().unwrap()
    }

    fn repo(s: &str) -> RepoName {
        s.parse().unwrap()
    }

    struct Shard {
        _dir: tempfile::TempDir,
        sm: StateMachine,
        next: u32,
    }

    impl Shard {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let sm = MetaStore::open(dir.path()).unwrap().state_machine(GroupId::Shard(ShardId(0))).unwrap();
            Shard { _dir: dir, sm, next: 100 }
        }

        fn run(&self, c: Command) -> Applied {
            self.sm.apply(b"pos", &[c]).unwrap().pop().unwrap()
        }

        fn publish_with(
            &mut self,
            r: &str,
            version: &str,
            deps: &[(&str, &str)],
            tag: Option<&str>,
            at: u64,
        ) -> Applied {
            self.next += 2;
            let (layer, manifest, document) = (dg(self.next), dg(self.next + 1), dg(self.next + 100_000));
            self.run(Command::LinkBlob { repo: repo(r), digest: layer.clone(), size: 10 });
            let record = ManifestRecord {
                digest: manifest,
                kind: ManifestKind::OciManifest,
                media_type: gati_core::media_type::OCI_MANIFEST.parse().unwrap(),
                size: 300,
                blobs: vec![document.clone(), layer],
                manifests: vec![],
                subject: None,
                artifact_type: Some(ArtifactKind::ModuleWasm.artifact_type().parse().unwrap()),
                annotations: BTreeMap::new(),
            };
            self.run(Command::Artifact(A::Publish(Box::new(PublishVersion {
                repo: repo(r),
                version: v(version),
                kind: ArtifactKind::ModuleWasm,
                document,
                document_size: 5,
                manifest: record,
                dependencies: deps.iter().map(|(d, range)| (repo(d), range.parse().unwrap())).collect(),
                description: "d".into(),
                publisher: "alice".into(),
                published_at: at,
                dist_tag: tag.map(|t| t.parse().unwrap()),
            }))))
        }

        fn publish(&mut self, r: &str, version: &str) -> Applied {
            self.publish_with(r, version, &[], None, 1000)
        }

        fn latest(&self, r: &str) -> Option<String> {
            self.sm.dist_tags(&repo(r)).unwrap().get(&DistTag::latest()).map(ToString::to_string)
        }
    }

    fn rejected(r: R) -> Applied {
        Applied::Rejected(Rejection::Artifact(r))
    }

    #[test]
    fn a_version_is_published_once_and_latest_follows_the_highest_release() {
        let mut s = Shard::new();
        assert_eq!(s.publish("users/a/m", "1.0.0"), Applied::ArtifactChanged);
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.0.0"));
        let record = s.sm.version(&repo("users/a/m"), &v("1.0.0")).unwrap().unwrap();
        assert_eq!(record.size, 15, "the document and the file");
        let tag = s.sm.tag(&repo("users/a/m"), &"1.0.0".parse().unwrap()).unwrap();
        assert_eq!(tag, Some(record.manifest.clone()), "OCI clients pull the version by tag");

        assert_eq!(s.publish("users/a/m", "1.0.0"), rejected(R::VersionExists { unpublished: false }));
        s.publish("users/a/m", "2.0.0-beta.1");
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.0.0"), "a pre-release does not move latest");
        s.publish("users/a/m", "0.9.0");
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.0.0"), "an older release does not move latest");
        s.publish_with("users/a/m", "3.0.0-rc.1", &[], Some("next"), 1000);
        assert_eq!(s.sm.dist_tags(&repo("users/a/m")).unwrap().len(), 2);
        s.publish("users/a/m", "1.1.0");
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.1.0"));
        let versions: Vec<String> =
            s.sm.versions(&repo("users/a/m")).unwrap().iter().map(|r| r.version.to_string()).collect();
        assert_eq!(versions, ["3.0.0-rc.1", "2.0.0-beta.1", "1.1.0", "1.0.0", "0.9.0"]);
    }

    #[test]
    fn a_files_upload_must_precede_the_publish() {
        let mut s = Shard::new();
        s.publish("users/a/m", "1.0.0");
        let mut record = s
            .sm
            .manifest(&repo("users/a/m"), &s.sm.version(&repo("users/a/m"), &v("1.0.0")).unwrap().unwrap().manifest)
            .unwrap()
            .unwrap();
        record.digest = dg(9);
        record.blobs.push(dg(8));
        let outcome = s.run(Command::Artifact(A::Publish(Box::new(PublishVersion {
            repo: repo("users/a/m"),
            version: v("1.0.1"),
            kind: ArtifactKind::ModuleWasm,
            document: dg(7),
            document_size: 1,
            manifest: record,
            dependencies: vec![],
            description: String::new(),
            publisher: "alice".into(),
            published_at: 1,
            dist_tag: None,
        }))));
        assert_eq!(outcome, Applied::Rejected(Rejection::BlobUnknown { digest: dg(8) }));
        assert!(s.sm.version(&repo("users/a/m"), &v("1.0.1")).unwrap().is_none(), "nothing is stored");
        assert_eq!(s.sm.blob_link(&repo("users/a/m"), &dg(7)).unwrap(), None);
    }

    #[test]
    fn dist_tags_move_and_latest_stays() {
        let mut s = Shard::new();
        s.publish("users/a/m", "1.0.0");
        s.publish("users/a/m", "1.1.0");
        let set = |tag: &str, version: &str| A::SetDistTag {
            repo: repo("users/a/m"),
            tag: tag.parse().unwrap(),
            version: v(version),
        };
        assert_eq!(s.run(Command::Artifact(set("latest", "1.0.0"))), Applied::ArtifactChanged);
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.0.0"));
        assert_eq!(s.run(Command::Artifact(set("beta", "9.0.0"))), rejected(R::VersionUnknown { version: v("9.0.0") }));
        let remove =
            |tag: &str| Command::Artifact(A::RemoveDistTag { repo: repo("users/a/m"), tag: tag.parse().unwrap() });
        assert_eq!(s.run(remove("latest")), rejected(R::LatestIsPermanent));
        assert_eq!(s.run(remove("beta")), rejected(R::DistTagUnknown));
    }

    #[test]
    fn unpublish_within_the_window_when_nothing_depends_keeps_the_number_taken() {
        let mut s = Shard::new();
        s.publish("users/a/lib", "1.0.0");
        s.publish("users/a/lib", "1.1.0");
        s.publish_with("users/a/app", "1.0.0", &[("users/a/lib", "~1.0.0")], None, 1000);
        let unpublish = |r: &str, version: &str, at: u64| {
            Command::Artifact(A::Unpublish { repo: repo(r), version: v(version), at })
        };
        assert_eq!(
            s.run(unpublish("users/a/lib", "1.0.0", 2000)),
            rejected(R::HasDependents { dependents: vec!["users/a/app@1.0.0".into()] })
        );
        assert_eq!(
            s.run(unpublish("users/a/lib", "1.1.0", 1000 + UNPUBLISH_WINDOW_SECS + 1)),
            rejected(R::UnpublishWindowClosed { published_at: 1000 })
        );
        assert_eq!(s.sm.dependents(&repo("users/a/lib")).unwrap().len(), 1);
        assert_eq!(s.run(unpublish("users/a/app", "1.0.0", 2000)), Applied::ArtifactChanged);
        assert!(s.sm.dependents(&repo("users/a/lib")).unwrap().is_empty());
        assert_eq!(s.run(unpublish("users/a/lib", "1.1.0", 2000)), Applied::ArtifactChanged);
        assert_eq!(s.latest("users/a/lib").as_deref(), Some("1.0.0"), "latest falls back");
        assert_eq!(s.sm.tag(&repo("users/a/lib"), &"1.1.0".parse().unwrap()).unwrap(), None, "OCI tag gone");
        assert_eq!(s.publish("users/a/lib", "1.1.0"), rejected(R::VersionExists { unpublished: true }));
        assert_eq!(s.run(unpublish("users/a/lib", "1.1.0", 2000)), rejected(R::VersionUnknown { version: v("1.1.0") }));
    }

    #[test]
    fn deprecation_and_type_changes() {
        let mut s = Shard::new();
        s.publish("users/a/m", "1.0.0");
        let deprecate = |message: Option<&str>, versions: &[&str]| {
            Command::Artifact(A::Deprecate {
                repo: repo("users/a/m"),
                versions: versions.iter().map(|x| v(x)).collect(),
                message: message.map(str::to_owned),
            })
        };
        assert_eq!(
            s.run(deprecate(Some("use 2"), &["1.0.0", "5.0.0"])),
            rejected(R::VersionUnknown { version: v("5.0.0") })
        );
        assert_eq!(s.sm.version(&repo("users/a/m"), &v("1.0.0")).unwrap().unwrap().deprecated, None);
        assert_eq!(s.run(deprecate(Some("use 2"), &["1.0.0"])), Applied::ArtifactChanged);
        assert_eq!(
            s.sm.version(&repo("users/a/m"), &v("1.0.0")).unwrap().unwrap().deprecated.as_deref(),
            Some("use 2")
        );
        s.run(deprecate(None, &["1.0.0"]));
        assert_eq!(s.sm.version(&repo("users/a/m"), &v("1.0.0")).unwrap().unwrap().deprecated, None);
    }

    #[test]
    fn plain_oci_writes_cannot_change_what_a_version_owns() {
        let mut s = Shard::new();
        s.publish("users/a/m", "1.0.0");
        s.publish("users/a/m", "1.1.0");
        let r = repo("users/a/m");
        let v1 = s.sm.version(&r, &v("1.0.0")).unwrap().unwrap();
        let manifest = s.sm.manifest(&r, &v1.manifest).unwrap().unwrap();
        let layer = manifest.blobs.iter().find(|b| **b != v1.document).unwrap().clone();
        let exists = rejected(R::VersionExists { unpublished: false });
        let mut other = manifest.clone();
        other.digest = dg(77);
        let put = |tag: &str| Command::PutManifest {
            repo: r.clone(),
            record: Box::new(other.clone()),
            tag: Some(tag.parse().unwrap()),
            condition: None,
        };
        assert_eq!(s.run(put("1.0.0")), exists, "a version's tag never moves");
        assert_eq!(s.run(Command::DeleteTag { repo: r.clone(), tag: "1.0.0".parse().unwrap() }), exists);
        assert_eq!(s.run(Command::DeleteManifest { repo: r.clone(), digest: v1.manifest.clone() }), exists);
        assert_eq!(s.run(Command::UnlinkBlob { repo: r.clone(), digest: layer.clone() }), exists);
        assert_eq!(s.run(Command::UnlinkBlob { repo: r.clone(), digest: v1.document.clone() }), exists);
        assert_eq!(s.sm.tag(&r, &"1.0.0".parse().unwrap()).unwrap(), Some(v1.manifest.clone()));
        assert!(matches!(s.run(put("dev")), Applied::ManifestPut { .. }), "other tags are plain OCI tags");

        s.run(Command::Artifact(A::Unpublish { repo: r.clone(), version: v("1.1.0"), at: 1000 }));
        assert_eq!(s.run(put("1.1.0")), rejected(R::VersionExists { unpublished: true }), "nor is the number reused");
        // Repositories without artifacts are untouched by the rule.
        s.run(Command::LinkBlob { repo: repo("library/x"), digest: dg(5), size: 1 });
        assert_eq!(s.run(Command::UnlinkBlob { repo: repo("library/x"), digest: dg(5) }), Applied::BlobUnlinked);
    }

    #[test]
    fn a_first_publish_under_another_tag_still_gets_latest() {
        let mut s = Shard::new();
        s.publish_with("users/a/m", "1.0.0-beta.1", &[], Some("beta"), 1000);
        let tags = s.sm.dist_tags(&repo("users/a/m")).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.0.0-beta.1"));
        s.publish_with("users/a/m", "1.0.0", &[], Some("beta"), 1000);
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.0.0-beta.1"), "a named tag leaves latest alone");
        s.publish_with("users/a/m", "1.0.1", &[], Some("latest"), 1000);
        assert_eq!(s.latest("users/a/m").as_deref(), Some("1.0.1"));
    }

    #[test]
    fn download_batches_count_once() {
        let mut s = Shard::new();
        s.publish("users/a/m", "1.0.0");
        let batch = |epoch: u64, seq: u64, n: u64| {
            Command::Artifact(A::RecordDownloads {
                repo: repo("users/a/m"),
                node: NodeId(1),
                epoch,
                seq,
                counts: vec![DownloadCount { version: v("1.0.0"), day: 20_000, count: n }],
            })
        };
        s.run(batch(5, 1, 3));
        s.run(batch(5, 1, 3));
        s.run(batch(5, 2, 4));
        s.run(batch(4, 9, 100));
        assert_eq!(s.sm.downloads(&repo("users/a/m"), 19_999, 20_000).unwrap(), vec![(20_000, v("1.0.0"), 7)]);
        s.run(batch(6, 1, 1));
        assert_eq!(s.sm.downloads(&repo("users/a/m"), 20_000, 20_000).unwrap()[0].2, 8);
        assert!(s.sm.downloads(&repo("users/a/m"), 20_001, 20_005).unwrap().is_empty());
    }
}
