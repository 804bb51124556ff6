//! Throughput (ignored by default; run with `--release -- --ignored --nocapture bench`): nodes
//! and pending pods are created first, then the scheduler starts; pods bound per second from the
//! first binding to the last. `BENCH_NODES` (1000) and `BENCH_PODS` (10000) size it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

use crate::Harness;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_throughput() {
    let (nodes, pods) = (env("BENCH_NODES", 1000), env("BENCH_PODS", 10_000));
    let server = apiserver::testing::TestServer::start().await.unwrap();
    let admin = server.client();
    let node_api: Api<Node> = Api::all(admin.clone());
    futures::stream::iter(0..nodes)
        .map(|i| {
            let api = node_api.clone();
            async move {
                let name = format!("node-{i}");
                let n: Node = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                    "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                               "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                               "conditions": [{"type": "Ready", "status": "True"}]}
                }))
                .unwrap();
                api.create(&PostParams::default(), &n).await.unwrap();
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let pod_api: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let t = Instant::now();
    futures::stream::iter(0..pods)
        .map(|i| {
            let api = pod_api.clone();
            async move {
                let p: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("pod-{i}")},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                             "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
                }))
                .unwrap();
                api.create(&PostParams::default(), &p).await.unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    eprintln!("created {nodes} nodes, {pods} pods in {:?}", t.elapsed());
    // Count bindings from a watch.
    let bound = Arc::new(AtomicUsize::new(0));
    let first: Arc<parking_lot::Mutex<Option<Instant>>> = Arc::default();
    let last: Arc<parking_lot::Mutex<Option<Instant>>> = Arc::default();
    let counter = {
        let (bound, first, last) = (bound.clone(), first.clone(), last.clone());
        let api = pod_api.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let stream = watcher(api, watcher::Config::default()).applied_objects();
            futures::pin_mut!(stream);
            while let Ok(Some(p)) = stream.try_next().await {
                if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
                    && seen.insert(p.metadata.name.clone().unwrap_or_default())
                {
                    let now = Instant::now();
                    first.lock().get_or_insert(now);
                    *last.lock() = Some(now);
                    bound.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let h = Harness::from_server(server, scheduler::Config::default(), 5000.0, 10000).await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound.load(Ordering::Relaxed) < pods {
        assert!(
            Instant::now() < deadline,
            "only {} bound",
            bound.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let span = last.lock().unwrap() - first.lock().unwrap();
    eprintln!(
        "RESULT bound={pods} nodes={nodes} seconds={:.2} pods_per_second={:.0}",
        span.as_secs_f64(),
        pods as f64 / span.as_secs_f64()
    );
    counter.abort();
    h.stop().await;
}
