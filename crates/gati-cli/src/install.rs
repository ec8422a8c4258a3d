//! `gati install`: resolve, download in parallel into the content cache (every file verified
//! against its size, sha256 and sha512), place the artifacts under `gati_modules/`, and pin the
//! result in `gati.lock`. With a lock file whose requirements match, nothing is resolved: the
//! exact pinned files are installed, from the cache alone when they are all there, so a
//! reinstall works offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use gati_client::types::FileEntry;
use gati_client::{FileDigests, RegistryClient, digests_of, verify_file};
use gati_core::artifact::{ArtifactRef, RefTarget};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Context;
use crate::exit::{Failure, io};
use crate::output;

/// The lock file format's version.
const LOCKFILE_VERSION: u32 = 1;

/// How an install may reach the registry.
pub struct Mode {
    pub offline: bool,
    pub frozen: bool,
    pub concurrency: usize,
}

/// `gati.lock`: what was required and exactly what was installed for it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LockFile {
    pub lockfile_version: u32,
    /// The registry the artifacts came from.
    pub registry: String,
    /// The requirements it satisfies: artifact to range.
    pub requires: BTreeMap<String, String>,
    /// Every installed artifact.
    pub packages: BTreeMap<String, LockedPackage>,
}

/// One pinned artifact.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LockedPackage {
    pub version: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub manifest_digest: String,
    /// The document's sha256 (hex), which pins its bytes.
    pub document_sha256: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<String>,
    pub files: Vec<FileEntry>,
}

pub async fn run(ctx: &Context, specs: &[String], dir: &Path, mode: Mode) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    let lock_path = dir.join("gati.lock");
    let existing = read_lock(&lock_path)?;
    let requires = match (specs.is_empty(), &existing) {
        (true, Some(lock)) if !dir.join("gati.json").try_exists().unwrap_or(false) => lock.requires.clone(),
        _ => requirements(ctx, specs, dir, existing.as_ref(), mode.offline).await?,
    };
    if requires.is_empty() {
        return Err(Failure::usage(
            "nothing to install: name artifacts, or run in a directory with gati.json or gati.lock",
        ));
    }
    let lock = match existing {
        Some(lock) if lock.requires == requires => lock,
        _ if mode.offline || mode.frozen => {
            return Err(if mode.offline {
                Failure::offline(
                    "gati.lock does not pin these requirements; an offline install needs a matching lock file",
                )
            } else {
                Failure::new(5, "gati.lock does not match the requirements (--frozen)")
            });
        }
        _ => resolve(ctx, &requires).await?,
    };
    let client = if mode.offline { None } else { Some(ctx.client().await?) };
    let total: u64 = lock.packages.values().flat_map(|p| p.files.iter().map(|f| f.size)).sum();
    let bar = Arc::new(output::bytes_bar(ctx.json, total, "installing"));
    let jobs = lock.packages.iter().map(|(name, pkg)| {
        let (client, bar) = (client.clone(), bar.clone());
        async move { place(ctx, client.as_ref(), dir, name, pkg, bar.as_ref()).await }
    });
    let results = futures_util::stream::iter(jobs).buffer_unordered(mode.concurrency).collect::<Vec<_>>().await;
    bar.finish_and_clear();
    let mut downloaded = 0u64;
    for r in results {
        downloaded += r?;
    }
    write_lock(&lock_path, &lock)?;
    let files: usize = lock.packages.values().map(|p| p.files.len()).sum();
    let deprecated: Vec<String> = lock
        .packages
        .iter()
        .filter_map(|(n, p)| p.deprecated.as_ref().map(|m| format!("{n}@{} is deprecated: {m}", p.version)))
        .collect();
    let installed: BTreeMap<&String, &String> = lock.packages.iter().map(|(n, p)| (n, &p.version)).collect();
    output::print(
        ctx.json,
        &json!({ "installed": installed, "files": files, "bytes": total, "downloadedBytes": downloaded, "deprecated": deprecated }),
        || {
            let mut text = String::new();
            for (name, version) in &installed {
                text.push_str(&format!("+ {name}@{version}\n"));
            }
            for d in &deprecated {
                text.push_str(&format!("warning: {d}\n"));
            }
            text.push_str(&format!(
                "installed {} artifacts ({files} files, {}; {} downloaded) in {:.1} s",
                installed.len(),
                output::size(total),
                output::size(downloaded),
                started.elapsed().as_secs_f64()
            ));
            text
        },
    );
    Ok(())
}

