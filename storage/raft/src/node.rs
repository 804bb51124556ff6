//! [`RaftStorage`]: one member of a replicated store, implementing [`storage::Storage`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Weak;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use hyper::StatusCode;
use openraft::error::{
    ChangeMembershipError, CheckIsLeaderError, ClientWriteError, InitializeError, RaftError,
};
use openraft::{ChangeMembers, RaftMetrics, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use storage::lease::{LeaseTable, new_lease_id};
use storage::mvcc;
use storage::{
    Error, LeaseId, LeaseInfo, Member, RangeRequest, RangeResponse, Result, Revision, SnapshotStream, Status,
    Storage, TxnRequest, TxnResponse, WatchRequest, Watcher,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db::{CF_RAFT_META, Db, DbError};
use crate::log_store::LogStore;
use crate::network::{
    LeaderRequest, LeaderResponse, LeaderResult, Network, PATH_APPEND, PATH_LEADER, PATH_SNAPSHOT, PATH_VOTE,
};
use crate::proposer::{self, Pending, Submit};
use crate::snapshot;
use crate::state_machine::{HistoricView, SmShared, StateMachine};
use crate::tls::{ClientAuth, Identity, TlsError, hosts_of};
use crate::transport::{self, PeerClient, PeerHandler, PeerUrl, TransportError};
use crate::types::{Command, CommandOutput, CommandResult, Node, NodeId, Raft, WireError, member_id};

const KEY_NODE_ID: &[u8] = b"node_id";
/// How often lease expiry is checked on the leader.
const LEASE_TICK: Duration = Duration::from_millis(250);
/// Expired leases revoked per tick at most.
const LEASE_REVOKES_PER_TICK: usize = 64;

/// Failures starting a member.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database could not be opened.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// TLS setup failed.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// IO failed (data directory, listener).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// One member of the replicated store. Cheap to share (`Arc`); call [`RaftStorage::shutdown`]
/// to stop it.
pub struct RaftStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RaftStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStorage")
            .field("id", &self.inner.id)
            .field("name", &self.inner.config.name)
            .finish()
    }
}

pub(crate) struct Inner {
    id: NodeId,
    config: Config,
    raft: Raft,
    metrics: watch::Receiver<RaftMetrics<NodeId, Node>>,
    sm: Arc<SmShared>,
    db: Arc<Db>,
    client: Arc<PeerClient>,
    queue: mpsc::UnboundedSender<Pending>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    peer_addr: SocketAddr,
    revoking: Mutex<HashSet<LeaseId>>,
    read_index: mpsc::UnboundedSender<ReadIndexWaiter>,
}

/// A caller waiting for a read index.
struct ReadIndexWaiter {
    reply: oneshot::Sender<Result<u64>>,
    /// May be asked of the leader when this member does not lead (false for requests that
    /// came from another member, so they are never forwarded twice).
    forward: bool,
}

fn unavailable(msg: impl Into<String>) -> Error {
    Error::Unavailable(msg.into())
}

/// A request's final error: "not leader" is internal routing, the caller sees the cluster as
/// unavailable.
fn settle(e: Error) -> Error {
    match e {
        Error::NotLeader { .. } => unavailable("leadership is changing"),
        other => other,
    }
}

fn map_transport(e: TransportError) -> Error {
    match e {
        TransportError::Timeout => unavailable("leader did not answer in time"),
        other => unavailable(format!("cannot reach the leader: {other}")),
    }
}

impl RaftStorage {
    /// Opens the member's data directory, starts the peer listener and raft, bootstraps a new
    /// cluster if the directory is new (and `join` is not set) and returns once the member
    /// knows a leader (or after the request timeout, if the cluster has no quorum yet).
    pub async fn start(config: Config) -> std::result::Result<Arc<RaftStorage>, StartError> {
        Self::start_with_listener(config, None).await
    }

