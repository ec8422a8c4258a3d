//! The fs backend against the conformance suite, plus what only the fs backend can show: the
//! on-disk invariant (every file under `blobs/` hashes to its name), crash behaviour with a real
//! process abort, restart recovery, and session locking.

// STYLE §3: `unwrap` is allowed in tests.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use bytes::Bytes;
use futures_util::StreamExt;
use gati_blob::{BlobErrorKind, BlobStore, FsBlobStore, digest_of, test_suite};
use gati_core::{Digest, DigestAlgorithm, RepoName, UploadId};
use proptest::prelude::*;

fn repo() -> RepoName {
    "library/alpine".parse().unwrap()
}

fn sha256(bytes: &[u8]) -> Digest {
    digest_of(DigestAlgorithm::Sha256, bytes)
}

/// Deterministic bytes that differ per seed.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Walks `blobs/` and checks the store's central invariant: every file there is complete content
/// whose digest is its path, and nothing else (no temp files) lives there.
fn assert_every_blob_matches_its_digest(root: &Path) {
    for alg_entry in std::fs::read_dir(root.join("blobs")).unwrap() {
        let alg_entry = alg_entry.unwrap();
        let algorithm = match alg_entry.file_name().to_str().unwrap() {
            "sha256" => DigestAlgorithm::Sha256,
            "sha512" => DigestAlgorithm::Sha512,
            other => panic!("unexpected entry blobs/{other}"),
        };
        for shard in std::fs::read_dir(alg_entry.path()).unwrap() {
            let shard = shard.unwrap();
            assert!(shard.file_type().unwrap().is_dir(), "only shard directories under blobs/<alg>");
            for blob in std::fs::read_dir(shard.path()).unwrap() {
                let blob = blob.unwrap();
                let name = blob.file_name().into_string().unwrap();
                assert!(name.starts_with(shard.file_name().to_str().unwrap()), "{name} in the wrong shard");
                let bytes = std::fs::read(blob.path()).unwrap();
                assert_eq!(digest_of(algorithm, &bytes).hex(), name, "blob file content matches its name");
            }
        }
    }
}

