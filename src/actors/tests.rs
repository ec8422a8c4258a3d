//! Actor tests over real actors, a real Raft node on temporary sled and the filesystem blob store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use gati_blob::{BlobStore, ByteStream, FsBlobStore, digest_of};
use gati_core::{Applied, Command, DigestAlgorithm, NodeId, RepoName, ShardCount};
use gati_meta::MetaStore;

use super::{NamespaceDirectory, UploadDirectory};
use crate::cluster::{Cluster, Membership};
use crate::raft::RaftShared;

const IDLE: Duration = Duration::from_millis(100);

fn body(bytes: &'static [u8]) -> ByteStream {
    Box::pin(stream::iter([Ok(Bytes::from_static(bytes))]))
}

/// Waits, bounded, until `condition` holds: actors stop on their own schedule.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..250 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn an_idle_upload_session_parks_and_resumes_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let uploads = UploadDirectory::new(store.clone(), IDLE, false);
    let repo: RepoName = "a/b".parse().unwrap();
    let id = uploads.begin(&repo).await.unwrap();
    assert_eq!(uploads.append(&repo, &id, Some(0), body(b"hello")).await.unwrap(), 5);
    assert_eq!(uploads.live_sessions(), 1);
    eventually("the session parks", || uploads.live_sessions() == 0).await;

    // Resumed from the blob store: the offset and running digest carry on.
    assert_eq!(uploads.status(&repo, &id).await.unwrap(), 5);
    assert!(uploads.append(&repo, &id, Some(3), body(b"x")).await.is_err(), "out-of-order chunk");
    let digest = digest_of(DigestAlgorithm::Sha256, b"hello world");
    let size = uploads.finish(&repo, &id, Some(5), Some(body(b" world")), digest.clone()).await.unwrap();
    assert_eq!(size, 11);
    assert_eq!(store.stat(&digest).await.unwrap(), Some(11));
    assert!(uploads.status(&repo, &id).await.is_err(), "a finished session is gone");
}

#[tokio::test]
async fn an_upload_session_belongs_to_its_repository() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let uploads = UploadDirectory::new(store, IDLE, false);
    let id = uploads.begin(&"a".parse().unwrap()).await.unwrap();
    let other: RepoName = "b".parse().unwrap();
    assert!(uploads.append(&other, &id, None, body(b"x")).await.is_err());
    eventually("the session parks", || uploads.live_sessions() == 0).await;
    assert!(uploads.status(&other, &id).await.is_err(), "nor after a resume");
}

/// Two nodes sharing one blob store: a chunked upload hops between them request by request, and
/// is finished on the node it did not start on, with the digest carried across.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_begun_on_one_node_continues_and_finishes_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let store_a: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let store_b: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let (a, b) =
        (UploadDirectory::new(store_a, IDLE * 50, true), UploadDirectory::new(store_b.clone(), IDLE * 50, true));
    let repo: RepoName = "a/b".parse().unwrap();
    let id = a.begin(&repo).await.unwrap();
    assert_eq!(b.append(&repo, &id, Some(0), body(b"one ")).await.unwrap(), 4);
    assert_eq!(a.append(&repo, &id, Some(4), body(b"two ")).await.unwrap(), 8);
    assert_eq!(b.status(&repo, &id).await.unwrap(), 8, "b sees what a acknowledged");
    let err = b.append(&repo, &id, Some(4), body(b"again")).await.unwrap_err();
    assert!(matches!(err, crate::actors::ActorError::ChunkOutOfOrder { offset: 8, .. }), "{err:?}");
    assert_eq!(b.append(&repo, &id, Some(8), body(b"three")).await.unwrap(), 13);
    let digest = digest_of(DigestAlgorithm::Sha256, b"one two three");
    assert_eq!(a.finish(&repo, &id, None, None, digest.clone()).await.unwrap(), 13);
    assert_eq!(store_b.stat(&digest).await.unwrap(), Some(13));
    assert!(b.status(&repo, &id).await.is_err(), "the finished session is gone on every node");
    let other: RepoName = "other/repo".parse().unwrap();
    let id = b.begin(&repo).await.unwrap();
    assert!(a.append(&other, &id, None, body(b"x")).await.is_err(), "a session is only used in its repository");
}

#[tokio::test]
async fn an_idle_namespace_actor_stops_and_is_restarted_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let meta = MetaStore::open(dir.path()).unwrap();
    let shards = ShardCount::try_from(2).unwrap();
    let cluster = Cluster::start(NodeId(1), shards, &meta, RaftShared::default(), Membership::Solo).await.unwrap();
    let namespaces = NamespaceDirectory::new(cluster.clone(), IDLE);
    let repo: RepoName = "users/k/app".parse().unwrap();
    let digest = digest_of(DigestAlgorithm::Sha256, b"x");
    let link = Command::LinkBlob { repo: repo.clone(), digest: digest.clone(), size: 1 };
    assert_eq!(namespaces.propose(link.clone()).await.unwrap(), Applied::BlobLinked { created: true });
    assert_eq!(namespaces.live_namespaces(), 1);
    eventually("the namespace actor stops", || namespaces.live_namespaces() == 0).await;
    assert_eq!(namespaces.propose(link).await.unwrap(), Applied::BlobLinked { created: false });
    assert_eq!(cluster.state_of(&repo).blob_link(&repo, &digest).unwrap(), Some(1));
    cluster.shutdown().await;
}

#[tokio::test]
async fn expired_parked_sessions_are_purged_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let uploads = UploadDirectory::new(store.clone(), IDLE, false);
    let repo: RepoName = "a".parse().unwrap();
    let parked = uploads.begin(&repo).await.unwrap();
    uploads.append(&repo, &parked, None, body(b"abandoned")).await.unwrap();
    eventually("the session parks", || uploads.live_sessions() == 0).await;
    let live = uploads.begin(&repo).await.unwrap();

    assert_eq!(uploads.purge_expired(Duration::from_secs(3600)).await.unwrap(), 0, "nothing is an hour old");
    assert_eq!(uploads.purge_expired(Duration::ZERO).await.unwrap(), 1);
    assert!(store.upload_info(&parked).await.unwrap().is_none());
    assert!(uploads.status(&repo, &parked).await.is_err());
    assert_eq!(uploads.status(&repo, &live).await.unwrap(), 0, "the running session is untouched");
}
