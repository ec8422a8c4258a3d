//! The few OCI Distribution API calls the workloads make, and how their answers map onto
//! operation outcomes.

use sha2::{Digest as _, Sha256};

use crate::client::{Http, NoAnswer, Response};

/// Media type of the manifests the workloads push.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the (empty) config blob every manifest references.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// `sha256:<hex>` of `data`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// How an operation ended, before it is written into the history.
#[derive(Debug, Clone)]
pub enum Answer<T> {
    /// It happened, with this observation.
    Ok(T),
    /// It certainly did not happen.
    Fail(String),
    /// It may or may not have happened.
    Info(String),
}

/// An operation with an effect that got an answer other than success: 4xx answers are definite
/// refusals; 5xx may come after the command reached consensus (a forwarded write whose answer
/// was lost is a 503), so they are indeterminate. No answer at all is indeterminate unless the
/// connection never opened.
pub fn write_outcome<T>(result: Result<Response, NoAnswer>, ok: impl FnOnce(&Response) -> Option<T>) -> Answer<T> {
    match result {
        Err(NoAnswer::NotSent(e)) => Answer::Fail(format!("not sent: {e}")),
        Err(NoAnswer::Lost(e)) => Answer::Info(format!("no answer: {e}")),
        Ok(r) => match ok(&r) {
            Some(value) => Answer::Ok(value),
            None if (400..500).contains(&r.status) => Answer::Fail(answer(&r)),
            None => Answer::Info(answer(&r)),
        },
    }
}

/// A read changes nothing, so any failure is simply a failed read.
pub fn read_outcome<T>(result: Result<Response, NoAnswer>, ok: impl FnOnce(&Response) -> Option<T>) -> Answer<T> {
    match result {
        Err(e) => Answer::Fail(e.to_string()),
        Ok(r) => match ok(&r) {
            Some(value) => Answer::Ok(value),
            None => Answer::Fail(answer(&r)),
        },
    }
}

/// A short description of an unexpected answer.
pub fn answer(r: &Response) -> String {
    let body = String::from_utf8_lossy(&r.body);
    let body: String = body.chars().take(200).collect();
    format!("{} {}", r.status, body.trim())
}

/// Uploads `data` as one monolithic blob into `repo`.
pub fn push_blob(http: &Http, repo: &str, data: &[u8]) -> Answer<String> {
    let digest = digest_of(data);
    let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    let sent = http.request("POST", &path, &[("Content-Type", "application/octet-stream")], data);
    write_outcome(sent, |r| (r.status == 201).then(|| digest.clone()))
}

/// Uploads `data` in `chunks` PATCH requests, then closes the upload with its digest.
pub fn push_blob_chunked(http: &Http, repo: &str, data: &[u8], chunks: usize) -> Answer<String> {
    let digest = digest_of(data);
    let started = http.request("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[]);
    let location = match started {
        Ok(r) if r.status == 202 => match r.header("location") {
            Some(l) => l.to_owned(),
            None => return Answer::Fail("upload started without a Location".into()),
        },
        // Nothing is stored until the final PUT: any failure before it is a failed push.
        Ok(r) => return Answer::Fail(answer(&r)),
        Err(e) => return Answer::Fail(e.to_string()),
    };
    let mut location = location;
    let size = data.len().div_ceil(chunks.max(1)).max(1);
    let mut offset = 0;
    for chunk in data.chunks(size) {
        let range = format!("{}-{}", offset, offset + chunk.len() - 1);
        let headers = [("Content-Type", "application/octet-stream"), ("Content-Range", range.as_str())];
        match http.request("PATCH", &location, &headers, chunk) {
            Ok(r) if r.status == 202 => {
                if let Some(next) = r.header("location") {
                    location = next.to_owned();
                }
            }
            Ok(r) => return Answer::Fail(answer(&r)),
            Err(e) => return Answer::Fail(e.to_string()),
        }
        offset += chunk.len();
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let close = http.request("PUT", &format!("{location}{separator}digest={digest}"), &[], &[]);
    write_outcome(close, |r| (r.status == 201).then(|| digest.clone()))
}

/// An image manifest over the empty config, with `annotations` and an optional `subject`
/// (`(digest, size)` of another manifest), as canonical JSON bytes.
pub fn manifest(annotations: &[(&str, &str)], subject: Option<(&str, usize)>, artifact_type: Option<&str>) -> Vec<u8> {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": EMPTY_CONFIG, "digest": digest_of(b"{}"), "size": 2 },
        "layers": [],
        "annotations": annotations.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
    });
    if let Some((digest, size)) = subject {
        m["subject"] = serde_json::json!({ "mediaType": OCI_MANIFEST, "digest": digest, "size": size });
    }
    if let Some(t) = artifact_type {
        m["artifactType"] = serde_json::Value::from(t);
    }
    serde_json::to_vec(&m).unwrap_or_default()
}

/// Uploads the empty config blob every workload manifest references.
pub fn push_empty_config(http: &Http, repo: &str) -> Answer<String> {
    push_blob(http, repo, b"{}")
}

/// Puts `bytes` as a manifest under `reference` (a tag or its digest), with extra headers.
pub fn put_manifest(http: &Http, repo: &str, reference: &str, bytes: &[u8], headers: &[(&str, &str)]) -> Answer<()> {
    let mut all = vec![("Content-Type", OCI_MANIFEST)];
    all.extend_from_slice(headers);
    let sent = http.request("PUT", &format!("/v2/{repo}/manifests/{reference}"), &all, bytes);
    write_outcome(sent, |r| (r.status == 201).then_some(()))
}

/// Pushes `bytes` as a manifest under its own digest during setup (retrying until the cluster
/// answers) and returns the digest.
pub fn seed_manifest(http: &Http, repo: &str, bytes: &[u8]) -> Result<String, String> {
    let digest = digest_of(bytes);
    retry(50, || put_manifest(http, repo, &digest, bytes, &[]))?;
    Ok(digest)
}

/// Retries `attempt` until it succeeds or `tries` run out (setup before any fault is injected).
pub fn retry<T>(tries: usize, mut attempt: impl FnMut() -> Answer<T>) -> Result<T, String> {
    let mut last = String::new();
    for _ in 0..tries {
        match attempt() {
            Answer::Ok(v) => return Ok(v),
            Answer::Fail(why) | Answer::Info(why) => last = why,
        }
        crate::pause(std::time::Duration::from_millis(200));
    }
    Err(last)
}
