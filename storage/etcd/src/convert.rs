//! Translation between etcd's protobuf messages and the storage types, with etcd's request checks.
//!
//! Protobuf integers are signed; storage revisions are not. etcd treats a negative read revision as
//! "latest" and a negative limit as "no limit", and that is what the translation does.

use bytes::Bytes;
use etcd_client::proto::{
    PbCompare, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbPutRequest, PbPutResponse,
    PbRangeRequest, PbRangeResponse, PbResponseHeader, PbResponseOp, PbTargetUnion, PbTxnOpRequest,
    PbTxnOpResponse, PbTxnRequest, PbTxnResponse,
};
use storage::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, Event, EventKind, KeyValue, OpResponse,
    PutRequest, RangeRequest, RangeResponse, TxnOp, TxnRequest, TxnResponse,
};
use tonic::Status;

use crate::error;

/// `RangeRequest.SortOrder`.
mod sort_order {
    pub const NONE: i32 = 0;
    pub const ASCEND: i32 = 1;
    pub const DESCEND: i32 = 2;
}

/// `RangeRequest.SortTarget`.
mod sort_target {
    pub const KEY: i32 = 0;
    pub const VERSION: i32 = 1;
    pub const CREATE: i32 = 2;
    pub const MOD: i32 = 3;
    pub const VALUE: i32 = 4;
}

/// `Compare.CompareTarget`.
mod compare_target {
    pub const VERSION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const MOD: i32 = 2;
    pub const VALUE: i32 = 3;
    pub const LEASE: i32 = 4;
}

/// `Compare.CompareResult`.
mod compare_result {
    pub const EQUAL: i32 = 0;
    pub const GREATER: i32 = 1;
    pub const LESS: i32 = 2;
    pub const NOT_EQUAL: i32 = 3;
}

/// `mvccpb.Event.EventType`.
pub(crate) mod event_type {
    pub const PUT: i32 = 0;
    pub const DELETE: i32 = 1;
}

/// A protobuf revision (signed) as a storage revision: negative means "latest" (0).
pub(crate) fn revision(rev: i64) -> u64 {
    u64::try_from(rev).unwrap_or(0)
}

/// A storage revision as a protobuf one.
pub(crate) fn pb_revision(rev: u64) -> i64 {
    i64::try_from(rev).unwrap_or(i64::MAX)
}

/// A storage key-value as the protobuf one.
pub(crate) fn kv_to_pb(kv: KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key.to_vec(),
        create_revision: pb_revision(kv.create_revision),
        mod_revision: pb_revision(kv.mod_revision),
        version: kv.version,
        value: kv.value.to_vec(),
        lease: kv.lease,
    }
}

/// A storage event as the protobuf one; `prev_kv` only when the watcher asked for it.
pub(crate) fn event_to_pb(ev: Event, prev_kv: bool) -> PbEvent {
    PbEvent {
        r#type: match ev.kind {
            EventKind::Put => event_type::PUT,
            EventKind::Delete => event_type::DELETE,
        },
        kv: Some(kv_to_pb(ev.kv)),
        prev_kv: if prev_kv { ev.prev_kv.map(kv_to_pb) } else { None },
    }
}

/// What the layer itself must do to a range result that storage cannot: sort it and filter it by
/// revision bounds, then apply the limit. `None` when storage's own result is already right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RangePost {
    order: i32,
    target: i32,
    limit: u64,
    min_mod: i64,
    max_mod: i64,
    min_create: i64,
    max_create: i64,
}

impl RangePost {
    /// Sorts, filters and truncates `resp` as etcd does; `count` stays the range's count.
    pub(crate) fn apply(&self, resp: &mut RangeResponse) {
        let bound = |v: u64, min: i64, max: i64| {
            let v = pb_revision(v);
            (min == 0 || v >= min) && (max == 0 || v <= max)
        };
        resp.kvs.retain(|kv| {
            bound(kv.mod_revision, self.min_mod, self.max_mod)
                && bound(kv.create_revision, self.min_create, self.max_create)
        });
        if self.order != sort_order::NONE {
            match self.target {
                sort_target::KEY => resp.kvs.sort_by(|a, b| a.key.cmp(&b.key)),
                sort_target::VERSION => resp.kvs.sort_by_key(|kv| kv.version),
                sort_target::CREATE => resp.kvs.sort_by_key(|kv| kv.create_revision),
                sort_target::MOD => resp.kvs.sort_by_key(|kv| kv.mod_revision),
                _ => resp.kvs.sort_by(|a, b| a.value.cmp(&b.value)),
            }
            if self.order == sort_order::DESCEND {
                resp.kvs.reverse();
            }
        }
        resp.more = false;
        if self.limit > 0 && resp.kvs.len() as u64 > self.limit {
            resp.kvs.truncate(self.limit as usize);
            resp.more = true;
        }
    }
}

