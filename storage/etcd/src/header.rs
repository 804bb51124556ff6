//! Response headers: cluster ID, member ID, revision and raft term, filled in as etcd does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use etcd_client::proto::PbResponseHeader;
use storage::Storage;

use crate::convert::pb_revision;

/// Fills response headers. The raft term and the latest revision seen are cached (refreshed on
/// every [`Headers::current`] call) for responses that carry no revision of their own.
pub(crate) struct Headers {
    store: Arc<dyn Storage>,
    cluster_id: u64,
    member_id: u64,
    raft_term: AtomicU64,
    revision: AtomicU64,
}

impl Headers {
    /// Headers for a member of `cluster_id`, asking the store for its member ID.
    pub(crate) async fn new(store: Arc<dyn Storage>, cluster_id: Option<u64>) -> storage::Result<Self> {
        let status = store.status().await?;
        let cluster_id = match cluster_id {
            Some(id) => id,
            None => derive_cluster_id(&store.member_list().await?),
        };
        Ok(Headers {
            store,
            cluster_id,
            member_id: status.member_id,
            raft_term: AtomicU64::new(status.raft_term),
            revision: AtomicU64::new(status.revision),
        })
    }

    /// The cluster ID headers carry.
    pub(crate) fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// This member's ID.
    pub(crate) fn member_id(&self) -> u64 {
        self.member_id
    }

    /// A header for a response at `revision` (the store's revision the response reflects).
    pub(crate) fn at(&self, revision: u64) -> PbResponseHeader {
        self.revision.fetch_max(revision, Ordering::Relaxed);
        PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: pb_revision(revision),
            raft_term: self.raft_term.load(Ordering::Relaxed),
        }
    }

    /// A header with the latest revision this layer has seen, without asking the store.
    pub(crate) fn cached(&self) -> PbResponseHeader {
        self.at(self.revision.load(Ordering::Relaxed))
    }

    /// A header with this member's current revision and term (as etcd fills responses that carry
    /// no revision of their own: lease, cluster and maintenance calls).
    pub(crate) async fn current(&self) -> PbResponseHeader {
        match self.store.status().await {
            Ok(status) => {
                self.raft_term.fetch_max(status.raft_term, Ordering::Relaxed);
                self.at(status.revision)
            }
            Err(e) => {
                tracing::debug!(error = %e, "status for a response header failed; using cached values");
                self.cached()
            }
        }
    }
}

/// A cluster ID from the member IDs (etcd derives its cluster ID from its initial members too):
/// the first eight bytes of a SHA-256 over the sorted IDs.
pub fn derive_cluster_id(members: &[storage::Member]) -> u64 {
    let mut ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for id in ids {
        ctx.update(&id.to_be_bytes());
    }
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}
