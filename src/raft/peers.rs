//! The node's gRPC channels to its peers, shared by every consensus group and by request
//! forwarding.
//!
//! Owns one lazily connected tonic `Channel` per peer address. A channel multiplexes all groups'
//! traffic over one HTTP/2 connection and reconnects by itself after a peer restarts, so it is
//! created once and kept; it never blocks its caller on connecting (the first RPC does).
//!
//! Also owns the cluster secret: every call carries it, and every node-to-node service refuses
//! calls without it, so nothing that merely reaches the RPC port can propose writes or join.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// The metadata key the cluster secret travels in.
const SECRET_KEY: &str = "x-gati-cluster-secret";

/// Adds the cluster secret to every outgoing call.
#[derive(Clone, Default)]
pub struct SendSecret(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for SendSecret {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(secret) = &self.0 {
            request.metadata_mut().insert(SECRET_KEY, secret.clone());
        }
        Ok(request)
    }
}

/// Refuses incoming calls that do not carry the cluster secret (when one is set).
#[derive(Clone, Default)]
pub struct RequireSecret(Option<Arc<str>>);

impl RequireSecret {
    /// Checks calls against `secret`; `None` accepts every call.
    pub fn new(secret: Option<&str>) -> RequireSecret {
        RequireSecret(secret.map(Arc::from))
    }
}

impl Interceptor for RequireSecret {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(secret) = &self.0 else { return Ok(request) };
        let presented = request.metadata().get(SECRET_KEY).map(|v| v.as_bytes()).unwrap_or_default();
        if gati_auth::constant_time_eq(presented, secret.as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or wrong cluster secret"))
        }
    }
}

/// A channel to a peer that sends the cluster secret with every call.
pub type PeerChannel = InterceptedService<Channel, SendSecret>;

/// How long connecting to a peer may take before an RPC fails as unreachable. Short: peers are on
/// the same LAN, and a dead peer must not hold up a heartbeat round.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Shared, cheap-to-clone cache of channels by peer address (`host:port`).
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    secret: SendSecret,
}

impl Peers {
    /// Channels whose calls carry `secret` (the cluster's `cluster.secret`). A secret that is not
    /// valid header text is refused.
    pub fn with_secret(secret: Option<&str>) -> Result<Peers, String> {
        let secret = match secret {
            Some(text) => Some(text.parse().map_err(|_| "the cluster secret must be printable ASCII".to_owned())?),
            None => None,
        };
        Ok(Peers { channels: Arc::default(), secret: SendSecret(secret) })
    }

    /// Returns the channel to `addr`, creating it on first use; `None` if `addr` is not a valid
    /// `host:port`.
    pub fn channel(&self, addr: &str) -> Option<PeerChannel> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Some(InterceptedService::new(channel.clone(), self.secret.clone()));
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).ok()?;
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Some(InterceptedService::new(channel, self.secret.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_need_the_secret_when_one_is_set() {
        let mut open = RequireSecret::new(None);
        assert!(open.call(Request::new(())).is_ok());
        let mut guarded = RequireSecret::new(Some("s3cret-of-the-cluster"));
        assert_eq!(guarded.call(Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
        let mut sender = SendSecret(Some("s3cret-of-the-cluster".parse().unwrap()));
        assert!(guarded.call(sender.call(Request::new(())).unwrap()).is_ok());
        let mut wrong = SendSecret(Some("s3cret-of-the-clustes".parse().unwrap()));
        assert!(guarded.call(wrong.call(Request::new(())).unwrap()).is_err());
        assert!(Peers::with_secret(Some("bad\nsecret")).is_err());
    }
}
