//! A single-member store: basics, durability across restart, errors, leases, compaction,
//! watches, backup and restore.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{get, put, test_config, wait_for};
use futures::StreamExt;
use storage::{
    DeleteRangeRequest, Error, EventKind, PutRequest, RangeRequest, Storage, TxnOp, TxnRequest, WatchItem,
    WatchRequest, prefix_end,
};
use storage_raft::RaftStorage;

struct One {
    dir: tempfile::TempDir,
    url: String,
}

impl One {
    fn new() -> One {
        common::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let (l, url) = common::listener();
        drop(l);
        One { dir, url }
    }

    fn config(&self) -> storage_raft::Config {
        test_config(
            "solo",
            self.dir.path().join("data"),
            &self.url,
            self.dir.path().join("pki"),
        )
    }

    async fn start(&self) -> Arc<RaftStorage> {
        let l = common::rebind(&self.url);
        RaftStorage::start_with_listener(self.config(), Some(l))
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_restart_and_revisions_continue() {
    let one = One::new();
    let store = one.start().await;
    assert!(store.is_leader());
    assert_eq!(
        store.current_revision().await.unwrap(),
        1,
        "an empty store is at revision 1, like etcd"
    );
    let mut last = 0;
    for i in 0..50 {
        last = put(&*store, &format!("k/{i}"), &format!("v{i}")).await.unwrap();
    }
    assert_eq!(last, 51);
    let del = store
        .delete_range(DeleteRangeRequest {
            key: "k/0".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(del.revision, 52);
    store.shutdown().await;
    drop(store);

    let started = std::time::Instant::now();
    let store = one.start().await;
    tracing::info!(elapsed = ?started.elapsed(), "restarted");
    assert_eq!(get(&*store, "k/7").await.as_deref(), Some("v7"));
    assert_eq!(get(&*store, "k/0").await, None);
    assert_eq!(store.current_revision().await.unwrap(), 52);
    assert_eq!(put(&*store, "k/x", "x").await.unwrap(), 53);
    // History is still readable at old revisions.
    let old = store
        .range(RangeRequest {
            key: "k/0".into(),
            revision: 51,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(old.kvs[0].value, Bytes::from("v0"));
    assert_eq!(old.revision, 53);
    let all = store
        .range(RangeRequest {
            key: "k/".into(),
            range_end: prefix_end(b"k/"),
            revision: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.count, 9);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let one = One::new();
    let store = one.start().await;
    let big = vec![b'x'; storage::MAX_REQUEST_BYTES + 1];
    let err = store
        .put(PutRequest {
            key: "big".into(),
            value: big.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let err = store
        .put(PutRequest {
            key: Bytes::new(),
            value: "v".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyKey), "{err}");
    let err = store
        .put(PutRequest {
            key: "k".into(),
            value: "v".into(),
            lease: 4242,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LeaseNotFound(4242)), "{err}");
    // A transaction failing halfway leaves nothing behind and takes no revision.
    let txn = TxnRequest {
        success: vec![
            TxnOp::Put(PutRequest {
                key: "a".into(),
                value: "1".into(),
                ..Default::default()
            }),
            TxnOp::Put(PutRequest {
                key: "b".into(),
                value: "2".into(),
                lease: 9,
                ..Default::default()
            }),
        ],
        ..Default::default()
    };
    assert!(matches!(store.txn(txn).await, Err(Error::LeaseNotFound(9))));
    assert_eq!(get(&*store, "a").await, None);
    assert_eq!(store.current_revision().await.unwrap(), 1);
    let err = store
        .range(RangeRequest {
            key: "a".into(),
            revision: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::FutureRevision {
                requested: 99,
                current: 1
            }
        ),
        "{err}"
    );
    // The next write after the failures gets the next revision.
    assert_eq!(put(&*store, "a", "ok").await.unwrap(), 2);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_proposals_and_all_land() {
    let one = One::new();
    let store = one.start().await;
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..20 {
                revs.push(put(&*store, &format!("c/{t}/{i}"), "v").await.unwrap());
            }
            revs
        }));
    }
    let mut revs = Vec::new();
    for t in tasks {
        revs.extend(t.await.unwrap());
    }
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), 640, "every write has its own revision");
    assert_eq!(*revs.last().unwrap(), 641);
    assert_eq!(common::count_prefix(&*store, "c/").await, 640);
    let last_index = store.raft().metrics().borrow().last_log_index.unwrap_or(0);
    assert!(
        last_index < 640,
        "writes were batched into fewer raft entries ({last_index})"
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_discards_history_and_watches_replay_from_disk() {
    let one = One::new();
    let store = one.start().await;
    for i in 0..20 {
        put(&*store, "w/key", &format!("v{i}")).await.unwrap();
    }
    // Watch from revision 2: 20 events replayed (from the hub's ring or rocksdb), then live ones.
    let mut w = store
        .watch(WatchRequest {
            key: "w/".into(),
            range_end: prefix_end(b"w/"),
            start_revision: 2,
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap();
    put(&*store, "w/key", "live").await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 21 {
        match w.stream.next().await.unwrap().unwrap() {
            WatchItem::Events { revision, events } => {
                assert_eq!(events[0].kind, EventKind::Put);
                if revision > 2 {
                    assert!(events[0].prev_kv.is_some(), "prev_kv at {revision}");
                }
                seen.push(revision);
            }
            WatchItem::Progress { .. } => {}
        }
    }
    assert_eq!(seen, (2..=22).collect::<Vec<_>>());

    store.compact(15).await.unwrap();
    let err = store
        .range(RangeRequest {
            key: "w/key".into(),
            revision: 10,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Compacted {
                requested: 10,
                compacted: 15
            }
        ),
        "{err}"
    );
    assert!(matches!(store.compact(15).await, Err(Error::Compacted { .. })));
    assert!(matches!(
        store.compact(1000).await,
        Err(Error::FutureRevision { .. })
    ));
    let at15 = store
        .range(RangeRequest {
            key: "w/key".into(),
            revision: 15,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(at15.kvs[0].value, Bytes::from("v13"));
    let err = store
        .watch(WatchRequest {
            key: "w/key".into(),
            start_revision: 3,
            ..Default::default()
        })
        .await;
    assert!(matches!(err, Err(Error::Compacted { .. })));

    // After a restart the compaction point holds and history at/after it is still served.
    store.shutdown().await;
    drop((w, store));
    let store = one.start().await;
    let at16 = store
        .range(RangeRequest {
            key: "w/key".into(),
            revision: 16,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(at16.kvs[0].value, Bytes::from("v14"));
    let err = store
        .range(RangeRequest {
            key: "w/key".into(),
            revision: 14,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Compacted { .. }), "{err}");
    let mut w = store
        .watch(WatchRequest {
            key: "w/key".into(),
            start_revision: 16,
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap();
    match w.stream.next().await.unwrap().unwrap() {
        WatchItem::Events { revision, events } => {
            assert_eq!(revision, 16);
            assert_eq!(events[0].prev_kv.as_ref().unwrap().value, Bytes::from("v13"));
        }
        other => panic!("unexpected {other:?}"),
    }
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_and_delete_their_keys_in_one_revision() {
    let one = One::new();
    let store = one.start().await;
    let lease = store.lease_grant(0, 1).await.unwrap();
    assert!(lease.id > 0);
    for k in ["l/a", "l/b", "l/c"] {
        store
            .put(PutRequest {
                key: k.into(),
                value: "v".into(),
                lease: lease.id,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let rev_before = store.current_revision().await.unwrap();
    let ttl = store.lease_time_to_live(lease.id, true).await.unwrap();
    assert_eq!(ttl.keys.len(), 3);
    assert!(matches!(
        store.lease_grant(lease.id, 5).await,
        Err(Error::LeaseExists(_))
    ));
    wait_for(Duration::from_secs(10), "the lease to expire", || async {
        (get(&*store, "l/a").await.is_none()).then_some(())
    })
    .await;
    assert_eq!(get(&*store, "l/b").await, None);
    assert_eq!(
        store.current_revision().await.unwrap(),
        rev_before + 1,
        "all keys deleted in one revision"
    );
    assert!(store.lease_list().await.unwrap().is_empty());
    assert!(matches!(
        store.lease_keep_alive(lease.id).await,
        Err(Error::LeaseNotFound(_))
    ));

    // Grant + revoke explicitly; a revoke of an unknown lease fails.
    let l2 = store.lease_grant(77, 100).await.unwrap();
    assert_eq!(l2.id, 77);
    assert_eq!(store.lease_keep_alive(77).await.unwrap(), 100);
    store
        .put(PutRequest {
            key: "l/d".into(),
            value: "v".into(),
            lease: 77,
            ..Default::default()
        })
        .await
        .unwrap();
    let rev = store.lease_revoke(77).await.unwrap();
    assert_eq!(rev, store.current_revision().await.unwrap());
    assert!(matches!(
        store.lease_revoke(77).await,
        Err(Error::LeaseNotFound(77))
    ));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_restores_into_a_new_member() {
    let one = One::new();
    let store = one.start().await;
    for i in 0..100 {
        put(&*store, &format!("b/{i:03}"), &format!("v{i}"))
            .await
            .unwrap();
    }
    let lease = store.lease_grant(5, 3600).await.unwrap();
    store
        .put(PutRequest {
            key: "b/leased".into(),
            value: "v".into(),
            lease: lease.id,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut backup = Vec::new();
    let mut stream = store.snapshot().await.unwrap();
    while let Some(chunk) = stream.next().await {
        backup.extend_from_slice(&chunk.unwrap());
    }
    let revision = store.current_revision().await.unwrap();
    store.shutdown().await;

    let target = tempfile::tempdir().unwrap();
    let data = target.path().join("restored");
    let summary = storage_raft::restore_snapshot(&backup[..], &data).unwrap();
    assert_eq!(summary.revision, revision);
    assert_eq!(summary.keys, 101);
    assert!(
        storage_raft::restore_snapshot(&backup[..], &data).is_err(),
        "refuses to overwrite"
    );
    let mut truncated = backup.clone();
    truncated.truncate(backup.len() - 3);
    assert!(storage_raft::restore_snapshot(&truncated[..], &target.path().join("bad")).is_err());

    let (l, url) = common::listener();
    let config = test_config("restored", data, &url, target.path().join("pki"));
    let restored = RaftStorage::start_with_listener(config, Some(l)).await.unwrap();
    assert_eq!(get(&*restored, "b/042").await.as_deref(), Some("v42"));
    assert_eq!(restored.current_revision().await.unwrap(), revision);
    assert_eq!(put(&*restored, "b/new", "n").await.unwrap(), revision + 1);
    assert_eq!(restored.lease_list().await.unwrap(), vec![5]);
    restored.shutdown().await;
}
