//! The disruption controller against a real API server: a budget's status follows its pods,
//! percentages count against the controller's scale, and evictions honour the budget.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use kube::api::{Api, EvictParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use controller_manager::disruption::{self, DisruptionConfig};

use crate::endpoints::{pod, set_status};
use crate::poll::{Running, until};

async fn budget(client: &Client, name: &str, spec: serde_json::Value) -> PodDisruptionBudget {
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &pdb)
        .await
        .expect("budget created")
}

fn condition(s: &PodDisruptionBudgetStatus) -> Option<(String, String)> {
    let c = s
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionAllowed")?;
    Some((c.status.clone(), c.reason.clone()))
}

/// Waits until budget `name` was observed at its generation and `check` holds.
async fn status_until(
    api: &Api<PodDisruptionBudget>,
    name: &str,
    what: &str,
    check: impl Fn(&PodDisruptionBudgetStatus) -> bool,
) -> PodDisruptionBudgetStatus {
    until(what, 30, || async {
        let pdb = api.get(name).await.unwrap();
        let s = pdb.status?;
        (s.observed_generation == pdb.metadata.generation && check(&s)).then_some(s)
    })
    .await
}

/// Three ready pods owned by a ReplicaSet of scale 4 (nothing runs the ReplicaSet here).
async fn three_pods_of_a_replica_set(client: &Client) -> Api<Pod> {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
    }))
    .unwrap();
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .expect("replica set created");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let owner = json!({"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
            "uid": rs.uid().unwrap(), "controller": true}]});
        let mut p = pod(&pods, name, 8080, json!({})).await;
        p.metadata.owner_references = serde_json::from_value(owner["ownerReferences"].clone()).unwrap();
        pods.replace(name, &PostParams::default(), &p).await.unwrap();
        set_status(&pods, name, &format!("10.3.0.{}", i + 1), true).await;
    }
    pods
}

#[tokio::test]
async fn budget_status_follows_pods_and_the_controllers_scale() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    let pods = three_pods_of_a_replica_set(&client).await;
    let c = client.clone();
    let controller = Running::spawn(move |t| disruption::run(c, DisruptionConfig::default(), t));
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");

    budget(
        &client,
        "min",
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    let s = status_until(&pdbs, "min", "minAvailable 2 computed", |s| {
        s.expected_pods == Some(3)
    })
    .await;
    assert_eq!(
        (s.current_healthy, s.desired_healthy, s.disruptions_allowed),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(condition(&s), Some(("True".into(), "SufficientPods".into())));

    // Percentages and maxUnavailable count against the ReplicaSet's 4 replicas.
    budget(
        &client,
        "pct",
        json!({"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    let s = status_until(&pdbs, "pct", "maxUnavailable 50% computed", |s| {
        s.expected_pods == Some(4)
    })
    .await;
    assert_eq!((s.desired_healthy, s.disruptions_allowed), (Some(2), Some(1)));

    // One pod turns unready: the minAvailable budget has no room left.
    set_status(&pods, "c", "10.3.0.3", false).await;
    let s = status_until(&pdbs, "min", "no disruption allowed", |s| {
        s.current_healthy == Some(2)
    })
    .await;
    assert_eq!(s.disruptions_allowed, Some(0));
    assert_eq!(condition(&s), Some(("False".into(), "InsufficientPods".into())));

    // A pod without a controller cannot be counted against a scale: SyncFailed.
    pod(&pods, "loose", 8080, json!({})).await;
    let s = status_until(&pdbs, "pct", "sync failed", |s| {
        condition(s).is_some_and(|(_, r)| r == "SyncFailed")
    })
    .await;
    assert_eq!(s.disruptions_allowed, Some(0));
    let message = s.conditions.unwrap()[0].message.clone();
    assert!(
        message.contains("found no controller ref for pod \"loose\""),
        "{message}"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    until("a CalculateExpectedPodCountFailed event", 30, || async {
        let list = events.list(&Default::default()).await.unwrap();
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("CalculateExpectedPodCountFailed")
                && e.involved_object.name.as_deref() == Some("pct")
        })
    })
    .await;

    controller.stop().await;
    server.shutdown().await;
}

/// The API server's `pods/eviction` takes one allowed disruption, then answers 429.
#[tokio::test]

async fn an_eviction_is_refused_when_the_budget_is_spent() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    // kube-rs retries 429s for minutes unless told not to.
    let mut config = kube::Config::from_custom_kubeconfig(server.kubeconfig().clone(), &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let client = Client::try_from(config).unwrap();
    let pods = three_pods_of_a_replica_set(&client).await;
    let c = client.clone();
    let controller = Running::spawn(move |t| disruption::run(c, DisruptionConfig::default(), t));
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    budget(
        &client,
        "min",
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    status_until(&pdbs, "min", "one disruption allowed", |s| {
        s.disruptions_allowed == Some(1)
    })
    .await;

    pods.evict("a", &EvictParams::default())
        .await
        .expect("the first eviction fits the budget");
    let s = status_until(&pdbs, "min", "the budget spent", |s| {
        s.disruptions_allowed == Some(0)
    })
    .await;
    assert_eq!(s.desired_healthy, Some(2));
    match pods.evict("b", &EvictParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 429, "{status:?}"),
        other => panic!("expected 429, got {other:?}"),
    }
    assert!(pods.get_opt("b").await.unwrap().is_some(), "b is kept");
    controller.stop().await;
    server.shutdown().await;
}
