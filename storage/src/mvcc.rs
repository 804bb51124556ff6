//! The MVCC rules every implementation shares: request validation, reads at a revision, and
//! transaction evaluation. Implementations provide a read view ([`MvccRead`]) of their committed
//! state; [`evaluate_txn`] turns a transaction into a response and the [`WriteSet`] to persist.
//!
//! Evaluation is deterministic (it depends only on the view and the request), so a raft state
//! machine can run it on every member and reach the same state.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use bytes::Bytes;

use crate::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, Error, Event, EventKind, KeyValue, MAX_KEY_BYTES,
    MAX_REQUEST_BYTES, OpResponse, PutRequest, RangeRequest, RangeResponse, Result, Revision, TxnOp,
    TxnRequest, TxnResponse, in_range,
};

/// Most operations one transaction may hold (etcd's `--max-txn-ops` default).
pub const MAX_TXN_OPS: usize = 128;

/// Read access to a store's committed state, at any revision it still keeps.
pub trait MvccRead {
    /// The revision of the last committed write.
    fn current_revision(&self) -> Revision;

    /// Revisions below this one have been compacted.
    fn compacted_revision(&self) -> Revision;

    /// Live keys in `[key, range_end)` (etcd encoding) as of revision `at` (<= current), in byte
    /// order, at most `limit` of them (0: all), and how many there are in total.
    fn range_at(
        &self,
        key: &[u8],
        range_end: &[u8],
        at: Revision,
        limit: u64,
    ) -> Result<(Vec<KeyValue>, u64)>;

    /// Whether a lease exists.
    fn lease_exists(&self, id: crate::LeaseId) -> bool;
}

/// What a transaction changes: the events of one new revision (none when it wrote nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    /// The revision the events take (the view's current revision when `events` is empty).
    pub revision: Revision,
    /// Every key changed, in the order the transaction changed them, with its previous version.
    pub events: Vec<Event>,
}

