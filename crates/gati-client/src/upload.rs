//! Resumable file uploads through the OCI upload API: a file already in the repository is
//! skipped, an upload session is remembered in a state file as soon as it starts, and a later
//! run continues each remembered session from the offset the registry reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::client::{RegistryClient, encode_path, is_not_found, problem};
use crate::error::{ClientError, Result};
use crate::files::FileDigests;

/// Upload sessions in progress, by file sha256, persisted after every change.
#[derive(Debug, Default)]
pub struct UploadState {
    file: Option<PathBuf>,
    sessions: Mutex<BTreeMap<String, String>>,
}

#[derive(Serialize, Deserialize, Default)]
struct Stored {
    sessions: BTreeMap<String, String>,
}

impl UploadState {
    /// Loads the state kept in `file` (none yet: empty).
    pub fn load(file: &Path) -> Self {
        let stored: Stored = std::fs::read(file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        UploadState { file: Some(file.to_owned()), sessions: Mutex::new(stored.sessions) }
    }

    fn get(&self, sha256: &str) -> Option<String> {
        self.sessions.lock().ok()?.get(sha256).cloned()
    }

    fn set(&self, sha256: &str, location: Option<String>) {
        let Ok(mut sessions) = self.sessions.lock() else { return };
        match location {
            Some(l) => sessions.insert(sha256.to_owned(), l),
            None => sessions.remove(sha256),
        };
        if let Some(file) = &self.file {
            let stored = Stored { sessions: sessions.clone() };
            if let Some(parent) = file.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            // Written whole then renamed, so a crash never leaves half a state file.
            let tmp = file.with_extension("tmp");
            if std::fs::write(&tmp, serde_json::to_vec(&stored).unwrap_or_default()).is_ok() {
                let _ = std::fs::rename(&tmp, file);
            }
        }
    }

    /// Whether no session is in progress.
    pub fn is_empty(&self) -> bool {
        self.sessions.lock().map(|s| s.is_empty()).unwrap_or(true)
    }

    /// Forgets every session (after a successful publish).
    pub fn clear(&self) {
        if let Ok(mut s) = self.sessions.lock() {
            s.clear();
        }
        if let Some(file) = &self.file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// What an upload reports as it goes.
pub trait UploadProgress: Send + Sync {
    /// `bytes` more are in the registry (or were found there).
    fn advanced(&self, bytes: u64);
    /// An interrupted upload is continued from `offset`.
    fn resumed(&self, path: &str, offset: u64);
}

/// A local file to upload.
pub struct LocalFile<'a> {
    /// Where it is.
    pub disk: &'a Path,
    /// Its name in messages.
    pub display: &'a str,
    /// Its size and checksums.
    pub digests: &'a FileDigests,
}

/// How files are sent.
#[derive(Clone, Copy, Debug)]
pub struct UploadOptions {
    /// Bytes per request.
    pub chunk: usize,
    /// At most this many bytes per second for this file, if limited (to leave bandwidth for
    /// others on a shared link).
    pub rate_limit: Option<u64>,
}

impl RegistryClient {
    /// Uploads a file into `repo` unless it is there already, in chunks, continuing a session
    /// remembered in `state`.
    pub async fn upload_file(
        &self,
        repo: &str,
        local: &LocalFile<'_>,
        options: UploadOptions,
        state: &UploadState,
        progress: &dyn UploadProgress,
    ) -> Result<()> {
        let chunk = options.chunk;
        let started = tokio::time::Instant::now();
        let mut pushed: u64 = 0;
        let LocalFile { disk: file, display, digests } = *local;
        let digest = format!("sha256:{}", digests.sha256);
        let blob = format!("/v2/{}/blobs/{digest}", encode_path(repo));
        let head = self.request(Method::HEAD, &blob).send().await?;
        if head.status() == StatusCode::OK {
            state.set(&digests.sha256, None);
            progress.advanced(digests.size);
            return Ok(());
        }
        let (mut location, mut offset) = match self.resume(&digests.sha256, state).await? {
            Some((location, offset)) => {
                progress.resumed(display, offset);
                progress.advanced(offset);
                (location, offset)
            }
            None => {
                let started =
                    self.send(self.request(Method::POST, &format!("/v2/{}/blobs/uploads/", encode_path(repo)))).await?;
                let location = self.checked_location(location_of(&started)?)?;
                state.set(&digests.sha256, Some(location.clone()));
                (location, 0)
            }
        };
        let mut reader =
            tokio::fs::File::open(file).await.map_err(|e| ClientError::io(format!("opening {}", file.display()), e))?;
        reader
            .seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| ClientError::io(format!("reading {}", file.display()), e))?;
        let mut buf = vec![0u8; chunk.max(1)];
        while offset < digests.size {
            let mut filled = 0;
            while filled < buf.len() {
                let n = reader
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| ClientError::io(format!("reading {}", file.display()), e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Err(ClientError::io(
                    format!("{} changed while it was uploaded", file.display()),
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            let end = offset + filled as u64 - 1;
            let sent = self
                .send(
                    self.request(Method::PATCH, &location)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_RANGE, format!("{offset}-{end}"))
                        .body(buf[..filled].to_vec()),
                )
                .await;
            let response = match sent {
                Err(e) if e.status() == Some(StatusCode::RANGE_NOT_SATISFIABLE.as_u16()) => {
                    state.set(&digests.sha256, None);
                    return Err(e);
                }
                other => other?,
            };
            location = self.checked_location(location_of(&response)?)?;
            state.set(&digests.sha256, Some(location.clone()));
            offset = end + 1;
            progress.advanced(filled as u64);
            pushed += filled as u64;
            if let Some(rate) = options.rate_limit.filter(|r| *r > 0) {
                // Sleep until the average rate since the start is back under the limit.
                let due = std::time::Duration::from_secs_f64(pushed as f64 / rate as f64);
                tokio::time::sleep_until(started + due).await;
            }
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        self.send(self.request(Method::PUT, &format!("{location}{separator}digest={digest}"))).await?;
        state.set(&digests.sha256, None);
        Ok(())
    }

    /// The remembered session of a file and the offset the registry holds, if it still exists.
    async fn resume(&self, sha256: &str, state: &UploadState) -> Result<Option<(String, u64)>> {
        let Some(location) = state.get(sha256) else { return Ok(None) };
        let Ok(location) = self.checked_location(location) else {
            state.set(sha256, None);
            return Ok(None);
        };
        let response = self.request(Method::GET, &location).send().await?;
        if response.status() == StatusCode::NO_CONTENT {
            // `Range: 0-<last>`. An empty session answers `0-0`, the same as one held byte: it
            // is read as empty, and a one-byte session that was not empty fails its next chunk
            // as out of order, after which it is forgotten and the file sent again.
            let held = match response.headers().get(reqwest::header::RANGE).and_then(|v| v.to_str().ok()) {
                None | Some("0-0") => 0,
                Some(r) => r.split_once('-').and_then(|(_, end)| end.parse::<u64>().ok()).map_or(0, |end| end + 1),
            };
            let location = location_of(&response).and_then(|l| self.checked_location(l)).unwrap_or(location);
            return Ok(Some((location, held)));
        }
        let error = problem(response).await;
        if is_not_found(&error) {
            state.set(sha256, None);
            return Ok(None);
        }
        Err(error)
    }
}

fn location_of(response: &reqwest::Response) -> Result<String> {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Protocol("an upload answer without a Location".into()))
}

impl RegistryClient {
    /// An upload location is a path of the registry or a URL on its origin; anything else (from
    /// a hostile answer or a tampered state file) is refused rather than followed.
    fn checked_location(&self, location: String) -> Result<String> {
        let absolute = location.starts_with("http://") || location.starts_with("https://");
        if (absolute && !self.same_origin(&location)) || (!absolute && !location.starts_with("/v2/")) {
            return Err(ClientError::Protocol(format!("an upload location outside the registry: {location}")));
        }
        Ok(location)
    }
}
