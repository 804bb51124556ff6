//! The etcd API over `MemStorage`, exercised with the `etcd-client` crate in process.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp,
    TxnOpResponse, WatchOptions, WatchResponse,
};
use storage_etcd::{EtcdServer, Options};
use tokio_util::sync::CancellationToken;

/// Bound on waiting for a stream message in a test (failing tests, not timing assertions).
const WAIT: Duration = Duration::from_secs(30);

struct Server {
    url: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.task.abort();
    }
}

async fn start(options: Options) -> Server {
    let store: Arc<dyn storage::Storage> = Arc::new(storage::mem::MemStorage::new());
    let shutdown = CancellationToken::new();
    let server = EtcdServer::new(store, options, shutdown.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        server.serve(listener, None).await.unwrap();
    });
    Server { url, shutdown, task }
}

async fn client(s: &Server) -> Client {
    Client::connect([s.url.as_str()], None).await.unwrap()
}

async fn next(stream: &mut etcd_client::WatchStream) -> WatchResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("watch response in time")
        .unwrap()
        .unwrap()
}

fn status_of(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

#[tokio::test]
async fn paged_range_at_a_revision() {
    let s = start(Options::default()).await;
    let mut c = client(&s).await;
    for i in 0..5 {
        c.put(format!("/registry/pods/p{i}"), format!("v{i}"), None)
            .await
            .unwrap();
    }
    let rev = c
        .get("/registry/pods/p0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.put("/registry/pods/p9", "late", None).await.unwrap();

    let page = c
        .get(
            "/registry/pods/",
            Some(GetOptions::new().with_prefix().with_limit(2).with_revision(rev)),
        )
        .await
        .unwrap();
    assert_eq!(page.kvs().len(), 2);
    assert!(page.more());
    assert_eq!(page.count(), 5, "count ignores the limit and the later write");
    assert_eq!(
        page.header().unwrap().revision(),
        rev + 1,
        "header carries the current revision"
    );
    let next_key = [page.kvs()[1].key(), b"\0"].concat();
    let rest = c
        .get(
            next_key,
            Some(GetOptions::new().with_range("/registry/pods0").with_revision(rev)),
        )
        .await
        .unwrap();
    let keys: Vec<_> = rest
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        ["/registry/pods/p2", "/registry/pods/p3", "/registry/pods/p4"]
    );
    assert!(!rest.more());

    let sorted = c
        .get(
            "/registry/pods/",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Mod, SortOrder::Descend)
                    .with_limit(1)
                    .with_min_mod_revision(1),
            ),
        )
        .await
        .unwrap();
    assert_eq!(sorted.kvs()[0].key(), b"/registry/pods/p9");
    assert!(sorted.more());
    let counted = c
        .get(
            "/registry/pods/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!((counted.count(), counted.kvs().len()), (6, 0));
}

#[tokio::test]
async fn kubernetes_style_create_and_update_transactions() {
    let s = start(Options::default()).await;
    let mut c = client(&s).await;
    let key = "/registry/configmaps/default/a";
    let create = || {
        Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, "v1", None)])
            .or_else([TxnOp::get(key, None)])
    };
    let resp = c.txn(create()).await.unwrap();
    assert!(resp.succeeded());
    let created_rev = resp.header().unwrap().revision();
    let resp = c.txn(create()).await.unwrap();
    assert!(!resp.succeeded());
    match &resp.op_responses()[0] {
        TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].mod_revision(), created_rev),
        other => panic!("unexpected {other:?}"),
    }
    let update = |rev: i64| {
        Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, rev)])
            .and_then([TxnOp::put(key, "v2", None)])
            .or_else([TxnOp::get(key, None)])
    };
    assert!(c.txn(update(created_rev)).await.unwrap().succeeded());
    assert!(!c.txn(update(created_rev)).await.unwrap().succeeded());

    // A nested transaction and a range compare over several keys.
    c.put("/r/a", "1", None).await.unwrap();
    c.put("/r/b", "1", None).await.unwrap();
    let nested = Txn::new()
        .when([Compare::value("/r/a", CompareOp::Equal, "1").with_prefix()])
        .and_then([TxnOp::txn(
            Txn::new()
                .when([Compare::version("/r/a", CompareOp::Greater, 5)])
                .or_else([TxnOp::put("/r/c", "nested", None)]),
        )]);
    let resp = c.txn(nested).await.unwrap();
    assert!(resp.succeeded());
    match &resp.op_responses()[0] {
        TxnOpResponse::Txn(t) => assert!(!t.succeeded()),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.get("/r/c", None).await.unwrap().kvs()[0].value(), b"nested");

    // Lease compares.
    let lease = c.lease_grant(60, None).await.unwrap().id();
    c.put("/l", "v", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let on_lease = |id: i64| Txn::new().when([Compare::lease("/l", CompareOp::Equal, id)]);
    assert!(c.txn(on_lease(lease)).await.unwrap().succeeded());
    assert!(!c.txn(on_lease(lease + 1)).await.unwrap().succeeded());
    let no_lease = Txn::new().when([Compare::lease("/r/a", CompareOp::Equal, 0)]);
    assert!(c.txn(no_lease).await.unwrap().succeeded());
}