impl WriteSet {
    /// True when the transaction wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Lower and upper bounds of a key range.
pub type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The keys an etcd range `[key, range_end)` covers, as bounds over a sorted key space: one key
/// for an empty `range_end`, everything from `key` for `"\0"`; `None` when the range is empty.
pub fn key_bounds<'a>(key: &'a [u8], range_end: &'a [u8]) -> Option<KeyBounds<'a>> {
    let upper = if range_end.is_empty() {
        Bound::Included(key)
    } else if range_end == [0] {
        Bound::Unbounded
    } else if range_end <= key {
        return None;
    } else {
        Bound::Excluded(range_end)
    };
    Some((Bound::Included(key), upper))
}

/// The first `limit` items (0: all) and how many there are in total, as a range answers.
pub fn take_counting<T>(items: impl Iterator<Item = T>, limit: u64) -> (Vec<T>, u64) {
    let take = usize::try_from(limit)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(usize::MAX);
    let mut kept = Vec::new();
    let mut count = 0u64;
    for item in items {
        count += 1;
        if kept.len() < take {
            kept.push(item);
        }
    }
    (kept, count)
}

/// Resolves a read revision (0: latest) against the view, failing for compacted or future ones.
pub fn read_revision(view: &dyn MvccRead, requested: Revision) -> Result<Revision> {
    let current = view.current_revision();
    if requested == 0 {
        return Ok(current);
    }
    if requested > current {
        return Err(Error::FutureRevision { requested, current });
    }
    let compacted = view.compacted_revision();
    if requested < compacted {
        return Err(Error::Compacted { requested, compacted });
    }
    Ok(requested)
}

/// Checks a range request's shape.
pub fn validate_range(req: &RangeRequest) -> Result<()> {
    check_key(&req.key)
}

/// Serves a range request from a view.
pub fn range(view: &dyn MvccRead, req: &RangeRequest) -> Result<RangeResponse> {
    validate_range(req)?;
    let at = read_revision(view, req.revision)?;
    let limit = if req.count_only { 1 } else { req.limit };
    let (mut kvs, count) = view.range_at(&req.key, &req.range_end, at, limit)?;
    if req.count_only {
        kvs.clear();
    } else if req.keys_only {
        for kv in &mut kvs {
            kv.value = Bytes::new();
        }
    }
    let more = req.limit > 0 && count > req.limit;
    Ok(RangeResponse {
        kvs,
        more,
        count,
        revision: view.current_revision(),
    })
}

/// Checks a transaction's shape: non-empty keys, sizes, operation count, no key written twice in
/// one branch.
pub fn validate_txn(req: &TxnRequest) -> Result<()> {
    let ops = req.success.len().max(req.failure.len());
    if ops > MAX_TXN_OPS || req.compare.len() > MAX_TXN_OPS {
        return Err(Error::TooManyOps);
    }
    let size = txn_size(req);
    if size > MAX_REQUEST_BYTES {
        return Err(Error::TooLarge {
            size,
            limit: MAX_REQUEST_BYTES,
        });
    }
    for c in &req.compare {
        check_key(&c.key)?;
    }
    for branch in [&req.success, &req.failure] {
        for op in branch.iter() {
            match op {
                TxnOp::Range(r) => check_key(&r.key)?,
                TxnOp::Put(p) => check_key(&p.key)?,
                TxnOp::DeleteRange(d) => check_key(&d.key)?,
                TxnOp::Txn(t) => validate_txn(t)?,
            }
        }
        let mut writes = BranchWrites::default();
        writes.collect(branch)?;
        writes.check()?;
    }
    Ok(())
}

/// Evaluates a transaction against a view. The view is not changed: the caller persists the
/// returned [`WriteSet`] (and publishes its events) if it is not empty.
pub fn evaluate_txn(view: &dyn MvccRead, req: &TxnRequest) -> Result<(TxnResponse, WriteSet)> {
    validate_txn(req)?;
    let mut overlay = Overlay::new(view);
    let revision = view.current_revision() + 1;
    let response = overlay.run(req, revision)?;
    let events = overlay.take_events();
    let revision = if events.is_empty() {
        view.current_revision()
    } else {
        revision
    };
    Ok((
        TxnResponse { revision, ..response },
        WriteSet { revision, events },
    ))
}

/// A view plus writes not yet persisted. Several transactions applied in one batch evaluate
/// against one `Overlay` so each sees the ones before it ([`Overlay::apply`]).
pub struct Overlay<'a> {
    base: &'a dyn MvccRead,
    /// Versions written on top of `base`, per key, oldest first (`None`: deleted).
    pending: BTreeMap<Bytes, Vec<(Revision, Option<KeyValue>)>>,
    /// Events of the transaction being evaluated.
    events: Vec<Event>,
    /// Revisions taken on top of the base.
    taken: u64,
}

impl<'a> Overlay<'a> {
    /// An overlay with nothing pending.
    pub fn new(base: &'a dyn MvccRead) -> Self {
        Overlay {
            base,
            pending: BTreeMap::new(),
            events: Vec::new(),
            taken: 0,
        }
    }

    /// Evaluates `req` on top of everything applied so far and keeps its writes pending.
    pub fn apply(&mut self, req: &TxnRequest) -> Result<(TxnResponse, WriteSet)> {
        validate_txn(req)?;
        let revision = self.current_revision() + 1;
        let response = match self.run(req, revision) {
            Ok(response) => response,
            Err(e) => {
                self.discard(revision);
                return Err(e);
            }
        };
        let events = self.take_events();
        let revision = if events.is_empty() {
            self.current_revision()
        } else {
            revision
        };
        Ok((
            TxnResponse { revision, ..response },
            WriteSet { revision, events },
        ))
    }

    /// Drops the writes of a transaction that failed part-way, so later ones don't see them.
    fn discard(&mut self, revision: Revision) {
        for e in std::mem::take(&mut self.events) {
            if let Some(versions) = self.pending.get_mut(&e.kv.key) {
                if versions.last().is_some_and(|(rev, _)| *rev == revision) {
                    versions.pop();
                }
                if versions.is_empty() {
                    self.pending.remove(&e.kv.key);
                }
            }
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            self.taken += 1;
        }
        events
    }

    fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        if let Some(versions) = self.pending.get(key) {
            return Ok(versions.last().and_then(|(_, kv)| kv.clone()));
        }
        let (kvs, _) = self.base.range_at(key, &[], self.base.current_revision(), 1)?;
        Ok(kvs.into_iter().next())
    }

    fn run(&mut self, req: &TxnRequest, revision: Revision) -> Result<TxnResponse> {
        let mut succeeded = true;
        for c in &req.compare {
            if !self.compare_holds(c)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            responses.push(match op {
                TxnOp::Range(r) => OpResponse::Range(self.range_in_txn(r, revision)?),
                TxnOp::Put(p) => self.put(p, revision)?,
                TxnOp::DeleteRange(d) => self.delete(d, revision)?,
                TxnOp::Txn(t) => OpResponse::Txn(self.run(t, revision)?),
            });
        }
        Ok(TxnResponse {
            succeeded,
            responses,
            revision: 0,
        })
    }

    fn compare_holds(&self, c: &Compare) -> Result<bool> {
        if c.range_end.is_empty() {
            let kv = self.latest(&c.key)?;
            return Ok(compare_one(kv.as_ref(), c));
        }
        let (kvs, _) = self.range_at(&c.key, &c.range_end, self.current_revision(), 0)?;
        Ok(kvs.iter().all(|kv| compare_one(Some(kv), c)))
    }

    /// A read inside a transaction sees the transaction's own earlier writes (as etcd's write
    /// transactions do).
    fn range_in_txn(&self, r: &RangeRequest, revision: Revision) -> Result<RangeResponse> {
        let latest = if self.events.is_empty() {
            self.current_revision()
        } else {
            revision
        };
        let at = if r.revision == 0 {
            latest
        } else {
            read_revision(self, r.revision)?
        };
        let limit = if r.count_only { 1 } else { r.limit };
        let (mut kvs, count) = self.range_at_inner(&r.key, &r.range_end, at, limit)?;
        if r.count_only {
            kvs.clear();
        } else if r.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value = Bytes::new());
        }
        let more = r.limit > 0 && count > r.limit;
        Ok(RangeResponse {
            kvs,
            more,
            count,
            revision: latest,
        })
    }

    fn put(&mut self, p: &PutRequest, revision: Revision) -> Result<OpResponse> {
        let prev = self.latest(&p.key)?;
        if (p.ignore_value || p.ignore_lease) && prev.is_none() {
            return Err(Error::KeyNotFound);
        }
        let lease = if p.ignore_lease {
            prev.as_ref().map_or(0, |kv| kv.lease)
        } else {
            p.lease
        };
        if lease != 0 && !self.base.lease_exists(lease) {
            return Err(Error::LeaseNotFound(lease));
        }
        let value = if p.ignore_value {
            prev.as_ref().map(|kv| kv.value.clone()).unwrap_or_default()
        } else {
            p.value.clone()
        };
        let kv = KeyValue {
            key: p.key.clone(),
            value,
            create_revision: prev.as_ref().map_or(revision, |kv| kv.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |kv| kv.version + 1),
            lease,
        };
        self.record(
            Event {
                kind: EventKind::Put,
                kv,
                prev_kv: prev.clone(),
            },
            revision,
        );
        Ok(OpResponse::Put {
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    fn delete(&mut self, d: &DeleteRangeRequest, revision: Revision) -> Result<OpResponse> {
        let at = if self.events.is_empty() {
            self.current_revision()
        } else {
            revision
        };
        let (kvs, _) = self.range_at_inner(&d.key, &d.range_end, at, 0)?;
        let deleted = kvs.len() as u64;
        for prev in &kvs {
            let tombstone = KeyValue {
                key: prev.key.clone(),
                mod_revision: revision,
                ..Default::default()
            };
            self.record(
                Event {
                    kind: EventKind::Delete,
                    kv: tombstone,
                    prev_kv: Some(prev.clone()),
                },
                revision,
            );
        }
        Ok(OpResponse::DeleteRange {
            deleted,
            prev_kvs: if d.prev_kv { kvs } else { Vec::new() },
        })
    }

    fn record(&mut self, event: Event, revision: Revision) {
        let value = match event.kind {
            EventKind::Put => Some(event.kv.clone()),
            EventKind::Delete => None,
        };
        self.pending
            .entry(event.kv.key.clone())
            .or_default()
            .push((revision, value));
        self.events.push(event);
    }

    fn range_at_inner(
        &self,
        key: &[u8],
        range_end: &[u8],
        at: Revision,
        limit: u64,
    ) -> Result<(Vec<KeyValue>, u64)> {
        let base_rev = self.base.current_revision();
        let touched = self.pending.keys().any(|k| in_range(k, key, range_end));
        if at <= base_rev || !touched {
            return self.base.range_at(key, range_end, at.min(base_rev), limit);
        }
        let (base, _) = self.base.range_at(key, range_end, base_rev, 0)?;
        let mut merged: BTreeMap<Bytes, KeyValue> = base.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        for (k, versions) in self
            .pending
            .range::<[u8], _>((std::ops::Bound::Included(key), std::ops::Bound::Unbounded))
        {
            if !in_range(k, key, range_end) {
                if range_end.is_empty() || (range_end != [0] && k.as_ref() >= range_end) {
                    break;
                }
                continue;
            }
            match versions.iter().rev().find(|(rev, _)| *rev <= at) {
                Some((_, Some(kv))) => {
                    merged.insert(k.clone(), kv.clone());
                }
                Some((_, None)) => {
                    merged.remove(k);
                }
                None => {}
            }
        }
        let count = merged.len() as u64;
        let take = if limit == 0 { usize::MAX } else { limit as usize };
        Ok((merged.into_values().take(take).collect(), count))
    }
}

impl MvccRead for Overlay<'_> {
    fn current_revision(&self) -> Revision {
        self.base.current_revision() + self.taken
    }

    fn compacted_revision(&self) -> Revision {
        self.base.compacted_revision()
    }

    fn range_at(
        &self,
        key: &[u8],
        range_end: &[u8],
        at: Revision,
        limit: u64,
    ) -> Result<(Vec<KeyValue>, u64)> {
        self.range_at_inner(key, range_end, at, limit)
    }

    fn lease_exists(&self, id: crate::LeaseId) -> bool {
        self.base.lease_exists(id)
    }
}

/// The transaction that revokes a lease: delete each of its keys, all in one revision.
pub fn revoke_txn(keys: impl IntoIterator<Item = Bytes>) -> TxnRequest {
    TxnRequest {
        success: keys
            .into_iter()
            .map(|key| {
                TxnOp::DeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                })
            })
            .collect(),
        ..Default::default()
    }
}

