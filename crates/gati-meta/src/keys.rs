//! Key encoding of the state tree: one sled tree, one prefix byte per record kind.
//!
//! Repository names, tags and digests never contain NUL, so NUL separates components and keeps
//! lexical order within a repository: tags and catalog pages come out sorted by a plain range scan.

use gati_core::{Digest, RepoName, Tag};

/// `r` + repo: the repository exists (catalog).
pub(crate) const REPO: u8 = b'r';
/// `b` + repo + NUL + digest: the blob is linked; value: size, u64 big-endian.
pub(crate) const BLOB: u8 = b'b';
/// `h` + digest + NUL + repo: the repository holds (links) the blob; the reverse of `b`, for
/// mounting a blob without naming its source.
pub(crate) const HOLDER: u8 = b'h';
/// `m` + repo + NUL + digest: a manifest record (JSON).
pub(crate) const MANIFEST: u8 = b'm';
/// `t` + repo + NUL + tag: the tag's target digest.
pub(crate) const TAG: u8 = b't';
/// `f` + repo + NUL + subject + NUL + referrer: the referrer points at the subject.
pub(crate) const REFERRER: u8 = b'f';
/// The opaque consensus position applied last (stored atomically with each apply).
pub(crate) const RAFT_STATE: &[u8] = b"x/raft_state";

const SEP: u8 = 0;

/// `kind` then `parts` joined by NUL: the shape of every key in the state tree.
pub(crate) fn key(kind: u8, parts: &[&str]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len() + 1).sum::<usize>();
    let mut k = Vec::with_capacity(len);
    k.push(kind);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            k.push(SEP);
        }
        k.extend_from_slice(p.as_bytes());
    }
    k
}

pub(crate) fn repo(repo: &RepoName) -> Vec<u8> {
    key(REPO, &[repo.as_str()])
}

pub(crate) fn blob(repo: &RepoName, digest: &Digest) -> Vec<u8> {
    key(BLOB, &[repo.as_str(), &digest.to_string()])
}

pub(crate) fn holder(digest: &Digest, repo: &RepoName) -> Vec<u8> {
    key(HOLDER, &[&digest.to_string(), repo.as_str()])
}

pub(crate) fn holder_prefix(digest: &Digest) -> Vec<u8> {
    let mut k = key(HOLDER, &[&digest.to_string()]);
    k.push(SEP);
    k
}

pub(crate) fn manifest(repo: &RepoName, digest: &Digest) -> Vec<u8> {
    key(MANIFEST, &[repo.as_str(), &digest.to_string()])
}

pub(crate) fn tag(repo: &RepoName, tag: &Tag) -> Vec<u8> {
    key(TAG, &[repo.as_str(), tag.as_str()])
}

/// The prefix under which all of a repository's tags live (ends with the separator).
pub(crate) fn tag_prefix(repo: &RepoName) -> Vec<u8> {
    let mut k = key(TAG, &[repo.as_str()]);
    k.push(SEP);
    k
}

pub(crate) fn referrer(repo: &RepoName, subject: &Digest, referrer: &Digest) -> Vec<u8> {
    key(REFERRER, &[repo.as_str(), &subject.to_string(), &referrer.to_string()])
}

pub(crate) fn referrer_prefix(repo: &RepoName, subject: &Digest) -> Vec<u8> {
    let mut k = key(REFERRER, &[repo.as_str(), &subject.to_string()]);
    k.push(SEP);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_of_one_repo_share_a_prefix_no_other_repo_has() {
        let a: RepoName = "a".parse().unwrap();
        let ab: RepoName = "a/b".parse().unwrap();
        let t: Tag = "x".parse().unwrap();
        assert!(tag(&a, &t).starts_with(&tag_prefix(&a)));
        assert!(!tag(&ab, &t).starts_with(&tag_prefix(&a)));
        let a0: RepoName = "a0".parse().unwrap();
        assert!(!tag(&a0, &t).starts_with(&tag_prefix(&a)));
    }
}