/// Checks and translates a range request. The second value says what to do to the result.
pub(crate) fn range_from_pb(r: &PbRangeRequest) -> Result<(RangeRequest, Option<RangePost>), Status> {
    if r.key.is_empty() {
        return Err(error::empty_key());
    }
    if !(sort_order::NONE..=sort_order::DESCEND).contains(&r.sort_order)
        || !(sort_target::KEY..=sort_target::VALUE).contains(&r.sort_target)
    {
        return Err(Status::invalid_argument(error::INVALID_SORT_OPTION));
    }
    let limit = u64::try_from(r.limit).unwrap_or(0);
    // Storage returns keys in ascending key order; only other orders need work here.
    let mut order = r.sort_order;
    if r.sort_target != sort_target::KEY && order == sort_order::NONE {
        order = sort_order::ASCEND;
    } else if r.sort_target == sort_target::KEY && order == sort_order::ASCEND {
        order = sort_order::NONE;
    }
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let post = (!r.count_only && (order != sort_order::NONE || filtered)).then_some(RangePost {
        order,
        target: r.sort_target,
        limit,
        min_mod: r.min_mod_revision,
        max_mod: r.max_mod_revision,
        min_create: r.min_create_revision,
        max_create: r.max_create_revision,
    });
    let req = RangeRequest {
        key: Bytes::copy_from_slice(&r.key),
        range_end: Bytes::copy_from_slice(&r.range_end),
        // Sorting or filtering needs every key first; the limit is applied afterwards.
        limit: if post.is_some() { 0 } else { limit },
        revision: revision(r.revision),
        keys_only: r.keys_only,
        count_only: r.count_only,
        serializable: r.serializable,
    };
    Ok((req, post))
}

/// A range response as the protobuf one.
pub(crate) fn range_to_pb(resp: RangeResponse, header: PbResponseHeader) -> PbRangeResponse {
    PbRangeResponse {
        header: Some(header),
        count: i64::try_from(resp.count).unwrap_or(i64::MAX),
        more: resp.more,
        kvs: resp.kvs.into_iter().map(kv_to_pb).collect(),
    }
}

/// Checks and translates a put request.
pub(crate) fn put_from_pb(p: &PbPutRequest) -> Result<PutRequest, Status> {
    if p.key.is_empty() {
        return Err(error::empty_key());
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(Status::invalid_argument(error::VALUE_PROVIDED));
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(Status::invalid_argument(error::LEASE_PROVIDED));
    }
    Ok(PutRequest {
        key: Bytes::copy_from_slice(&p.key),
        value: Bytes::copy_from_slice(&p.value),
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    })
}

/// Checks and translates a delete request.
pub(crate) fn delete_from_pb(d: &PbDeleteRequest) -> Result<DeleteRangeRequest, Status> {
    if d.key.is_empty() {
        return Err(error::empty_key());
    }
    Ok(DeleteRangeRequest {
        key: Bytes::copy_from_slice(&d.key),
        range_end: Bytes::copy_from_slice(&d.range_end),
        prev_kv: d.prev_kv,
    })
}

