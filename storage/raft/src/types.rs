//! The openraft type configuration: what a log entry carries ([`Proposal`]), what applying it
//! answers ([`ProposalResult`]) and what a member is ([`Node`]).
//!
//! Every openraft type stays inside this crate, so an openraft upgrade touches one crate.

use std::fmt;

use serde::{Deserialize, Serialize};
use storage::{Error, LeaseId, LeaseInfo, Revision, TxnRequest, TxnResponse};

/// A raft member ID. Derived from the member's advertised peer URL ([`member_id`]) and stored in
/// the member's database on first start.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The raft type configuration of the Keelson store.
    pub TypeConfig:
        D = Proposal,
        R = ProposalResult,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The raft handle of this crate's type configuration.
pub type Raft = openraft::Raft<TypeConfig>;

/// What the cluster knows about one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The member's name (empty for a member added by URL that has not started yet).
    pub name: String,
    /// The URL other members reach it on.
    pub peer_url: String,
    /// The URLs clients reach it on.
    pub client_urls: Vec<String>,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_url)
    }
}

/// One state-machine command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// An etcd transaction (also single puts and deletes).
    Txn(TxnRequest),
    /// Creates a lease (the ID was picked by the proposer).
    LeaseGrant {
        /// The lease ID (non-zero).
        id: LeaseId,
        /// Requested TTL in seconds.
        ttl: i64,
    },
    /// Revokes a lease and deletes its keys in one revision.
    LeaseRevoke {
        /// The lease ID.
        id: LeaseId,
    },
    /// Discards history below `revision`.
    Compact {
        /// The new compaction point.
        revision: Revision,
    },
}

/// The payload of one raft log entry: commands proposed together (group commit). They are
/// applied in order, each seeing the ones before it, and each gets its own result.
///
/// The commands are kept encoded (postcard `Vec<Command>`): the entry is cloned for the state
/// machine and for every follower's replication stream, and serialized for the log and the
/// network, all of which are then byte copies. Members decode it once, when applying.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// postcard-encoded `Vec<Command>`.
    pub commands: bytes::Bytes,
}

impl Proposal {
    /// Encodes commands into a proposal.
    pub fn encode(commands: &[Command]) -> Result<Proposal, Error> {
        let raw = postcard::to_stdvec(commands).map_err(|e| Error::internal(e.to_string()))?;
        Ok(Proposal { commands: raw.into() })
    }

    /// Decodes the commands.
    pub fn decode(&self) -> Result<Vec<Command>, Error> {
        postcard::from_bytes(&self.commands)
            .map_err(|e| Error::internal(format!("undecodable proposal: {e}")))
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proposal({} bytes)", self.commands.len())
    }
}

/// The successful outcome of one [`Command`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutput {
    /// The transaction's response.
    Txn(TxnResponse),
    /// The granted lease.
    LeaseGranted(LeaseInfo),
    /// The store's revision after the revoke.
    LeaseRevoked(Revision),
    /// The compaction point was recorded.
    Compacted,
}

/// The outcome of one [`Command`]: deterministic failures (unknown lease, compacted revision,
/// ...) are results too, so every member reaches the same state.
pub type CommandResult = Result<CommandOutput, WireError>;

/// What applying a [`Proposal`] answers: one result per command (empty for blank and membership
/// entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalResult {
    /// One result per command, in order.
    pub results: Vec<CommandResult>,
}

