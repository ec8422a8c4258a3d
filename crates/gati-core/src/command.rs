//! The commands the replicated state machine applies, and their outcomes.
//!
//! Every metadata write in the registry is one [`Command`] proposed to Raft and applied by
//! `gati-meta`'s state machine (architecture invariant 4). Commands carry their preconditions, and
//! `apply` re-checks them against the state it holds, so a proposer that acted on stale state gets a
//! clean [`Rejection`] instead of breaking an invariant. Commands are serialised into the Raft log:
//! each variant keeps its serde name forever; changing a shape means a new variant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::artifact::{ArtifactCommand, ArtifactRejection};
use crate::digest::Digest;
use crate::identity::{IdentityCommand, IdentityRejection};
use crate::media_type::{ManifestKind, MediaType};
use crate::name::RepoName;
use crate::reference::Tag;

/// The precondition of a conditional tag update (`If-Match` / `If-None-Match` on a manifest PUT).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TagCondition {
    /// The tag must currently point at one of these digests.
    IfMatch {
        /// Acceptable current digests.
        digests: Vec<Digest>,
    },
    /// `If-Match: *`: the tag must exist.
    IfMatchAny,
    /// The tag must not currently point at any of these digests.
    IfNoneMatch {
        /// Refused current digests.
        digests: Vec<Digest>,
    },
    /// `If-None-Match: *`: the tag must not exist (create-only).
    IfNoneMatchAny,
}

impl TagCondition {
    /// Returns whether the condition holds given the tag's current target.
    pub fn holds(&self, current: Option<&Digest>) -> bool {
        match self {
            TagCondition::IfMatch { digests } => current.is_some_and(|c| digests.contains(c)),
            TagCondition::IfMatchAny => current.is_some(),
            TagCondition::IfNoneMatch { digests } => !current.is_some_and(|c| digests.contains(c)),
            TagCondition::IfNoneMatchAny => current.is_none(),
        }
    }
}

/// What the state machine records about a manifest; its bytes live in the blob store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// The manifest's digest (of the exact bytes pushed).
    pub digest: Digest,
    /// Its format.
    pub kind: ManifestKind,
    /// The media type it is served with.
    pub media_type: MediaType,
    /// Its size in bytes.
    pub size: u64,
    /// Blobs it references that must be linked into the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests it references that must be in the repository.
    pub manifests: Vec<Digest>,
    /// The manifest it refers to, for the referrers API.
    pub subject: Option<Digest>,
    /// The artifact type reported by the referrers API.
    pub artifact_type: Option<MediaType>,
    /// Top-level annotations, reported by the referrers API.
    pub annotations: BTreeMap<String, String>,
}

/// A metadata write. See the module docs for the contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Links verified blob content into a repository (after an upload or a mount). Blob bytes are
    /// already durable in the blob store when this is proposed ("bytes before pointers").
    LinkBlob {
        /// The repository.
        repo: RepoName,
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// Removes a blob's link from a repository. The bytes stay until garbage collection.
    UnlinkBlob {
        /// The repository.
        repo: RepoName,
        /// The blob.
        digest: Digest,
    },
    /// Records a manifest, and optionally points a tag at it, in one atomic step.
    PutManifest {
        /// The repository.
        repo: RepoName,
        /// The manifest (boxed: it dwarfs every other command).
        record: Box<ManifestRecord>,
        /// The tag to point at it, when pushed by tag.
        tag: Option<Tag>,
        /// The precondition on the tag's current target.
        condition: Option<TagCondition>,
    },
    /// Deletes a manifest and every tag pointing at it.
    DeleteManifest {
        /// The repository.
        repo: RepoName,
        /// The manifest.
        digest: Digest,
    },
    /// Deletes one tag, leaving the manifest.
    DeleteTag {
        /// The repository.
        repo: RepoName,
        /// The tag.
        tag: Tag,
    },
    /// A write to users, organisations, policies, keys or sessions; only the `meta` group
    /// applies these.
    Identity(IdentityCommand),
    /// A write to a Gati artifact's typed state (versions, dist-tags, deprecations, downloads).
    Artifact(ArtifactCommand),
}

