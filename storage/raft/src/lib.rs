//! Keelson's replicated store: [`RaftStorage`] implements [`storage::Storage`] with openraft
//! (0.9) for replication and rocksdb for durability.
//!
//! - The raft log lives in segment files of its own ([`segments`], [`log_store`]); one rocksdb
//!   database per member holds raft metadata, state-machine metadata, MVCC versions and the
//!   event index ([`db`]).
//! - The state machine keeps a store-wide revision counter, +1 per writing transaction, written
//!   in the same `WriteBatch` as the data and `last_applied` ([`state_machine`]); it is not
//!   fsynced itself: after a crash, entries past the last durable `last_applied` are applied
//!   again from the log, and rocksdb's WAL is synced before log entries are purged.
//! - Durability comes from the raft log: each append is fsynced before openraft hears of it,
//!   and concurrent client commands are packed into one raft entry ([`proposer`]), so one
//!   fsync covers many writes.
//! - Linearizable reads use a read index (on followers, asked of the leader); writes on a
//!   follower are forwarded to the leader; watches are served by every member from its own
//!   applied state.
//! - Members talk HTTP/2 with mutual TLS ([`transport`], [`tls`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use storage::{Storage, StorageExt, Expect};
//! let config = storage_raft::Config::new("m1", "/var/lib/keelson", "https://127.0.0.1:2380");
//! let store = storage_raft::RaftStorage::start(config).await?;
//! store.put_if(b"/registry/a", "v".into(), Expect::Absent).await?;
//! store.shutdown().await;
//! # Ok(()) }
//! ```

mod codec;
mod config;
pub mod db;
mod kv_read;
mod latest;
mod log_store;
pub mod network;
mod node;
pub mod proposer;
mod segments;
mod snapshot;
pub mod state_machine;
pub mod tls;
pub mod transport;
pub mod types;
mod worker;

pub use config::Config;
pub use node::{RaftStorage, StartError};
pub use snapshot::{RestoreSummary, SnapshotError, db_path, restore_snapshot};
pub use types::{Node, NodeId, TypeConfig, member_id};
