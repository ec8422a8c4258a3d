//! Gati Registry: a unified, replicated, multi-artifact OCI registry.
//!
//! Layers, each a module with one owner: `http` (axum, protocol surfaces) calls the `registry`
//! facade and the `identity` facade (accounts, credentials, access decisions); `registry` calls `actors` (namespace and upload-session actors) and `cluster` (which shard
//! holds what, and routing to its leader), which call `raft` (consensus groups over `gati-meta`,
//! transport over tonic) and `gati-blob`; `workers` are actors the facade feeds off the request
//! path (download statistics). `node` wires them; `config` loads settings. Nothing
//! calls upwards, except that `cluster::forward` hands forwarded writes to the namespace actors.

pub mod actors;
pub mod cluster;
pub mod coalesce;
pub mod config;
pub mod http;
pub mod identity;
pub mod limits;
pub mod node;
pub mod raft;
pub mod registry;
pub mod workers;

pub use config::Config;
pub use node::{Node, NodeError};
pub use registry::Registry;
