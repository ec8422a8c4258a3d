//! The conformance suite every [`BlobStore`] backend must pass, run by each backend's own tests
//! (the fs backend in `tests/fs_store.rs`; the S3 backend against a real S3-compatible server).
//!
//! Owns the executable form of the contract documented on [`BlobStore`] and [`UploadWriter`].
//! Every run uses fresh content and ids, so it can run repeatedly, and concurrently with other
//! runs, against one store. Failures panic with the name of the broken rule, as a test should.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use gati_core::{Digest, DigestAlgorithm, RepoName, UploadId};

use crate::error::BlobErrorKind;
use crate::hashing::digest_of;
use crate::store::{BlobStore, UploadWriter};

/// Large enough to span several read chunks and write batches of any reasonable backend.
const LARGE: usize = 3 * 1024 * 1024 + 12_345;

/// Runs every contract check against `store`; panics on the first violation.
pub async fn test_suite(store: &dyn BlobStore) {
    let run = SuiteRun::new();
    unknown_things_are_absent(store, &run).await;
    put_verified_round_trips_and_is_idempotent(store, &run).await;
    put_verified_rejects_a_wrong_digest(store, &run).await;
    empty_blob_round_trips(store, &run).await;
    upload_round_trips_in_uneven_chunks(store, &run).await;
    ranges_follow_http_semantics(store, &run).await;
    sha512_upload_round_trips(store, &run).await;
    mismatched_upload_stores_nothing(store, &run).await;
    duplicate_upload_deduplicates(store, &run).await;
    concurrent_uploads_of_the_same_content_all_succeed(store, &run).await;
    resume_after_sync_continues_the_digest(store, &run).await;
    resume_without_sync_offers_a_consistent_prefix(store, &run).await;
    abort_discards_the_session(store, &run).await;
    begin_refuses_an_existing_id(store, &run).await;
    delete_removes_and_is_idempotent(store, &run).await;
}

/// Fresh ids and content for one run of the suite.
struct SuiteRun {
    nonce: u64,
    counter: AtomicU64,
    repo: RepoName,
}

impl SuiteRun {
    fn new() -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let nonce = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ RUNS.fetch_add(1, Ordering::Relaxed);
        SuiteRun { nonce, counter: AtomicU64::new(0), repo: "gati/test-suite".parse().expect("valid repo name") }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    fn upload_id(&self) -> UploadId {
        let n = self.next();
        UploadId::from_random((u128::from(self.nonce) << 64) | u128::from(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1))
    }

    /// Returns `len` pseudo-random bytes that no other call of any run returns.
    fn content(&self, len: usize) -> Vec<u8> {
        let mut state = self.nonce ^ self.next().wrapping_mul(0xd1b5_4a32_d192_ed03) | 1;
        let mut out = Vec::with_capacity(len + 16);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&state.to_le_bytes());
        while out.len() < len {
            // xorshift64: fast, and good enough to make every block distinct.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn sha256(bytes: &[u8]) -> Digest {
    digest_of(DigestAlgorithm::Sha256, bytes)
}

async fn read_bytes(store: &dyn BlobStore, digest: &Digest, range: Option<(u64, u64)>) -> Vec<u8> {
    let read = store.read(digest, range).await.expect("read of a stored blob succeeds");
    let mut out = Vec::new();
    let mut stream = read.stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("blob stream yields no errors"));
    }
    out
}

/// Writes `data` in chunks whose sizes cycle through `sizes`.
async fn write_in_chunks(writer: &mut Box<dyn UploadWriter>, data: &[u8], sizes: &[usize]) {
    let base = writer.offset();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= data.len() {
            break;
        }
        let end = (at + size.max(&1)).min(data.len());
        writer.write(Bytes::copy_from_slice(&data[at..end])).await.expect("upload write succeeds");
        at = end;
        assert_eq!(writer.offset(), base + at as u64, "offset counts every accepted byte");
    }
}

async fn upload(store: &dyn BlobStore, run: &SuiteRun, data: &[u8], expected: &Digest) -> crate::Result<u64> {
    let id = run.upload_id();
    let mut writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    write_in_chunks(&mut writer, data, &[64 * 1024 + 1]).await;
    writer.finish(expected).await
}