fn compare_one(kv: Option<&KeyValue>, c: &Compare) -> bool {
    use std::cmp::Ordering;
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.map_or(0, |kv| kv.version).cmp(v),
        CompareTarget::CreateRevision(r) => kv.map_or(0, |kv| kv.create_revision).cmp(r),
        CompareTarget::ModRevision(r) => kv.map_or(0, |kv| kv.mod_revision).cmp(r),
        CompareTarget::Lease(l) => kv.map_or(0, |kv| kv.lease).cmp(l),
        // A missing key has no value: no value comparison holds (etcd semantics).
        CompareTarget::Value(v) => match kv {
            Some(kv) => kv.value.as_ref().cmp(v.as_ref()),
            None => return false,
        },
    };
    match c.op {
        CompareOp::Equal => ord == Ordering::Equal,
        CompareOp::NotEqual => ord != Ordering::Equal,
        CompareOp::Greater => ord == Ordering::Greater,
        CompareOp::Less => ord == Ordering::Less,
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::TooLarge {
            size: key.len(),
            limit: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

fn txn_size(req: &TxnRequest) -> usize {
    let compares: usize = req
        .compare
        .iter()
        .map(|c| {
            c.key.len()
                + c.range_end.len()
                + if let CompareTarget::Value(v) = &c.target {
                    v.len()
                } else {
                    8
                }
        })
        .sum();
    let ops = |ops: &[TxnOp]| -> usize {
        ops.iter()
            .map(|op| match op {
                TxnOp::Range(r) => r.key.len() + r.range_end.len(),
                TxnOp::Put(p) => p.key.len() + p.value.len(),
                TxnOp::DeleteRange(d) => d.key.len() + d.range_end.len(),
                TxnOp::Txn(t) => txn_size(t),
            })
            .sum()
    };
    compares + ops(&req.success) + ops(&req.failure)
}

/// The keys one branch writes, to refuse a branch that writes a key twice.
#[derive(Default)]
struct BranchWrites {
    puts: BTreeSet<Bytes>,
    deletes: Vec<(Bytes, Bytes)>,
}

impl BranchWrites {
    fn collect(&mut self, ops: &[TxnOp]) -> Result<()> {
        for op in ops {
            match op {
                TxnOp::Put(p) => {
                    if !self.puts.insert(p.key.clone()) {
                        return Err(Error::DuplicateKey);
                    }
                }
                TxnOp::DeleteRange(d) => self.deletes.push((d.key.clone(), d.range_end.clone())),
                TxnOp::Txn(t) => {
                    // Only one branch of a nested transaction runs: each may write what the other does.
                    let mut success = BranchWrites::default();
                    success.collect(&t.success)?;
                    let mut failure = BranchWrites::default();
                    failure.collect(&t.failure)?;
                    for key in success.puts.into_iter().chain(failure.puts) {
                        if self.puts.contains(&key) {
                            return Err(Error::DuplicateKey);
                        }
                        self.puts.insert(key);
                    }
                    self.deletes
                        .extend(success.deletes.into_iter().chain(failure.deletes));
                }
                TxnOp::Range(_) => {}
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        for (start, end) in &self.deletes {
            if self.puts.iter().any(|k| in_range(k, start, end)) {
                return Err(Error::DuplicateKey);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn key_bounds_follow_etcd_range_rules() {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        assert_eq!(
            key_bounds(b"a", b""),
            Some((Included(&b"a"[..]), Included(&b"a"[..])))
        );
        assert_eq!(key_bounds(b"a", b"\0"), Some((Included(&b"a"[..]), Unbounded)));
        assert_eq!(
            key_bounds(b"a", b"c"),
            Some((Included(&b"a"[..]), Excluded(&b"c"[..])))
        );
        assert_eq!(key_bounds(b"c", b"a"), None);
        assert_eq!(key_bounds(b"a", b"a"), None);
    }

    #[test]
    fn take_counting_keeps_the_limit_and_counts_all() {
        assert_eq!(take_counting(1..=5, 2), (vec![1, 2], 5));
        assert_eq!(take_counting(1..=3, 0), (vec![1, 2, 3], 3));
        assert_eq!(take_counting(std::iter::empty::<u8>(), 4), (vec![], 0));
    }
    use super::*;

    /// A view of an empty store.
    struct Empty;

    impl MvccRead for Empty {
        fn current_revision(&self) -> Revision {
            1
        }
        fn compacted_revision(&self) -> Revision {
            0
        }
        fn range_at(&self, _: &[u8], _: &[u8], _: Revision, _: u64) -> Result<(Vec<KeyValue>, u64)> {
            Ok((Vec::new(), 0))
        }
        fn lease_exists(&self, id: crate::LeaseId) -> bool {
            id == 7
        }
    }

    fn put(key: &str, value: &str) -> TxnOp {
        TxnOp::Put(PutRequest {
            key: key.to_owned().into(),
            value: value.to_owned().into(),
            ..Default::default()
        })
    }

    #[test]
    fn writes_in_one_txn_share_a_revision_and_are_visible_to_later_reads() {
        let req = TxnRequest {
            success: vec![
                put("a", "1"),
                put("b", "2"),
                TxnOp::Range(RangeRequest {
                    key: "a".into(),
                    range_end: "c".into(),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        };
        let (resp, ws) = evaluate_txn(&Empty, &req).unwrap();
        assert!(resp.succeeded);
        assert_eq!(ws.revision, 2);
        assert_eq!(resp.revision, 2);
        assert_eq!(ws.events.len(), 2);
        let OpResponse::Range(r) = &resp.responses[2] else {
            panic!("expected a range response")
        };
        assert_eq!(r.count, 2);
        assert!(r.kvs.iter().all(|kv| kv.mod_revision == 2 && kv.version == 1));
    }

    #[test]
    fn read_only_txn_takes_no_revision() {
        let req = TxnRequest {
            success: vec![TxnOp::Range(RangeRequest {
                key: "a".into(),
                ..Default::default()
            })],
            ..Default::default()
        };
        let (resp, ws) = evaluate_txn(&Empty, &req).unwrap();
        assert!(ws.is_empty());
        assert_eq!(resp.revision, 1);
    }

    #[test]
    fn bad_requests_are_refused() {
        let dup = TxnRequest {
            success: vec![put("a", "1"), put("a", "2")],
            ..Default::default()
        };
        assert!(matches!(evaluate_txn(&Empty, &dup), Err(Error::DuplicateKey)));
        let overlap = TxnRequest {
            success: vec![
                put("a/1", "1"),
                TxnOp::DeleteRange(DeleteRangeRequest {
                    key: "a/".into(),
                    range_end: "a0".into(),
                    prev_kv: false,
                }),
            ],
            ..Default::default()
        };
        assert!(matches!(evaluate_txn(&Empty, &overlap), Err(Error::DuplicateKey)));
        let empty = TxnRequest {
            success: vec![put("", "1")],
            ..Default::default()
        };
        assert!(matches!(evaluate_txn(&Empty, &empty), Err(Error::EmptyKey)));
        let big = TxnRequest {
            success: vec![put("a", &"x".repeat(MAX_REQUEST_BYTES))],
            ..Default::default()
        };
        assert!(matches!(evaluate_txn(&Empty, &big), Err(Error::TooLarge { .. })));
        let lease = TxnRequest {
            success: vec![TxnOp::Put(PutRequest {
                key: "a".into(),
                lease: 8,
                ..Default::default()
            })],
            ..Default::default()
        };
        assert!(matches!(
            evaluate_txn(&Empty, &lease),
            Err(Error::LeaseNotFound(8))
        ));
        let ignore = TxnRequest {
            success: vec![TxnOp::Put(PutRequest {
                key: "a".into(),
                ignore_value: true,
                ..Default::default()
            })],
            ..Default::default()
        };
        assert!(matches!(evaluate_txn(&Empty, &ignore), Err(Error::KeyNotFound)));
    }

    #[test]
    fn value_compare_on_missing_key_fails() {
        let c = Compare {
            key: "a".into(),
            range_end: Bytes::new(),
            target: CompareTarget::Value(Bytes::new()),
            op: CompareOp::Equal,
        };
        assert!(!compare_one(None, &c));
        let c = Compare {
            target: CompareTarget::Version(0),
            ..c
        };
        assert!(compare_one(None, &c));
    }

    #[test]
    fn failed_txn_leaves_nothing_in_the_overlay() {
        let mut ov = Overlay::new(&Empty);
        let bad = TxnRequest {
            success: vec![
                put("a", "1"),
                TxnOp::Put(PutRequest {
                    key: "b".into(),
                    lease: 99,
                    ..Default::default()
                }),
            ],
            ..Default::default()
        };
        assert!(matches!(ov.apply(&bad), Err(Error::LeaseNotFound(99))));
        let read = TxnRequest {
            success: vec![TxnOp::Range(RangeRequest {
                key: "a".into(),
                ..Default::default()
            })],
            ..Default::default()
        };
        let (resp, ws) = ov.apply(&read).unwrap();
        assert!(ws.is_empty());
        let OpResponse::Range(r) = &resp.responses[0] else {
            panic!("expected a range response")
        };
        assert!(r.kvs.is_empty(), "the failed put must not be visible");
        assert_eq!(ov.current_revision(), 1);
    }

    #[test]
    fn overlay_chains_transactions() {
        let mut ov = Overlay::new(&Empty);
        let (r1, w1) = ov
            .apply(&TxnRequest {
                success: vec![put("k", "1")],
                ..Default::default()
            })
            .unwrap();
        let cas = TxnRequest {
            compare: vec![Compare {
                key: "k".into(),
                range_end: Bytes::new(),
                target: CompareTarget::ModRevision(w1.revision),
                op: CompareOp::Equal,
            }],
            success: vec![put("k", "2")],
            ..Default::default()
        };
        let (r2, w2) = ov.apply(&cas).unwrap();
        assert_eq!((r1.revision, r2.revision), (2, 3));
        assert!(r2.succeeded);
        assert_eq!(w2.events[0].prev_kv.as_ref().unwrap().value, Bytes::from("1"));
        assert_eq!(w2.events[0].kv.version, 2);
        assert_eq!(w2.events[0].kv.create_revision, 2);
    }
}
