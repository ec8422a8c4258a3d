//! The session record, `uploads/<id>/record.json`: the whole durable state of one upload session,
//! shared by every node, and its conditional storage.
//!
//! A record says which repository began the upload and when, which multipart upload holds its
//! parts, each recorded part with its `ETag`, the tail segments holding the bytes after the last
//! part, the durable offset, the SHA-256 state after exactly those bytes, and the lease (which
//! writer owns the session, and until when).
//!
//! Every write is conditional: a new record with `If-None-Match: *`, a rewrite with `If-Match`
//! on the `ETag` this writer last saw. Two writers can therefore never both believe they rewrote
//! the same version; the loser gets `UploadBusy`. A `412` can also be the echo of our own write
//! whose answer was lost and whose retry then failed the condition; the `revision` and holder
//! in the stored record tell the two apart.
//!
//! Hash continuation: sha2 0.11's `Sha256` implements digest 0.11's `SerializableState`, so the
//! record carries the serialized hasher (hex), and a resumer continues hashing from it. Re-hashing
//! the durable prefix instead is not even possible here: S3 has no way to read back the parts of
//! an unfinished multipart upload. The serialized form is stable across sha2 0.11.x; a record
//! written by an incompatible version fails to resume with `Corrupt`, never with a wrong digest.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gati_blob::{BlobError, BlobErrorKind, ContentHasher, Result, UploadInfo};
use gati_core::{RepoName, UploadId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use crate::bucket::PutCondition;
use crate::error::Failure;
use crate::parts::{MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, part_len};
use crate::shared::Shared;

/// Version of the record layout; a record of another version is refused as `Corrupt`.
const RECORD_FORMAT: u32 = 1;

/// One part of the session's multipart upload, as uploaded by some writer of the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartRecord {
    pub(crate) number: i32,
    pub(crate) len: u64,
    /// As the service returned it; completion passes it back verbatim.
    pub(crate) etag: String,
}

/// One tail segment: an object under `uploads/<id>/tail/` holding bytes of the part being built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TailSegment {
    /// The last path segment of its key (`<holder>-<seq>`).
    pub(crate) name: String,
    pub(crate) len: u64,
    pub(crate) etag: String,
}

/// Who owns the session, and until when unless renewed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Lease {
    /// A random token naming one writer; never reused.
    pub(crate) holder: String,
    pub(crate) expires_at_unix_ms: u64,
}

/// The durable state of a session (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRecord {
    pub(crate) format: u32,
    pub(crate) repo: RepoName,
    pub(crate) started_at_unix_secs: u64,
    /// Bumped by every write, so a writer can recognise its own write in the store.
    pub(crate) revision: u64,
    /// The part size the session began with; parts are cut by it on every node, whatever their
    /// own configuration says.
    pub(crate) part_size: u64,
    /// Created with the first full part; `None` while everything fits in the tail.
    pub(crate) multipart_upload_id: Option<String>,
    /// Parts `1..=parts.len()`, in order.
    pub(crate) parts: Vec<PartRecord>,
    /// Segments holding the bytes after the last part, in order.
    pub(crate) tail: Vec<TailSegment>,
    /// Durable bytes: every part and tail segment.
    pub(crate) offset: u64,
    /// The SHA-256 state after hashing exactly `offset` bytes, serialized and hex-encoded.
    pub(crate) sha256_state: String,
    pub(crate) lease: Option<Lease>,
}

/// A record together with the `ETag` of the stored object it was read from or written as.
#[derive(Clone, Debug)]
pub(crate) struct StoredRecord {
    pub(crate) record: SessionRecord,
    pub(crate) etag: String,
}

