//! Integration tests of the controller-manager's controllers against an in-process API server.

mod fixtures;
mod gc;
mod namespace;
mod node_ipam;
mod node_lifecycle;
mod pod_gc;
mod poll;
mod resource_quota;
mod root_ca;
mod serviceaccounts;
