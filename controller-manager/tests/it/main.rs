//! Integration tests of the controller-manager and its controllers against an in-process API
//! server.

mod poll;
mod support;

mod deployment;
mod disruption;
mod endpoints;
mod gc;
mod manager;
mod namespace;
mod replicaset;
mod root_ca;
mod serviceaccounts;
