//! Keelson's controller-manager: upstream kube-controller-manager's controllers, each a module
//! with an idempotent reconciler, talking to the cluster only through the API (kube-rs).

pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslice_mirroring;
pub mod garbage_collector;
pub mod namespace;
pub mod root_ca;
pub mod serviceaccounts;
pub mod support;