/// The requirements: the named specs (a bare name means its `latest`, kept as `^version`), else
/// the dependencies in `gati.json`.
async fn requirements(
    ctx: &Context,
    specs: &[String],
    dir: &Path,
    lock: Option<&LockFile>,
    offline: bool,
) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    if specs.is_empty() {
        if !dir.join("gati.json").try_exists().unwrap_or(false) {
            return Ok(out);
        }
        let manifest = crate::project::read_manifest(dir)?;
        let namespace = manifest["namespace"].as_str().unwrap_or_default().to_owned();
        let ns_repo = format!("{}/x", namespace.trim_end_matches('/'));
        let ns = ArtifactRef::parse(&ns_repo, None).ok().map(|r| r.repo.namespace());
        for dep in manifest["manifest"]["dependencies"].as_array().into_iter().flatten() {
            let (Some(name), Some(range)) = (dep["name"].as_str(), dep["version"].as_str()) else {
                return Err(Failure::invalid("gati.json: a dependency needs a name and a version range", vec![]));
            };
            let reference = ArtifactRef::parse(name, ns.as_ref())
                .map_err(|e| Failure::invalid(format!("gati.json: {e}"), vec![]))?;
            out.insert(reference.repo.to_string(), range.to_owned());
        }
        return Ok(out);
    }
    for spec in specs {
        let reference = ArtifactRef::parse(spec, None)?;
        let name = reference.repo.to_string();
        let range = match reference.target {
            RefTarget::Version(v) => v.to_string(),
            RefTarget::Range(r) => r.to_string(),
            RefTarget::Latest | RefTarget::Tag(_) if offline => {
                // Offline, a tag can only mean what the lock file already pinned.
                match lock.and_then(|l| l.requires.get(&name)) {
                    Some(range) => range.clone(),
                    None => return Err(Failure::offline(format!("{spec}: a dist-tag needs the registry"))),
                }
            }
            RefTarget::Latest => {
                let info = ctx.client().await?.info(&name).await?;
                let latest = info
                    .dist_tags
                    .get("latest")
                    .ok_or_else(|| Failure::new(3, format!("{name} has no latest version")))?;
                format!("^{latest}")
            }
            RefTarget::Tag(tag) => {
                let info = ctx.client().await?.info(&name).await?;
                info.dist_tags
                    .get(tag.as_str())
                    .cloned()
                    .ok_or_else(|| Failure::new(3, format!("{name} has no dist-tag {tag}")))?
            }
        };
        out.insert(name, range);
    }
    Ok(out)
}

