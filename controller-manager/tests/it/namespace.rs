//! Namespace deletion: every namespaced object (built-in and custom) goes, the conditions tell
//! what remains, and the namespace disappears once its `kubernetes` finalizer is removed.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use controller_manager::namespace::{self, NamespaceConfig};

use crate::poll::{Running, config_map, gone, until};

fn start(client: &Client) -> Running {
    let c = client.clone();
    let config = NamespaceConfig {
        deletion_grace_period: Duration::from_millis(100),
        ..NamespaceConfig::default()
    };
    Running::spawn(move |t| namespace::run(c, config, t))
}

async fn gadgets(client: &Client) -> ApiResource {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    kube::runtime::wait::await_condition(
        crds,
        "gadgets.example.com",
        kube::runtime::wait::conditions::is_crd_established(),
    )
    .await
    .unwrap();
    ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Gadget".into(),
        plural: "gadgets".into(),
    }
}

async fn gadget(api: &Api<DynamicObject>, ar: &ApiResource, name: &str, finalizers: Option<Vec<String>>) {
    let mut g = DynamicObject::new(name, ar);
    g.metadata.finalizers = finalizers;
    g.data = json!({"spec": {"size": 1}});
    api.create(&PostParams::default(), &g).await.unwrap();
}

#[tokio::test]
async fn a_deleted_namespace_is_emptied_and_disappears() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let ar = gadgets(&client).await;
    let controller = start(&client);
    crate::poll::namespace(&client, "doomed").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    config_map(&cms, "one", vec![], &[]).await;
    config_map(&cms, "two", vec![], &[]).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "doomed");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("password".to_string(), "hunter2".to_string())].into()),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "doomed", &ar);
    gadget(&widgets, &ar, "g1", None).await;
    // A namespace elsewhere is left alone.
    crate::poll::namespace(&client, "bystander").await;
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "bystander");
    config_map(&other, "stays", vec![], &[]).await;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    gone(&namespaces, "doomed", 30).await;
    assert!(cms.list(&Default::default()).await.unwrap().items.is_empty());
    assert!(secrets.list(&Default::default()).await.unwrap().items.is_empty());
    assert!(widgets.list(&Default::default()).await.unwrap().items.is_empty());
    assert!(other.get("stays").await.is_ok());
    assert!(namespaces.get("bystander").await.is_ok());
    controller.stop().await;
    server.shutdown().await;
}

#[tokio::test]
async fn content_held_by_a_finalizer_is_reported_until_it_goes() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let ar = gadgets(&client).await;
    let controller = start(&client);
    crate::poll::namespace(&client, "held").await;
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "held", &ar);
    gadget(&widgets, &ar, "stuck", Some(vec!["example.com/hold".into()])).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete("held", &DeleteParams::default()).await.unwrap();
    let conditions = until("the remaining-content conditions", 30, || async {
        let ns = namespaces.get("held").await.unwrap();
        let conds = ns.status.and_then(|s| s.conditions).unwrap_or_default();
        conds
            .iter()
            .any(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
            .then_some(conds)
    })
    .await;
    let find = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap().clone();
    let remaining = find("NamespaceContentRemaining");
    assert_eq!(remaining.status, "True");
    assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
    assert_eq!(
        remaining.message.as_deref(),
        Some("Some resources are remaining: gadgets.example.com has 1 resource instances")
    );
    let fins = find("NamespaceFinalizersRemaining");
    assert_eq!(fins.reason.as_deref(), Some("SomeFinalizerRemain"));
    assert_eq!(
        fins.message.as_deref(),
        Some("Some finalizers are remaining: example.com/hold in 1 resource instances")
    );
    let discovery = find("NamespaceDeletionDiscoveryFailure");
    assert_eq!(
        (discovery.status.as_str(), discovery.reason.as_deref()),
        ("False", Some("ResourcesDiscovered"))
    );
    let content = find("NamespaceDeletionContentFailure");
    assert_eq!(
        (content.status.as_str(), content.reason.as_deref()),
        ("False", Some("ContentDeleted"))
    );
    assert!(
        widgets
            .get("stuck")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    // Releasing the finalizer lets the namespace go (after upstream's requeue delay).
    widgets
        .patch(
            "stuck",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    gone(&namespaces, "held", 30).await;
    controller.stop().await;
    server.shutdown().await;
}
