//! Binding, unschedulable reporting, scheduling gates and profiles.

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::Harness;

#[tokio::test]
async fn pods_are_bound_spread_and_announced() {
    let h = Harness::start(scheduler::Config::default()).await;
    h.node("n1", "4", json!({})).await;
    h.node("n2", "4", json!({})).await;
    for i in 0..6 {
        h.pod(&format!("p{i}"), "500m", json!({})).await;
    }
    // Another scheduler's pod is left alone.
    h.pod(
        "foreign",
        "100m",
        json!({"spec": {"schedulerName": "someone-else"}}),
    )
    .await;
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..6 {
        *per_node.entry(h.bound(&format!("p{i}")).await).or_default() += 1;
    }
    assert_eq!(
        per_node.len(),
        2,
        "least-allocated scoring spreads pods: {per_node:?}"
    );
    let node = h.node_of("p0").await.unwrap();
    assert_eq!(
        h.event("p0", "Scheduled").await,
        format!("Successfully assigned default/p0 to {node}")
    );
    assert_eq!(h.node_of("foreign").await, None);
    h.stop().await;
}

#[tokio::test]
async fn an_unschedulable_pod_says_why_and_is_scheduled_when_a_node_fits() {
    let h = Harness::start(scheduler::Config::default()).await;
    h.node("small", "1", json!({})).await;
    h.node(
        "tainted",
        "8",
        json!({"spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}),
    )
    .await;
    h.pod("big", "2", json!({})).await;
    // The double period is upstream's (the PostFilter message ends with one, FitError adds
    // another); more CPU than the node has at all is unresolvable by preemption.
    let expected = "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: infra}. \
                    preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling..";
    assert_eq!(h.unscheduled("big", "Unschedulable").await, expected);
    assert_eq!(h.event("big", "FailedScheduling").await, expected);
    // A node that fits arrives: the pod is moved back and bound there.
    h.node("large", "4", json!({})).await;
    assert_eq!(h.bound("big").await, "large");
    h.stop().await;
}

#[tokio::test]
async fn a_gated_pod_waits_until_its_gates_are_removed() {
    let h = Harness::start(scheduler::Config::default()).await;
    h.node("n", "4", json!({})).await;
    h.pod(
        "gated",
        "100m",
        json!({"spec": {"schedulingGates": [{"name": "example.com/hold"}]}}),
    )
    .await;
    assert_eq!(
        h.unscheduled("gated", "SchedulingGated").await,
        "Scheduling is blocked due to non-empty scheduling gates"
    );
    // A pod created after it is scheduled; the gated one still waits.
    h.pod("after", "100m", json!({})).await;
    h.bound("after").await;
    assert_eq!(h.node_of("gated").await, None);
    h.pods()
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedulingGates": null}})),
        )
        .await
        .expect("remove the gates");
    assert_eq!(h.bound("gated").await, "n");
    h.stop().await;
}

#[tokio::test]
async fn each_profile_serves_its_scheduler_name() {
    let mut other = scheduler::Profile::default_profile();
    other.scheduler_name = "other-scheduler".into();
    let config = scheduler::Config {
        profiles: vec![scheduler::Profile::default_profile(), other],
        ..scheduler::Config::default()
    };
    let h = Harness::start(config).await;
    h.node("n", "2", json!({})).await;
    h.pod("a", "100m", json!({})).await;
    h.pod("b", "100m", json!({"spec": {"schedulerName": "other-scheduler"}}))
        .await;
    assert_eq!(h.bound("a").await, "n");
    assert_eq!(h.bound("b").await, "n");
    h.stop().await;
}