async fn unknown_things_are_absent(store: &dyn BlobStore, run: &SuiteRun) {
    let digest = sha256(&run.content(10));
    assert_eq!(store.stat(&digest).await.expect("stat succeeds"), None, "stat of an unknown blob");
    let err = store.read(&digest, None).await.expect_err("read of an unknown blob fails");
    assert_eq!(err.kind(), BlobErrorKind::NotFound, "read of an unknown blob");
    let err = store.read(&digest, Some((0, 0))).await.expect_err("ranged read of an unknown blob fails");
    assert_eq!(err.kind(), BlobErrorKind::NotFound, "ranged read of an unknown blob");
    store.delete(&digest).await.expect("delete of an unknown blob succeeds");
    let id = run.upload_id();
    assert!(store.upload_info(&id).await.expect("upload_info succeeds").is_none(), "unknown upload has no info");
    assert!(store.resume_upload(&id).await.expect("resume succeeds").is_none(), "unknown upload cannot resume");
    let err = store.abort_upload(&id).await.expect_err("abort of an unknown upload fails");
    assert_eq!(err.kind(), BlobErrorKind::UploadUnknown, "abort of an unknown upload");
    assert!(!store.list_uploads().await.expect("list succeeds").contains(&id));
}

async fn put_verified_round_trips_and_is_idempotent(store: &dyn BlobStore, run: &SuiteRun) {
    for algorithm in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
        let data = run.content(1000);
        let digest = digest_of(algorithm, &data);
        store.put_verified(&digest, Bytes::from(data.clone())).await.expect("put_verified succeeds");
        assert_eq!(store.stat(&digest).await.expect("stat succeeds"), Some(1000), "stat after put");
        assert_eq!(read_bytes(store, &digest, None).await, data, "put_verified round trip");
        store.put_verified(&digest, Bytes::from(data.clone())).await.expect("put_verified is idempotent");
        assert_eq!(read_bytes(store, &digest, None).await, data, "second put keeps the content");
    }
}

async fn put_verified_rejects_a_wrong_digest(store: &dyn BlobStore, run: &SuiteRun) {
    let claimed = sha256(&run.content(64));
    let data = run.content(64);
    let err = store.put_verified(&claimed, Bytes::from(data.clone())).await.expect_err("wrong digest is refused");
    assert_eq!(err.kind(), BlobErrorKind::DigestMismatch, "put_verified with a wrong digest");
    assert_eq!(store.stat(&claimed).await.expect("stat succeeds"), None, "nothing stored under the claim");
    assert_eq!(store.stat(&sha256(&data)).await.expect("stat succeeds"), None, "nor under the real digest");
}

async fn empty_blob_round_trips(store: &dyn BlobStore, run: &SuiteRun) {
    let empty = sha256(b"");
    let id = run.upload_id();
    let writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    assert_eq!(writer.offset(), 0);
    assert_eq!(writer.finish(&empty).await.expect("empty upload finishes"), 0);
    store.put_verified(&empty, Bytes::new()).await.expect("empty put is idempotent");
    assert_eq!(store.stat(&empty).await.expect("stat succeeds"), Some(0));
    let read = store.read(&empty, None).await.expect("empty blob reads");
    assert_eq!((read.size_total, read.range), (0, None));
    assert!(read_bytes(store, &empty, None).await.is_empty(), "empty blob yields no bytes");
    let err = store.read(&empty, Some((0, 0))).await.expect_err("no range of an empty blob is satisfiable");
    assert_eq!(err.kind(), BlobErrorKind::RangeNotSatisfiable);
}

async fn upload_round_trips_in_uneven_chunks(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(LARGE);
    let digest = sha256(&data);
    let id = run.upload_id();
    let mut writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    let info = store.upload_info(&id).await.expect("upload_info succeeds").expect("begun upload is known");
    assert_eq!((&info.repo, info.offset), (&run.repo, 0), "fresh session record");
    assert!(store.list_uploads().await.expect("list succeeds").contains(&id), "begun upload is listed");

    write_in_chunks(&mut writer, &data, &[1, 7, 65_536, 1_048_579, 3, 200_000]).await;
    writer.sync().await.expect("sync succeeds");
    let info = store.upload_info(&id).await.expect("upload_info succeeds").expect("upload is known");
    assert_eq!(info.offset, LARGE as u64, "synced bytes are counted");
    assert_eq!(store.stat(&digest).await.expect("stat succeeds"), None, "unfinished upload is not a blob");

    assert_eq!(writer.finish(&digest).await.expect("finish succeeds"), LARGE as u64);
    assert_eq!(store.stat(&digest).await.expect("stat succeeds"), Some(LARGE as u64));
    assert!(read_bytes(store, &digest, None).await == data, "uploaded blob reads back identically");
    assert!(store.upload_info(&id).await.expect("upload_info succeeds").is_none(), "finished session is gone");
    assert!(!store.list_uploads().await.expect("list succeeds").contains(&id), "finished session is unlisted");
    assert!(store.resume_upload(&id).await.expect("resume succeeds").is_none(), "finished session cannot resume");
}

