//! `apiserver::testing::TestServer` as an operator author uses it (needs `--features testing`).
//!
//! The timing numbers are printed by an ignored test, run in release mode:
//! `cargo test -p apiserver --release --features testing --test testing -- --ignored --nocapture`

use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A custom resource defined the kube-rs way.
#[derive(kube::CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[kube(group = "test.keelson.dev", version = "v1", kind = "Counter", namespaced)]
pub struct CounterSpec {
    /// The value.
    pub value: i64,
}

async fn install_counter(server: &TestServer) -> Api<Counter> {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.create(&PostParams::default(), &Counter::crd())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(
            crds,
            "counters.test.keelson.dev",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    Api::default_namespaced(server.client())
}

#[tokio::test]
async fn derived_crd_round_trip() {
    let server = TestServer::start().await.unwrap();
    let counters = install_counter(&server).await;
    counters
        .create(
            &PostParams::default(),
            &Counter::new("one", CounterSpec { value: 1 }),
        )
        .await
        .unwrap();
    assert_eq!(counters.get("one").await.unwrap().spec.value, 1);
    assert!(server.kubeconfig_path().exists());
    assert!(server.url().starts_with("https://127.0.0.1:"));
    server.shutdown().await;
}

#[tokio::test]
#[ignore = "prints timings; run in release with --nocapture"]
async fn startup_and_create_timings() {
    let mut starts = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let server = TestServer::start().await.unwrap();
        server.client().apiserver_version().await.unwrap();
        starts.push(t.elapsed());
        server.shutdown().await;
    }
    starts.sort();
    println!(
        "start to first successful request: min {:?}, median {:?}, max {:?}",
        starts[0], starts[2], starts[4]
    );

    let server = TestServer::start().await.unwrap();
    let counters = install_counter(&server).await;
    let t = Instant::now();
    for i in 0..1000 {
        counters
            .create(
                &PostParams::default(),
                &Counter::new(&format!("c{i}"), CounterSpec { value: i }),
            )
            .await
            .unwrap();
    }
    let sequential = t.elapsed();
    assert_eq!(
        counters.list(&ListParams::default()).await.unwrap().items.len(),
        1000
    );
    println!("1000 custom resource creates, sequential: {sequential:?}");
    let t = Instant::now();
    let futs = (1000..2000).map(|i| {
        let counters = counters.clone();
        async move {
            counters
                .create(
                    &PostParams::default(),
                    &Counter::new(&format!("c{i}"), CounterSpec { value: i }),
                )
                .await
                .unwrap();
        }
    });
    futures::future::join_all(futs).await;
    println!("1000 custom resource creates, concurrent: {:?}", t.elapsed());
    server.shutdown().await;
}
