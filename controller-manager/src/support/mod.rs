//! Pieces the controllers share: the server's preferred resources from discovery, a
//! rate-limited work queue, keys and views over the shared informers' caches, a standalone
//! watched store, per-namespace helpers and pod predicates (readiness, ports, addresses).

pub mod discovery;
pub mod informer;
pub mod per_namespace;
pub mod pods;
pub mod queue;
pub mod watched;