async fn ranges_follow_http_semantics(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(LARGE);
    let digest = sha256(&data);
    store.put_verified(&digest, Bytes::from(data.clone())).await.expect("put_verified succeeds");
    let size = LARGE as u64;
    let mib = 1024 * 1024;
    let cases = [
        ((0, 0), (0, 0)),
        ((size - 1, size - 1), (size - 1, size - 1)),
        ((size - 1, u64::MAX), (size - 1, size - 1)),
        ((5, size + 100), (5, size - 1)),
        ((mib - 1, mib + 1), (mib - 1, mib + 1)),
        ((100, 2 * mib + 5), (100, 2 * mib + 5)),
        ((0, size - 1), (0, size - 1)),
    ];
    for (asked, served) in cases {
        let read = store.read(&digest, Some(asked)).await.expect("satisfiable range reads");
        assert_eq!((read.size_total, read.range), (size, Some(served)), "range {asked:?}");
        let got = read_bytes(store, &digest, Some(asked)).await;
        let want = &data[served.0 as usize..=served.1 as usize];
        assert!(got == want, "range {asked:?} yields exactly bytes {served:?}");
    }
    for asked in [(size, size), (size, u64::MAX), (size + 10, size + 20), (10, 9)] {
        let err = store.read(&digest, Some(asked)).await.expect_err("unsatisfiable range fails");
        assert_eq!(err.kind(), BlobErrorKind::RangeNotSatisfiable, "range {asked:?}");
    }
    let whole = store.read(&digest, None).await.expect("whole read succeeds");
    assert_eq!((whole.size_total, whole.range), (size, None));
}

async fn sha512_upload_round_trips(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(LARGE / 2);
    let digest = digest_of(DigestAlgorithm::Sha512, &data);
    let size = upload(store, run, &data, &digest).await.expect("sha512 upload finishes");
    assert_eq!(size, data.len() as u64);
    assert!(read_bytes(store, &digest, None).await == data, "sha512 blob reads back");
    let wrong = digest_of(DigestAlgorithm::Sha512, &run.content(10));
    let err = upload(store, run, &data, &wrong).await.expect_err("wrong sha512 is refused");
    assert_eq!(err.kind(), BlobErrorKind::DigestMismatch);
    assert_eq!(store.stat(&wrong).await.expect("stat succeeds"), None);
}

async fn mismatched_upload_stores_nothing(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(200_000);
    let claimed = sha256(&run.content(200_000));
    let id = run.upload_id();
    let mut writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    write_in_chunks(&mut writer, &data, &[30_000]).await;
    let err = writer.finish(&claimed).await.expect_err("mismatched upload is refused");
    assert_eq!(err.kind(), BlobErrorKind::DigestMismatch, "finish with a wrong digest");
    assert_eq!(store.stat(&claimed).await.expect("stat succeeds"), None, "nothing under the claimed digest");
    assert_eq!(store.stat(&sha256(&data)).await.expect("stat succeeds"), None, "nothing under the real digest");
    assert!(store.upload_info(&id).await.expect("upload_info succeeds").is_none(), "mismatched session is discarded");
}

async fn duplicate_upload_deduplicates(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(300_000);
    let digest = sha256(&data);
    assert_eq!(upload(store, run, &data, &digest).await.expect("first upload finishes"), 300_000);
    assert_eq!(upload(store, run, &data, &digest).await.expect("second upload deduplicates"), 300_000);
    store.put_verified(&digest, Bytes::from(data.clone())).await.expect("put of existing content succeeds");
    assert!(read_bytes(store, &digest, None).await == data, "deduplicated blob is intact");
}

