//! A view of the process's shared informers that calls a handler on every change, and workers that
//! drain a [`WorkQueue`] of namespaced keys with upstream's retry-with-backoff behaviour.

use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::queue::WorkQueue;
use crate::informer::{Change, Informer, SharedInformers};

/// A namespaced object's key, `namespace/name`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl Key {
    /// The key of `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Key {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a namespaced object.
    pub fn of<K: Resource>(obj: &K) -> Key {
        Key::new(&obj.namespace().unwrap_or_default(), &obj.name_any())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A read view of a shared informer's cache.
pub struct Cache<K> {
    informer: Arc<Informer<K>>,
    store: Arc<crate::informer::Store<K>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache {
            informer: self.informer.clone(),
            store: self.store.clone(),
        }
    }
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// The object of `key` (cluster-scoped objects: namespace "").
    pub fn get(&self, key: &Key) -> Option<Arc<K>> {
        self.store.get(&key.namespace, &key.name)
    }

    /// Every object of `namespace`.
    pub fn list(&self, namespace: &str) -> Vec<Arc<K>> {
        self.store.list(namespace)
    }

    /// Every object.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.store.list_all()
    }

    /// Waits until the informer listed its objects once.
    pub async fn synced(&self) {
        self.informer.wait_synced().await
    }
}

/// The process's shared informer of `K`, with `on_change(obj, deleted)` called for every
/// change it sees (the initial list included).
pub fn watch<K, F>(informers: &SharedInformers, on_change: F) -> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(&K, bool) + Send + Sync + 'static,
{
    let informer = informers.informer::<K>();
    informer.add_handler(move |change| match change {
        Change::Added(o) | Change::Updated { new: o, .. } => on_change(o, false),
        Change::Deleted(o) => on_change(o, true),
    });
    Cache {
        store: informer.store(),
        informer,
    }
}

/// Runs `body` over informers of its own (for a controller run outside the manager): they start
/// at once, so `body` must enqueue what its caches hold once synced.
pub async fn standalone<Fut, T>(
    client: kube::Client,
    shutdown: CancellationToken,
    body: impl FnOnce(SharedInformers) -> Fut,
) -> T
where
    Fut: Future<Output = T>,
{
    let informers = SharedInformers::new(client);
    informers.start(shutdown.clone());
    let out = body(informers.clone()).await;
    informers.stopped().await;
    out
}

/// What a sync asks of the queue afterwards.
pub type Requeue = Option<Duration>;

/// Runs `workers` tasks that take keys from `queue` and `sync` them until `shutdown`: a failed
/// key comes back after its backoff, a successful one is forgotten (and re-queued after the
/// delay it asks for).
pub async fn run_workers<F, Fut, E>(
    queue: WorkQueue<Key>,
    workers: usize,
    shutdown: CancellationToken,
    controller: &'static str,
    sync: F,
) where
    F: Fn(Key) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Requeue, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let sync = Arc::new(sync);
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (queue, sync) = (queue.clone(), sync.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                match sync(key.clone()).await {
                    Ok(again) => {
                        queue.forget(&key);
                        if let Some(delay) = again {
                            queue.add_after(key.clone(), delay);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%controller, key = %key, error = %e, "sync failed; retrying with backoff");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        }));
    }
    shutdown.cancelled().await;
    queue.shut_down();
    for t in tasks {
        let _ = t.await;
    }
}
