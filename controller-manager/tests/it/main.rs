//! Integration tests of the controller-manager against an in-process API server.

mod support;

mod deployment;
mod manager;

mod replicaset;
