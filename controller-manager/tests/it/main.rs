//! Integration tests of the controller-manager and its controllers against an in-process API
//! server.

mod apps_accounts;
mod fixtures;
mod poll;
mod support;

mod bootstrap_tokens;
mod certificates;
mod cronjob;
mod daemonset;
mod deployment;
mod disruption;
mod endpoints;
mod gc;
mod job;
mod manager;
mod namespace;
mod node_ipam;
mod node_lifecycle;
mod persistent_volume;
mod pod_gc;
mod replicaset;
mod resource_quota;
mod root_ca;
mod serviceaccounts;
mod statefulset;
mod ttl;
