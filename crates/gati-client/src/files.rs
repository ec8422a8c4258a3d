//! Hashing local files: both checksums in one streaming pass.

use std::path::Path;

use sha2::{Digest as _, Sha256, Sha512};
use tokio::io::AsyncReadExt;

use crate::error::{ClientError, Result};

/// A file's size and checksums (lowercase hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigests {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256.
    pub sha256: String,
    /// SHA-512.
    pub sha512: String,
}

/// Hashes a file with SHA-256 and SHA-512 in one pass, 1 MiB at a time.
pub async fn digest_file(path: &Path) -> Result<FileDigests> {
    let mut file =
        tokio::fs::File::open(path).await.map_err(|e| ClientError::io(format!("opening {}", path.display()), e))?;
    let mut sha256 = Sha256::new();
    let mut sha512 = Sha512::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await.map_err(|e| ClientError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        sha512.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileDigests { size, sha256: hex::encode(sha256.finalize()), sha512: hex::encode(sha512.finalize()) })
}

/// Whether a file has exactly these digests.
pub async fn verify_file(path: &Path, expected: &FileDigests) -> Result<bool> {
    match digest_file(path).await {
        Ok(actual) => Ok(actual == *expected),
        Err(ClientError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Hex SHA-256 and SHA-512 of bytes in memory.
pub fn digests_of(bytes: &[u8]) -> (String, String) {
    (hex::encode(Sha256::digest(bytes)), hex::encode(Sha512::digest(bytes)))
}
