//! Shared pieces of the discovery-driven controllers (garbage collector, namespace deletion):
//! the server's preferred resources from discovery, and a rate-limited work queue.

pub mod discovery;
pub mod informer;
pub mod per_namespace;
pub mod pods;
pub mod queue;
