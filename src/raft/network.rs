//! The client side of the Raft transport: openraft's `RaftNetworkFactory` over tonic.
//!
//! Owns [`GrpcNetwork`] (one per group, handed to openraft) and the mapping of transport failures
//! to openraft's `RPCError` kinds, which decide how openraft retries: a peer that cannot be reached
//! is `Unreachable` (openraft backs off), a deadline is `Timeout`, anything else on the wire is
//! `Network`. Requests and responses travel JSON-encoded inside the `gati.cluster.v1` envelope (see
//! `crates/gati-proto`); the peer's openraft error comes back inside the response and is returned
//! as openraft's `RemoteError`. It may call the peer channel cache and the generated client; it
//! must not call storage. The server side is `service.rs`.
#![allow(
    clippy::result_large_err,
    reason = "openraft's network trait fixes `RPCError` (over 128 bytes) as the error type"
)]

use gati_core::GroupId;
use gati_proto::cluster::raft_transport_client::RaftTransportClient;
use gati_proto::cluster::{RaftMessage, SnapshotChunk};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::peers::{PeerChannel, Peers};
use super::types::GatiRaft;

/// The transport of one group: connections to its peers over the node's shared channels.
#[derive(Clone)]
pub(super) struct GrpcNetwork {
    group: GroupId,
    me: u64,
    peers: Peers,
}

impl GrpcNetwork {
    pub(super) fn new(group: GroupId, me: u64, peers: Peers) -> Self {
        GrpcNetwork { group, me, peers }
    }
}

impl RaftNetworkFactory<GatiRaft> for GrpcNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        PeerConnection {
            group: self.group,
            me: self.me,
            target,
            node: node.clone(),
            channel: self.peers.channel(&node.addr),
        }
    }
}

/// A connection from this node to one peer of one group.
pub(super) struct PeerConnection {
    group: GroupId,
    me: u64,
    target: u64,
    node: BasicNode,
    /// `None` when the peer's address is not a valid endpoint; every call is then `Unreachable`.
    channel: Option<PeerChannel>,
}

/// A transport failure, described for the logs.
#[derive(Debug, thiserror::Error)]
#[error("raft rpc {what} from node {from} to node {to} ({addr}) failed: {why}")]
struct TransportFailure {
    what: &'static str,
    from: u64,
    to: u64,
    addr: String,
    why: String,
}

impl PeerConnection {
    fn failure(&self, what: &'static str, why: impl ToString) -> TransportFailure {
        TransportFailure { what, from: self.me, to: self.target, addr: self.node.addr.clone(), why: why.to_string() }
    }

    fn client(&self, what: &'static str) -> Result<RaftTransportClient<PeerChannel>, TransportFailure> {
        self.channel
            .clone()
            .map(|channel| RaftTransportClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES))
            .ok_or_else(|| self.failure(what, "the peer's address is not a valid endpoint"))
    }

    /// Maps a failed call to the `RPCError` kind that makes openraft retry sensibly.
    fn rpc_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        status: tonic::Status,
        option: &RPCOption,
    ) -> RPCError<u64, BasicNode, E> {
        let failure = self.failure(rpc_name(action), &status);
        match status.code() {
            tonic::Code::DeadlineExceeded => {
                RPCError::Timeout(Timeout { action, id: self.me, target: self.target, timeout: option.hard_ttl() })
            }
            // The peer is down, restarting, or not serving this group yet: back off.
            tonic::Code::Unavailable | tonic::Code::NotFound | tonic::Code::Unknown => {
                RPCError::Unreachable(Unreachable::new(&failure))
            }
            _ => RPCError::Network(NetworkError::new(&failure)),
        }
    }

    /// Decodes a peer's JSON answer: its response, or the openraft error it returned.
    fn decode_reply<T, E>(&self, what: &'static str, payload: &[u8]) -> Result<T, RPCError<u64, BasicNode, E>>
    where
        T: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        match serde_json::from_slice::<Result<T, E>>(payload) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(remote)) => {
                Err(RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), remote)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&self.failure(what, format!("undecodable reply: {e}"))))),
        }
    }

    fn encode<T: Serialize, E: std::error::Error>(
        &self,
        what: &'static str,
        body: &T,
    ) -> Result<Vec<u8>, RPCError<u64, BasicNode, E>> {
        serde_json::to_vec(body).map_err(|e| RPCError::Network(NetworkError::new(&self.failure(what, e))))
    }

    fn request<T>(&self, message: T, option: &RPCOption) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(option.hard_ttl());
        request
    }
}