    /// Like [`RaftStorage::start`], serving peers on an already bound listener (tests bind
    /// `127.0.0.1:0` first so every member's URL is known before any starts).
    pub async fn start_with_listener(
        config: Config,
        listener: Option<std::net::TcpListener>,
    ) -> std::result::Result<Arc<RaftStorage>, StartError> {
        let advertise =
            PeerUrl::parse(&config.advertise_peer_url).map_err(|e| StartError::Config(e.to_string()))?;
        let listen =
            PeerUrl::parse(&config.listen_peer_url).map_err(|e| StartError::Config(e.to_string()))?;
        let founders = config.founders();
        let mut any_tls = advertise.tls || listen.tls;
        for (name, url) in &founders {
            let u = PeerUrl::parse(url).map_err(|e| StartError::Config(format!("member {name}: {e}")))?;
            any_tls |= u.tls;
            if !u.tls && !config.allow_plain_http {
                return Err(StartError::Config(format!(
                    "peer URL {url} is plain http; set allow_plain_http"
                )));
            }
        }
        if (!advertise.tls || !listen.tls) && !config.allow_plain_http {
            return Err(StartError::Config(
                "plain http peer URLs need allow_plain_http".into(),
            ));
        }
        if !config.join
            && !founders
                .iter()
                .any(|(_, url)| member_id(url) == member_id(&config.advertise_peer_url))
        {
            return Err(StartError::Config(format!(
                "initial cluster does not contain this member's peer URL {}",
                config.advertise_peer_url
            )));
        }

        std::fs::create_dir_all(&config.data_dir)?;
        let db_path = snapshot::db_path(&config.data_dir);
        let db = open_db(db_path).await?;
        let id = match db.get(CF_RAFT_META, KEY_NODE_ID)? {
            Some(raw) => u64::from_be_bytes(
                raw.as_slice()
                    .try_into()
                    .map_err(|_| DbError::Corrupt("node id".into()))?,
            ),
            None => {
                let id = member_id(&config.advertise_peer_url);
                let mut b = rocksdb::WriteBatch::default();
                b.put_cf(db.cf(CF_RAFT_META)?, KEY_NODE_ID, id.to_be_bytes());
                db.write_sync(b)?;
                id
            }
        };

        let (server_tls, client_tls) = if any_tls {
            let pki = config.pki_dir();
            let name = config.name.clone();
            let urls: Vec<String> = [config.advertise_peer_url.clone(), config.listen_peer_url.clone()]
                .into_iter()
                .chain(config.client_urls.iter().cloned())
                .collect();
            let identity = tokio::task::spawn_blocking(move || {
                Identity::issue(&pki, &name, &hosts_of(urls.iter().map(String::as_str)))
            })
            .await
            .map_err(|e| StartError::Raft(e.to_string()))??;
            (
                Some(Arc::new(identity.server_config(ClientAuth::Required)?)),
                Some(Arc::new(identity.client_config()?)),
            )
        } else {
            (None, None)
        };

        let log = LogStore::open(db.clone(), &snapshot::log_path(&config.data_dir))?;
        let sm = SmShared::open(db.clone(), config.data_dir.join("snapshots"), config.hub.clone())?;
        let fresh = log.last_log_id().is_none() && sm.state.read().last_applied.is_none() && {
            let mut l = log.clone();
            openraft::storage::RaftLogStorage::read_vote(&mut l)
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?
                .is_none()
        };

        let raft_config = openraft::Config {
            cluster_name: "keelson".into(),
            heartbeat_interval: config.heartbeat_interval.as_millis().max(1) as u64,
            election_timeout_min: config.election_timeout.0.as_millis().max(2) as u64,
            election_timeout_max: config.election_timeout.1.as_millis().max(3) as u64,
            install_snapshot_timeout: 10_000,
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_logs.max(1)),
            max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Config(e.to_string()))?;

        let client = Arc::new(PeerClient::new(client_tls, config.allow_plain_http));
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            Network::new(client.clone()),
            log.clone(),
            StateMachine { shared: sm.clone() },
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;