impl Command {
    /// Returns the repository the command writes to; `None` for identity writes, which belong
    /// to the `meta` group rather than a shard.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Command::LinkBlob { repo, .. }
            | Command::UnlinkBlob { repo, .. }
            | Command::PutManifest { repo, .. }
            | Command::DeleteManifest { repo, .. }
            | Command::DeleteTag { repo, .. } => Some(repo),
            Command::Artifact(a) => Some(a.repo()),
            Command::Identity(_) => None,
        }
    }
}

/// The payload of one Raft log entry: commands the state machine applies in order, each seeing the
/// effects of those before it, and atomically. Concurrent writes are grouped into one proposal so
/// that many commit with one log flush.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The commands, in the order they are applied.
    pub commands: Vec<Command>,
}

/// The outcomes of a [`Proposal`]'s commands, one per command, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalOutcome {
    /// One outcome per command.
    pub outcomes: Vec<Applied>,
}

/// Why the state machine refused a command. Deterministic: every replica refuses alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Rejection {
    /// A referenced blob is not linked into the repository.
    BlobUnknown {
        /// The missing blob.
        digest: Digest,
    },
    /// A referenced or targeted manifest is not in the repository.
    ManifestUnknown {
        /// The missing manifest.
        digest: Digest,
    },
    /// The tag does not exist.
    TagUnknown {
        /// The missing tag.
        tag: Tag,
    },
    /// The tag's precondition did not hold; `current` is what the tag pointed at.
    TagConditionFailed {
        /// The tag's target at the time of apply.
        current: Option<Digest>,
    },
    /// An identity write was refused.
    Identity(IdentityRejection),
    /// An artifact write was refused.
    Artifact(ArtifactRejection),
    /// The command was sent to a group that does not apply it (a repository write to `meta`, an
    /// identity write to a shard).
    WrongGroup,
}

/// The outcome of applying a command (the Raft response).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Applied {
    /// A log entry without a command (blank or membership) was applied.
    Nothing,
    /// The blob is linked; `created` is false when it already was.
    BlobLinked {
        /// Whether the link is new.
        created: bool,
    },
    /// The blob link is gone.
    BlobUnlinked,
    /// The manifest is recorded; `previous` is what the tag pointed at before, if a tag was set.
    ManifestPut {
        /// The tag's previous target.
        previous: Option<Digest>,
    },
    /// The manifest is deleted along with these tags.
    ManifestDeleted {
        /// Tags that pointed at it and are gone.
        removed_tags: Vec<Tag>,
    },
    /// The tag is deleted.
    TagDeleted,
    /// The identity write is applied.
    IdentityChanged,
    /// The artifact write is applied.
    ArtifactChanged,
    /// The command was refused; nothing changed.
    Rejected(Rejection),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dg(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    #[test]
    fn tag_conditions() {
        let a = dg('a');
        let b = dg('b');
        let m = TagCondition::IfMatch { digests: vec![a.clone()] };
        assert!(m.holds(Some(&a)));
        assert!(!m.holds(Some(&b)));
        assert!(!m.holds(None));
        let n = TagCondition::IfNoneMatch { digests: vec![a.clone()] };
        assert!(!n.holds(Some(&a)));
        assert!(n.holds(Some(&b)));
        assert!(n.holds(None));
        assert!(TagCondition::IfNoneMatchAny.holds(None));
        assert!(!TagCondition::IfNoneMatchAny.holds(Some(&a)));
        assert!(TagCondition::IfMatchAny.holds(Some(&a)));
        assert!(!TagCondition::IfMatchAny.holds(None));
    }

    #[test]
    fn commands_have_stable_wire_names() {
        let c = Command::DeleteTag { repo: "a/b".parse().unwrap(), tag: "v1".parse().unwrap() };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"op":"delete_tag","repo":"a/b","tag":"v1"}"#);
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), c);
        let bad = r#"{"op":"delete_tag","repo":"A/../b","tag":"v1"}"#;
        assert!(serde_json::from_str::<Command>(bad).is_err());
    }
}
