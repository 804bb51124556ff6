//! openraft's network seam over [`crate::transport`], and the requests members send each other.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout as RpcTimeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use storage::{LeaseId, LeaseInfo, Member};

use crate::transport::{PeerClient, TransportError};
use crate::types::{CommandResult, Node, NodeId, TypeConfig, WireError};

/// Raft AppendEntries.
pub const PATH_APPEND: &str = "/raft/append";
/// Raft RequestVote.
pub const PATH_VOTE: &str = "/raft/vote";
/// Raft InstallSnapshot (one chunk).
pub const PATH_SNAPSHOT: &str = "/raft/snapshot";
/// Requests only the leader can serve ([`LeaderRequest`]).
pub const PATH_LEADER: &str = "/keelson/leader";

/// Requests a member sends to the leader on behalf of its clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LeaderRequest {
    /// Propose these commands (postcard `Vec<Command>`, as in [`crate::types::Proposal`]) as one
    /// entry.
    Propose(bytes::Bytes),
    /// The log index a linearizable read must wait for (read index).
    ReadIndex,
    /// Restart a lease's TTL.
    KeepAlive(LeaseId),
    /// A lease's remaining TTL.
    TimeToLive {
        /// The lease.
        id: LeaseId,
        /// Include its keys.
        keys: bool,
    },
    /// Add a member.
    MemberAdd {
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// As a learner.
        is_learner: bool,
    },
    /// Remove a member.
    MemberRemove(u64),
    /// Promote a learner.
    MemberPromote(u64),
    /// A member announces its name and client URLs (after joining by URL).
    UpdateNode {
        /// The member.
        id: NodeId,
        /// What it is.
        node: Node,
    },
}

/// The leader's answers to [`LeaderRequest`]s.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LeaderResponse {
    /// One result per proposed command.
    Proposed(Vec<CommandResult>),
    /// The read index.
    ReadIndex(u64),
    /// The lease's TTL.
    KeepAlive(i64),
    /// The lease's state.
    TimeToLive(LeaseInfo),
    /// The added member.
    Member(Member),
    /// Done.
    Done,
}

/// The result of a [`LeaderRequest`] as sent back.
pub type LeaderResult = Result<LeaderResponse, WireError>;

/// Creates per-peer raft clients.
#[derive(Clone, Debug)]
pub struct Network {
    client: Arc<PeerClient>,
}

impl Network {
    /// A factory sharing `client`'s connections.
    pub fn new(client: Arc<PeerClient>) -> Network {
        Network { client }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConn;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConn {
        PeerConn {
            client: self.client.clone(),
            target,
            url: node.peer_url.clone(),
        }
    }
}

/// Raft RPCs to one peer.
pub struct PeerConn {
    client: Arc<PeerClient>,
    target: NodeId,
    url: String,
}

impl PeerConn {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        action: RPCTypes,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: for<'de> Deserialize<'de>,
        E: std::error::Error + for<'de> Deserialize<'de>,
    {
        let body = postcard::to_stdvec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let raw = match self.client.call(&self.url, path, body, timeout).await {
            Ok(raw) => raw,
            Err(TransportError::Timeout) => {
                return Err(RPCError::Timeout(RpcTimeout {
                    action,
                    id: 0,
                    target: self.target,
                    timeout,
                }));
            }
            Err(e @ TransportError::Unreachable { .. }) => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            postcard::from_bytes(&raw).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(PATH_APPEND, RPCTypes::AppendEntries, &rpc, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(PATH_SNAPSHOT, RPCTypes::InstallSnapshot, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(PATH_VOTE, RPCTypes::Vote, &rpc, option.hard_ttl())
            .await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