        let listener = match listener {
            Some(l) => {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)?
            }
            None => tokio::net::TcpListener::bind((listen.host.as_str(), listen.port)).await?,
        };
        let peer_addr = listener.local_addr()?;

        let (queue, queue_rx) = mpsc::unbounded_channel();
        let (read_index, read_index_rx) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            id,
            metrics: raft.metrics(),
            config: config.clone(),
            raft: raft.clone(),
            sm,
            db,
            client,
            queue,
            shutdown_tx,
            tasks: Mutex::new(Vec::new()),
            peer_addr,
            revoking: Mutex::new(HashSet::new()),
            read_index,
        });

        let service = Arc::new(PeerService {
            inner: Arc::downgrade(&inner),
            raft: raft.clone(),
        });
        let mut stop = shutdown_rx.clone();
        let server = tokio::spawn(transport::serve(listener, server_tls, service, async move {
            let _ = stop.wait_for(|v| *v).await;
        }));
        let batcher = tokio::spawn(proposer::run(
            queue_rx,
            Arc::new(Proposals(Arc::downgrade(&inner))),
            config.max_batch,
            config.max_inflight_proposals,
        ));
        let leases = tokio::spawn(lease_loop(Arc::downgrade(&inner), shutdown_rx.clone()));
        let announce = tokio::spawn(announce_loop(Arc::downgrade(&inner), shutdown_rx));
        let reads = tokio::spawn(read_index_loop(Arc::downgrade(&inner), read_index_rx));
        inner
            .tasks
            .lock()
            .extend([server, batcher, leases, announce, reads]);

        if fresh && !config.join {
            let members: BTreeMap<NodeId, Node> = founders
                .iter()
                .map(|(name, url)| {
                    let me = member_id(url) == id;
                    let node = Node {
                        name: name.clone(),
                        peer_url: url.clone(),
                        client_urls: if me {
                            config.client_urls.clone()
                        } else {
                            Vec::new()
                        },
                    };
                    (member_id(url), node)
                })
                .collect();
            // Founders that all bootstrap at once each start an election at once, and on a
            // split vote the group waits an election timeout. So the founder with the lowest ID
            // bootstraps right away and the others only if they have not heard of a leader
            // within an election timeout (a member that voted or holds a log cannot bootstrap).
            if members.keys().min() != Some(&id) {
                let _ = raft
                    .wait(Some(config.election_timeout.1))
                    .metrics(
                        |m| m.current_leader.is_some(),
                        "a leader elected by the first founder",
                    )
                    .await;
            }
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(id, name = %config.name, "bootstrapped a new cluster"),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StartError::Raft(e.to_string())),
            }
        }

        let store = Arc::new(RaftStorage { inner });
        // Ready when a leader is known; a member that cannot find one yet still starts (it
        // answers Unavailable until it does).
        let wait = store.inner.raft.wait(Some(config.request_timeout));
        if wait
            .metrics(|m| m.current_leader.is_some(), "leader known")
            .await
            .is_err()
        {
            tracing::warn!(id, name = %config.name, "started without a known leader");
        }
        tracing::info!(id, name = %config.name, peer = %peer_addr, "member started");
        Ok(store)
    }

    /// Stops raft, the peer listener and background work. Outstanding requests fail.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        let _ = inner.shutdown_tx.send(true);
        if let Err(e) = inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        inner.sm.hub.shutdown();
        let tasks: Vec<_> = inner.tasks.lock().drain(..).collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        let db = inner.db.clone();
        // Flush the WAL and the memtables (so the next start need not replay the WAL), then
        // stop rocksdb's background flushes and compactions: nothing writes after a shutdown,
        // and a process exiting with background jobs still running can abort in rocksdb's
        // static destructors.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = db.raw().flush_wal(true);
            for name in crate::db::ALL_CFS {
                if let Ok(cf) = db.cf(name)
                    && let Err(e) = db.raw().flush_cf(cf)
                {
                    tracing::warn!(cf = name, error = %e, "flushing a column family at shutdown");
                }
            }
            db.raw().cancel_all_background_work(true);
        })
        .await;
    }

    /// This member's ID.
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// The address the peer listener is bound to.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer_addr
    }

    /// The raft handle (for tests and operational tooling: metrics, triggers).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// True while this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.inner.leader() == Some(self.inner.id)
    }

    /// The leader's member ID, if known.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.inner.leader()
    }
}

