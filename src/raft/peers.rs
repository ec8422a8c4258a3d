//! The node's gRPC channels to its peers, shared by every consensus group and by request
//! forwarding.
//!
//! Owns one lazily connected tonic `Channel` per peer address. A channel multiplexes all groups'
//! traffic over one HTTP/2 connection and reconnects by itself after a peer restarts, so it is
//! created once and kept; it never blocks its caller on connecting (the first RPC does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// How long connecting to a peer may take before an RPC fails as unreachable. Short: peers are on
/// the same LAN, and a dead peer must not hold up a heartbeat round.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Shared, cheap-to-clone cache of channels by peer address (`host:port`).
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Peers {
    /// Returns the channel to `addr`, creating it on first use; `None` if `addr` is not a valid
    /// `host:port`.
    pub fn channel(&self, addr: &str) -> Option<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).ok()?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Some(channel)
    }
}
