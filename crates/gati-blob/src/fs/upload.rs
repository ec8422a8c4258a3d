//! The fs backend's upload sessions: creating, resuming and committing `uploads/<id>/`.
//!
//! Owns the running digest and the data file of each session. Chunks are coalesced into batches of
//! about [`WRITE_BATCH`] bytes; each batch is written by one `spawn_blocking` job and hashed by
//! another, running side by side, while the writer already accepts the next batch. Network
//! receive, hashing and writing thus overlap, with at most two batches of memory per session and no
//! thread held while a client is idle.
//!
//! The data file is held under an exclusive `flock` by its one writer (including a job still
//! running after the writer was dropped), which is how `resume_upload` knows the session is free.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use gati_core::{Digest, DigestAlgorithm, RepoName, UploadId};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::error::{BlobError, BlobErrorKind, Result};
use crate::fs::layout::{Layout, fsync_dir};
use crate::fs::{blob_is_durably_present, blocking, commit_verified_file};
use crate::hashing::ContentHasher;
use crate::store::{UploadInfo, UploadWriter};

/// Bytes buffered before a batch goes to a blocking job: big enough to amortise the job, small
/// enough that two of them per session keep memory flat.
pub(crate) const WRITE_BATCH: usize = 1024 * 1024;

/// Buffer size used when a session's data is read back (resume, sha512 verification).
const READ_BACK_BUFFER: usize = 1024 * 1024;

/// How long `resume_upload` waits for a dropped writer's last job to release the session.
const RESUME_LOCK_WAIT: Duration = Duration::from_secs(1);

/// The session record persisted as `info.json`. The offset is not stored: the data file's length is
/// the truth, and storing it twice would let the two disagree after a crash.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PersistedUploadInfo {
    repo: RepoName,
    started_at_unix_secs: u64,
}

impl PersistedUploadInfo {
    fn with_offset(self, offset: u64) -> UploadInfo {
        UploadInfo { repo: self.repo, started_at_unix_secs: self.started_at_unix_secs, offset }
    }
}

/// The session's data file, locked, and how many bytes it holds.
struct DataFile {
    file: File,
    written: u64,
    /// Bytes before this offset have had writeback started (see [`WRITEBACK_STEP`]).
    writeback_started: u64,
}

impl DataFile {
    fn new(file: File, written: u64) -> Self {
        DataFile { file, written, writeback_started: written }
    }

    fn append(&mut self, batch: &[Bytes]) -> io::Result<()> {
        for chunk in batch {
            self.file.write_all(chunk)?;
            self.written += chunk.len() as u64;
        }
        if self.written - self.writeback_started >= WRITEBACK_STEP {
            start_writeback(&self.file, self.writeback_started, self.written - self.writeback_started);
            self.writeback_started = self.written;
        }
        Ok(())
    }
}

/// Asks the kernel to start writing back dirty data of a session once this much has piled up, so
/// the fsync in `finish` (which the client's final PUT waits on) has little left to flush and
/// dirty pages never pile up to the kernel's throttling threshold. It doubles as the step between
/// hints: big enough that the call is rare.
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// Starts asynchronous writeback of `len` bytes from `offset`; a hint, so failures are ignored
/// (the fsync at `sync` or `finish` is what guarantees durability).
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(len)) else {
        return;
    };
    // SAFETY: `file` owns the descriptor and outlives the call; `SYNC_FILE_RANGE_WRITE` only
    // schedules writeback of pages already written and touches no memory of ours.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// One part of a session (the data file, or the running hash) that blocking jobs take turns to
/// own. The data file and the hash are separate lanes so that writing a batch and hashing it run
/// on two threads at once: on a 2-core machine that is the difference between the sum and the
/// maximum of the two costs.
struct Lane<T> {
    idle: Option<T>,
    busy: Option<JoinHandle<(T, io::Result<()>)>>,
}