/// Translates one compare. A compare against a negative revision has a fixed outcome
/// (revisions are never negative); it becomes a version compare against -1 with the same one.
fn compare_from_pb(c: &PbCompare) -> Result<Compare, Status> {
    if c.key.is_empty() {
        return Err(error::empty_key());
    }
    let op = match c.result {
        compare_result::EQUAL => CompareOp::Equal,
        compare_result::GREATER => CompareOp::Greater,
        compare_result::LESS => CompareOp::Less,
        compare_result::NOT_EQUAL => CompareOp::NotEqual,
        other => {
            return Err(Status::invalid_argument(format!(
                "etcdserver: unknown compare result {other}"
            )));
        }
    };
    // Like Go's generated getters: a missing or mismatched operand reads as zero.
    let int = |want: fn(&PbTargetUnion) -> Option<i64>| c.target_union.as_ref().and_then(want).unwrap_or(0);
    let rev = |v: i64| match u64::try_from(v) {
        Ok(r) => Ok(r),
        Err(_) => Err(CompareTarget::Version(-1)),
    };
    let target = match c.target {
        compare_target::VERSION => CompareTarget::Version(int(|u| match u {
            PbTargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        compare_target::CREATE => rev(int(|u| match u {
            PbTargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        }))
        .map_or_else(|t| t, CompareTarget::CreateRevision),
        compare_target::MOD => rev(int(|u| match u {
            PbTargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        }))
        .map_or_else(|t| t, CompareTarget::ModRevision),
        compare_target::LEASE => CompareTarget::Lease(int(|u| match u {
            PbTargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
        compare_target::VALUE => CompareTarget::Value(match &c.target_union {
            Some(PbTargetUnion::Value(v)) => Bytes::copy_from_slice(v),
            _ => Bytes::new(),
        }),
        other => {
            return Err(Status::invalid_argument(format!(
                "etcdserver: unknown compare target {other}"
            )));
        }
    };
    Ok(Compare {
        key: Bytes::copy_from_slice(&c.key),
        range_end: Bytes::copy_from_slice(&c.range_end),
        target,
        op,
    })
}

/// The post-processing each range of a transaction needs, in the request's shape.
#[derive(Debug, Default)]
pub(crate) struct TxnPost {
    success: Vec<OpPost>,
    failure: Vec<OpPost>,
}

#[derive(Debug)]
enum OpPost {
    None,
    Range(RangePost),
    Txn(TxnPost),
}

/// Checks and translates a transaction.
pub(crate) fn txn_from_pb(t: &PbTxnRequest) -> Result<(TxnRequest, TxnPost), Status> {
    let compare = t
        .compare
        .iter()
        .map(compare_from_pb)
        .collect::<Result<Vec<_>, _>>()?;
    let (success, success_post) = ops_from_pb(&t.success)?;
    let (failure, failure_post) = ops_from_pb(&t.failure)?;
    Ok((
        TxnRequest {
            compare,
            success,
            failure,
        },
        TxnPost {
            success: success_post,
            failure: failure_post,
        },
    ))
}

fn ops_from_pb(ops: &[etcd_client::proto::PbTxnRequestOp]) -> Result<(Vec<TxnOp>, Vec<OpPost>), Status> {
    let mut out = Vec::with_capacity(ops.len());
    let mut posts = Vec::with_capacity(ops.len());
    for op in ops {
        let Some(request) = &op.request else {
            return Err(Status::invalid_argument(
                "etcdserver: empty operation in txn request",
            ));
        };
        match request {
            PbTxnOpRequest::RequestRange(r) => {
                let (req, post) = range_from_pb(r)?;
                out.push(TxnOp::Range(req));
                posts.push(post.map_or(OpPost::None, OpPost::Range));
            }
            PbTxnOpRequest::RequestPut(p) => {
                out.push(TxnOp::Put(put_from_pb(p)?));
                posts.push(OpPost::None);
            }
            PbTxnOpRequest::RequestDeleteRange(d) => {
                out.push(TxnOp::DeleteRange(delete_from_pb(d)?));
                posts.push(OpPost::None);
            }
            PbTxnOpRequest::RequestTxn(t) => {
                let (req, post) = txn_from_pb(t)?;
                out.push(TxnOp::Txn(req));
                posts.push(OpPost::Txn(post));
            }
        }
    }
    Ok((out, posts))
}

/// A transaction response as the protobuf one. Nested responses carry a header with the
/// transaction's revision, as etcd's do.
pub(crate) fn txn_to_pb(resp: TxnResponse, post: &TxnPost, header: &PbResponseHeader) -> PbTxnResponse {
    let posts = if resp.succeeded {
        &post.success
    } else {
        &post.failure
    };
    let inner = |revision: u64| PbResponseHeader {
        revision: pb_revision(revision),
        ..*header
    };
    let responses = resp
        .responses
        .into_iter()
        .enumerate()
        .map(|(i, op)| {
            let response = match op {
                OpResponse::Range(mut r) => {
                    if let Some(OpPost::Range(p)) = posts.get(i) {
                        p.apply(&mut r);
                    }
                    let h = inner(r.revision);
                    PbTxnOpResponse::ResponseRange(range_to_pb(r, h))
                }
                OpResponse::Put { prev_kv } => PbTxnOpResponse::ResponsePut(PbPutResponse {
                    header: Some(inner(resp.revision)),
                    prev_kv: prev_kv.map(kv_to_pb),
                }),
                OpResponse::DeleteRange { deleted, prev_kvs } => {
                    PbTxnOpResponse::ResponseDeleteRange(PbDeleteResponse {
                        header: Some(inner(resp.revision)),
                        deleted: i64::try_from(deleted).unwrap_or(i64::MAX),
                        prev_kvs: prev_kvs.into_iter().map(kv_to_pb).collect(),
                    })
                }
                OpResponse::Txn(t) => {
                    let empty = TxnPost::default();
                    let p = match posts.get(i) {
                        Some(OpPost::Txn(p)) => p,
                        _ => &empty,
                    };
                    let h = inner(t.revision.max(resp.revision));
                    PbTxnOpResponse::ResponseTxn(txn_to_pb(
                        TxnResponse {
                            revision: resp.revision,
                            ..t
                        },
                        p,
                        &h,
                    ))
                }
            };
            PbResponseOp {
                response: Some(response),
            }
        })
        .collect();
    PbTxnResponse {
        header: Some(*header),
        succeeded: resp.succeeded,
        responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, create: u64, m: u64, version: i64) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            create_revision: create,
            mod_revision: m,
            version,
            lease: 0,
        }
    }

    #[test]
    fn range_checks_like_etcd() {
        let empty = PbRangeRequest::default();
        assert_eq!(range_from_pb(&empty).unwrap_err().message(), error::EMPTY_KEY);
        let bad = PbRangeRequest {
            key: b"a".to_vec(),
            sort_order: 7,
            ..Default::default()
        };
        assert_eq!(
            range_from_pb(&bad).unwrap_err().message(),
            error::INVALID_SORT_OPTION
        );
        let plain = PbRangeRequest {
            key: b"a".to_vec(),
            limit: 5,
            revision: -3,
            ..Default::default()
        };
        let (req, post) = range_from_pb(&plain).unwrap();
        assert_eq!((req.limit, req.revision, post), (5, 0, None));
        let asc_key = PbRangeRequest {
            key: b"a".to_vec(),
            sort_order: sort_order::ASCEND,
            ..Default::default()
        };
        assert!(range_from_pb(&asc_key).unwrap().1.is_none());
    }

    #[test]
    fn sorting_and_filters_apply_before_the_limit() {
        let r = PbRangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            limit: 2,
            sort_order: sort_order::DESCEND,
            sort_target: sort_target::MOD,
            min_mod_revision: 3,
            ..Default::default()
        };
        let (req, post) = range_from_pb(&r).unwrap();
        assert_eq!(req.limit, 0);
        let mut resp = RangeResponse {
            kvs: vec![
                kv("a", "1", 2, 2, 1),
                kv("b", "2", 3, 6, 2),
                kv("c", "3", 4, 4, 1),
                kv("d", "4", 5, 5, 1),
            ],
            more: false,
            count: 4,
            revision: 6,
        };
        post.unwrap().apply(&mut resp);
        let keys: Vec<_> = resp.kvs.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!(keys, vec![Bytes::from("b"), Bytes::from("d")]);
        assert!(resp.more);
        assert_eq!(resp.count, 4);
    }

    #[test]
    fn compares_translate_with_go_zero_values() {
        let c = PbCompare {
            key: b"k".to_vec(),
            target: compare_target::MOD,
            result: compare_result::EQUAL,
            ..Default::default()
        };
        let t = compare_from_pb(&c).unwrap();
        assert_eq!(
            (t.target, t.op),
            (CompareTarget::ModRevision(0), CompareOp::Equal)
        );
        let neg = PbCompare {
            key: b"k".to_vec(),
            target: compare_target::CREATE,
            result: compare_result::GREATER,
            target_union: Some(PbTargetUnion::CreateRevision(-4)),
            ..Default::default()
        };
        assert_eq!(compare_from_pb(&neg).unwrap().target, CompareTarget::Version(-1));
        let value = PbCompare {
            key: b"k".to_vec(),
            target: compare_target::VALUE,
            result: compare_result::NOT_EQUAL,
            target_union: Some(PbTargetUnion::Value(b"v".to_vec())),
            ..Default::default()
        };
        assert_eq!(
            compare_from_pb(&value).unwrap().target,
            CompareTarget::Value(Bytes::from("v"))
        );
    }

    #[test]
    fn put_flag_checks() {
        let p = PbPutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(put_from_pb(&p).unwrap_err().message(), error::VALUE_PROVIDED);
        let p = PbPutRequest {
            key: b"k".to_vec(),
            lease: 5,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(put_from_pb(&p).unwrap_err().message(), error::LEASE_PROVIDED);
    }
}
