//! A project directory: its `gati.json`, the files it publishes, and the document built from
//! them (the `contents` list with both checksums of every file, and the whole-artifact checksums).

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use gati_client::{FileDigests, digest_file};
use gati_core::artifact::FileEntry;
use gati_core::artifact::document::sums_listing;
use serde_json::{Value, json};

use crate::exit::{Failure, io};
use crate::glob;

/// Paths never published: the project's own bookkeeping, installed artifacts, VCS data.
const ALWAYS_SKIPPED: [&str; 4] = ["gati.json", "gati.lock", "gati_modules", "node_modules"];

/// A file to publish.
pub struct ProjectFile {
    /// Its path inside the artifact.
    pub path: String,
    /// Where it is on disk.
    pub disk: PathBuf,
    /// Its size and checksums.
    pub digests: FileDigests,
}

/// Reads `dir/gati.json`.
pub fn read_manifest(dir: &Path) -> Result<Value, Failure> {
    let file = dir.join("gati.json");
    let bytes = std::fs::read(&file).map_err(|e| io(format_args!("reading {}", file.display()), e))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::invalid(format!("{} is not valid JSON: {e}", file.display()), vec![]))?;
    if !value.is_object() {
        return Err(Failure::invalid(format!("{} must hold a JSON object", file.display()), vec![]));
    }
    Ok(value)
}

/// The files to publish: those `manifest.files` patterns match, or every file; never hidden
/// files (`.env`, `.git/`), symbolic links, or the paths in [`ALWAYS_SKIPPED`].
pub async fn collect_files(dir: &Path, manifest: &Value) -> Result<Vec<ProjectFile>, Failure> {
    let patterns: Option<Vec<String>> = manifest["manifest"]["files"]
        .as_array()
        .map(|list| list.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect());
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    found.sort();
    let chosen: Vec<(String, PathBuf)> = found
        .into_iter()
        .filter(|(rel, _)| patterns.as_ref().is_none_or(|ps| ps.iter().any(|p| glob::matches(p, rel))))
        .collect();
    let hashed = futures_util::stream::iter(chosen.into_iter().map(|(path, disk)| async move {
        let digests = digest_file(&disk).await?;
        Ok::<_, gati_client::ClientError>(ProjectFile { path, disk, digests })
    }))
    .buffered(4)
    .collect::<Vec<_>>()
    .await;
    hashed.into_iter().map(|r| r.map_err(Failure::from)).collect()
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| io(format_args!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(format_args!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || (dir == root && ALWAYS_SKIPPED.contains(&name)) {
            continue;
        }
        let kind = entry.file_type().map_err(|e| io(format_args!("reading {}", entry.path().display()), e))?;
        let path = entry.path();
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<&str> = rel.components().filter_map(|c| c.as_os_str().to_str()).collect();
            out.push((rel.join("/"), path));
        }
    }
    Ok(())
}

/// The document to publish: `gati.json` with `contents` and `checksums` computed from the files
/// and the builder recorded in `provenance`.
pub fn build_document(manifest: &Value, files: &[ProjectFile]) -> Vec<u8> {
    let mut doc = manifest.clone();
    let mut contents: Vec<FileEntry> = files
        .iter()
        .map(|f| FileEntry {
            path: f.path.clone(),
            size: f.digests.size,
            sha256: f.digests.sha256.clone(),
            sha512: f.digests.sha512.clone(),
        })
        .collect();
    contents.sort_by(|a, b| a.path.cmp(&b.path));
    // The same listings the registry checks the checksums against.
    let (sha256, _) = gati_client::digests_of(sums_listing(&contents, "sha256").as_bytes());
    let (_, sha512) = gati_client::digests_of(sums_listing(&contents, "sha512").as_bytes());
    let contents = serde_json::to_value(&contents).unwrap_or_default();
    doc["contents"] = contents;
    doc["checksums"] = json!({ "sha256": sha256, "sha512": sha512 });
    if !doc["provenance"].is_object() {
        doc["provenance"] = json!({});
    }
    if doc["provenance"]["builder"].is_null() {
        doc["provenance"]["builder"] = json!(concat!("gati-cli/", env!("CARGO_PKG_VERSION")));
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