/// Opens the database, waiting a little while it is still held by a member of this process
/// that is shutting down.
async fn open_db(path: std::path::PathBuf) -> std::result::Result<Arc<Db>, StartError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = path.clone();
        match tokio::task::spawn_blocking(move || Db::open(&p))
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?
        {
            Ok(db) => return Ok(db),
            Err(DbError::Rocks(e)) if e.to_string().contains("lock") && Instant::now() < deadline => {
                tracing::debug!(error = %e, "database still locked, retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Inner {
    fn leader(&self) -> Option<NodeId> {
        self.metrics.borrow().current_leader
    }

    fn leader_url(&self, leader: NodeId) -> Option<String> {
        self.metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.peer_url.clone())
    }

    fn voters(&self) -> usize {
        self.metrics
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .count()
    }

    /// Waits until the known leader changes from `seen` (or `deadline`).
    async fn leader_change(&self, seen: Option<NodeId>, deadline: Instant) {
        let mut rx = self.metrics.clone();
        let _ = tokio::time::timeout_at(deadline.into(), rx.wait_for(|m| m.current_leader != seen)).await;
    }

    /// Queues a command for the next proposal and waits for its result.
    async fn propose(&self, command: Command) -> Result<CommandOutput> {
        let (reply, wait) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .map_err(|_| unavailable("member is shutting down"))?;
        let result = wait.await.map_err(|_| unavailable("member is shutting down"))??;
        result.map_err(Into::into)
    }

    /// Proposes a follower's batch through this leader's own queue, so that it shares the next
    /// raft entry with the commands waiting here: one entry (one append, one replication round,
    /// one fsync per member) per round instead of one per member.
    ///
    /// A command that fails on its own gets its error in its result; the batch fails as a whole
    /// only when none of it can have been proposed (this member no longer leads).
    async fn propose_forwarded(&self, commands: Bytes) -> Result<Vec<CommandResult>> {
        let commands = crate::types::Proposal { commands }.decode()?;
        let mut waits = Vec::with_capacity(commands.len());
        for command in commands {
            let (reply, wait) = oneshot::channel();
            self.queue
                .send(Pending { command, reply })
                .map_err(|_| unavailable("member is shutting down"))?;
            waits.push(wait);
        }
        let mut results = Vec::with_capacity(waits.len());
        let mut not_leader = 0;
        for wait in waits {
            match wait.await.map_err(|_| unavailable("member is shutting down"))? {
                Ok(result) => results.push(result),
                Err(e) => {
                    not_leader += usize::from(matches!(e, Error::NotLeader { .. }));
                    results.push(Err(WireError::from(settle(e))));
                }
            }
        }
        if not_leader == results.len() {
            return Err(Error::NotLeader { leader: None });
        }
        Ok(results)
    }

    /// Proposes a batch here if this member leads, else on the leader. Retries only where the
    /// batch cannot have been proposed (no leader yet, leader unreachable, not leader).
    async fn submit_batch(&self, commands: Vec<Command>) -> Result<Vec<CommandResult>> {
        let deadline = Instant::now() + self.config.request_timeout;
        let encoded = crate::types::Proposal::encode(&commands)?.commands;
        drop(commands);
        loop {
            let leader = self.leader();
            match leader {
                Some(l) if l == self.id => match self.propose_local(encoded.clone(), deadline).await {
                    Err(Error::NotLeader { .. }) if Instant::now() < deadline => {
                        self.leader_change(leader, deadline).await;
                    }
                    other => return other.map_err(settle),
                },
                Some(l) => {
                    let Some(url) = self.leader_url(l) else {
                        self.leader_change(leader, deadline).await;
                        continue;
                    };
                    match self
                        .call_leader(&url, &LeaderRequest::Propose(encoded.clone()), deadline)
                        .await
                    {
                        Ok(LeaderResponse::Proposed(results)) => return Ok(results),
                        Ok(other) => {
                            return Err(Error::internal(format!("unexpected leader answer {other:?}")));
                        }
                        Err(CallError::NotDelivered(e))
                        | Err(CallError::Refused(e @ Error::NotLeader { .. })) => {
                            if Instant::now() >= deadline {
                                return Err(settle(e));
                            }
                            self.leader_change(
                                leader,
                                deadline.min(Instant::now() + Duration::from_millis(100)),
                            )
                            .await;
                        }
                        Err(CallError::Refused(e)) | Err(CallError::Unknown(e)) => return Err(e),
                    }
                }
                None => {
                    if Instant::now() >= deadline {
                        return Err(unavailable("no leader"));
                    }
                    self.leader_change(None, deadline).await;
                }
            }
        }
    }

    /// Proposes on this member's raft (it must lead).
    async fn propose_local(&self, commands: Bytes, deadline: Instant) -> Result<Vec<CommandResult>> {
        self.check_quorum()?;
        let write = self.raft.client_write(crate::types::Proposal { commands });
        match tokio::time::timeout_at(deadline.into(), write).await {
            Ok(Ok(resp)) => Ok(resp.data.results),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(Error::NotLeader { leader: None })
            }
            Ok(Err(RaftError::APIError(e))) => Err(Error::internal(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(unavailable(format!("raft stopped: {e}"))),
            Err(_) => Err(unavailable(
                "write not committed in time: no quorum (outcome unknown)",
            )),
        }
    }

    /// Fails fast when this leader has not heard from a quorum for a while.
    fn check_quorum(&self) -> Result<()> {
        if self.voters() <= 1 {
            return Ok(());
        }
        let limit = (self.config.election_timeout.1 * 2).max(Duration::from_secs(1));
        let since = self.metrics.borrow().millis_since_quorum_ack;
        match since {
            Some(ms) if Duration::from_millis(ms) > limit => Err(unavailable(format!(
                "leader has not heard from a quorum for {ms} ms"
            ))),
            _ => Ok(()),
        }
    }

    async fn call_leader(
        &self,
        url: &str,
        req: &LeaderRequest,
        deadline: Instant,
    ) -> std::result::Result<LeaderResponse, CallError> {
        let body =
            postcard::to_stdvec(req).map_err(|e| CallError::NotDelivered(Error::internal(e.to_string())))?;
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(10));
        match self.client.call(url, PATH_LEADER, body, left).await {
            Ok(raw) => {
                let result: LeaderResult = postcard::from_bytes(&raw)
                    .map_err(|e| CallError::Unknown(Error::internal(e.to_string())))?;
                result.map_err(|e| CallError::Refused(e.into()))
            }
            Err(e @ TransportError::Unreachable { .. }) => Err(CallError::NotDelivered(map_transport(e))),
            Err(e) => Err(CallError::Unknown(map_transport(e))),
        }
    }

    /// Runs a leader-only request here or on the leader. `retry_unknown`: the request is
    /// idempotent, so it may be resent after an unknown outcome.
    async fn leader_call(
        self: &Arc<Self>,
        req: LeaderRequest,
        retry_unknown: bool,
    ) -> Result<LeaderResponse> {
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            let leader = self.leader();
            let outcome = match leader {
                Some(l) if l == self.id => match self.handle_leader(req.clone()).await {
                    Ok(r) => return Ok(r),
                    Err(e @ Error::NotLeader { .. }) => e,
                    Err(e) => return Err(e),
                },
                Some(l) => match self.leader_url(l) {
                    Some(url) => match self.call_leader(&url, &req, deadline).await {
                        Ok(r) => return Ok(r),
                        Err(CallError::NotDelivered(e))
                        | Err(CallError::Refused(e @ Error::NotLeader { .. })) => e,
                        Err(CallError::Unknown(e)) if retry_unknown => e,
                        Err(CallError::Refused(e)) | Err(CallError::Unknown(e)) => return Err(e),
                    },
                    None => unavailable("leader address unknown"),
                },
                None => unavailable("no leader"),
            };
            if Instant::now() >= deadline {
                return Err(match outcome {
                    Error::NotLeader { .. } => unavailable("leadership is changing"),
                    e => e,
                });
            }
            self.leader_change(leader, deadline.min(Instant::now() + Duration::from_millis(100)))
                .await;
        }
    }

    /// Serves a [`LeaderRequest`] on this member; `NotLeader` if it does not lead.
    async fn handle_leader(self: &Arc<Self>, req: LeaderRequest) -> Result<LeaderResponse> {
        if self.leader() != Some(self.id) {
            return Err(Error::NotLeader { leader: None });
        }
        match req {
            LeaderRequest::Propose(commands) => {
                Ok(LeaderResponse::Proposed(self.propose_forwarded(commands).await?))
            }
            LeaderRequest::ReadIndex => Ok(LeaderResponse::ReadIndex(self.read_index(false).await?)),
            LeaderRequest::KeepAlive(id) => Ok(LeaderResponse::KeepAlive(
                self.sm.state.write().leases.keep_alive(id, Instant::now())?,
            )),
            LeaderRequest::TimeToLive { id, keys } => {
                let st = self.sm.state.read();
                let mut info = st.leases.time_to_live(id, keys, Instant::now())?;
                if keys {
                    info.keys = self.sm.view(&st).lease_keys(id)?;
                }
                Ok(LeaderResponse::TimeToLive(info))
            }
            LeaderRequest::MemberAdd {
                peer_urls,
                is_learner,
            } => self.member_add_here(peer_urls, is_learner).await,
            LeaderRequest::MemberRemove(id) => {
                let (voters, learners) = self.members_split();
                let change = if voters.contains(&id) {
                    if voters.len() == 1 {
                        return Err(Error::Membership("cannot remove the only voting member".into()));
                    }
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else if learners.contains(&id) {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                } else {
                    return Err(Error::Membership(format!("member {id:x} not found")));
                };
                self.change_membership(change, false).await?;
                if voters.contains(&id) {
                    // Removing a voter leaves it a learner; drop it entirely.
                    let (_, learners) = self.members_split();
                    if learners.contains(&id) {
                        self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                            .await?;
                    }
                }
                Ok(LeaderResponse::Done)
            }
            LeaderRequest::MemberPromote(id) => {
                let (voters, learners) = self.members_split();
                if voters.contains(&id) {
                    return Err(Error::Membership(format!("member {id:x} is already a voter")));
                }
                if !learners.contains(&id) {
                    return Err(Error::Membership(format!("member {id:x} not found")));
                }
                self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                    .await?;
                Ok(LeaderResponse::Done)
            }
            LeaderRequest::UpdateNode { id, node } => {
                let known = self
                    .metrics
                    .borrow()
                    .membership_config
                    .membership()
                    .get_node(&id)
                    .cloned();
                match known {
                    Some(n) if n.peer_url == node.peer_url => {
                        if n != node {
                            self.change_membership(
                                ChangeMembers::SetNodes(BTreeMap::from([(id, node)])),
                                true,
                            )
                            .await?;
                        }
                        Ok(LeaderResponse::Done)
                    }
                    Some(_) => Err(Error::Membership("a member's peer URL cannot be changed".into())),
                    None => Err(Error::Membership(format!("member {id:x} not found"))),
                }
            }
        }
    }

    async fn member_add_here(&self, peer_urls: Vec<String>, is_learner: bool) -> Result<LeaderResponse> {
        let url = peer_urls
            .first()
            .ok_or_else(|| Error::InvalidArgument("a peer URL is required".into()))?
            .clone();
        let parsed = PeerUrl::parse(&url).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if !parsed.tls && !self.config.allow_plain_http {
            return Err(Error::InvalidArgument(format!("peer URL {url} is not https")));
        }
        let id = member_id(&url);
        let exists = {
            let m = self.metrics.borrow();
            m.membership_config
                .membership()
                .nodes()
                .any(|(nid, n)| *nid == id || n.peer_url == url)
        };
        if exists {
            return Err(Error::Membership(format!("peer URL {url} is already a member")));
        }
        let node = Node {
            name: String::new(),
            peer_url: url,
            client_urls: Vec::new(),
        };
        self.change_membership(ChangeMembers::AddNodes(BTreeMap::from([(id, node)])), true)
            .await?;
        if !is_learner {
            self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await?;
        }
        Ok(LeaderResponse::Member(Member {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner,
        }))
    }

    async fn change_membership(&self, change: ChangeMembers<NodeId, Node>, retain: bool) -> Result<()> {
        let deadline = Instant::now() + self.config.request_timeout.max(Duration::from_secs(5));
        loop {
            let res = tokio::time::timeout_at(
                deadline.into(),
                self.raft.change_membership(change.clone(), retain),
            )
            .await;
            match res {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                    return Err(Error::NotLeader { leader: None });
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                )))) if Instant::now() < deadline => {
                    // Another change (e.g. a member recording its client URLs) is being committed.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e)))) => {
                    return Err(Error::Membership(e.to_string()));
                }
                Ok(Err(RaftError::Fatal(e))) => return Err(unavailable(format!("raft stopped: {e}"))),
                Err(_) => return Err(unavailable("membership change not committed in time")),
            }
        }
    }

    /// (voters, learners) of the effective membership.
    fn members_split(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let m = self.metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners = membership
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !voters.contains(id))
            .collect();
        (voters, learners)
    }

    /// Waits until this member's state machine is at least as new as the leader's commit point
    /// at the time of the call (read index), so a following local read is linearizable.
    async fn read_barrier(self: &Arc<Self>) -> Result<()> {
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            let leader = self.leader();
            let index = match leader {
                Some(_) => match self.read_index(true).await {
                    Ok(i) => Some(i),
                    Err(Error::NotLeader { .. }) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            if let Some(index) = index {
                if self.metrics.borrow().last_applied.map_or(0, |l| l.index) >= index {
                    return Ok(());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                return match self
                    .raft
                    .wait(Some(left))
                    .applied_index_at_least(Some(index), "read index")
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(_) => Err(unavailable("this member is too far behind the leader")),
                };
            }
            if Instant::now() >= deadline {
                return Err(unavailable("no leader"));
            }
            self.leader_change(leader, deadline).await;
        }
    }

    /// A read index confirmed by a quorum after this call began: from this member's raft when it
    /// leads, else (when `forward`) asked of the leader. Concurrent callers share one round.
    async fn read_index(&self, forward: bool) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.read_index
            .send(ReadIndexWaiter { reply, forward })
            .map_err(|_| unavailable("member is shutting down"))?;
        rx.await.map_err(|_| unavailable("member is shutting down"))?
    }

    /// Asks the leader for a read index (one call; the caller retries on `NotLeader`). Never
    /// serves it here, so a read-index round cannot wait on itself.
    async fn forward_read_index(&self) -> Result<u64> {
        let Some(leader) = self.leader().filter(|l| *l != self.id) else {
            return Err(Error::NotLeader { leader: None });
        };
        let Some(url) = self.leader_url(leader) else {
            return Err(Error::NotLeader { leader: None });
        };
        let deadline = Instant::now() + self.config.request_timeout;
        match self.call_leader(&url, &LeaderRequest::ReadIndex, deadline).await {
            Ok(LeaderResponse::ReadIndex(i)) => Ok(i),
            Ok(other) => Err(Error::internal(format!("unexpected leader answer {other:?}"))),
            Err(CallError::NotDelivered(_)) => Err(Error::NotLeader { leader: None }),
            Err(CallError::Refused(e)) | Err(CallError::Unknown(e)) => Err(e),
        }
    }

    fn member_list(&self) -> Vec<Member> {
        let m = self.metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, n)| Member {
                id: *id,
                name: n.name.clone(),
                peer_urls: vec![n.peer_url.clone()],
                client_urls: n.client_urls.clone(),
                is_learner: !voters.contains(id),
            })
            .collect()
    }
}

