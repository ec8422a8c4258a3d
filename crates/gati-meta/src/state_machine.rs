//! The deterministic state machine: `apply(Command)` over one sled tree, queries, snapshots.
//!
//! Owns every metadata record: repositories, blob links, manifests, tags and referrers in each
//! shard's group; users, organisations, policies, keys and sessions in the `meta` group
//! (`identity.rs`). Nothing else
//! writes the state tree (architecture invariant 4). `apply` is called by one applier at a time (the
//! Raft state machine task); it reads the current state, decides the outcome, and commits the whole
//! write set together with the caller's opaque consensus position as one atomic sled batch, so after
//! a crash the stored state and the stored position always agree and replay resumes exactly after
//! the last applied entry. Outcomes depend only on the stored state and the command: replicas that
//! apply the same log hold byte-identical trees.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use gati_core::command::Rejection;
use gati_core::{Applied, Command, Digest, GroupId, ManifestRecord, RepoName, Tag, TagCondition};

use crate::artifact::OciWrite;
use crate::error::{MetaError, Result};
use crate::keys;

const SNAPSHOT_MAGIC: &[u8; 8] = b"GATISM01";

/// Handle to the state machine; cheap to clone, reads may run concurrently with `apply`.
#[derive(Clone)]
pub struct StateMachine {
    tree: sled::Tree,
    /// Whether this group applies identity writes (`meta`) or repository writes (a shard).
    identity: bool,
    /// Serialises appliers: the read-decide-commit sequence of `apply` is only atomic with respect to
    /// other appliers because there is never more than one at a time.
    apply_lock: Arc<Mutex<()>>,
}

fn codec<E: std::fmt::Display>(e: E) -> MetaError {
    MetaError::Codec(e.to_string())
}