impl<T: Send + 'static> Lane<T> {
    fn new(part: T) -> Self {
        Lane { idle: Some(part), busy: None }
    }

    /// Waits for the running job, if any, and takes the part back.
    async fn reclaim(&mut self, what: &'static str) -> Result<T> {
        if let Some(job) = self.busy.take() {
            match job.await {
                Ok((part, Ok(()))) => self.idle = Some(part),
                Ok((_, Err(e))) => return Err(BlobError::io(what, e)),
                Err(e) => return Err(BlobError::with_source(BlobErrorKind::Internal, what, e)),
            }
        }
        self.idle.take().ok_or_else(|| BlobError::new(BlobErrorKind::Internal, format!("{what}: part lost")))
    }

    /// Starts `job` on the part, which must have been reclaimed.
    fn start(&mut self, mut part: T, job: impl FnOnce(&mut T) -> io::Result<()> + Send + 'static) {
        debug_assert!(self.idle.is_none() && self.busy.is_none(), "one job per lane at a time");
        self.busy = Some(tokio::task::spawn_blocking(move || {
            let result = job(&mut part);
            (part, result)
        }));
    }
}

/// [`UploadWriter`] of the fs backend.
pub(crate) struct FsUploadWriter {
    layout: Arc<Layout>,
    id: UploadId,
    data: Lane<DataFile>,
    /// Always sha256: the algorithm nearly every push uses, so finishing needs no read-back.
    hasher: Lane<ContentHasher>,
    pending: Vec<Bytes>,
    pending_len: usize,
    offset: u64,
    /// Set by the first failure; the writer refuses everything afterwards, because the file may
    /// hold a partial chunk the running hash has or has not seen.
    poisoned: Option<String>,
}

impl FsUploadWriter {
    fn new(layout: Arc<Layout>, id: UploadId, data: DataFile, hasher: ContentHasher) -> Self {
        FsUploadWriter {
            layout,
            id,
            offset: data.written,
            data: Lane::new(data),
            hasher: Lane::new(hasher),
            pending: Vec::new(),
            pending_len: 0,
            poisoned: None,
        }
    }

    fn check_usable(&self) -> Result<()> {
        match &self.poisoned {
            None => Ok(()),
            Some(reason) => {
                Err(BlobError::new(BlobErrorKind::Io, format!("upload {} failed earlier: {reason}", self.id)))
            }
        }
    }

    /// Waits for both lanes and takes the data file and the hash back; the first failure poisons
    /// the writer.
    async fn reclaim(&mut self) -> Result<(DataFile, ContentHasher)> {
        self.check_usable()?;
        let reclaimed = match self.data.reclaim("append to upload data").await {
            Ok(data) => self.hasher.reclaim("hash upload data").await.map(|hasher| (data, hasher)),
            Err(e) => Err(e),
        };
        reclaimed.inspect_err(|e| self.poisoned = Some(e.to_string()))
    }

    /// Waits for the data lane only and takes the data file back; a failure poisons the writer.
    async fn reclaim_data(&mut self, what: &'static str) -> Result<DataFile> {
        self.check_usable()?;
        let reclaimed = self.data.reclaim(what).await;
        reclaimed.inspect_err(|e| self.poisoned = Some(e.to_string()))
    }

    fn take_pending(&mut self) -> Vec<Bytes> {
        self.pending_len = 0;
        std::mem::take(&mut self.pending)
    }

    /// Hands the pending batch to a write job and a hash job once the previous ones are done.
    async fn dispatch_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return self.check_usable();
        }
        let (data, hasher) = self.reclaim().await?;
        // Cloning a batch clones reference counts, not bytes.
        let batch = self.take_pending();
        let hashed = batch.clone();
        self.data.start(data, move |data| data.append(&batch));
        self.hasher.start(hasher, move |hasher| {
            hashed.iter().for_each(|chunk| hasher.update(chunk));
            Ok(())
        });
        Ok(())
    }
}

#[async_trait]
impl UploadWriter for FsUploadWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.check_usable()?;
        if chunk.is_empty() {
            return Ok(());
        }
        self.offset += chunk.len() as u64;
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        if self.pending_len >= WRITE_BATCH {
            self.dispatch_pending().await?;
        }
        Ok(())
    }

    fn offset(&self) -> u64 {
        self.offset
    }

    async fn sync(&mut self) -> Result<()> {
        self.dispatch_pending().await?;
        // Durability needs the data lane only; the hash of the last batch may still be running.
        let data = self.reclaim_data("append to upload data").await?;
        self.data.start(data, |data| data.file.sync_data());
        let data = self.reclaim_data("sync upload data").await?;
        debug_assert_eq!(data.written, self.offset, "sync leaves nothing buffered");
        self.data.idle = Some(data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>, expected: &Digest) -> Result<u64> {
        self.dispatch_pending().await?;
        let (data, hasher) = self.reclaim().await?;
        let layout = Arc::clone(&self.layout);
        let id = self.id.clone();
        let expected = expected.clone();
        blocking(move || finish_session(&layout, &id, data, hasher, &expected)).await
    }
}

