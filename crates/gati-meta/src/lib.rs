//! The replicated state machine of Gati Registry over sled, and its durable log in segment files.
//!
//! Owns all registry metadata and the engine it lives in. Callers see engine-neutral types
//! ([`StateMachine`], [`LogStore`], [`MetaStore`]); sled stays inside this crate (apart from the
//! database handle [`MetaStore`] hands to consensus code) so that replacing the engine is a contained
//! change. Nothing here knows about Raft: the consensus position is opaque bytes stored atomically
//! with each apply, and log entries are opaque bytes.
#![warn(missing_docs)]

pub mod artifact;
pub mod error;
mod identity;
mod keys;
pub mod log_store;
pub mod state_machine;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use gati_core::GroupId;

pub use error::{MetaError, Result};
pub use log_store::LogStore;
pub use state_machine::StateMachine;

/// The metadata database of one node: the state machine of every consensus group the node takes
/// part in, in one sled database, and each group's Raft log in its own directory beside it.
#[derive(Clone)]
pub struct MetaStore {
    db: sled::Db,
    /// Where the groups' Raft logs live: `raft-log/<group>/` in the database's directory.
    log_root: PathBuf,
}

/// The segment size of new databases. sled writes a segment's buffer out through its IO thread
/// pool whenever one fills, and each job on that pool wakes all of its idle threads; with sled's
/// default of 512 KiB, the state machines' writes filled one many times a second on a busy node.
const SEGMENT_BYTES: usize = 8 << 20;

/// The segment size an existing database was created with (sled refuses to open it with another),
/// from the `conf` file sled keeps in its directory; `None` for a new database.
fn stored_segment_size(dir: &Path) -> Result<Option<usize>> {
    let conf = match std::fs::read(dir.join("conf")) {
        Ok(conf) => conf,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // The file ends in a binary checksum; the settings are text lines before it.
    let text = String::from_utf8_lossy(&conf);
    let size = text.lines().find_map(|line| line.strip_prefix("segment_size: ")).map(|v| v.trim().parse::<usize>());
    match size {
        Some(Ok(size)) => Ok(Some(size)),
        Some(Err(_)) | None => Err(MetaError::Corrupt("sled's conf file has no readable segment_size".into())),
    }
}

impl MetaStore {
    /// Opens (or creates) the database in `dir`.
    ///
    /// sled's background flusher keeps a closed database locked for a moment after its last
    /// handle is dropped, so opening it again in the same process (a restart of the node inside
    /// one process, as tests do) retries a busy lock for up to two seconds. Another process
    /// holding the database still gets the error once that time is up.
    pub fn open(dir: &Path) -> Result<Self> {
        let segment_size = stored_segment_size(dir)?.unwrap_or(SEGMENT_BYTES);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            match sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).segment_size(segment_size).open() {
                Ok(db) => return Ok(MetaStore { db, log_root: dir.join("raft-log") }),
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
                {
                    #[allow(clippy::disallowed_methods, reason = "synchronous open, bounded retry")]
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Returns the state machine of consensus group `group`.
    pub fn state_machine(&self, group: GroupId) -> Result<StateMachine> {
        StateMachine::open(&self.db, group)
    }

    /// Returns the log of consensus group `group`.
    pub fn log(&self, group: GroupId) -> Result<LogStore> {
        LogStore::open(&self.log_root, &self.db, group)
    }

    /// Records the shard count on the first start and returns the recorded one ever after: the
    /// count decides which shard holds each namespace, so it can never change under stored data.
    pub fn pin_shard_count(&self, wanted: u16) -> Result<u16> {
        const KEY: &[u8] = b"cluster/shard_count";
        let stored = self.db.compare_and_swap(KEY, None::<&[u8]>, Some(&wanted.to_be_bytes()[..]))?;
        let count = match stored {
            Ok(()) => {
                self.db.flush()?;
                wanted
            }
            Err(current) => {
                let bytes = current.current.ok_or_else(|| MetaError::Corrupt("shard count vanished".into()))?;
                let bytes: [u8; 2] =
                    bytes.as_ref().try_into().map_err(|_| MetaError::Corrupt("stored shard count".into()))?;
                u16::from_be_bytes(bytes)
            }
        };
        Ok(count)
    }

    /// Makes every write to every group durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    /// Returns the engine handle, for the consensus log store.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}
