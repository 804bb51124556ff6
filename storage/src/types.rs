//! Request, response and event types of the storage interface. They follow etcd v3's data model
//! (revisions, versions, leases, range ends) so the etcd gRPC layer is a thin translation.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Store-wide logical clock: every successful write (put, delete or write transaction) takes the
/// next value. Exposed to Kubernetes clients as `metadata.resourceVersion`.
pub type Revision = u64;

/// A lease ID (etcd's `int64`). `0` means "no lease".
pub type LeaseId = i64;

/// Largest request etcd accepts by default (`--max-request-bytes`, 1.5 MiB). Keys plus values of
/// one write may not exceed it.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// Largest key accepted (etcd has no separate key limit; this keeps keys sane for the MVCC index).
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// One version of a key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value (empty in delete events and keys-only reads).
    pub value: Bytes,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes since creation (1 on create; 0 for a deleted key).
    pub version: i64,
    /// Lease attached to the key, 0 for none.
    pub lease: LeaseId,
}

/// The end of a key range, in etcd's encoding.
///
/// `range_end` empty: the single key `key`; `[0]`: every key `>= key`; otherwise `[key, range_end)`.
/// Use [`prefix_end`] to turn a prefix into its range end.
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    Bytes::from_static(&[0])
}

/// True when `key` falls inside the range `[start, range_end)` in etcd's encoding.
pub fn in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        key == start
    } else if range_end == [0] {
        key >= start
    } else {
        key >= start && key < range_end
    }
}

/// A read of one key or a key range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// First key (or the only key when `range_end` is empty).
    pub key: Bytes,
    /// Range end in etcd's encoding (see [`prefix_end`]).
    pub range_end: Bytes,
    /// At most this many keys (0: no limit); `more` tells whether keys were left out.
    pub limit: u64,
    /// Read at this revision (0: the latest).
    pub revision: Revision,
    /// Leave values out.
    pub keys_only: bool,
    /// Only count the keys.
    pub count_only: bool,
    /// Serve from this member's state without confirming it is current (etcd's `serializable`).
    pub serializable: bool,
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// Keys in byte order, at most `limit`.
    pub kvs: Vec<KeyValue>,
    /// True when keys in the range were left out because of `limit`.
    pub more: bool,
    /// Number of keys in the range (ignoring `limit`).
    pub count: u64,
    /// The store's current revision when the read was served (etcd's header revision), also for
    /// reads at an older revision.
    pub revision: Revision,
}

/// Writes one key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// Lease to attach (0: none).
    pub lease: LeaseId,
    /// Return the previous version.
    pub prev_kv: bool,
    /// Keep the key's current value (etcd `ignore_value`).
    pub ignore_value: bool,
    /// Keep the key's current lease (etcd `ignore_lease`).
    pub ignore_lease: bool,
}

/// Deletes one key or a range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// First key (or the only key).
    pub key: Bytes,
    /// Range end in etcd's encoding.
    pub range_end: Bytes,
    /// Return the deleted versions.
    pub prev_kv: bool,
}

/// What a [`Compare`] looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version (0 when absent).
    Version(i64),
    /// The key's create revision (0 when absent).
    CreateRevision(Revision),
    /// The key's mod revision (0 when absent).
    ModRevision(Revision),
    /// The key's value (a missing key never compares equal).
    Value(Bytes),
    /// The key's lease (0 when absent or without lease).
    Lease(LeaseId),
}

/// How a [`Compare`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `>`
    Greater,
    /// `<`
    Less,
}

/// One guard of a transaction. With a non-empty `range_end` it holds only if it holds for every key
/// in the range (etcd 3.3+ semantics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The key.
    pub key: Bytes,
    /// Range end in etcd's encoding (empty: just `key`).
    pub range_end: Bytes,
    /// What is compared, with the operand.
    pub target: CompareTarget,
    /// The comparison.
    pub op: CompareOp,
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    /// A read (always at the transaction's own state).
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// An etcd transaction: if every compare holds, run `success`, else `failure`. All writes of one
/// transaction share one new revision; a transaction that writes nothing takes none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    /// The guards.
    pub compare: Vec<Compare>,
    /// Operations run when every guard holds.
    pub success: Vec<TxnOp>,
    /// Operations run otherwise.
    pub failure: Vec<TxnOp>,
}

/// The result of one [`TxnOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResponse {
    /// Result of a range.
    Range(RangeResponse),
    /// Result of a put: the previous version when asked for.
    Put {
        /// The previous version (when `prev_kv` was set and the key existed).
        prev_kv: Option<KeyValue>,
    },
    /// Result of a delete.
    DeleteRange {
        /// Number of keys deleted.
        deleted: u64,
        /// The deleted versions (when `prev_kv` was set).
        prev_kvs: Vec<KeyValue>,
    },
    /// Result of a nested transaction.
    Txn(TxnResponse),
}

/// The answer to a [`TxnRequest`] (also used for single puts and deletes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Whether the compares held (the `success` branch ran).
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<OpResponse>,
    /// The store's revision after the transaction.
    pub revision: Revision,
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A key was created or changed.
    Put,
    /// A key was deleted (or its lease expired).
    Delete,
}

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The new version; for deletes the key with `mod_revision` = the deleting revision, empty value.
    pub kv: KeyValue,
    /// The version before this change (always filled in by the store; watchers that did not ask
    /// for it have it stripped by the layer above).
    pub prev_kv: Option<KeyValue>,
}

/// What a watch is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// First key.
    pub key: Bytes,
    /// Range end in etcd's encoding.
    pub range_end: Bytes,
    /// First revision to deliver (0: only changes after the current revision).
    pub start_revision: Revision,
    /// Include the previous version in each event.
    pub prev_kv: bool,
    /// Leave out put events.
    pub no_put: bool,
    /// Leave out delete events.
    pub no_delete: bool,
}

/// One item of a watch stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchItem {
    /// The matching events of one revision (never empty).
    Events {
        /// The revision of these events.
        revision: Revision,
        /// The events, in the order the transaction made them.
        events: Vec<Event>,
    },
    /// Every event up to and including `revision` has been delivered.
    Progress {
        /// The revision the watcher is caught up to.
        revision: Revision,
    },
}

/// A lease's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The lease ID.
    pub id: LeaseId,
    /// Seconds left before it expires (-1 when it does not exist).
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Keys attached (when asked for).
    pub keys: Vec<Bytes>,
}

/// One member of the store's cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Member ID (non-zero).
    pub id: u64,
    /// Human name (`--name`).
    pub name: String,
    /// URLs other members reach it on.
    pub peer_urls: Vec<String>,
    /// URLs clients reach it on.
    pub client_urls: Vec<String>,
    /// A learner receives the log but does not vote.
    pub is_learner: bool,
}

/// A member's view of itself and the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This member's ID.
    pub member_id: u64,
    /// The leader's ID (0 when unknown).
    pub leader_id: u64,
    /// Current raft term (0 for a store without raft).
    pub raft_term: u64,
    /// Index of the last log entry (0 without raft).
    pub raft_index: u64,
    /// Index of the last applied entry (0 without raft).
    pub raft_applied_index: u64,
    /// The store's current revision.
    pub revision: Revision,
    /// The compaction point.
    pub compact_revision: Revision,
    /// Bytes the store's data takes (approximate).
    pub db_size: u64,
    /// Whether this member is a learner.
    pub is_learner: bool,
}
