//! The S3 backend against a real S3 server (s3s-fs on loopback): the conformance suite, and what
//! the suite's small blobs cannot reach — multipart uploads, sessions resumed on another node,
//! lease conflicts, a stale writer, large copies, presigned URLs and connection errors.

// STYLE §3: `unwrap` is allowed in tests.
#![allow(clippy::unwrap_used)]

mod server;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use gati_blob::{BlobErrorKind, BlobStore, UploadWriter, digest_of, test_suite};
use gati_blob_s3::{S3BlobStore, S3Config};
use gati_core::{Digest, DigestAlgorithm, RepoName, UploadId};
use server::S3Server;

const MIB: usize = 1024 * 1024;

fn repo() -> RepoName {
    "library/alpine".parse().unwrap()
}

fn sha256(bytes: &[u8]) -> Digest {
    digest_of(DigestAlgorithm::Sha256, bytes)
}

fn upload_id() -> UploadId {
    UploadId::from_random(rand::random())
}

/// Pseudo-random bytes, different per seed.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Upload leases and blob commits rely on create-only writes: `connect` probes for them and
/// refuses a store that ignores them, unless the operator accepts that explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_conditional_writes_is_refused_unless_allowed() {
    refused_unless_allowed(&S3Server::start().await).await;
}

async fn refused_unless_allowed(server: &S3Server) {
    let mut strict = server.config();
    strict.allow_unconditional_writes = false;
    let connected = S3BlobStore::connect(&strict).await;
    if server.conditional_writes {
        assert!(connected.is_ok(), "{:?}", connected.err());
    } else {
        let Err(err) = connected else { panic!("a store without conditional writes is refused") };
        assert_eq!(err.kind(), BlobErrorKind::Io);
        assert!(err.to_string().contains("ignores conditional writes"), "{err}");
        let mut lenient = strict.clone();
        lenient.allow_unconditional_writes = true;
        S3BlobStore::connect(&lenient).await.expect("accepted when allowed");
    }
}

async fn connect(config: &S3Config) -> S3BlobStore {
    S3BlobStore::connect(config).await.unwrap()
}

/// Writes `data` in chunks cycling through `sizes`.
async fn write_chunks(writer: &mut Box<dyn UploadWriter>, data: &[u8], sizes: &[usize]) {
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        writer.write(Bytes::copy_from_slice(&data[at..end])).await.unwrap();
        at = end;
    }
}