async fn concurrent_uploads_of_the_same_content_all_succeed(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(LARGE);
    let digest = sha256(&data);
    let uploads = (0..4).map(|_| upload(store, run, &data, &digest));
    for result in futures_util::future::join_all(uploads).await {
        assert_eq!(result.expect("every concurrent upload finishes"), LARGE as u64);
    }
    assert_eq!(store.stat(&digest).await.expect("stat succeeds"), Some(LARGE as u64));
    assert!(read_bytes(store, &digest, None).await == data, "concurrently uploaded blob is intact");
}

async fn resume_after_sync_continues_the_digest(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(LARGE);
    let digest = sha256(&data);
    let cut = 1_500_001;
    let id = run.upload_id();
    let mut writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    write_in_chunks(&mut writer, &data[..cut], &[100_003]).await;
    writer.sync().await.expect("sync succeeds");
    drop(writer);

    let info = store.upload_info(&id).await.expect("upload_info succeeds").expect("dropped session survives");
    assert_eq!(info.offset, cut as u64, "synced bytes survive the writer");
    let (info, mut writer) = store.resume_upload(&id).await.expect("resume succeeds").expect("session resumes");
    assert_eq!((&info.repo, info.offset, writer.offset()), (&run.repo, cut as u64, cut as u64));
    write_in_chunks(&mut writer, &data[cut..], &[77_777]).await;
    assert_eq!(writer.offset(), LARGE as u64);
    assert_eq!(writer.finish(&digest).await.expect("resumed upload finishes"), LARGE as u64);
    assert!(read_bytes(store, &digest, None).await == data, "resumed blob reads back identically");
}

async fn resume_without_sync_offers_a_consistent_prefix(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(LARGE);
    let digest = sha256(&data);
    let cut = 2_500_000;
    let id = run.upload_id();
    let mut writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    write_in_chunks(&mut writer, &data[..cut], &[250_000]).await;
    drop(writer);

    let (info, mut writer) = store.resume_upload(&id).await.expect("resume succeeds").expect("session resumes");
    let offset = usize::try_from(info.offset).expect("offset fits in memory");
    assert!(offset <= cut, "a session never claims bytes it was not given");
    assert_eq!(writer.offset(), info.offset);
    write_in_chunks(&mut writer, &data[offset..], &[333_333]).await;
    assert_eq!(writer.finish(&digest).await.expect("resumed upload finishes"), LARGE as u64);
    assert!(read_bytes(store, &digest, None).await == data, "resumed blob reads back identically");
}

async fn abort_discards_the_session(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(100_000);
    let id = run.upload_id();
    let mut writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    write_in_chunks(&mut writer, &data, &[10_000]).await;
    writer.sync().await.expect("sync succeeds");
    drop(writer);
    store.abort_upload(&id).await.expect("abort succeeds");
    assert!(store.upload_info(&id).await.expect("upload_info succeeds").is_none(), "aborted session is gone");
    assert!(store.resume_upload(&id).await.expect("resume succeeds").is_none(), "aborted session cannot resume");
    assert!(!store.list_uploads().await.expect("list succeeds").contains(&id), "aborted session is unlisted");
    let err = store.abort_upload(&id).await.expect_err("second abort fails");
    assert_eq!(err.kind(), BlobErrorKind::UploadUnknown);
    assert_eq!(store.stat(&sha256(&data)).await.expect("stat succeeds"), None, "aborted bytes are no blob");
}

async fn begin_refuses_an_existing_id(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(1000);
    let digest = sha256(&data);
    let id = run.upload_id();
    let mut writer = store.begin_upload(&id, &run.repo).await.expect("begin upload succeeds");
    let err = store.begin_upload(&id, &run.repo).await.err().expect("second begin with one id fails");
    assert_eq!(err.kind(), BlobErrorKind::UploadExists);
    writer.write(Bytes::from(data)).await.expect("first writer still works");
    assert_eq!(writer.finish(&digest).await.expect("first writer finishes"), 1000);
}

async fn delete_removes_and_is_idempotent(store: &dyn BlobStore, run: &SuiteRun) {
    let data = run.content(5000);
    let digest = sha256(&data);
    store.put_verified(&digest, Bytes::from(data)).await.expect("put_verified succeeds");
    store.delete(&digest).await.expect("delete succeeds");
    assert_eq!(store.stat(&digest).await.expect("stat succeeds"), None, "deleted blob is gone");
    let err = store.read(&digest, None).await.expect_err("deleted blob cannot be read");
    assert_eq!(err.kind(), BlobErrorKind::NotFound);
    store.delete(&digest).await.expect("second delete succeeds");
}
