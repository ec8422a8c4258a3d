//! The bucket layout: which key holds what. The only place that formats or parses object keys.
//!
//! ```text
//! <prefix>/blobs/<alg>/<first two hex>/<hex>          committed blobs, content-addressed
//! <prefix>/uploads/<id>/record.json                   the session record (see `record.rs`)
//! <prefix>/uploads/<id>/data                          the multipart upload's key; its completed
//!                                                      object is the staging copy of the blob
//! <prefix>/uploads/<id>/tail/<holder>-<seq>           durable bytes short of a full part
//! ```
//!
//! Everything of a session lives under `uploads/<id>/`, so discarding it is one prefix listing.
//! Pure string work: no IO.

use gati_core::{Digest, UploadId};

/// Formats keys under one prefix (validated by the config: safe URL path characters only).
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// Empty, or the configured prefix followed by `/`.
    root: String,
}

const RECORD_NAME: &str = "record.json";

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        let root = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Keys { root }
    }

    /// Returns the key of the committed blob `digest`.
    pub(crate) fn blob(&self, digest: &Digest) -> String {
        let hex = digest.hex();
        format!("{}blobs/{}/{}/{hex}", self.root, digest.algorithm(), &hex[..2])
    }

    /// Returns the key `connect` writes to learn whether the store honours conditional writes.
    pub(crate) fn probe(&self) -> String {
        format!("{}probe/conditional-writes", self.root)
    }

    /// Returns the prefix every session key starts with.
    pub(crate) fn uploads(&self) -> String {
        format!("{}uploads/", self.root)
    }

    /// Returns the prefix of everything belonging to session `id`.
    pub(crate) fn upload_dir(&self, id: &UploadId) -> String {
        format!("{}uploads/{id}/", self.root)
    }

    pub(crate) fn upload_record(&self, id: &UploadId) -> String {
        format!("{}{RECORD_NAME}", self.upload_dir(id))
    }

    /// Returns the key the session's multipart upload completes to.
    pub(crate) fn upload_data(&self, id: &UploadId) -> String {
        format!("{}data", self.upload_dir(id))
    }

    /// Returns the key of the tail segment `name` (see [`tail_segment_name`]).
    pub(crate) fn upload_tail(&self, id: &UploadId, name: &str) -> String {
        format!("{}tail/{name}", self.upload_dir(id))
    }

    /// Returns the session id if `key` is a session record key, `None` for any other key.
    pub(crate) fn parse_upload_record(&self, key: &str) -> Option<UploadId> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix("uploads/")?;
        let (id, name) = rest.split_once('/')?;
        if name != RECORD_NAME {
            return None;
        }
        id.parse().ok()
    }
}

/// Names the `seq`th tail segment written by lease holder `holder`: unique to one writer's one
/// sync, so no other writer can ever overwrite a segment a record points to.
pub(crate) fn tail_segment_name(holder: &str, seq: u64) -> String {
    format!("{holder}-{seq}")
}

#[cfg(test)]
mod tests {
    use gati_core::DigestAlgorithm;

    use super::*;

    #[test]
    fn lays_out_blobs_and_sessions() {
        let digest = Digest::new(DigestAlgorithm::Sha256, &"ab".repeat(32)).unwrap();
        let id = UploadId::from_random(7);
        for (prefix, root) in [("", ""), ("tenant/a", "tenant/a/")] {
            let keys = Keys::new(prefix);
            assert_eq!(keys.blob(&digest), format!("{root}blobs/sha256/ab/{}", "ab".repeat(32)));
            assert_eq!(keys.upload_record(&id), format!("{root}uploads/{id}/record.json"));
            assert_eq!(keys.upload_data(&id), format!("{root}uploads/{id}/data"));
            assert_eq!(keys.upload_tail(&id, &tail_segment_name("h1", 3)), format!("{root}uploads/{id}/tail/h1-3"));
            assert!(keys.upload_record(&id).starts_with(&keys.upload_dir(&id)));
            assert!(keys.upload_dir(&id).starts_with(&keys.uploads()));
        }
    }

    #[test]
    fn parses_only_record_keys() {
        let keys = Keys::new("p");
        let id = UploadId::from_random(42);
        assert_eq!(keys.parse_upload_record(&keys.upload_record(&id)), Some(id.clone()));
        assert_eq!(keys.parse_upload_record(&keys.upload_data(&id)), None);
        assert_eq!(keys.parse_upload_record(&keys.upload_tail(&id, "h-0")), None);
        assert_eq!(keys.parse_upload_record("p/uploads/not-an-id/record.json"), None);
        assert_eq!(keys.parse_upload_record(&Keys::new("").upload_record(&id)), None);
        assert_eq!(keys.parse_upload_record(&format!("p/uploads/{id}/record.json/x")), None);
    }
}