/// How a call to the leader failed.
enum CallError {
    /// It certainly did not run (connection refused, ...): safe to retry.
    NotDelivered(Error),
    /// The leader answered with an error.
    Refused(Error),
    /// It may or may not have run.
    Unknown(Error),
}

fn map_check_leader(e: RaftError<NodeId, CheckIsLeaderError<NodeId, Node>>) -> Error {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)) => Error::NotLeader { leader: None },
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            unavailable(format!("no quorum to confirm leadership: {q}"))
        }
        RaftError::Fatal(f) => unavailable(format!("raft stopped: {f}")),
    }
}

/// The proposer's submit seam: a weak handle, so the batching task does not keep a member alive.
struct Proposals(Weak<Inner>);

impl Submit for Proposals {
    async fn submit(&self, commands: Vec<Command>) -> Result<Vec<CommandResult>> {
        let inner = self
            .0
            .upgrade()
            .ok_or_else(|| unavailable("member is shutting down"))?;
        inner.submit_batch(commands).await
    }

    fn forwards(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|inner| inner.leader().is_some_and(|l| l != inner.id))
    }
}

/// Lease expiry: on the leader, restart every lease's TTL when leadership is gained and revoke
/// expired leases through raft.
async fn lease_loop(weak: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(LEASE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut led_term: Option<u64> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let Some(inner) = weak.upgrade() else { return };
        let (is_leader, term) = {
            let m = inner.metrics.borrow();
            (m.state == ServerState::Leader, m.current_term)
        };
        if !is_leader {
            led_term = None;
            continue;
        }
        let now = Instant::now();
        if led_term != Some(term) {
            led_term = Some(term);
            inner.sm.state.write().leases.reset_deadlines(now);
            continue;
        }
        let expired = inner.sm.state.read().leases.expired(now);
        for id in expired.into_iter().take(LEASE_REVOKES_PER_TICK) {
            if !inner.revoking.lock().insert(id) {
                continue;
            }
            let inner = inner.clone();
            tokio::spawn(async move {
                match inner.propose(Command::LeaseRevoke { id }).await {
                    Ok(_) | Err(Error::LeaseNotFound(_)) => {
                        tracing::debug!(lease = id, "revoked expired lease")
                    }
                    Err(e) => tracing::warn!(lease = id, error = %e, "revoking expired lease failed"),
                }
                inner.revoking.lock().remove(&id);
            });
        }
    }
}

