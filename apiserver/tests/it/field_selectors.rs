//! Field selectors read an absent field as its type's zero value, as upstream's typed field sets
//! do (kube-rs's own cordon test counts schedulable nodes with `spec.unschedulable=false`).

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::kube_client::Running;

async fn names<K>(api: &Api<K>, fields: &str) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut names: Vec<String> = api
        .list(&ListParams::default().fields(fields))
        .await
        .unwrap_or_else(|e| panic!("{fields}: {e}"))
        .items
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn cordon_counts_schedulable_nodes_with_kube_rs() {
    let running = Running::start().await;
    let client = running.client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    for name in ["node-a", "node-b", "node-c"] {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    let all = nodes.list(&ListParams::default()).await.unwrap().items.len();
    let schedulable = "spec.unschedulable==false";
    // None of them sets spec.unschedulable: all are schedulable.
    assert_eq!(names(&nodes, schedulable).await.len(), all);
    assert_eq!(names(&nodes, "spec.unschedulable!=true").await.len(), all);
    assert!(names(&nodes, "spec.unschedulable=true").await.is_empty());

    // A watch filtered the same way sees the cordoned node leave the set.
    let mut watch = nodes
        .watch(&WatchParams::default().fields(schedulable), "0")
        .await
        .unwrap()
        .boxed();
    let mut initial = 0;
    while initial < all {
        match watch.try_next().await.unwrap() {
            Some(WatchEvent::Added(_)) => initial += 1,
            other => panic!("unexpected {other:?}"),
        }
    }

    nodes.cordon("node-b").await.unwrap();
    assert_eq!(names(&nodes, schedulable).await.len(), all - 1);
    assert_eq!(names(&nodes, "spec.unschedulable=true").await, ["node-b"]);
    match watch.try_next().await.unwrap() {
        Some(WatchEvent::Deleted(n)) => assert_eq!(n.metadata.name.as_deref(), Some("node-b")),
        other => panic!("expected node-b to leave the watch, got {other:?}"),
    }

    nodes.uncordon("node-b").await.unwrap();
    assert_eq!(names(&nodes, schedulable).await.len(), all);
    match watch.try_next().await.unwrap() {
        Some(WatchEvent::Added(n)) => assert_eq!(n.metadata.name.as_deref(), Some("node-b")),
        other => panic!("expected node-b back in the watch, got {other:?}"),
    }
}

#[tokio::test]
async fn zero_values_of_pod_and_event_fields_with_kube_rs() {
    let running = Running::start().await;
    let client = running.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, host_network) in [("plain", None), ("host", Some(true))] {
        let mut pod = json!({"metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if let Some(h) = host_network {
            pod["spec"]["hostNetwork"] = json!(h);
        }
        let pod: Pod = serde_json::from_value(pod).unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    assert_eq!(names(&pods, "spec.hostNetwork=false").await, ["plain"]);
    assert_eq!(names(&pods, "spec.hostNetwork!=false").await, ["host"]);
    assert_eq!(
        names(&pods, "spec.nodeName=,status.podIP=").await,
        ["host", "plain"]
    );
    assert_eq!(names(&pods, "spec.host=").await, ["host", "plain"]);

    // An Event's `source` falls back to its reporting component.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "plain", "namespace": "default"},
        "reason": "Started", "reportingComponent": "kubelet", "reportingInstance": "node-a",
        "type": "Normal"
    }))
    .unwrap();
    events.create(&PostParams::default(), &event).await.unwrap();
    assert_eq!(
        names(&events, "source=kubelet,involvedObject.kind=Pod").await,
        ["e1"]
    );

    // Unsupported labels are refused with upstream's texts.
    let err = pods
        .list(&ListParams::default().fields("spec.containers=x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400 && s.message == "field label not supported: spec.containers"),
        "{err:?}"
    );
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "default");
    let err = cms
        .list(&ListParams::default().fields("data.x=1"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400
            && s.message == r#""data.x" is not a known field selector: only "metadata.name", "metadata.namespace""#),
        "{err:?}"
    );
}