/// Verifies, commits and removes a session whose bytes are all in `data`, fed to `hasher`.
fn finish_session(
    layout: &Layout,
    id: &UploadId,
    data: DataFile,
    hasher: ContentHasher,
    expected: &Digest,
) -> Result<u64> {
    // `file` keeps the session locked until the commit is done.
    let DataFile { mut file, written: size, .. } = data;
    let actual = match expected.algorithm() {
        DigestAlgorithm::Sha256 => hasher.finish(),
        // The running hash is sha256 only; the rare sha512 push pays one read of its data.
        algorithm => {
            let mut hasher = ContentHasher::new(algorithm);
            feed_file_from_start(&mut file, &mut hasher).map_err(|e| BlobError::io("read back upload data", e))?;
            hasher.finish()
        }
    };
    if actual != *expected {
        drop(file);
        if let Err(error) = discard_session(layout, id) {
            // The mismatch is what the client must hear; the session is cleanup's garbage now.
            tracing::warn!(%error, upload = %id, "discarding a mismatched upload session failed");
        }
        return Err(BlobError::new(
            BlobErrorKind::DigestMismatch,
            format!("upload {id} has digest {actual}, not {expected}"),
        ));
    }
    // Content that is already stored durably needs no durability of its own: it is about to be
    // dropped, so waiting for its bytes to reach the disk would be wasted (a repeated push of a
    // large blob would otherwise pay a full flush). Blobs are never removed while uploads may
    // deduplicate against them; garbage collection must keep that true.
    if !blob_is_durably_present(layout, expected)? {
        file.sync_data().map_err(|e| BlobError::io("sync upload data", e))?;
    }
    commit_verified_file(layout, &layout.upload_data_path(id), expected)?;
    drop(file);
    if let Err(error) = discard_session(layout, id) {
        // The blob is committed and durable; a leftover session directory without data is only
        // garbage for upload cleanup, so the push itself succeeded.
        tracing::warn!(%error, upload = %id, "removing a finished upload session failed");
    }
    Ok(size)
}

/// Removes a session directory atomically (rename into `tmp/`, then delete), so a crash never
/// leaves a half-deleted session looking alive.
pub(crate) fn discard_session(layout: &Layout, id: &UploadId) -> Result<()> {
    let graveyard = layout.fresh_tmp_path("discard");
    match fs::rename(layout.upload_dir(id), &graveyard) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BlobError::new(BlobErrorKind::UploadUnknown, format!("upload {id}")));
        }
        Err(e) => return Err(BlobError::io("discard upload session", e)),
    }
    fs::remove_dir_all(&graveyard).map_err(|e| BlobError::io("remove discarded upload session", e))
}

/// Feeds every byte of `file`, from the first, to `hasher`; returns how many there were.
fn feed_file_from_start(file: &mut File, hasher: &mut ContentHasher) -> io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; READ_BACK_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

