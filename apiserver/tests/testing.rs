//! `apiserver::testing::TestServer` as an operator author uses it (needs `--features testing`).
//! Its start-up and create timings are measured by `bench/micro` (`--bin testing-server`).

use std::time::Duration;

use apiserver::testing::TestServer;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
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