fn rpc_name(action: RPCTypes) -> &'static str {
    match action {
        RPCTypes::Vote => "vote",
        RPCTypes::AppendEntries => "append_entries",
        RPCTypes::InstallSnapshot => "install_snapshot",
    }
}

/// The largest message a node accepts from a peer: a batch of log entries (bounded at 4 MiB by the
/// log reader, plus JSON overhead) or a snapshot chunk (see `raft_config`).
pub(super) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

impl RaftNetwork<GatiRaft> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<GatiRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        const WHAT: &str = "append_entries";
        let payload = self.encode(WHAT, &rpc)?;
        let mut client = self.client(WHAT).map_err(|f| RPCError::Unreachable(Unreachable::new(&f)))?;
        let message = RaftMessage { group: self.group.name(), payload, target: self.target };
        let reply = client.append_entries(self.request(message, &option)).await;
        let reply = reply.map_err(|status| self.rpc_error(RPCTypes::AppendEntries, status, &option))?;
        self.decode_reply(WHAT, &reply.into_inner().payload)
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<GatiRaft>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        const WHAT: &str = "install_snapshot";
        // The data goes as raw bytes beside the JSON request (see the .proto file).
        let data = std::mem::take(&mut rpc.data);
        let request = self.encode(WHAT, &rpc)?;
        let mut client = self.client(WHAT).map_err(|f| RPCError::Unreachable(Unreachable::new(&f)))?;
        let chunk = SnapshotChunk { group: self.group.name(), request, data, target: self.target };
        let reply = client.install_snapshot(self.request(chunk, &option)).await;
        let reply = reply.map_err(|status| self.rpc_error(RPCTypes::InstallSnapshot, status, &option))?;
        self.decode_reply(WHAT, &reply.into_inner().payload)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        const WHAT: &str = "vote";
        let payload = self.encode(WHAT, &rpc)?;
        let mut client = self.client(WHAT).map_err(|f| RPCError::Unreachable(Unreachable::new(&f)))?;
        let message = RaftMessage { group: self.group.name(), payload, target: self.target };
        let reply = client.vote(self.request(message, &option)).await;
        let reply = reply.map_err(|status| self.rpc_error(RPCTypes::Vote, status, &option))?;
        self.decode_reply(WHAT, &reply.into_inner().payload)
    }
}

/// The body of a `TimeoutNow` request: the term and the leader the sender leads as, and the index
/// of its last log entry. The receiver campaigns only while it still follows that leader in that
/// term and its log ends at that entry, so a late or repeated request never starts an election
/// against a newer leader, nor one the receiver's log would lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TimeoutNow {
    pub(super) term: u64,
    pub(super) leader: u64,
    pub(super) last_log: u64,
}

/// How long a `TimeoutNow` call may take: the receiver only starts a campaign before answering.
const TIMEOUT_NOW_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// Asks node `target` at `addr` to campaign for `group` now (Raft's leadership transfer); returns
/// whether it started a campaign. Errors describe a transport failure, for the logs.
pub(super) async fn timeout_now(
    peers: &Peers,
    group: GroupId,
    target: u64,
    addr: &str,
    body: TimeoutNow,
) -> Result<bool, String> {
    let channel = peers.channel(addr).ok_or_else(|| format!("{addr} is not a valid endpoint"))?;
    let payload = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    let mut request = tonic::Request::new(RaftMessage { group: group.name(), payload, target });
    request.set_timeout(TIMEOUT_NOW_DEADLINE);
    let reply = RaftTransportClient::new(channel).timeout_now(request).await.map_err(|status| status.to_string())?;
    serde_json::from_slice(&reply.into_inner().payload).map_err(|e| format!("undecodable reply: {e}"))
}