fn unix_now() -> u64 {
    // A clock before 1970 only makes the session look old to cleanup.
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Opens a session's data file for appending and reading back.
fn open_data_file(path: &std::path::Path, create: bool) -> io::Result<File> {
    OpenOptions::new().read(true).append(true).create_new(create).open(path)
}

/// Creates `uploads/<id>/` fully formed: it is built under `tmp/` and renamed into place, so a
/// session directory never lacks its record.
pub(crate) fn begin_session(layout: Arc<Layout>, id: &UploadId, repo: &RepoName) -> Result<FsUploadWriter> {
    let final_dir = layout.upload_dir(id);
    if final_dir.try_exists().map_err(|e| BlobError::io("check upload session", e))? {
        return Err(BlobError::new(BlobErrorKind::UploadExists, format!("upload {id}")));
    }
    let staging = layout.fresh_tmp_path("begin");
    let built = (|| -> io::Result<File> {
        fs::create_dir(&staging)?;
        let record = PersistedUploadInfo { repo: repo.clone(), started_at_unix_secs: unix_now() };
        let mut info = File::create_new(staging.join("info.json"))?;
        info.write_all(&serde_json::to_vec(&record).map_err(io::Error::other)?)?;
        info.sync_data()?;
        let data = open_data_file(&staging.join("data"), true)?;
        data.try_lock().map_err(|e| match e {
            TryLockError::Error(e) => e,
            TryLockError::WouldBlock => io::Error::other("fresh upload data file is locked"),
        })?;
        fsync_dir(&staging)?;
        Ok(data)
    })();
    let data = built.map_err(|e| {
        let _ = fs::remove_dir_all(&staging);
        BlobError::io("create upload session", e)
    })?;
    if let Err(e) = fs::rename(&staging, &final_dir) {
        let _ = fs::remove_dir_all(&staging);
        // Renaming a directory onto a non-empty one fails: a concurrent begin with the same id won.
        let kind = match e.kind() {
            io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists => BlobErrorKind::UploadExists,
            _ => BlobErrorKind::Io,
        };
        return Err(BlobError::with_source(kind, format!("install upload session {id}"), e));
    }
    fsync_dir(&layout.uploads_dir()).map_err(|e| BlobError::io("sync uploads directory", e))?;
    let data = DataFile::new(data, 0);
    Ok(FsUploadWriter::new(layout, id.clone(), data, ContentHasher::new(DigestAlgorithm::Sha256)))
}

/// Reads a session record and its data length; `None` when the session (or its data) is gone.
pub(crate) fn read_session_info(layout: &Layout, id: &UploadId) -> Result<Option<UploadInfo>> {
    let Some(record) = read_record(layout, id)? else {
        return Ok(None);
    };
    match fs::metadata(layout.upload_data_path(id)) {
        Ok(meta) => Ok(Some(record.with_offset(meta.len()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BlobError::io("stat upload data", e)),
    }
}

fn read_record(layout: &Layout, id: &UploadId) -> Result<Option<PersistedUploadInfo>> {
    let raw = match fs::read(layout.upload_info_path(id)) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BlobError::io("read upload record", e)),
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| BlobError::with_source(BlobErrorKind::Corrupt, format!("upload record of {id}"), e))
}

/// One attempt to take over a session: `Ok(None)` if it does not exist, `UploadBusy` if a writer
/// (or a dropped writer's last job) still holds it.
fn try_resume_session(layout: &Arc<Layout>, id: &UploadId) -> Result<Option<(UploadInfo, FsUploadWriter)>> {
    let Some(record) = read_record(layout, id)? else {
        return Ok(None);
    };
    let mut file = match open_data_file(&layout.upload_data_path(id), false) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BlobError::io("open upload data", e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(BlobError::new(BlobErrorKind::UploadBusy, format!("upload {id} has a live writer")));
        }
        Err(TryLockError::Error(e)) => return Err(BlobError::io("lock upload data", e)),
    }
    // Rebuild the running hash from what actually reached the file: bytes never synced may be
    // missing, and the client learns the real offset from the upload status.
    let mut hasher = ContentHasher::new(DigestAlgorithm::Sha256);
    let written =
        feed_file_from_start(&mut file, &mut hasher).map_err(|e| BlobError::io("read back upload data", e))?;
    let writer = FsUploadWriter::new(Arc::clone(layout), id.clone(), DataFile::new(file, written), hasher);
    Ok(Some((record.with_offset(written), writer)))
}

/// Takes over a session, waiting briefly for a dropped writer's last job to let go of it.
pub(crate) async fn resume_session(layout: Arc<Layout>, id: &UploadId) -> Result<Option<(UploadInfo, FsUploadWriter)>> {
    let deadline = tokio::time::Instant::now() + RESUME_LOCK_WAIT;
    loop {
        let attempt_layout = Arc::clone(&layout);
        let attempt_id = id.clone();
        match blocking(move || try_resume_session(&attempt_layout, &attempt_id)).await {
            Err(e) if e.kind() == BlobErrorKind::UploadBusy && tokio::time::Instant::now() < deadline => {
                // A dropped writer's job finishes within one batch write; poll rather than block a
                // thread on the lock, since a live writer could hold it forever.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => return other,
        }
    }
}
