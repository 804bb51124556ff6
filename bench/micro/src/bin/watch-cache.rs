//! Watch-cache benchmark (numbers, not assertions), in-process against the in-memory store:
//!
//! ```text
//! cargo run -p keelson-micro-bench --release --bin watch-cache
//! ```
//!
//! `fan_out`: 1 000 watchers of one resource and a writer doing `UPDATES` updates; events/s
//! delivered to all watchers and the p50/p99 delay from the write's acknowledgement to each
//! watcher's event, with a storage watch per Kubernetes watch (cache off) and with the watch cache.
//! `list_latency`: a list of 5 000 objects from the store and from the cache (resourceVersion=0).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apiserver::registry::{ListOptions, RegistryConfig, WatchOptions, WriteOptions};
use apiserver::{ApiServer, Config};
use futures::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};

const WATCHERS: usize = 1000;
const UPDATES: usize = 200;
const LIST_OBJECTS: usize = 5000;

async fn server(store: Arc<storage::mem::MemStorage>, cache: bool) -> Arc<ApiServer> {
    let mut config = Config::new("/nonexistent");
    config.allow_unauthenticated = true;
    config.registry = RegistryConfig {
        watch_cache: cache,
        ..Default::default()
    };
    let api = ApiServer::new(config, store);
    api.bootstrap().await.expect("bootstrap");
    api
}

fn configmap(name: &str, i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": i.to_string()}})
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

async fn fan_out(cache: bool) {
    let api = server(Arc::new(storage::mem::MemStorage::new()), cache).await;
    let cms = api.table.lookup("", "v1", "configmaps").unwrap();
    let wo = WriteOptions::default();
    let created = api
        .registry
        .create(&cms, "default", configmap("hot", 0), &wo)
        .await
        .unwrap();
    let start: u64 = created.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // When each revision was acknowledged to the writer.
    let acked: Arc<Mutex<std::collections::HashMap<u64, Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..WATCHERS {
        let opts = WatchOptions {
            resource_version: Some(start),
            ..Default::default()
        };
        let mut stream = api.registry.watch(cms.clone(), "default", opts).await.unwrap();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut delays = Vec::with_capacity(UPDATES);
            while delays.len() < UPDATES {
                let Some(ev) = stream.next().await else { break };
                // Serialize as the handler does for every watcher.
                let bytes = serde_json::to_vec(&ev).unwrap();
                std::hint::black_box(bytes);
                let rv: u64 = ev["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let now = Instant::now();
                let at = acked.lock().get(&rv).copied();
                delays.push(at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)));
            }
            delays
        }));
    }
    let began = Instant::now();
    for i in 1..=UPDATES {
        let mut body = configmap("hot", i);
        body["metadata"]["resourceVersion"] = Value::Null;
        let reply = api
            .registry
            .update(&cms, "default", "hot", body, &wo, None)
            .await
            .unwrap();
        let rv: u64 = reply.body["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        acked.lock().insert(rv, Instant::now());
    }
    let mut delays = Vec::new();
    let mut short = 0;
    for t in tasks {
        let d = t.await.unwrap();
        if d.len() < UPDATES {
            short += 1;
        }
        delays.extend(d);
    }
    let elapsed = began.elapsed();
    delays.sort();
    println!(
        "fan_out cache={cache}: {WATCHERS} watchers x {UPDATES} updates: {} events in {:.2?} = {:.0} events/s; \
         delay p50 {:.2?} p99 {:.2?}; watchers cut short: {short}",
        delays.len(),
        elapsed,
        delays.len() as f64 / elapsed.as_secs_f64(),
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
    );
}

#[tokio::main]
async fn main() {
    fan_out(false).await;
    fan_out(true).await;
    list_latency_store_vs_cache().await;
}

/// A list of `LIST_OBJECTS` objects from the store and from the cache.
async fn list_latency_store_vs_cache() {
    let store = Arc::new(storage::mem::MemStorage::new());
    let direct = server(store.clone(), false).await;
    let cached = server(store, true).await;
    let cms = direct.table.lookup("", "v1", "configmaps").unwrap();
    for i in 0..LIST_OBJECTS {
        direct
            .registry
            .create(
                &cms,
                "default",
                configmap(&format!("cm-{i:05}"), i),
                &WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    let any = ListOptions {
        resource_version: Some(0),
        ..Default::default()
    };
    for (name, api, opts) in [
        ("store (resourceVersion unset)", &direct, ListOptions::default()),
        ("cache (resourceVersion=0)", &cached, any.clone()),
        (
            "cache (consistent, resourceVersion unset)",
            &cached,
            ListOptions::default(),
        ),
    ] {
        let list = api.registry.list(&cms, "default", &opts).await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), LIST_OBJECTS);
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let list = api.registry.list(&cms, "default", &opts).await.unwrap();
            std::hint::black_box(list);
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "list {LIST_OBJECTS} objects from {name}: p50 {:.2?} p99 {:.2?}",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
}