/// Resolves on the registry and pins every chosen version's files.
async fn resolve(ctx: &Context, requires: &BTreeMap<String, String>) -> Result<LockFile, Failure> {
    let client = ctx.client().await?;
    let resolution = client.resolve(requires).await?;
    let details = futures_util::stream::iter(resolution.packages.iter().map(|p| {
        let client = client.clone();
        async move { client.version(&p.name, &p.version).await.map(|d| (p, d)) }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut packages = BTreeMap::new();
    for detail in details {
        let (p, d) = detail?;
        let document_sha256 = p.document_digest.strip_prefix("sha256:").unwrap_or(&p.document_digest).to_owned();
        packages.insert(
            p.name.clone(),
            LockedPackage {
                version: p.version.clone(),
                kind: p.kind.clone(),
                manifest_digest: p.manifest_digest.clone(),
                document_sha256,
                dependencies: p.dependencies.clone(),
                deprecated: p.deprecated.clone(),
                files: d.files,
            },
        );
    }
    Ok(LockFile {
        lockfile_version: LOCKFILE_VERSION,
        registry: ctx.registry.clone(),
        requires: requires.clone(),
        packages,
    })
}

/// Installs one pinned artifact into `gati_modules/<name>/`: its document as `gati.json` and its
/// files, each from the cache or downloaded into it first. Returns the bytes downloaded.
async fn place(
    ctx: &Context,
    client: Option<&RegistryClient>,
    dir: &Path,
    name: &str,
    pkg: &LockedPackage,
    bar: &indicatif::ProgressBar,
) -> Result<u64, Failure> {
    check_pinned(name, pkg)?;
    let dest = dir.join("gati_modules").join(name);
    let mut downloaded = 0;
    // The document: cached by its sha256; fetching it counts a download of the version.
    let doc_cache = ctx.cached(&pkg.document_sha256);
    let doc_ok = std::fs::read(&doc_cache).ok().is_some_and(|b| digests_of(&b).0 == pkg.document_sha256);
    if !doc_ok {
        let client =
            client.ok_or_else(|| Failure::offline(format!("{name}@{}: not in the local cache", pkg.version)))?;
        let bytes = client.document(name, &pkg.version).await?;
        if digests_of(&bytes).0 != pkg.document_sha256 {
            return Err(Failure::new(8, format!("{name}@{}: the document does not match gati.lock", pkg.version)));
        }
        write_atomically(&doc_cache, &bytes)?;
        downloaded += bytes.len() as u64;
    }
    let staging = dir.join("gati_modules").join(format!(".{}.staging-{}", name.replace('/', "_"), std::process::id()));
    if staging.try_exists().unwrap_or(false) {
        std::fs::remove_dir_all(&staging).map_err(|e| io(format_args!("clearing {}", staging.display()), e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| io(format_args!("creating {}", staging.display()), e))?;
    copy_into(&doc_cache, &staging.join("gati.json"))?;
    for file in &pkg.files {
        let expected = FileDigests { size: file.size, sha256: file.sha256.clone(), sha512: file.sha512.clone() };
        let cached = ctx.cached(&file.sha256);
        if !verify_file(&cached, &expected).await? {
            let client = client.ok_or_else(|| {
                Failure::offline(format!("{name}@{}: {} is not in the local cache", pkg.version, file.path))
            })?;
            client.download_file(name, &pkg.version, &file.path, &expected, &cached, &|n| bar.inc(n)).await?;
            downloaded += file.size;
        } else {
            bar.inc(file.size);
        }
        copy_into(&cached, &staging.join(&file.path))?;
    }
    // The finished directory replaces the old one whole, so a failed install never leaves a
    // half-written artifact behind.
    if dest.try_exists().unwrap_or(false) {
        std::fs::remove_dir_all(&dest).map_err(|e| io(format_args!("replacing {}", dest.display()), e))?;
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(format_args!("creating {}", parent.display()), e))?;
    }
    std::fs::rename(&staging, &dest).map_err(|e| io(format_args!("placing {}", dest.display()), e))?;
    Ok(downloaded)
}

/// A lock file (committed by anyone) and a registry's answers are untrusted: an artifact name
/// must be exactly `namespace/name` and every digest 64 hex digits before either becomes part of
/// a path, so nothing is ever written or removed outside `gati_modules/` and the cache.
fn check_pinned(name: &str, pkg: &LockedPackage) -> Result<(), Failure> {
    let exact = ArtifactRef::parse(name, None).is_ok_and(|r| r.target == RefTarget::Latest && r.repo.as_str() == name);
    if !exact {
        return Err(Failure::invalid(format!("{name:?} is not an artifact name (namespace/name)"), vec![]));
    }
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex(&pkg.document_sha256) || pkg.files.iter().any(|f| !hex(&f.sha256)) {
        return Err(Failure::invalid(
            format!("{name}: a digest in the lock file is not 64 lowercase hex digits"),
            vec![],
        ));
    }
    if let Some(f) = pkg.files.iter().find(|f| gati_core::artifact::document::file_path_problem(&f.path).is_some()) {
        return Err(Failure::invalid(
            format!("{name}@{}: refusing the unsafe file path {:?}", pkg.version, f.path),
            vec![],
        ));
    }
    Ok(())
}

fn copy_into(from: &Path, to: &Path) -> Result<(), Failure> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(format_args!("creating {}", parent.display()), e))?;
    }
    // A hard link shares the cache's verified bytes; across file systems it is a copy.
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| io(format_args!("copying into {}", to.display()), e))?;
    }
    Ok(())
}

fn write_atomically(path: &PathBuf, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(format_args!("creating {}", parent.display()), e))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| io(format_args!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(format_args!("writing {}", path.display()), e))
}

fn read_lock(path: &Path) -> Result<Option<LockFile>, Failure> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let lock: LockFile = serde_json::from_slice(&bytes)
                .map_err(|e| Failure::invalid(format!("{} is not a valid lock file: {e}", path.display()), vec![]))?;
            if lock.lockfile_version != LOCKFILE_VERSION {
                return Err(Failure::invalid(
                    format!(
                        "{} has lockfileVersion {}; this gati reads {LOCKFILE_VERSION}",
                        path.display(),
                        lock.lockfile_version
                    ),
                    vec![],
                ));
            }
            Ok(Some(lock))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format_args!("reading {}", path.display()), e)),
    }
}

fn write_lock(path: &Path, lock: &LockFile) -> Result<(), Failure> {
    let mut bytes = serde_json::to_vec_pretty(lock).map_err(|e| Failure::other(e.to_string()))?;
    bytes.push(b'\n');
    write_atomically(&path.to_path_buf(), &bytes)
}
