//! DaemonSets put one pod on every eligible node (new nodes included, tainted ones left out)
//! and roll a template change; kubectl's rollout commands work on them.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::fixtures::node;
use crate::statefulset::{kubectl, kubectls};
use crate::support::{Cluster, eventually, mark_ready};

/// The node a daemon pod is pinned to by its node affinity.
fn pinned_node(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref())
        .and_then(|r| r.node_selector_terms.first())
        .and_then(|t| t.match_fields.as_ref())
        .and_then(|f| f.first())
        .and_then(|r| r.values.as_ref())
        .and_then(|v| v.first().cloned())
        .unwrap_or_default()
}

/// The live daemon pods by node.
async fn pods_by_node(pods: &Api<Pod>) -> Result<BTreeMap<String, Vec<Pod>>, String> {
    let list = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .map_err(|e| e.to_string())?;
    let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        by_node.entry(pinned_node(&p)).or_default().push(p);
    }
    Ok(by_node)
}

async fn wait_for_nodes(pods: &Api<Pod>, want: &[&str]) -> BTreeMap<String, Vec<Pod>> {
    eventually(&format!("one pod on each of {want:?}"), || async {
        let by_node = pods_by_node(pods).await?;
        let nodes: Vec<&str> = by_node.keys().map(String::as_str).collect();
        if nodes == want && by_node.values().all(|p| p.len() == 1) {
            Ok(by_node)
        } else {
            Err(format!(
                "{:?}",
                by_node.iter().map(|(n, p)| (n, p.len())).collect::<Vec<_>>()
            ))
        }
    })
    .await
}

#[tokio::test]
async fn a_daemon_set_covers_eligible_nodes_and_rolls() {
    let mut cluster = Cluster::start(&["daemonset"]).await;
    let client = cluster.client.clone();
    node(&client, "n1", json!({}), "True").await;
    node(&client, "n2", json!({}), "True").await;
    let sets: Api<DaemonSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "agent", "image": "agent:1"}]}}
        }
    }))
    .unwrap();
    sets.create(&PostParams::default(), &ds).await.unwrap();

    let by_node = wait_for_nodes(&pods, &["n1", "n2"]).await;
    let pod = &by_node["n1"][0];
    let tolerations = pod.spec.as_ref().unwrap().tolerations.clone().unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(
            tolerations.iter().any(|t| t.key.as_deref() == Some(key)),
            "{key}: {tolerations:?}"
        );
    }
    let first_hash = pod.labels()["controller-revision-hash"].clone();
    for p in by_node.values().flatten() {
        mark_ready(&pods, &p.name_any()).await.unwrap();
    }
    eventually("status 2/2 ready", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        let got = (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
            s.updated_number_scheduled,
            s.number_available,
            s.observed_generation,
        );
        if got == (2, 2, 2, Some(2), Some(2), Some(1)) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;

    // A new node gets a pod; a tainted one without a toleration does not.
    node(
        &client,
        "n3",
        json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}),
        "True",
    )
    .await;
    node(&client, "n4", json!({}), "True").await;
    wait_for_nodes(&pods, &["n1", "n2", "n4"]).await;
    eventually("3 desired", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if s.desired_number_scheduled == 3 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert!(!pods_by_node(&pods).await.unwrap().contains_key("n3"));

    // A template change replaces every pod, one node at a time.
    cluster.start_kubelet("default");
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    eventually("every pod at the new revision and available", || async {
        let by_node = pods_by_node(&pods).await?;
        let hashes: Vec<String> = by_node
            .values()
            .flatten()
            .map(|p| p.labels()["controller-revision-hash"].clone())
            .collect();
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if hashes.len() == 3
            && hashes.iter().all(|h| *h != first_hash)
            && s.updated_number_scheduled == Some(3)
            && s.number_available == Some(3)
        {
            Ok(())
        } else {
            Err(format!("{hashes:?} {s:?}"))
        }
    })
    .await;

    for bin in kubectls() {
        let out = kubectl(
            &bin,
            &cluster,
            &["rollout", "status", "daemonset/agent", "--timeout=60s"],
        )
        .await;
        assert!(out.contains("successfully rolled out"), "{out}");
        let history = kubectl(&bin, &cluster, &["rollout", "history", "daemonset/agent"]).await;
        assert!(history.contains("REVISION"), "{history}");
    }
    // Each kubectl undoes the last change: back to agent:1, then forward to agent:2 again.
    for (bin, image) in kubectls().iter().zip(["agent:1", "agent:2"]) {
        kubectl(bin, &cluster, &["rollout", "undo", "daemonset/agent"]).await;
        let out = kubectl(
            bin,
            &cluster,
            &["rollout", "status", "daemonset/agent", "--timeout=60s"],
        )
        .await;
        assert!(out.contains("successfully rolled out"), "{out}");
        eventually(&format!("pods on {image}"), || async {
            let by_node = pods_by_node(&pods).await?;
            let images: Vec<Option<String>> = by_node
                .values()
                .flatten()
                .map(|p| p.spec.as_ref().unwrap().containers[0].image.clone())
                .collect();
            if images.len() == 3 && images.iter().all(|i| i.as_deref() == Some(image)) {
                Ok(())
            } else {
                Err(format!("{images:?}"))
            }
        })
        .await;
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_surging_update_keeps_every_node_served_and_unlabelled_nodes_lose_their_pod() {
    let mut cluster = Cluster::start(&["daemonset"]).await;
    let client = cluster.client.clone();
    for n in ["s1", "s2"] {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
        node(&client, n, json!({}), "True").await;
        nodes
            .patch(
                n,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"role": "agent"}}})),
            )
            .await
            .unwrap();
    }
    cluster.start_kubelet("default");
    let sets: Api<DaemonSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"nodeSelector": {"role": "agent"},
                                  "containers": [{"name": "agent", "image": "agent:1"}]}}
        }
    }))
    .unwrap();
    sets.create(&PostParams::default(), &ds).await.unwrap();
    eventually("2 available", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if s.number_available == Some(2) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    sets.patch(
        "agent",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    // With maxUnavailable 0 every node keeps a ready pod throughout.
    eventually("every node on agent:2", || async {
        let by_node = pods_by_node(&pods).await?;
        for (n, node_pods) in &by_node {
            assert!(
                node_pods.iter().any(crate::support::is_ready) || node_pods.len() > 1,
                "node {n} left without a ready pod"
            );
        }
        let images: Vec<Option<String>> = by_node
            .values()
            .flatten()
            .map(|p| p.spec.as_ref().unwrap().containers[0].image.clone())
            .collect();
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if images.len() == 2
            && images.iter().all(|i| i.as_deref() == Some("agent:2"))
            && s.number_available == Some(2)
        {
            Ok(())
        } else {
            Err(format!("{images:?}"))
        }
    })
    .await;
    // The node loses the label: its pod goes.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    nodes
        .patch(
            "s2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": null}}})),
        )
        .await
        .unwrap();
    wait_for_nodes(&pods, &["s1"]).await;
    eventually("1 desired", || async {
        let s = sets.get("agent").await.unwrap().status.unwrap_or_default();
        if s.desired_number_scheduled == 1 {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    cluster.stop().await;
}
