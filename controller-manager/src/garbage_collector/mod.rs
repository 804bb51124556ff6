//! The garbage collector (upstream `garbage-collector-controller`): keeps the ownerReferences
//! graph of every resource type with the `delete`, `list` and `watch` verbs (from discovery,
//! refreshed periodically so new CRDs join) over metadata-only watches, and
//! - deletes dependents whose owners are all gone (background deletion, dangling owners, an
//!   owner replaced by another object of the same name);
//! - runs foreground deletions: an owner with the `foregroundDeletion` finalizer loses it once
//!   its dependents with `blockOwnerDeletion` are gone (the collector deletes them first);
//! - runs orphaning deletions: an owner with the `orphan` finalizer loses it once its
//!   dependents no longer reference it.
//!
//! Before acting on an owner reference the collector looks the owner up live (by name, then
//! compares uids), as upstream does, so a lagging watch never deletes a live object's dependents.

mod absent;
pub mod decide;
pub mod graph;
mod monitors;
mod workers;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::support::discovery::Discovered;
use crate::support::queue::WorkQueue;
use graph::{Graph, GraphEvent};

/// Settings of the garbage collector (upstream's defaults).
#[derive(Clone, Debug)]
pub struct GarbageCollectorConfig {
    /// Workers per queue (`--concurrent-gc-syncs`, 20).
    pub workers: usize,
    /// How often discovery is refreshed to watch new resource types (upstream: 30 s).
    pub discovery_period: Duration,
    /// Resources (group, resource) never watched (upstream: events of both groups).
    pub ignored_resources: Vec<(String, String)>,
    /// How long the workers wait for the first listing of every resource before starting.
    pub initial_sync_timeout: Duration,
}

impl Default for GarbageCollectorConfig {
    fn default() -> Self {
        GarbageCollectorConfig {
            workers: 20,
            discovery_period: Duration::from_secs(30),
            ignored_resources: vec![
                (String::new(), "events".into()),
                ("events.k8s.io".into(), "events".into()),
            ],
            initial_sync_timeout: Duration::from_secs(30),
        }
    }
}

/// Garbage collector failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// No served resource has this apiVersion and kind (yet: a new CRD joins at the next
    /// discovery).
    #[error("unable to map {api_version}, Kind={kind} to a served resource")]
    Unmapped {
        /// `apiVersion` of the reference.
        api_version: String,
        /// `kind` of the reference.
        kind: String,
    },
    /// A cluster-scoped object names a namespaced owner: it never resolves.
    #[error("cluster-scoped object {0} refers to a namespaced owner")]
    NamespacedOwnerOfClusterScopedObject(String),
}

/// State the monitors and workers share.
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) graph: Mutex<Graph>,
    pub(crate) discovered: RwLock<Discovered>,
    pub(crate) absent: Mutex<absent::AbsentOwners>,
    pub(crate) attempt_delete: WorkQueue<String>,
    pub(crate) attempt_orphan: WorkQueue<String>,
    pub(crate) rediscover: tokio::sync::Notify,
}

impl Shared {
    /// Applies a graph event and queues what it calls for.
    pub(crate) fn apply(&self, event: GraphEvent) {
        let actions = {
            let mut g = self.graph.lock().unwrap_or_else(|p| p.into_inner());
            g.apply(event)
        };
        if !actions.absent.is_empty() {
            let mut a = self.absent.lock().unwrap_or_else(|p| p.into_inner());
            for id in actions.absent {
                a.add(id);
            }
        }
        for uid in actions.attempt_delete {
            self.attempt_delete.add(uid);
        }
        for uid in actions.attempt_delete_later {
            self.attempt_delete.add_rate_limited(uid);
        }
        for uid in actions.attempt_orphan {
            self.attempt_orphan.add(uid);
        }
    }

    /// A snapshot of a node.
    pub(crate) fn node(&self, uid: &str) -> Option<graph::Node> {
        self.graph
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uid)
            .cloned()
    }

    pub(crate) fn with_graph<T>(&self, f: impl FnOnce(&Graph) -> T) -> T {
        f(&self.graph.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Runs the garbage collector until `shutdown` is cancelled.
pub async fn run(
    client: Client,
    config: GarbageCollectorConfig,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let shared = Arc::new(Shared {
        client,
        graph: Mutex::new(Graph::default()),
        discovered: RwLock::new(Discovered::default()),
        absent: Mutex::new(absent::AbsentOwners::new(500)),
        attempt_delete: WorkQueue::default(),
        attempt_orphan: WorkQueue::default(),
        rediscover: tokio::sync::Notify::new(),
    });
    let ignored: HashSet<(String, String)> = config.ignored_resources.iter().cloned().collect();
    let mut monitors = monitors::Monitors::new(shared.clone(), ignored, shutdown.child_token());
    // The first discovery, then wait (bounded) for every monitor's first listing.
    monitors.resync().await;
    let synced = monitors.wait_synced(config.initial_sync_timeout).await;
    if synced {
        tracing::info!("garbage collector: all resource monitors have synced, proceeding to collect garbage");
    } else {
        tracing::warn!(
            "garbage collector: timed out waiting for the resource monitors to sync, starting anyway"
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..config.workers.max(1) {
        tasks.spawn(workers::delete_worker(shared.clone()));
        tasks.spawn(workers::orphan_worker(shared.clone()));
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(config.discovery_period) => monitors.resync().await,
            _ = shared.rediscover.notified() => monitors.resync().await,
        }
    }
    shared.attempt_delete.shut_down();
    shared.attempt_orphan.shut_down();
    monitors.stop().await;
    while tasks.join_next().await.is_some() {}
    Ok(())
}
