//! Identity and access of Gati Registry: password hashing, signed access tokens and their key
//! ring, API keys, token scopes, repository patterns, and the policy that decides who may do what.
//!
//! Pure logic with no IO beyond the operating system's random source: the replicated records
//! these functions read live in `gati-core` and the state machine; the server wires them to HTTP.
#![warn(missing_docs)]

pub mod policy;
