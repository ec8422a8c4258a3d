//! Where the fs backend keeps things under its root, and the small durable-filesystem primitives
//! (directory fsync, temp names) the rest of the backend builds on.
//!
//! ```text
//! <root>/blobs/<alg>/<hex[0..2]>/<hex>   committed, immutable, verified content
//! <root>/uploads/<id>/info.json         session record (repo, start time)
//! <root>/uploads/<id>/data              the bytes received so far
//! <root>/tmp/                           staging for atomic renames; emptied at open
//! ```
//!
//! Everything is one filesystem, so every commit is a `rename(2)`. Digests and upload ids are
//! validated newtypes of lowercase hex, which is what makes them safe as path components here.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use gati_core::{Digest, DigestAlgorithm, UploadId};

/// Every algorithm gets its directory at open, so shard creation only ever fsyncs a known parent.
pub(crate) const ALGORITHMS: [DigestAlgorithm; 2] = [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512];

/// Name of the session record inside an upload directory.
const INFO_FILE: &str = "info.json";
/// Name of the received bytes inside an upload directory.
const DATA_FILE: &str = "data";

/// Paths of one fs store.
#[derive(Debug)]
pub(crate) struct Layout {
    root: PathBuf,
    temp_counter: AtomicU64,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Self {
        Layout { root, temp_counter: AtomicU64::new(0) }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub(crate) fn algorithm_dir(&self, algorithm: DigestAlgorithm) -> PathBuf {
        self.blobs_dir().join(algorithm.as_str())
    }

    /// Two hex characters of fan-out keep directories small (256 shards per algorithm).
    pub(crate) fn shard_dir(&self, digest: &Digest) -> PathBuf {
        self.algorithm_dir(digest.algorithm()).join(&digest.hex()[..2])
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.shard_dir(digest).join(digest.hex())
    }

    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub(crate) fn upload_dir(&self, id: &UploadId) -> PathBuf {
        self.uploads_dir().join(id.as_str())
    }

    pub(crate) fn upload_info_path(&self, id: &UploadId) -> PathBuf {
        self.upload_dir(id).join(INFO_FILE)
    }

    pub(crate) fn upload_data_path(&self, id: &UploadId) -> PathBuf {
        self.upload_dir(id).join(DATA_FILE)
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Returns a path in `tmp/` that no other call of this process returns; `tmp/` is emptied at
    /// open, so the pid and counter are enough to avoid clashes.
    pub(crate) fn fresh_tmp_path(&self, purpose: &str) -> PathBuf {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        self.tmp_dir().join(format!("{purpose}-{}-{n}", std::process::id()))
    }

    /// Creates the directory tree and empties `tmp/` of anything a crash left behind.
    pub(crate) fn prepare(&self) -> io::Result<()> {
        for algorithm in ALGORITHMS {
            fs::create_dir_all(self.algorithm_dir(algorithm))?;
        }
        fs::create_dir_all(self.uploads_dir())?;
        let tmp = self.tmp_dir();
        if tmp.try_exists()? {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        fsync_dir(&self.root)?;
        fsync_dir(&self.blobs_dir())
    }

    /// Makes sure the shard directory of `digest` exists and that its entry is durable.
    pub(crate) fn ensure_shard_dir(&self, digest: &Digest) -> io::Result<PathBuf> {
        let shard = self.shard_dir(digest);
        match fs::create_dir(&shard) {
            Ok(()) => fsync_dir(&self.algorithm_dir(digest.algorithm()))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Ok(shard)
    }
}

/// Flushes a directory's entries, so a rename or create inside it survives a crash.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_blobs_by_algorithm_and_prefix() {
        let layout = Layout::new(PathBuf::from("/r"));
        let hex = "ab".repeat(32);
        let digest = Digest::new(DigestAlgorithm::Sha256, &hex).unwrap();
        assert_eq!(layout.blob_path(&digest), PathBuf::from(format!("/r/blobs/sha256/ab/{hex}")));
        let id = UploadId::from_random(7);
        assert_eq!(layout.upload_data_path(&id), PathBuf::from(format!("/r/uploads/{}/data", id.as_str())));
        assert_ne!(layout.fresh_tmp_path("put"), layout.fresh_tmp_path("put"));
    }
}
