//! Start-up and create timings of `apiserver::testing::TestServer` (the in-process server operator
//! tests use): start to first successful request, then 1 000 custom resource creates sequentially
//! and 1 000 concurrently.
//!
//! ```text
//! cargo run -p keelson-micro-bench --release --bin testing-server
//! ```

use std::time::{Duration, Instant};

use apiserver::testing::TestServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

const CREATES: usize = 1000;

/// The `counters.bench.keelson.dev` resource.
fn counters() -> ApiResource {
    ApiResource {
        group: "bench.keelson.dev".into(),
        version: "v1".into(),
        api_version: "bench.keelson.dev/v1".into(),
        kind: "Counter".into(),
        plural: "counters".into(),
    }
}

/// Installs the Counter CRD, waits until it is established, and returns its API.
async fn install(server: &TestServer) -> Api<DynamicObject> {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    let crd = serde_json::from_value(json!({
        "metadata": {"name": "counters.bench.keelson.dev"},
        "spec": {"group": "bench.keelson.dev", "scope": "Namespaced",
            "names": {"plural": "counters", "singular": "counter", "kind": "Counter"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "value": {"type": "integer"}}}}}}}]}
    }))
    .expect("a CRD");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("CRD created");
    let established = await_condition(
        crds,
        "counters.bench.keelson.dev",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(10), established)
        .await
        .expect("CRD established in time")
        .expect("CRD watch");
    Api::namespaced_with(server.client(), "default", &counters())
}

/// Creates counters `c<from>` .. `c<from + CREATES>`, `concurrent`ly or one after another.
async fn create(api: &Api<DynamicObject>, from: usize, concurrent: bool) -> Duration {
    let one = |i: usize| {
        let api = api.clone();
        async move {
            let obj = DynamicObject::new(&format!("c{i}"), &counters()).data(json!({"spec": {"value": i}}));
            api.create(&PostParams::default(), &obj).await.expect("created");
        }
    };
    let t = Instant::now();
    if concurrent {
        futures::future::join_all((from..from + CREATES).map(one)).await;
    } else {
        for i in from..from + CREATES {
            one(i).await;
        }
    }
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let mut starts = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let server = TestServer::start().await.expect("server starts");
        server.client().apiserver_version().await.expect("version");
        starts.push(t.elapsed());
        server.shutdown().await;
    }
    starts.sort();
    println!(
        "start to first successful request: min {:?}, median {:?}, max {:?}",
        starts[0], starts[2], starts[4]
    );
    let server = TestServer::start().await.expect("server starts");
    let api = install(&server).await;
    let sequential = create(&api, 0, false).await;
    println!("{CREATES} custom resource creates, sequential: {sequential:?}");
    let concurrent = create(&api, CREATES, true).await;
    println!("{CREATES} custom resource creates, concurrent: {concurrent:?}");
    let listed = api.list(&ListParams::default()).await.expect("list").items.len();
    assert_eq!(listed, 2 * CREATES);
    server.shutdown().await;
}
