//! The node lifecycle controller: a node whose Lease stops renewing goes Unknown, gets the
//! unreachable taints, its pods go not Ready and are evicted after their toleration; a node that
//! comes back loses the taints.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use controller_manager::node_lifecycle::{self, NodeLifecycleConfig};

use crate::fixtures::{node, pod, renew, set_ready};
use crate::poll::{Running, until};

fn unreachable_taints(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.key == "node.kubernetes.io/unreachable")
        .map(|t| t.effect)
        .collect()
}

fn pod_ready(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test]
async fn a_silent_node_goes_unknown_is_tainted_its_pods_evicted_and_recovers() {
    let server = apiserver::testing::TestServer::start()
        .await
        .expect("server starts");
    let client = server.client();
    node(&client, "alive", json!({}), "True").await;
    node(&client, "dying", json!({}), "True").await;
    renew(&client, "alive").await;
    renew(&client, "dying").await;
    // The kubelet of "alive" keeps renewing its Lease.
    let heart = {
        let c = client.clone();
        tokio::spawn(async move {
            loop {
                renew(&c, "alive").await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let quick = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                        "effect": "NoExecute", "tolerationSeconds": 2}]);
    pod(&client, "default", "quick", "dying", quick).await;
    pod(&client, "default", "patient", "dying", json!([])).await;
    pod(&client, "default", "elsewhere", "alive", json!([])).await;

    let config = NodeLifecycleConfig {
        node_monitor_period: Duration::from_millis(200),
        node_monitor_grace_period: Duration::from_secs(2),
        node_startup_grace_period: Duration::from_secs(2),
        node_eviction_rate: 100.0,
        ..NodeLifecycleConfig::default()
    };
    let c = client.clone();
    let controller = Running::spawn(move |t| node_lifecycle::run(c, config, t));

    let nodes: Api<Node> = Api::all(client.clone());
    let tainted = until("the silent node Unknown and tainted unreachable", 30, || async {
        let n = nodes.get("dying").await.unwrap();
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")?
            .clone();
        let mut effects = unreachable_taints(&n);
        effects.sort();
        (ready.status == "Unknown" && effects == ["NoExecute", "NoSchedule"]).then_some(ready)
    })
    .await;
    assert_eq!(tainted.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        tainted.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Deleted gracefully: with no kubelet to confirm, the pod stays Terminating (as upstream).
    let evicted = until("the pod tolerating 2 s deleted", 30, || async {
        let p = pods.get_opt("quick").await.unwrap();
        match p {
            None => Some(None),
            Some(p) => p.metadata.deletion_timestamp.is_some().then_some(Some(p)),
        }
    })
    .await;
    if let Some(p) = evicted {
        let target = p
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "DisruptionTarget");
        assert_eq!(
            target.and_then(|c| c.reason).as_deref(),
            Some("DeletionByTaintManager")
        );
    }
    let patient = pods.get("patient").await.expect("the pod tolerating 300 s stays");
    assert!(patient.metadata.deletion_timestamp.is_none());
    assert_eq!(
        pod_ready(&patient).as_deref(),
        Some("False"),
        "pods of the node are marked not Ready"
    );
    let elsewhere = pods.get("elsewhere").await.unwrap();
    assert_eq!(pod_ready(&elsewhere).as_deref(), Some("True"));
    let alive = nodes.get("alive").await.unwrap();
    assert!(unreachable_taints(&alive).is_empty());
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    until("a TaintManagerEviction event for the evicted pod", 30, || async {
        let list = events.list(&Default::default()).await.unwrap();
        list.items.into_iter().find(|e| {
            e.reason.as_deref() == Some("TaintManagerEviction")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("quick")
        })
    })
    .await;

    // Cordoning a node taints it unschedulable.
    nodes
        .patch(
            "alive",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    until("the unschedulable taint", 30, || async {
        let n = nodes.get("alive").await.unwrap();
        let taints = n.spec?.taints?;
        taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unschedulable" && t.effect == "NoSchedule")
            .then_some(())
    })
    .await;

    // The kubelet comes back: the taints go and the patient pod is not evicted.
    renew(&client, "dying").await;
    set_ready(&client, "dying", "True").await;
    until("the recovered node untainted", 30, || async {
        let n = nodes.get("dying").await.unwrap();
        unreachable_taints(&n).is_empty().then_some(())
    })
    .await;
    let patient = pods.get("patient").await.unwrap();
    assert!(
        patient.metadata.deletion_timestamp.is_none(),
        "the eviction was cancelled"
    );

    // A kubelet that reports NotReady (while renewing its Lease) gets the not-ready taints.
    let heart2 = {
        let c = client.clone();
        tokio::spawn(async move {
            loop {
                renew(&c, "dying").await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    set_ready(&client, "dying", "False").await;
    until("the not-ready taints", 30, || async {
        let n = nodes.get("dying").await.unwrap();
        let mut effects: Vec<String> = n
            .spec?
            .taints?
            .into_iter()
            .filter(|t| t.key == "node.kubernetes.io/not-ready")
            .map(|t| t.effect)
            .collect();
        effects.sort();
        (effects == ["NoExecute", "NoSchedule"]).then_some(())
    })
    .await;
    assert!(unreachable_taints(&nodes.get("dying").await.unwrap()).is_empty());
    heart2.abort();
    heart.abort();
    controller.stop().await;
    server.shutdown().await;
}
