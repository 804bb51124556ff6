//! Integration tests of the controller-manager's controllers against an in-process API server.

mod cronjob;
mod gc;
mod job;
mod namespace;
mod poll;
mod root_ca;
mod serviceaccounts;
mod ttl;