/// Serves read-index requests in rounds: every request waiting when a round starts shares its
/// leadership confirmation (one heartbeat to the voters), and requests arriving during a round
/// wait for the next one, so each gets an index confirmed after it asked.
async fn read_index_loop(weak: Weak<Inner>, mut rx: mpsc::UnboundedReceiver<ReadIndexWaiter>) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let Some(inner) = weak.upgrade() else { return };
        let leads = inner.leader() == Some(inner.id);
        let result = if leads {
            match tokio::time::timeout(inner.config.request_timeout, inner.raft.get_read_log_id()).await {
                Ok(Ok((read_log_id, _))) => Ok(read_log_id.map_or(0, |l| l.index)),
                Ok(Err(e)) => Err(map_check_leader(e)),
                Err(_) => Err(unavailable("no quorum to confirm a linearizable read")),
            }
        } else if waiters.iter().any(|w| w.forward) {
            inner.forward_read_index().await
        } else {
            Err(Error::NotLeader { leader: None })
        };
        drop(inner);
        let wire = result.map_err(WireError::from);
        for w in waiters {
            let answer = if !leads && !w.forward {
                Err(Error::NotLeader { leader: None })
            } else {
                wire.clone().map_err(Into::into)
            };
            let _ = w.reply.send(answer);
        }
    }
}