async fn read_all(store: &dyn BlobStore, digest: &Digest, range: Option<(u64, u64)>) -> Vec<u8> {
    let mut stream = store.read(digest, range).await.unwrap().stream;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

async fn upload_whole(store: &dyn BlobStore, data: &[u8], expected: &Digest) -> gati_blob::Result<u64> {
    let mut writer = store.begin_upload(&upload_id(), &repo()).await.unwrap();
    write_chunks(&mut writer, data, &[700_001]).await;
    writer.finish(expected).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_suite() {
    let server = S3Server::start().await;
    let mut config = server.config();
    config.key_prefix = "tenants/suite".into();
    test_suite(&connect(&config).await).await;
    // Everything lives under the prefix.
    let listed = server.client().list_objects_v2().bucket(&server.bucket).send().await.unwrap();
    assert!(listed.contents().iter().all(|o| o.key().unwrap().starts_with("tenants/suite/")));
    assert!(listed.contents().iter().any(|o| o.key().unwrap().starts_with("tenants/suite/blobs/sha256/")));
}

/// The cross-node case: begun and synced through one store, finished through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_begun_on_one_node_finishes_on_another() {
    let server = S3Server::start().await;
    let node_a = connect(&server.config()).await;
    let node_b = connect(&server.config()).await;
    let data = content(1, 17 * MIB + 123_457);
    let digest = sha256(&data);
    let id = upload_id();

    // Node A: two full parts in chunks that straddle the part boundaries, then a tail built by
    // several syncs (so its segments merge and are superseded).
    let mut writer = node_a.begin_upload(&id, &repo()).await.unwrap();
    let mut synced = 10 * MIB + 1;
    write_chunks(&mut writer, &data[..synced], &[1_000_003, 65_536, 3]).await;
    writer.sync().await.unwrap();
    for len in [100_000, 50_000, 20_000, 400_000, 7, 300_001] {
        write_chunks(&mut writer, &data[synced..synced + len], &[len]).await;
        writer.sync().await.unwrap();
        synced += len;
        assert_eq!(node_b.upload_info(&id).await.unwrap().unwrap().offset, synced as u64, "every sync is visible");
    }
    // Bytes after the last sync are not promised to survive the writer.
    writer.write(Bytes::copy_from_slice(&data[synced..synced + 4096])).await.unwrap();
    drop(writer);
    node_a.settle_lease_releases().await;

    // Node B sees exactly the synced bytes and carries on from there.
    let info = node_b.upload_info(&id).await.unwrap().unwrap();
    assert_eq!((info.repo, info.offset), (repo(), synced as u64));
    let (info, mut writer) = node_b.resume_upload(&id).await.unwrap().unwrap();
    assert_eq!(info.offset, synced as u64);
    assert_eq!(writer.offset(), synced as u64);
    let second_sync = 13 * MIB;
    write_chunks(&mut writer, &data[synced..second_sync], &[333_333]).await;
    writer.sync().await.unwrap();
    assert_eq!(node_a.upload_info(&id).await.unwrap().unwrap().offset, second_sync as u64);
    write_chunks(&mut writer, &data[second_sync..], &[2 * MIB + 1]).await;
    assert_eq!(writer.finish(&digest).await.unwrap(), data.len() as u64);

    // Visible to both nodes, byte for byte, and the session is gone everywhere.
    for node in [&node_a, &node_b] {
        assert_eq!(node.stat(&digest).await.unwrap(), Some(data.len() as u64));
        assert!(read_all(node, &digest, None).await == data);
        assert!(node.upload_info(&id).await.unwrap().is_none());
    }
    let leftovers = server.client().list_objects_v2().bucket(&server.bucket).prefix("uploads/").send().await.unwrap();
    assert_eq!(leftovers.contents().len(), 0, "finishing removes every session object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_a_live_writer_is_busy_everywhere() {
    let server = S3Server::start().await;
    if !server.conditional_writes {
        // Exclusion is impossible on such a store; what must hold is that it is never assumed.
        return refused_unless_allowed(&server).await;
    }
    let node_a = connect(&server.config()).await;
    let node_b = connect(&server.config()).await;
    let data = content(2, 6 * MIB);
    let digest = sha256(&data);
    let id = upload_id();
    let mut writer = node_a.begin_upload(&id, &repo()).await.unwrap();
    write_chunks(&mut writer, &data[..3 * MIB], &[MIB]).await;
    writer.sync().await.unwrap();

    for node in [&node_b, &node_a] {
        let err = node.resume_upload(&id).await.err().expect("a live session cannot be taken over");
        assert_eq!(err.kind(), BlobErrorKind::UploadBusy, "{err}");
    }
    let err = node_b.begin_upload(&id, &repo()).await.err().expect("the id is taken");
    assert_eq!(err.kind(), BlobErrorKind::UploadExists);

    // The owner is undisturbed.
    write_chunks(&mut writer, &data[3 * MIB..], &[MIB]).await;
    assert_eq!(writer.finish(&digest).await.unwrap(), data.len() as u64);
    assert!(read_all(&node_b, &digest, None).await == data);
}

/// A writer whose lease lapsed and was taken over can neither write the session nor reach the
/// blob, and a part overwritten behind the finisher's back is caught at completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_never_reaches_a_committed_blob() {
    let server = S3Server::start().await;
    if !server.conditional_writes {
        return refused_unless_allowed(&server).await;
    }
    let mut lapsing = server.config();
    lapsing.upload_lease_secs = 0;
    let node_a = connect(&lapsing).await;
    let node_b = connect(&server.config()).await;
    let data = content(3, 12 * MIB);
    let digest = sha256(&data);
    let id = upload_id();

    let mut stale = node_a.begin_upload(&id, &repo()).await.unwrap();
    write_chunks(&mut stale, &data[..6 * MIB], &[MIB]).await;
    stale.sync().await.unwrap();
    // Node A stalls; its lease has lapsed, so node B takes the session over.
    let (info, mut owner) = node_b.resume_upload(&id).await.unwrap().unwrap();
    assert_eq!(info.offset, 6 * MIB as u64);

    let err = stale.write(Bytes::from(content(99, MIB))).await.expect_err("the stale writer has lost the session");
    assert_eq!(err.kind(), BlobErrorKind::UploadBusy, "{err}");
    let err = stale.sync().await.expect_err("and stays poisoned");
    assert_eq!(err.kind(), BlobErrorKind::Io);
    let err = stale.finish(&sha256(&content(99, MIB))).await.expect_err("a stale writer cannot finish");
    assert_eq!(err.kind(), BlobErrorKind::Io);

    write_chunks(&mut owner, &data[6 * MIB..], &[MIB]).await;
    assert_eq!(owner.finish(&digest).await.unwrap(), data.len() as u64);
    assert!(read_all(&node_b, &digest, None).await == data);

    // Now a part overwritten after the finisher recorded it, as a stale writer would.
    let data = content(4, 11 * MIB);
    let digest = sha256(&data);
    let id = upload_id();
    let mut writer = node_b.begin_upload(&id, &repo()).await.unwrap();
    write_chunks(&mut writer, &data, &[MIB]).await;
    writer.sync().await.unwrap();
    let record_key = format!("uploads/{id}/record.json");
    let record = server.client().get_object().bucket(&server.bucket).key(&record_key).send().await.unwrap();
    let record: serde_json::Value = serde_json::from_slice(&record.body.collect().await.unwrap().into_bytes()).unwrap();
    let multipart_upload_id = record["multipart_upload_id"].as_str().unwrap();
    server
        .client()
        .upload_part()
        .bucket(&server.bucket)
        .key(format!("uploads/{id}/data"))
        .upload_id(multipart_upload_id)
        .part_number(1)
        .body(Bytes::from(content(5, 5 * MIB)).into())
        .send()
        .await
        .unwrap();
    let err = writer.finish(&digest).await.expect_err("completion notices the replaced part");
    assert_eq!(err.kind(), BlobErrorKind::Corrupt, "{err}");
    assert_eq!(node_b.stat(&digest).await.unwrap(), None, "nothing stored under the digest");
    assert!(node_b.upload_info(&id).await.unwrap().is_none(), "the session is discarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_blobs_verify_deduplicate_and_read_in_ranges() {
    let server = S3Server::start().await;
    let mut config = server.config();
    config.parts_in_flight = 1;
    let store = connect(&config).await;
    let data = content(6, 10 * MIB + 5);
    let digest = sha256(&data);

    let wrong = sha256(&content(7, 10));
    let err = upload_whole(&store, &data, &wrong).await.expect_err("wrong digest");
    assert_eq!(err.kind(), BlobErrorKind::DigestMismatch);
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert_eq!(store.stat(&wrong).await.unwrap(), None);

    assert_eq!(upload_whole(&store, &data, &digest).await.unwrap(), data.len() as u64);
    assert_eq!(upload_whole(&store, &data, &digest).await.unwrap(), data.len() as u64, "deduplicated");
    assert!(store.list_uploads().await.unwrap().is_empty(), "no session outlives its finish");

    let size = data.len() as u64;
    let five = 5 * MIB as u64;
    for (asked, served) in [
        ((five - 10, five + 10), (five - 10, five + 10)),
        ((0, size - 1), (0, size - 1)),
        ((size - 1, u64::MAX), (size - 1, size - 1)),
        ((3, 2 * five + 1000), (3, size - 1)),
    ] {
        let read = store.read(&digest, Some(asked)).await.unwrap();
        assert_eq!((read.size_total, read.range), (size, Some(served)));
        let got = read_all(&store, &digest, Some(asked)).await;
        assert!(got == data[served.0 as usize..=served.1 as usize], "range {asked:?}");
    }
    let err = store.read(&digest, Some((size, size))).await.unwrap_err();
    assert_eq!(err.kind(), BlobErrorKind::RangeNotSatisfiable);

    // SHA-512 is verified by reading the completed object back.
    let sha512 = digest_of(DigestAlgorithm::Sha512, &data);
    assert_eq!(upload_whole(&store, &data, &sha512).await.unwrap(), size);
    assert!(read_all(&store, &sha512, None).await == data);
    let wrong512 = digest_of(DigestAlgorithm::Sha512, b"other");
    let err = upload_whole(&store, &data, &wrong512).await.expect_err("wrong sha512");
    assert_eq!(err.kind(), BlobErrorKind::DigestMismatch);
    assert_eq!(store.stat(&wrong512).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_above_the_copy_limit_are_copied_in_parts() {
    let server = S3Server::start().await;
    let mut config = server.config();
    config.copy_part_size = 5 * 1024 * 1024;
    let store = connect(&config).await;
    let data = content(8, 12 * MIB + 99);
    let digest = sha256(&data);
    assert_eq!(upload_whole(&store, &data, &digest).await.unwrap(), data.len() as u64);
    assert!(read_all(&store, &digest, None).await == data);
    let head = server.client().head_object().bucket(&server.bucket).key(blob_key(&digest)).send().await.unwrap();
    assert!(head.e_tag().unwrap().ends_with("-3\""), "copied as three parts: {:?}", head.e_tag());
}

fn blob_key(digest: &Digest) -> String {
    format!("blobs/{}/{}/{}", digest.algorithm(), &digest.hex()[..2], digest.hex())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_serve_the_blob_to_any_http_client() {
    let server = S3Server::start().await;
    let plain = connect(&server.config()).await;
    let data = content(9, 200_000);
    let digest = sha256(&data);
    plain.put_verified(&digest, Bytes::from(data.clone())).await.unwrap();
    assert_eq!(plain.presigned_read_url(&digest, Duration::from_secs(60)).await.unwrap(), None, "off by default");

    let mut config = server.config();
    config.redirect_reads = true;
    let redirecting = connect(&config).await;
    let url = redirecting.presigned_read_url(&digest, Duration::from_secs(60)).await.unwrap().unwrap();
    assert!(url.starts_with(&format!("{}/{}/blobs/sha256/", server.endpoint, server.bucket)), "{url}");
    let (status, body) = http_get(&url).await;
    assert_eq!(status, 200);
    assert!(body == data, "the URL serves the blob's bytes");

    // A URL is bound to its signature: tampering with it is refused.
    let (status, _) = http_get(&url.replace("X-Amz-Expires=60", "X-Amz-Expires=61")).await;
    assert_eq!(status, 403);
}

/// A minimal HTTP/1.1 GET over a raw socket, as any client following a redirect would send it.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response[split + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>()))
        .map(Result::unwrap);
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "expected a sized body:\n{head}");
    assert_eq!(length, Some(body.len()), "the whole body arrived:\n{head}");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_missing_bucket_or_with_bad_credentials_fails_clearly() {
    let server = S3Server::start().await;
    let mut config = server.config();
    config.bucket = "no-such-bucket-here".into();
    let err = S3BlobStore::connect(&config).await.unwrap_err();
    assert_eq!(err.kind(), BlobErrorKind::Io);
    assert!(err.to_string().contains("\"no-such-bucket-here\" does not exist"), "{err}");

    let mut config = server.config();
    config.secret_access_key = "wrong".into();
    config.max_attempts = 1;
    let err = S3BlobStore::connect(&config).await.unwrap_err();
    assert!(err.to_string().contains("access denied"), "{err}");

    let mut config = server.config();
    config.part_size = 1024;
    let err = S3BlobStore::connect(&config).await.unwrap_err();
    assert!(err.to_string().contains("part_size"), "{err}");
}