/// [`storage::Error`] in a form that crosses the wire (log entries, forwarded requests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[allow(missing_docs)]
pub enum WireError {
    #[error("compacted: requested {requested}, compacted {compacted}")]
    Compacted { requested: u64, compacted: u64 },
    #[error("future revision: requested {requested}, current {current}")]
    FutureRevision { requested: u64, current: u64 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("empty key")]
    EmptyKey,
    #[error("too large: {size} > {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("key not found")]
    KeyNotFound,
    #[error("duplicate key")]
    DuplicateKey,
    #[error("too many ops")]
    TooManyOps,
    #[error("lease not found: {0}")]
    LeaseNotFound(i64),
    #[error("lease exists: {0}")]
    LeaseExists(i64),
    #[error("watch overflow at {0}")]
    WatchOverflow(u64),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("timeout")]
    Timeout,
    #[error("not leader (leader {leader:?})")]
    NotLeader { leader: Option<String> },
    #[error("membership: {0}")]
    Membership(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        match e {
            Error::Compacted { requested, compacted } => WireError::Compacted { requested, compacted },
            Error::FutureRevision { requested, current } => WireError::FutureRevision { requested, current },
            Error::InvalidArgument(s) => WireError::InvalidArgument(s),
            Error::EmptyKey => WireError::EmptyKey,
            Error::TooLarge { size, limit } => WireError::TooLarge {
                size: size as u64,
                limit: limit as u64,
            },
            Error::KeyNotFound => WireError::KeyNotFound,
            Error::DuplicateKey => WireError::DuplicateKey,
            Error::TooManyOps => WireError::TooManyOps,
            Error::LeaseNotFound(id) => WireError::LeaseNotFound(id),
            Error::LeaseExists(id) => WireError::LeaseExists(id),
            Error::WatchOverflow { next_revision } => WireError::WatchOverflow(next_revision),
            Error::Unavailable(s) => WireError::Unavailable(s),
            Error::Timeout => WireError::Timeout,
            Error::NotLeader { leader } => WireError::NotLeader { leader },
            Error::Membership(s) => WireError::Membership(s),
            Error::Unsupported(s) => WireError::Unsupported(s),
            other => WireError::Internal(other.to_string()),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Compacted { requested, compacted } => Error::Compacted { requested, compacted },
            WireError::FutureRevision { requested, current } => Error::FutureRevision { requested, current },
            WireError::InvalidArgument(s) => Error::InvalidArgument(s),
            WireError::EmptyKey => Error::EmptyKey,
            WireError::TooLarge { size, limit } => Error::TooLarge {
                size: size as usize,
                limit: limit as usize,
            },
            WireError::KeyNotFound => Error::KeyNotFound,
            WireError::DuplicateKey => Error::DuplicateKey,
            WireError::TooManyOps => Error::TooManyOps,
            WireError::LeaseNotFound(id) => Error::LeaseNotFound(id),
            WireError::LeaseExists(id) => Error::LeaseExists(id),
            WireError::WatchOverflow(next_revision) => Error::WatchOverflow { next_revision },
            WireError::Unavailable(s) => Error::Unavailable(s),
            WireError::Timeout => Error::Timeout,
            WireError::NotLeader { leader } => Error::NotLeader { leader },
            WireError::Membership(s) => Error::Membership(s),
            WireError::Unsupported(s) => Error::Unsupported(s),
            WireError::Internal(s) => Error::Internal(s.into()),
        }
    }
}

/// The member ID of the member advertising `peer_url`: a stable, non-zero 64-bit FNV-1a hash, so
/// the member being added and the leader adding it compute the same ID.
pub fn member_id(peer_url: &str) -> NodeId {
    let normalized = peer_url.trim_end_matches('/');
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in normalized.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Keep it within i64's positive range (etcd tools print member IDs as hex u64, but some
    // parse them as signed) and non-zero.
    (h >> 1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_stable_and_ignore_a_trailing_slash() {
        assert_eq!(
            member_id("https://10.0.0.1:2380"),
            member_id("https://10.0.0.1:2380/")
        );
        assert_ne!(
            member_id("https://10.0.0.1:2380"),
            member_id("https://10.0.0.2:2380")
        );
        assert!(member_id("") > 0);
    }

    #[test]
    fn proposals_round_trip_through_postcard() {
        let commands = vec![
            Command::Txn(TxnRequest::default()),
            Command::LeaseGrant { id: 7, ttl: 10 },
            Command::Compact { revision: 3 },
        ];
        let p = Proposal::encode(&commands).unwrap();
        let bytes = postcard::to_stdvec(&p).unwrap();
        assert_eq!(
            postcard::from_bytes::<Proposal>(&bytes)
                .unwrap()
                .decode()
                .unwrap(),
            commands
        );
        assert!(
            Proposal {
                commands: bytes::Bytes::from_static(&[9, 9])
            }
            .decode()
            .is_err()
        );
        let r = ProposalResult {
            results: vec![Ok(CommandOutput::Compacted), Err(WireError::LeaseNotFound(3))],
        };
        let bytes = postcard::to_stdvec(&r).unwrap();
        assert_eq!(postcard::from_bytes::<ProposalResult>(&bytes).unwrap(), r);
    }
}
