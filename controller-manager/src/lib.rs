//! Keelson's controller-manager: upstream kube-controller-manager's controllers, each a module
//! with an idempotent reconciler, talking to the cluster only through the API (kube-rs).

pub mod garbage_collector;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod_gc;
pub mod resource_quota;
pub mod root_ca;
pub mod serviceaccounts;
pub mod support;