/// Makes sure the membership records this member's name and client URLs (a member added by URL
/// is recorded without them).
async fn announce_loop(weak: Weak<Inner>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|v| *v) => return,
        }
        let Some(inner) = weak.upgrade() else { return };
        let recorded = inner
            .metrics
            .borrow()
            .membership_config
            .membership()
            .get_node(&inner.id)
            .cloned();
        let Some(recorded) = recorded else { continue };
        let wanted = Node {
            name: inner.config.name.clone(),
            peer_url: recorded.peer_url.clone(),
            client_urls: inner.config.client_urls.clone(),
        };
        if recorded == wanted {
            return;
        }
        match inner
            .leader_call(
                LeaderRequest::UpdateNode {
                    id: inner.id,
                    node: wanted,
                },
                true,
            )
            .await
        {
            Ok(_) => tracing::info!(id = inner.id, "recorded this member's name and client URLs"),
            Err(e) => tracing::debug!(error = %e, "cannot record member info yet"),
        }
    }
}

/// Serves peer calls: raft RPCs and leader requests.
struct PeerService {
    inner: Weak<Inner>,
    raft: Raft,
}

fn bad_request(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::BAD_REQUEST, e.to_string())
}

fn encode<T: serde::Serialize>(v: &T) -> std::result::Result<Vec<u8>, (StatusCode, String)> {
    postcard::to_stdvec(v).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

impl PeerHandler for PeerService {
    async fn handle(&self, path: String, body: Bytes) -> std::result::Result<Vec<u8>, (StatusCode, String)> {
        match path.as_str() {
            PATH_APPEND => {
                let req = postcard::from_bytes(&body).map_err(bad_request)?;
                encode(&self.raft.append_entries(req).await)
            }
            PATH_VOTE => {
                let req = postcard::from_bytes(&body).map_err(bad_request)?;
                encode(&self.raft.vote(req).await)
            }
            PATH_SNAPSHOT => {
                let req = postcard::from_bytes(&body).map_err(bad_request)?;
                encode(&self.raft.install_snapshot(req).await)
            }
            PATH_LEADER => {
                let req: LeaderRequest = postcard::from_bytes(&body).map_err(bad_request)?;
                let result: LeaderResult = match self.inner.upgrade() {
                    Some(inner) => inner.handle_leader(req).await.map_err(WireError::from),
                    None => Err(WireError::Unavailable("member is shutting down".into())),
                };
                encode(&result)
            }
            _ => Err((StatusCode::NOT_FOUND, format!("no such peer call {path}"))),
        }
    }
}

fn expect_txn(out: CommandOutput) -> Result<TxnResponse> {
    match out {
        CommandOutput::Txn(resp) => Ok(resp),
        other => Err(Error::internal(format!("unexpected command output {other:?}"))),
    }
}

#[async_trait]
impl Storage for RaftStorage {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        mvcc::validate_range(&req)?;
        if !req.serializable {
            self.inner.read_barrier().await?;
        }
        let sm = self.inner.sm.clone();
        {
            let st = sm.state.read();
            if req.revision == 0 || req.revision >= st.revision || req.revision < st.compacted {
                return mvcc::range(&sm.view(&st), &req);
            }
        }
        tokio::task::spawn_blocking(move || {
            let (current, compacted, snap) = {
                let st = sm.state.read();
                (st.revision, st.compacted, sm.db.raw().snapshot())
            };
            let view = HistoricView {
                current,
                compacted,
                db: &sm.db,
                snapshot: &snap,
            };
            mvcc::range(&view, &req)
        })
        .await
        .map_err(Error::internal)?
    }

    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse> {
        mvcc::validate_txn(&req)?;
        expect_txn(self.inner.propose(Command::Txn(req)).await?)
    }

    async fn watch(&self, req: WatchRequest) -> Result<Watcher> {
        self.inner.sm.hub.watch(req)
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.read_barrier().await?;
        Ok(self.inner.sm.state.read().revision)
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // Checked when applied (this member's state may lag the leader's).
        match self.inner.propose(Command::Compact { revision }).await? {
            CommandOutput::Compacted => Ok(()),
            other => Err(Error::internal(format!("unexpected command output {other:?}"))),
        }
    }

    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> Result<LeaseInfo> {
        LeaseTable::new().check_grant(id, ttl)?;
        let id = if id == 0 { new_lease_id() } else { id };
        match self.inner.propose(Command::LeaseGrant { id, ttl }).await? {
            CommandOutput::LeaseGranted(info) => Ok(info),
            other => Err(Error::internal(format!("unexpected command output {other:?}"))),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision> {
        match self.inner.propose(Command::LeaseRevoke { id }).await? {
            CommandOutput::LeaseRevoked(rev) => Ok(rev),
            other => Err(Error::internal(format!("unexpected command output {other:?}"))),
        }
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64> {
        match self.inner.leader_call(LeaderRequest::KeepAlive(id), true).await? {
            LeaderResponse::KeepAlive(ttl) => Ok(ttl),
            other => Err(Error::internal(format!("unexpected leader answer {other:?}"))),
        }
    }

    async fn lease_time_to_live(&self, id: LeaseId, keys: bool) -> Result<LeaseInfo> {
        match self
            .inner
            .leader_call(LeaderRequest::TimeToLive { id, keys }, true)
            .await?
        {
            LeaderResponse::TimeToLive(info) => Ok(info),
            other => Err(Error::internal(format!("unexpected leader answer {other:?}"))),
        }
    }

    async fn lease_list(&self) -> Result<Vec<LeaseId>> {
        self.inner.read_barrier().await?;
        Ok(self.inner.sm.state.read().leases.ids())
    }

    async fn member_list(&self) -> Result<Vec<Member>> {
        Ok(self.inner.member_list())
    }

    async fn member_add(&self, peer_urls: Vec<String>, is_learner: bool) -> Result<Member> {
        match self
            .inner
            .leader_call(
                LeaderRequest::MemberAdd {
                    peer_urls,
                    is_learner,
                },
                false,
            )
            .await?
        {
            LeaderResponse::Member(m) => Ok(m),
            other => Err(Error::internal(format!("unexpected leader answer {other:?}"))),
        }
    }

    async fn member_remove(&self, id: u64) -> Result<()> {
        self.inner
            .leader_call(LeaderRequest::MemberRemove(id), false)
            .await
            .map(|_| ())
    }

    async fn member_promote(&self, id: u64) -> Result<()> {
        self.inner
            .leader_call(LeaderRequest::MemberPromote(id), false)
            .await
            .map(|_| ())
    }

    async fn status(&self) -> Result<Status> {
        let (leader, term, last_index, applied, is_learner) = {
            let m = self.inner.metrics.borrow();
            let is_learner = !m
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == self.inner.id);
            (
                m.current_leader,
                m.current_term,
                m.last_log_index,
                m.last_applied,
                is_learner,
            )
        };
        let (revision, compacted) = {
            let st = self.inner.sm.state.read();
            (st.revision, st.compacted)
        };
        let db = self.inner.db.clone();
        let db_size = tokio::task::spawn_blocking(move || db.approximate_size())
            .await
            .unwrap_or(0);
        Ok(Status {
            member_id: self.inner.id,
            leader_id: leader.unwrap_or(0),
            raft_term: term,
            raft_index: last_index.unwrap_or(0),
            raft_applied_index: applied.map_or(0, |l| l.index),
            revision,
            compact_revision: compacted,
            db_size,
            is_learner,
        })
    }

    async fn snapshot(&self) -> Result<SnapshotStream> {
        Ok(snapshot::stream(&self.inner.sm))
    }
}