/// The writes of one log entry not yet committed, layered over the tree: reads during `apply` see
/// the effects of earlier commands of the same entry, and the whole entry commits as one batch.
pub(crate) struct Pending<'a> {
    tree: &'a sled::Tree,
    /// Key to new value; `None` deletes.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Pending<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Pending { tree, writes: BTreeMap::new() }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.writes.get(key) {
            Some(value) => Ok(value.clone()),
            None => Ok(self.tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Every live key under `prefix` with its value, pending writes applied, in key order.
    pub(crate) fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged = BTreeMap::new();
        for entry in self.tree.scan_prefix(prefix) {
            let (k, v) = entry?;
            merged.insert(k.to_vec(), Some(v.to_vec()));
        }
        for (k, v) in self.writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
            merged.insert(k.clone(), v.clone());
        }
        Ok(merged.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// The smallest live key under `prefix`, pending writes applied; reads the tree lazily, so
    /// it costs a few keys however many live under the prefix.
    pub(crate) fn first_under(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut from_tree = None;
        for entry in self.tree.scan_prefix(prefix) {
            let (k, _) = entry?;
            if !matches!(self.writes.get(k.as_ref()), Some(None)) {
                from_tree = Some(k.to_vec());
                break;
            }
        }
        let from_writes = self
            .writes
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .find(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone());
        Ok(match (from_tree, from_writes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: impl Into<Vec<u8>>) {
        self.writes.insert(key, Some(value.into()));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        self.get(&keys::tag(repo, tag))?.map(|v| decode_text(&v)).transpose()
    }

    pub(crate) fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        self.get(&keys::manifest(repo, digest))?.map(|v| decode_record(&v)).transpose()
    }

    fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (k, v) in self.writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch
    }

    /// Decides a command's outcome from the state so far and records its writes. A rejection
    /// records nothing: every check precedes every write.
    fn decide(&mut self, command: &Command, identity_group: bool) -> Result<Applied> {
        match command {
            Command::Identity(identity) if identity_group => self.decide_identity(identity),
            Command::Identity(_) => Ok(Applied::Rejected(Rejection::WrongGroup)),
            _ if identity_group => Ok(Applied::Rejected(Rejection::WrongGroup)),
            Command::Artifact(artifact) => self.decide_artifact(artifact),
            Command::LinkBlob { repo, digest, size } => {
                let key = keys::blob(repo, digest);
                let created = !self.contains(&key)?;
                self.put(key, size.to_be_bytes());
                self.put(keys::holder(digest, repo), size.to_be_bytes());
                self.put(keys::repo(repo), []);
                Ok(Applied::BlobLinked { created })
            }
            Command::UnlinkBlob { repo, digest } => {
                if let Some(refused) = self.artifact_guard(repo, OciWrite::Blob(digest))? {
                    return Ok(refused);
                }
                let key = keys::blob(repo, digest);
                if !self.contains(&key)? {
                    return Ok(Applied::Rejected(Rejection::BlobUnknown { digest: digest.clone() }));
                }
                self.delete(key);
                self.delete(keys::holder(digest, repo));
                Ok(Applied::BlobUnlinked)
            }
            Command::PutManifest { repo, record, tag, condition } => {
                if let Some(tag) = tag
                    && let Some(refused) = self.artifact_guard(repo, OciWrite::Tag(tag))?
                {
                    return Ok(refused);
                }
                self.decide_put_manifest(repo, record, tag.as_ref(), condition.as_ref())
            }
            Command::DeleteManifest { repo, digest } => {
                if let Some(refused) = self.artifact_guard(repo, OciWrite::Manifest(digest))? {
                    return Ok(refused);
                }
                self.decide_delete_manifest(repo, digest)
            }
            Command::DeleteTag { repo, tag } => {
                if let Some(refused) = self.artifact_guard(repo, OciWrite::Tag(tag))? {
                    return Ok(refused);
                }
                let key = keys::tag(repo, tag);
                if !self.contains(&key)? {
                    return Ok(Applied::Rejected(Rejection::TagUnknown { tag: tag.clone() }));
                }
                self.delete(key);
                Ok(Applied::TagDeleted)
            }
        }
    }

    pub(crate) fn decide_put_manifest(
        &mut self,
        repo: &RepoName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        condition: Option<&TagCondition>,
    ) -> Result<Applied> {
        for blob in &record.blobs {
            if !self.contains(&keys::blob(repo, blob))? {
                return Ok(Applied::Rejected(Rejection::BlobUnknown { digest: blob.clone() }));
            }
        }
        for child in &record.manifests {
            // Content addressing makes a cycle impossible: a child must exist before its index.
            if !self.contains(&keys::manifest(repo, child))? {
                return Ok(Applied::Rejected(Rejection::ManifestUnknown { digest: child.clone() }));
            }
        }
        let previous = match tag {
            Some(tag) => self.tag(repo, tag)?,
            None => None,
        };
        if let Some(condition) = condition
            && !condition.holds(previous.as_ref())
        {
            return Ok(Applied::Rejected(Rejection::TagConditionFailed { current: previous }));
        }
        let value = serde_json::to_vec(record).map_err(codec)?;
        self.put(keys::manifest(repo, &record.digest), value);
        self.put(keys::repo(repo), []);
        if let Some(tag) = tag {
            self.put(keys::tag(repo, tag), record.digest.to_string());
        }
        if let Some(subject) = &record.subject {
            self.put(keys::referrer(repo, subject, &record.digest), []);
        }
        Ok(Applied::ManifestPut { previous })
    }

    pub(crate) fn decide_delete_manifest(&mut self, repo: &RepoName, digest: &Digest) -> Result<Applied> {
        let Some(record) = self.manifest(repo, digest)? else {
            return Ok(Applied::Rejected(Rejection::ManifestUnknown { digest: digest.clone() }));
        };
        self.delete(keys::manifest(repo, digest));
        if let Some(subject) = &record.subject {
            self.delete(keys::referrer(repo, subject, digest));
        }
        let target = digest.to_string();
        let prefix = keys::tag_prefix(repo);
        let mut removed_tags = Vec::new();
        for (key, value) in self.scan_prefix(&prefix)? {
            if value == target.as_bytes() {
                removed_tags.push(decode_text(&key[prefix.len()..])?);
                self.delete(key);
            }
        }
        Ok(Applied::ManifestDeleted { removed_tags })
    }
}

