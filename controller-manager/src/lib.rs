//! Keelson's controller-manager: upstream kube-controller-manager's controllers, each a module
//! with an idempotent reconciler, talking to the cluster only through the API (kube-rs).

pub mod cronjob;
pub mod garbage_collector;
pub mod job;
pub mod namespace;
pub mod root_ca;
pub mod serviceaccounts;
pub mod support;
pub mod ttl_after_finished;
