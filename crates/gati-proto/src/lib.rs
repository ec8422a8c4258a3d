//! gRPC definitions of Gati Registry, generated from `proto/` at build time.
//!
//! Owns the wire contract between nodes (`gati.cluster.v1`): the Raft transport, the forwarding of
//! writes and read-index requests to a group's leader, and cluster administration. Only generated
//! code lives here; the server crate implements the services and encodes their payloads.

/// Node-to-node RPC of a cluster.
pub mod cluster {
    #![allow(missing_docs, clippy::doc_markdown, clippy::unwrap_used, unused_qualifications)]
    tonic::include_proto!("gati.cluster.v1");
}