/// Returns the current wall-clock time in milliseconds since the epoch (0 before 1970).
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Returns a fresh lease holder token.
pub(crate) fn new_holder() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl SessionRecord {
    /// Returns the record of a session just begun by `holder`.
    pub(crate) fn new(repo: RepoName, part_size: u64, lease: Lease) -> Self {
        SessionRecord {
            format: RECORD_FORMAT,
            repo,
            started_at_unix_secs: unix_now_ms() / 1000,
            revision: 0,
            part_size,
            multipart_upload_id: None,
            parts: Vec::new(),
            tail: Vec::new(),
            offset: 0,
            sha256_state: hex::encode(Sha256::default().serialize()),
            lease: Some(lease),
        }
    }

    /// Returns what the `BlobStore` API shows of the session.
    pub(crate) fn info(&self) -> UploadInfo {
        UploadInfo { repo: self.repo.clone(), started_at_unix_secs: self.started_at_unix_secs, offset: self.offset }
    }

    /// Returns the holder of a lease that has not expired at `now_ms`, if any.
    pub(crate) fn live_holder(&self, now_ms: u64) -> Option<&str> {
        self.lease.as_ref().filter(|lease| lease.expires_at_unix_ms > now_ms).map(|lease| lease.holder.as_str())
    }

    /// Returns the running hash the record stores.
    pub(crate) fn hasher(&self) -> Result<ContentHasher> {
        decode_hasher(&self.sha256_state)
    }

    /// Checks the internal consistency a resumer relies on; `Corrupt` names the first violation.
    pub(crate) fn validate(&self, id: &UploadId) -> Result<()> {
        let fail = |what: String| Err(BlobError::new(BlobErrorKind::Corrupt, format!("upload record of {id}: {what}")));
        if self.format != RECORD_FORMAT {
            return fail(format!("format {} is not {RECORD_FORMAT}", self.format));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return fail(format!("part size {}", self.part_size));
        }
        if self.parts.len() >= MAX_PARTS as usize {
            return fail("too many parts".to_owned());
        }
        if !self.parts.is_empty() && self.multipart_upload_id.is_none() {
            return fail("parts without a multipart upload".to_owned());
        }
        for (index, part) in self.parts.iter().enumerate() {
            let number = index as i32 + 1;
            if part.number != number || part.len != part_len(self.part_size, number) {
                return fail(format!("part {index} is {part:?}"));
            }
        }
        let tail_len: u64 = self.tail.iter().map(|segment| segment.len).sum();
        let next_part = self.parts.len() as i32 + 1;
        if self.tail.iter().any(|segment| segment.len == 0) || tail_len >= part_len(self.part_size, next_part) {
            return fail(format!("tail segments {:?}", self.tail));
        }
        let parts_len: u64 = self.parts.iter().map(|part| part.len).sum();
        if parts_len + tail_len != self.offset {
            return fail(format!("offset {} is not {parts_len} + {tail_len}", self.offset));
        }
        self.hasher().map(drop)
    }
}

/// Serializes a SHA-256 running hash as hex.
pub(crate) fn encode_hasher(hasher: &ContentHasher) -> Result<String> {
    match hasher {
        ContentHasher::Sha256(state) => Ok(hex::encode(state.serialize())),
        // Sessions only ever run SHA-256 (SHA-512 pushes are verified by reading the completed
        // object back), so this is a bug.
        ContentHasher::Sha512(_) => {
            Err(BlobError::new(BlobErrorKind::Internal, "upload sessions keep a sha256 running hash"))
        }
    }
}

fn decode_hasher(encoded: &str) -> Result<ContentHasher> {
    let corrupt = |why: &str| BlobError::new(BlobErrorKind::Corrupt, format!("upload record hash state: {why}"));
    let raw = hex::decode(encoded).map_err(|_| corrupt("not hex"))?;
    let serialized =
        SerializedState::<Sha256>::try_from(raw.as_slice()).map_err(|_| corrupt("wrong length for sha2 0.11"))?;
    let state = Sha256::deserialize(&serialized).map_err(|_| corrupt("not a sha2 0.11 state"))?;
    Ok(ContentHasher::Sha256(state))
}

fn corrupt_record(id: &UploadId, source: serde_json::Error) -> BlobError {
    BlobError::with_source(BlobErrorKind::Corrupt, format!("upload record of {id}"), source)
}

/// Reads the record of session `id`; `None` if there is none.
pub(crate) async fn load(shared: &Shared, id: &UploadId) -> Result<Option<StoredRecord>> {
    let key = shared.keys.upload_record(id);
    let Some((bytes, etag)) = shared.bucket.get_small(&key).await.map_err(|f| f.into_blob())? else {
        return Ok(None);
    };
    let record: SessionRecord = serde_json::from_slice(&bytes).map_err(|e| corrupt_record(id, e))?;
    let etag =
        etag.ok_or_else(|| BlobError::new(BlobErrorKind::Corrupt, format!("upload record of {id} has no ETag")))?;
    Ok(Some(StoredRecord { record, etag }))
}

/// Stores the record of a new session; `UploadExists` if the id is taken.
pub(crate) async fn create(shared: &Shared, id: &UploadId, record: SessionRecord) -> Result<StoredRecord> {
    let key = shared.keys.upload_record(id);
    let body = Bytes::from(serde_json::to_vec(&record).map_err(|e| corrupt_record(id, e))?);
    // A store that ignores `If-None-Match` would let this write replace a live session; looking
    // first catches every duplicate except one racing this very call.
    if shared.config.allow_unconditional_writes && load(shared, id).await?.is_some() {
        return Err(BlobError::new(BlobErrorKind::UploadExists, format!("an upload with id {id} exists")));
    }
    match shared.bucket.put(&key, body, PutCondition::IfAbsent).await {
        Ok(etag) => Ok(StoredRecord { record, etag }),
        Err(failure) if failure.failure == Failure::PreconditionFailed => {
            match our_write_if_stored(shared, id, &record).await? {
                Some(stored) => Ok(stored),
                None => Err(failure.into_blob_as(BlobErrorKind::UploadExists, "an upload with this id exists")),
            }
        }
        Err(failure) => Err(failure.into_blob()),
    }
}

