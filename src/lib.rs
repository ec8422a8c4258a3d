//! Gati Registry: a unified, replicated, multi-artifact OCI registry.
//!
//! Layers, each a module with one owner: `http` (axum, protocol surfaces) calls the `registry`
//! facade, which calls `actors` (namespace and upload-session actors), which call `raft`
//! (consensus over `gati-meta`) and `gati-blob`. `node` wires them; `config` loads settings.
//! Nothing calls upwards.

pub mod actors;
pub mod config;
pub mod http;
pub mod node;
pub mod raft;
pub mod registry;

pub use config::Config;
pub use node::{Node, NodeError};
pub use registry::Registry;
