//! Worker actors: jobs fed by the request path or by committed entries that must never slow a
//! request down. Their results are written back as Commands, at least once and idempotently.

pub mod downloads;

pub use downloads::{DownloadCounter, DownloadCounterHandle};
