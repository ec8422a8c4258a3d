//! The OCI distribution API, end to end through the real router on temporary state: every endpoint,
//! its headers, and the spec's error bodies; bad input leaves the store consistent.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use gati_registry::{Config, Node};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha512};
use tower::ServiceExt;

struct Api {
    router: Router,
    _node: Node,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not json: {:?}", self.body))
    }

    /// Asserts an OCI error body with this status and code.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {:?}", String::from_utf8_lossy(&self.body));
        let v = self.json();
        assert_eq!(v["errors"][0]["code"], code, "body: {v}");
        assert!(v["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let node = Node::start(&config).await.unwrap();
        let router = gati_registry::http::router(node.registry().clone(), node.identity().clone(), None, None);
        Api { router, _node: node, _dir: dir }
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.router.clone().oneshot(req.body(body.into()).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        Reply { status, headers, body }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }

    /// Pushes a blob monolithically and returns its digest.
    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let r =
            self.send(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"), &[], bytes.to_vec()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        digest
    }

    /// Pushes an image manifest over fresh blobs; returns (manifest bytes, digest).
    async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Vec<u8>, String) {
        let config = self.push_blob(repo, format!("config {seed}").as_bytes()).await;
        let layer = self.push_blob(repo, format!("layer {seed}").as_bytes()).await;
        let manifest = image_manifest(&config, &layer, None);
        let r = self.put_manifest(repo, tag, &manifest, &[]).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", String::from_utf8_lossy(&r.body));
        let digest = sha256(&manifest);
        assert_eq!(r.header("docker-content-digest"), digest);
        (manifest, digest)
    }

    async fn put_manifest(&self, repo: &str, reference: &str, body: &[u8], extra: &[(&str, &str)]) -> Reply {
        let mut headers = vec![("content-type", "application/vnd.oci.image.manifest.v1+json")];
        headers.extend_from_slice(extra);
        self.send(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"), &headers, body.to_vec()).await
    }
}

fn image_manifest(config: &str, layer: &str, subject: Option<(&str, usize)>) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 8},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 7}],
    });
    if let Some((digest, size)) = subject {
        m["subject"] =
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size});
        m["artifactType"] = json!("application/vnd.example.sbom");
        m["annotations"] = json!({"org.example.kind": "sbom"});
    }
    serde_json::to_vec(&m).unwrap()
}

