//! Keelson's storage interface: a byte-level, MVCC key-value store with etcd v3's data model.
//!
//! Every successful write takes the next store-wide [`Revision`]; reads can be served at any
//! revision not yet compacted; writes are transactions guarded by compares (compare-and-swap on a
//! key's `mod_revision` is how Kubernetes updates objects); watches replay history from a revision
//! and then follow live changes; leases delete their keys when they expire.
//!
//! Two implementations: [`mem::MemStorage`] here (the reference, used by tests and ephemeral
//! servers) and `storage_raft::RaftStorage` (openraft + rocksdb). Both run the same contract suite
//! ([`testsuite`], feature `testsuite`). The pieces they share (transaction evaluation over an MVCC
//! view, the watch hub, lease expiry bookkeeping) live here so there is one copy of each rule.
//!
//! ```
//! # async fn demo() -> storage::Result<()> {
//! use storage::{Expect, Storage, StorageExt, mem::MemStorage};
//! let store = MemStorage::new();
//! let created = store.put_if(b"/registry/pods/default/a", "v1".into(), Expect::Absent).await?;
//! assert!(created.is_done());
//! # Ok(()) }
//! ```

mod error;
mod ext;
pub mod hub;
pub mod lease;
pub mod mem;
pub mod mvcc;
#[cfg(feature = "testsuite")]
pub mod testsuite;
mod types;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;

pub use error::{BoxError, Error, Result};
pub use ext::{Expect, ListPage, StorageExt, WriteOutcome};
pub use types::*;

/// A stream of watch items. It ends with `Err(Error::WatchOverflow)` when the watcher fell too far
/// behind, or `Err(Error::Compacted)` if history it still needed was compacted.
pub type WatchStream = BoxStream<'static, Result<WatchItem>>;

/// A stream of snapshot chunks.
pub type SnapshotStream = BoxStream<'static, Result<bytes::Bytes>>;

/// Asks a watch to report progress: once every event before the request has been delivered, the
/// watch stream yields [`WatchItem::Progress`] with the store's revision at that point.
#[derive(Clone)]
pub struct ProgressHandle(Arc<dyn Fn() + Send + Sync>);

impl ProgressHandle {
    /// Wraps the function that queues a progress notification for one watcher.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        ProgressHandle(Arc::new(f))
    }

    /// Queues a progress notification.
    pub fn request(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for ProgressHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHandle")
    }
}

/// A live watch: its events and a way to ask it for progress. Dropping it cancels the watch.
pub struct Watcher {
    /// The events, in revision order.
    pub stream: WatchStream,
    /// Requests a progress notification on `stream`.
    pub progress: ProgressHandle,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

/// The byte-level MVCC store. Object safe: the binary chooses `Arc<dyn Storage>` at run time.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads one key or a range. Fails with [`Error::Compacted`] / [`Error::FutureRevision`] for a
    /// revision outside the kept history.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Runs a transaction atomically. Acknowledged only once durable.
    async fn txn(&self, req: TxnRequest) -> Result<TxnResponse>;

    /// Puts one key (a transaction with no compares).
    async fn put(&self, req: PutRequest) -> Result<TxnResponse> {
        self.txn(TxnRequest {
            success: vec![TxnOp::Put(req)],
            ..Default::default()
        })
        .await
    }

    /// Deletes a key or a range (a transaction with no compares).
    async fn delete_range(&self, req: DeleteRangeRequest) -> Result<TxnResponse> {
        self.txn(TxnRequest {
            success: vec![TxnOp::DeleteRange(req)],
            ..Default::default()
        })
        .await
    }

    /// Watches a key or range: history from `start_revision` (if given), then live changes.
    async fn watch(&self, req: WatchRequest) -> Result<Watcher>;

    /// The current revision, confirmed with a quorum where there is one (linearizable).
    async fn current_revision(&self) -> Result<Revision>;

    /// Discards history below `revision`: reads and watches before it fail with
    /// [`Error::Compacted`]. The latest version of every live key is kept.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// Creates a lease that expires `ttl` seconds after its last keep-alive. `id == 0` picks one.
    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> Result<LeaseInfo>;

    /// Revokes a lease, deleting its keys (in one new revision). Returns the revision after.
    async fn lease_revoke(&self, id: LeaseId) -> Result<Revision>;

    /// Restarts a lease's TTL; returns the TTL.
    async fn lease_keep_alive(&self, id: LeaseId) -> Result<i64>;

    /// A lease's remaining TTL (and keys when `keys`).
    async fn lease_time_to_live(&self, id: LeaseId, keys: bool) -> Result<LeaseInfo>;

    /// Every lease's ID.
    async fn lease_list(&self) -> Result<Vec<LeaseId>>;

    /// The members of the store's cluster.
    async fn member_list(&self) -> Result<Vec<Member>>;

    /// Adds a member (as a learner when `is_learner`), returning it with its new ID.
    async fn member_add(&self, peer_urls: Vec<String>, is_learner: bool) -> Result<Member> {
        let _ = (peer_urls, is_learner);
        Err(Error::Unsupported("this store has a single member".into()))
    }

    /// Removes a member.
    async fn member_remove(&self, id: u64) -> Result<()> {
        let _ = id;
        Err(Error::Unsupported("this store has a single member".into()))
    }

    /// Promotes a learner to a voting member.
    async fn member_promote(&self, id: u64) -> Result<()> {
        let _ = id;
        Err(Error::Unsupported("this store has a single member".into()))
    }

    /// This member's status.
    async fn status(&self) -> Result<Status>;

    /// A consistent copy of the whole store, as chunks (restorable with the implementation's own
    /// restore).
    async fn snapshot(&self) -> Result<SnapshotStream>;
}
