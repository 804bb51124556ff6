//! How to start a member.

use std::path::PathBuf;
use std::time::Duration;

use storage::hub::HubConfig;

/// A member's configuration (the etcd-style `--name`, `--data-dir`, `--listen-peer-urls`,
/// `--initial-advertise-peer-urls`, `--initial-cluster`, `--initial-cluster-state` flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// This member's name.
    pub name: String,
    /// Where the database, snapshots and (by default) the PKI live.
    pub data_dir: PathBuf,
    /// Where the peer listener binds, e.g. `https://0.0.0.0:2380`. Ignored when a listener is
    /// passed to [`crate::RaftStorage::start_with_listener`].
    pub listen_peer_url: String,
    /// The URL other members reach this one on (its identity: the member ID derives from it).
    pub advertise_peer_url: String,
    /// The client URLs this member advertises (reported by `member_list`).
    pub client_urls: Vec<String>,
    /// The founding members as `(name, peer URL)`; empty means a single-member cluster of this
    /// member. Only read when the data directory is new.
    pub initial_cluster: Vec<(String, String)>,
    /// Join an existing cluster (`--initial-cluster-state existing`): do not bootstrap; wait to be
    /// added by the leader (`member_add` with this member's peer URL).
    pub join: bool,
    /// The PKI directory (default `<data_dir>/pki`). Members of a group must share its CA.
    pub pki_dir: Option<PathBuf>,
    /// Allow `http://` peer URLs (no TLS). For loopback tests only.
    pub allow_plain_http: bool,
    /// Leader heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Election timeout range: a follower that hears no leader for a random time in this range
    /// starts an election.
    pub election_timeout: (Duration, Duration),
    /// How long a write or linearizable read may wait for a leader / quorum before failing with
    /// `Unavailable`.
    pub request_timeout: Duration,
    /// Build a raft snapshot after this many log entries since the last one.
    pub snapshot_after_logs: u64,
    /// Log entries kept behind a snapshot (for followers that lag a little).
    pub logs_kept_after_snapshot: u64,
    /// Most commands packed into one raft entry.
    pub max_batch: usize,
    /// Raft entries being proposed at once. One is fastest as measured (bench/storage.sh, 64
    /// clients, 1 and 3 members): while an entry is in flight the next batch grows, and every
    /// entry has a fixed cost (append, fsync, replication, apply, wake-ups) that larger batches
    /// share; 4 in flight gave 25-30 % fewer puts/s.
    pub max_inflight_proposals: usize,
    /// Watch buffers.
    pub hub: HubConfig,
}

impl Config {
    /// A configuration with defaults for everything but the identity.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>, peer_url: impl Into<String>) -> Config {
        let peer_url = peer_url.into();
        Config {
            name: name.into(),
            data_dir: data_dir.into(),
            listen_peer_url: peer_url.clone(),
            advertise_peer_url: peer_url,
            client_urls: Vec::new(),
            initial_cluster: Vec::new(),
            join: false,
            pki_dir: None,
            allow_plain_http: false,
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(400), Duration::from_millis(800)),
            request_timeout: Duration::from_secs(3),
            snapshot_after_logs: 10_000,
            logs_kept_after_snapshot: 1_000,
            max_batch: 512,
            max_inflight_proposals: 1,
            hub: HubConfig::default(),
        }
    }

    /// The PKI directory in use.
    pub fn pki_dir(&self) -> PathBuf {
        self.pki_dir.clone().unwrap_or_else(|| self.data_dir.join("pki"))
    }

    /// The founding members, defaulting to this member alone.
    pub fn founders(&self) -> Vec<(String, String)> {
        if self.initial_cluster.is_empty() {
            vec![(self.name.clone(), self.advertise_peer_url.clone())]
        } else {
            self.initial_cluster.clone()
        }
    }
}
