//! State-machine tests: command semantics, determinism, snapshots, and recovery on reopen.

use std::collections::BTreeMap;

use gati_core::command::Rejection;
use gati_core::media_type::ManifestKind;
use gati_core::{Applied, Command, Digest, GroupId, ManifestRecord, RepoName, ShardId, Tag, TagCondition};
use proptest::prelude::*;

use crate::{MetaStore, StateMachine};

fn dg(n: u8) -> Digest {
    format!("sha256:{:064x}", n).parse().unwrap()
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

fn record(digest: Digest, blobs: Vec<Digest>, subject: Option<Digest>) -> Box<ManifestRecord> {
    Box::new(ManifestRecord {
        digest,
        kind: ManifestKind::OciManifest,
        media_type: gati_core::media_type::OCI_MANIFEST.parse().unwrap(),
        size: 100,
        blobs,
        manifests: vec![],
        subject,
        artifact_type: None,
        annotations: BTreeMap::new(),
    })
}

/// Applies a one-command entry (the common case in these tests).
trait ApplyOne {
    fn apply_one(&self, position: &[u8], command: Option<&Command>) -> crate::Result<Applied>;
}

impl ApplyOne for StateMachine {
    fn apply_one(&self, position: &[u8], command: Option<&Command>) -> crate::Result<Applied> {
        let commands: Vec<Command> = command.into_iter().cloned().collect();
        let mut outcomes = self.apply(position, &commands)?;
        Ok(outcomes.pop().unwrap_or(Applied::Nothing))
    }
}

fn open() -> (tempfile::TempDir, StateMachine) {
    let dir = tempfile::tempdir().unwrap();
    let sm = MetaStore::open(dir.path()).unwrap().state_machine(GroupId::Shard(ShardId(0))).unwrap();
    (dir, sm)
}

fn put(repo_: &str, digest: Digest, tag_: Option<&str>, condition: Option<TagCondition>) -> Command {
    Command::PutManifest { repo: repo(repo_), record: record(digest, vec![dg(1)], None), tag: tag_.map(tag), condition }
}

fn link(repo_: &str, d: Digest) -> Command {
    Command::LinkBlob { repo: repo(repo_), digest: d, size: 5 }
}

#[test]
fn manifest_needs_linked_blobs() {
    let (_d, sm) = open();
    let out = sm.apply_one(b"1", Some(&put("a/b", dg(10), Some("v1"), None))).unwrap();
    assert_eq!(out, Applied::Rejected(Rejection::BlobUnknown { digest: dg(1) }));
    assert_eq!(sm.tag(&repo("a/b"), &tag("v1")).unwrap(), None);
    assert!(!sm.repo_exists(&repo("a/b")).unwrap());
    assert_eq!(sm.raft_state().unwrap().as_deref(), Some(&b"1"[..]), "position advances on refusal");

    assert_eq!(sm.apply_one(b"2", Some(&link("a/b", dg(1)))).unwrap(), Applied::BlobLinked { created: true });
    assert_eq!(sm.apply_one(b"3", Some(&link("a/b", dg(1)))).unwrap(), Applied::BlobLinked { created: false });
    let out = sm.apply_one(b"4", Some(&put("a/b", dg(10), Some("v1"), None))).unwrap();
    assert_eq!(out, Applied::ManifestPut { previous: None });
    assert_eq!(sm.tag(&repo("a/b"), &tag("v1")).unwrap(), Some(dg(10)));
    // Another repository does not see the link.
    let out = sm.apply_one(b"5", Some(&put("a/c", dg(10), Some("v1"), None))).unwrap();
    assert!(matches!(out, Applied::Rejected(Rejection::BlobUnknown { .. })));
}

#[test]
fn conditional_tag_updates_are_compare_and_set() {
    let (_d, sm) = open();
    sm.apply_one(b"1", Some(&link("r", dg(1)))).unwrap();
    let create = Some(TagCondition::IfNoneMatchAny);
    assert_eq!(
        sm.apply_one(b"2", Some(&put("r", dg(10), Some("t"), create.clone()))).unwrap(),
        Applied::ManifestPut { previous: None }
    );
    assert_eq!(
        sm.apply_one(b"3", Some(&put("r", dg(11), Some("t"), create))).unwrap(),
        Applied::Rejected(Rejection::TagConditionFailed { current: Some(dg(10)) })
    );
    let stale = Some(TagCondition::IfMatch { digests: vec![dg(99)] });
    assert!(matches!(sm.apply_one(b"4", Some(&put("r", dg(11), Some("t"), stale))).unwrap(), Applied::Rejected(_)));
    assert_eq!(sm.tag(&repo("r"), &tag("t")).unwrap(), Some(dg(10)));
    assert_eq!(sm.manifest(&repo("r"), &dg(11)).unwrap(), None, "a refused put records nothing");
    let fresh = Some(TagCondition::IfMatch { digests: vec![dg(10)] });
    assert_eq!(
        sm.apply_one(b"5", Some(&put("r", dg(11), Some("t"), fresh))).unwrap(),
        Applied::ManifestPut { previous: Some(dg(10)) }
    );
    assert_eq!(sm.tag(&repo("r"), &tag("t")).unwrap(), Some(dg(11)));
}

#[test]
fn delete_manifest_removes_its_tags_and_referrer_entry() {
    let (_d, sm) = open();
    sm.apply_one(b"1", Some(&link("r", dg(1)))).unwrap();
    sm.apply_one(b"2", Some(&put("r", dg(10), Some("a"), None))).unwrap();
    sm.apply_one(b"3", Some(&put("r", dg(10), Some("b"), None))).unwrap();
    sm.apply_one(b"4", Some(&put("r", dg(11), Some("c"), None))).unwrap();
    let referrer = Command::PutManifest {
        repo: repo("r"),
        record: record(dg(12), vec![dg(1)], Some(dg(10))),
        tag: None,
        condition: None,
    };
    sm.apply_one(b"5", Some(&referrer)).unwrap();
    assert_eq!(sm.referrers(&repo("r"), &dg(10), None, None, 100).unwrap().0.len(), 1);

    let out = sm.apply_one(b"6", Some(&Command::DeleteManifest { repo: repo("r"), digest: dg(10) })).unwrap();
    assert_eq!(out, Applied::ManifestDeleted { removed_tags: vec![tag("a"), tag("b")] });
    assert_eq!(sm.tags(&repo("r"), None, 10).unwrap(), (vec![tag("c")], false));
    // The referrer still points at the (deleted) subject, as the spec allows.
    assert_eq!(sm.referrers(&repo("r"), &dg(10), None, None, 100).unwrap().0.len(), 1);
    sm.apply_one(b"7", Some(&Command::DeleteManifest { repo: repo("r"), digest: dg(12) })).unwrap();
    assert!(sm.referrers(&repo("r"), &dg(10), None, None, 100).unwrap().0.is_empty());
    let again = sm.apply_one(b"8", Some(&Command::DeleteManifest { repo: repo("r"), digest: dg(10) })).unwrap();
    assert_eq!(again, Applied::Rejected(Rejection::ManifestUnknown { digest: dg(10) }));
}

#[test]
fn delete_tag_keeps_manifest_and_unlink_blob() {
    let (_d, sm) = open();
    sm.apply_one(b"1", Some(&link("r", dg(1)))).unwrap();
    sm.apply_one(b"2", Some(&put("r", dg(10), Some("a"), None))).unwrap();
    assert_eq!(
        sm.apply_one(b"3", Some(&Command::DeleteTag { repo: repo("r"), tag: tag("a") })).unwrap(),
        Applied::TagDeleted
    );
    assert!(sm.manifest(&repo("r"), &dg(10)).unwrap().is_some());
    assert!(matches!(
        sm.apply_one(b"4", Some(&Command::DeleteTag { repo: repo("r"), tag: tag("a") })).unwrap(),
        Applied::Rejected(_)
    ));
    assert_eq!(
        sm.apply_one(b"5", Some(&Command::UnlinkBlob { repo: repo("r"), digest: dg(1) })).unwrap(),
        Applied::BlobUnlinked
    );
    assert_eq!(sm.blob_link(&repo("r"), &dg(1)).unwrap(), None);
}

#[test]
fn referrers_page_in_digest_order_and_filter_while_scanning() {
    let (_d, sm) = open();
    sm.apply_one(b"1", Some(&link("r", dg(1)))).unwrap();
    for n in [14u8, 12, 13, 11, 15] {
        let mut record = record(dg(n), vec![dg(1)], Some(dg(10)));
        record.artifact_type = Some(if n % 2 == 0 { "application/even" } else { "application/odd" }.parse().unwrap());
        let put = Command::PutManifest { repo: repo("r"), record, tag: None, condition: None };
        sm.apply_one(b"2", Some(&put)).unwrap();
    }
    let digests = |v: Vec<ManifestRecord>| v.into_iter().map(|r| r.digest).collect::<Vec<_>>();
    let (page, more) = sm.referrers(&repo("r"), &dg(10), None, None, 2).unwrap();
    assert_eq!((digests(page), more), (vec![dg(11), dg(12)], true));
    let (page, more) = sm.referrers(&repo("r"), &dg(10), None, Some(&dg(12)), 2).unwrap();
    assert_eq!((digests(page), more), (vec![dg(13), dg(14)], true));
    let (page, more) = sm.referrers(&repo("r"), &dg(10), None, Some(&dg(14)), 2).unwrap();
    assert_eq!((digests(page), more), (vec![dg(15)], false));
    let (page, more) = sm.referrers(&repo("r"), &dg(10), Some("application/odd"), None, 2).unwrap();
    assert_eq!((digests(page), more), (vec![dg(11), dg(13)], true), "a filtered page is still full");
    let (page, more) = sm.referrers(&repo("r"), &dg(10), Some("application/odd"), Some(&dg(13)), 2).unwrap();
    assert_eq!((digests(page), more), (vec![dg(15)], false));
}

#[test]
fn blob_holders_follow_links_and_unlinks() {
    let (_d, sm) = open();
    for r in ["b", "a", "c"] {
        sm.apply_one(b"1", Some(&link(r, dg(1)))).unwrap();
    }
    sm.apply_one(b"2", Some(&link("a", dg(2)))).unwrap();
    let names = |v: Vec<(RepoName, u64)>| v.into_iter().map(|(r, s)| (r.to_string(), s)).collect::<Vec<_>>();
    assert_eq!(names(sm.blob_holders(&dg(1), 10).unwrap()), vec![("a".into(), 5), ("b".into(), 5), ("c".into(), 5)]);
    assert_eq!(sm.blob_holders(&dg(1), 1).unwrap().len(), 1);
    sm.apply_one(b"3", Some(&Command::UnlinkBlob { repo: repo("a"), digest: dg(1) })).unwrap();
    assert_eq!(names(sm.blob_holders(&dg(1), 10).unwrap()), vec![("b".into(), 5), ("c".into(), 5)]);
    assert_eq!(names(sm.blob_holders(&dg(2), 10).unwrap()), vec![("a".into(), 5)]);
    assert!(sm.blob_holders(&dg(3), 10).unwrap().is_empty());
}

#[test]
fn tag_and_catalog_pagination_is_lexical_and_scoped() {
    let (_d, sm) = open();
    for r in ["b", "a/x", "a", "a0"] {
        sm.apply_one(b"1", Some(&link(r, dg(1)))).unwrap();
    }
    for t in ["v2", "v10", "latest", "v1"] {
        sm.apply_one(b"2", Some(&put("a", dg(10), Some(t), None))).unwrap();
    }
    sm.apply_one(b"3", Some(&put("a/x", dg(10), Some("zzz"), None))).unwrap();
    let names = |v: Vec<Tag>| v.into_iter().map(|t| t.to_string()).collect::<Vec<_>>();
    let (first, more) = sm.tags(&repo("a"), None, 2).unwrap();
    assert_eq!((names(first), more), (vec!["latest".to_string(), "v1".into()], true));
    let (rest, more) = sm.tags(&repo("a"), Some("v1"), 10).unwrap();
    assert_eq!((names(rest), more), (vec!["v10".to_string(), "v2".into()], false));
    let (exact, more) = sm.tags(&repo("a"), None, 4).unwrap();
    assert_eq!((exact.len(), more), (4, false));
    let (repos, more) = sm.catalog(None, 10).unwrap();
    let repos: Vec<String> = repos.into_iter().map(|r| r.to_string()).collect();
    assert_eq!((repos, more), (vec!["a".to_string(), "a/x".into(), "a0".into(), "b".into()], false));
    let (page, more) = sm.catalog(Some("a/x"), 1).unwrap();
    assert_eq!((page[0].to_string(), more), ("a0".to_string(), true));
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let sm = MetaStore::open(dir.path()).unwrap().state_machine(GroupId::Shard(ShardId(0))).unwrap();
        sm.apply_one(b"1", Some(&link("r", dg(1)))).unwrap();
        sm.apply_one(b"2", Some(&put("r", dg(10), Some("a"), None))).unwrap();
        sm.flush().unwrap();
    }
    let sm = MetaStore::open(dir.path()).unwrap().state_machine(GroupId::Shard(ShardId(0))).unwrap();
    assert_eq!(sm.tag(&repo("r"), &tag("a")).unwrap(), Some(dg(10)));
    assert_eq!(sm.raft_state().unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn truncated_snapshot_is_refused_and_changes_nothing() {
    let (_d, sm) = open();
    sm.apply_one(b"1", Some(&link("r", dg(1)))).unwrap();
    let snap = sm.export_snapshot().unwrap();
    assert!(sm.import_snapshot(&snap[..snap.len() - 3]).is_err());
    assert!(sm.import_snapshot(b"garbage").is_err());
    assert_eq!(sm.blob_link(&repo("r"), &dg(1)).unwrap(), Some(5));
}

fn arb_command() -> impl Strategy<Value = Command> {
    let r = prop_oneof![Just("a"), Just("a/b"), Just("c")];
    let d = 0u8..6;
    let t = prop_oneof![Just("x"), Just("y")];
    prop_oneof![
        (r.clone(), d.clone()).prop_map(|(r, d)| link(r, dg(d))),
        (r.clone(), d.clone()).prop_map(|(r, d)| Command::UnlinkBlob { repo: repo(r), digest: dg(d) }),
        (
            r.clone(),
            d.clone(),
            d.clone(),
            proptest::option::of(t.clone()),
            proptest::option::of(d.clone()),
            any::<u8>()
        )
            .prop_map(|(r, m, b, t, s, c)| {
                let condition = match c % 4 {
                    0 => None,
                    1 => Some(TagCondition::IfNoneMatchAny),
                    2 => Some(TagCondition::IfMatch { digests: vec![dg(m)] }),
                    _ => Some(TagCondition::IfMatchAny),
                };
                Command::PutManifest {
                    repo: repo(r),
                    record: record(dg(100 + m), vec![dg(b)], s.map(|s| dg(100 + s))),
                    tag: t.map(tag),
                    condition,
                }
            }),
        (r.clone(), d.clone()).prop_map(|(r, d)| Command::DeleteManifest { repo: repo(r), digest: dg(100 + d) }),
        (r, t).prop_map(|(r, t)| Command::DeleteTag { repo: repo(r), tag: tag(t) }),
    ]
}

#[test]
fn one_entry_applies_its_commands_in_order_and_atomically() {
    let (_d, sm) = open();
    let entry = vec![
        link("r", dg(1)),
        put("r", dg(10), Some("t"), Some(TagCondition::IfNoneMatchAny)),
        put("r", dg(11), Some("t"), Some(TagCondition::IfNoneMatchAny)),
        Command::DeleteManifest { repo: repo("r"), digest: dg(10) },
    ];
    let outcomes = sm.apply(b"1", &entry).unwrap();
    assert_eq!(outcomes[0], Applied::BlobLinked { created: true });
    assert_eq!(outcomes[1], Applied::ManifestPut { previous: None }, "sees the link made earlier in the entry");
    assert_eq!(outcomes[2], Applied::Rejected(Rejection::TagConditionFailed { current: Some(dg(10)) }));
    assert_eq!(outcomes[3], Applied::ManifestDeleted { removed_tags: vec![tag("t")] }, "sees the tag set earlier");
    assert_eq!(sm.tag(&repo("r"), &tag("t")).unwrap(), None);
    assert!(sm.manifest(&repo("r"), &dg(10)).unwrap().is_none());
    assert_eq!(sm.blob_link(&repo("r"), &dg(1)).unwrap(), Some(5));
    assert!(sm.apply(b"2", &[]).unwrap().is_empty());
    assert_eq!(sm.raft_state().unwrap().as_deref(), Some(&b"2"[..]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Grouping commands into entries (as the proposal batcher does) changes neither the outcomes
    /// nor the resulting state.
    #[test]
    fn batching_is_invisible(commands in proptest::collection::vec(arb_command(), 1..40), split in 1usize..8) {
        let (_d1, single) = open();
        let (_d2, grouped) = open();
        let mut one_by_one = Vec::new();
        for c in &commands {
            one_by_one.push(single.apply_one(b"p", Some(c)).unwrap());
        }
        let mut batched = Vec::new();
        for chunk in commands.chunks(split) {
            batched.extend(grouped.apply(b"p", chunk).unwrap());
        }
        prop_assert_eq!(one_by_one, batched);
        prop_assert_eq!(single.export_snapshot().unwrap(), grouped.export_snapshot().unwrap());
    }

    /// The same command sequence always yields the same outcomes and the same state, byte for
    /// byte, and a snapshot of that state reproduces it exactly.
    #[test]
    fn apply_is_deterministic(commands in proptest::collection::vec(arb_command(), 1..40)) {
        let (_d1, a) = open();
        let (_d2, b) = open();
        for (i, c) in commands.iter().enumerate() {
            let pos = i.to_string();
            prop_assert_eq!(a.apply_one(pos.as_bytes(), Some(c)).unwrap(), b.apply_one(pos.as_bytes(), Some(c)).unwrap());
        }
        let snap = a.export_snapshot().unwrap();
        prop_assert_eq!(&snap, &b.export_snapshot().unwrap());
        let (_d3, c) = open();
        c.apply_one(b"stale", Some(&link("zzz", dg(1)))).unwrap();
        c.import_snapshot(&snap).unwrap();
        prop_assert_eq!(c.export_snapshot().unwrap(), snap);
    }
}

#[test]
fn a_new_database_gets_large_segments_and_an_existing_one_keeps_its_own() {
    let fresh = tempfile::tempdir().unwrap();
    drop(MetaStore::open(fresh.path()).unwrap());
    assert_eq!(super::stored_segment_size(fresh.path()).unwrap(), Some(super::SEGMENT_BYTES));
    // A database created with sled's default segment size still opens, and keeps it.
    let old = tempfile::tempdir().unwrap();
    drop(sled::Config::new().path(old.path()).open().unwrap());
    let before = super::stored_segment_size(old.path()).unwrap();
    assert_eq!(before, Some(512 * 1024));
    let store = MetaStore::open(old.path()).unwrap();
    store.state_machine(GroupId::Meta).unwrap();
    drop(store);
    assert_eq!(super::stored_segment_size(old.path()).unwrap(), before);
}
