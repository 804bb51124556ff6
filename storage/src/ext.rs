//! The Kubernetes-shaped convenience calls (`get`, paged `list`, compare-and-swap `put_if` /
//! `delete_if`), written once over [`Storage::range`] and [`Storage::txn`].

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, KeyValue, OpResponse, PutRequest, RangeRequest,
    Result, Revision, Storage, TxnOp, TxnRequest, prefix_end,
};

/// The compare of a single-key compare-and-swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Write unconditionally.
    Any,
    /// Write only if the key does not exist (create).
    Absent,
    /// Write only if the key's `mod_revision` is this (update at a resourceVersion).
    ModRevision(Revision),
}

/// The outcome of a compare-and-swap. A failed compare is an outcome, not an error, and carries
/// what is there now so an update loop can retry without reading again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write happened. For a put, `kv` is the new version; for a delete, the deleted version.
    Done {
        /// The written (or deleted) version.
        kv: KeyValue,
        /// The revision of the write.
        revision: Revision,
    },
    /// The compare failed; `current` is the key's current version (None when absent).
    Conflict {
        /// What is stored now.
        current: Option<KeyValue>,
        /// The store's revision when the compare was evaluated.
        revision: Revision,
    },
}

impl WriteOutcome {
    /// True when the write happened.
    pub fn is_done(&self) -> bool {
        matches!(self, WriteOutcome::Done { .. })
    }
}

/// One page of a prefix list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// The keys, in byte order.
    pub kvs: Vec<KeyValue>,
    /// The revision the page was read at (pass it back to read the next page consistently).
    pub revision: Revision,
    /// True when more keys follow the last one returned.
    pub more: bool,
    /// Number of keys under the prefix after `start_after`, ignoring the limit.
    pub remaining: u64,
}

/// Kubernetes-shaped calls on any [`Storage`].
#[async_trait]
pub trait StorageExt: Storage {
    /// Reads one key at the latest revision (`revision == 0`) or an exact one.
    async fn get(&self, key: &[u8], revision: Revision) -> Result<(Option<KeyValue>, Revision)> {
        let resp = self
            .range(RangeRequest {
                key: Bytes::copy_from_slice(key),
                revision,
                ..Default::default()
            })
            .await?;
        Ok((resp.kvs.into_iter().next(), resp.revision))
    }

    /// Lists keys under `prefix`, after `start_after` when given, at `revision` (0: latest),
    /// at most `limit` (0: all).
    async fn list(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        revision: Revision,
        limit: u64,
    ) -> Result<ListPage> {
        let key = match start_after {
            // The smallest key greater than `start_after`.
            Some(after) => {
                let mut k = after.to_vec();
                k.push(0);
                Bytes::from(k)
            }
            None => Bytes::copy_from_slice(prefix),
        };
        let resp = self
            .range(RangeRequest {
                key,
                range_end: prefix_end(prefix),
                limit,
                revision,
                ..Default::default()
            })
            .await?;
        Ok(ListPage {
            remaining: resp.count,
            kvs: resp.kvs,
            revision: resp.revision,
            more: resp.more,
        })
    }

    /// Puts `key` if `expect` holds.
    async fn put_if(&self, key: &[u8], value: Bytes, expect: Expect) -> Result<WriteOutcome> {
        let key = Bytes::copy_from_slice(key);
        let write = TxnOp::Put(PutRequest {
            key: key.clone(),
            value,
            ..Default::default()
        });
        write_if(self, key, expect.into(), write).await
    }

    /// Deletes `key` if `expect` holds. Deleting a missing key is a conflict with `current: None`.
    async fn delete_if(&self, key: &[u8], expect: Expect) -> Result<WriteOutcome> {
        let key = Bytes::copy_from_slice(key);
        let guard = match expect {
            // A delete needs the key to exist.
            Expect::Any => Guard::Present,
            other => other.into(),
        };
        let write = TxnOp::DeleteRange(DeleteRangeRequest {
            key: key.clone(),
            prev_kv: true,
            ..Default::default()
        });
        write_if(self, key, guard, write).await
    }
}

impl<S: Storage + ?Sized> StorageExt for S {}

/// The compare-and-swap both `put_if` and `delete_if` use: one transaction whose failure branch
/// reads the key back, as Kubernetes' etcd3 store does.
async fn write_if<S: Storage + ?Sized>(
    store: &S,
    key: Bytes,
    guard: Guard,
    write: TxnOp,
) -> Result<WriteOutcome> {
    let compare = guard.compare(&key);
    let read = TxnOp::Range(RangeRequest {
        key: key.clone(),
        ..Default::default()
    });
    let resp = store
        .txn(TxnRequest {
            compare: compare.into_iter().collect(),
            success: vec![write, read.clone()],
            failure: vec![read],
        })
        .await?;
    let revision = resp.revision;
    let mut responses = resp.responses.into_iter();
    if resp.succeeded {
        let kv = match responses.next() {
            Some(OpResponse::DeleteRange { mut prev_kvs, .. }) => prev_kvs.pop(),
            _ => match responses.next() {
                Some(OpResponse::Range(r)) => r.kvs.into_iter().next(),
                _ => None,
            },
        };
        let kv = kv.ok_or_else(|| crate::Error::internal("transaction lost its write"))?;
        Ok(WriteOutcome::Done { kv, revision })
    } else {
        let current = match responses.next() {
            Some(OpResponse::Range(r)) => r.kvs.into_iter().next(),
            _ => None,
        };
        Ok(WriteOutcome::Conflict { current, revision })
    }
}

/// The compare behind an [`Expect`], plus "must exist" for deletes.
#[derive(Clone, Copy, Debug)]
enum Guard {
    Any,
    Absent,
    Present,
    ModRevision(Revision),
}

impl From<Expect> for Guard {
    fn from(e: Expect) -> Self {
        match e {
            Expect::Any => Guard::Any,
            Expect::Absent => Guard::Absent,
            Expect::ModRevision(r) => Guard::ModRevision(r),
        }
    }
}

impl Guard {
    fn compare(self, key: &Bytes) -> Option<Compare> {
        let (target, op) = match self {
            Guard::Any => return None,
            Guard::Absent => (CompareTarget::ModRevision(0), CompareOp::Equal),
            Guard::Present => (CompareTarget::ModRevision(0), CompareOp::Greater),
            Guard::ModRevision(r) => (CompareTarget::ModRevision(r), CompareOp::Equal),
        };
        Some(Compare {
            key: key.clone(),
            range_end: Bytes::new(),
            target,
            op,
        })
    }
}
