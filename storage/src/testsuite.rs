//! The contract every [`Storage`] implementation must meet, as one suite run against each of them
//! (MemStorage, a single raft member, a raft group through a follower).
//!
//! The cases share one store: each uses its own key prefix and asserts revisions relative to what
//! it observed, and compaction runs last. That keeps a 3-member run cheap.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{
    Compare, CompareOp, CompareTarget, DeleteRangeRequest, Error, EventKind, Expect, OpResponse, PutRequest,
    RangeRequest, Revision, Storage, StorageExt, TxnOp, TxnRequest, WatchItem, WatchRequest, WriteOutcome,
    prefix_end,
};

/// How long a case waits for something that should happen (a watch event, a lease expiry).
const PATIENCE: Duration = Duration::from_secs(20);

/// Runs every case against `store`. Panics (with the case's name) on the first violation.
pub async fn run_all(store: Arc<dyn Storage>) {
    let s = store.as_ref();
    let cases: Vec<(&str, futures::future::BoxFuture<'_, ()>)> = vec![
        ("put_get", Box::pin(put_get(s))),
        ("revision_per_write", Box::pin(revision_per_write(s))),
        ("compare_and_swap", Box::pin(compare_and_swap(s))),
        ("read_at_revision", Box::pin(read_at_revision(s))),
        ("range_forms", Box::pin(range_forms(s))),
        ("list_paging", Box::pin(list_paging(s))),
        ("txn_compares", Box::pin(txn_compares(s))),
        ("bad_input", Box::pin(bad_input(s))),
        ("watch_history_then_live", Box::pin(watch_history_then_live(s))),
        (
            "watch_filters_and_progress",
            Box::pin(watch_filters_and_progress(s)),
        ),
        ("concurrent_updates", Box::pin(concurrent_updates(store.clone()))),
        ("leases", Box::pin(leases(s))),
        ("lease_expiry", Box::pin(lease_expiry(s))),
        ("snapshot_and_status", Box::pin(snapshot_and_status(s))),
        ("compaction", Box::pin(compaction(s))),
    ];
    for (name, case) in cases {
        tracing::info!(case = name, "storage contract");
        case.await;
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn put(s: &dyn Storage, key: &str, value: &str) -> Revision {
    s.put(PutRequest {
        key: b(key),
        value: b(value),
        ..Default::default()
    })
    .await
    .expect("put")
    .revision
}

async fn value_at(s: &dyn Storage, key: &str, rev: Revision) -> Option<Bytes> {
    s.get(key.as_bytes(), rev)
        .await
        .expect("get")
        .0
        .map(|kv| kv.value)
}

async fn put_get(s: &dyn Storage) {
    let rev = put(s, "/put_get/a", "1").await;
    let (kv, read_rev) = s.get(b"/put_get/a", 0).await.unwrap();
    let kv = kv.expect("key just written");
    assert_eq!(
        (kv.value.as_ref(), kv.create_revision, kv.mod_revision, kv.version),
        (&b"1"[..], rev, rev, 1)
    );
    assert!(read_rev >= rev, "a read after a write sees its revision");
    let rev2 = put(s, "/put_get/a", "2").await;
    let kv = s.get(b"/put_get/a", 0).await.unwrap().0.unwrap();
    assert_eq!(
        (kv.value.as_ref(), kv.create_revision, kv.mod_revision, kv.version),
        (&b"2"[..], rev, rev2, 2)
    );
    // Delete then recreate: a new life with version 1.
    s.delete_range(DeleteRangeRequest {
        key: b("/put_get/a"),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(value_at(s, "/put_get/a", 0).await, None);
    let rev4 = put(s, "/put_get/a", "3").await;
    let kv = s.get(b"/put_get/a", 0).await.unwrap().0.unwrap();
    assert_eq!((kv.create_revision, kv.version), (rev4, 1));
    let prev = s
        .put(PutRequest {
            key: b("/put_get/a"),
            value: b("4"),
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap();
    match &prev.responses[0] {
        OpResponse::Put { prev_kv: Some(p) } => assert_eq!(p.value, b("3")),
        other => panic!("put with prev_kv returned {other:?}"),
    }
}

async fn revision_per_write(s: &dyn Storage) {
    let r0 = s.current_revision().await.unwrap();
    let r1 = put(s, "/rev/a", "1").await;
    let r2 = put(s, "/rev/b", "1").await;
    assert_eq!((r1, r2), (r0 + 1, r0 + 2), "each write takes the next revision");
    // Writes that change nothing take no revision.
    let miss = s
        .delete_range(DeleteRangeRequest {
            key: b("/rev/none"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(miss.revision, r2);
    let failed = s.put_if(b"/rev/a", b("x"), Expect::Absent).await.unwrap();
    assert!(matches!(failed, WriteOutcome::Conflict { revision, .. } if revision == r2));
    assert_eq!(s.current_revision().await.unwrap(), r2);
    // A multi-key delete takes one revision.
    let del = s
        .delete_range(DeleteRangeRequest {
            key: b("/rev/"),
            range_end: prefix_end(b"/rev/"),
            prev_kv: true,
        })
        .await
        .unwrap();
    assert_eq!(del.revision, r2 + 1);
    assert!(
        matches!(&del.responses[0], OpResponse::DeleteRange { deleted: 2, prev_kvs } if prev_kvs.len() == 2)
    );
}

async fn compare_and_swap(s: &dyn Storage) {
    let key = b"/cas/k";
    let created = s.put_if(key, b("1"), Expect::Absent).await.unwrap();
    let WriteOutcome::Done { kv, revision } = created else {
        panic!("create failed: {created:?}")
    };
    assert_eq!((kv.value, kv.mod_revision), (b("1"), revision));
    match s.put_if(key, b("2"), Expect::Absent).await.unwrap() {
        WriteOutcome::Conflict {
            current: Some(cur), ..
        } => assert_eq!(cur.value, b("1")),
        other => panic!("second create must conflict: {other:?}"),
    }
    match s
        .put_if(key, b("2"), Expect::ModRevision(revision - 1))
        .await
        .unwrap()
    {
        WriteOutcome::Conflict {
            current: Some(cur), ..
        } => assert_eq!(cur.mod_revision, revision),
        other => panic!("stale update must conflict: {other:?}"),
    }
    let WriteOutcome::Done { kv, revision: r2 } = s
        .put_if(key, b("2"), Expect::ModRevision(revision))
        .await
        .unwrap()
    else {
        panic!("update at the current revision must succeed")
    };
    assert_eq!((kv.value, kv.version, kv.mod_revision), (b("2"), 2, r2));
    assert!(
        !s.delete_if(key, Expect::ModRevision(revision))
            .await
            .unwrap()
            .is_done()
    );
    match s.delete_if(key, Expect::ModRevision(r2)).await.unwrap() {
        WriteOutcome::Done { kv, .. } => assert_eq!(kv.value, b("2")),
        other => panic!("delete at the current revision must succeed: {other:?}"),
    }
    assert!(matches!(
        s.delete_if(key, Expect::Any).await.unwrap(),
        WriteOutcome::Conflict { current: None, .. }
    ));
}

async fn read_at_revision(s: &dyn Storage) {
    let r1 = put(s, "/at/k", "v1").await;
    let r2 = put(s, "/at/k", "v2").await;
    let r3 = s
        .delete_range(DeleteRangeRequest {
            key: b("/at/k"),
            ..Default::default()
        })
        .await
        .unwrap()
        .revision;
    assert_eq!(value_at(s, "/at/k", r1).await, Some(b("v1")));
    assert_eq!(value_at(s, "/at/k", r2).await, Some(b("v2")));
    assert_eq!(value_at(s, "/at/k", r3).await, None);
    assert_eq!(value_at(s, "/at/k", 0).await, None);
    let current = s.current_revision().await.unwrap();
    match s.get(b"/at/k", current + 1000).await {
        Err(Error::FutureRevision { requested, .. }) => assert_eq!(requested, current + 1000),
        other => panic!("a future revision must fail: {other:?}"),
    }
}

async fn range_forms(s: &dyn Storage) {
    for k in ["a", "b", "c", "d"] {
        put(s, &format!("/range/{k}"), k).await;
    }
    put(s, "/rangez", "outside").await;
    let r = |key: &str, end: Bytes| RangeRequest {
        key: b(key),
        range_end: end,
        ..Default::default()
    };
    let prefix = s.range(r("/range/", prefix_end(b"/range/"))).await.unwrap();
    assert_eq!(
        prefix.kvs.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(),
        ["a", "b", "c", "d"].map(b)
    );
    let half_open = s.range(r("/range/b", b("/range/d"))).await.unwrap();
    assert_eq!(half_open.count, 2);
    let from = s.range(r("/range/c", Bytes::from_static(&[0]))).await.unwrap();
    assert!(from.kvs.iter().any(|kv| kv.key == b("/rangez")) && from.count >= 3);
    let limited = s
        .range(RangeRequest {
            limit: 3,
            ..r("/range/", prefix_end(b"/range/"))
        })
        .await
        .unwrap();
    assert_eq!((limited.kvs.len(), limited.more, limited.count), (3, true, 4));
    let keys_only = s
        .range(RangeRequest {
            keys_only: true,
            ..r("/range/a", Bytes::new())
        })
        .await
        .unwrap();
    assert!(keys_only.kvs[0].value.is_empty() && keys_only.kvs[0].key == b("/range/a"));
    let count_only = s
        .range(RangeRequest {
            count_only: true,
            ..r("/range/", prefix_end(b"/range/"))
        })
        .await
        .unwrap();
    assert_eq!((count_only.kvs.len(), count_only.count), (0, 4));
    let serial = s
        .range(RangeRequest {
            serializable: true,
            ..r("/range/a", Bytes::new())
        })
        .await
        .unwrap();
    assert_eq!(serial.kvs.len(), 1);
}

async fn list_paging(s: &dyn Storage) {
    for i in 0..25 {
        put(s, &format!("/page/{i:02}"), "x").await;
    }
    let first = s.list(b"/page/", None, 0, 10).await.unwrap();
    assert_eq!((first.kvs.len(), first.more, first.remaining), (10, true, 25));
    // Writes after the first page are invisible to pages read at its revision.
    put(s, "/page/05x", "late").await;
    let mut seen = first.kvs.clone();
    let mut page = first.clone();
    while page.more {
        let last = page.kvs.last().unwrap().key.clone();
        page = s.list(b"/page/", Some(&last), first.revision, 10).await.unwrap();
        assert_eq!(page.revision, first.revision.max(page.revision));
        seen.extend(page.kvs.iter().cloned());
    }
    let keys: Vec<_> = seen.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<_> = (0..25).map(|i| b(&format!("/page/{i:02}"))).collect();
    assert_eq!(keys, expected);
    assert_eq!(s.list(b"/page/", None, 0, 0).await.unwrap().kvs.len(), 26);
}

async fn txn_compares(s: &dyn Storage) {
    let rev = put(s, "/txn/k", "v").await;
    let cmp = |target, op| Compare {
        key: b("/txn/k"),
        range_end: Bytes::new(),
        target,
        op,
    };
    let holds = |c: Compare| async move {
        let resp = s
            .txn(TxnRequest {
                compare: vec![c],
                ..Default::default()
            })
            .await
            .unwrap();
        resp.succeeded
    };
    assert!(holds(cmp(CompareTarget::Value(b("v")), CompareOp::Equal)).await);
    assert!(holds(cmp(CompareTarget::Value(b("a")), CompareOp::Greater)).await);
    assert!(holds(cmp(CompareTarget::Version(1), CompareOp::Equal)).await);
    assert!(holds(cmp(CompareTarget::CreateRevision(rev), CompareOp::Equal)).await);
    assert!(holds(cmp(CompareTarget::ModRevision(rev + 1), CompareOp::Less)).await);
    assert!(holds(cmp(CompareTarget::Lease(0), CompareOp::Equal)).await);
    assert!(!holds(cmp(CompareTarget::Version(1), CompareOp::NotEqual)).await);
    // A range compare holds only if it holds for every key.
    put(s, "/txn/r/1", "x").await;
    put(s, "/txn/r/2", "y").await;
    let range_cmp = |v: &str| Compare {
        key: b("/txn/r/"),
        range_end: prefix_end(b"/txn/r/"),
        target: CompareTarget::Value(b(v)),
        op: CompareOp::Greater,
    };
    assert!(holds(range_cmp("w")).await);
    assert!(!holds(range_cmp("x")).await);
    // Branches, nesting, and reads seeing the branch's own writes.
    let resp = s
        .txn(TxnRequest {
            compare: vec![cmp(CompareTarget::Value(b("nope")), CompareOp::Equal)],
            success: vec![],
            failure: vec![
                TxnOp::Put(PutRequest {
                    key: b("/txn/f"),
                    value: b("1"),
                    ..Default::default()
                }),
                TxnOp::Txn(TxnRequest {
                    success: vec![TxnOp::Put(PutRequest {
                        key: b("/txn/g"),
                        value: b("2"),
                        ..Default::default()
                    })],
                    ..Default::default()
                }),
                TxnOp::Range(RangeRequest {
                    key: b("/txn/f"),
                    range_end: b("/txn/h"),
                    ..Default::default()
                }),
            ],
        })
        .await
        .unwrap();
    assert!(!resp.succeeded);
    match &resp.responses[2] {
        OpResponse::Range(r) => {
            assert_eq!(r.kvs.len(), 2);
            assert!(r.kvs.iter().all(|kv| kv.mod_revision == resp.revision));
        }
        other => panic!("expected range response, got {other:?}"),
    }
}

async fn bad_input(s: &dyn Storage) {
    let before = s.current_revision().await.unwrap();
    let empty = s
        .put(PutRequest {
            key: Bytes::new(),
            value: b("x"),
            ..Default::default()
        })
        .await;
    assert!(matches!(empty, Err(Error::EmptyKey)), "{empty:?}");
    let huge = Bytes::from(vec![b'x'; crate::MAX_REQUEST_BYTES + 1]);
    let big = s
        .put(PutRequest {
            key: b("/bad/big"),
            value: huge,
            ..Default::default()
        })
        .await;
    assert!(matches!(big, Err(Error::TooLarge { .. })), "{big:?}");
    let lease = s
        .put(PutRequest {
            key: b("/bad/lease"),
            value: b("x"),
            lease: 424242,
            ..Default::default()
        })
        .await;
    assert!(matches!(lease, Err(Error::LeaseNotFound(424242))), "{lease:?}");
    let dup = s
        .txn(TxnRequest {
            success: vec![
                TxnOp::Put(PutRequest {
                    key: b("/bad/d"),
                    ..Default::default()
                }),
                TxnOp::Put(PutRequest {
                    key: b("/bad/d"),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        })
        .await;
    assert!(matches!(dup, Err(Error::DuplicateKey)), "{dup:?}");
    let empty_range = s.range(RangeRequest::default()).await;
    assert!(matches!(empty_range, Err(Error::EmptyKey)), "{empty_range:?}");
    assert_eq!(
        s.current_revision().await.unwrap(),
        before,
        "refused requests store nothing"
    );
    assert!(s.list(b"/bad/", None, 0, 0).await.unwrap().kvs.is_empty());
}

/// Reads watch items until `n` events have arrived.
async fn next_events(w: &mut crate::Watcher, n: usize) -> Vec<(Revision, crate::Event)> {
    let mut out = Vec::new();
    while out.len() < n {
        let item = tokio::time::timeout(PATIENCE, w.stream.next())
            .await
            .expect("watch event in time")
            .expect("watch stream open")
            .expect("watch item");
        if let WatchItem::Events { revision, events } = item {
            assert!(!events.is_empty(), "event batches are never empty");
            out.extend(events.into_iter().map(|e| (revision, e)));
        }
    }
    out
}

async fn watch_history_then_live(s: &dyn Storage) {
    let r1 = put(s, "/watch/a", "1").await;
    let r2 = put(s, "/watch/a", "2").await;
    let r3 = s
        .delete_range(DeleteRangeRequest {
            key: b("/watch/a"),
            ..Default::default()
        })
        .await
        .unwrap()
        .revision;
    let mut w = s
        .watch(WatchRequest {
            key: b("/watch/"),
            range_end: prefix_end(b"/watch/"),
            start_revision: r1,
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let history = next_events(&mut w, 3).await;
    assert_eq!(
        history.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        vec![r1, r2, r3]
    );
    assert_eq!(
        history[1].1.prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b("1"))
    );
    assert_eq!(history[2].1.kind, EventKind::Delete);
    assert_eq!(
        history[2].1.prev_kv.as_ref().map(|kv| kv.value.clone()),
        Some(b("2"))
    );
    let r4 = put(s, "/watch/b", "live").await;
    let live = next_events(&mut w, 1).await;
    assert_eq!(
        (live[0].0, live[0].1.kv.value.clone(), live[0].1.kv.mod_revision),
        (r4, b("live"), r4)
    );
}

async fn watch_filters_and_progress(s: &dyn Storage) {
    let mut deletes = s
        .watch(WatchRequest {
            key: b("/wf/"),
            range_end: prefix_end(b"/wf/"),
            no_put: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut one = s
        .watch(WatchRequest {
            key: b("/wf/x"),
            ..Default::default()
        })
        .await
        .unwrap();
    put(s, "/wf/y", "1").await;
    let rx = put(s, "/wf/x", "1").await;
    let rd = s
        .delete_range(DeleteRangeRequest {
            key: b("/wf/y"),
            ..Default::default()
        })
        .await
        .unwrap()
        .revision;
    let got = next_events(&mut one, 1).await;
    assert_eq!((got[0].0, got[0].1.kv.key.clone()), (rx, b("/wf/x")));
    assert!(got[0].1.prev_kv.is_none(), "prev_kv only when asked for");
    let got = next_events(&mut deletes, 1).await;
    assert_eq!((got[0].0, got[0].1.kind), (rd, EventKind::Delete));
    // Progress comes after every event the watcher was owed.
    one.progress.request();
    let item = tokio::time::timeout(PATIENCE, one.stream.next())
        .await
        .expect("progress in time");
    match item.expect("open").expect("item") {
        WatchItem::Progress { revision } => assert!(revision >= rd, "progress {revision} must cover {rd}"),
        WatchItem::Events { .. } => panic!("no further events for /wf/x"),
    }
}

async fn concurrent_updates(s: Arc<dyn Storage>) {
    const WRITERS: usize = 16;
    s.put(PutRequest {
        key: b("/conc/n"),
        value: b("0"),
        ..Default::default()
    })
    .await
    .unwrap();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let (mut cur, _) = s.get(b"/conc/n", 0).await.unwrap();
                loop {
                    let kv = cur.expect("counter exists");
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    let next = Bytes::from((n + 1).to_string());
                    match s
                        .put_if(b"/conc/n", next, Expect::ModRevision(kv.mod_revision))
                        .await
                        .unwrap()
                    {
                        WriteOutcome::Done { revision, .. } => return revision,
                        WriteOutcome::Conflict { current, .. } => cur = current,
                    }
                }
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        WRITERS,
        "every successful CAS has its own revision"
    );
    assert_eq!(
        value_at(&*s, "/conc/n", 0).await,
        Some(Bytes::from(WRITERS.to_string()))
    );
}

async fn leases(s: &dyn Storage) {
    let lease = s.lease_grant(0, 60).await.unwrap();
    assert!(lease.id > 0 && lease.ttl >= 60);
    assert!(s.lease_list().await.unwrap().contains(&lease.id));
    s.put(PutRequest {
        key: b("/lease/a"),
        value: b("1"),
        lease: lease.id,
        ..Default::default()
    })
    .await
    .unwrap();
    s.put(PutRequest {
        key: b("/lease/b"),
        value: b("1"),
        lease: lease.id,
        ..Default::default()
    })
    .await
    .unwrap();
    let kv = s.get(b"/lease/a", 0).await.unwrap().0.unwrap();
    assert_eq!(kv.lease, lease.id);
    let info = s.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!((info.granted_ttl, info.keys.len()), (60, 2));
    assert!(info.ttl > 0 && info.ttl <= 60);
    assert_eq!(s.lease_keep_alive(lease.id).await.unwrap(), 60);
    let explicit = s.lease_grant(777_001, 30).await.unwrap();
    assert_eq!(explicit.id, 777_001);
    assert!(matches!(
        s.lease_grant(777_001, 30).await,
        Err(Error::LeaseExists(777_001))
    ));
    let mut w = s
        .watch(WatchRequest {
            key: b("/lease/"),
            range_end: prefix_end(b"/lease/"),
            ..Default::default()
        })
        .await
        .unwrap();
    let rev = s.lease_revoke(lease.id).await.unwrap();
    let events = next_events(&mut w, 2).await;
    assert!(
        events
            .iter()
            .all(|(r, e)| *r == rev && e.kind == EventKind::Delete),
        "one revision for the revoke"
    );
    assert!(s.list(b"/lease/", None, 0, 0).await.unwrap().kvs.is_empty());
    assert!(matches!(
        s.lease_keep_alive(lease.id).await,
        Err(Error::LeaseNotFound(_))
    ));
    assert!(matches!(
        s.lease_time_to_live(lease.id, false).await,
        Err(Error::LeaseNotFound(_))
    ));
    s.lease_revoke(777_001).await.unwrap();
}

async fn lease_expiry(s: &dyn Storage) {
    let lease = s.lease_grant(0, 1).await.unwrap();
    s.put(PutRequest {
        key: b("/expire/k"),
        value: b("1"),
        lease: lease.id,
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while value_at(s, "/expire/k", 0).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a key whose lease expired must go"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!s.lease_list().await.unwrap().contains(&lease.id));
}

async fn snapshot_and_status(s: &dyn Storage) {
    let status = s.status().await.unwrap();
    assert!(status.revision > 1 && status.member_id != 0);
    assert!(!s.member_list().await.unwrap().is_empty());
    let mut snap = s.snapshot().await.unwrap();
    let mut size = 0;
    while let Some(chunk) = snap.next().await {
        size += chunk.unwrap().len();
    }
    assert!(size > 0, "a snapshot of a non-empty store has bytes");
}

async fn compaction(s: &dyn Storage) {
    let r1 = put(s, "/compact/k", "old").await;
    let r2 = put(s, "/compact/k", "new").await;
    s.compact(r2).await.unwrap();
    match s.get(b"/compact/k", r1).await {
        Err(Error::Compacted { requested, compacted }) => assert_eq!((requested, compacted), (r1, r2)),
        other => panic!("a read below the compaction point must fail: {other:?}"),
    }
    let watch = s
        .watch(WatchRequest {
            key: b("/compact/k"),
            start_revision: r1,
            ..Default::default()
        })
        .await;
    assert!(
        matches!(watch, Err(Error::Compacted { .. })),
        "a watch below the compaction point must fail"
    );
    assert_eq!(value_at(s, "/compact/k", r2).await, Some(b("new")));
    assert_eq!(value_at(s, "/compact/k", 0).await, Some(b("new")));
    // Live keys written long before survive.
    assert_eq!(value_at(s, "/put_get/a", 0).await, Some(b("4")));
    assert!(
        matches!(s.compact(r1).await, Err(Error::Compacted { .. })),
        "compacting backwards fails"
    );
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn mem_storage_meets_the_contract() {
        super::run_all(std::sync::Arc::new(crate::mem::MemStorage::new())).await;
    }
}
