//! The replicated state machine of Gati Registry and its durable log, over sled.
//!
//! Owns all registry metadata and the engine it lives in. Callers see engine-neutral types
//! ([`StateMachine`], [`LogStore`], [`MetaStore`]); sled stays inside this crate (apart from the
//! database handle [`MetaStore`] hands to consensus code) so that replacing the engine is a contained
//! change. Nothing here knows about Raft: the consensus position is opaque bytes stored atomically
//! with each apply, and log entries are opaque bytes.
#![warn(missing_docs)]

pub mod error;
mod keys;
pub mod log_store;
pub mod state_machine;

#[cfg(test)]
mod tests;

use std::path::Path;

use gati_core::GroupId;

pub use error::{MetaError, Result};
pub use log_store::LogStore;
pub use state_machine::StateMachine;

/// The metadata database of one node: the state machine and Raft log of every consensus group the
/// node takes part in, in one sled database (so one flush makes all of them durable).
#[derive(Clone)]
pub struct MetaStore {
    db: sled::Db,
}

impl MetaStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open()?;
        Ok(MetaStore { db })
    }

    /// Returns the state machine of consensus group `group`.
    pub fn state_machine(&self, group: GroupId) -> Result<StateMachine> {
        StateMachine::open(&self.db, group)
    }

    /// Returns the log of consensus group `group`.
    pub fn log(&self, group: GroupId) -> Result<LogStore> {
        LogStore::open(&self.db, group)
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