#[tokio::test]
async fn bad_requests_get_etcd_statuses() {
    let s = start(Options::default()).await;
    let mut c = client(&s).await;
    let st = status_of(c.put("k", vec![b'x'; 1_600_000], None).await.unwrap_err());
    assert_eq!(
        (st.code(), st.message()),
        (tonic::Code::InvalidArgument, "etcdserver: request is too large")
    );
    let st = status_of(c.put("", "v", None).await.unwrap_err());
    assert_eq!(
        (st.code(), st.message()),
        (tonic::Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let st = status_of(
        c.put("k", "v", Some(PutOptions::new().with_lease(42)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code(), st.message()),
        (tonic::Code::NotFound, "etcdserver: requested lease not found")
    );
    let st = status_of(
        c.put("missing", "", Some(PutOptions::new().with_ignore_value()))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.message(), "etcdserver: key not found");
    let st = status_of(c.lease_revoke(42).await.unwrap_err());
    assert_eq!(st.message(), "etcdserver: requested lease not found");
    let st = status_of(
        c.get("k", Some(GetOptions::new().with_revision(1000)))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code(), st.message()),
        (
            tonic::Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision"
        )
    );
    c.put("k", "v", None).await.unwrap();
}

#[tokio::test]
async fn watch_ids_prev_kv_cancel_and_compaction() {
    let s = start(Options::default()).await;
    let mut c = client(&s).await;
    let r1 = c
        .put("w/a", "1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.put("w/a", "2", None).await.unwrap();

    let mut w = c
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(r1)
                    .with_prev_key(),
            ),
        )
        .await
        .unwrap();
    let created = next(&mut w).await;
    assert!(created.created());
    assert_eq!(created.watch_id(), 0, "IDs count from 0 on a stream");
    // The replayed history: one response per revision, or (as etcd does for a backlog) several
    // revisions in one.
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        replayed.extend(next(&mut w).await.events().to_vec());
    }
    assert_eq!(replayed.len(), 2);
    assert_eq!(replayed[0].kv().unwrap().value(), b"1");
    assert_eq!(replayed[1].prev_kv().unwrap().value(), b"1");

    // A second watcher on the same stream gets the next ID; cancel answers with canceled.
    w.watch("other", None).await.unwrap();
    let created = next(&mut w).await;
    assert!(created.created());
    assert_eq!(created.watch_id(), 1);
    w.cancel(1).await.unwrap();
    let canceled = next(&mut w).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), 1);

    c.delete("w/a", None).await.unwrap();
    let del = next(&mut w).await;
    assert_eq!(del.events()[0].event_type(), EventType::Delete);
    assert_eq!(del.events()[0].prev_kv().unwrap().value(), b"2");

    // Compact, then watch from below the compaction point.
    let now = c
        .put("w/b", "x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    next(&mut w).await;
    c.compact(now, None).await.unwrap();
    let mut old = c
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_start_revision(r1)),
        )
        .await
        .unwrap();
    assert!(next(&mut old).await.created());
    let compacted = next(&mut old).await;
    assert!(compacted.canceled());
    assert_eq!(compacted.compact_revision(), now);
}

#[tokio::test]
async fn progress_requests_and_periodic_notifications() {
    let options = Options {
        progress_notify_interval: Duration::from_millis(200),
        ..Options::default()
    };
    let s = start(options).await;
    let mut c = client(&s).await;
    let mut w = c
        .watch("p/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(next(&mut w).await.created());
    let rev = c
        .put("p/a", "1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    assert_eq!(next(&mut w).await.events().len(), 1);
    c.put("unwatched", "x", None).await.unwrap();

    // RequestProgress: an event-less response for the whole stream at the current revision.
    w.request_progress().await.unwrap();
    let progress = next(&mut w).await;
    assert_eq!(progress.watch_id(), -1);
    assert!(progress.events().is_empty() && !progress.created() && !progress.canceled());
    assert_eq!(progress.header().unwrap().revision(), rev + 1);

    // A progress_notify watcher gets periodic notifications with its own ID.
    let mut pn = c
        .watch("q/", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    let created = next(&mut pn).await;
    assert!(created.created());
    let id = created.watch_id();
    let notify = next(&mut pn).await;
    assert_eq!(notify.watch_id(), id);
    assert!(notify.events().is_empty());
    assert_eq!(notify.header().unwrap().revision(), rev + 1);
}

#[tokio::test]
async fn leases_and_maintenance() {
    let s = start(Options::default()).await;
    let mut c = client(&s).await;
    let lease = c.lease_grant(30, None).await.unwrap();
    assert_eq!(lease.ttl(), 30);
    c.put("l", "v", Some(PutOptions::new().with_lease(lease.id())))
        .await
        .unwrap();
    let (mut keeper, mut stream) = c.lease_keep_alive(lease.id()).await.unwrap();
    keeper.keep_alive().await.unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().ttl(), 30);
    let ttl = c
        .lease_time_to_live(
            lease.id(),
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .unwrap();
    assert_eq!(ttl.keys(), [b"l".to_vec()]);
    c.lease_revoke(lease.id()).await.unwrap();
    keeper.keep_alive().await.unwrap();
    assert_eq!(
        stream.message().await.unwrap().unwrap().ttl(),
        0,
        "keep-alive of a gone lease answers TTL 0"
    );
    assert_eq!(c.lease_time_to_live(lease.id(), None).await.unwrap().ttl(), -1);

    let status = c.status().await.unwrap();
    assert_eq!(status.version(), storage_etcd::ETCD_VERSION);
    assert_eq!(status.leader(), status.header().unwrap().member_id());
    assert!(
        c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
            .await
            .unwrap()
            .alarms()
            .is_empty()
    );
    let members = c.member_list().await.unwrap();
    assert_eq!(members.members().len(), 1);

    let mut snap = c.snapshot().await.unwrap();
    let mut data = Vec::new();
    while let Some(chunk) = snap.message().await.unwrap() {
        data.extend_from_slice(chunk.blob());
    }
    let inner = storage_etcd::unwrap_snapshot(&data).unwrap();
    assert!(storage::mem::MemStorage::restore(inner).is_ok());
}
