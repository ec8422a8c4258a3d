//! `gati publish`: check the artifact locally, upload its files (resuming an interrupted
//! upload), then publish the document.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use gati_client::{LocalFile, UploadOptions, UploadProgress, UploadState};
use gati_core::artifact::ArtifactDocument;
use serde_json::json;

use crate::config::Context;
use crate::exit::Failure;
use crate::output;
use crate::project::{build_document, collect_files, read_manifest};

/// Bytes per upload request; `GATI_UPLOAD_CHUNK_BYTES` overrides it.
const DEFAULT_CHUNK: usize = 8 << 20;

struct Progress {
    bar: indicatif::ProgressBar,
    json: bool,
}

impl UploadProgress for Progress {
    fn advanced(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn resumed(&self, path: &str, offset: u64) {
        self.bar.suspend(|| output::note(self.json, &format!("resuming the upload of {path} at byte {offset}")));
    }
}

pub async fn run(
    ctx: &Context,
    dir: &Path,
    tag: Option<&str>,
    dry_run: bool,
    rate_limit: Option<u64>,
) -> Result<(), Failure> {
    let manifest = read_manifest(dir)?;
    let files = collect_files(dir, &manifest).await?;
    let document = build_document(&manifest, &files);
    // The registry applies exactly these rules; checking first saves uploading for nothing.
    let doc = ArtifactDocument::parse(&document).map_err(|errors| {
        Failure::invalid(
            "gati.json is not a valid artifact",
            errors.into_iter().map(|e| (e.field, e.message)).collect(),
        )
    })?;
    let repo = doc.view.repo.to_string();
    let version = doc.view.version.to_string();
    let total: u64 = files.iter().map(|f| f.digests.size).sum();
    if dry_run {
        let value: serde_json::Value = serde_json::from_slice(&document).unwrap_or_default();
        output::print(ctx.json, &json!({ "name": repo, "version": version, "document": value }), || {
            format!(
                "{repo}@{version} is valid: {} files, {}\n{}",
                files.len(),
                output::size(total),
                String::from_utf8_lossy(&document)
            )
        });
        return Ok(());
    }
    let client = ctx.client().await?;
    let state =
        Arc::new(UploadState::load(&dir.join(".gati").join(format!("upload-{}.json", sanitize(&repo, &version)))));
    let chunk = std::env::var("GATI_UPLOAD_CHUNK_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CHUNK);
    let options = UploadOptions { chunk, rate_limit };
    let progress = Arc::new(Progress { bar: output::bytes_bar(ctx.json, total, "uploading"), json: ctx.json });
    let uploads = futures_util::stream::iter(files.iter().map(|f| {
        let (client, state, progress, repo) = (client.clone(), state.clone(), progress.clone(), repo.clone());
        async move {
            let local = LocalFile { disk: &f.disk, display: &f.path, digests: &f.digests };
            client.upload_file(&repo, &local, options, &state, progress.as_ref()).await
        }
    }))
    .buffer_unordered(4)
    .collect::<Vec<_>>()
    .await;
    for result in uploads {
        result?;
    }
    progress.bar.finish_and_clear();
    let published = client.publish(&repo, &version, Bytes::from(document), tag).await?;
    state.clear();
    output::print(ctx.json, &json!(published), || {
        format!(
            "published {repo}@{version} ({} files, {}) as {}",
            files.len(),
            output::size(total),
            published.manifest_digest
        )
    });
    Ok(())
}

fn sanitize(repo: &str, version: &str) -> String {
    format!("{repo}@{version}").replace(['/', '+'], "_")
}
