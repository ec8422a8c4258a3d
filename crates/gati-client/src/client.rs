//! The client proper: one `reqwest` client, the registry's base URL and the credential.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::error::{ClientError, Result};
use crate::files::{FileDigests, digest_file};
use crate::types::{ArtifactInfo, Published, Resolution, SearchPage, VersionDetail};

/// The largest document a registry serves.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// How the client proves who it is.
#[derive(Clone, Debug)]
pub enum Auth {
    /// A session access token or an API key.
    Bearer(String),
}

/// Tokens of a session.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// Sent with each request.
    pub access_token: String,
    /// Exchanged for new tokens when the access token expires.
    pub refresh_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
}

/// A client of one registry.
#[derive(Clone, Debug)]
pub struct RegistryClient {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) auth: Option<Auth>,
}

/// Percent-encodes one path segment (file paths keep their `/`).
pub(crate) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryClient {
    /// A client of the registry at `base` (`http://127.0.0.1:5000`).
    pub fn new(base: &str) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Protocol(format!("{base:?} is not an http(s) URL")));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("gati-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(RegistryClient { http, base, auth: None })
    }

    /// The same client with a credential.
    pub fn with_auth(mut self, auth: Option<Auth>) -> Self {
        self.auth = auth;
        self
    }

    /// The registry's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to a path of the registry, or to an absolute URL. The credential goes only
    /// to the registry's own origin: an absolute URL elsewhere (a redirect, a Location header,
    /// a tampered state file) never sees it.
    pub(crate) fn request(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        let absolute = path_or_url.starts_with("http://") || path_or_url.starts_with("https://");
        let url = if absolute { path_or_url.to_owned() } else { format!("{}{path_or_url}", self.base) };
        let ours = !absolute || self.same_origin(path_or_url);
        let builder = self.http.request(method, url);
        match &self.auth {
            Some(Auth::Bearer(token)) if ours => builder.bearer_auth(token),
            _ => builder,
        }
    }

    /// Whether `url` is on the registry's scheme, host and port.
    pub(crate) fn same_origin(&self, url: &str) -> bool {
        url.strip_prefix(&self.base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
    }

    pub(crate) async fn send(&self, builder: RequestBuilder) -> Result<Response> {
        let response = builder.send().await?;
        if response.status().is_success() || response.status().is_redirection() {
            return Ok(response);
        }
        Err(problem(response).await)
    }

    async fn json<T: DeserializeOwned>(&self, builder: RequestBuilder) -> Result<T> {
        let response = self.send(builder).await?;
        response.json::<T>().await.map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn artifact_path(repo: &str) -> String {
        format!("/api/v1/artifacts/{}", encode_path(repo))
    }

    /// Signs in with a user name (or email) and password.
    pub async fn login(&self, login: &str, password: &str) -> Result<Tokens> {
        self.json(
            self.request(Method::POST, "/api/v1/auth/login").json(&json!({ "login": login, "password": password })),
        )
        .await
    }

    /// Exchanges a refresh token for new tokens.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens> {
        self.json(self.request(Method::POST, "/api/v1/auth/refresh").json(&json!({ "refreshToken": refresh_token })))
            .await
    }

    /// Ends the session of a refresh token.
    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        self.send(self.request(Method::POST, "/api/v1/auth/logout").json(&json!({ "refreshToken": refresh_token })))
            .await?;
        Ok(())
    }

    /// Who the credential speaks for.
    pub async fn whoami(&self) -> Result<serde_json::Value> {
        self.json(self.request(Method::GET, "/api/v1/user")).await
    }

    /// Publishes a version whose files are uploaded already.
    pub async fn publish(&self, repo: &str, version: &str, document: Bytes, tag: Option<&str>) -> Result<Published> {
        let mut builder = self
            .request(Method::PUT, &format!("{}/versions/{}", Self::artifact_path(repo), encode_path(version)))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(document);
        if let Some(tag) = tag {
            builder = builder.query(&[("tag", tag)]);
        }
        self.json(builder).await
    }

    /// An artifact's type, dist-tags and versions.
    pub async fn info(&self, repo: &str) -> Result<ArtifactInfo> {
        self.json(self.request(Method::GET, &Self::artifact_path(repo))).await
    }

    /// One version (or the version a dist-tag points at) with its document and files.
    pub async fn version(&self, repo: &str, version_or_tag: &str) -> Result<VersionDetail> {
        self.json(
            self.request(
                Method::GET,
                &format!("{}/versions/{}", Self::artifact_path(repo), encode_path(version_or_tag)),
            ),
        )
        .await
    }

    /// A version's document, byte for byte as published (counts as a download).
    pub async fn document(&self, repo: &str, version: &str) -> Result<Bytes> {
        let path = format!("{}/versions/{}/document", Self::artifact_path(repo), encode_path(version));
        let response = self.send(self.request(Method::GET, &path)).await?;
        let mut stream = response.bytes_stream();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
            if out.len() > MAX_DOCUMENT_BYTES {
                return Err(ClientError::Protocol(format!("{repo}@{version}: a document larger than 1 MiB")));
            }
        }
        Ok(Bytes::from(out))
    }

    /// Downloads one file of a version to `dest`, verifying its size and both checksums. The
    /// bytes go to a temporary file beside `dest`, renamed into place only once verified.
    pub async fn download_file(
        &self,
        repo: &str,
        version: &str,
        file: &str,
        expected: &FileDigests,
        dest: &Path,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<()> {
        let path =
            format!("{}/versions/{}/files/{}", Self::artifact_path(repo), encode_path(version), encode_path(file));
        let response = self.send(self.request(Method::GET, &path)).await?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| ClientError::io(format!("creating {}", parent.display()), e))?;
        }
        // Unique per download: two jobs fetching the same content never share a partial file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partial = dest.with_extension(format!("partial-{}-{n}", std::process::id()));
        let mut out = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| ClientError::io(format!("creating {}", partial.display()), e))?;
        let mut stream = response.bytes_stream();
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            received += chunk.len() as u64;
            // A server sending more than the file's size is wrong; stop before filling the disk.
            if received > expected.size {
                drop(out);
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(ClientError::Checksum { path: file.to_owned(), what: "the size" });
            }
            out.write_all(&chunk).await.map_err(|e| ClientError::io(format!("writing {}", partial.display()), e))?;
            progress(chunk.len() as u64);
        }
        out.sync_all().await.map_err(|e| ClientError::io(format!("syncing {}", partial.display()), e))?;
        drop(out);
        let actual = digest_file(&partial).await?;
        let what = if actual.size != expected.size {
            Some("the size")
        } else if actual.sha256 != expected.sha256 {
            Some("the sha256")
        } else if actual.sha512 != expected.sha512 {
            Some("the sha512")
        } else {
            None
        };
        if let Some(what) = what {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(ClientError::Checksum { path: file.to_owned(), what });
        }
        tokio::fs::rename(&partial, dest).await.map_err(|e| ClientError::io(format!("moving {}", dest.display()), e))
    }

    /// Searches artifacts by words, type and namespace.
    pub async fn search(
        &self,
        text: Option<&str>,
        kind: Option<&str>,
        namespace: Option<&str>,
        limit: usize,
    ) -> Result<SearchPage> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(t) = text {
            query.push(("q", t.to_owned()));
        }
        if let Some(k) = kind {
            query.push(("type", k.to_owned()));
        }
        if let Some(n) = namespace {
            query.push(("namespace", n.to_owned()));
        }
        self.json(self.request(Method::GET, "/api/v1/artifacts").query(&query)).await
    }

    /// Resolves dependency ranges to one version per artifact.
    pub async fn resolve(&self, dependencies: &BTreeMap<String, String>) -> Result<Resolution> {
        self.json(self.request(Method::POST, "/api/v1/resolve").json(&json!({ "dependencies": dependencies }))).await
    }

    /// Unpublishes a version.
    pub async fn unpublish(&self, repo: &str, version: &str) -> Result<()> {
        let path = format!("{}/versions/{}", Self::artifact_path(repo), encode_path(version));
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    /// Deprecates the versions in `range` (or lifts their deprecation with `None`); returns
    /// the versions changed.
    pub async fn deprecate(&self, repo: &str, range: &str, message: Option<&str>) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Changed {
            versions: Vec<String>,
        }
        let path = format!("{}/deprecation", Self::artifact_path(repo));
        let body = json!({ "range": range, "message": message });
        Ok(self.json::<Changed>(self.request(Method::PUT, &path).json(&body)).await?.versions)
    }

    /// The dist-tags.
    pub async fn dist_tags(&self, repo: &str) -> Result<BTreeMap<String, String>> {
        self.json(self.request(Method::GET, &format!("{}/dist-tags", Self::artifact_path(repo)))).await
    }

    /// Points a dist-tag at a version.
    pub async fn set_dist_tag(&self, repo: &str, tag: &str, version: &str) -> Result<()> {
        let path = format!("{}/dist-tags/{}", Self::artifact_path(repo), encode_path(tag));
        self.send(self.request(Method::PUT, &path).json(&json!({ "version": version }))).await?;
        Ok(())
    }

    /// Removes a dist-tag.
    pub async fn remove_dist_tag(&self, repo: &str, tag: &str) -> Result<()> {
        let path = format!("{}/dist-tags/{}", Self::artifact_path(repo), encode_path(tag));
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }
}

/// Reads an error answer: problem+json from the REST API, the OCI error body from `/v2`.
pub(crate) async fn problem(response: Response) -> ClientError {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    let title = value["title"].as_str().unwrap_or(status.canonical_reason().unwrap_or("error")).to_owned();
    let detail = value["detail"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| value["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| if text.is_empty() { format!("HTTP {status}") } else { text.chars().take(500).collect() });
    let errors = value["errors"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| Some((e["field"].as_str()?.to_owned(), e["message"].as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    ClientError::Api { status: status.as_u16(), title, detail, errors }
}

/// Whether a status means "not found".
pub(crate) fn is_not_found(e: &ClientError) -> bool {
    e.status() == Some(StatusCode::NOT_FOUND.as_u16())
}