async fn read_all(store: &FsBlobStore, digest: &Digest) -> Vec<u8> {
    let mut stream = store.read(digest, None).await.unwrap().stream;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_store_passes_the_conformance_suite_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    test_suite(&store).await;
    // A second run over the same store proves the suite (and the store) tolerate leftovers.
    test_suite(&store).await;
    assert_every_blob_matches_its_digest(dir.path());
    assert!(store.list_uploads().await.unwrap().is_empty(), "the suite leaves no session behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "no staging files are left behind: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_writer_with_complete_content_leaves_no_visible_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    let data = content(1, 5 * 1024 * 1024 + 17);
    let digest = sha256(&data);
    let id = UploadId::from_random(1);
    let mut writer = store.begin_upload(&id, &repo()).await.unwrap();
    for chunk in data.chunks(100_000) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    writer.sync().await.unwrap();
    drop(writer);

    assert_eq!(store.stat(&digest).await.unwrap(), None, "every byte arrived but nothing was finished");
    assert_eq!(store.read(&digest, None).await.unwrap_err().kind(), BlobErrorKind::NotFound);
    assert!(!store.blob_path(&digest).try_exists().unwrap());
    assert_every_blob_matches_its_digest(dir.path());

    // A restart (new store over the same root) resumes and finishes the session.
    drop(store);
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    assert_eq!(store.list_uploads().await.unwrap(), vec![id.clone()]);
    let (info, writer) = store.resume_upload(&id).await.unwrap().unwrap();
    assert_eq!((info.repo, info.offset), (repo(), data.len() as u64));
    assert_eq!(writer.finish(&digest).await.unwrap(), data.len() as u64);
    assert_eq!(read_all(&store, &digest).await, data);
    assert_every_blob_matches_its_digest(dir.path());
}

const CRASH_CHILD_ENV: &str = "GATI_BLOB_CRASH_CHILD_ROOT";
/// The first sync of the crash test, after one large write.
const CRASH_FIRST_SYNC: usize = 3 * 1024 * 1024 + 5;
/// The last sync of the crash test: at an unaligned offset, after many small writes.
const CRASH_SYNCED: usize = 6 * 1024 * 1024 + 4099;
const CRASH_TOTAL: usize = 9 * 1024 * 1024;

/// Runs in a child process: syncs part of an upload twice, keeps writing, and aborts mid-write.
async fn crash_child(root: &str) {
    let store = FsBlobStore::open(root).await.unwrap();
    let data = content(2, CRASH_TOTAL);
    let mut writer = store.begin_upload(&UploadId::from_random(2), &repo()).await.unwrap();
    writer.write(Bytes::copy_from_slice(&data[..CRASH_FIRST_SYNC])).await.unwrap();
    writer.sync().await.unwrap();
    for chunk in data[CRASH_FIRST_SYNC..CRASH_SYNCED].chunks(64 * 1024 + 7) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    writer.sync().await.unwrap();
    for chunk in data[CRASH_SYNCED..].chunks(64 * 1024) {
        writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    // No sync and no finish: a job may be mid-write right now.
    std::process::abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_abort_mid_upload_leaves_no_visible_blob_and_resumes() {
    if let Ok(root) = std::env::var(CRASH_CHILD_ENV) {
        crash_child(&root).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "process_abort_mid_upload_leaves_no_visible_blob_and_resumes", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die mid-upload");

    let data = content(2, CRASH_TOTAL);
    let digest = sha256(&data);
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None, "an unfinished upload is never a blob");
    assert_every_blob_matches_its_digest(dir.path());

    let id = UploadId::from_random(2);
    let (info, mut writer) = store.resume_upload(&id).await.unwrap().unwrap();
    let offset = info.offset as usize;
    assert!((CRASH_SYNCED..=CRASH_TOTAL).contains(&offset), "synced bytes survive the crash: {offset}");
    writer.write(Bytes::copy_from_slice(&data[offset..])).await.unwrap();
    assert_eq!(writer.finish(&digest).await.unwrap(), CRASH_TOTAL as u64);
    assert_eq!(read_all(&store, &digest).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_while_a_writer_is_live_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    let id = UploadId::from_random(3);
    let mut writer = store.begin_upload(&id, &repo()).await.unwrap();
    writer.write(Bytes::from_static(b"hello")).await.unwrap();
    let err = store.resume_upload(&id).await.err().expect("a live writer owns the session");
    assert_eq!(err.kind(), BlobErrorKind::UploadBusy);
    assert_eq!(err.code(), gati_core::ErrorCode::Conflict);
    assert_eq!(writer.finish(&sha256(b"hello")).await.unwrap(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_clears_staging_and_tolerates_foreign_upload_entries() {
    let dir = tempfile::tempdir().unwrap();
    drop(FsBlobStore::open(dir.path()).await.unwrap());
    std::fs::write(dir.path().join("tmp/put-1-1"), b"half a manifest").unwrap();
    std::fs::create_dir(dir.path().join("uploads/not-an-id")).unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    assert!(store.list_uploads().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_session_record_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    let id = UploadId::from_random(4);
    drop(store.begin_upload(&id, &repo()).await.unwrap());
    let record = dir.path().join("uploads").join(id.as_str()).join("info.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(json["repo"], "library/alpine");
    assert!(json["started_at_unix_secs"].as_u64().unwrap() > 1_600_000_000);
    std::fs::write(&record, b"{not json").unwrap();
    assert_eq!(store.upload_info(&id).await.unwrap_err().kind(), BlobErrorKind::Corrupt);
    store.abort_upload(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stream_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::open(dir.path()).await.unwrap();
    let data = content(5, 4 * 1024 * 1024 + 3);
    let digest = sha256(&data);
    store.put_verified(&digest, Bytes::from(data.clone())).await.unwrap();
    let mut stream = store.read(&digest, Some((1, data.len() as u64 - 2))).await.unwrap().stream;
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= 1024 * 1024, "chunk of {} bytes", chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert!(got == data[1..data.len() - 1]);
}

/// The fs store on the temp dir's filesystem and on tmpfs when there is one: uploads must behave
/// the same on both.
async fn store_variants() -> Vec<(String, tempfile::TempDir, FsBlobStore)> {
    let mut bases = vec![std::env::temp_dir()];
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && shm != std::env::temp_dir() {
        bases.push(shm.to_path_buf());
    }
    let mut variants = Vec::new();
    for base in bases {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let store = FsBlobStore::open(dir.path()).await.unwrap();
        variants.push((base.display().to_string(), dir, store));
    }
    variants
}

/// Reads a session's data file, with `O_DIRECT` where the filesystem allows, so the bytes come
/// back from the storage stack rather than from the page cache. A direct read writes dirty pages
/// back first, so this shows that the bytes reached the file and that the device returns them.
/// Durability across power loss rests on the `fdatasync` in `sync`, which a test inside a running
/// kernel cannot observe.
fn read_session_data(root: &Path, id: &UploadId) -> Vec<u8> {
    let path = root.join("uploads").join(id.as_str()).join("data");
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        if let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&path) {
            let len = usize::try_from(file.metadata().unwrap().len()).unwrap();
            let padded = len.div_ceil(4096) * 4096;
            let mut raw = vec![0u8; padded + 4096];
            let start = raw.as_ptr().align_offset(4096);
            let buf = &mut raw[start..start + padded];
            let mut read = 0;
            loop {
                match file.read_at(&mut buf[read..], read as u64) {
                    Ok(0) => break,
                    Ok(n) => read += n,
                    // Not every filesystem takes unaligned-length direct reads near the end.
                    Err(_) => return std::fs::read(&path).unwrap(),
                }
                if read % 4096 != 0 {
                    break;
                }
            }
            assert_eq!(read, len, "a direct read returns the whole file");
            return buf[..len].to_vec();
        }
    }
    std::fs::read(path).unwrap()
}

/// Chunk sizes that are not multiples of a block, nor of each other, with a sync after each; some
/// cross the 1 MiB write batch and the 8 MiB writeback step.
const AWKWARD_CHUNKS: [usize; 9] = [1, 4095, 1024 * 1024 - 1, 3, 2 * 1024 * 1024 + 4097, 4096, 17, 1024 * 1024, 65_537];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unaligned_chunks_across_syncs_are_on_disk_after_each_sync() {
    for (name, dir, store) in store_variants().await {
        let total: usize = AWKWARD_CHUNKS.iter().sum();
        let data = content(11, total);
        let id = UploadId::from_random(11);
        let mut writer = store.begin_upload(&id, &repo()).await.unwrap();
        let mut at = 0;
        for size in AWKWARD_CHUNKS {
            // Each request body arrives in several chunks of its own.
            for chunk in data[at..at + size].chunks(100_003) {
                writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            at += size;
            writer.sync().await.unwrap();
            assert_eq!(writer.offset(), at as u64, "{name}");
            assert!(read_session_data(dir.path(), &id) == data[..at], "{name}: the file holds what sync acknowledged");
        }
        assert_eq!(writer.finish(&sha256(&data)).await.unwrap(), total as u64, "{name}");
        assert!(read_all(&store, &sha256(&data)).await == data, "{name}");
        assert_every_blob_matches_its_digest(dir.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_bytes_survive_dropping_the_writer_and_resume_at_unaligned_offsets() {
    for (name, dir, store) in store_variants().await {
        let data = content(12, 7 * 1024 * 1024 + 333);
        let digest = sha256(&data);
        let id = UploadId::from_random(12);
        // Each stop is unaligned; the writer is dropped after every sync and the session resumed.
        let stops = [1024 * 1024 + 4097, 1024 * 1024 + 4100, 3 * 1024 * 1024 + 1, 5 * 1024 * 1024 + 4095, data.len()];
        let mut writer = store.begin_upload(&id, &repo()).await.unwrap();
        let mut at = 0;
        for stop in stops {
            for chunk in data[at..stop].chunks(64 * 1024 + 1) {
                writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            writer.sync().await.unwrap();
            at = stop;
            drop(writer);
            assert!(read_session_data(dir.path(), &id) == data[..at], "{name}: acknowledged bytes are in the file");
            assert_eq!(store.upload_info(&id).await.unwrap().unwrap().offset, at as u64, "{name}");
            let (info, resumed) = store.resume_upload(&id).await.unwrap().unwrap();
            assert_eq!(info.offset, at as u64, "{name}");
            writer = resumed;
        }
        assert_eq!(writer.finish(&digest).await.unwrap(), data.len() as u64, "{name}");
        assert!(read_all(&store, &digest).await == data, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_variant_passes_the_conformance_suite() {
    for (name, dir, store) in store_variants().await {
        eprintln!("conformance suite on {name}");
        test_suite(&store).await;
        assert_every_blob_matches_its_digest(dir.path());
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// However an upload is cut into chunks (and wherever it is synced, dropped and resumed), the
    /// finished blob has the digest of the whole byte string.
    #[test]
    fn arbitrary_chunking_through_the_store_gives_the_whole_digest(
        // A seed and a length rather than a `Vec<u8>` strategy: proptest builds a value tree per
        // element, which is far too slow at megabytes, and the cuts are what needs shrinking.
        seed in any::<u64>(),
        len in 0usize..3_000_000,
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
        resume_at in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let data = content(seed, len);
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = FsBlobStore::open(dir.path()).await.unwrap();
            let digest = sha256(&data);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            points.extend([0, data.len()]);
            points.sort_unstable();
            let resume_at = resume_at.map(|i| points[i.index(points.len())]);
            let id = UploadId::from_random(9);
            let mut writer = store.begin_upload(&id, &repo()).await.unwrap();
            for pair in points.windows(2) {
                if Some(pair[0]) == resume_at {
                    writer.sync().await.unwrap();
                    drop(writer);
                    let (info, resumed) = store.resume_upload(&id).await.unwrap().unwrap();
                    assert_eq!(info.offset, pair[0] as u64);
                    writer = resumed;
                }
                writer.write(Bytes::copy_from_slice(&data[pair[0]..pair[1]])).await.unwrap();
            }
            assert_eq!(writer.finish(&digest).await.unwrap(), data.len() as u64);
            assert_eq!(store.stat(&digest).await.unwrap(), Some(data.len() as u64));
        });
    }
}
