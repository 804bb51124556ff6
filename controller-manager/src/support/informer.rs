//! A watch-backed cache (reflector store) that calls a handler on every change, and workers that
//! drain a [`WorkQueue`] of namespaced keys with upstream's retry-with-backoff behaviour.

use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::queue::WorkQueue;

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

    /// The reflector reference of this key.
    pub fn object_ref<K: Resource<DynamicType = ()>>(&self) -> reflector::ObjectRef<K> {
        reflector::ObjectRef::new(&self.name).within(&self.namespace)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Starts watching `api` into a store; `on_change(obj, deleted)` runs for every object seen
/// (the initial list included). The watch ends with `shutdown`.
pub fn watch<K, F>(
    api: Api<K>,
    config: watcher::Config,
    shutdown: CancellationToken,
    on_change: F,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    F: Fn(&K, bool) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = stream.next() => e,
            };
            match event {
                None => return,
                Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => on_change(&o, false),
                Some(Ok(watcher::Event::Delete(o))) => on_change(&o, true),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying"),
            }
        }
    });
    reader
}

/// Waits until every store listed its objects once (false when a watch task ended first).
pub async fn wait_ready<K>(stores: &[&Store<K>]) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    for s in stores {
        if s.wait_until_ready().await.is_err() {
            return false;
        }
    }
    true
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
