//! `pods/eviction` honours PodDisruptionBudgets as upstream: an eviction takes one allowed
//! disruption (recorded in `status.disruptedPods`), and an exhausted budget answers 429 with a
//! `DisruptionBudget` cause so that `kubectl drain` retries (kube-rs `Api::evict`).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::kube_client::Running;

async fn running_ready_pod(pods: &Api<Pod>, name: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test]
async fn evictions_take_disruptions_from_the_budget_and_stop_at_zero() {
    let running = Running::start().await;
    // kube-rs retries 429s with backoff by default (minutes in all); this test wants to see them.
    let kc = Kubeconfig::read_from(running.kubeconfig()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    for name in ["web-1", "web-2", "web-3"] {
        running_ready_pod(&pods, name).await;
    }
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .unwrap();
    let created = pdbs.create(&PostParams::default(), &pdb).await.unwrap();

    // Before the disruption controller has seen the budget: 429, still processing.
    let e = pods.evict("web-1", &EvictParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = e else { panic!("{e:?}") };
    assert_eq!(s.code, 429, "{s:?}");
    assert_eq!(s.reason, "TooManyRequests");

    // What the disruption controller would write: one disruption allowed.
    let status = json!({"status": {"observedGeneration": created.metadata.generation,
        "disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3}});
    pdbs.patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    pods.evict("web-1", &EvictParams::default()).await.unwrap();
    assert!(pods.get_opt("web-1").await.unwrap().is_none());
    let after = pdbs.get_status("web").await.unwrap().status.unwrap();
    assert_eq!(after.disruptions_allowed, Some(0));
    assert!(after.disrupted_pods.unwrap().contains_key("web-1"));

    // The budget is spent: the next eviction is refused and the pod stays.
    let e = pods.evict("web-2", &EvictParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = e else { panic!("{e:?}") };
    assert_eq!(s.code, 429);
    assert_eq!(
        s.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let cause = &s.details.unwrap().causes[0];
    assert_eq!(cause.reason, "DisruptionBudget");
    assert_eq!(
        cause.message,
        "The disruption budget web needs 2 healthy pods and has 3 currently"
    );
    assert!(pods.get_opt("web-2").await.unwrap().is_some());

    // A pod no budget covers is evicted at once.
    let lone: Pod = serde_json::from_value(json!({"metadata": {"name": "lone"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &lone).await.unwrap();
    pods.evict("lone", &EvictParams::default()).await.unwrap();
    assert!(pods.get_opt("lone").await.unwrap().is_none());
}
