//! Preemption: a higher-priority pod evicts a lower-priority one.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::{Harness, until};

#[tokio::test]
async fn a_higher_priority_pod_preempts_a_lower_priority_one() {
    let h = Harness::start(scheduler::Config::default()).await;
    let classes: Api<PriorityClass> = Api::all(h.admin.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "high"}, "value": 1000})).unwrap(),
        )
        .await
        .unwrap();
    h.node("n", "1", json!({})).await;
    h.pod("low", "800m", json!({})).await;
    assert_eq!(h.bound("low").await, "n");
    // The API server's Priority admission gives the pod its class's value.
    h.pod("high", "800m", json!({"spec": {"priorityClassName": "high"}}))
        .await;
    let pods = h.pods();
    let victim: Pod = until("low marked and deleted gracefully", || async {
        let p = pods.get("low").await.ok()?;
        p.metadata.deletion_timestamp.is_some().then_some(p)
    })
    .await;
    let target = victim
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "DisruptionTarget"))
        .expect("DisruptionTarget condition");
    assert_eq!(
        (target.status.as_str(), target.reason.as_deref()),
        ("True", Some("PreemptionByScheduler"))
    );
    let nominated = until("high nominated", || async {
        pods.get("high").await.ok()?.status?.nominated_node_name
    })
    .await;
    assert_eq!(nominated, "n");
    assert!(h.event("low", "Preempted").await.starts_with("Preempted by pod "));
    // The kubelet's part: the victim's containers stop and the pod goes away.
    pods.delete("low", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    assert_eq!(h.bound("high").await, "n");
    h.stop().await;
}

#[tokio::test]
async fn preemption_policy_never_does_not_preempt() {
    let h = Harness::start(scheduler::Config::default()).await;
    h.node("n", "1", json!({})).await;
    h.pod("low", "800m", json!({})).await;
    h.bound("low").await;
    let classes: Api<PriorityClass> = Api::all(h.admin.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "polite"}, "value": 1000, "preemptionPolicy": "Never"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    h.pod("polite", "800m", json!({"spec": {"priorityClassName": "polite"}}))
        .await;
    assert_eq!(
        h.unscheduled("polite", "Unschedulable").await,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.."
    );
    let low = h.pods().get("low").await.unwrap();
    assert!(low.metadata.deletion_timestamp.is_none());
    h.stop().await;
}
