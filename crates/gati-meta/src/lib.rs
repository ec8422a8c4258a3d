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

pub use error::{MetaError, Result};
pub use log_store::LogStore;
pub use state_machine::StateMachine;

/// The metadata database of one node: a state machine and a Raft log in one sled database.
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

    /// Returns the state machine.
    pub fn state_machine(&self) -> Result<StateMachine> {
        StateMachine::open(&self.db)
    }

    /// Returns the engine handle, for the consensus log store.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }
}