#[tokio::test]
async fn base_endpoint_announces_the_api() {
    let api = Api::new().await;
    let r = api.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    assert_eq!(api.get("/v2").await.status, StatusCode::OK);
    api.get("/v2/nothing").await.assert_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    assert_eq!(api.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(api.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn monolithic_blob_push_pull_head_and_ranges() {
    let api = Api::new().await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = api.push_blob("library/a", &data).await;

    let r = api.send(Method::HEAD, &format!("/v2/library/a/blobs/{digest}"), &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "100000");
    assert_eq!(r.header("docker-content-digest"), digest);
    assert!(r.body.is_empty());

    let r = api.get(&format!("/v2/library/a/blobs/{digest}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_ref(), &data[..]);

    let ranged = |range: &'static str| {
        let api = &api;
        let digest = digest.clone();
        async move {
            api.send(Method::GET, &format!("/v2/library/a/blobs/{digest}"), &[("range", range)], Body::empty()).await
        }
    };
    let r = ranged("bytes=10-19").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 10-19/100000");
    assert_eq!(r.body.as_ref(), &data[10..20]);
    let r = ranged("bytes=-5").await;
    assert_eq!(r.body.as_ref(), &data[99_995..]);
    let r = ranged("bytes=99990-200000").await;
    assert_eq!(r.header("content-range"), "bytes 99990-99999/100000");
    let r = ranged("bytes=100000-").await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */100000");

    // The blob is linked to its repository only.
    api.get(&format!("/v2/library/b/blobs/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn wrong_digests_are_refused_and_store_nothing() {
    let api = Api::new().await;
    let wrong = sha256(b"something else");
    let r = api.send(Method::POST, &format!("/v2/r/blobs/uploads/?digest={wrong}"), &[], b"payload".to_vec()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    api.get(&format!("/v2/r/blobs/{wrong}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    let right = sha256(b"payload");
    api.get(&format!("/v2/r/blobs/{right}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    let r = api.send(Method::POST, "/v2/r/blobs/uploads/?digest=sha256:abc", &[], b"x".to_vec()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let r = api
        .send(Method::POST, "/v2/r/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e", &[], b"x".to_vec())
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let r = api.get("/v2/_catalog").await;
    assert_eq!(r.json()["repositories"], json!([]), "failed pushes create no repository");
}

#[tokio::test]
async fn sha512_blobs_are_verified() {
    let api = Api::new().await;
    let digest = format!("sha512:{}", hex::encode(Sha512::digest(b"sha512 content")));
    let r =
        api.send(Method::POST, &format!("/v2/r/blobs/uploads/?digest={digest}"), &[], b"sha512 content".to_vec()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(api.get(&format!("/v2/r/blobs/{digest}")).await.body.as_ref(), b"sha512 content");
}

#[tokio::test]
async fn chunked_upload_status_order_and_finish() {
    let api = Api::new().await;
    let r = api.send(Method::POST, "/v2/r/blobs/uploads/", &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").to_owned();
    assert!(location.starts_with("/v2/r/blobs/uploads/"));
    assert_eq!(r.header("range"), "0-0");
    assert!(!r.header("docker-upload-uuid").is_empty());

    let r = api
        .send(Method::PATCH, &location, &[("content-range", "0-4"), ("content-length", "5")], b"hello".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-4");
    // A gap is refused with 416 and the upload is unchanged.
    let r = api.send(Method::PATCH, &location, &[("content-range", "7-9")], b"xyz".to_vec()).await;
    r.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID");
    // Content-Length must match the range.
    let r =
        api.send(Method::PATCH, &location, &[("content-range", "5-9"), ("content-length", "3")], b"abc".to_vec()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    let r = api.send(Method::GET, &location, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-4");
    // Streamed chunk without Content-Range.
    let r = api.send(Method::PATCH, &location, &[], b" wor".to_vec()).await;
    assert_eq!(r.header("range"), "0-8");
    let digest = sha256(b"hello world");
    let r = api
        .send(Method::PUT, &format!("{location}?digest={digest}"), &[("content-range", "9-10")], b"ld".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/r/blobs/{digest}"));
    assert_eq!(api.get(&format!("/v2/r/blobs/{digest}")).await.body.as_ref(), b"hello world");
    // The session is gone once finished.
    api.send(Method::GET, &location, &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_digest_mismatch_cancel_and_foreign_sessions() {
    let api = Api::new().await;
    let r = api.send(Method::POST, "/v2/r/blobs/uploads/", &[], Body::empty()).await;
    let location = r.header("location").to_owned();
    api.send(Method::PATCH, &location, &[], b"abc".to_vec()).await;
    // Another repository cannot touch this session.
    let foreign = location.replace("/v2/r/", "/v2/other/");
    api.send(Method::GET, &foreign, &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    let r = api.send(Method::PUT, &location, &[], Body::empty()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let wrong = sha256(b"abd");
    let r = api.send(Method::PUT, &format!("{location}?digest={wrong}"), &[], Body::empty()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    api.get(&format!("/v2/r/blobs/{wrong}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    let r = api.send(Method::POST, "/v2/r/blobs/uploads/", &[], Body::empty()).await;
    let location = r.header("location").to_owned();
    assert_eq!(api.send(Method::DELETE, &location, &[], Body::empty()).await.status, StatusCode::NO_CONTENT);
    api.send(Method::PATCH, &location, &[], b"x".to_vec())
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    api.send(Method::GET, "/v2/r/blobs/uploads/../../etc", &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn cross_repository_mount_and_fallback() {
    let api = Api::new().await;
    let digest = api.push_blob("src/repo", b"shared layer").await;
    let r = api
        .send(Method::POST, &format!("/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo"), &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("docker-content-digest"), digest);
    assert_eq!(api.get(&format!("/v2/dst/repo/blobs/{digest}")).await.body.as_ref(), b"shared layer");
    // Without `from`: found wherever it is linked.
    let r = api.send(Method::POST, &format!("/v2/third/blobs/uploads/?mount={digest}"), &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(api.get(&format!("/v2/third/blobs/{digest}")).await.body.as_ref(), b"shared layer");
    // Unlinked everywhere, its bytes are not discoverable even before garbage collection.
    for repo in ["src/repo", "dst/repo", "third"] {
        assert_eq!(
            api.send(Method::DELETE, &format!("/v2/{repo}/blobs/{digest}"), &[], Body::empty()).await.status,
            StatusCode::ACCEPTED
        );
    }
    let r = api.send(Method::POST, &format!("/v2/fourth/blobs/uploads/?mount={digest}"), &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Unknown source: a normal upload session instead.
    let r = api
        .send(Method::POST, &format!("/v2/dst/repo/blobs/uploads/?mount={digest}&from=nowhere"), &[], Body::empty())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").starts_with("/v2/dst/repo/blobs/uploads/"));
}

#[tokio::test]
async fn manifests_by_tag_and_digest_with_negotiation() {
    let api = Api::new().await;
    let config = api.push_blob("r", b"config!!").await;
    let layer = api.push_blob("r", b"layer!!").await;
    let manifest = image_manifest(&config, &layer, None);
    let digest = sha256(&manifest);

    let r = api.put_manifest("r", "v1", &manifest, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("location"), format!("/v2/r/manifests/{digest}"));

    for reference in ["v1", digest.as_str()] {
        let r = api.get(&format!("/v2/r/manifests/{reference}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body.as_ref(), &manifest[..]);
        assert_eq!(r.header("content-type"), "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(r.header("docker-content-digest"), digest);
        assert_eq!(r.header("etag"), format!("\"{digest}\""));
        let h = api.send(Method::HEAD, &format!("/v2/r/manifests/{reference}"), &[], Body::empty()).await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.header("content-length"), manifest.len().to_string());
        assert!(h.body.is_empty());
    }
    let accept_docker = [("accept", "application/vnd.docker.distribution.manifest.v2+json")];
    api.send(Method::GET, "/v2/r/manifests/v1", &accept_docker, Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let accept_both = [(
        "accept",
        "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
    )];
    assert_eq!(api.send(Method::GET, "/v2/r/manifests/v1", &accept_both, Body::empty()).await.status, StatusCode::OK);
    let etag = format!("\"{digest}\"");
    let r = api.send(Method::GET, "/v2/r/manifests/v1", &[("if-none-match", etag.as_str())], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    api.get("/v2/r/manifests/nope").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let h = api.send(Method::HEAD, "/v2/r/manifests/nope", &[], Body::empty()).await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);
    assert!(h.body.is_empty());

    // By digest: the body must hash to it.
    let r = api.put_manifest("r", &sha256(b"not it"), &manifest, &[]).await;
    r.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let r = api.put_manifest("r", &digest, &manifest, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_manifests_get_spec_errors_and_change_nothing() {
    let api = Api::new().await;
    let (_, good) = api.push_image("r", "v1", "a").await;
    api.put_manifest("r", "v1", b"{not json", &[]).await.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    api.put_manifest("r", "v1", br#"{"schemaVersion":2}"#, &[])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    let missing = image_manifest(&sha256(b"absent config"), &sha256(b"absent layer"), None);
    let r = api.put_manifest("r", "v1", &missing, &[]).await;
    r.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert!(r.json()["errors"][0]["detail"]["digest"].as_str().is_some());
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    api.put_manifest("r", "v1", &huge, &[]).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID");
    api.put_manifest("r", "bad:tag", b"{}", &[]).await.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let r = api.get("/v2/r/manifests/v1").await;
    assert_eq!(r.header("docker-content-digest"), good, "the tag is untouched by refused pushes");
    let tags = api.get("/v2/r/tags/list").await.json();
    assert_eq!(tags["tags"], json!(["v1"]));
}

#[tokio::test]
async fn hostile_names_are_refused() {
    let api = Api::new().await;
    let long = "a".repeat(300);
    for name in ["..", "a/../b", "UPPER/case", long.as_str(), "a//b", "-a"] {
        let r = api.send(Method::POST, &format!("/v2/{name}/blobs/uploads/"), &[], Body::empty()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(r.json()["errors"][0]["code"], "NAME_INVALID", "{name}");
        let r = api.get(&format!("/v2/{name}/tags/list")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}");
    }
    assert_eq!(api.get("/v2/_catalog").await.json()["repositories"], json!([]));
}

#[tokio::test]
async fn index_requires_its_children() {
    let api = Api::new().await;
    let (child, child_digest) = api.push_image("r", "amd64", "amd64").await;
    let index = |d: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": child.len(),
                           "platform": {"os": "linux", "architecture": "amd64"}}]
        }))
        .unwrap()
    };
    let ct = [("content-type", "application/vnd.oci.image.index.v1+json")];
    let r = api.send(Method::PUT, "/v2/r/manifests/multi", &ct, index(&sha256(b"nope"))).await;
    r.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    let r = api.send(Method::PUT, "/v2/r/manifests/multi", &ct, index(&child_digest)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api.get("/v2/r/manifests/multi").await;
    assert_eq!(r.header("content-type"), "application/vnd.oci.image.index.v1+json");
}

#[tokio::test]
async fn conditional_tag_updates() {
    let api = Api::new().await;
    let (m1, d1) = api.push_image("r", "base", "one").await;
    let (m2, d2) = api.push_image("r", "other", "two").await;
    let r = api.put_manifest("r", "t", &m1, &[("if-none-match", "*")]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api.put_manifest("r", "t", &m2, &[("if-none-match", "*")]).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.header("etag"), format!("\"{d1}\""));
    let stale = format!("\"{d2}\"");
    let r = api.put_manifest("r", "t", &m2, &[("if-match", stale.as_str())]).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(api.get("/v2/r/manifests/t").await.header("docker-content-digest"), d1);
    let fresh = format!("\"{d1}\"");
    let r = api.put_manifest("r", "t", &m2, &[("if-match", fresh.as_str())]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(api.get("/v2/r/manifests/t").await.header("docker-content-digest"), d2);
}

#[tokio::test]
async fn concurrent_conditional_updates_have_one_winner() {
    let api = Api::new().await;
    let (m0, d0) = api.push_image("r", "t", "zero").await;
    let _ = m0;
    let mut candidates = Vec::new();
    for i in 0..8 {
        candidates.push(api.push_image("r", &format!("c{i}"), &format!("cand{i}")).await.0);
    }
    let if_match = format!("\"{d0}\"");
    let mut tasks = Vec::new();
    for m in candidates {
        let router = api.router.clone();
        let if_match = if_match.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::put("/v2/r/manifests/t")
                .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                .header("if-match", if_match)
                .body(Body::from(m))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count(), 7, "{statuses:?}");
}

#[tokio::test]
async fn tag_and_catalog_pagination() {
    let api = Api::new().await;
    let (m, _) = api.push_image("lib/a", "t0", "x").await;
    for t in ["t3", "t1", "t2"] {
        assert_eq!(api.put_manifest("lib/a", t, &m, &[]).await.status, StatusCode::CREATED);
    }
    api.push_blob("lib/b", b"b").await;
    api.push_blob("lib/c", b"c").await;
    let r = api.get("/v2/lib/a/tags/list?n=2").await;
    assert_eq!(r.json(), json!({"name": "lib/a", "tags": ["t0", "t1"]}));
    assert_eq!(r.header("link"), "</v2/lib/a/tags/list?n=2&last=t1>; rel=\"next\"");
    let r = api.get("/v2/lib/a/tags/list?n=2&last=t1").await;
    assert_eq!(r.json()["tags"], json!(["t2", "t3"]));
    assert_eq!(r.header("link"), "");
    assert_eq!(api.get("/v2/lib/a/tags/list?n=0").await.json()["tags"], json!([]));
    api.get("/v2/lib/a/tags/list?n=x").await.assert_error(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID");
    api.get("/v2/lib/none/tags/list").await.assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    let r = api.get("/v2/_catalog?n=2").await;
    assert_eq!(r.json()["repositories"], json!(["lib/a", "lib/b"]));
    assert_eq!(r.header("link"), "</v2/_catalog?n=2&last=lib/b>; rel=\"next\"");
    assert_eq!(api.get("/v2/_catalog?last=lib/b").await.json()["repositories"], json!(["lib/c"]));
}

#[tokio::test]
async fn referrers_with_filtering() {
    let api = Api::new().await;
    let (subject, subject_digest) = api.push_image("r", "v1", "subject").await;
    let config = api.push_blob("r", b"{}").await;
    let layer = api.push_blob("r", b"sbom body").await;
    let referrer = image_manifest(&config, &layer, Some((&subject_digest, subject.len())));
    let referrer_digest = sha256(&referrer);
    let r = api.put_manifest("r", &referrer_digest, &referrer, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("oci-subject"), subject_digest);

    let r = api.get(&format!("/v2/r/referrers/{subject_digest}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), "application/vnd.oci.image.index.v1+json");
    let v = r.json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], referrer_digest);
    assert_eq!(v["manifests"][0]["artifactType"], "application/vnd.example.sbom");
    assert_eq!(v["manifests"][0]["annotations"]["org.example.kind"], "sbom");
    assert_eq!(v["manifests"][0]["size"], referrer.len());
    assert_eq!(r.header("oci-filters-applied"), "");

    let r = api.get(&format!("/v2/r/referrers/{subject_digest}?artifactType=application/vnd.example.sbom")).await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    let r = api.get(&format!("/v2/r/referrers/{subject_digest}?artifactType=application/other")).await;
    assert_eq!(r.json()["manifests"], json!([]));
    let r = api.get(&format!("/v2/r/referrers/{}", sha256(b"no such subject"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["manifests"], json!([]));
    api.get("/v2/r/referrers/sha256:zz").await.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn referrers_are_paginated_with_link_keeping_the_filter() {
    let api = Api::new().await;
    let (subject, subject_digest) = api.push_image("r", "v1", "subject").await;
    let config = api.push_blob("r", b"{}").await;
    let mut pushed = Vec::new();
    for i in 0..5 {
        let layer = api.push_blob("r", format!("signature {i}").as_bytes()).await;
        let mut m: Value =
            serde_json::from_slice(&image_manifest(&config, &layer, Some((&subject_digest, subject.len())))).unwrap();
        m["artifactType"] =
            json!(if i % 2 == 0 { "application/vnd.dev.cosign+json" } else { "application/vnd.example.sbom" });
        let bytes = serde_json::to_vec(&m).unwrap();
        let r = api.put_manifest("r", &sha256(&bytes), &bytes, &[]).await;
        assert_eq!(r.status, StatusCode::CREATED);
        pushed.push(sha256(&bytes));
    }
    pushed.sort();
    let mut seen = Vec::new();
    let mut next = Some(format!("/v2/r/referrers/{subject_digest}?n=2"));
    for _ in 0..5 {
        let Some(url) = next.take() else { break };
        let r = api.get(&url).await;
        assert_eq!(r.status, StatusCode::OK);
        for d in r.json()["manifests"].as_array().unwrap() {
            seen.push(d["digest"].as_str().unwrap().to_owned());
        }
        let link = r.header("link");
        next = link.strip_prefix('<').and_then(|l| l.split_once('>')).map(|(u, _)| u.to_owned());
    }
    assert_eq!(seen, pushed, "every referrer exactly once, in digest order");

    // A filtered listing pages through the filtered set only, with the filter in the Link.
    let cosign = "application%2Fvnd.dev.cosign%2Bjson";
    let r = api.get(&format!("/v2/r/referrers/{subject_digest}?artifactType={cosign}&n=2")).await;
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 2);
    let link = r.header("link").to_owned();
    assert!(link.contains("artifactType=application/vnd.dev.cosign%2Bjson&"), "{link}");
    let url = link.strip_prefix('<').unwrap().split_once('>').unwrap().0.to_owned();
    let r = api.get(&url).await;
    let rest = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["artifactType"], "application/vnd.dev.cosign+json");
    assert_eq!(r.header("link"), "");
    api.get(&format!("/v2/r/referrers/{subject_digest}?last=nope"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn deletes_of_tags_manifests_and_blobs() {
    let api = Api::new().await;
    let (m, d) = api.push_image("r", "a", "x").await;
    assert_eq!(api.put_manifest("r", "b", &m, &[]).await.status, StatusCode::CREATED);
    assert_eq!(api.send(Method::DELETE, "/v2/r/manifests/a", &[], Body::empty()).await.status, StatusCode::ACCEPTED);
    api.get("/v2/r/manifests/a").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(api.get("/v2/r/manifests/b").await.status, StatusCode::OK, "deleting a tag leaves the others");
    assert_eq!(api.get(&format!("/v2/r/manifests/{d}")).await.status, StatusCode::OK);

    assert_eq!(
        api.send(Method::DELETE, &format!("/v2/r/manifests/{d}"), &[], Body::empty()).await.status,
        StatusCode::ACCEPTED
    );
    api.get(&format!("/v2/r/manifests/{d}")).await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get("/v2/r/manifests/b").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.send(Method::DELETE, &format!("/v2/r/manifests/{d}"), &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");

    let blob = api.push_blob("r", b"to delete").await;
    assert_eq!(
        api.send(Method::DELETE, &format!("/v2/r/blobs/{blob}"), &[], Body::empty()).await.status,
        StatusCode::ACCEPTED
    );
    api.get(&format!("/v2/r/blobs/{blob}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    api.send(Method::DELETE, &format!("/v2/r/blobs/{blob}"), &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn unsupported_methods_get_an_oci_error_and_allow() {
    let api = Api::new().await;
    let r = api.send(Method::POST, "/v2/r/tags/list", &[], Body::empty()).await;
    r.assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    assert_eq!(r.header("allow"), "GET");
    let r = api.send(Method::POST, "/v2/r/manifests/latest", &[], Body::empty()).await;
    assert_eq!(r.header("allow"), "GET, HEAD, PUT, DELETE");
}

#[tokio::test]
async fn malformed_tags_are_unknown_to_readers_and_invalid_to_pushers() {
    let api = Api::new().await;
    api.push_image("r", "v1", "x").await;
    api.get("/v2/r/manifests/.INVALID_MANIFEST_NAME").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let h = api.send(Method::HEAD, "/v2/r/manifests/.INVALID_MANIFEST_NAME", &[], Body::empty()).await;
    assert_eq!(h.status, StatusCode::NOT_FOUND);
    assert!(h.body.is_empty());
    let d = api.send(Method::DELETE, "/v2/r/manifests/.INVALID_MANIFEST_NAME", &[], Body::empty()).await;
    d.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    let p = api.put_manifest("r", ".INVALID_MANIFEST_NAME", b"{}", &[]).await;
    p.assert_error(StatusCode::BAD_REQUEST, "TAG_INVALID");
    assert_eq!(api.get("/v2/r/tags/list").await.json()["tags"], json!(["v1"]));
}

#[tokio::test]
async fn inverted_ranges_are_unsatisfiable_and_malformed_chunk_ranges_invalid() {
    let api = Api::new().await;
    let digest = api.push_blob("r", &[7u8; 2048]).await;
    let r = api.send(Method::GET, &format!("/v2/r/blobs/{digest}"), &[("range", "bytes=500-0")], Body::empty()).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */2048");
    let r = api.send(Method::POST, "/v2/r/blobs/uploads/", &[], Body::empty()).await;
    let location = r.header("location").to_owned();
    let r = api.send(Method::PATCH, &location, &[("content-range", "bytes=x-y")], b"abc".to_vec()).await;
    r.assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    assert_eq!(api.send(Method::GET, &location, &[], Body::empty()).await.header("range"), "0-0");
}

#[tokio::test]
async fn layerless_images_and_null_lists_are_accepted() {
    let api = Api::new().await;
    let config = api.push_blob("r", b"{}").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": null,
    }))
    .unwrap();
    let r = api.put_manifest("r", "nolayers", &manifest, &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(api.get("/v2/r/manifests/nolayers").await.body.as_ref(), &manifest[..]);
}

#[tokio::test]
async fn tag_reads_take_a_consistency_choice_and_refuse_unknown_ones() {
    let api = Api::new().await;
    let (manifest, _) = api.push_image("acme/app", "v1", "a").await;
    for choice in ["linearizable", "stale", "STALE"] {
        let headers = [("gati-read-consistency", choice)];
        let r = api.send(Method::GET, "/v2/acme/app/manifests/v1", &headers, Body::empty()).await;
        assert_eq!(r.status, StatusCode::OK, "{choice}");
        assert_eq!(r.body.as_ref(), manifest.as_slice());
        let r = api.send(Method::GET, "/v2/acme/app/tags/list", &headers, Body::empty()).await;
        assert_eq!(r.status, StatusCode::OK, "{choice}");
    }
    for uri in ["/v2/acme/app/manifests/v1", "/v2/acme/app/tags/list"] {
        let r = api.send(Method::GET, uri, &[("gati-read-consistency", "eventual")], Body::empty()).await;
        r.assert_error(StatusCode::BAD_REQUEST, "UNSUPPORTED");
    }
}