impl StateMachine {
    /// Opens the state machine of consensus group `group`: the `<group>/state` tree of a sled
    /// database. Each group's records live apart, so a snapshot of one group holds only its own.
    pub fn open(db: &sled::Db, group: GroupId) -> Result<Self> {
        Ok(StateMachine {
            tree: db.open_tree(format!("{group}/state"))?,
            identity: group == GroupId::Meta,
            apply_lock: Arc::new(Mutex::new(())),
        })
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// Applies one committed log entry: its commands in order, each seeing the effects of those
    /// before it, and the new consensus position `raft_state`, all in one atomic write. Returns one
    /// outcome per command. Entries without commands (blank, membership) only advance the position.
    pub fn apply(&self, raft_state: &[u8], commands: &[Command]) -> Result<Vec<Applied>> {
        let _applier = self.apply_lock.lock().map_err(|_| MetaError::Corrupt("a previous apply panicked".into()))?;
        let mut pending = Pending::new(&self.tree);
        let mut outcomes = Vec::with_capacity(commands.len());
        for command in commands {
            let before = pending.writes.len();
            let outcome = pending.decide(command, self.identity)?;
            debug_assert!(
                !matches!(outcome, Applied::Rejected(_)) || pending.writes.len() == before,
                "a rejected command must not write"
            );
            outcomes.push(outcome);
        }
        pending.put(keys::RAFT_STATE.to_vec(), raft_state);
        self.tree.apply_batch(pending.into_batch())?;
        Ok(outcomes)
    }

    /// Returns the consensus position stored by the last `apply` or snapshot import.
    pub fn raft_state(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(keys::RAFT_STATE)?.map(|v| v.to_vec()))
    }

    /// Returns the digest a tag points at.
    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<Digest>> {
        self.tree.get(keys::tag(repo, tag))?.map(|v| decode_text(&v)).transpose()
    }

    /// Returns a manifest's record, if the repository holds it.
    pub fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<ManifestRecord>> {
        self.tree.get(keys::manifest(repo, digest))?.map(|v| decode_record(&v)).transpose()
    }

    /// Returns the size of a blob if it is linked into the repository.
    pub fn blob_link(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        self.tree.get(keys::blob(repo, digest))?.map(|v| decode_size(&v)).transpose()
    }

    /// Returns up to `limit` repositories that link the blob, in name order, with its size.
    pub fn blob_holders(&self, digest: &Digest, limit: usize) -> Result<Vec<(RepoName, u64)>> {
        let prefix = keys::holder_prefix(digest);
        let mut out = Vec::new();
        for entry in self.tree.scan_prefix(&prefix).take(limit) {
            let (key, value) = entry?;
            out.push((decode_text(&key[prefix.len()..])?, decode_size(&value)?));
        }
        Ok(out)
    }

