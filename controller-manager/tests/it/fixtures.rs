//! Nodes, Leases and pods for the node controllers' tests.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// Creates node `name` with `spec`, then posts a Ready=`ready` status with a fresh heartbeat.
pub async fn node(client: &Client, name: &str, spec: Value, ready: &str) -> Node {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("node created");
    set_ready(client, name, ready).await
}

/// Posts the node's Ready condition as `status` with a fresh heartbeat.
pub async fn set_ready(client: &Client, name: &str, status: &str) -> Node {
    let now = Timestamp::now().to_string();
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": "KubeletReady", "message": "test",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }]}});
    Api::<Node>::all(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("node status posted")
}

/// Creates or renews the node's Lease in kube-node-lease.
pub async fn renew(client: &Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}});
    leases
        .patch(
            name,
            &PatchParams::apply("test-kubelet").force(),
            &Patch::Apply(lease),
        )
        .await
        .expect("lease renewed");
}

/// Creates pod `name` in `ns` bound to `node` (with extra `tolerations`), Running and Ready.
pub async fn pod(client: &Client, ns: &str, name: &str, node: &str, tolerations: Value) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    set_phase(client, ns, name, "Running").await
}

/// Sets the pod's phase (and Ready=True when Running).
pub async fn set_phase(client: &Client, ns: &str, name: &str, phase: &str) -> Pod {
    let ready = if phase == "Running" { "True" } else { "False" };
    let patch = json!({"status": {"phase": phase, "conditions": [{
        "type": "Ready", "status": ready, "lastTransitionTime": Timestamp::now().to_string(),
    }]}});
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("pod status set")
}
