//! The openraft type configuration of the metadata group, and short names for the openraft types
//! instantiated with it.
//!
//! Owns [`GatiRaft`]. Everything under `src/raft/` names openraft types through these aliases so a
//! change of node or entry type is made here once. It may use `gati-core` (the command and outcome
//! types) and must not depend on any storage engine.

use std::io::Cursor;

openraft::declare_raft_types!(
    /// The openraft type configuration of the metadata group: log entries carry
    /// [`gati_core::Proposal`]s (ordered batches of commands), and applying one yields a
    /// [`gati_core::ProposalOutcome`].
    pub GatiRaft:
        D = gati_core::Proposal,
        R = gati_core::ProposalOutcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<GatiRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry of the metadata group.
pub type Entry = openraft::Entry<GatiRaft>;
/// The position of a log entry (leader term and node, index).
pub type LogId = openraft::LogId<u64>;
/// A vote: the term and the candidate voted for, and whether a quorum granted it.
pub type Vote = openraft::Vote<u64>;
/// A membership configuration with the position of the entry that set it.
pub type StoredMembership = openraft::StoredMembership<u64, openraft::BasicNode>;
/// The description of a snapshot: last included entry, membership, id.
pub type SnapshotMeta = openraft::SnapshotMeta<u64, openraft::BasicNode>;
/// A snapshot: its description and a reader over its bytes.
pub type Snapshot = openraft::Snapshot<GatiRaft>;
/// A storage failure reported to openraft; it makes the Raft node stop.
pub type StorageError = openraft::StorageError<u64>;
/// The running openraft node of the metadata group.
pub type Raft = openraft::Raft<GatiRaft>;
