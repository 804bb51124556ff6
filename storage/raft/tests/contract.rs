//! The storage contract suite (`storage::testsuite`) on a single member and on a three-member
//! group through a follower (which exercises write forwarding and follower read index).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Cluster, test_config};
use storage::Storage;
use storage_raft::RaftStorage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_single_member() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (l, url) = common::listener();
    let config = test_config("solo", dir.path().join("data"), &url, dir.path().join("pki"));
    let store = RaftStorage::start_with_listener(config, Some(l)).await.unwrap();
    storage::testsuite::run_all(store.clone() as Arc<dyn Storage>).await;
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_three_members_through_a_follower() {
    let cluster = Cluster::start(3).await;
    let f = cluster.follower().await;
    storage::testsuite::run_all(cluster.node(f).clone() as Arc<dyn Storage>).await;
    let _ = cluster.wait_leader(Duration::from_secs(10)).await;
    for i in 0..3 {
        cluster.node(i).shutdown().await;
    }
}