/// Replaces the record last seen as `previous` with `record` (whose revision must be higher);
/// `UploadBusy` if anyone changed it since, `UploadUnknown` if it was removed.
pub(crate) async fn replace(
    shared: &Shared,
    id: &UploadId,
    previous: &StoredRecord,
    record: SessionRecord,
) -> Result<StoredRecord> {
    debug_assert!(record.revision > previous.record.revision, "every write bumps the revision");
    let key = shared.keys.upload_record(id);
    let body = Bytes::from(serde_json::to_vec(&record).map_err(|e| corrupt_record(id, e))?);
    match shared.bucket.put(&key, body, PutCondition::IfMatch(previous.etag.clone())).await {
        Ok(etag) => Ok(StoredRecord { record, etag }),
        Err(failure) if failure.failure == Failure::PreconditionFailed => {
            if let Some(stored) = our_write_if_stored(shared, id, &record).await? {
                return Ok(stored);
            }
            if load(shared, id).await?.is_none() {
                return Err(BlobError::new(BlobErrorKind::UploadUnknown, format!("upload {id} was removed")));
            }
            Err(failure.into_blob_as(BlobErrorKind::UploadBusy, &format!("another writer owns upload {id} now")))
        }
        Err(failure) => Err(failure.into_blob()),
    }
}

/// After a failed condition, returns the stored record if it is exactly the one we tried to
/// write: the first attempt succeeded, its answer was lost, and the SDK's retry then found its
/// own write in place.
async fn our_write_if_stored(shared: &Shared, id: &UploadId, record: &SessionRecord) -> Result<Option<StoredRecord>> {
    Ok(load(shared, id).await?.filter(|stored| stored.record == *record))
}

#[cfg(test)]
mod tests {
    use gati_core::DigestAlgorithm;

    use super::*;

    fn sample() -> SessionRecord {
        let lease = Lease { holder: new_holder(), expires_at_unix_ms: 10_000 };
        SessionRecord::new("gati/test".parse().unwrap(), 5 * 1024 * 1024, lease)
    }

    #[test]
    fn hash_state_round_trips_mid_stream() {
        let mut hasher = ContentHasher::new(DigestAlgorithm::Sha256);
        hasher.update(&[7u8; 100_003]);
        let restored = decode_hasher(&encode_hasher(&hasher).unwrap()).unwrap();
        let (mut a, mut b) = (hasher, restored);
        a.update(b"tail");
        b.update(b"tail");
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn garbage_hash_state_is_corrupt() {
        for bad in ["", "zz", "00"] {
            assert_eq!(decode_hasher(bad).err().map(|e| e.kind()), Some(BlobErrorKind::Corrupt));
        }
    }

    #[test]
    fn leases_expire() {
        let record = sample();
        assert!(record.live_holder(9_999).is_some());
        assert!(record.live_holder(10_000).is_none());
        let released = SessionRecord { lease: None, ..record };
        assert!(released.live_holder(0).is_none());
    }

    #[test]
    fn validation_checks_offsets_parts_and_tail() {
        let id = UploadId::from_random(1);
        let mut record = sample();
        record.validate(&id).unwrap();
        let part = PartRecord { number: 1, len: 5 * 1024 * 1024, etag: "\"e\"".into() };
        record.parts.push(part.clone());
        record.offset = part.len;
        assert!(record.validate(&id).is_err(), "parts need a multipart upload");
        record.multipart_upload_id = Some("mpu".into());
        record.validate(&id).unwrap();
        record.tail.push(TailSegment { name: "h-0".into(), len: 10, etag: "\"t\"".into() });
        assert!(record.validate(&id).is_err(), "offset must count the tail");
        record.offset += 10;
        record.validate(&id).unwrap();
        record.parts[0].number = 2;
        assert!(record.validate(&id).is_err(), "parts are numbered from 1");
        record.parts[0].number = 1;
        record.format = 99;
        assert_eq!(record.validate(&id).unwrap_err().kind(), BlobErrorKind::Corrupt);
    }

    #[test]
    fn unknown_record_fields_are_refused() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<SessionRecord>(json).is_err());
    }
}
