//! Integration tests of the controller-manager's controllers against an in-process API server.

mod disruption;
mod endpoints;
mod gc;
mod namespace;
mod poll;
mod root_ca;
mod serviceaccounts;