    /// Returns whether the repository has ever received content.
    pub fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        Ok(self.tree.contains_key(keys::repo(repo))?)
    }

    /// Returns up to `limit` tags of a repository in lexical order, starting after `after`, and
    /// whether more follow.
    pub fn tags(&self, repo: &RepoName, after: Option<&str>, limit: usize) -> Result<(Vec<Tag>, bool)> {
        self.page(&keys::tag_prefix(repo), after.map(str::as_bytes), limit, |tag| decode_text(tag).map(Some))
    }

    /// Returns up to `limit` repository names in lexical order, starting after `after`, and whether
    /// more follow.
    pub fn catalog(&self, after: Option<&str>, limit: usize) -> Result<(Vec<RepoName>, bool)> {
        self.page(&[keys::REPO], after.map(str::as_bytes), limit, |name| decode_text(name).map(Some))
    }

    /// Returns the records of every manifest in the repository whose `subject` is `subject`, in
    /// digest order.
    ///
    /// Pages like [`StateMachine::tags`]: up to `limit` records after the referrer digest `after`,
    /// only those of `artifact_type` when given (filtered while scanning, so pages stay full), and
    /// whether more follow.
    pub fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<(Vec<ManifestRecord>, bool)> {
        let after = after.map(Digest::to_string);
        self.page(&keys::referrer_prefix(repo, subject), after.as_deref().map(str::as_bytes), limit, |referrer| {
            let Some(record) = self.manifest(repo, &decode_text(referrer)?)? else { return Ok(None) };
            let wanted = artifact_type.is_none_or(|w| record.artifact_type.as_ref().is_some_and(|a| a.as_str() == w));
            Ok(wanted.then_some(record))
        })
    }

    /// Pages through the keys under `prefix` in key order, starting strictly after `prefix + after`:
    /// `decode` turns each key's remainder into an item or skips it (`None`); returns at most
    /// `limit` items and whether more follow. The shared paging of tags, catalog and referrers.
    fn page<T>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        mut decode: impl FnMut(&[u8]) -> Result<Option<T>>,
    ) -> Result<(Vec<T>, bool)> {
        let mut start = prefix.to_vec();
        if let Some(after) = after {
            start.extend_from_slice(after);
            start.push(0); // the smallest key strictly after `after`
        }
        // Prefixes end in a kind byte or the NUL separator, so incrementing the last byte cannot
        // overflow and bounds exactly the keys under the prefix.
        let mut end = prefix.to_vec();
        *end.last_mut().expect("prefixes are never empty") += 1;
        let mut out = Vec::new();
        for entry in self.tree.range(start..end) {
            let (key, _) = entry?;
            let Some(item) = decode(&key[prefix.len()..])? else { continue };
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(item);
        }
        Ok((out, false))
    }

    /// Serialises the whole state, consensus position included, for a Raft snapshot.
    ///
    /// Holds the applier lock so the snapshot is one consistent state whose position matches its
    /// contents; applies wait meanwhile.
    pub fn export_snapshot(&self) -> Result<Vec<u8>> {
        let _applier = self.apply_lock.lock().map_err(|_| MetaError::Corrupt("a previous apply panicked".into()))?;
        let mut out = SNAPSHOT_MAGIC.to_vec();
        for entry in self.tree.iter() {
            let (k, v) = entry?;
            for part in [&k, &v] {
                let len = u32::try_from(part.len()).map_err(codec)?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        Ok(out)
    }

    /// Replaces the whole state with a snapshot made by [`StateMachine::export_snapshot`].
    pub fn import_snapshot(&self, data: &[u8]) -> Result<()> {
        let _applier = self.apply_lock.lock().map_err(|_| MetaError::Corrupt("a previous apply panicked".into()))?;
        let body = data
            .strip_prefix(SNAPSHOT_MAGIC.as_slice())
            .ok_or_else(|| MetaError::Corrupt("snapshot has no header".into()))?;
        let mut batch = sled::Batch::default();
        let mut incoming = std::collections::BTreeSet::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (k, r) = take_chunk(rest)?;
            let (v, r) = take_chunk(r)?;
            incoming.insert(k.to_vec());
            batch.insert(k, v);
            rest = r;
        }
        for entry in self.tree.iter() {
            let (k, _) = entry?;
            if !incoming.contains(k.as_ref()) {
                batch.remove(k);
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Flushes the state to disk. Not needed for safety (the Raft log is durable and replay is
    /// exact); used before snapshots and at shutdown to shorten replay.
    pub fn flush(&self) -> Result<()> {
        self.tree.flush()?;
        Ok(())
    }
}

fn take_chunk(data: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || MetaError::Corrupt("truncated snapshot".into());
    let (len, rest) = data.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(corrupt());
    }
    Ok(rest.split_at(len))
}

fn decode_size(bytes: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = bytes.try_into().map_err(|_| MetaError::Corrupt("blob link size".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode_record(bytes: &[u8]) -> Result<ManifestRecord> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt(e.to_string()))
}

/// Decodes a stored name, tag or digest; stored text that no longer parses means corruption.
fn decode_text<T: std::str::FromStr<Err = gati_core::CoreError>>(bytes: &[u8]) -> Result<T> {
    std::str::from_utf8(bytes)
        .map_err(|e| MetaError::Corrupt(e.to_string()))?
        .parse()
        .map_err(|e: gati_core::CoreError| MetaError::Corrupt(e.to_string()))
}
