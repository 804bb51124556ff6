//! Throughput probe (not a pass/fail test): `cargo test --release -p storage-raft --test perf --
//! --ignored --nocapture`. Prints puts per second with 64 concurrent clients on one member and
//! on a three-member group.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Cluster, test_config};
use storage::{PutRequest, Storage};
use storage_raft::RaftStorage;

async fn hammer(store: Arc<dyn Storage>, clients: usize, per_client: usize) -> f64 {
    let value = bytes::Bytes::from(vec![b'v'; 256]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let key = format!("/perf/{c}/{}", i % 100);
                store
                    .put(PutRequest {
                        key: key.into(),
                        value: value.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (clients * per_client) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "throughput probe; run explicitly"]
async fn puts_per_second_64_clients() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let (l, url) = common::listener();
    let config = test_config("solo", dir.path().join("data"), &url, dir.path().join("pki"));
    let store = RaftStorage::start_with_listener(config, Some(l)).await.unwrap();
    hammer(store.clone(), 64, 50).await;
    let rate = hammer(store.clone(), 64, 1000).await;
    println!("single member: {rate:.0} puts/s");
    store.shutdown().await;

    let cluster = Cluster::start_with(3, |c| c.heartbeat_interval = Duration::from_millis(100)).await;
    let leader = cluster.wait_leader(Duration::from_secs(10)).await;
    hammer(cluster.node(leader).clone(), 64, 50).await;
    let rate = hammer(cluster.node(leader).clone(), 64, 500).await;
    println!("three members (leader): {rate:.0} puts/s");
    for i in 0..3 {
        cluster.node(i).shutdown().await;
    }
}
