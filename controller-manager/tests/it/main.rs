//! Integration tests of the controller-manager's controllers against an in-process API server.

mod gc;
mod namespace;
mod poll;
mod root_ca;
mod serviceaccounts;
