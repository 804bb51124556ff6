//! Three-member groups in one process over loopback mTLS: forwarding, follower reads and
//! watches, leader loss, loss of quorum, membership changes and snapshot installation.

mod common;

use std::time::Duration;

use common::{Cluster, get, get_serializable, put, test_config, wait_for};
use futures::StreamExt;
use storage::{
    Compare, CompareOp, CompareTarget, Error, PutRequest, Storage, TxnOp, TxnRequest, WatchItem,
    WatchRequest, prefix_end,
};
use storage_raft::RaftStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_forward_writes_and_serve_linearizable_reads_and_watches() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let f = cluster.follower().await;
    let follower = cluster.node(f).clone();

    let mut w = follower
        .watch(WatchRequest {
            key: "f/".into(),
            range_end: prefix_end(b"f/"),
            ..Default::default()
        })
        .await
        .unwrap();
    let rev = put(&*follower, "f/a", "1").await.unwrap();
    // Linearizable reads see the write on every member right away.
    for i in 0..3 {
        assert_eq!(
            get(&**cluster.node(i), "f/a").await.as_deref(),
            Some("1"),
            "member {i}"
        );
    }
    match w.stream.next().await.unwrap().unwrap() {
        WatchItem::Events { revision, events } => {
            assert_eq!(revision, rev);
            assert_eq!(events[0].kv.value, bytes::Bytes::from("1"));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Compare-and-swap through a follower: the compare is evaluated on the leader's log order.
    let cas = |expect: u64, value: &str| TxnRequest {
        compare: vec![Compare {
            key: "f/a".into(),
            range_end: Default::default(),
            target: CompareTarget::ModRevision(expect),
            op: CompareOp::Equal,
        }],
        success: vec![TxnOp::Put(PutRequest {
            key: "f/a".into(),
            value: value.to_owned().into(),
            ..Default::default()
        })],
        ..Default::default()
    };
    assert!(follower.txn(cas(rev, "2")).await.unwrap().succeeded);
    assert!(!cluster.node(leader).txn(cas(rev, "3")).await.unwrap().succeeded);
    assert_eq!(get(&*follower, "f/a").await.as_deref(), Some("2"));
    // Leases through a follower: grant, keep-alive and TTL are served by the leader.
    let lease = follower.lease_grant(0, 30).await.unwrap();
    assert_eq!(follower.lease_keep_alive(lease.id).await.unwrap(), 30);
    assert!(follower.lease_time_to_live(lease.id, false).await.unwrap().ttl > 0);
    let members = follower.member_list().await.unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| !m.is_learner && !m.name.is_empty()));
    let status = follower.status().await.unwrap();
    assert_eq!(status.leader_id, cluster.node(leader).id());
    for i in 0..3 {
        cluster.node(i).shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_leader_and_followers_all_land_once() {
    common::init_tracing();
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    // 3 x 40 concurrent puts: the followers' forwarded batches share the leader's entries.
    let mut writes = Vec::new();
    for i in 0..3 {
        for n in 0..40 {
            let node = cluster.node(i).clone();
            writes.push(tokio::spawn(async move {
                put(&*node, &format!("c/{i}/{n:02}"), "v").await
            }));
        }
    }
    let mut revisions = Vec::new();
    for w in writes {
        revisions.push(w.await.unwrap().unwrap());
    }
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), 120, "every put got a revision of its own");
    // A failing compare through a follower is that command's own result, not the batch's.
    let f = cluster.follower().await;
    let follower = cluster.node(f).clone();
    let guarded = TxnRequest {
        compare: vec![Compare {
            key: "c/0/00".into(),
            range_end: Default::default(),
            target: CompareTarget::Version(7),
            op: CompareOp::Equal,
        }],
        success: vec![TxnOp::Put(PutRequest {
            key: "c/guarded".into(),
            value: "x".into(),
            ..Default::default()
        })],
        failure: Vec::new(),
    };
    let (failed, landed) = tokio::join!(follower.txn(guarded), put(&*follower, "c/plain", "y"));
    assert!(!failed.unwrap().succeeded);
    assert!(landed.is_ok());
    assert_eq!(common::count_prefix(&**cluster.node(leader), "c/").await, 121);
    for i in 0..3 {
        cluster.node(i).shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_after_the_leader_is_lost_and_it_catches_up_on_return() {
    let mut cluster = Cluster::start(3).await;
    for i in 0..20 {
        put(&**cluster.node(i % 3), &format!("k/{i}"), "v").await.unwrap();
    }
    let old = cluster.wait_leader(Duration::from_secs(10)).await;
    cluster.stop(old).await;
    let survivor = (0..3).find(|i| *i != old).unwrap();
    let s = cluster.node(survivor).clone();
    // Writes fail (Unavailable) until a new leader is elected, then succeed.
    wait_for(
        Duration::from_secs(15),
        "a write to succeed after leader loss",
        || async { put(&*s, "after", "x").await.ok() },
    )
    .await;
    let new = cluster.wait_leader(Duration::from_secs(10)).await;
    assert_ne!(new, old);
    for i in 20..40 {
        put(&**cluster.node(new), &format!("k/{i}"), "v").await.unwrap();
    }
    cluster.restart(old).await;
    let back = cluster.node(old).clone();
    wait_for(Duration::from_secs(15), "the old leader to catch up", || async {
        (get_serializable(&*back, "k/39").await.as_deref() == Some("v")).then_some(())
    })
    .await;
    assert_eq!(get(&*back, "after").await.as_deref(), Some("x"));
    for i in 0..3 {
        cluster.node(i).shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_and_linearizable_reads_fail_unavailable() {
    let mut cluster = Cluster::start(3).await;
    put(&**cluster.node(0), "q", "1").await.unwrap();
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    // Keep the leader, lose both followers.
    for i in 0..3 {
        if i != leader {
            cluster.stop(i).await;
        }
    }
    let l = cluster.node(leader).clone();
    let write = tokio::time::timeout(Duration::from_secs(20), put(&*l, "q", "2"))
        .await
        .expect("a write must not hang");
    assert!(matches!(write, Err(Error::Unavailable(_))), "{write:?}");
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        l.range(storage::RangeRequest {
            key: "q".into(),
            ..Default::default()
        }),
    )
    .await
    .expect("a read must not hang");
    assert!(matches!(read, Err(Error::Unavailable(_))), "{read:?}");
    // Serializable reads still answer from local state.
    assert_eq!(get_serializable(&*l, "q").await.as_deref(), Some("1"));
    // Once a follower is back, writes work again.
    let back = (0..3).find(|i| *i != leader).unwrap();
    cluster.restart(back).await;
    wait_for(
        Duration::from_secs(15),
        "writes to work with quorum restored",
        || async { put(&**cluster.node(back), "q", "3").await.ok() },
    )
    .await;
    for i in 0..3 {
        if cluster.nodes[i].is_some() {
            cluster.node(i).shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_member_gets_a_snapshot_then_is_promoted_and_an_old_one_removed() {
    let cluster = Cluster::start_with(3, |c| {
        c.snapshot_after_logs = 50;
        c.logs_kept_after_snapshot = 0;
    })
    .await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    let l = cluster.node(leader).clone();
    for i in 0..200 {
        put(&*l, &format!("s/{i:03}"), &format!("v{i}")).await.unwrap();
    }
    // A snapshot was built and the log purged past the start, so a new member needs the snapshot.
    l.raft().trigger().snapshot().await.unwrap();
    wait_for(Duration::from_secs(10), "log purge on the leader", || async {
        let m = l.raft().metrics().borrow().clone();
        (m.purged.map_or(0, |p| p.index) > 10).then_some(())
    })
    .await;

    let (listener, url) = common::listener();
    let added = l.member_add(vec![url.clone()], true).await.unwrap();
    assert!(added.is_learner);
    assert!(matches!(
        l.member_add(vec![url.clone()], true).await,
        Err(Error::Membership(_))
    ));
    let mut config = test_config(
        "m3",
        cluster.dir.path().join("m3"),
        &url,
        cluster.dir.path().join("pki"),
    );
    config.join = true;
    let newbie = RaftStorage::start_with_listener(config, Some(listener))
        .await
        .unwrap();
    assert_eq!(newbie.id(), added.id);
    wait_for(Duration::from_secs(20), "the learner to catch up", || async {
        (get_serializable(&*newbie, "s/199").await.as_deref() == Some("v199")).then_some(())
    })
    .await;
    // The log was purged past what the learner needed, so it caught up from a snapshot.
    wait_for(
        Duration::from_secs(5),
        "the learner's snapshot metric",
        || async { newbie.raft().metrics().borrow().snapshot.map(|_| ()) },
    )
    .await;
    assert!(newbie.status().await.unwrap().is_learner);
    // Writes through the learner are forwarded.
    put(&*newbie, "s/from-learner", "x").await.unwrap();

    cluster.node(leader).member_promote(added.id).await.unwrap();
    wait_for(Duration::from_secs(10), "the learner to be a voter", || async {
        let members = newbie.member_list().await.ok()?;
        members
            .iter()
            .any(|m| m.id == added.id && !m.is_learner && m.name == "m3")
            .then_some(())
    })
    .await;

    let victim = (0..3).find(|i| *i != leader).unwrap();
    let victim_id = cluster.node(victim).id();
    newbie.member_remove(victim_id).await.unwrap();
    let members = l.member_list().await.unwrap();
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.id != victim_id));
    assert!(matches!(
        l.member_remove(victim_id).await,
        Err(Error::Membership(_))
    ));
    put(&*newbie, "s/after-remove", "y").await.unwrap();
    assert_eq!(
        get(&**cluster.node(leader), "s/after-remove").await.as_deref(),
        Some("y")
    );
    newbie.shutdown().await;
    for i in 0..3 {
        cluster.node(i).shutdown().await;
    }
}
