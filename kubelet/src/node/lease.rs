//! The node's heartbeat: a `coordination.k8s.io/v1` Lease named after the node in
//! `kube-node-lease`, held by the node, owned by the Node object (so it goes with it), renewed
//! every quarter of its duration (upstream: 40 s lease, renewed every 10 s).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};

/// The namespace of node leases.
pub const NAMESPACE: &str = "kube-node-lease";
/// Upstream's `nodeLeaseDurationSeconds`.
pub const DEFAULT_DURATION_SECONDS: i32 = 40;

/// The renew interval for a lease duration: a quarter of it, as upstream's kubelet.
pub fn renew_interval(duration_seconds: i32) -> Duration {
    Duration::from_secs_f64(f64::from(duration_seconds.max(1)) * 0.25)
}

/// A new Lease for `node` (with uid `node_uid`, for the owner reference) renewed at `now`.
pub fn new_lease(node: &str, node_uid: Option<&str>, duration_seconds: i32, now: MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.to_string(),
                    uid: uid.to_string(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_string()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(now),
            ..LeaseSpec::default()
        }),
    }
}

/// The merge patch that renews `node`'s lease at `now`.
pub fn renewal(node: &str, duration_seconds: i32, now: &MicroTime) -> serde_json::Value {
    serde_json::json!({
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": now,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_timings() {
        assert_eq!(renew_interval(DEFAULT_DURATION_SECONDS), Duration::from_secs(10));
    }

    #[test]
    fn the_lease_is_held_and_owned_by_its_node() {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let l = new_lease("sim-0", Some("u-1"), 40, now.clone());
        let spec = l.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("sim-0"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        let owner = &l.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "u-1"));
        let patch = renewal("sim-0", 40, &now);
        assert_eq!(patch["spec"]["holderIdentity"], "sim-0");
        assert!(patch["spec"]["renewTime"].is_string());
    }
}
