//! The garbage collector: background, foreground and orphan cascades, dangling owners, owners
//! replaced by another uid, and custom resources of a CRD created after it started.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use controller_manager::garbage_collector::{self, GarbageCollectorConfig};

use crate::poll::{Running, config_map, gone, owned_by, reference, until};

fn config() -> GarbageCollectorConfig {
    GarbageCollectorConfig {
        workers: 4,
        discovery_period: Duration::from_millis(500),
        ..GarbageCollectorConfig::default()
    }
}

fn start(client: &Client) -> Running {
    let c = client.clone();
    Running::spawn(move |t| garbage_collector::run(c, config(), t))
}

async fn setup(ns: &str) -> (apiserver::testing::TestServer, Api<ConfigMap>) {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    crate::poll::namespace(&server.client(), ns).await;
    let cms = Api::namespaced(server.client(), ns);
    (server, cms)
}

#[tokio::test]
async fn background_deletion_removes_dependents_after_the_owner() {
    let (server, cms) = setup("gc-bg").await;
    let gc = start(&server.client());
    let owner = config_map(&cms, "owner", vec![], &[]).await;
    config_map(&cms, "d1", vec![owned_by(&owner, false)], &[]).await;
    config_map(&cms, "d2", vec![owned_by(&owner, true)], &[]).await;
    let bystander = config_map(&cms, "bystander", vec![], &[]).await;
    cms.delete("owner", &DeleteParams::background()).await.unwrap();
    gone(&cms, "d1", 30).await;
    gone(&cms, "d2", 30).await;
    assert_eq!(cms.get("bystander").await.unwrap().uid(), bystander.uid());
    gc.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn foreground_deletion_deletes_blocking_dependents_first() {
    let (server, cms) = setup("gc-fg").await;
    let gc = start(&server.client());
    let owner = config_map(&cms, "owner", vec![], &[]).await;
    // The blocking dependent holds on with a finalizer of its own until the test lets it go.
    config_map(
        &cms,
        "blocker",
        vec![owned_by(&owner, true)],
        &["example.com/hold"],
    )
    .await;
    config_map(&cms, "plain", vec![owned_by(&owner, false)], &[]).await;
    let deleted = cms.delete("owner", &DeleteParams::foreground()).await.unwrap();
    let owner_now = deleted.left().expect("the owner stays while its dependents go");
    assert!(owner_now.finalizers().contains(&"foregroundDeletion".to_string()));
    // The collector deletes the dependents; the owner waits for the blocking one.
    until("the blocker to be marked for deletion", 30, || async {
        cms.get("blocker")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    gone(&cms, "plain", 30).await;
    let waiting = cms
        .get("owner")
        .await
        .expect("the owner waits for its blocking dependent");
    assert!(waiting.finalizers().contains(&"foregroundDeletion".to_string()));
    cms.patch(
        "blocker",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    gone(&cms, "blocker", 30).await;
    gone(&cms, "owner", 30).await;
    gc.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn foreground_deletion_walks_down_a_chain_of_owners() {
    let (server, cms) = setup("gc-chain").await;
    let gc = start(&server.client());
    let top = config_map(&cms, "top", vec![], &[]).await;
    let mid = config_map(&cms, "mid", vec![owned_by(&top, true)], &[]).await;
    config_map(&cms, "leaf", vec![owned_by(&mid, true)], &["example.com/hold"]).await;
    cms.delete("top", &DeleteParams::foreground()).await.unwrap();
    // The middle object has dependents of its own: it is deleted in the foreground too.
    let mid_now = until("the middle object deleting in the foreground", 30, || async {
        let m = cms.get("mid").await.unwrap();
        (m.metadata.deletion_timestamp.is_some()
            && m.finalizers().contains(&"foregroundDeletion".to_string()))
        .then_some(m)
    })
    .await;
    assert_eq!(mid_now.uid(), mid.uid());
    until("the leaf to be marked for deletion", 30, || async {
        cms.get("leaf")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    assert!(cms.get("top").await.is_ok(), "the top waits for the chain");
    cms.patch(
        "leaf",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    gone(&cms, "leaf", 30).await;
    gone(&cms, "mid", 30).await;
    gone(&cms, "top", 30).await;
    gc.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn orphan_deletion_releases_dependents() {
    let (server, cms) = setup("gc-orphan").await;
    let gc = start(&server.client());
    let owner = config_map(&cms, "owner", vec![], &[]).await;
    let other = config_map(&cms, "other-owner", vec![], &[]).await;
    config_map(&cms, "only", vec![owned_by(&owner, true)], &[]).await;
    config_map(
        &cms,
        "shared",
        vec![owned_by(&owner, false), owned_by(&other, false)],
        &[],
    )
    .await;
    let deleted = cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    assert!(
        deleted
            .left()
            .unwrap()
            .finalizers()
            .contains(&"orphan".to_string())
    );
    gone(&cms, "owner", 30).await;
    let only = cms.get("only").await.expect("the dependent stays");
    assert!(
        only.owner_references().is_empty(),
        "{:?}",
        only.owner_references()
    );
    let shared = cms.get("shared").await.expect("the dependent stays");
    let owners: Vec<&str> = shared
        .owner_references()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(owners, ["other-owner"]);
    gc.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dangling_and_replaced_owners_are_collected_and_live_ones_kept() {
    let (server, cms) = setup("gc-dangling").await;
    let gc = start(&server.client());
    let live = config_map(&cms, "live", vec![], &[]).await;
    // An owner that never existed.
    config_map(
        &cms,
        "orphan-of-ghost",
        vec![reference(
            "v1",
            "ConfigMap",
            "ghost",
            "6d4c2b7e-0000-4000-8000-000000000001",
            false,
        )],
        &[],
    )
    .await;
    // An owner of that name exists, with another uid (it was replaced).
    config_map(
        &cms,
        "orphan-of-old-live",
        vec![reference(
            "v1",
            "ConfigMap",
            "live",
            "6d4c2b7e-0000-4000-8000-000000000002",
            false,
        )],
        &[],
    )
    .await;
    // One live and one gone owner: only the dangling reference goes.
    config_map(
        &cms,
        "half",
        vec![
            owned_by(&live, false),
            reference(
                "v1",
                "ConfigMap",
                "ghost",
                "6d4c2b7e-0000-4000-8000-000000000001",
                false,
            ),
        ],
        &[],
    )
    .await;
    config_map(&cms, "kept", vec![owned_by(&live, false)], &[]).await;
    gone(&cms, "orphan-of-ghost", 30).await;
    gone(&cms, "orphan-of-old-live", 30).await;
    let half = until("the dangling reference to be removed", 30, || async {
        let half = cms.get("half").await.unwrap();
        (half.owner_references().len() == 1).then_some(half)
    })
    .await;
    assert_eq!(half.owner_references()[0].name, "live");
    assert!(cms.get("kept").await.is_ok());
    gc.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn custom_resources_of_a_new_crd_are_collected() {
    let (server, _) = setup("gc-crd").await;
    let client = server.client();
    let gc = start(&client);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    kube::runtime::wait::await_condition(
        crds,
        "widgets.example.com",
        kube::runtime::wait::conditions::is_crd_established(),
    )
    .await
    .unwrap();
    let ar = ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "gc-crd", &ar);
    let mut owner = DynamicObject::new("owner", &ar);
    owner.data = json!({"spec": {}});
    let owner = widgets.create(&PostParams::default(), &owner).await.unwrap();
    let mut dep = DynamicObject::new("dependent", &ar);
    dep.metadata.owner_references = Some(vec![reference(
        "example.com/v1",
        "Widget",
        "owner",
        &owner.uid().unwrap(),
        true,
    )]);
    widgets.create(&PostParams::default(), &dep).await.unwrap();
    // A ConfigMap owned by the custom resource too.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "gc-crd");
    config_map(
        &cms,
        "settings",
        vec![reference(
            "example.com/v1",
            "Widget",
            "owner",
            &owner.uid().unwrap(),
            false,
        )],
        &[],
    )
    .await;
    widgets
        .delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    gone(&widgets, "dependent", 30).await;
    gone(&cms, "settings", 30).await;
    gone(&widgets, "owner", 30).await;
    gc.stop().await;
    server.shutdown().await;
}
